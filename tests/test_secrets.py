"""Secrets stay where they belong: one test drives every error path and the main job with
planted secrets and scans everything credproc leaves behind.

Planted: secret keys (with '/' and '+'), session tokens and passwords, in the URI, JSON and
TOML forms, in ``session_kwargs``, in a proxy URL of ``config_kwargs``, in
``assume_role_kwargs``, in the AWS shared credentials file, in the environment and in the
deprecated ``s3_config_file``. Scanned, for each planted secret in its raw, percent-encoded,
``+``-encoded and JSON-escaped forms and for a 12-character piece of it (a truncated or
partly masked secret is still a leak):

* stderr, without and with ``--debug`` (warnings, errors, debug log, tracebacks);
* stdout: on success it must be the credential JSON and nothing else, and that JSON may
  hold a planted secret only where the scenario's output *is* that secret (long-term keys
  printed as given);
* every file credproc created or changed under the test's directory (the cache and
  anything else, e.g. under ``$HOME``): names and contents. The credentials STS issued are
  allowed in one place only: the body of the cache entry, which must equal stdout.

Adding a path: write a function ``(env, sts, tmp_path) -> argv`` that plants secrets with
``plant(...)`` and sets up the run, and decorate it with ``@scenario(exit_code)``. People-facing
commands (issue 6), SAML (3) and web identity (4) add theirs here, with their own secrets
(SAML assertions, ID tokens) planted the same way.
"""

from __future__ import annotations

import json
import os
import re
import stat
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from conftest import ACCOUNT, CREDPROC, ROLE_ARN, credentials_only, stderr_verdict

pytestmark = pytest.mark.integration

CONN = "prod"
VARIABLE = f"CREDPROC_CONN_{CONN.upper()}"
SOURCE_KEY = "AKIAPLANTEDSOURCE001"

# Distinct per place, so that a hit says which path leaked. Each is long enough for
# credproc.log.add_secret (6+ characters) and holds characters that encodings change.
SECRETS = {
    "uri_secret": "wJalrXUtnFEMI/K7MDENG/uriPLANTED+secret1",
    "uri_token": "FwoGZXIvYXdzEuriPLANTEDtoken/////wEaD+Xyz==",
    "json_password": "jsonPLANTEDpass/word+with=special&chars",
    "json_token": "IQoJb3JpZ2luX2VjEjsonPLANTEDtoken/+/==",
    "toml_password": "tomlPLANTEDsecret/Key+0000000000000000000",
    "toml_token": "tomlPLANTEDsessionToken//+/AAAAAAAAAAAAAAA",
    "session_kwargs_secret": "skwPLANTEDsecret/access+key00000000000000",
    "proxy_password": "proxyPLANTEDpa55/word",
    "token_code": "73519046",
    "credentials_file_secret": "credfilePLANTEDsecret/Key+00000000000000",
    "credentials_file_token": "credfilePLANTEDsessionToken/+/BBBBBBBBBBB",
    "environment_secret": "envPLANTEDsecret/AccessKey+0000000000000",
    "environment_token": "envPLANTEDsessionToken/+/CCCCCCCCCCCCCCCCC",
    "s3_config_secret": "s3cfgPLANTEDsecret/Key+000000000000000000",
}


def forms(secret: str) -> set[str]:
    """The ways a secret can show up in text: as is, URL-encoded, JSON-escaped, a piece."""
    out = {secret, urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret),
           json.dumps(secret)[1:-1], secret.replace("/", "\\/")}
    if len(secret) >= 20:
        out.add(secret[6:18])  # a piece: a truncated or half-masked secret is a leak too
    return out


# -- scenarios -----------------------------------------------------------------------------------


@dataclass
class Scenario:
    setup: Callable[[dict, object, Path], list[str]]
    code: int
    printed: tuple[str, ...] = ()  # planted secrets this scenario's output is made of


SCENARIOS: dict[str, Scenario] = {}


def scenario(code: int, printed: tuple[str, ...] = ()):
    """Register a path: ``setup(env, sts, tmp_path)`` plants secrets and returns credproc's argv."""
    def register(setup):
        SCENARIOS[setup.__name__] = Scenario(setup, code, printed)
        return setup
    return register


def uri(endpoint: str, login: str = SOURCE_KEY, password: str = SECRETS["uri_secret"], **extra) -> str:
    query = {"endpoint_url": endpoint, "region_name": "us-east-1", **extra}
    auth = f"{urllib.parse.quote(login, safe='')}:{urllib.parse.quote(password, safe='')}@" if login else ""
    return f"aws://{auth}/?__extra__={urllib.parse.quote(json.dumps(query), safe='')}"


