"""Secrets stay where they belong: one test drives the main job, every people-facing command,
and the error paths of every method with planted secrets, and scans everything credproc
leaves behind.

Planted (each distinct, so that a hit says which path leaked):

* long-term keys: secret keys, session tokens and passwords (with '/', '+', '&' and '=',
  which encodings change), in the URI, JSON and TOML forms, in ``session_kwargs``, in a
  proxy URL of ``config_kwargs`` and in an endpoint URL, in ``assume_role_kwargs`` (an MFA
  code), in the AWS shared credentials and config files, in the environment, in the
  deprecated ``s3_config_file``, in a shadowed ``AIRFLOW_CONN_*`` definition, in a variable
  no id maps to, and in extras of any name (``db_password``);
* the OS keyring: the secret typed for ``credproc secret set`` (on stdin), and secrets
  stored there before the run;
* SAML: the assertions the IdP served (base64, and the unique IDs inside the decoded XML),
  the SPNEGO tokens credproc sent, the Kerberos password, the page's other hidden field,
  and ``idp_request_kwargs`` headers, cookies and proxy passwords;
* web identity: the token of a token file (also wrapped in junk), the ID tokens Google
  issued (metadata server, service-account key), the service-account private key, the
  signed JWT grant sent to the token endpoint, and the refresh token and client secret of
  a gcloud user login;
* the credentials STS issued, in runs that must not print them (``check``, ``cache``,
  ``list``), and those an earlier run cached.

Secrets known only once credproc has run (an IdP's assertion, a Google ID token) are
planted afterwards by the scenario (``trial.after``). Each is looked for raw,
percent-encoded, ``+``-encoded, JSON-escaped, base64-encoded, and as two 12-character
pieces, its 7th to 18th characters and its middle ones (a truncated or partly masked
secret is still a leak), in:

* stderr, without and with ``--debug`` (warnings, errors, debug log, tracebacks); without
  ``--debug`` it must also be one-line messages only (``stderr_verdict``);
* stdout: for the main job, the credential JSON and nothing else; for a command, all of
  it. Planted secrets are allowed there only where the output *is* them (``printed``:
  long-term keys that the main job or ``env`` prints as given), and the credentials STS
  issued only on the main job's stdout and on ``env``'s (``prints_issued``);
* every file created or changed under the test's directory (the cache, ``$HOME`` with
  ``~/.aws/config``, the AWS config file and its backup, the keyring's file, the Kerberos
  ticket cache): names and contents. Issued credentials may sit in one place only, the
  body of a cache entry, which is exactly the credential JSON (for the main job: exactly
  what was printed). A planted secret may sit in a file only where the scenario says so
  with ``trial.allow``: the keyring backend's own file holds the secret it stores, and an
  AWS config file (and ``configure``'s backup of it) keeps the keys its owner wrote there.

Covered: the main job (static keys, AssumeRole, profiles, chains, the keyring); ``list``,
``show``, ``check``, ``env``, ``configure``, ``cache list|clear``, ``secret set|delete``,
``serve`` (its token planted, the credentials asked for over HTTP) and ``exec`` (served and
``--no-server``), each with its failures; SAML (success; STS refusing the assertion; a page without an
assertion, with two, an XPath that is not XPath or yields no text; an IdP answering 500
past its retries; no Kerberos ticket; ``log_idp_response`` set, run without ``--debug``
only, since with it the page is logged by design after a warning, which test_saml.py
checks); web identity (a token file:
success, refused by STS, junk; Google: metadata server success and refusal by STS, a
service-account key, refused by the token endpoint and unusable, an ADC file that is not
JSON, a user login whose endpoint is unreachable, a metadata server that never answers).
Exit codes are checked per scenario: 0 success, 1 credentials not obtained, 2 usage or
configuration error. The test ids count the trials (``<scenario>-plain-3ofN``), and
``test_every_command_and_method_has_scenarios_that_succeed_and_fail`` keeps the registry
complete.

Adding a path: write a function that prepares the run and returns credproc's argv, and
decorate it with ``@scenario(exit_code, ...)``. Its parameters are fixtures, by name
(``env``, ``sts``, ``idp``, ``krb_env``, ``gce_metadata``, ``run``, ...), and ``trial``:
``trial.plant(name, value)`` for secrets of this trial alone, ``trial.after(hook)`` for
those known only once credproc has exited, ``trial.stdin`` for what credproc reads,
``trial.allow(path, *names)`` for a file that may hold a secret by design.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import inspect
import json
import os
import re
import stat
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers import ACCOUNT, CREDPROC, ROLE_ARN, credentials_only, extra_uri, free_port, stderr_verdict, sts_at, \
    sts_toml, toml_value, use_file_keyring
from servers.kerberos import KRB_PASSWORD, SAML_PRINCIPAL_ARN

pytestmark = pytest.mark.integration

CONN = "prod"
VARIABLE = f"CREDPROC_CONN_{CONN.upper()}"
SOURCE_KEY = "AKIAPLANTEDSOURCE001"


def planted(tag: str) -> str:
    """A secret that says where it was planted (``tag``, for whoever reads a failure) and
    that no 12 characters of any other planted secret match (a digest of the tag follows),
    with '/', '+', '&' and '=', which encodings change."""
    digest = hashlib.sha256(tag.encode()).hexdigest()
    return f"{tag}/{digest[:12]}+{digest[12:24]}&{digest[24:34]}="


# Distinct per place, so that a hit says which path leaked.
SECRETS = {
    "uri_secret": planted("uriSecret"),
    "uri_token": planted("uriToken"),
    "json_password": planted("jsonPassword"),
    "json_token": planted("jsonToken"),
    "toml_password": planted("tomlPassword"),
    "toml_token": planted("tomlToken"),
    "session_kwargs_secret": planted("skwSecret"),
    "session_kwargs_token": planted("skwToken"),
    "proxy_password": planted("proxyPass"),
    "endpoint_password": planted("endpointPass"),
    "token_code": "73519046",  # an MFA code: digits
    "credentials_file_secret": planted("credfileSecret"),
    "credentials_file_token": planted("credfileToken"),
    "environment_secret": planted("envSecret"),
    "environment_token": planted("envToken"),
    "s3_config_secret": planted("s3cfgSecret"),
    "airflow_password": planted("airflowPassword"),
    "airflow_file_password": planted("airflowFilePassword"),
    "airflow_file_token": planted("airflowFileToken"),
    "unread_variable_secret": planted("unreadVarSecret"),
    "other_extra_password": planted("dbPassword"),
    "aws_config_secret": planted("awsConfigSecret"),
    # the OS keyring
    "keyring_secret": planted("keyringSecret"),
    "keyring_token": planted("keyringToken"),
    # SAML: what a connection sends the IdP besides Kerberos, the user's Kerberos password,
    # and the hidden field of the IdP's login page ("nofield" in servers/kerberos.py's IDP_PAGES)
    "idp_api_key": planted("idpApiKey"),
    "idp_cookie": planted("idpCookie"),
    "idp_authorization": planted("idpBearer"),
    "idp_proxy_password": planted("idpProxyPass"),
    "krb_password": KRB_PASSWORD,
    "idp_page_context": "c2Vzc2lvbi1jb250ZXh0LTEyMzQ1Njc4OTA=",
    # web identity: a token file's token, a gcloud user login, junk in credential files
    "web_identity_token": planted("webIdentityToken"),
    "adc_refresh_token": planted("adcRefreshToken"),
    "adc_client_secret": planted("adcClientSecret"),
    "adc_junk": planted("adcJunk"),
    "sa_junk_key": planted("saJunkKey"),
}


@functools.lru_cache(maxsize=None)
def forms(secret: str) -> frozenset[str]:
    """The ways a secret can show up in text: as is, URL-encoded, JSON-escaped, base64, pieces."""
    out = {secret, urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret),
           json.dumps(secret)[1:-1], secret.replace("/", "\\/"), base64.b64encode(secret.encode()).decode()}
    if len(secret) >= 20:
        # Pieces: a truncated or half-masked secret is a leak too. Two, since secrets of
        # one kind (SAML assertions, JWTs) share their first characters.
        middle = len(secret) // 2
        out.update({secret[6:18], secret[middle - 6:middle + 6]})
    return frozenset(out)


def leaks(text: str, secrets: Mapping[str, str] = SECRETS, allowed: Iterable[str] = ()) -> list[str]:
    """The names of the secrets that show up in ``text``, in any form, except ``allowed``."""
    allowed = set(allowed)
    return sorted(name for name, value in secrets.items()
                  if name not in allowed and any(form in text for form in forms(value)))


# -- scenarios -----------------------------------------------------------------------------------


class Trial:
    """What a scenario's setup may do besides preparing its fixtures (see the module docstring)."""

    def __init__(self) -> None:
        self.planted: dict[str, str] = {}
        self.stdin: str | None = None
        self.allowed: dict[Path, set[str]] = {}
        self.hooks: list[Callable[[], None]] = []

    def plant(self, name: str, value: str) -> str:
        """Look for ``value`` too, as ``name``: a secret of this trial alone. Returns it."""
        assert name not in SECRETS and name not in self.planted, f"planted twice: {name}"
        assert isinstance(value, str) and len(value) >= 6, f"{name}: too short to look for"
        self.planted[name] = value
        return value

    def after(self, hook: Callable[[], None]) -> Callable[[], None]:
        """Run ``hook`` once credproc has exited, before the scan: it plants the secrets
        known only then (and may check that the path under test was really taken)."""
        self.hooks.append(hook)
        return hook

    def allow(self, path: Path | str, *names: str) -> None:
        """``path`` may hold these planted secrets: by design, not by leak."""
        self.allowed.setdefault(Path(path), set()).update(names)


