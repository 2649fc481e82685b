"""Real SDKs in other languages run credproc through ``credential_process``.

The AWS SDK for JavaScript v3 (from npm, pinned by ``tests/interop/js/package-lock.json``),
Ruby's aws-sdk-core and the AWS SDK for Go v2 (both from Debian's packages) each load the
profile ``demo``, whose ``credential_process`` runs credproc for a connection that assumes
ROLE_ARN at the local STS, and call STS ``GetCallerIdentity`` there. The AWS CLI and boto3
are covered by ``tests/test_sdk.py``; they appear here only in the 15-minute-role case.

For each SDK the tests assert the identity STS saw (the assumed role, so the SDK signed with
the credentials credproc printed), and count how often the SDK started credproc - through
the counting wrapper of ``tests/helpers.py`` - against what the SDK must do according to the
refresh table of ``/work/shared/reference/protocol.md``:

* JS v3 runs it once per client provider chain and again when less than 5 minutes remain;
* Ruby aws-sdk-core 3.168 runs it twice per client construction (``ProcessCredentials``
  fetches in its own ``initialize`` and again in ``RefreshingCredentials#initialize``), and
  then on every call once less than 5 minutes remain;
* Go v2 runs it once per ``aws.Config`` and again at expiry;
* botocore (boto3, the AWS CLI) re-runs it on every API call once less than 15 minutes
  remain - so with a 15-minute role, on every call from the first one.

Toolchains: ``npm ci --prefix tests/interop/js`` (node >= 20), and
``apt-get install ruby-aws-sdk-core golang-go golang-github-aws-aws-sdk-go-v2-dev``. A missing
toolchain skips its tests, which CI (``CREDPROC_REQUIRE_INTEGRATION=1``) counts as a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from credproc.cache import FLOOR
from helpers import ACCOUNT, ASSUMED_PREFIX, BIN, ROLE_ARN, SECRET_KEY, counting_wrapper, demo_profile, \
    expiring_helper, extra_uri, runs

pytestmark = pytest.mark.integration

INTEROP = Path(__file__).parent / "interop"
JS_DIR = INTEROP / "js"
GOCODE = Path("/usr/share/gocode")  # Debian's GOPATH for its golang-*-dev packages
CALLS = 5  # API calls per SDK process: enough to see an SDK re-run credproc per call
SESSION_ARN = ASSUMED_PREFIX + "credproc-demo"  # credproc's default RoleSessionName


# -- the SDKs ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sdk:
    """One SDK consumer: how to start it, and what the protocol table says it does."""

    name: str
    command: Callable[[str, int], list[str]]  # (endpoint, calls) -> argv
    runs_per_client: int  # credproc runs for one client whose credentials stay fresh
    error_shown: str  # where credproc's error line reaches the user: "error", "stderr" or "nowhere"
    runs_on_error: int = 1

    def run(self, env: dict[str, str], endpoint: str, calls: int = CALLS) -> dict:
        """Run one SDK process; its JSON report, with ``exit`` and ``stderr`` added."""
        result = subprocess.run(self.command(endpoint, calls), env=env, capture_output=True, text=True,
                                timeout=180, stdin=subprocess.DEVNULL)
        try:
            report = json.loads(result.stdout)
        except ValueError:
            pytest.fail(f"{self.name} printed no JSON (exit {result.returncode}):\n{result.stdout}\n{result.stderr}")
        report.update(exit=result.returncode, stderr=result.stderr)
        return report


@pytest.fixture(scope="session")
def node_sdk() -> Path:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (apt-get install nodejs npm)")
    if not (JS_DIR / "node_modules" / "@aws-sdk" / "client-sts" / "package.json").exists():
        pytest.skip(f"the JavaScript SDK is not installed: run `npm ci --prefix {JS_DIR}`")
    return Path(node)


@pytest.fixture(scope="session")
def ruby_sdk() -> Path:
    ruby = shutil.which("ruby")
    if ruby is None:
        pytest.skip("ruby is not installed (apt-get install ruby-aws-sdk-core)")
    probe = subprocess.run([ruby, "-e", "require 'aws-sdk-core'; Aws::STS::Client"], capture_output=True,
                           text=True, timeout=60)
    if probe.returncode != 0:
        pytest.skip(f"Ruby's aws-sdk-core is not installed (apt-get install ruby-aws-sdk-core): {probe.stderr}")
    return Path(ruby)


@pytest.fixture(scope="session")
def go_sdk(tmp_path_factory) -> Path:
    """tests/interop/go built offline, in GOPATH mode, against Debian's SDK packages."""
    go = shutil.which("go")
    if go is None or not (GOCODE / "src/github.com/aws/aws-sdk-go-v2/service/sts").is_dir():
        pytest.skip("Go or its AWS SDK is not installed "
                    "(apt-get install golang-go golang-github-aws-aws-sdk-go-v2-dev)")
    binary = tmp_path_factory.mktemp("go") / "caller_identity"
    build_env = {**os.environ, "GO111MODULE": "off", "GOPATH": str(GOCODE), "CGO_ENABLED": "0", "GOFLAGS": ""}
    if not any(build_env.get(k) for k in ("GOCACHE", "XDG_CACHE_HOME", "HOME")):  # go needs a build cache
        build_env["GOCACHE"] = str(tmp_path_factory.mktemp("gocache"))
    build = subprocess.run([go, "build", "-o", str(binary), str(INTEROP / "go" / "caller_identity.go")],
                           env=build_env, capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, f"go build failed:\n{build.stderr}"
    return binary


def js(mode: str) -> Callable:
    def make(request) -> Sdk:
        node = request.getfixturevalue("node_sdk")
        # The default chain tries the profile's credential_process twice (fromIni, then
        # fromProcess) and, when both fail, says only "Could not load credentials from any
        # providers"; fromProcess alone passes credproc's stderr on in its error.
        return Sdk(f"js-{mode}", lambda url, n: [str(node), str(JS_DIR / "caller_identity.js"), url, str(n), mode],
                   runs_per_client=1, error_shown="nowhere" if mode == "chain" else "error",
                   runs_on_error=2 if mode == "chain" else 1)
    return make


def ruby(request) -> Sdk:
    exe = request.getfixturevalue("ruby_sdk")
    # Ruby's exception says only "non zero exit status"; credproc's stderr is inherited.
    return Sdk("ruby", lambda url, n: [str(exe), str(INTEROP / "ruby" / "caller_identity.rb"), url, str(n)],
               runs_per_client=2, error_shown="stderr")


def go(request) -> Sdk:
    binary = request.getfixturevalue("go_sdk")
    # Go copies credproc's stderr to its own and reports "exit status 1".
    return Sdk("go", lambda url, n: [str(binary), url, str(n)], runs_per_client=1, error_shown="stderr")


BOTO3_CALLS = """\
import json, sys
import boto3

client = boto3.Session().client("sts", endpoint_url=sys.argv[1])
calls = [client.get_caller_identity() for _ in range(int(sys.argv[2]))]
print(json.dumps({"sdk": "boto3 " + boto3.__version__,
                  "calls": [{"Account": c["Account"], "Arn": c["Arn"]} for c in calls]}))
"""


def boto3(request) -> Sdk:
    return Sdk("boto3", lambda url, n: [str(BIN / "python"), "-c", BOTO3_CALLS, url, str(n)],
               runs_per_client=1, error_shown="error")


AWS_CLI = """\
import json, subprocess, sys
out = subprocess.run([sys.argv[1], "sts", "get-caller-identity", "--endpoint-url", sys.argv[2],
                      "--output", "json"], capture_output=True, text=True)
sys.stderr.write(out.stderr)
calls = [json.loads(out.stdout)] if out.returncode == 0 else []
print(json.dumps({"sdk": "aws-cli", "calls": [{"Account": c["Account"], "Arn": c["Arn"]} for c in calls]}))
sys.exit(out.returncode)
"""


def aws_cli(request) -> Sdk:
    # One API call per process: `aws` is a new process, and a new botocore Session, each time.
    return Sdk("aws-cli", lambda url, n: [str(BIN / "python"), "-c", AWS_CLI, str(BIN / "aws"), url],
               runs_per_client=1, error_shown="error")


OTHER_LANGUAGES = {"js-chain": js("chain"), "js-fromProcess": js("fromProcess"), "ruby": ruby, "go": go}


@pytest.fixture(params=list(OTHER_LANGUAGES))
def sdk(request) -> Sdk:
    return OTHER_LANGUAGES[request.param](request)


# -- the set-up every test shares ---------------------------------------------------------


@pytest.fixture
def counted(sts, env, tmp_path, credproc_bin):
    """Profile ``demo`` (in $AWS_PROFILE) runs credproc through the counting wrapper; the
    connection ``demo`` assumes ROLE_ARN at the local STS. Yields (env, counter file)."""
    wrapper, counter = counting_wrapper(tmp_path)
    demo_profile(env, f"{wrapper} --conn demo --profile demo")
    env["CREDPROC_CONN_DEMO"] = extra_uri({"role_arn": ROLE_ARN}, endpoint=sts.url)
    env["AWS_PROFILE"] = "demo"
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"  # the local STS, never through a proxy
    return env, counter


def assert_identity(report: dict, sdk: Sdk, calls: int) -> None:
    assert report["exit"] == 0 and "error" not in report, f"{sdk.name}: {report.get('error')}\n{report['stderr']}"
    assert len(report["calls"]) == calls
    for answer in report["calls"]:
        assert answer == {"Account": ACCOUNT, "Arn": SESSION_ARN}, answer
    assert SECRET_KEY not in report["stderr"]


# -- the tests ---------------------------------------------------------------------------------


def test_sdk_uses_credproc_and_runs_it_no_more_than_it_must(sdk, sts, counted, record_property):
    env, counter = counted
    first = sdk.run(env, sts.url)
    assert_identity(first, sdk, CALLS)
    assert runs(counter) == sdk.runs_per_client, f"{sdk.name} ran credproc {runs(counter)} times"
    assert sts.count("AssumeRole") == 1
    assert sts.count("GetCallerIdentity") == CALLS

    # A second process of the same SDK starts credproc afresh; credproc's cache answers.
    second = sdk.run(env, sts.url)
    assert_identity(second, sdk, CALLS)
    assert runs(counter) == 2 * sdk.runs_per_client
    assert sts.count("AssumeRole") == 1, f"{sdk.name}'s second process missed credproc's cache"
    record_property("sdk", first["sdk"])
    record_property("credproc_runs_per_process", sdk.runs_per_client)


FIFTEEN_MINUTES = {**OTHER_LANGUAGES, "boto3": boto3, "aws-cli": aws_cli}


@pytest.mark.parametrize("name", list(FIFTEEN_MINUTES))
def test_fifteen_minute_role(name, request, sts, counted, record_property):
    """A role whose sessions last 15 minutes (STS's minimum), several API calls per process.

    credproc serves such an entry for its first 9 minutes (down to cache.FLOOR), so every
    re-run in that time is a cache hit, not an STS call. botocore sees less than its
    15-minute advisory margin left and re-runs credproc before every API call; JS, Ruby and
    Go see more than their 5-minute (or zero) window and do not re-run it.
    """
    sdk = FIFTEEN_MINUTES[name](request)
    env, counter = counted
    env["CREDPROC_CONN_DEMO"] = extra_uri({"role_arn": ROLE_ARN, "assume_role_kwargs": {"DurationSeconds": 900}},
                                          endpoint=sts.url)
    calls = 1 if name == "aws-cli" else CALLS
    report = sdk.run(env, sts.url, calls)
    assert_identity(report, sdk, calls)
    [assume] = [r for r in sts.requests if r["action"] == "AssumeRole"]
    assert assume["params"].get("DurationSeconds") == "900"
    expected = sdk.runs_per_client + (calls if name in ("boto3", "aws-cli") else 0)
    assert runs(counter) == expected, f"{sdk.name} ran credproc {runs(counter)} times for {calls} calls"
    assert sts.count("AssumeRole") == 1, "credproc's cache did not answer the SDK's re-runs"
    record_property("credproc_runs", runs(counter))


def test_credprocs_error_reaches_the_user(sdk, sts, counted, record_property):
    """STS refuses the AssumeRole: the SDK fails without calling the API, and credproc's
    one-line error is shown where this SDK shows it (or, for JS's default chain, nowhere)."""
    env, counter = counted
    sts.faults.extend([(403, "AccessDenied")] * 4)
    report = sdk.run(env, sts.url)
    assert report["exit"] != 0 and "calls" not in report, report
    assert sts.count("GetCallerIdentity") == 0
    assert runs(counter) == sdk.runs_on_error
    line = "credproc: error: connection 'demo': STS AssumeRole failed: AccessDenied"
    where = {"error": line in report["error"], "stderr": line in report["stderr"]}
    assert where == {"error": sdk.error_shown == "error", "stderr": sdk.error_shown == "stderr"}, report
    if sdk.error_shown == "nowhere":
        assert report["error"].endswith("Could not load credentials from any providers"), report["error"]
    assert SECRET_KEY not in report["error"] + report["stderr"]
    record_property("error", report["error"])


# -- what credproc's floor relies on (benchmarks/sdk_refresh_windows.py measures the rest) -------

# When each SDK runs the process again, in seconds before the Expiration (from their sources;
# the tests below show the window is there, and that the floor is above it).
WINDOW = {"js-chain": 5 * 60, "js-fromProcess": 5 * 60, "ruby": 5 * 60, "go": 0}


def expiring(env: dict, tmp_path: Path, seconds: float) -> tuple[dict, Path]:
    """Profile ``demo`` runs a helper (not credproc) printing credentials ``seconds`` from expiry."""
    helper, log = expiring_helper(tmp_path, seconds, name=f"expiring-{round(seconds)}")
    demo_profile(env, str(helper))
    env["AWS_PROFILE"] = "demo"
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env, log


def succeeded(report: dict, sdk: Sdk) -> None:
    assert report["exit"] == 0 and "error" not in report, f"{sdk.name}: {report.get('error')}\n{report['stderr']}"
    assert len(report["calls"]) == CALLS


@pytest.mark.parametrize("name", list(OTHER_LANGUAGES))
def test_with_the_floor_left_the_sdks_keep_the_credentials(name, request, sts, env, tmp_path):
    """Credentials with FLOOR left (the least credproc prints) are taken by JS, Ruby and Go
    and kept for several calls without running the process again: the floor is above their
    windows. Under a 5-minute window, JS and Ruby do run it again (so this test can fail)."""
    sdk = OTHER_LANGUAGES[name](request)
    assert FLOOR > WINDOW[name]
    env, log = expiring(env, tmp_path, FLOOR)
    succeeded(sdk.run(env, sts.url), sdk)
    assert runs(log) == sdk.runs_per_client, f"{sdk.name} ran the process {runs(log)} times"
    if WINDOW[name]:
        env, inside = expiring(env, tmp_path, WINDOW[name] - 60)
        succeeded(sdk.run(env, sts.url), sdk)
        assert runs(inside) > sdk.runs_per_client, f"{sdk.name} kept credentials inside its window"


@pytest.mark.parametrize("minutes", [2, 9, 14], ids=["2min", "9min-mandatory", "14min-advisory"])
def test_botocore_takes_credentials_under_its_windows_and_asks_before_every_call(minutes, request, sts, env,
                                                                                 tmp_path):
    """botocore does not fail on credentials with less than its 10-minute mandatory (or
    15-minute advisory) window left: every call succeeds, and the process runs again before
    each one (a cost: with credproc, a cache hit)."""
    sdk = boto3(request)
    env, log = expiring(env, tmp_path, minutes * 60)
    succeeded(sdk.run(env, sts.url), sdk)
    assert runs(log) == 1 + CALLS


def test_botocore_fails_only_on_credentials_already_expired(request, sts, env, tmp_path):
    sdk = boto3(request)
    env, log = expiring(env, tmp_path, -60)
    result = subprocess.run(sdk.command(sts.url, CALLS), env=env, capture_output=True, text=True, timeout=180,
                            stdin=subprocess.DEVNULL)
    assert result.returncode != 0
    assert "Credentials were refreshed, but the refreshed credentials are still expired" in result.stderr
    assert runs(log) == 2 and sts.count("GetCallerIdentity") == 0  # loaded, refreshed once, refused
