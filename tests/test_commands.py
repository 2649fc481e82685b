"""The commands for people (list, show, check, configure, env, cache), through the installed
``credproc`` executable against the local STS; the AWS CLI runs the profile ``configure``
wrote. Every command's output is scanned for the secrets the test planted.

The keyring side (``secret``, keyring values in the main job) is in test_keyring.py.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest

from helpers import ACCESS_KEY, ACCOUNT, BIN, ROLE_ARN, ROLE_NAME, SECRET_KEY, assert_no_secret, conn_uri, \
    extra_uri, ok, one_error, sts_at, sts_toml, write_toml

TOKEN = "FwoGZXIvYXdzEXAMPLE-planted-session-token-1234567890"
PROXY_PASSWORD = "proxy-pass-planted-42"
IDP_PASSWORD = "idp-pass-planted-77"
SECRETS = (SECRET_KEY, urllib.parse.quote(SECRET_KEY, safe=""), TOKEN, PROXY_PASSWORD, IDP_PASSWORD)
PLUGINS = Path(__file__).resolve().parent / "plugins"  # the test session factories (test_factory.py)


@pytest.fixture
def prod(sts, env):
    """A role connection "prod" on the local STS, shadowing an Airflow definition of the same id."""
    env["CREDPROC_CONN_PROD"] = conn_uri(sts.url, role_arn=ROLE_ARN)
    env["AIRFLOW_CONN_PROD"] = "aws://"
    return env


# -- --help and usage errors ----------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize("command", [["list"], ["show"], ["check"], ["configure"], ["env"], ["cache"],
                                     ["cache", "list"], ["cache", "clear"], ["secret"], ["secret", "set"],
                                     ["secret", "delete"]])
def test_every_command_has_help_with_examples(run, env, command):
    out = ok(run([*command, "--help"], env), text=True)
    assert out.startswith(f"usage: credproc {' '.join(command)}")
    assert "examples:" in out


@pytest.mark.integration
@pytest.mark.parametrize("args", [["show"], ["configure", "prod"], ["env", "prod", "--format", "tcsh"],
                                  ["cache"], ["list", "--bogus"], ["configure", "prod", "--profile", "p",
                                                                   "--max-attempts", "0"]])
def test_usage_errors_are_one_line_exit_2(run, env, args):
    line = one_error(run(args, env), 2, alone=False)
    assert "see credproc" in line


# -- list ------------------------------------------------------------------------------------


@pytest.mark.integration
def test_list_shows_every_connection_where_and_cache_state(sts, prod, run):
    env = prod
    env["AIRFLOW_CONN_LEGACY_ETL"] = extra_uri({"aws_session_token": TOKEN, "region_name": "us-east-1"})
    env["CREDPROC_CONN_lower"] = "aws://"  # never read: credproc upper-cases ids
    endpoint = sts_toml(sts.url).replace("\n", "\n        ")  # indented as the lines around it
    write_toml(env, f"""\
        [connections.staging]
        login = "{ACCESS_KEY}"
        password = "{SECRET_KEY}"

        [connections."team.dev"]
        role_arn = "{ROLE_ARN}"
        {endpoint}
        config_kwargs = {{ proxies = {{ https = "http://user:{PROXY_PASSWORD}@127.0.0.1:9" }} }}

        [connections.prod]
        role_arn = "arn:aws:iam::{ACCOUNT}:role/shadowed"
        """)
    before = run(["list"], env)
    lines = ok(before, text=True).splitlines()
    rows = {line.split()[0]: line for line in lines[1:] if not line.startswith("note:")}
    assert lines[0].split() == ["ID", "DEFINED", "IN", "METHOD", "CACHE"]
    assert set(rows) == {"aws_default", "legacy_etl", "prod", "staging", "team.dev"}
    assert "CREDPROC_CONN_PROD" in rows["prod"] and "assume_role" in rows["prod"] and rows["prod"].endswith("none")
    assert "AIRFLOW_CONN_LEGACY_ETL" in rows["legacy_etl"] and "static keys" in rows["legacy_etl"]
    assert "[connections.staging]" in rows["staging"] and "static keys" in rows["staging"]
    assert '[connections."team.dev"]' in rows["team.dev"]
    assert "default chain" in rows["aws_default"]
    notes = [line for line in lines if line.startswith("note: prod:")]
    assert any("AIRFLOW_CONN_PROD is not used" in n for n in notes), lines
    assert any("[connections.prod] is not used" in n for n in notes), lines
    assert "CREDPROC_CONN_lower is never read" in before.stderr

    ok(run(["--conn", "prod"], env))  # the main job caches prod's role credentials
    after = run(["list", "--json"], env)
    listed = {row["id"]: row for row in json.loads(ok(after, text=True))}
    assert listed["prod"]["cache"]["state"] == "fresh"
    assert listed["prod"]["defined_in"] == {"kind": "env", "where": "CREDPROC_CONN_PROD", "shown": "CREDPROC_CONN_PROD"}
    assert listed["prod"]["also_defined_in"][0] == "AIRFLOW_CONN_PROD"
    assert listed["staging"]["cache"]["state"] == "none" and listed["staging"]["method"] == "static keys"
    fresh_until = listed["prod"]["cache"]["fresh_until"]
    assert f"fresh until {fresh_until}" in ok(run(["list"], env), text=True)
    assert sts.count("AssumeRole") == 1  # list fetched nothing
    assert_no_secret(before, after, secrets=SECRETS)


@pytest.mark.integration
def test_list_survives_a_broken_definition(sts, prod, run):
    env = prod
    env["CREDPROC_CONN_BROKEN"] = '{"conn_type": "aws", "password": "' + SECRET_KEY + '", '  # not JSON
    result = run(["list"], env)
    rows = {line.split()[0]: line for line in ok(result, text=True).splitlines()[1:]}
    assert "invalid" in rows["broken"] and "assume_role" in rows["prod"]
    assert_no_secret(result, secrets=SECRETS)


# An address-space cap for a run that may read an endless file into memory: without it, a
# credproc that reads /dev/zero unbounded would take all the machine's memory (and other
# people's processes with it) before the timeout. Running `list` needs far less than this.
MEMORY_CAP = ["/bin/sh", "-c", 'ulimit -v 1048576 && exec "$0" "$@"']


@pytest.mark.integration
def test_list_ends_on_an_endless_config_file_and_names_it(env, credproc_bin):
    """CREDPROC_CONFIG=/dev/zero: the main job reads at most 1 MiB of it and refuses it as
    larger than that; `list` reads the same file and must end as promptly, saying which file
    it could not use (a warning, listing the rest, or an error), not read on forever."""
    env["CREDPROC_CONFIG"] = "/dev/zero"
    try:
        result = subprocess.run([*MEMORY_CAP, str(credproc_bin), "list"], env=env, capture_output=True, text=True,
                                timeout=20, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        pytest.fail("credproc list was still reading /dev/zero after 20 s")
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert result.returncode in (0, 2), f"exit {result.returncode}: {result.stderr}"
    if result.returncode == 2:
        assert len(lines) == 1 and lines[0].startswith("credproc: error: "), result.stderr
        assert "/dev/zero" in lines[0], lines[0]
    else:
        named = [line for line in lines if "/dev/zero" in line]
        assert len(named) == 1 and named[0].startswith("credproc: warning: "), result.stderr
        assert "larger than" in named[0] or "too large" in named[0], named[0]


# -- show ------------------------------------------------------------------------------------


@pytest.mark.integration
def test_show_resolves_deprecations_and_masks_every_secret(sts, env, run):
    env["CREDPROC_CONN_LEGACY"] = extra_uri({
        "aws_account_id": ACCOUNT, "aws_iam_role": ROLE_NAME, "external_id": "x-42",
        "aws_session_token": TOKEN, **sts_at(sts.url),
        "endpoint_url": f"https://user:{PROXY_PASSWORD}@s3.example",  # the other services': not STS's
        "config_kwargs": {"proxies": {"https": f"http://user:{PROXY_PASSWORD}@127.0.0.1:9"}},
        "assume_role_with_saml": {"idp_url": "https://idp.example/", "idp_request_kwargs": {
            "auth": {"password": IDP_PASSWORD}}},
    })
    text = run(["show", "legacy"], env)
    out = ok(text, text=True)
    assert f"role_arn            {ROLE_ARN}" in out
    assert '"ExternalId": "x-42"' in out and '"RoleSessionName": "credproc-legacy"' in out
    assert "**** (definition: password)" in out and "**** (definition: aws_session_token)" in out
    assert ACCESS_KEY[-4:] in out and ACCESS_KEY not in out
    assert "deprecated" in text.stderr  # the same warnings as the main job prints
    assert f"sts endpoint        {sts.url} (service_config.sts.endpoint_url)\n" in out
    assert ("endpoint_url        https://user:****@s3.example (not used for STS: Airflow uses it for other "
            "services)\n") in out
    as_json = run(["show", "legacy", "--json"], env)
    info = json.loads(ok(as_json, text=True))
    assert info["role_arn"] == ROLE_ARN and info["method"] == "assume_role"
    assert info["sts_endpoint"] == {"url": sts.url, "from": "service_config.sts.endpoint_url"}
    assert info["endpoint_url"] == "https://user:****@s3.example" and info["host"] is None
    assert info["config_kwargs"]["proxies"]["https"] == "http://user:****@127.0.0.1:9"
    assert info["other_extras"]["assume_role_with_saml"]["idp_request_kwargs"]["auth"]["password"] == "****"
    assert_no_secret(text, as_json, secrets=SECRETS)


@pytest.mark.integration
def test_show_masks_a_session_factorys_own_secrets(env, run, tmp_path):
    """A custom session factory's settings (the seed's ``federation`` table) are extras credproc
    cannot know the meaning of: `show` lists them under other extras, but a value such as an
    API key must not be printed whatever its key is called; the key's name still is."""
    api_key = f"fed-api-{secrets.token_hex(24)}"  # random: found only if credproc printed it
    env["PYTHONPATH"] = str(PLUGINS)
    write_toml(env, f"""\
        [connections.fed]
        session_factory = "seed_factory.MyCustomSessionFactory"
        region_name = "us-east-1"

        [connections.fed.federation]
        username = "alice"
        counter_file = "{tmp_path / 'federation-calls'}"
        api_key = "{api_key}"
        """)
    text = run(["show", "fed"], env)
    as_json = run(["show", "fed", "--json"], env)
    for result in (text, as_json):
        assert "api_key" in ok(result, text=True)
        # the value, and a piece of it (a value cut short or half masked is a leak too)
        assert_no_secret(result, secrets=(api_key, api_key[8:24]))