@dataclass
class Scenario:
    setup: Callable[..., list[str]]
    code: int
    command: str = "main"  # "main": credproc --conn ID; else the command (list, show, ...)
    printed: tuple[str, ...] = ()  # planted secrets this scenario's output is made of
    prints_issued: bool = False  # a command whose output is the STS-issued credentials (env)
    debug: bool = True  # run it with --debug too
    fixtures: tuple[str, ...] = ()  # the setup's parameters: fixtures by name, and "trial"


SCENARIOS: dict[str, Scenario] = {}


def scenario(code: int, *, command: str = "main", printed: tuple[str, ...] = (), prints_issued: bool = False,
             debug: bool = True):
    """Register a path: its setup prepares the run and returns credproc's argv."""
    def register(setup):
        assert setup.__name__ not in SCENARIOS, setup.__name__
        fixtures = tuple(inspect.signature(setup).parameters)
        SCENARIOS[setup.__name__] = Scenario(setup, code, command, printed, prints_issued, debug, fixtures)
        return setup
    return register


def uri(endpoint: str, login: str = SOURCE_KEY, password: str = SECRETS["uri_secret"], **extra) -> str:
    """The URI form with this file's planted key pair, the extra as JSON in ``__extra__``."""
    return extra_uri(extra, endpoint=endpoint, login=login, password=password)


def write(path: Path | str, text: str) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(text)


def proxy_url(password: str) -> str:
    """A proxy that nothing listens on, with a password in its URL."""
    return f"http://user:{urllib.parse.quote(password, safe='')}@127.0.0.1:1"


def toml_connection(env: dict, conn_id: str = CONN, **fields) -> None:
    """Write ``[connections.<conn_id>]`` with ``fields`` into the config file."""
    write(env["CREDPROC_CONFIG"], f"[connections.{conn_id}]\n"
          + "".join(f"{key} = {toml_value(value)}\n" for key, value in fields.items()))


def json_connection(sts, **extra) -> str:
    """The JSON form: login and password, the session token in the extra, and ``extra``."""
    return json.dumps({"conn_type": "aws", "login": SOURCE_KEY, "password": SECRETS["json_password"],
                       "extra": {**sts_at(sts.url),
                                 "aws_session_token": SECRETS["json_token"], **extra}})


def cache_a_role(env: dict, sts, run, trial: Trial) -> None:
    """Connection "prod" assumes the role once before the trial's run, which finds its entry
    in the cache; what STS issued then is planted: the trial's run must not show it."""
    env[VARIABLE] = uri(sts.url, role_arn=ROLE_ARN, aws_session_token=SECRETS["uri_token"])
    out = credentials_only(run(["--conn", CONN], env).stdout)
    trial.plant("cached_secret_access_key", out["SecretAccessKey"])
    trial.plant("cached_session_token", out["SessionToken"])


@scenario(0)
def role_from_uri(env, sts, tmp_path):
    env[VARIABLE] = uri(sts.url, role_arn=ROLE_ARN, aws_session_token=SECRETS["uri_token"])
    return ["--conn", CONN]


