"""credproc in front of another helper (issue 17, item 4; aws-cli#5585).

A connection whose ``profile_name`` names an AWS profile that gets its credentials another
way - its own ``credential_process``, or ``role_arn`` + ``source_profile`` - takes them from
boto3's chain, and caches them like any other: however many SDK processes start at once, the
other helper runs once (one AssumeRole at the local STS), and later runs are cache hits.

The other helper here is real: a script that assumes a role at the local STS with boto3 and
prints what it got as credential_process JSON, writing one line to a log per run.
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest

from helpers import ACCESS_KEY, ACCOUNT, CREDPROC, ROLE_ARN, SECRET_KEY, ok, one_error, \
    run_together, runs, signing_key, sts_toml, toml_string, write_toml

pytestmark = pytest.mark.integration

CONN = "front"
PROCESSES = 16
OTHER_SESSION = "the-other-helper"


def write_aws_config(env: dict, text: str) -> None:
    Path(env["AWS_CONFIG_FILE"]).write_text(textwrap.dedent(text), encoding="utf-8")


def front_connection(env: dict, sts, *, role: bool = False) -> None:
    """credproc's connection: no keys of its own, the profile ``other`` for them."""
    write_toml(env, f"""\
[connections.{CONN}]
profile_name = "other"
{sts_toml(sts.url)}
""" + (f"role_arn = {toml_string(ROLE_ARN)}\n" if role else ""))


@pytest.fixture
def other_helper(tmp_path, sts) -> tuple[Path, Path]:
    """(the other helper, its log): a credential_process that assumes ROLE_ARN at the local
    STS with the tests' key pair, one log line per run."""
    log = tmp_path / "other-helper.log"
    script = tmp_path / "other-helper"
    script.write_text(textwrap.dedent(f"""\
        #!{sys.executable}
        import json, os
        with open({str(log)!r}, "a") as f:
            f.write(f"{{os.getpid()}}\\n")
        import boto3
        sts = boto3.client("sts", region_name="us-east-1", endpoint_url={sts.url!r},
                           aws_access_key_id={ACCESS_KEY!r}, aws_secret_access_key={SECRET_KEY!r})
        got = sts.assume_role(RoleArn={ROLE_ARN!r}, RoleSessionName={OTHER_SESSION!r},
                              DurationSeconds=3600)["Credentials"]
        printed = json.dumps({{"Version": 1, "AccessKeyId": got["AccessKeyId"],
                              "SecretAccessKey": got["SecretAccessKey"], "SessionToken": got["SessionToken"],
                              "Expiration": got["Expiration"].strftime("%Y-%m-%dT%H:%M:%SZ")}})
        with open({str(log)!r} + ".printed", "a") as f:
            f.write(printed + "\\n")
        print(printed)
        """))
    script.chmod(0o755)
    return script, log


def stampede(env: dict, more: tuple[str, ...] | list[str] = (), count: int = PROCESSES) -> dict:
    """``count`` credproc processes for the connection at once on a cold cache: every one
    succeeds and prints the same credentials, which are returned."""
    results = run_together(CREDPROC, ["--conn", CONN, *more], env, count)
    failures = [(r.returncode, r.stderr) for r in results if r.returncode != 0]
    assert failures == [], failures
    assert len({r.stdout for r in results}) == 1, "the processes printed different credentials"
    assert "waited" not in "".join(r.stderr for r in results)  # nobody gave up on the lock
    return ok(results[0], temporary=True)


@pytest.mark.parametrize("role", [False, True], ids=["its-credentials-are-the-output", "they-sign-a-role"])
def test_the_other_credential_process_runs_once(sts, env, run, other_helper, role):
    script, log = other_helper
    # The README's recipe: SDKs use profile "app", which runs credproc; credproc's connection
    # takes its credentials from profile "other", which runs the other helper.
    write_aws_config(env, f"""\
        [profile app]
        credential_process = {CREDPROC} --conn {CONN} --profile app
        region = us-east-1

        [profile other]
        credential_process = {script}
        """)
    env["AWS_PROFILE"] = "app"  # as the SDK running credproc passes it down
    front_connection(env, sts, role=role)
    sts.delay["AssumeRole"] = 1  # the other helper is slow: all 16 are waiting while it runs

    out = stampede(env, ["--profile", "app"])
    assert runs(log) == 1, f"the other helper ran {runs(log)} times"
    sessions = [r["params"]["RoleSessionName"] for r in sts.requests if r["action"] == "AssumeRole"]
    if role:
        # The other helper's session signs credproc's own AssumeRole; the output is the role's.
        assert sessions == [OTHER_SESSION, f"credproc-{CONN}"], sessions
        assert signing_key(sts.requests[-1]).startswith("ASIA")
    else:
        # What the other helper printed is the output, with its Expiration.
        assert sessions == [OTHER_SESSION], sessions
        printed = json.loads(Path(f"{log}.printed").read_text())
        assert {k: v for k, v in out.items() if k != "AccountId"} == printed
    assert out["AccessKeyId"] != ACCESS_KEY

    sts.delay.clear()
    again = run(["--conn", CONN, "--profile", "app"], env)
    assert ok(again) == out and again.stderr == ""
    assert runs(log) == 1, "a later run ran the other helper again: no cache hit"
    assert sts.count("AssumeRole") == len(sessions)


def test_an_assume_role_profile_assumes_once(sts, env, run):
    write_aws_config(env, f"""\
        [profile other]
        role_arn = {ROLE_ARN}
        role_session_name = {OTHER_SESSION}
        source_profile = base
        region = us-east-1

        [profile base]
        aws_access_key_id = {ACCESS_KEY}
        aws_secret_access_key = {SECRET_KEY}
        """)
    front_connection(env, sts)
    env["AWS_ENDPOINT_URL_STS"] = sts.url  # where botocore's assume-role provider calls STS
    sts.delay["AssumeRole"] = 1

    out = stampede(env)
    assert sts.count("AssumeRole") == 1, sts.count("AssumeRole")
    request = sts.requests[0]
    assert request["params"]["RoleSessionName"] == OTHER_SESSION
    assert signing_key(request) == ACCESS_KEY  # the source profile's keys signed it
    assert out["AccessKeyId"] != ACCESS_KEY and out.get("AccountId") in (None, ACCOUNT)

    sts.delay.clear()
    again = run(["--conn", CONN], env)
    assert ok(again) == out and again.stderr == ""
    assert sts.count("AssumeRole") == 1


def test_a_profile_that_runs_credproc_for_the_same_connection_is_a_loop(sts, env, run):
    write_aws_config(env, f"""\
        [profile other]
        credential_process = {CREDPROC} --conn {CONN}
        """)
    front_connection(env, sts)
    one_error(run(["--conn", CONN], env, timeout=30), 2, repr(CONN), "leads back to itself")
    assert sts.requests == []