@pytest.mark.integration
def test_show_and_list_of_undefined_or_broken_connections(env, run):
    missing = run(["show", "nope"], env)
    assert "CREDPROC_CONN_NOPE" in one_error(missing, 2, alone=False)
    env["CREDPROC_CONN_BAD"] = f"aws://{ACCESS_KEY}:{urllib.parse.quote(SECRET_KEY, safe='')}@/?verify=/no/such/ca.pem"
    bad = run(["show", "bad"], env)
    assert "verify" in one_error(bad, 2, alone=False)
    assert_no_secret(missing, bad, secrets=SECRETS)


# -- check -----------------------------------------------------------------------------------


@pytest.mark.integration
def test_check_calls_get_caller_identity_with_the_credentials(sts, prod, run):
    env = prod
    first = run(["check", "prod"], env)
    out = ok(first, text=True)
    fields = dict(line.split(None, 1) for line in out.replace("access key id", "access_key_id")
                  .replace("user id", "user_id").splitlines())
    assert fields["account"] == ACCOUNT
    assert fields["arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/{ROLE_NAME}/credproc-prod"
    assert fields["method"] == f"assume_role {ROLE_ARN}"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \(in (59m|1h00m)\)", fields["expires"]), fields
    assert fields["source"] == "fetched now and cached"
    assert (sts.count("AssumeRole"), sts.count("GetCallerIdentity")) == (1, 1)
    # GetCallerIdentity was signed with the role's credentials, not the connection's keys
    signed = [r for r in sts.requests if r["action"] == "GetCallerIdentity"][0]
    assert ACCESS_KEY not in signed["headers"]["Authorization"]
    assert "X-Amz-Security-Token" in signed["headers"]

    again = run(["check", "prod"], env)
    assert "source         the cache" in ok(again, text=True)
    assert (sts.count("AssumeRole"), sts.count("GetCallerIdentity")) == (1, 2)
    assert_no_secret(first, again, secrets=SECRETS)


@pytest.mark.integration
def test_check_long_term_keys(sts, env, run):
    env["CREDPROC_CONN_KEYS"] = conn_uri(sts.url)
    out = ok(run(["check", "keys"], env), text=True)
    assert "never: long-term keys" in out and "static keys" in out


@pytest.mark.integration
def test_check_fails_with_exit_1_when_sts_refuses(sts, prod, run):
    env = prod
    sts.faults.append((403, "AccessDenied"))
    refused = run(["check", "prod"], env)
    line = one_error(refused, 1, alone=False)
    assert "AssumeRole" in line and "AccessDenied" in line and "'prod'" in line
    # credentials obtained, but GetCallerIdentity refuses them
    ok(run(["--conn", "prod"], env))
    sts.faults.append((403, "InvalidClientTokenId"))
    rejected = run(["check", "prod"], env)
    line = one_error(rejected, 1, alone=False)
    assert "GetCallerIdentity" in line and "InvalidClientTokenId" in line
    assert_no_secret(refused, rejected, secrets=SECRETS)


@pytest.mark.integration
def test_check_of_a_bad_definition_is_exit_2(env, run):
    env["CREDPROC_CONN_ODD"] = "aws://x/?role_arn=not-an-arn"
    assert "role_arn" in one_error(run(["check", "odd"], env), 2, alone=False)


# -- env -------------------------------------------------------------------------------------


@pytest.mark.integration
def test_env_sh_assignments_evaluate_to_the_credentials(sts, prod, run):
    env = prod
    printed = ok(run(["--conn", "prod"], env))
    script = 'eval "$(credproc env prod)" && printf "%s\\n" "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" ' \
             '"$AWS_SESSION_TOKEN" "$AWS_CREDENTIAL_EXPIRATION"'
    shell = subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True, timeout=60,
                           stdin=subprocess.DEVNULL)
    assert shell.returncode == 0, shell.stderr
    assert shell.stdout.splitlines() == [printed["AccessKeyId"], printed["SecretAccessKey"],
                                         printed["SessionToken"], printed["Expiration"]]
    assert sts.count("AssumeRole") == 1  # served from the cache
    as_json = json.loads(ok(run(["env", "prod", "--format", "json"], env), text=True))
    assert as_json == {"AWS_ACCESS_KEY_ID": printed["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": printed["SecretAccessKey"],
                       "AWS_SESSION_TOKEN": printed["SessionToken"],
                       "AWS_CREDENTIAL_EXPIRATION": printed["Expiration"]}


AWKWARD = "it's a \"tricky\" $HOME `id` \\ secret"


@pytest.mark.integration
def test_env_quotes_awkward_values_and_unsets_the_token_of_long_term_keys(sts, env, run):
    env["CREDPROC_CONN_KEYS"] = conn_uri(sts.url, password=AWKWARD)
    script = ('export AWS_SESSION_TOKEN=stale AWS_CREDENTIAL_EXPIRATION=stale; eval "$(credproc env keys)" && '
              'printf "%s|%s|%s" "$AWS_SECRET_ACCESS_KEY" "${AWS_SESSION_TOKEN-unset}" '
              '"${AWS_CREDENTIAL_EXPIRATION-unset}"')
    shell = subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True, timeout=60,
                           stdin=subprocess.DEVNULL)
    assert shell.returncode == 0, shell.stderr
    assert shell.stdout == f"{AWKWARD}|unset|unset"
    fish = ok(run(["env", "keys", "--format", "fish"], env), text=True)
    assert "set -gx AWS_SECRET_ACCESS_KEY 'it\\'s a \"tricky\" $HOME `id` \\\\ secret';" in fish
    assert "set -e AWS_SESSION_TOKEN;" in fish
    powershell = ok(run(["env", "keys", "--format", "powershell"], env), text=True)
    assert "$Env:AWS_SECRET_ACCESS_KEY = 'it''s a \"tricky\" $HOME `id` \\ secret'" in powershell
    assert "Remove-Item Env:AWS_SESSION_TOKEN -ErrorAction SilentlyContinue" in powershell


