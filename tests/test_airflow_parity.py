"""The differential test: every definition of tests/airflow/corpus.py goes through Airflow's
real Amazon provider (``AwsBaseHook``, pinned in tests/airflow/requirements.txt, in a venv of
its own: ``make airflow-venv``) and through the installed ``credproc``, at the same local STS.

What is compared, per definition: every request that reached an STS (which endpoint, the
action, every parameter, the signer's access key id, the signing region, whether a session
token came along), in order, and the outcome: both give the same credentials (the same static
key, or the keys of the same STS answer), or both fail. Each difference must be a row of the
README's table "Differences from Airflow" that the corpus entry names in ``expected``; a
listed difference that does not occur fails too (see :data:`DIFFERENCES`).

Airflow runs once for the whole corpus, in one process (tests/airflow/airflow_side.py): its
import takes seconds. credproc runs once per definition, as an SDK runs it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import CREDPROC
from servers.sts import StsProxy

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent / "airflow"
AIRFLOW_PYTHON = HERE / ".venv" / "bin" / "python"
AIRFLOW_STAMP = HERE / ".venv" / ".airflow-installed"
README = ROOT / "README.md"


def _load_corpus():
    spec = importlib.util.spec_from_file_location("airflow_parity_corpus", HERE / "corpus.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


corpus = _load_corpus()
ENTRIES = {entry["id"]: entry for entry in corpus.CORPUS}
assert len(ENTRIES) == len(corpus.CORPUS), "two corpus entries share an id"


# -- the world both sides run in ------------------------------------------------------------


@dataclass
class World:
    """The three STS endpoints (``sts``: named by service_config; ``default``: botocore's
    own choice, through AWS_ENDPOINT_URL_STS; ``elsewhere``: another service's endpoint),
    and the environment every run starts from."""

    proxies: dict[str, StsProxy]
    tmp: Path
    env: dict[str, str]

    def markers(self) -> dict[str, str]:
        return {"@STS@": self.proxies["sts"].url, "@DEFAULT@": self.proxies["default"].url,
                "@ELSEWHERE@": self.proxies["elsewhere"].url, "@TOKEN@": str(self.tmp / "token"),
                "@STS_QUOTED@": urllib.parse.quote(self.proxies["sts"].url, safe=""),
                "@TMP@": str(self.tmp)}

    def fill(self, value):
        """``value`` with the markers replaced, at any depth."""
        if isinstance(value, str):
            for marker, replacement in self.markers().items():
                value = value.replace(marker, replacement)
            return value
        if isinstance(value, list):
            return [self.fill(item) for item in value]
        if isinstance(value, dict):
            return {key: self.fill(item) for key, item in value.items()}
        return value

    def reset(self) -> None:
        for proxy in self.proxies.values():
            proxy.reset()

    def seen(self) -> list[dict]:
        """What reached any of the endpoints since the last reset, in order of arrival."""
        merged = [(request, name) for name, proxy in self.proxies.items() for request in proxy.requests]
        merged.sort(key=lambda pair: pair[0]["at"])
        return [_request(request, name) for request, name in merged]


def _request(request: dict, endpoint: str) -> dict:
    authorization = next((v for k, v in request["headers"].items() if k.lower() == "authorization"), "")
    scope = re.search(r"Credential=([^/,\s]+)/\d{8}/([^/]*)/", authorization)
    token = any(k.lower() == "x-amz-security-token" for k in request["headers"])
    return {"endpoint": endpoint, "action": request["action"], "params": request["params"],
            "signer": scope.group(1) if scope else None, "region": scope.group(2) if scope else None,
            "token": token, "issued": request["issued"]}


def definition_of(entry: dict, world: World) -> str | None:
    if "uri" in entry:
        return world.fill(entry["uri"])
    if "text" in entry:
        return world.fill(entry["text"])
    conn = world.fill(entry["conn"])
    return None if conn is None else json.dumps(conn)


def conn_id_of(entry: dict) -> str:
    return entry.get("conn_id", entry["id"])


@pytest.fixture(scope="module")
def world(moto, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("parity")
    (tmp / "home").mkdir()
    (tmp / "aws-config").write_text(corpus.AWS_CONFIG)
    (tmp / "aws-credentials").write_text("")
    (tmp / "s3.cfg").write_text(corpus.S3_CONFIG_BOTO)
    (tmp / "token").write_text("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJjcmVkcHJvYy10ZXN0In0.c2lnbmF0dXJl")
    proxies = {name: StsProxy(moto) for name in ("sts", "default", "elsewhere")}
    keep = {k: v for k, v in os.environ.items()
            if not k.startswith(("AWS_", "CREDPROC_", "AIRFLOW", "BOTO_", "XDG_", "GOOGLE_"))}
    keep.update({
        "HOME": str(tmp / "home"),
        "AWS_CONFIG_FILE": str(tmp / "aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ENDPOINT_URL_STS": proxies["default"].url,  # botocore's own choice of STS endpoint
        "CREDPROC_CONFIG": str(tmp / "credproc.toml"),
        "CREDPROC_CACHE_DIR": str(tmp / "cache"),
        "PYTHONDONTWRITEBYTECODE": "1",
    })
    yield World(proxies, tmp, keep)
    for proxy in proxies.values():
        proxy.close()


# -- the two sides ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def airflow_python() -> Path:
    if not AIRFLOW_STAMP.exists():
        pytest.skip(f"the pinned Airflow is not installed in {AIRFLOW_PYTHON.parent.parent}: run `make airflow-venv`")
    return AIRFLOW_PYTHON


def run_airflow(python: Path, world: World) -> tuple[dict, dict[str, dict]]:
    """Every entry through Airflow, in one process: (versions, {id: observation})."""
    env = {**world.env, "AIRFLOW_HOME": str(world.tmp / "airflow-home")}
    process = subprocess.Popen([str(python), str(HERE / "airflow_side.py")], env=env, text=True,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    observations = {}
    try:
        ready = json.loads(process.stdout.readline() or "{}").get("ready")
        assert ready, f"the Airflow side did not start: {process.stderr.read()[-3000:]}"
        for entry in ENTRIES.values():
            world.reset()
            request = {"conn_id": conn_id_of(entry), "definition": definition_of(entry, world),
                       "env": world.fill(entry.get("env", {}))}
            process.stdin.write(json.dumps(request) + "\n")
            process.stdin.flush()
            line = process.stdout.readline()
            assert line, f"the Airflow side died at {entry['id']}: {process.stderr.read()[-3000:]}"
            answer = json.loads(line)
            observations[entry["id"]] = {
                **observation(world.seen(), answer.get("access_key_id") if answer["ok"] else None,
                              f"{answer.get('error')}: {answer.get('message')}"),
                "found": answer["found"]}
    finally:
        process.stdin.close()
        process.stderr.close()
        process.wait(timeout=30)
    return ready, observations


def run_credproc(world: World) -> dict[str, dict]:
    """Every entry through the installed credproc, one run each: {id: observation}."""
    observations = {}
    for entry in ENTRIES.values():
        world.reset()
        env = {**world.env, **world.fill(entry.get("env", {}))}
        definition = definition_of(entry, world)
        if definition is not None:
            env["AIRFLOW_CONN_" + conn_id_of(entry).upper()] = definition
        result = subprocess.run([str(CREDPROC), "--conn", conn_id_of(entry), "--no-cache"], env=env,
                                capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        assert "Traceback" not in result.stderr, f"{entry['id']}: {result.stderr}"
        key = json.loads(result.stdout)["AccessKeyId"] if result.returncode == 0 else None
        lines = result.stderr.strip().splitlines()
        observations[entry["id"]] = observation(world.seen(), key, f"exit {result.returncode}: "
                                                f"{lines[-1] if lines else ''}")
    return observations


def observation(requests: list[dict], key: str | None, failure: str) -> dict:
    """What one side did: the requests, and the outcome (``credentials``: ``static KEY`` or
    ``answer N``, the keys handed out by the Nth request; None for a failure)."""
    credentials = None
    if key is not None:
        answers = [i for i, request in enumerate(requests) if request["issued"] == key]
        credentials = f"answer {answers[-1]}" if answers else f"static {key}"
    return {"requests": [{k: v for k, v in request.items() if k != "issued"} for request in requests],
            "credentials": credentials, "failure": None if key is not None else failure}


@pytest.fixture(scope="module")
def observed(airflow_python, world):
    """{id: (Airflow's observation, credproc's)}, and the versions of Airflow that ran."""
    if not CREDPROC.exists():
        pytest.skip(f"{CREDPROC} is not installed: run `make test`")
    versions, airflow = run_airflow(airflow_python, world)
    ours = run_credproc(world)
    pairs = {key: (airflow[key], ours[key]) for key in ENTRIES}
    dump = os.environ.get("CREDPROC_PARITY_DUMP")  # both sides, for whoever moves the pins
    if dump:
        Path(dump).write_text(json.dumps({"versions": versions, "entries": pairs}, indent=1))
    return versions, pairs


# -- the differences the README lists -----------------------------------------------------------


def _assume_calls(observation: dict) -> list[dict]:
    return [r for r in observation["requests"] if r["action"].startswith("AssumeRole")]


def _default_session_names(airflow: dict, ours: dict, entry: dict) -> bool:
    """Airflow names the role session ``airflow_<conn id>`` (AssumeRole; slugified, so in lower
    case) or lets botocore
    name it ``botocore-session-<time>`` (web identity); credproc ``credproc-<conn id>``.
    Both are replaced by ``<default>`` where they occur, in pairs."""
    found = False
    for theirs, mine in zip(_assume_calls(airflow), _assume_calls(ours), strict=False):
        a, c = theirs["params"].get("RoleSessionName", ""), mine["params"].get("RoleSessionName", "")
        if re.fullmatch(r"((?i:airflow_).*|botocore-session-\d+)", a) and c.startswith("credproc-") and a != c:
            theirs["params"]["RoleSessionName"] = mine["params"]["RoleSessionName"] = "<default>"
            found = True
    return found


def _whole(predicate: Callable[[dict, dict, dict], bool]):
    """A difference that changes the whole run: when ``predicate`` holds, nothing else of the
    entry is compared (both observations are blanked)."""

    def check(airflow: dict, ours: dict, entry: dict) -> bool:
        if not predicate(airflow, ours, entry):
            return False
        for side in (airflow, ours):
            side.update(requests=[], credentials=None, failure=None)
        return True

    return check


def _roles(observation: dict) -> list[str]:
    return [r["params"].get("RoleArn") for r in _assume_calls(observation)]


def _defined(entry: dict) -> bool:
    return not ("conn" in entry and entry["conn"] is None)


def _failed_with(observation: dict, *needles: str) -> bool:
    return observation["failure"] is not None and all(needle in observation["failure"] for needle in needles)


def _long_session_name(airflow: dict, ours: dict, entry: dict) -> bool:
    names = [r["params"].get("RoleSessionName", "") for r in _assume_calls(ours)]
    return (_failed_with(airflow, "roleSessionName", "64") and ours["credentials"] is not None
            and bool(names) and all(len(name) <= 64 for name in names))


def _deprecated_extras(airflow: dict, ours: dict, entry: dict) -> bool:
    external_ids = [any("ExternalId" in r["params"] for r in _assume_calls(side)) for side in (airflow, ours)]
    return (len(_roles(ours)) > len(_roles(airflow))                          # aws_account_id + aws_iam_role
            or (_failed_with(ours, "deprecated") and airflow["failure"] is None)  # half of that pair
            or (external_ids == [False, True])                                # external_id
            or (ours["credentials"] or "").endswith(corpus.S3CFG_KEY))        # s3_config_file


DIFFERENCES: dict[str, Callable[[dict, dict, dict], bool]] = {
    # The id of each row of the README's table, and the check that it occurs in an entry.
    "default-session-name": _default_session_names,
    "long-session-name": _whole(_long_session_name),
    "undefined-connection": _whole(lambda a, c, e: not _defined(e) and a["found"] is False
                                   and a["credentials"] is not None and _failed_with(c, "exit 2", "not defined")),
    "unread-definition": _whole(lambda a, c, e: _defined(e) and comparable(a) != comparable(c) and (
        a["found"] is False or a["credentials"] == f"static {corpus.ENV_KEY}")),  # undefined, or read as empty
    "deprecated-extras": _whole(_deprecated_extras),
    "session-kwargs": _whole(lambda a, c, e: comparable(a) != comparable(c)),
    "mfa-serial": _whole(lambda a, c, e: any("SerialNumber" in r["params"] for r in _assume_calls(a))
                         and _failed_with(c, "needs an MFA code")),
    "checked-before-sts": _whole(lambda a, c, e: bool(a["requests"]) and not c["requests"]
                                 and _failed_with(c, "exit 2")),
    "tables-as-json-text": _whole(lambda a, c, e: _failed_with(a, "TypeError", "not a mapping")
                                  and c["credentials"] is not None),
    "invalid-extra": _whole(lambda a, c, e: a["credentials"] is not None and _failed_with(c, "exit 2", "invalid JSON")),
    "method-without-role": _whole(lambda a, c, e: a["credentials"] is not None
                                  and _failed_with(c, "exit 2", "needs role_arn")),
    "web-identity-file-default": _whole(lambda a, c, e: _failed_with(a, "Unsupported federation")
                                        and c["credentials"] is not None
                                        and [r["action"] for r in c["requests"]] == ["AssumeRoleWithWebIdentity"]),
}


def comparable(observation: dict) -> dict:
    """The observation as compared: a failure is a failure, whatever its message."""
    return {"requests": observation["requests"], "credentials": observation["credentials"],
            "failed": observation["failure"] is not None}


@pytest.mark.parametrize("entry_id", list(ENTRIES))
def test_same_as_airflow(observed, entry_id):
    entry = ENTRIES[entry_id]
    airflow, ours = (json.loads(json.dumps(side)) for side in observed[1][entry_id])
    context = f"\nAirflow: {json.dumps(airflow, indent=1)}\ncredproc: {json.dumps(ours, indent=1)}"
    for difference in entry.get("expected", []):
        assert difference in DIFFERENCES, f"{difference!r} is no difference the test knows"
        assert DIFFERENCES[difference](airflow, ours, entry), \
            f"the listed difference {difference!r} does not occur{context}"
    assert comparable(airflow) == comparable(ours), f"a difference the README does not list{context}"


def readme_differences() -> dict[str, str]:
    """{id: row} of the README's table "Differences from Airflow" (first column: `id`)."""
    text = README.read_text()
    section = text.split("## Differences from Airflow", 1)[1].split("\n## ", 1)[0]
    return {m.group(1): m.group(0) for m in re.finditer(r"^\| `([a-z0-9-]+)` \|.*$", section, re.M)}


def test_readme_lists_every_difference():
    """Every difference the test accepts is a row of the README's table, and every row of the
    table that the test can observe is shown by at least one corpus entry."""
    rows = readme_differences()
    used = {difference for entry in ENTRIES.values() for difference in entry.get("expected", [])}
    assert set(DIFFERENCES) <= set(rows), f"not in the README's table: {sorted(set(DIFFERENCES) - set(rows))}"
    assert used == set(DIFFERENCES), f"listed but shown by no entry: {sorted(set(DIFFERENCES) - used)}"


def test_the_pinned_airflow_ran(observed):
    pins = dict(line.split("==") for line in (HERE / "requirements.txt").read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    versions = observed[0]
    assert versions == {"airflow": pins["apache-airflow"], "provider": pins["apache-airflow-providers-amazon"]}