def write(path: Path | str, text: str) -> None:
    Path(path).write_text(text)


@scenario(0)
def role_from_uri(env, sts, tmp_path):
    env[VARIABLE] = uri(sts.url, role_arn=ROLE_ARN, aws_session_token=SECRETS["uri_token"])
    return ["--conn", CONN]


@scenario(0)
def role_from_json_refresh(env, sts, tmp_path):
    env[VARIABLE] = json.dumps({"conn_type": "aws", "login": SOURCE_KEY, "password": SECRETS["json_password"],
                                "extra": json.dumps({"role_arn": ROLE_ARN, "endpoint_url": sts.url,
                                                     "region_name": "us-east-1",
                                                     "aws_session_token": SECRETS["json_token"]})})
    return ["--conn", CONN, "--refresh"]


@scenario(0)
def role_from_toml_no_cache(env, sts, tmp_path):
    write(env["CREDPROC_CONFIG"], f"""
[connections.{CONN}]
login = "{SOURCE_KEY}"
password = "{SECRETS['toml_password']}"
aws_session_token = "{SECRETS['toml_token']}"
role_arn = "{ROLE_ARN}"
endpoint_url = "{sts.url}"
region_name = "us-east-1"
""")
    return ["--conn", CONN, "--no-cache"]


@scenario(0)
def role_signed_by_session_kwargs(env, sts, tmp_path):
    env[VARIABLE] = uri(sts.url, login="", role_arn=ROLE_ARN, session_kwargs={
        "aws_access_key_id": SOURCE_KEY, "aws_secret_access_key": SECRETS["session_kwargs_secret"]})
    return ["--conn", CONN]


@scenario(0)
def role_signed_by_environment_keys(env, sts, tmp_path):
    env[VARIABLE] = uri(sts.url, login="", role_arn=ROLE_ARN)
    env.update(AWS_ACCESS_KEY_ID=SOURCE_KEY, AWS_SECRET_ACCESS_KEY=SECRETS["environment_secret"],
               AWS_SESSION_TOKEN=SECRETS["environment_token"])
    return ["--conn", CONN]


@scenario(0, printed=("uri_secret", "uri_token"))
def long_term_keys_printed_not_cached(env, sts, tmp_path):
    env[VARIABLE] = uri(sts.url, aws_session_token=SECRETS["uri_token"])
    return ["--conn", CONN]


@scenario(1)
def sts_refuses(env, sts, tmp_path):
    env[VARIABLE] = uri(sts.url, role_arn=ROLE_ARN, aws_session_token=SECRETS["uri_token"])
    sts.faults.append((403, "AccessDenied"))
    return ["--conn", CONN]


@scenario(1)
def sts_throttles_past_the_budget(env, sts, tmp_path):
    env[VARIABLE] = uri(sts.url, role_arn=ROLE_ARN, config_kwargs={"retries": {"total_max_attempts": 2}})
    sts.faults.extend([(400, "Throttling")] * 2)
    return ["--conn", CONN]


@scenario(1)
def sts_unreachable(env, sts, tmp_path):
    env[VARIABLE] = uri("http://127.0.0.1:1", role_arn=ROLE_ARN, aws_session_token=SECRETS["uri_token"],
                        config_kwargs={"retries": {"total_max_attempts": 1}})
    return ["--conn", CONN]


@scenario(1)
def proxy_with_a_password_unreachable(env, sts, tmp_path):
    proxy = f"http://user:{urllib.parse.quote(SECRETS['proxy_password'], safe='')}@127.0.0.1:1"
    env[VARIABLE] = uri(sts.url, role_arn=ROLE_ARN, config_kwargs={
        "proxies": {"http": proxy, "https": proxy}, "retries": {"total_max_attempts": 1}})
    return ["--conn", CONN]


@scenario(2)
def mistyped_mfa_token_code(env, sts, tmp_path):
    env[VARIABLE] = uri(sts.url, role_arn=ROLE_ARN, assume_role_kwargs={
        "SerialNumber": f"arn:aws:iam::{ACCOUNT}:mfa/user", "TokenCode": int(SECRETS["token_code"])})
    return ["--conn", CONN]