@pytest.mark.integration
def test_env_fish_assignments_evaluate_in_fish(sts, env, run):
    if shutil.which("fish") is None:
        pytest.skip("fish is not installed (scripts/system-deps installs it)")
    env["CREDPROC_CONN_KEYS"] = conn_uri(sts.url, password=AWKWARD)
    shell = subprocess.run(["fish", "-c", "credproc env keys --format fish | source; printf %s $AWS_SECRET_ACCESS_KEY"],
                           env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert shell.stdout == AWKWARD, shell.stderr


@pytest.mark.integration
def test_env_errors_print_no_secret(sts, prod, run):
    sts.faults.append((403, "AccessDenied"))
    result = run(["env", "prod"], prod)
    assert "AccessDenied" in one_error(result, 1, alone=False)
    assert result.stdout == ""
    assert_no_secret(result, secrets=SECRETS)


# -- cache -----------------------------------------------------------------------------------


@pytest.mark.integration
def test_cache_list_and_clear(sts, prod, run):
    env = prod
    env["CREDPROC_CONN_OTHER"] = conn_uri(sts.url, role_arn=ROLE_ARN)
    assert "no cached credentials" in ok(run(["cache", "list"], env), text=True)
    ok(run(["--conn", "prod"], env))
    ok(run(["--conn", "other"], env))
    # another definition of the same id (another region), another entry, not the current one
    ok(run(["--conn", "prod"], {**env, "CREDPROC_CONN_PROD": conn_uri(sts.url, role_arn=ROLE_ARN,
                                                                      region_name="eu-north-1")}))
    listed = run(["cache", "list", "--json"], env)
    rows = json.loads(ok(listed, text=True))
    assert sorted((r["id"], r["state"], r["current"]) for r in rows) == [
        ("other", "fresh", True), ("prod", "fresh", False), ("prod", "fresh", True)]
    table = ok(run(["cache", "list"], env), text=True).splitlines()
    assert table[0].split() == ["ID", "STATE", "EXPIRES", "CURRENT", "FILE"] and len(table) == 4

    assert "removed 2 cache entries of connection 'prod'" in ok(run(["cache", "clear", "prod"], env), text=True)
    assert [r["id"] for r in json.loads(ok(run(["cache", "list", "--json"], env), text=True))] == ["other"]
    ok(run(["--conn", "prod"], env))
    assert sts.count("AssumeRole") == 4  # cleared: fetched anew
    assert "removed 2 cache entries of all connections" in ok(run(["cache", "clear"], env), text=True)
    assert json.loads(ok(run(["cache", "list", "--json"], env), text=True)) == []
    assert_no_secret(listed, secrets=SECRETS)


@pytest.mark.integration
def test_list_and_cache_list_find_the_entry_the_main_job_reads(sts, prod, run, tmp_path):
    """The cache key as SDKs run credproc, with a session factory named by the variable."""
    env = prod
    (tmp_path / "plain_factory.py").write_text("from credproc import BaseSessionFactory\n\n\n"
                                               "class Plain(BaseSessionFactory):\n    pass\n")
    env["PYTHONPATH"] = str(tmp_path)
    env["CREDPROC_SESSION_FACTORY"] = "plain_factory.Plain"
    ok(run(["--conn", "prod"], env))
    listed = {row["id"]: row for row in json.loads(ok(run(["list", "--json"], env), text=True))}
    assert listed["prod"]["cache"]["state"] == "fresh"
    assert listed["prod"]["method"] == "session factory plain_factory.Plain"
    cached = json.loads(ok(run(["cache", "list", "--json"], env), text=True))
    assert [(r["id"], r["current"]) for r in cached] == [("prod", True)]
    assert "source         the cache" in ok(run(["check", "prod"], env), text=True)
    assert sts.count("AssumeRole") == 1


@pytest.mark.integration
def test_cache_list_marks_a_corrupt_entry_invalid(sts, prod, run):
    env = prod
    ok(run(["--conn", "prod"], env))
    entry = next(Path(env["CREDPROC_CACHE_DIR"]).glob("prod--*.entry"))
    entry.write_bytes(entry.read_bytes().replace(b'"Version"', b'"Versi0n"'))
    rows = json.loads(ok(run(["cache", "list", "--json"], env), text=True))
    assert [(r["id"], r["state"]) for r in rows] == [("prod", "invalid")]
    assert "removed 1 cache entry" in ok(run(["cache", "clear", "prod"], env), text=True)


# -- configure -------------------------------------------------------------------------------

# A config file as people keep them: comments, blank lines, odd spacing, nested values, the
# profile to update in the middle, no newline at the end.
CONFIG_BEFORE = (
    "# my AWS setup -- do not lose these notes\n"
    "[default]\n"
    "region = eu-west-1\n"
    "output=json\n"
    "\n"
    "; the production profile\n"
    "[profile prod]\n"
    "region = us-east-1\n"
    "  # a comment inside the section\n"
    "s3 =\n"
    "    max_concurrent_requests = 20\n"
    "    multipart_threshold = 64MB\n"
    "retry_mode=legacy\n"
    "\n"
    "# about the next one\n"
    "[profile sso-dev]\n"
    "sso_session = corp\n"
    "sso_account_id = 111122223333\n"
    "\n"
    "[sso-session corp]\n"
    "sso_start_url = https://corp.awsapps.com/start\n"
    "[services local]\n"
    "sts =\n"
    "  endpoint_url = http://127.0.0.1:1\n"
    "[profile last]\n"
    "region = ap-south-1"
)


def expected_exe() -> str:
    """What configure writes before the arguments: the venv's python (as it is named, not
    resolved) running credproc's launcher from the installed package."""
    import sysconfig

    launcher = Path(sysconfig.get_paths()["purelib"]) / "credproc" / "_launch.py"
    return f"{BIN / 'python'} -I -S {launcher}"


def configure(run, env, *args: str) -> subprocess.CompletedProcess:
    return run(["configure", *args], env)


@pytest.mark.integration
def test_configure_updates_one_section_and_keeps_every_other_byte(sts, prod, run):
    env = prod
    config = Path(env["AWS_CONFIG_FILE"])
    config.write_text(CONFIG_BEFORE, encoding="utf-8")
    config.chmod(0o640)
    first = configure(run, env, "prod", "--profile", "prod", "--retry-mode", "standard", "--max-attempts", "10")
    assert "wrote [profile prod]" in ok(first, text=True)
    after = config.read_text(encoding="utf-8")
    command = f"{expected_exe()} --conn prod --profile prod"
    expected = CONFIG_BEFORE.replace(
        "retry_mode=legacy\n",
        f"retry_mode=standard\ncredential_process = {command}\nmax_attempts = 10\n")
    assert after == expected
    assert Path(str(config) + ".credproc-backup").read_text(encoding="utf-8") == CONFIG_BEFORE
    assert config.stat().st_mode & 0o777 == 0o640

    # idempotent: nothing written, the backup untouched
    mtime = config.stat().st_mtime_ns
    os.utime(str(config) + ".credproc-backup", ns=(1, 1))
    again = configure(run, env, "prod", "--profile", "prod", "--retry-mode", "standard", "--max-attempts", "10")
    assert "already up to date" in ok(again, text=True)
    assert config.stat().st_mtime_ns == mtime and config.read_text(encoding="utf-8") == expected
    assert Path(str(config) + ".credproc-backup").stat().st_mtime_ns == 1

    # a new profile is appended; everything before it stays as it was
    ok(configure(run, env, "prod", "--profile", "ci", "--region", "us-east-1"), text=True)
    appended = config.read_text(encoding="utf-8")
    assert appended == expected + (f"\n\n[profile ci]\ncredential_process = {expected_exe()} --conn prod --profile ci\n"
                                   "region = us-east-1\n")
    assert Path(str(config) + ".credproc-backup").read_text(encoding="utf-8") == expected


@pytest.mark.integration
def test_configure_keeps_crlf_and_creates_a_missing_file(sts, prod, run, tmp_path):
    env = prod
    config = Path(env["AWS_CONFIG_FILE"])
    config.write_bytes(b"[profile prod]\r\nregion = us-east-1\r\n\r\n[profile x]\r\noutput = json\r\n")
    ok(configure(run, env, "prod", "--profile", "prod"), text=True)
    assert config.read_bytes() == (b"[profile prod]\r\nregion = us-east-1\r\ncredential_process = "
                                   + f"{expected_exe()} --conn prod --profile prod".encode()
                                   + b"\r\n\r\n[profile x]\r\noutput = json\r\n")
    env["AWS_CONFIG_FILE"] = str(tmp_path / "new" / "dir" / "config")
    out = ok(configure(run, env, "prod", "--profile", "default"), text=True)
    assert "previous file" not in out
    assert Path(env["AWS_CONFIG_FILE"]).read_text() == f"[default]\ncredential_process = {expected_exe()} --conn prod --profile default\n"
    assert not Path(env["AWS_CONFIG_FILE"] + ".credproc-backup").exists()


@pytest.mark.integration
def test_configure_refuses_profiles_with_static_keys_and_says_where(sts, prod, run):
    env = prod
    config = Path(env["AWS_CONFIG_FILE"])
    credentials = Path(env["AWS_SHARED_CREDENTIALS_FILE"])
    config.write_text(CONFIG_BEFORE, encoding="utf-8")
    credentials.write_text(f"[other]\naws_access_key_id = X\n\n[prod]\naws_access_key_id = {ACCESS_KEY}\n"
                           f"aws_secret_access_key = {SECRET_KEY}\n", encoding="utf-8")
    refused = configure(run, env, "prod", "--profile", "prod")
    line = one_error(refused, 2, alone=False)
    assert f"aws_access_key_id at {credentials} line 5 ([prod])" in line
    assert f"aws_secret_access_key at {credentials} line 6 ([prod])" in line
    assert config.read_text(encoding="utf-8") == CONFIG_BEFORE
    assert not Path(str(config) + ".credproc-backup").exists()

    credentials.unlink()
    config.write_text(CONFIG_BEFORE.replace("[profile last]\n", f"[profile last]\naws_secret_access_key = {SECRET_KEY}\n"))
    line = one_error(configure(run, env, "prod", "--profile", "last"), 2, alone=False)
    assert f"aws_secret_access_key at {config} line 26 ([profile last])" in line
    line = one_error(configure(run, env, "prod", "--profile", "sso-dev"), 2, alone=False)
    assert "sso_session at" in line and "sso_account_id at" in line
    config.write_text("[profile twice]\nregion = a\n[profile twice]\nregion = b\n")
    assert "2 sections" in one_error(configure(run, env, "prod", "--profile", "twice"), 2, alone=False)
    assert_no_secret(refused, secrets=SECRETS)


@pytest.mark.integration
def test_configure_then_the_aws_cli_works_through_the_profile(sts, prod, run):
    env = prod
    config = Path(env["AWS_CONFIG_FILE"])
    config.write_text(CONFIG_BEFORE, encoding="utf-8")
    ok(configure(run, env, "prod", "--profile", "work", "--region", "us-east-1", "--retry-mode", "standard",
                 "--max-attempts", "3"), text=True)
    check = run(["check", "prod", "--profile", "work"], env)
    assert f"assumed-role/{ROLE_NAME}/credproc-prod" in ok(check, text=True)
    cli = subprocess.run([str(BIN / "aws"), "sts", "get-caller-identity", "--profile", "work", "--endpoint-url",
                          sts.url, "--output", "json"], env=env, capture_output=True, text=True, timeout=120,
                         stdin=subprocess.DEVNULL)
    assert cli.returncode == 0, cli.stderr
    identity = json.loads(cli.stdout)
    assert identity["Account"] == ACCOUNT
    assert identity["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/{ROLE_NAME}/credproc-prod"
    assert sts.count("AssumeRole") == 1  # the CLI's credproc run was a cache hit after `check`


@pytest.mark.integration
def test_configure_quotes_and_validates_names(sts, env, run):
    env["CREDPROC_CONN_MY_CONN_PROD"] = conn_uri(sts.url, role_arn=ROLE_ARN)
    ok(configure(run, env, "my conn.prod", "--profile", "p"), text=True)
    text = Path(env["AWS_CONFIG_FILE"]).read_text()
    assert f"credential_process = {expected_exe()} --conn 'my conn.prod' --profile p\n" in text
    cli = subprocess.run([str(BIN / "aws"), "sts", "get-caller-identity", "--profile", "p", "--endpoint-url",
                          sts.url, "--region", "us-east-1"], env=env, capture_output=True, text=True, timeout=120,
                         stdin=subprocess.DEVNULL)
    assert cli.returncode == 0, cli.stderr
    for bad in ("has space", "[x]", "-x", ""):
        one_error(configure(run, env, "prod", "--profile", bad), 2, alone=False)


@pytest.mark.integration
def test_configure_writes_the_same_line_from_python_dash_m(sts, prod, run, tmp_path):
    env = prod
    # `python -m credproc configure` writes the same line: the venv's python and its launcher
    result = subprocess.run([sys.executable, "-m", "credproc", "configure", "prod", "--profile", "viam"], env=env,
                            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (f"credential_process = {expected_exe()} --conn prod --profile viam"
            in Path(env["AWS_CONFIG_FILE"]).read_text())


def test_the_launcher_command_names_the_venv_python_unresolved_and_refuses_shims(tmp_path):
    from credproc.commands.configure import launcher_command
    from credproc.errors import ConfigError

    package = tmp_path / "site-packages" / "credproc"
    package.mkdir(parents=True)
    (package / "_launch.py").write_text("")
    venv_python = BIN / "python"
    assert venv_python.is_symlink(), "the test needs a venv whose python is a link to the base one"
    assert launcher_command(str(venv_python), str(package)) == [str(venv_python), "-I", "-S",
                                                                str(package / "_launch.py")]
    shims = tmp_path / "shims"
    shims.mkdir()
    (shims / "python3").symlink_to(os.path.realpath(venv_python))
    for python, words in ((str(shims / "python3"), "shim"), ("python3", "which Python"),
                          (str(tmp_path / "missing"), "which Python"), (str(tmp_path), "which Python")):
        with pytest.raises(ConfigError, match=words):
            launcher_command(python, str(package))
    with pytest.raises(ConfigError, match="launcher"):
        launcher_command(str(venv_python), str(tmp_path))


# -- the INI editor, as pure logic --------------------------------------------------------------


def test_ini_editor_replaces_values_in_place_and_appends_keys():
    from credproc.commands.awsconfig import IniText, profile_of_config_section

    text = "[profile a]\nregion :  eu-west-1  \nother = 1\n# tail\n\n[profile  b ]\nx=1"
    ini = IniText(text)
    assert [profile_of_config_section(s.name) for s in ini.sections] == ["a", "b"]
    ini.set_options(ini.sections[0], "profile a", {"region": "us-east-1", "max_attempts": "3"})
    assert ini.text() == "[profile a]\nregion :  us-east-1\nother = 1\nmax_attempts = 3\n# tail\n\n[profile  b ]\nx=1"
    ini.set_options(ini.sections[1], "profile b", {"y": "2"})
    assert ini.text().endswith("[profile  b ]\nx=1\ny = 2\n")
    assert profile_of_config_section("profilex") is None and profile_of_config_section("sso-session s") is None


def test_ini_editor_appends_to_text_without_final_newline():
    from credproc.commands.awsconfig import IniText

    ini = IniText("[default]\nregion = x")
    ini.set_options(None, "profile p", {"k": "v"})
    assert ini.text() == "[default]\nregion = x\n\n[profile p]\nk = v\n"
    empty = IniText("")
    empty.set_options(None, "profile p", {"k": "v"})
    assert empty.text() == "[profile p]\nk = v\n"


def _ini_files():
    from hypothesis import strategies as st

    names = st.sampled_from(["default", "profile a", "profile b", "profile  b", "sso-session s", "services x"])
    line = st.one_of(
        st.sampled_from(["\n", "# note\n", "; note\n", "  # indented note\n"]),
        st.tuples(st.sampled_from(["region", "Region", "output", "retry_mode", "max_attempts", "s3"]),
                  st.sampled_from([" = ", "=", ": "]), st.sampled_from(["x", "eu-west-1", ""]))
        .map(lambda t: f"{t[0]}{t[1]}{t[2]}\n"),
        st.just("    nested = 1\n"),
    )
    section = st.tuples(names, st.lists(line, max_size=6)).map(lambda t: f"[{t[0]}]\n" + "".join(t[1]))
    return st.tuples(st.lists(section, max_size=5).map("".join), st.sampled_from(["", "\n"]))


def test_ini_editor_changes_only_its_own_section_property():
    from hypothesis import given, settings

    from credproc.commands.awsconfig import IniText, profile_of_config_section

    @settings(max_examples=150, deadline=None)
    @given(_ini_files())
    def check(case):
        text, tail = case
        text = text.rstrip("\n") + tail if text else text
        ini = IniText(text)
        targets = ini.find(lambda name: profile_of_config_section(name) == "b")
        target = targets[0] if targets else None
        before = ini.lines[:target.header] if target else list(ini.lines)
        after = ini.lines[target.end:] if target else []
        kept = [line for i, line in enumerate(ini.lines[target.header:target.end]) if
                not any(o.start <= target.header + i < o.end and o.key in ("region", "max_attempts")
                        for o in target.options)] if target else []
        ini.set_options(target, "profile b", {"region": "us-east-1", "max_attempts": "3"})
        new = IniText(ini.text())
        assert ini.text().startswith("".join(before).rstrip("\n") if not target else "".join(before))
        if target:
            assert ini.text().endswith("".join(after)) or not after
            section = [s for s in new.sections if s.name == target.name][0]
            body = new.lines[section.header:section.end]
            assert _subsequence([k.rstrip("\n") for k in kept], [b.rstrip("\n") for b in body])  # order kept
        mine = [s for s in new.sections if profile_of_config_section(s.name) == "b"][0]
        values = {o.key: new.lines[o.start] for o in mine.options}
        assert values["region"].rstrip("\r\n").endswith("us-east-1")
        assert values["max_attempts"].rstrip("\r\n").endswith("3")
        again = IniText(ini.text())
        again.set_options(mine, "profile b", {"region": "us-east-1", "max_attempts": "3"})
        assert again.text() == ini.text()  # idempotent

    check()


def _subsequence(small: list, big: list) -> bool:
    it = iter(big)
    return all(any(item == other for other in it) for item in small)
