"""IAM Identity Center (SSO) profiles behind credproc (issue 17, item 3).

A connection whose ``profile_name`` is an SSO profile - the ``sso_session`` form and the
legacy ``sso_start_url`` one - gets its credentials from botocore's own SSO provider: the
token that ``aws sso login`` left in ``~/.aws/sso/cache`` (here written by
``sso.login``), renewed at the OIDC endpoint when it nears its end and can be, and the
portal's GetRoleCredentials. The portal and the OIDC endpoint are the loopback server of
``servers/sso.py``, named by the profile's ``services`` section. credproc caches the role's
credentials like any other: many processes, one portal call.

When the session is over (no token, an expired one, one the portal refuses, one that cannot
be renewed), the run fails with one line that names the profile to log in with; credproc
never starts a browser (``BROWSER`` is a script that would leave a mark).
"""

from __future__ import annotations

import json
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

from helpers import ACCOUNT, BIN, CREDPROC, ROLE_ARN, counting_wrapper, free_port, ok, one_error, runs, run_at, run_together, signing_key, sts_at, \
    stderr_verdict, toml_value, write_toml

pytestmark = pytest.mark.integration

CONN = "dev"
PROFILE = "dev"  # the SSO profile credproc's connection names
ROLE = "Developer"
START_URL = "https://credproc-test.awsapps.com/start"
SSO_REGION = "eu-west-1"
SESSION = "corp"
PROCESSES = 16
FORMS = ["sso-session", "legacy"]
EXPIRED = f"connection {CONN!r}: the SSO session for profile {PROFILE!r} has expired: " \
          f"run `aws sso login --profile {PROFILE}`"


def token_key(form: str) -> str:
    """What names the token's cache file: the sso-session, or a legacy profile's start URL."""
    return SESSION if form == "sso-session" else START_URL


def write_aws_config(env: dict, sso, form: str, more: str = "") -> None:
    if form == "sso-session":
        profile = f"sso_session = {SESSION}\n"
        session = (f"[sso-session {SESSION}]\nsso_start_url = {START_URL}\nsso_region = {SSO_REGION}\n"
                   "sso_registration_scopes = sso:account:access\n\n")
    else:
        profile = f"sso_start_url = {START_URL}\nsso_region = {SSO_REGION}\n"
        session = ""
    Path(env["AWS_CONFIG_FILE"]).write_text(
        f"[profile {PROFILE}]\n{profile}sso_account_id = {ACCOUNT}\nsso_role_name = {ROLE}\n"
        f"services = local-sso\n\n{session}{sso.services()}\n" + textwrap.dedent(more), encoding="utf-8")


def sso_connection(env: dict, sts=None, *, profile: str = PROFILE) -> None:
    """credproc's connection: no keys, the SSO profile for them; with ``sts``, they sign
    ROLE_ARN's AssumeRole there."""
    if sts is None:
        rest = {"region_name": "us-east-1"}
    else:
        rest = {**sts_at(sts.url), "role_arn": ROLE_ARN}
    lines = "".join(f"{key} = {toml_value(value)}\n" for key, value in rest.items())
    write_toml(env, f"[connections.{CONN}]\nprofile_name = {toml_value(profile)}\n{lines}")


@pytest.fixture
def browser(env, tmp_path) -> Path:
    """``BROWSER`` is a script that leaves a mark: no run may start it."""
    mark = tmp_path / "browser-started"
    script = tmp_path / "browser"
    script.write_text(f"#!/bin/sh\necho \"$@\" >> {mark}\n")
    script.chmod(0o755)
    env["BROWSER"] = str(script)
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return mark


def logged_in(env: dict, sso, form: str, **token) -> Path:
    """The SSO profile, credproc's connection for it, and a token as after `aws sso login`."""
    sso.roles.add((ACCOUNT, ROLE))
    write_aws_config(env, sso, form)
    return sso.login(Path(env["HOME"]), token_key(form), start_url=START_URL, region=SSO_REGION, **token)