@scenario(1)
def signing_keys_from_the_credentials_file_refused(env, sts, tmp_path):
    write(env["AWS_SHARED_CREDENTIALS_FILE"], f"""[src]
aws_access_key_id = {SOURCE_KEY}
aws_secret_access_key = {SECRETS['credentials_file_secret']}
aws_session_token = {SECRETS['credentials_file_token']}
""")
    env[VARIABLE] = uri(sts.url, login="", role_arn=ROLE_ARN, profile_name="src")
    sts.faults.append((403, "InvalidClientTokenId"))
    return ["--conn", CONN]


@scenario(1)
def deprecated_s3_config_file_refused(env, sts, tmp_path):
    path = tmp_path / "s3.cfg"
    write(path, f"[default]\naws_access_key_id = {SOURCE_KEY}\naws_secret_access_key = {SECRETS['s3_config_secret']}\n")
    env[VARIABLE] = uri(sts.url, login="", role_arn=ROLE_ARN, s3_config_file=str(path), s3_config_format="aws")
    sts.faults.append((403, "SignatureDoesNotMatch"))
    return ["--conn", CONN]


@scenario(1)
def half_a_key_pair(env, sts, tmp_path):
    env[VARIABLE] = f"aws://:{urllib.parse.quote(SECRETS['uri_secret'], safe='')}@/?role_arn={ROLE_ARN}" \
                    f"&endpoint_url={urllib.parse.quote(sts.url, safe='')}&region_name=us-east-1"
    return ["--conn", CONN]


@scenario(2)
def json_with_a_syntax_error_after_the_password(env, sts, tmp_path):
    env[VARIABLE] = '{"login": "%s", "password": "%s", "extra": {"role_arn": ' % (SOURCE_KEY, SECRETS["json_password"])
    return ["--conn", CONN]


@scenario(2)
def extra_json_string_with_a_syntax_error(env, sts, tmp_path):
    env[VARIABLE] = json.dumps({"login": SOURCE_KEY, "password": SECRETS["json_password"],
                                "extra": '{"aws_session_token": "%s", oops' % SECRETS["json_token"]})
    return ["--conn", CONN]


@scenario(2)
def uri_with_the_secret_but_no_at(env, sts, tmp_path):
    env[VARIABLE] = f"aws://{SOURCE_KEY}:{urllib.parse.quote(SECRETS['uri_secret'], safe='')}/?region_name=x"
    return ["--conn", CONN]


@scenario(2)
def uri_extra_with_a_syntax_error(env, sts, tmp_path):
    broken = urllib.parse.quote('{"aws_session_token": "%s",' % SECRETS["uri_token"], safe="")
    env[VARIABLE] = f"aws://{SOURCE_KEY}:{urllib.parse.quote(SECRETS['uri_secret'], safe='')}@/?__extra__={broken}"
    return ["--conn", CONN]


@scenario(2)
def toml_with_a_syntax_error_after_the_password(env, sts, tmp_path):
    write(env["CREDPROC_CONFIG"], f'[connections.{CONN}]\npassword = "{SECRETS["toml_password"]}"\n'
                                  f'aws_session_token = "{SECRETS["toml_token"]}" role_arn = \n')
    return ["--conn", CONN]


@scenario(2)
def toml_secret_of_the_wrong_type(env, sts, tmp_path):
    write(env["CREDPROC_CONFIG"], f'[connections.{CONN}]\nlogin = "{SOURCE_KEY}"\n'
                                  f'password = ["{SECRETS["toml_password"]}"]\n'
                                  f'aws_session_token = {{ value = "{SECRETS["toml_token"]}" }}\n')
    return ["--conn", CONN]


@scenario(2)
def bad_settings_next_to_secrets(env, sts, tmp_path):
    env[VARIABLE] = uri(sts.url, role_arn="not-an-arn", aws_session_token=SECRETS["uri_token"],
                        session_kwargs={"aws_secret_access_key": SECRETS["session_kwargs_secret"], "bogus": 1})
    return ["--conn", CONN]


@scenario(2)
def bad_retries_next_to_secrets(env, sts, tmp_path):
    env[VARIABLE] = uri(sts.url, role_arn=ROLE_ARN, aws_session_token=SECRETS["uri_token"],
                        config_kwargs={"retries": {"max_attempts": "lots"}})
    return ["--conn", CONN]


@scenario(1)
def chained_connection_whose_child_fails(env, sts, tmp_path):
    env["CREDPROC_CONN_BASE"] = '{"login": "%s", "password": "%s", broken' % (SOURCE_KEY, SECRETS["json_password"])
    env[VARIABLE] = uri(sts.url, login="", role_arn=ROLE_ARN, profile_name="base")
    write(env["AWS_CONFIG_FILE"], f"[profile base]\ncredential_process = {CREDPROC} --conn base\n")
    return ["--conn", CONN]