@scenario(0)
def role_from_json_refresh(env, sts, tmp_path):
    env[VARIABLE] = json.dumps({"conn_type": "aws", "login": SOURCE_KEY, "password": SECRETS["json_password"],
                                "extra": json.dumps({"role_arn": ROLE_ARN, **sts_at(sts.url),
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
{sts_toml(sts.url)}
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
    extra = urllib.parse.quote(json.dumps({"role_arn": ROLE_ARN, **sts_at(sts.url)}), safe="")
    env[VARIABLE] = f"aws://:{urllib.parse.quote(SECRETS['uri_secret'], safe='')}@/?__extra__={extra}"
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


# -- people-facing commands: list, show, check, env, configure, cache, secret ------------------


def airflow_file(env: dict, tmp_path: Path, name: str, text: str) -> None:
    """An Airflow connections file (``$CREDPROC_AIRFLOW_CONNECTIONS_FILE``) holding ``text``."""
    write(tmp_path / name, text)
    env["CREDPROC_AIRFLOW_CONNECTIONS_FILE"] = str(tmp_path / name)


def airflow_export(sts, **extra) -> dict:
    """One connection as `airflow connections export` writes it: the planted pair, the extra as text."""
    return {"conn_type": "aws", "description": None, "login": SOURCE_KEY, "password": SECRETS["airflow_file_password"],
            "host": None, "port": None, "schema": None,
            "extra": json.dumps({**sts_at(sts.url), "aws_session_token": SECRETS["airflow_file_token"], **extra})}


@scenario(0)
def role_from_an_airflow_yaml_export(env, sts, tmp_path):
    yaml = pytest.importorskip("yaml")
    airflow_file(env, tmp_path, "connections.yaml", yaml.safe_dump({CONN: airflow_export(sts, role_arn=ROLE_ARN)}))
    return ["--conn", CONN, "--refresh"]


@scenario(2)
def a_broken_airflow_json_file(env, sts, tmp_path):
    text = json.dumps({CONN: airflow_export(sts, role_arn=ROLE_ARN)}, indent=2)
    airflow_file(env, tmp_path, "connections.json", text.replace('"password"', '"password" ::'))  # a syntax error
    return ["--conn", CONN]


@scenario(2)
def a_broken_airflow_yaml_file(env, sts, tmp_path):
    yaml = pytest.importorskip("yaml")
    text = yaml.safe_dump({CONN: airflow_export(sts, role_arn=ROLE_ARN)})
    airflow_file(env, tmp_path, "connections.yaml", text.replace("password: ", "password: [", 1))
    return ["--conn", CONN]


@scenario(2)
def a_broken_line_of_an_airflow_env_file(env, sts, tmp_path):
    airflow_file(env, tmp_path, "connections.env", f"{CONN} aws://{SOURCE_KEY}:{SECRETS['airflow_file_password']}@/\n")
    return ["--conn", CONN]


@scenario(0, command="list")
def list_reads_the_airflow_file(env, sts, tmp_path):
    airflow_file(env, tmp_path, "connections.json", json.dumps({
        CONN: airflow_export(sts, role_arn=ROLE_ARN),
        "bad": {**airflow_export(sts), "loginn": SECRETS["airflow_file_password"]}}))
    return ["list"]


@scenario(0, command="show")
def show_masks_an_airflow_file_connection(env, sts, tmp_path):
    airflow_file(env, tmp_path, "connections.env",
                 f"{CONN}={uri(sts.url, password=SECRETS['airflow_file_password'], role_arn=ROLE_ARN)}\n")
    return ["show", CONN]


@scenario(0, command="list")
def list_sees_every_form(env, sts, tmp_path, run, trial):
    cache_a_role(env, sts, run, trial)  # "fresh until ..." for prod
    env["AIRFLOW_CONN_PROD"] = json.dumps({"login": SOURCE_KEY, "password": SECRETS["airflow_password"]})  # a note
    env["CREDPROC_CONN_SIGNED"] = uri(sts.url, login="", role_arn=ROLE_ARN, config_kwargs={
        "proxies": {"https": proxy_url(SECRETS["proxy_password"])}}, session_kwargs={
        "aws_access_key_id": SOURCE_KEY, "aws_secret_access_key": SECRETS["session_kwargs_secret"],
        "aws_session_token": SECRETS["session_kwargs_token"]})
    toml_connection(env, "fromfile", login=SOURCE_KEY, password=SECRETS["toml_password"],
                    aws_session_token=SECRETS["toml_token"], db_password=SECRETS["other_extra_password"])
    return ["list"]


@scenario(0, command="list")
def list_json_with_broken_definitions(env, sts, tmp_path):
    env[VARIABLE] = '{"login": "%s", "password": "%s", broken' % (SOURCE_KEY, SECRETS["json_password"])
    env["AIRFLOW_CONN_NOAT"] = f"aws://{SOURCE_KEY}:{urllib.parse.quote(SECRETS['uri_secret'], safe='')}/?x=1"
    env["CREDPROC_CONN_"] = uri(sts.url, password=SECRETS["unread_variable_secret"])  # no id maps to it
    env["CREDPROC_CONN_BADKEYS"] = uri(sts.url, role_arn="not-an-arn", aws_session_token=SECRETS["uri_token"])
    write(env["CREDPROC_CONFIG"], f'[connections.fromfile]\npassword = "{SECRETS["toml_password"]}"\n'
                                  f'aws_session_token = "{SECRETS["toml_token"]}" role_arn = \n')
    return ["list", "--json"]


@scenario(0, command="show")
def show_masks_the_uri_form(env, sts, tmp_path):
    env[VARIABLE] = uri(sts.url, role_arn=ROLE_ARN, aws_session_token=SECRETS["uri_token"],
                        config_kwargs={"proxies": {"https": proxy_url(SECRETS["proxy_password"])}},
                        assume_role_kwargs={"ExternalId": "x-42", "DurationSeconds": 900})
    env["AIRFLOW_CONN_PROD"] = json.dumps({"login": SOURCE_KEY, "password": SECRETS["airflow_password"]})
    return ["show", CONN]


@scenario(0, command="show")
def show_json_masks_the_json_form_and_extras_of_any_name(env, sts, tmp_path):
    env[VARIABLE] = json_connection(sts, role_arn=ROLE_ARN, db_password=SECRETS["other_extra_password"],
                                    session_kwargs={"aws_secret_access_key": SECRETS["session_kwargs_secret"],
                                                    "aws_session_token": SECRETS["session_kwargs_token"]})
    return ["show", CONN, "--json"]


@scenario(0, command="show")
def show_masks_the_toml_form(env, sts, tmp_path):
    endpoint = sts.url.replace("://", f"://user:{urllib.parse.quote(SECRETS['endpoint_password'], safe='')}@")
    toml_connection(env, login=SOURCE_KEY, password=SECRETS["toml_password"], aws_session_token=SECRETS["toml_token"],
                    role_arn=ROLE_ARN, **sts_at(endpoint),
                    config_kwargs={"proxies": {"https": proxy_url(SECRETS["proxy_password"])}})
    return ["show", CONN]


@scenario(0, command="show")
def show_json_masks_session_kwargs_keys(env, sts, tmp_path):
    env[VARIABLE] = uri(sts.url, login="", role_arn=ROLE_ARN, session_kwargs={
        "aws_access_key_id": SOURCE_KEY, "aws_secret_access_key": SECRETS["session_kwargs_secret"],
        "aws_session_token": SECRETS["session_kwargs_token"]})
    return ["show", CONN, "--json"]


@scenario(0, command="show")
def show_masks_an_s3_config_file_and_deprecated_extras(env, sts, tmp_path):
    path = tmp_path / "s3.cfg"
    write(path, f"[default]\naws_access_key_id = {SOURCE_KEY}\naws_secret_access_key = {SECRETS['s3_config_secret']}\n")
    env[VARIABLE] = uri(sts.url, login="", s3_config_file=str(path), s3_config_format="aws",
                        aws_account_id=ACCOUNT, aws_iam_role="credproc-test", external_id="x-42")
    return ["show", CONN, "--json"]


@scenario(0, command="show")
def show_masks_the_secret_settings_of_a_saml_connection(env, sts, tmp_path):
    env[VARIABLE] = json.dumps({"conn_type": "aws", "extra": {
        "role_arn": ROLE_ARN, "assume_role_method": "assume_role_with_saml", **sts_at(sts.url),
        "assume_role_with_saml": saml_table("http://localhost:1/idp", proxies=True)}})
    return ["show", CONN]


@scenario(2, command="show")
def show_json_with_a_syntax_error_after_the_password(env, sts, tmp_path):
    env[VARIABLE] = '{"login": "%s", "password": "%s", "extra": {"role_arn": ' % (SOURCE_KEY, SECRETS["json_password"])
    return ["show", CONN]


@scenario(2, command="show")
def show_toml_secret_of_the_wrong_type(env, sts, tmp_path):
    write(env["CREDPROC_CONFIG"], f'[connections.{CONN}]\nlogin = "{SOURCE_KEY}"\n'
                                  f'password = ["{SECRETS["toml_password"]}"]\n'
                                  f'aws_session_token = {{ value = "{SECRETS["toml_token"]}" }}\n')
    return ["show", CONN, "--json"]


@scenario(0, command="check")
def check_role_from_uri(env, sts, tmp_path):
    env[VARIABLE] = uri(sts.url, role_arn=ROLE_ARN, aws_session_token=SECRETS["uri_token"])
    return ["check", CONN]


@scenario(0, command="check")
def check_long_term_keys_from_toml_prints_none(env, sts, tmp_path):
    toml_connection(env, login=SOURCE_KEY, password=SECRETS["toml_password"], aws_session_token=SECRETS["toml_token"],
                    **sts_at(sts.url))
    return ["check", CONN, "--refresh"]


@scenario(1, command="check")
def check_sts_refuses_the_role(env, sts, tmp_path):
    env[VARIABLE] = json_connection(sts, role_arn=ROLE_ARN)
    sts.faults.append((403, "AccessDenied"))
    return ["check", CONN]


@scenario(1, command="check")
def check_sts_refuses_long_term_keys(env, sts, tmp_path):
    env[VARIABLE] = json_connection(sts)  # no role: the first STS call is GetCallerIdentity
    sts.faults.append((403, "InvalidClientTokenId"))
    return ["check", CONN]


@scenario(1, command="check")
def check_sts_refuses_cached_credentials(env, sts, tmp_path, run, trial):
    cache_a_role(env, sts, run, trial)
    sts.faults.append((403, "ExpiredToken"))  # GetCallerIdentity with the cached ones
    return ["check", CONN]


@scenario(2, command="check")
def check_toml_with_a_syntax_error_after_the_password(env, sts, tmp_path):
    write(env["CREDPROC_CONFIG"], f'[connections.{CONN}]\npassword = "{SECRETS["toml_password"]}"\n'
                                  f'aws_session_token = "{SECRETS["toml_token"]}" role_arn = \n')
    return ["check", CONN]


@scenario(0, command="completion", debug=False)
def completion_ids_of_connections_holding_secrets(env, sts, tmp_path):
    """The ids a shell completes come from the definitions, which hold secrets: only ids come out."""
    env[VARIABLE] = uri(sts.url, role_arn=ROLE_ARN, aws_session_token=SECRETS["uri_token"])
    write(env["CREDPROC_CONFIG"], f'[connections.other]\npassword = "{SECRETS["toml_password"]}"\n')
    return ["completion", "ids"]


@scenario(2, command="completion", debug=False)
def completion_for_an_unknown_shell(env, sts, tmp_path):
    env[VARIABLE] = uri(sts.url, role_arn=ROLE_ARN, aws_session_token=SECRETS["uri_token"])
    return ["completion", "powershell"]


@scenario(0, command="env", prints_issued=True)
def env_sh_role_from_json(env, sts, tmp_path):
    env[VARIABLE] = json_connection(sts, role_arn=ROLE_ARN)
    return ["env", CONN]


@scenario(0, command="env", prints_issued=True)
def env_fish_role_signed_by_session_kwargs(env, sts, tmp_path):
    env[VARIABLE] = uri(sts.url, login="", role_arn=ROLE_ARN, session_kwargs={
        "aws_access_key_id": SOURCE_KEY, "aws_secret_access_key": SECRETS["session_kwargs_secret"],
        "aws_session_token": SECRETS["session_kwargs_token"]})
    return ["env", CONN, "--format", "fish", "--refresh"]


@scenario(0, command="env", prints_issued=True)
def env_json_role_signed_by_the_credentials_file(env, sts, tmp_path):
    write(env["AWS_SHARED_CREDENTIALS_FILE"], f"[src]\naws_access_key_id = {SOURCE_KEY}\n"
                                              f"aws_secret_access_key = {SECRETS['credentials_file_secret']}\n"
                                              f"aws_session_token = {SECRETS['credentials_file_token']}\n")
    env[VARIABLE] = uri(sts.url, login="", role_arn=ROLE_ARN, profile_name="src")
    return ["env", CONN, "--format", "json"]


@scenario(0, command="env", printed=("uri_secret", "uri_token"))
def env_powershell_long_term_keys(env, sts, tmp_path):
    env[VARIABLE] = uri(sts.url, aws_session_token=SECRETS["uri_token"])
    return ["env", CONN, "--format", "powershell"]


@scenario(1, command="env")
def env_sts_refuses(env, sts, tmp_path):
    env[VARIABLE] = uri(sts.url, role_arn=ROLE_ARN, aws_session_token=SECRETS["uri_token"])
    sts.faults.append((403, "AccessDenied"))
    return ["env", CONN]


@scenario(2, command="env")
def env_uri_extra_with_a_syntax_error(env, sts, tmp_path):
    broken = urllib.parse.quote('{"aws_session_token": "%s",' % SECRETS["uri_token"], safe="")
    env[VARIABLE] = f"aws://{SOURCE_KEY}:{urllib.parse.quote(SECRETS['uri_secret'], safe='')}@/?__extra__={broken}"
    return ["env", CONN, "--format", "sh"]


@scenario(0, command="configure")
def configure_keeps_its_owners_keys_and_adds_no_secret(env, sts, tmp_path, trial):
    env[VARIABLE] = uri(sts.url, role_arn=ROLE_ARN, aws_session_token=SECRETS["uri_token"])
    env.update(AWS_ACCESS_KEY_ID=SOURCE_KEY, AWS_SECRET_ACCESS_KEY=SECRETS["environment_secret"])  # a warning
    config = Path(env["AWS_CONFIG_FILE"])
    write(config, f"[profile other]\naws_access_key_id = {SOURCE_KEY}\n"
                  f"aws_secret_access_key = {SECRETS['aws_config_secret']}\n\n[profile prod]\nregion = eu-west-1\n")
    backup = Path(f"{config}.credproc-backup")
    # Both keep, byte for byte, what their owner wrote: the other profile's key. Nothing more.
    trial.allow(config, "aws_config_secret")
    trial.allow(backup, "aws_config_secret")

    @trial.after
    def written():
        assert "credential_process" in config.read_text() and backup.exists(), "configure wrote nothing"

    return ["configure", CONN, "--profile", "prod", "--region", "us-east-1", "--retry-mode", "standard",
            "--max-attempts", "5"]


@scenario(0, command="configure")
def configure_writes_a_new_home_aws_config(env, sts, tmp_path, trial):
    toml_connection(env, login=SOURCE_KEY, password=SECRETS["toml_password"], aws_session_token=SECRETS["toml_token"],
                    role_arn=ROLE_ARN, **sts_at(sts.url))
    del env["AWS_CONFIG_FILE"]  # so ~/.aws/config
    config = Path(env["HOME"]) / ".aws" / "config"

    @trial.after
    def written():
        assert "credential_process" in config.read_text()

    return ["configure", CONN, "--profile", "default"]


@scenario(2, command="configure")
def configure_refuses_keys_in_the_credentials_file(env, sts, tmp_path):
    env[VARIABLE] = uri(sts.url, role_arn=ROLE_ARN, aws_session_token=SECRETS["uri_token"])
    write(env["AWS_SHARED_CREDENTIALS_FILE"], f"[prod]\naws_access_key_id = {SOURCE_KEY}\n"
                                              f"aws_secret_access_key = {SECRETS['credentials_file_secret']}\n"
                                              f"aws_session_token = {SECRETS['credentials_file_token']}\n")
    return ["configure", CONN, "--profile", "prod"]


@scenario(2, command="configure")
def configure_refuses_keys_in_the_config_file(env, sts, tmp_path):
    env[VARIABLE] = uri(sts.url, role_arn=ROLE_ARN)
    write(env["AWS_CONFIG_FILE"], f"[profile prod]\naws_access_key_id = {SOURCE_KEY}\n"
                                  f"aws_secret_access_key = {SECRETS['aws_config_secret']}\n")
    return ["configure", CONN, "--profile", "prod"]


@scenario(0, command="cache")
def cache_list_after_a_fetch(env, sts, tmp_path, run, trial):
    cache_a_role(env, sts, run, trial)
    return ["cache", "list"]


@scenario(0, command="cache")
def cache_list_json_after_a_fetch(env, sts, tmp_path, run, trial):
    cache_a_role(env, sts, run, trial)
    return ["cache", "list", "--json"]


def cache_is_cleared(env: dict, trial: Trial) -> None:
    @trial.after
    def cleared():
        assert not list(Path(env["CREDPROC_CACHE_DIR"]).glob("*.entry")), "the entry is still there"


@scenario(0, command="cache")
def cache_clear_one_connection(env, sts, tmp_path, run, trial):
    cache_a_role(env, sts, run, trial)
    cache_is_cleared(env, trial)
    return ["cache", "clear", CONN]


@scenario(2, command="cache")
def cache_list_of_a_directory_open_to_others(env, sts, tmp_path, run, trial):
    cache_a_role(env, sts, run, trial)
    os.chmod(env["CREDPROC_CACHE_DIR"], 0o777)
    return ["cache", "list"]


# -- the OS keyring: credproc secret, and the secrets it keeps ------------------------------------

def login_only(sts, **extra) -> str:
    """A URI with the access key id and no secret: the keyring has the other half."""
    return extra_uri(extra, endpoint=sts.url, login=SOURCE_KEY, password=None)


def keyring_holds(env: dict, run, field: str, value: str) -> None:
    """Store ``value`` before the trial's run, as a person would have."""
    stored = run(["secret", "set", CONN, "--field", field], env, stdin=None, input=value + "\n")
    assert stored.returncode == 0, stored.stderr


@scenario(0, command="secret")
def secret_set_from_stdin(env, sts, tmp_path, trial):
    keyring = use_file_keyring(env, tmp_path)
    env[VARIABLE] = login_only(sts, role_arn=ROLE_ARN)
    trial.stdin = SECRETS["keyring_secret"] + "\n"
    trial.allow(keyring, "keyring_secret")  # where the backend keeps it (base64, unencrypted)

    @trial.after
    def stored():  # so the scan does see it there, and only the allowance lets it pass
        assert leaks(keyring.read_text()) == ["keyring_secret"]

    return ["secret", "set", CONN]


@scenario(0, command="secret")
def secret_set_clears_the_cache_and_warns_the_definition_has_a_token(env, sts, tmp_path, run, trial):
    keyring = use_file_keyring(env, tmp_path)
    cache_a_role(env, sts, run, trial)  # the definition has aws_session_token (uri_token)
    cache_is_cleared(env, trial)
    trial.stdin = SECRETS["keyring_token"] + "\n"
    trial.allow(keyring, "keyring_token")
    return ["secret", "set", CONN, "--field", "aws_session_token"]


@scenario(2, command="secret")
def secret_set_without_a_keyring_backend(env, sts, tmp_path, trial):
    env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.fail.Keyring"
    env[VARIABLE] = login_only(sts, role_arn=ROLE_ARN, aws_session_token=SECRETS["uri_token"])
    trial.stdin = SECRETS["keyring_secret"] + "\n"
    return ["secret", "set", CONN]


@scenario(2, command="secret")
def secret_set_with_a_bad_field(env, sts, tmp_path, trial):
    use_file_keyring(env, tmp_path)
    env[VARIABLE] = login_only(sts, role_arn=ROLE_ARN)
    trial.stdin = SECRETS["keyring_secret"] + "\n"
    return ["secret", "set", CONN, "--field", "pass word"]


@scenario(0, command="secret")
def secret_delete(env, sts, tmp_path, run):
    use_file_keyring(env, tmp_path)
    env[VARIABLE] = login_only(sts, role_arn=ROLE_ARN)
    keyring_holds(env, run, "password", SECRETS["keyring_secret"])
    return ["secret", "delete", CONN]  # the keyring's file changes, and must no longer hold it


@scenario(1, command="secret")
def secret_delete_when_none_is_stored(env, sts, tmp_path, run):
    use_file_keyring(env, tmp_path)
    env[VARIABLE] = login_only(sts, role_arn=ROLE_ARN)
    keyring_holds(env, run, "password", SECRETS["keyring_secret"])
    return ["secret", "delete", CONN, "--field", "aws_session_token"]


@scenario(0)
def role_signed_with_keyring_secrets(env, sts, tmp_path, run):
    use_file_keyring(env, tmp_path)
    env[VARIABLE] = login_only(sts, role_arn=ROLE_ARN)
    keyring_holds(env, run, "password", SECRETS["keyring_secret"])
    keyring_holds(env, run, "aws_session_token", SECRETS["keyring_token"])
    return ["--conn", CONN]


@scenario(0, command="show")
def show_a_secret_from_the_keyring(env, sts, tmp_path, run):
    use_file_keyring(env, tmp_path)
    env[VARIABLE] = login_only(sts, role_arn=ROLE_ARN)
    keyring_holds(env, run, "password", SECRETS["keyring_secret"])
    keyring_holds(env, run, "aws_session_token", SECRETS["keyring_token"])
    return ["show", CONN]


@scenario(2)
def keyring_backend_that_cannot_be_loaded(env, sts, tmp_path):
    env["PYTHON_KEYRING_BACKEND"] = "no.such.Keyring"
    env[VARIABLE] = login_only(sts, role_arn=ROLE_ARN, aws_session_token=SECRETS["uri_token"])
    return ["--conn", CONN]


# -- SAML through a Kerberos (SPNEGO) IdP: fixtures kdc, idp, krb_env of servers/kerberos.py ----


def saml_table(idp_url: str, *, proxies: bool = False, **settings) -> dict:
    """The assume_role_with_saml table, with credentials of its own for the GET to the IdP:
    an Authorization and an API-key header, a cookie, and (``proxies``) a proxy password."""
    request_kwargs: dict = {"timeout": [2, 5], "cookies": {"MSISAuth": SECRETS["idp_cookie"]},
                            "headers": {"Authorization": f"Bearer {SECRETS['idp_authorization']}",
                                        "X-Api-Key": SECRETS["idp_api_key"]}}
    if proxies:
        request_kwargs["proxies"] = {"https": proxy_url(SECRETS["idp_proxy_password"])}
    table = {"principal_arn": SAML_PRINCIPAL_ARN, "idp_url": idp_url, "idp_auth_method": "http_spegno_auth",
             "idp_request_kwargs": request_kwargs, **settings}
    return {key: value for key, value in table.items() if value is not None}


def saml_connection(env: dict, sts, idp, **settings) -> None:
    env[VARIABLE] = json.dumps({"conn_type": "aws", "extra": {
        "role_arn": ROLE_ARN, "assume_role_method": "assume_role_with_saml", **sts_at(sts.url),
        "assume_role_with_saml": saml_table(idp.url, **settings)}})


def plant_what_the_idp_saw(trial: Trial, idp, *, pages: int) -> None:
    """After the run: the assertions the IdP put in its pages (and the unique IDs inside
    them, should the decoded XML leak) and the SPNEGO tokens credproc sent it."""
    @trial.after
    def collect():
        assert idp.count("page") == pages, f"the IdP served {idp.count('page')} pages, not {pages}"
        for i, assertion in enumerate(idp.assertions[:2 * pages]):
            trial.plant(f"saml_assertion_{i}", assertion)
            xml = base64.b64decode(assertion).decode()
            for j, unique in enumerate(re.findall(r'ID="(_[0-9a-f]{32})"', xml)):
                trial.plant(f"saml_assertion_{i}_id_{j}", unique)
        for i, token in enumerate(idp.tokens):
            trial.plant(f"spnego_token_{i}", token)


@scenario(0)
def saml_succeeds(krb_env, sts, idp, trial):
    saml_connection(krb_env, sts, idp, mutual_authentication="REQUIRED")
    plant_what_the_idp_saw(trial, idp, pages=1)
    return ["--conn", CONN]


@scenario(1)
def saml_sts_refuses_the_assertion(krb_env, sts, idp, trial):
    saml_connection(krb_env, sts, idp)
    sts.faults.append((403, "AccessDenied"))
    plant_what_the_idp_saw(trial, idp, pages=1)
    return ["--conn", CONN]


@scenario(1)
def saml_page_without_an_assertion(krb_env, sts, idp, trial):
    idp.page = "nofield"  # a login page, with another hidden field (idp_page_context)
    saml_connection(krb_env, sts, idp)
    plant_what_the_idp_saw(trial, idp, pages=1)
    return ["--conn", CONN]


@scenario(1)
def saml_page_with_two_assertions(krb_env, sts, idp, trial):
    idp.page = "two"
    saml_connection(krb_env, sts, idp)
    plant_what_the_idp_saw(trial, idp, pages=1)
    return ["--conn", CONN]


@scenario(2)
def saml_xpath_that_yields_no_text(krb_env, sts, idp, trial):
    saml_connection(krb_env, sts, idp, saml_response_xpath="count(//input[@name='SAMLResponse']) > 0")
    plant_what_the_idp_saw(trial, idp, pages=1)  # found out only once the page is there
    return ["--conn", CONN]


@scenario(2)
def saml_xpath_that_is_not_xpath(krb_env, sts, idp, trial):
    saml_connection(krb_env, sts, idp, saml_response_xpath="//input[@name='SAMLResponse'")
    plant_what_the_idp_saw(trial, idp, pages=0)
    return ["--conn", CONN]


@scenario(1)
def saml_idp_answers_500_past_its_retries(krb_env, sts, idp, trial):
    idp.faults = [500] * 3
    saml_connection(krb_env, sts, idp, idp_request_retry_kwargs={
        "total": 2, "status_forcelist": [500], "backoff_factor": 0})
    plant_what_the_idp_saw(trial, idp, pages=0)
    return ["--conn", CONN]


@scenario(1)
def saml_without_a_kerberos_ticket(krb_env, kdc, sts, idp, trial):
    kdc.kdestroy(Path(krb_env["KRB5CCNAME"].removeprefix("FILE:")))
    saml_connection(krb_env, sts, idp)
    plant_what_the_idp_saw(trial, idp, pages=0)
    return ["--conn", CONN]


# With --debug, log_idp_response logs the page (the assertion) by design, after a warning:
# test_saml.py checks that. Without --debug it must log nothing.
@scenario(0, debug=False)
def saml_log_idp_response_set_without_debug(krb_env, sts, idp, trial):
    saml_connection(krb_env, sts, idp, log_idp_response=True)
    plant_what_the_idp_saw(trial, idp, pages=1)
    return ["--conn", CONN]


@scenario(0, command="env", prints_issued=True)
def env_for_a_saml_connection(krb_env, sts, idp, trial):
    saml_connection(krb_env, sts, idp)
    plant_what_the_idp_saw(trial, idp, pages=1)
    return ["env", CONN]


# -- web identity: token files, and Google (fixtures google_issuer, gce_metadata, blackhole) -

AUDIENCE = "https://credproc.example.com/aws"


def web_identity(env: dict, sts, **extra) -> None:
    env[VARIABLE] = json.dumps({"conn_type": "aws", "extra": {
        **sts_at(sts.url), "role_arn": ROLE_ARN,
        "assume_role_method": "assume_role_with_web_identity", **extra}})


def token_file(env: dict, sts, tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "token"
    path.write_bytes(content)
    web_identity(env, sts, assume_role_with_web_identity_token_file=str(path))


def google_connection(env: dict, sts, tmp_path: Path, metadata: str | None = None) -> Path:
    """Federation google where Google finds only what the scenario adds: no
    GOOGLE_APPLICATION_CREDENTIALS, an empty gcloud directory (returned), and the metadata
    server at ``metadata`` (else a closed port, refused at once)."""
    gcloud = tmp_path / "gcloud"
    gcloud.mkdir(exist_ok=True)
    env["CLOUDSDK_CONFIG"] = str(gcloud)
    env["GCE_METADATA_HOST"] = env["GCE_METADATA_IP"] = metadata or f"127.0.0.1:{free_port()}"
    web_identity(env, sts, assume_role_with_web_identity_federation="google",
                 assume_role_with_web_identity_federation_audience=AUDIENCE)
    return gcloud


def plant_id_tokens(trial: Trial, google_issuer, *, issued: bool) -> None:
    """After the run: the ID tokens Google issued meanwhile (``issued``: there must be some)."""
    start = len(google_issuer.issued)

    @trial.after
    def collect():
        tokens = google_issuer.issued[start:]
        assert bool(tokens) == issued, f"Google issued {len(tokens)} ID tokens"
        for i, token in enumerate(tokens):
            trial.plant(f"google_id_token_{i}", token)


def service_account_key(trial: Trial, google_token_endpoint, path: Path) -> None:
    """A service-account key file whose token_uri is the fake endpoint; its private key is
    planted, and after the run the signed grants (JWTs) google-auth sent with it."""
    key = google_token_endpoint.service_account_key(path)["private_key"]
    trial.plant("sa_private_key", key)
    trial.plant("sa_private_key_line", key.splitlines()[5])  # 64 characters from inside

    @trial.after
    def grants():
        sent = {urllib.parse.parse_qs(r["body"].decode()).get("assertion", [""])[0]
                for r in google_token_endpoint.requests if r["kind"] == "jwt-bearer"}
        assert sent, "no grant reached the token endpoint"
        for i, grant in enumerate(sorted(sent)):
            trial.plant(f"jwt_bearer_grant_{i}", grant)


@scenario(0)
def web_identity_token_file_succeeds(env, sts, tmp_path):
    token_file(env, sts, tmp_path, f"  {SECRETS['web_identity_token']}\n".encode())
    return ["--conn", CONN]


@scenario(1)
def web_identity_token_file_refused_by_sts(env, sts, tmp_path):
    token_file(env, sts, tmp_path, SECRETS["web_identity_token"].encode())
    sts.faults.append((400, "InvalidIdentityToken"))
    return ["--conn", CONN]


@scenario(1)
def web_identity_token_file_of_junk(env, sts, tmp_path):
    token_file(env, sts, tmp_path, b"\xff\xfe\x00" + SECRETS["web_identity_token"].encode() + b"\x80")
    return ["--conn", CONN]


@scenario(0)
def web_identity_google_metadata_server_succeeds(env, sts, tmp_path, trial, gce_metadata, google_issuer):
    google_connection(env, sts, tmp_path, gce_metadata.address)
    plant_id_tokens(trial, google_issuer, issued=True)
    return ["--conn", CONN]


@scenario(1)
def web_identity_google_token_refused_by_sts(env, sts, tmp_path, trial, gce_metadata, google_issuer):
    google_connection(env, sts, tmp_path, gce_metadata.address)
    sts.faults.append((403, "AccessDenied"))
    plant_id_tokens(trial, google_issuer, issued=True)
    return ["--conn", CONN]


@scenario(0)
def web_identity_google_service_account_key_succeeds(env, sts, tmp_path, trial, google_token_endpoint,
                                                     google_issuer):
    google_connection(env, sts, tmp_path)
    service_account_key(trial, google_token_endpoint, tmp_path / "sa.json")
    env["GOOGLE_APPLICATION_CREDENTIALS"] = str(tmp_path / "sa.json")
    plant_id_tokens(trial, google_issuer, issued=True)
    return ["--conn", CONN]


@scenario(1)
def web_identity_google_token_endpoint_refuses(env, sts, tmp_path, trial, google_token_endpoint, google_issuer):
    gcloud = google_connection(env, sts, tmp_path)
    service_account_key(trial, google_token_endpoint, gcloud / "application_default_credentials.json")
    google_token_endpoint.refuse = True
    plant_id_tokens(trial, google_issuer, issued=False)
    return ["--conn", CONN]


@scenario(1)
def web_identity_google_service_account_key_unusable(env, sts, tmp_path):
    google_connection(env, sts, tmp_path)
    write(tmp_path / "sa.json", json.dumps({
        "type": "service_account", "project_id": "credproc-test", "private_key_id": "k1",
        "private_key": f"-----BEGIN PRIVATE KEY-----\n{SECRETS['sa_junk_key']}\n-----END PRIVATE KEY-----\n",
        "client_email": "x@credproc-test.iam.gserviceaccount.com", "token_uri": "http://127.0.0.1:1/token"}))
    env["GOOGLE_APPLICATION_CREDENTIALS"] = str(tmp_path / "sa.json")
    return ["--conn", CONN]


@scenario(1)
def web_identity_google_adc_file_not_json(env, sts, tmp_path):
    gcloud = google_connection(env, sts, tmp_path)
    write(gcloud / "application_default_credentials.json",
          '{"type": "authorized_user", "refresh_token": "%s", ' % SECRETS["adc_junk"])
    return ["--conn", CONN]


@scenario(1)
def web_identity_google_user_login_unreachable(env, sts, tmp_path):
    gcloud = google_connection(env, sts, tmp_path)
    write(gcloud / "application_default_credentials.json", json.dumps({
        "type": "authorized_user", "client_id": "764086051850-test.apps.googleusercontent.com",
        "client_secret": SECRETS["adc_client_secret"], "refresh_token": SECRETS["adc_refresh_token"]}))
    # google-auth sends the refresh to Google's fixed https URL, whatever the file says: a
    # proxy nothing listens on makes that fail at once, offline or not.
    env["HTTPS_PROXY"] = "http://127.0.0.1:1"
    return ["--conn", CONN]


@scenario(1)
def web_identity_google_metadata_never_answers(env, sts, tmp_path, trial, blackhole):
    google_connection(env, sts, tmp_path, blackhole.address)
    env.update(GCE_METADATA_TIMEOUT="0.5", GCE_METADATA_DETECT_RETRIES="1")
    # Keys in the environment are not used by the unsigned call: nor may they be shown.
    env.update(AWS_ACCESS_KEY_ID=SOURCE_KEY, AWS_SECRET_ACCESS_KEY=SECRETS["environment_secret"],
               AWS_SESSION_TOKEN=SECRETS["environment_token"])

    @trial.after
    def probed():
        assert blackhole.accepted >= 1, "the probe never reached the metadata address"

    return ["--conn", CONN]


@scenario(0, command="check")
def check_a_web_identity_token_file(env, sts, tmp_path):
    token_file(env, sts, tmp_path, SECRETS["web_identity_token"].encode())
    return ["check", CONN]


# -- serve and exec ----------------------------------------------------------------------------------

# A child of exec that signs with what it got (the server's credentials, or the variables) and
# prints only who it is.
EXEC_CHILD = ("import boto3, sys; print(boto3.client('sts', endpoint_url=sys.argv[1], region_name='us-east-1')"
              ".get_caller_identity()['Account'])")


@scenario(0, command="exec", debug=False)  # a trailing --debug would be the child's argument
def exec_served_role_from_uri(env, sts, tmp_path):
    env[VARIABLE] = uri(sts.url, role_arn=ROLE_ARN, aws_session_token=SECRETS["uri_token"])
    return ["exec", "--conn", CONN, "--", sys.executable, "-c", EXEC_CHILD, sts.url]


@scenario(0, command="exec", debug=False)
def exec_no_server_role_signed_by_environment_keys(env, sts, tmp_path):
    env[VARIABLE] = uri(sts.url, login="", role_arn=ROLE_ARN)
    env.update(AWS_ACCESS_KEY_ID=SOURCE_KEY, AWS_SECRET_ACCESS_KEY=SECRETS["environment_secret"],
               AWS_SESSION_TOKEN=SECRETS["environment_token"])
    return ["exec", "--conn", CONN, "--no-server", "--", sys.executable, "-c", EXEC_CHILD, sts.url]


@scenario(1, command="exec", debug=False)
def exec_sts_refuses(env, sts, tmp_path):
    env[VARIABLE] = uri(sts.url, role_arn=ROLE_ARN, aws_session_token=SECRETS["uri_token"])
    sts.faults.append((403, "AccessDenied"))
    return ["exec", "--conn", CONN, "--", "true"]


@scenario(2, command="exec", debug=False)
def exec_json_with_a_syntax_error_after_the_password(env, sts, tmp_path):
    env[VARIABLE] = '{"login": "%s", "password": "%s", "extra": {"role_arn": ' % (SOURCE_KEY, SECRETS["json_password"])
    return ["exec", "--conn", CONN, "--no-server", "--", "true"]


def ask_then_stop_the_server(env: dict, trial: Trial) -> None:
    """In a thread: once ``credproc serve`` has written its token file, plant the token, ask
    for the credentials as an SDK does, and stop the server (SIGTERM)."""
    import http.client
    import signal
    import threading

    run_dir = Path(env["XDG_RUNTIME_DIR"]) / "credproc"
    marker = f"CREDPROC_CACHE_DIR={env['CREDPROC_CACHE_DIR']}".encode()

    def server_pids() -> list[int]:
        pids = []
        for proc in Path("/proc").iterdir():
            try:
                if proc.name.isdigit() and marker in (proc / "environ").read_bytes().split(b"\0") \
                        and b"serve" in (proc / "cmdline").read_bytes().split(b"\0"):
                    pids.append(int(proc.name))
            except OSError:
                continue
        return pids

    def work() -> None:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not list(run_dir.glob("server-*.token")):
            time.sleep(0.05)
        try:
            token_path = next(run_dir.glob("server-*.token"))
            token = token_path.read_text()
            trial.plant("server_token", token)
            port = int(token_path.name.split("-")[1].split(".")[0])
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            connection.request("GET", f"/credentials/{CONN}", headers={"Host": f"127.0.0.1:{port}",
                                                                       "Authorization": token})
            answer = connection.getresponse()
            # What it served is what STS issued, in the cache entry: the scan looks for it there
            answered.append((answer.status, "SecretAccessKey" in json.loads(answer.read())))
        finally:
            for pid in server_pids():
                os.kill(pid, signal.SIGTERM)

    def served() -> None:
        thread.join(30)
        assert answered == [(200, True)], answered  # the path under test was taken

    answered: list[tuple[int, bool]] = []
    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    trial.after(served)


def serve_environment(env: dict, tmp_path: Path) -> None:
    env["XDG_RUNTIME_DIR"] = str(tmp_path / "run")
    (tmp_path / "run").mkdir(mode=0o700, exist_ok=True)


@scenario(0, command="serve")
def serve_role_signed_by_session_kwargs(env, sts, tmp_path, trial):
    serve_environment(env, tmp_path)
    env[VARIABLE] = uri(sts.url, login="", role_arn=ROLE_ARN, session_kwargs={
        "aws_access_key_id": SOURCE_KEY, "aws_secret_access_key": SECRETS["session_kwargs_secret"]})
    ask_then_stop_the_server(env, trial)
    return ["serve", "--conn", CONN]


@scenario(1, command="serve")
def serve_sts_refuses(env, sts, tmp_path):
    serve_environment(env, tmp_path)
    env[VARIABLE] = uri(sts.url, role_arn=ROLE_ARN, aws_session_token=SECRETS["uri_token"])
    sts.faults.append((403, "AccessDenied"))
    return ["serve", "--conn", CONN]


@scenario(2, command="serve")
def serve_toml_with_a_syntax_error_after_the_password(env, sts, tmp_path):
    serve_environment(env, tmp_path)
    write(env["CREDPROC_CONFIG"], f'[connections.{CONN}]\npassword = "{SECRETS["toml_password"]}"\n'
                                  f'aws_session_token = "{SECRETS["toml_token"]}" role_arn = \n')
    return ["serve", "--conn", CONN, "--format", "fish"]


# -- the scan ------------------------------------------------------------------------------------------

TRIALS = [(name, debug) for name, case in SCENARIOS.items() for debug in ((False, True) if case.debug else (False,))]
# What a cache entry's first line is (see credproc.cache); the rest is the credential JSON.
HEADER = re.compile(r"credproc-cache 2 [0-9a-f]{64} \d+\.\d{3} \d+\.\d{3} [0-9a-f]+ "
                    r"(- - 0 -|\d+\.\d{3} \d+\.\d{3} [1-9]\d* [0-9a-f]+) [0-9a-f]{32}")
# The record of the variables a bucket's entries depend on: names only, never values.
VARIABLES = re.compile(r"credproc-vars 2 [0-9a-f]{64} (-|[A-Z0-9_]+(,[A-Z0-9_]+)*) [0-9a-f]{32}\n")
# stderr_verdict wants a successful run to print credential JSON: a command prints text
# (scanned whole below), so it is shown this in its place.
STAND_IN_JSON = '{"Version": 1, "AccessKeyId": "stand-in", "SecretAccessKey": "stand-in"}\n'


def files_below(root: Path) -> dict[Path, tuple]:
    out = {}
    for p in root.rglob("*"):
        st_ = p.lstat()
        out[p] = (st_.st_mtime_ns, st_.st_size, st_.st_ino)
    return out


def issued_credentials(result: subprocess.CompletedProcess, case: Scenario, changed: set[Path]) -> dict[str, str]:
    """What STS issued in this run, by name: from the main job's JSON, and from the cache
    entries the run wrote (a command prints them otherwise, or not at all)."""
    bodies = []
    if case.command == "main" and result.returncode == 0:
        bodies.append(credentials_only(result.stdout))
    for path in sorted(changed):
        if path.suffix == ".entry" and path.is_file() and not path.is_symlink():
            bodies.append(json.loads(path.read_text().partition("\n")[2]))
    issued: dict[str, str] = {}
    for out in bodies:
        if not out.get("Expiration"):  # long-term keys, printed as given: planted, not issued
            continue
        for key in ("SecretAccessKey", "SessionToken"):
            if out.get(key) and out[key] not in issued.values():
                issued[f"issued_{key}_{len(issued) // 2}"] = out[key]
    return issued


@pytest.mark.parametrize("name, debug", [
    pytest.param(name, debug, id=f"{name}-{'debug' if debug else 'plain'}-{i}of{len(TRIALS)}")
    for i, (name, debug) in enumerate(TRIALS, 1)])
def test_no_secret_leaves_its_place(request, env, run, tmp_path, name, debug):
    case = SCENARIOS[name]
    trial = Trial()
    args = case.setup(**{p: trial if p == "trial" else request.getfixturevalue(p) for p in case.fixtures})
    if debug:
        args = [*args, "--debug"]
    stdin = {"stdin": None, "input": trial.stdin} if trial.stdin is not None else {}
    before = files_below(tmp_path)
    result = run(args, env, timeout=120, **stdin)
    changed = {p for p, meta in files_below(tmp_path).items() if before.get(p) != meta}
    for hook in trial.hooks:
        hook()

    assert result.returncode == case.code, f"exit {result.returncode}: {result.stderr}"
    if not debug:  # --debug adds log lines and tracebacks, by design
        stderr_verdict(result if case.command == "main" or result.returncode
                       else subprocess.CompletedProcess(result.args, 0, STAND_IN_JSON, result.stderr))
    if result.returncode != 0:
        assert result.stdout == "", f"stdout of a failed run: {result.stdout[:300]!r}"
    elif case.command == "main":
        credentials_only(result.stdout)

    issued = issued_credentials(result, case, changed)
    secrets = {**SECRETS, **trial.planted, **issued}
    assert leaks(result.stderr, secrets) == [], f"stderr shows {leaks(result.stderr, secrets)}:\n{result.stderr}"

    on_stdout = set(case.printed) | (set(issued) if case.command == "main" or case.prints_issued else set())
    assert leaks(result.stdout, secrets, on_stdout) == [], \
        f"stdout shows {leaks(result.stdout, secrets, on_stdout)}:\n{result.stdout}"
    if result.returncode == 0:  # what the output is made of, it shows: the scan knows what to let pass
        made_of = set(case.printed) | (set(issued) if case.prints_issued else set())
        assert not case.prints_issued or issued, "no issued credentials found: where did env get its output?"
        assert set(leaks(result.stdout, {n: secrets[n] for n in made_of})) == made_of, result.stdout

    for path in sorted(changed):
        shown = str(path.relative_to(tmp_path))
        assert leaks(shown, secrets) == [], f"a secret in the file name {shown}: {leaks(shown, secrets)}"
        if not path.is_file() or path.is_symlink():
            continue
        data = path.read_bytes().decode("utf-8", "replace")
        found = set(leaks(data, secrets))
        allowed = set(trial.allowed.get(path, ()))
        if found & set(issued):  # allowed in one place: a cache entry's body, the credential JSON
            header, _, body = data.partition("\n")
            assert path.suffix == ".entry" and HEADER.fullmatch(header), \
                f"issued credentials in {shown}, which is not a cache entry"
            credentials_only(body + "\n")
            if case.command == "main":
                assert body + "\n" == result.stdout, f"{shown} holds more (or less) than what was printed"
            allowed |= set(issued)
        assert found <= allowed, f"{shown} holds {sorted(found - allowed)}"


def test_planted_secrets_are_told_apart():
    """No form of one planted secret is found in another: a hit names the one that leaked,
    and a secret allowed somewhere (in a keyring file, say) hides no other."""
    for name, value in SECRETS.items():
        assert leaks(value, {other: v for other, v in SECRETS.items() if other != name}) == [], name


def test_every_command_and_method_has_scenarios_that_succeed_and_fail():
    """The registry covers what issue 8 names: each people-facing command, the main job,
    SAML and web identity, each both succeeding and failing."""
    from credproc.cli import COMMANDS

    outcomes: dict[str, set[bool]] = {}
    for name, case in SCENARIOS.items():
        outcomes.setdefault(case.command, set()).add(case.code == 0)
        for method in ("saml", "web_identity"):
            if name.startswith(method):
                outcomes.setdefault(method, set()).add(case.code == 0)
    for what in ("main", "saml", "web_identity", *COMMANDS):
        # list never fails: a broken definition is a row of its own (list_json_with_broken_definitions)
        assert outcomes.get(what) == ({True} if what == "list" else {True, False}), what


# -- what a cache entry holds -------------------------------------------------------------------------


def test_entry_is_0600_in_a_0700_directory_and_holds_only_the_output(sts, env, run):
    env[VARIABLE] = uri(sts.url, role_arn=ROLE_ARN, aws_session_token=SECRETS["uri_token"])
    result = run(["--conn", CONN], env, preexec_fn=lambda: os.umask(0o002))
    out = credentials_only(result.stdout)
    directory = Path(env["CREDPROC_CACHE_DIR"])
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    names = sorted((p.suffix, p.name) for p in directory.iterdir())
    assert [suffix for suffix, _ in names] == [".entry", ".lock", ".vars"], names
    entry, lock, variables = (directory / name for _, name in names)
    assert VARIABLES.fullmatch(variables.read_text()), variables.read_text()
    assert variables.read_text().split(" ")[3] == "-", "a connection with its own keys, region and endpoint"
    for path in (entry, lock, variables):
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
