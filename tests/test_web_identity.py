"""AssumeRoleWithWebIdentity end to end: federation ``google`` (google-auth making its real
HTTP calls to the loopback metadata server and OAuth token endpoint of servers/google.py) and
federation ``file`` (token files, rotated between fetches), against moto's STS behind the
counting proxy. The installed ``credproc`` executable runs in subprocesses, as SDKs run it.

Checked: the token that reaches STS is the one the Google stand-in issued (or the file
held), the call is unsigned, the Google stack is asked once per cold cache, failures are one
line with the right exit code and come fast, and the token is never on stderr nor on disk.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import tomllib
from datetime import datetime, timezone
from pathlib import Path

import pytest

from helpers import ACCESS_KEY, ACCOUNT, ROLE_ARN, SECRET_KEY, free_port, ok, one_error, run_together, sts_at, \
    sts_endpoint, toml_key, toml_lines
from servers.google import GOOGLE_SA_EMAIL, GOOGLE_USER_CLIENT_ID

pytestmark = pytest.mark.integration

CONN = "gweb"
VARIABLE = "CREDPROC_CONN_GWEB"
NAMED = f"'{CONN}'"  # what every error line must say: the connection
AUDIENCE = "https://credproc.example.com/aws"
ACTION = "AssumeRoleWithWebIdentity"
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "aws-config" / "web-identity.toml"
# Process start, imports (boto3, google-auth) and the bounded probe (2 x 1 s + back-off,
# about 3.5 s in all here) fit well within this; google-auth's own defaults take about 13 s.
FAST_FAILURE_SECONDS = 8.0


# -- helpers -------------------------------------------------------------------------------


def define(env: dict, sts, **extra) -> None:
    """Connection ``gweb``: web identity for ROLE_ARN on the local STS, plus ``extra``."""
    env[VARIABLE] = json.dumps({"conn_type": "aws", "extra": {
        **sts_at(sts.url), "role_arn": ROLE_ARN,
        "assume_role_method": "assume_role_with_web_identity", **extra}})


def google(env: dict, sts, **extra) -> None:
    define(env, sts, assume_role_with_web_identity_federation="google",
           assume_role_with_web_identity_federation_audience=AUDIENCE, **extra)


@pytest.fixture
def genv(env, tmp_path):
    """An environment where Google finds nothing unless a test adds it: no
    GOOGLE_APPLICATION_CREDENTIALS, an empty gcloud directory, and the metadata address on
    a closed port (refused at once)."""
    gcloud = tmp_path / "gcloud"
    gcloud.mkdir()
    env["CLOUDSDK_CONFIG"] = str(gcloud)
    closed = f"127.0.0.1:{free_port()}"
    env["GCE_METADATA_HOST"] = env["GCE_METADATA_IP"] = closed
    for name in ("GCE_METADATA_TIMEOUT", "GCE_METADATA_DETECT_RETRIES", "NO_GCE_CHECK"):
        env.pop(name, None)
    return env


def sts_calls(sts) -> list[dict]:
    return [r for r in sts.requests if r["action"] == ACTION]


def assert_nowhere(secret: str, env: dict, *results: subprocess.CompletedProcess) -> None:
    """The token is on no stream and in no file of the cache directory."""
    assert len(secret) > 20
    for result in results:
        assert secret not in result.stderr
        assert secret not in result.stdout
    cache = Path(env["CREDPROC_CACHE_DIR"])
    files = [p for p in cache.rglob("*") if p.is_file()] if cache.is_dir() else []
    for path in files:
        assert secret.encode() not in path.read_bytes(), f"the token is in {path}"


def sent_token(sts, index: int = -1) -> str:
    call = sts_calls(sts)[index]
    assert "Authorization" not in call["headers"], "AssumeRoleWithWebIdentity must be unsigned"
    return call["params"]["WebIdentityToken"]


# -- federation "google" --------------------------------------------------------------------


def test_google_metadata_server(sts, genv, run, gce_metadata, google_issuer):
    genv.update(gce_metadata.env())
    # Keys in the environment change nothing: the call goes out unsigned, and no AWS
    # credentials are even resolved for it (see the AWS_PROFILE test below).
    genv["AWS_ACCESS_KEY_ID"], genv["AWS_SECRET_ACCESS_KEY"] = ACCESS_KEY, SECRET_KEY
    google(genv, sts)
    first = run(["--conn", CONN], genv)
    out = ok(first, temporary=True, account=ACCOUNT)

    assert gce_metadata.count("ping") >= 1 and gce_metadata.count("refused") == 0
    assert gce_metadata.count("identity") == 1 and gce_metadata.audiences == [AUDIENCE]
    token = sent_token(sts)
    assert token == google_issuer.issued[-1]
    assert google_issuer.claims(token)["aud"] == AUDIENCE
    params = sts_calls(sts)[0]["params"]
    assert params["RoleArn"] == ROLE_ARN and params["RoleSessionName"] == f"credproc-{CONN}"
    assert_nowhere(token, genv, first)

    again = run(["--conn", CONN], genv)  # a cache hit: neither Google nor STS is asked again
    assert again.returncode == 0 and json.loads(again.stdout) == out
    assert gce_metadata.count("identity") == 1 and len(sts_calls(sts)) == 1


def test_google_service_account_key(sts, genv, run, gce_metadata, google_token_endpoint, google_issuer, tmp_path):
    genv.update(gce_metadata.env())  # a live metadata server that must not be asked
    key = tmp_path / "sa.json"
    google_token_endpoint.service_account_key(key)
    genv["GOOGLE_APPLICATION_CREDENTIALS"] = str(key)
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject",
                                                      "Resource": "*"}]}
    google(genv, sts, assume_role_kwargs={"DurationSeconds": 900, "RoleSessionName": "deploy-42",
                                          "Policy": json.dumps(policy)})
    result = run(["--conn", CONN], genv)
    out = ok(result, temporary=True, account=ACCOUNT)

    # google-auth signed an assertion with the key; the endpoint verified it.
    assert google_token_endpoint.count("jwt-bearer") == 1 and google_token_endpoint.count("rejected") == 0
    [claims] = google_token_endpoint.assertions
    assert claims["iss"] == GOOGLE_SA_EMAIL and claims["target_audience"] == AUDIENCE
    assert gce_metadata.count("ping") == 0 and gce_metadata.count("identity") == 0

    token = sent_token(sts)
    assert token == google_issuer.issued[-1] and google_issuer.claims(token)["aud"] == AUDIENCE
    params = sts_calls(sts)[0]["params"]
    assert params["DurationSeconds"] == "900" and params["RoleSessionName"] == "deploy-42"
    assert json.loads(params["Policy"]) == policy
    expires = datetime.strptime(out["Expiration"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    assert abs(expires.timestamp() - time.time() - 900) < 120
    assert_nowhere(token, genv, result)
    key_text = json.loads(key.read_text())["private_key"]
    assert "PRIVATE KEY" not in result.stderr and key_text not in result.stderr


def test_google_gcloud_adc_file(sts, genv, run, gce_metadata, google_token_endpoint, google_issuer):
    """gcloud's ADC file comes before the metadata server (here it holds a service-account key,
    as `gcloud auth application-default login --cred-file` writes; a user login is tested
    below the HTTP level, in the next test)."""
    genv.update(gce_metadata.env())
    google_token_endpoint.service_account_key(Path(genv["CLOUDSDK_CONFIG"]) / "application_default_credentials.json")
    google(genv, sts)
    result = run(["--conn", CONN], genv)
    ok(result, temporary=True, account=ACCOUNT)
    assert google_token_endpoint.count("jwt-bearer") == 1
    assert gce_metadata.count("ping") == 0
    assert sent_token(sts) == google_issuer.issued[-1]


def test_google_authorized_user_file_below_the_http_level(google_token_endpoint, google_issuer, tmp_path,
                                                         monkeypatch):
    """A gcloud user login (``authorized_user``) yields the user's own ID token.

    Tested in-process, below the HTTP level: google-auth always sends the refresh to
    Google's fixed https://oauth2.googleapis.com/token and ignores the file's ``token_uri``,
    so a real requests session is given an adapter that delivers that URL to the loopback
    token endpoint. google-auth still builds and sends the real refresh-token request.
    """
    import requests
    from google.auth.transport.requests import Request

    from credproc.methods.web_identity import google as credproc_google
    from credproc.errors import CredprocError

    gcloud = tmp_path / "gcloud"
    gcloud.mkdir()
    user = google_token_endpoint.authorized_user(gcloud / "application_default_credentials.json")
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(gcloud))
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("NO_GCE_CHECK", "true")  # never the metadata server from here

    asked: list[str] = []

    class ToLoopback(requests.adapters.HTTPAdapter):
        def send(self, request, **kwargs):
            asked.append(request.url)
            request.url = google_token_endpoint.url
            return super().send(request, **kwargs)

    session = requests.Session()
    session.mount("https://oauth2.googleapis.com/", ToLoopback())
    token = credproc_google.id_token(AUDIENCE, request=Request(session))

    assert asked == ["https://oauth2.googleapis.com/token"], "google-auth ignored the file's token_uri"
    assert google_token_endpoint.count("refresh_token") == 1 and google_token_endpoint.count("rejected") == 0
    assert token.token == google_issuer.issued[-1]
    assert google_issuer.claims(token.token)["aud"] == GOOGLE_USER_CLIENT_ID  # not AUDIENCE: see the README
    assert "gcloud user credentials" in token.source and token.token not in repr(token)

    google_token_endpoint.refuse = True
    with pytest.raises(CredprocError) as refused:
        credproc_google.id_token(AUDIENCE, request=Request(session))
    message = str(refused.value)
    assert "Google refused" in message and "invalid_grant" in message
    assert user["refresh_token"] not in message and user["client_secret"] not in message


def test_google_token_endpoint_refuses(sts, genv, run, google_token_endpoint, tmp_path):
    key = tmp_path / "sa.json"
    google_token_endpoint.service_account_key(key)
    google_token_endpoint.refuse = True
    genv["GOOGLE_APPLICATION_CREDENTIALS"] = str(key)
    google(genv, sts)
    line = one_error(run(["--conn", CONN], genv), 1, NAMED)
    assert "Google refused an ID token" in line and "invalid_grant" in line and str(key) in line
    assert google_token_endpoint.count("rejected") == 1, "a refused grant is not retried"
    assert sts_calls(sts) == []
    assert not list(Path(genv["CREDPROC_CACHE_DIR"]).glob("*.entry"))


def test_google_missing_audience(sts, genv, run, gce_metadata):
    genv.update(gce_metadata.env())
    define(genv, sts, assume_role_with_web_identity_federation="google")
    line = one_error(run(["--conn", CONN], genv), 2, NAMED)
    assert "assume_role_with_web_identity_federation_audience" in line
    assert gce_metadata.count("ping") == 0 and sts_calls(sts) == []


@pytest.mark.parametrize("metadata", ["refusing", "never answering", "never answering, 1 attempt"])
def test_no_google_credentials_fails_fast(sts, genv, run, blackhole, metadata):
    if metadata.startswith("never answering"):
        genv["GCE_METADATA_HOST"] = genv["GCE_METADATA_IP"] = blackhole.address
    attempts = 2
    if metadata.endswith("1 attempt"):  # google-auth's own knobs are honoured
        genv["GCE_METADATA_DETECT_RETRIES"], genv["GCE_METADATA_TIMEOUT"] = "1", "0.5"
        attempts = 1
    google(genv, sts)
    started = time.monotonic()
    result = run(["--conn", CONN], genv, timeout=60)
    elapsed = time.monotonic() - started
    line = one_error(result, 1, NAMED)
    assert elapsed < FAST_FAILURE_SECONDS, f"took {elapsed:.1f} s"
    assert "no Google credentials" in line and "GOOGLE_APPLICATION_CREDENTIALS is not set" in line
    assert genv["CLOUDSDK_CONFIG"] in line, "names the gcloud ADC file it looked for"
    assert genv["GCE_METADATA_IP"] in line and f"{attempts} attempt(s)" in line
    if metadata.startswith("never answering"):
        assert blackhole.accepted == attempts, "the probe went to the address, once per attempt"
    assert sts_calls(sts) == []


def test_google_application_credentials_not_found(sts, genv, run, gce_metadata, tmp_path):
    genv.update(gce_metadata.env())
    missing = tmp_path / "nope.json"
    genv["GOOGLE_APPLICATION_CREDENTIALS"] = str(missing)
    google(genv, sts)
    line = one_error(run(["--conn", CONN], genv), 1, NAMED)
    assert f"GOOGLE_APPLICATION_CREDENTIALS={missing}: no such file" in line
    assert gce_metadata.count("ping") == 0, "a broken explicit setting is not passed over"


def test_google_credentials_file_that_never_ends(sts, genv, run, gce_metadata):
    genv["GOOGLE_APPLICATION_CREDENTIALS"] = "/dev/zero"
    google(genv, sts)
    line = one_error(run(["--conn", CONN], genv, timeout=30), 1, NAMED)
    assert "GOOGLE_APPLICATION_CREDENTIALS=/dev/zero: larger than 1 MiB" in line


def test_google_credentials_of_another_type(sts, genv, run, tmp_path):
    path = tmp_path / "external.json"
    path.write_text(json.dumps({"type": "external_account", "audience": "//iam.googleapis.com/x"}))
    genv["GOOGLE_APPLICATION_CREDENTIALS"] = str(path)
    google(genv, sts)
    line = one_error(run(["--conn", CONN], genv), 1, NAMED)
    assert "'external_account'" in line and "service_account, authorized_user" in line


def test_google_stampede_one_token_one_sts_call(sts, genv, google_token_endpoint, google_issuer,
                                                credproc_bin, tmp_path):
    key = tmp_path / "sa.json"
    google_token_endpoint.service_account_key(key)
    genv["GOOGLE_APPLICATION_CREDENTIALS"] = str(key)
    google(genv, sts)
    sts.delay[ACTION] = 1
    results = run_together(credproc_bin, ["--conn", CONN], genv, 16)
    for result in results:
        ok(result, temporary=True, account=ACCOUNT)
    assert len({r.stdout for r in results}) == 1
    assert google_token_endpoint.count("jwt-bearer") == 1 and len(google_issuer.issued) >= 1
    assert len(sts_calls(sts)) == 1
    token = sent_token(sts)
    assert token == google_issuer.issued[-1]
    assert_nowhere(token, genv, *results)


def test_debug_output_never_shows_the_token(sts, genv, run, gce_metadata, google_issuer):
    genv.update(gce_metadata.env())
    google(genv, sts)
    result = run(["--conn", CONN, "--debug", "--no-cache"], genv)
    assert result.returncode == 0, result.stderr
    assert ACTION in result.stderr, "debug logging was on"
    assert_nowhere(sent_token(sts), genv, result)


def test_google_extra_not_installed(sts, genv, run, tmp_path):
    """Without google-auth, a google connection says how to install it; file connections
    do not need it. (A ``google`` package without ``auth`` shadows the installed one.)"""
    shadow = tmp_path / "shadow"
    (shadow / "google").mkdir(parents=True)
    (shadow / "google" / "__init__.py").write_text("")
    genv["PYTHONPATH"] = str(shadow)
    google(genv, sts)
    line = one_error(run(["--conn", CONN], genv), 2, NAMED)
    assert "pip install 'credproc[google]'" in line and "google.auth" in line

    token_file = tmp_path / "token"
    token_file.write_text("a-token-from-a-file-0123456789")
    define(genv, sts, assume_role_with_web_identity_token_file=str(token_file))
    ok(run(["--conn", CONN], genv), temporary=True, account=ACCOUNT)


# -- federation "file" ----------------------------------------------------------------------


def test_token_file_is_read_afresh_at_every_fetch(sts, env, run, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("  first-token-0123456789abcdef\n\n")
    define(env, sts, assume_role_with_web_identity_federation="file",
           assume_role_with_web_identity_token_file=str(token_file))
    first = run(["--conn", CONN], env)
    ok(first, temporary=True, account=ACCOUNT)
    assert sent_token(sts) == "first-token-0123456789abcdef", "surrounding whitespace is stripped"

    token_file.write_text("second-token-0123456789abcdef")  # rotated in place
    hit = run(["--conn", CONN], env)
    assert hit.stdout == first.stdout and len(sts_calls(sts)) == 1  # still valid: served from the cache
    refreshed = run(["--conn", CONN, "--refresh"], env)
    ok(refreshed, temporary=True, account=ACCOUNT)
    assert len(sts_calls(sts)) == 2 and sent_token(sts) == "second-token-0123456789abcdef"

    token_file.write_text("third-token-0123456789abcdef\n")
    uncached = run(["--conn", CONN, "--no-cache"], env)
    ok(uncached, temporary=True, account=ACCOUNT)
    assert sent_token(sts) == "third-token-0123456789abcdef"
    for token in ("first-token-0123456789abcdef", "second-token-0123456789abcdef"):
        assert_nowhere(token, env, first, hit, refreshed, uncached)


def test_token_file_from_the_environment_is_the_default(sts, env, run, tmp_path):
    """No federation key means ``file``; without the path key, AWS_WEB_IDENTITY_TOKEN_FILE
    (as EKS sets it for IRSA)."""
    token_file = tmp_path / "eks-token"
    token_file.write_text("eyJhbGciOiJSUzI1NiJ9.irsa-token.signature")
    env["AWS_WEB_IDENTITY_TOKEN_FILE"] = str(token_file)
    define(env, sts)
    result = run(["--conn", CONN], env)
    ok(result, temporary=True, account=ACCOUNT)
    assert sent_token(sts) == "eyJhbGciOiJSUzI1NiJ9.irsa-token.signature"
    assert_nowhere("eyJhbGciOiJSUzI1NiJ9.irsa-token.signature", env, result)


@pytest.mark.parametrize("state", ["missing", "empty", "blank", "directory", "endless", "huge"])
def test_token_file_missing_or_empty(sts, env, run, tmp_path, state):
    token_file = tmp_path / "token"
    if state == "endless":  # read whole, it would never end
        token_file = Path("/dev/zero")
    elif state == "huge":
        token_file.write_text("eyJ" + "A" * (1 << 20))
    elif state == "empty":
        token_file.write_text("")
    elif state == "blank":
        token_file.write_text(" \n\t\n")
    elif state == "directory":
        token_file.mkdir()
    define(env, sts, assume_role_with_web_identity_token_file=str(token_file))
    line = one_error(run(["--conn", CONN], env), 1, NAMED)
    assert str(token_file) in line and "assume_role_with_web_identity_token_file" in line
    expected = {"missing": "does not exist", "empty": "is empty", "blank": "is empty", "directory": "is a directory",
                "endless": "larger than 64 KiB", "huge": "larger than 64 KiB"}
    assert expected[state] in line
    assert sts_calls(sts) == []


def test_token_file_not_configured(sts, env, run):
    env.pop("AWS_WEB_IDENTITY_TOKEN_FILE", None)
    define(env, sts)
    line = one_error(run(["--conn", CONN], env), 2, NAMED)
    assert "assume_role_with_web_identity_token_file" in line and "AWS_WEB_IDENTITY_TOKEN_FILE" in line


def test_unknown_federation(sts, env, run):
    define(env, sts, assume_role_with_web_identity_federation="oidc")
    line = one_error(run(["--conn", CONN], env), 2, NAMED)
    assert "assume_role_with_web_identity_federation 'oidc'" in line and "file, google" in line


def test_reserved_parameters_in_assume_role_kwargs(sts, env, run, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("a-token-from-a-file-0123456789")
    define(env, sts, assume_role_with_web_identity_token_file=str(token_file),
           assume_role_kwargs={"WebIdentityToken": "other"})
    line = one_error(run(["--conn", CONN], env), 2, NAMED)
    assert "WebIdentityToken" in line and sts_calls(sts) == []


def test_sts_refusing_the_token_names_its_source_not_the_token(sts, env, run, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("a-token-sts-will-refuse-0123456789")
    define(env, sts, assume_role_with_web_identity_token_file=str(token_file))
    sts.faults = [(400, "InvalidIdentityToken")]
    result = run(["--conn", CONN], env)
    line = one_error(result, 1, NAMED)
    assert "InvalidIdentityToken" in line and f"token from file {token_file}" in line
    assert_nowhere("a-token-sts-will-refuse-0123456789", env, result)


def test_aws_profile_running_this_connection_is_no_loop(sts, env, run, tmp_path, credproc_bin):
    """``AWS_PROFILE=p`` where p runs ``credproc --conn gweb``: the usual setup. The unsigned
    call resolves no AWS credentials, so it must not be refused as a loop."""
    Path(env["AWS_CONFIG_FILE"]).write_text(
        f"[profile gweb]\ncredential_process = {credproc_bin} --conn {CONN} --profile gweb\nregion = us-east-1\n")
    env["AWS_PROFILE"] = "gweb"
    token_file = tmp_path / "token"
    token_file.write_text("a-token-from-a-file-0123456789")
    define(env, sts, assume_role_with_web_identity_token_file=str(token_file))
    ok(run(["--conn", CONN], env), temporary=True, account=ACCOUNT)
    assert len(sts_calls(sts)) == 1


# -- the hot path never loads the Google stack ---------------------------------------------


def _imported(env, conn_id: str, cwd: Path) -> tuple[subprocess.CompletedProcess, set[str]]:
    code = f"import sys; from credproc.cli import main; sys.exit(main(['--conn', {conn_id!r}]))"
    result = subprocess.run([sys.executable, "-X", "importtime", "-c", code], env=env, cwd=cwd,
                            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    names = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()
             if line.startswith("import time:")}
    return result, names


def test_google_is_imported_only_to_fetch_a_google_token(sts, genv, run, gce_metadata, tmp_path):
    genv.update(gce_metadata.env())
    google(genv, sts)
    miss, names = _imported(genv, CONN, tmp_path)
    ok(subprocess.CompletedProcess([], miss.returncode, miss.stdout, ""), temporary=True, account=ACCOUNT)
    assert "google.auth" in names, "could not see the imports (or the miss did not use google-auth)"
    hit, names = _imported(genv, CONN, tmp_path)
    assert hit.returncode == 0 and hit.stdout == miss.stdout
    assert gce_metadata.count("identity") == 1
    assert not {n for n in names if n.split(".")[0] in ("google", "requests", "boto3", "botocore")}

    token_file = tmp_path / "token"
    token_file.write_text("a-token-from-a-file-0123456789")
    define(genv, sts, assume_role_with_web_identity_token_file=str(token_file))
    miss, names = _imported(genv, CONN, tmp_path)
    assert miss.returncode == 0, miss.stderr[-2000:]
    assert "botocore" in names and not {n for n in names if n.split(".")[0] == "google"}


# -- the example ----------------------------------------------------------------------------


def test_example_connections_work(sts, genv, run, gce_metadata, google_issuer, tmp_path):
    text = EXAMPLE.read_text()
    assert text.startswith("# ")
    tables = tomllib.loads(text)["connections"]
    kinds = {conn_id: table.get("assume_role_with_web_identity_federation", "file")
             for conn_id, table in tables.items()}
    assert sorted(kinds.values()) == ["file", "google"]
    genv.update(gce_metadata.env())
    token_file = tmp_path / "projected-token"
    token_file.write_text("projected-service-account-token-0123456789\n")
    pointed = {}
    for conn_id, table in tables.items():
        assert table["assume_role_method"] == "assume_role_with_web_identity"
        table = {**table, **sts_endpoint(sts.url)}
        if kinds[conn_id] == "file":
            assert table["assume_role_with_web_identity_token_file"].startswith("/var/run/secrets/")
            table["assume_role_with_web_identity_token_file"] = str(token_file)
        pointed[conn_id] = table
    Path(genv["CREDPROC_CONFIG"]).write_text("\n".join(
        f"[connections.{toml_key(conn_id)}]\n{toml_lines(table)}" for conn_id, table in pointed.items()) + "\n")
    for conn_id, table in pointed.items():
        result = run(["--conn", conn_id], genv)
        assert result.returncode == 0, result.stderr
        assert "warning" not in result.stderr, result.stderr
        params = sts_calls(sts)[-1]["params"]
        assert params["RoleArn"] == table["role_arn"]
        for key, value in table.get("assume_role_kwargs", {}).items():
            assert params[key] == str(value)
        if kinds[conn_id] == "google":
            assert gce_metadata.audiences == [table["assume_role_with_web_identity_federation_audience"]]
            assert params["WebIdentityToken"] == google_issuer.issued[-1]
        else:
            assert params["WebIdentityToken"] == "projected-service-account-token-0123456789"