@scenario(0)
def chained_connection_succeeds(env, sts, tmp_path):
    env["CREDPROC_CONN_BASE"] = uri(sts.url, password=SECRETS["uri_secret"], aws_session_token=SECRETS["uri_token"])
    env[VARIABLE] = uri(sts.url, login="", role_arn=ROLE_ARN, profile_name="base")
    write(env["AWS_CONFIG_FILE"], f"[profile base]\ncredential_process = {CREDPROC} --conn base\n")
    return ["--conn", CONN]


# -- the scan ------------------------------------------------------------------------------------------


def files_below(root: Path) -> dict[Path, tuple]:
    out = {}
    for p in root.rglob("*"):
        st_ = p.lstat()
        out[p] = (st_.st_mtime_ns, st_.st_size, st_.st_ino)
    return out


def leaks(text: str, names=SECRETS) -> list[str]:
    return sorted(name for name in names if any(form in text for form in forms(SECRETS[name])))


@pytest.mark.parametrize("debug", [False, True], ids=["plain", "debug"])
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_no_secret_leaves_its_place(sts, env, run, tmp_path, name, debug):
    case = SCENARIOS[name]
    args = case.setup(env, sts, tmp_path)
    if debug:
        args = [*args, "--debug"]
    before = files_below(tmp_path)
    result = run(args, env, timeout=120)
    created = {p for p, meta in files_below(tmp_path).items() if before.get(p) != meta}

    if not debug:  # --debug adds log lines and tracebacks, by design
        stderr_verdict(result)
    assert result.returncode == case.code, f"exit {result.returncode}: {result.stderr}"
    assert leaks(result.stderr) == [], f"stderr shows {leaks(result.stderr)}:\n{result.stderr}"

    issued: list[str] = []
    if result.returncode == 0:
        out = credentials_only(result.stdout)
        allowed = set(case.printed)
        assert leaks(result.stdout, [n for n in SECRETS if n not in allowed]) == [], result.stdout
        if out.get("Expiration"):  # STS-issued: may sit in the cache entry's body and nowhere else
            issued = [out["SecretAccessKey"], out["SessionToken"]]
        for secret in issued:
            assert secret not in result.stderr, "an issued credential is on stderr"
    else:
        assert result.stdout == ""

    for path in created:
        assert leaks(str(path.relative_to(tmp_path))) == [], f"a secret in the file name {path}"
        for secret in issued:
            assert secret not in str(path), f"an issued credential in the file name {path}"
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes().decode("utf-8", "replace")
            assert leaks(data) == [], f"{path} holds {leaks(data)}"
            if any(secret in data for secret in issued):
                assert path.suffix == ".entry" and data.partition("\n")[2] + "\n" == result.stdout, \
                    f"issued credentials in {path}, which is not the cache entry of what was printed"


# -- what a cache entry holds -------------------------------------------------------------------------

HEADER = re.compile(r"credproc-cache 1 [0-9a-f]{64} \d+\.\d{3} \d+\.\d{3} [0-9a-f]+ [0-9a-f]{32}")


def test_entry_is_0600_in_a_0700_directory_and_holds_only_the_output(sts, env, run):
    env[VARIABLE] = uri(sts.url, role_arn=ROLE_ARN, aws_session_token=SECRETS["uri_token"])
    result = run(["--conn", CONN], env, preexec_fn=lambda: os.umask(0o002))
    out = credentials_only(result.stdout)
    directory = Path(env["CREDPROC_CACHE_DIR"])
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    names = sorted(p.name for p in directory.iterdir())
    assert len(names) == 2 and names[0].endswith(".entry") and names[1].endswith(".lock"), names
    entry, lock = (directory / n for n in names)
    for path in (entry, lock):
        st_ = path.lstat()
        assert stat.S_ISREG(st_.st_mode) and stat.S_IMODE(st_.st_mode) == 0o600, path
        assert st_.st_uid == os.geteuid()
    assert lock.stat().st_size == 0, "the lock file holds nothing"
    header, _, body = entry.read_text().partition("\n")
    assert HEADER.fullmatch(header), header
    fields = header.split(" ")
    assert bytes.fromhex(fields[5]).decode() == CONN
    assert body + "\n" == result.stdout, "the entry holds more (or less) than what is printed"
    from datetime import datetime, timezone

    expires = datetime.strptime(out["Expiration"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()
    assert abs(float(fields[4]) - expires) < 1
    assert CONN in entry.name and SOURCE_KEY not in entry.name and SOURCE_KEY not in header