def iso_of(milliseconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(milliseconds // 1000))


def stampede(env: dict) -> dict:
    results = run_together(CREDPROC, ["--conn", CONN], env, PROCESSES)
    failures = [(r.returncode, r.stderr) for r in results if r.returncode != 0]
    assert failures == [], failures
    assert len({r.stdout for r in results}) == 1, "the processes printed different credentials"
    return ok(results[0], temporary=True, account=ACCOUNT)


# -- the session is on ---------------------------------------------------------------------------


@pytest.mark.parametrize("form", FORMS)
def test_a_stampede_on_an_sso_profile_makes_one_portal_call(sso, env, run, browser, form):
    token_file = logged_in(env, sso, form)
    token = json.loads(token_file.read_text())["accessToken"]
    sso_connection(env)
    sso.delay = 1.0  # the portal is slow: all 16 are waiting while it answers

    out = stampede(env)
    assert sso.count("credentials") == 1, f"{sso.count('credentials')} portal calls for {PROCESSES} processes"
    [request] = sso.requests
    assert request["path"] == f"/federation/credentials?role_name={ROLE}&account_id={ACCOUNT}"
    assert sso.bearer_tokens() == [token]
    [issued] = sso.issued
    assert out["AccessKeyId"] == issued["accessKeyId"] and out["SessionToken"] == issued["sessionToken"]
    assert out["Expiration"] == iso_of(issued["expiration"])
    assert sso.count("token") == 0, "a token good for hours was renewed"
    assert json.loads(token_file.read_text())["accessToken"] == token

    sso.delay = 0
    again = run(["--conn", CONN], env)
    assert ok(again) == out and again.stderr == ""
    assert sso.count("credentials") == 1, "a later run asked the portal again: no cache hit"
    assert not browser.exists()


def test_sso_credentials_sign_the_connections_role(sso, sts, env, run, browser):
    logged_in(env, sso, "sso-session")
    sso_connection(env, sts)
    out = stampede(env)
    assert sso.count("credentials") == 1 and sts.count("AssumeRole") == 1
    [issued] = sso.issued
    assert signing_key(sts.requests[0]) == issued["accessKeyId"], "the portal's credentials did not sign"
    assert out["AccessKeyId"] != issued["accessKeyId"]  # the output is the role's own
    assert ok(run(["--conn", CONN], env)) == out
    assert sso.count("credentials") == 1 and sts.count("AssumeRole") == 1


def test_a_token_near_its_end_is_renewed_once_for_a_stampede(sso, env, run, browser):
    """An sso-session token with 5 minutes left and a refresh token: botocore renews it at
    the OIDC endpoint (CreateToken) before asking the portal. The lock makes that one
    renewal, and one portal call, for all the processes; the new token is saved."""
    token_file = logged_in(env, sso, "sso-session", expires_in=300, refreshable=True)
    old = json.loads(token_file.read_text())
    sso_connection(env)
    sso.delay = 1.0

    stampede(env)
    assert sso.count("token") == 1 and sso.count("token-refused") == 0
    assert sso.count("credentials") == 1
    renewed = json.loads(token_file.read_text())
    assert renewed["accessToken"] != old["accessToken"] and renewed["refreshToken"] != old["refreshToken"]
    assert sso.bearer_tokens() == [renewed["accessToken"]]
    assert not browser.exists()


BOTO3 = """\
import json, sys
import boto3
client = boto3.Session().client("sts", endpoint_url=sys.argv[1])
print(json.dumps([client.get_caller_identity()["Account"] for _ in range(2)]))
"""


def test_the_readme_recipe_sdks_through_credproc_to_the_sso_profile(sso, sts, env, tmp_path, browser):
    """The README's recipe: SDKs use profile ``app``, whose credential_process is credproc;
    credproc's connection names the SSO profile. Two boto3 processes: two credproc runs,
    one portal call."""
    wrapper, counter = counting_wrapper(tmp_path)
    logged_in(env, sso, "sso-session")
    with open(env["AWS_CONFIG_FILE"], "a", encoding="utf-8") as f:
        f.write(f"\n[profile app]\ncredential_process = {wrapper} --conn {CONN} --profile app\nregion = us-east-1\n")
    env["AWS_PROFILE"] = "app"
    sso_connection(env)
    for _ in range(2):
        sdk = subprocess.run([str(BIN / "python"), "-c", BOTO3, sts.url], env=env, capture_output=True, text=True,
                             timeout=120, stdin=subprocess.DEVNULL)
        assert sdk.returncode == 0, sdk.stderr
        assert json.loads(sdk.stdout) == [ACCOUNT, ACCOUNT]
    assert runs(counter) == 2 and sso.count("credentials") == 1
    [issued] = sso.issued
    assert {signing_key(r) for r in sts.requests} == {issued["accessKeyId"]}, "the SDK did not sign with them"


# -- the session is over -------------------------------------------------------------------------

ENDED = {
    "never-logged-in": None,  # no token file at all
    "expired": {"expires_in": -60},
    "refused-by-the-portal": {"valid": False},  # revoked, or ended early on the server's side
    "not-renewed": {"expires_in": -60, "refreshable": True},  # the OIDC endpoint refuses the refresh token
}


@pytest.mark.parametrize("form, case", [(form, case) for form in FORMS for case in ENDED
                                        if not (form == "legacy" and case == "not-renewed")])  # never renewed
def test_an_ended_session_is_one_line_that_names_the_login(sso, env, run, browser, form, case):
    token = ENDED[case]
    if token is None:
        sso.roles.add((ACCOUNT, ROLE))
        write_aws_config(env, sso, form)
        secrets: tuple[str, ...] = ()
    else:
        token_file = logged_in(env, sso, form, **token)
        written = json.loads(token_file.read_text())
        secrets = tuple(written[k] for k in ("accessToken", "refreshToken", "clientSecret") if k in written)
        if case == "not-renewed":
            sso.refresh_tokens.clear()
    sso_connection(env)

    result = run(["--conn", CONN], env)
    line = one_error(result, 1, secrets=secrets)
    assert line == f"credproc: error: {EXPIRED}", line
    assert sso.count("credentials") == 0
    assert sso.count("token-refused") == (1 if case == "not-renewed" else 0)
    assert not browser.exists(), "credproc started a browser"
    assert not list(Path(env["CREDPROC_CACHE_DIR"]).glob("*.json")), "something was cached"


def test_a_role_profile_on_an_sso_source_names_the_sso_profile(sso, sts, env, run, browser):
    """Profile ``app`` assumes a role with the SSO profile's credentials (source_profile):
    the line names the profile `aws sso login` works with, the SSO one."""
    sso.roles.add((ACCOUNT, ROLE))
    write_aws_config(env, sso, "sso-session", more=f"""\
        [profile app]
        role_arn = {ROLE_ARN}
        source_profile = {PROFILE}
        region = us-east-1
        """)
    sso.login(Path(env["HOME"]), SESSION, start_url=START_URL, region=SSO_REGION, expires_in=-60)
    env["AWS_ENDPOINT_URL_STS"] = sts.url
    sso_connection(env, profile="app")
    one_error(run(["--conn", CONN], env), 1, EXPIRED)
    assert sts.requests == [] and not browser.exists()


def test_a_role_the_portal_refuses_is_one_line(sso, env, run, browser):
    logged_in(env, sso, "sso-session")
    sso.roles.clear()  # the user is not assigned the role (any more)
    sso_connection(env)
    one_error(run(["--conn", CONN], env), 1,
              f"connection {CONN!r}: the SSO portal refused the role of profile {PROFILE!r}: "
              "ForbiddenException (HTTP 403): No access")


# -- the session ends while an entry is cached ----------------------------------------------------


def test_when_the_session_ends_the_entry_is_served_until_the_floor_then_the_login_is_asked(
        sso, env, run, browser, faketime, refreshers):
    """The token ends 20 minutes from now; the role's entry (one hour) is cached. At 30
    minutes it is due: printed at once, and the detached refresher's failure is recorded;
    the next run serves it with one warning that says how to log in; past the floor, the
    run fails with the line. The portal is asked once in all: the token's end is seen
    before any call."""
    logged_in(env, sso, "legacy", expires_in=20 * 60)
    sso_connection(env)
    first = ok(run(["--conn", CONN], env), temporary=True)

    due = run_at("+30m", ["--conn", CONN], env)
    assert ok(due) == first and due.stderr == ""
    refreshers.wait()
    served = run_at("+31m", ["--conn", CONN], env)
    assert ok(served) == first
    [warning] = stderr_verdict(served)
    assert f"run `aws sso login --profile {PROFILE}`" in warning, warning

    one_error(run_at("+55m", ["--conn", CONN], env), 1, EXPIRED)
    assert sso.count("credentials") == 1 and not browser.exists()


def test_a_portal_that_does_not_answer_is_one_line(sso, env, run, browser):
    logged_in(env, sso, "sso-session")
    config = Path(env["AWS_CONFIG_FILE"])
    config.write_text(config.read_text().replace(sso.url, f"http://127.0.0.1:{free_port()}"))  # nobody listens
    sso_connection(env)
    one_error(run(["--conn", CONN], env, timeout=120), 1,
              f"connection {CONN!r}: the SSO portal of profile {PROFILE!r} did not answer: ")
