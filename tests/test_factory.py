"""Custom session factories end to end: the installed ``credproc`` executable, factories
imported from ``tests/plugins`` through ``PYTHONPATH`` (or registered as an entry point),
and the local STS when a role is assumed.

The seed's example (``plugins/seed_factory.py``, unchanged but for its import line) is the
main subject: its federation function (``plugins/federation_api.py``) appends a line to a
counter file at every call, so the tests see how often credproc really federated.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from helpers import ACCOUNT, ROLE_ARN, ok, one_error, sts_endpoint, toml_value
from servers.federation import FEDERATION_PASSWORD

pytestmark = pytest.mark.integration

PLUGINS = Path(__file__).resolve().parent / "plugins"
SEED = "seed_factory.MyCustomSessionFactory"
OTHER = "factory_zoo.OtherFactory"
NESTED = "factory_zoo:Outer.Inner"
SEED_KEYS = {"AccessKeyId": "key", "SecretAccessKey": "secret", "SessionToken": "token",
             "Expiration": "2050-12-31T00:00:00Z"}


# -- helpers ---------------------------------------------------------------------------------


@pytest.fixture
def fenv(env):
    """The isolated environment, with the test plugins importable."""
    return {**env, "PYTHONPATH": str(PLUGINS)}


@pytest.fixture
def counter(tmp_path) -> Path:
    return tmp_path / "federation-calls"


def calls(counter: Path) -> int:
    """How many times the federation function ran."""
    return len(counter.read_text().splitlines()) if counter.exists() else 0


def federation(counter: Path, **more) -> dict:
    return {"username": "alice", "counter_file": str(counter), **more}


def json_conn(**extra) -> str:
    """A connection in Airflow's JSON form, for CREDPROC_CONN_<ID>."""
    return json.dumps({"conn_type": "aws", "extra": {"region_name": "us-east-1", **extra}})


def write_config(env: dict, tables: dict[str, dict], **top) -> None:
    """The config file: top-level settings, and a [connections.<id>] table per entry."""
    lines = [f"{key} = {toml_value(value)}" for key, value in top.items()]
    for conn_id, table in tables.items():
        lines.append(f"[connections.{conn_id}]")
        lines += [f"{key} = {toml_value(value)}" for key, value in table.items()]
    Path(env["CREDPROC_CONFIG"]).write_text("\n".join(lines) + "\n")


# -- the seed's example ----------------------------------------------------------------------


def test_seed_example_prints_its_credentials_and_caches_them(fenv, run, counter):
    fenv["CREDPROC_CONN_FED"] = json_conn(federation=federation(counter))

    first = run(["--conn", "fed", "--session-factory", SEED], fenv)
    out = ok(first)
    assert {k: out.get(k) for k in SEED_KEYS} == SEED_KEYS
    assert "AccountId" not in out  # the federation did not say
    assert calls(counter) == 1
    assert first.stderr == ""  # self.log's debug and info lines show only with --debug

    second = run(["--conn", "fed", "--session-factory", SEED], fenv)
    assert second.stdout == first.stdout and second.stderr == ""
    assert calls(counter) == 1  # served from the cache: the federation did not run again
    # A cache entry was written for it, holding the printed JSON.
    [entry] = Path(fenv["CREDPROC_CACHE_DIR"]).glob("fed--*.entry")
    assert entry.read_text().splitlines()[1] == first.stdout.strip()


def test_seed_example_logs_to_stderr_only(fenv, run, counter):
    fenv["CREDPROC_CONN_FED"] = json_conn(federation=federation(counter))

    result = run(["--conn", "fed", "--session-factory", SEED, "--debug"], fenv)
    out = ok(result)
    assert out["AccessKeyId"] == "key"
    logger = "credproc.factory.seed_factory.MyCustomSessionFactory"
    assert f"credproc: DEBUG: {logger}: Refreshing federated AWS credentials" in result.stderr
    assert f"credproc: INFO: {logger}: New federated AWS credentials received with aws_access_key_id=key" \
        in result.stderr
    assert "Creating federated session with username=alice region_name=us-east-1" in result.stderr


def test_whatever_a_factory_prints_goes_to_stderr(fenv, run):
    fenv["CREDPROC_CONN_LOUD"] = json_conn()

    result = run(["--conn", "loud", "--session-factory", "factory_zoo.PrintingFactory"], fenv)
    assert ok(result)["AccessKeyId"] == "AKIDPRINTING"
    for text in ("print() from the factory", "a handler on the real stdout", "a child process of the factory",
                 "an unflushed write", "self.log from the factory"):
        assert text in result.stderr, text


# -- choosing the factory --------------------------------------------------------------------


def test_where_the_factory_is_named_and_which_wins(fenv, run, counter):
    """Highest first: --session-factory, the connection's key, CREDPROC_SESSION_FACTORY, the
    config file's top-level key. Each change is a new cache identity, so every run below
    really asks the factory it names (a stale entry would print the other one's keys)."""
    table = {"region_name": "us-east-1", "federation": federation(counter)}

    write_config(fenv, {"fed": table}, session_factory=SEED)  # the file's top-level key alone
    assert ok(run(["--conn", "fed"], fenv))["AccessKeyId"] == "key"

    fenv["CREDPROC_SESSION_FACTORY"] = OTHER  # the environment beats the file's default
    assert ok(run(["--conn", "fed"], fenv))["AccessKeyId"] == "AKIDOTHERFACTORY"

    write_config(fenv, {"fed": {**table, "session_factory": SEED}}, session_factory=OTHER)
    assert ok(run(["--conn", "fed"], fenv))["AccessKeyId"] == "key"  # the connection's key beats both

    # The flag beats everything.
    assert ok(run(["--conn", "fed", "--session-factory", NESTED], fenv))["AccessKeyId"] == "AKIDNESTEDFACTORY"
    assert ok(run(["--conn", "fed", f"--session-factory={NESTED}", "--debug"],
                  fenv))["AccessKeyId"] == "AKIDNESTEDFACTORY"

    # Without any: credproc's own factory, which finds no credentials for this connection.
    write_config(fenv, {"fed": table})
    del fenv["CREDPROC_SESSION_FACTORY"]
    one_error(run(["--conn", "fed"], fenv), 1, "no AWS credentials found", alone=False)


def test_the_flag_and_the_environment_naming_one_factory_over_the_connections_own(fenv, run, counter):
    fenv["CREDPROC_CONN_FED"] = json_conn(federation=federation(counter), session_factory=SEED)
    fenv["CREDPROC_SESSION_FACTORY"] = OTHER
    assert ok(run(["--conn", "fed"], fenv))["AccessKeyId"] == "key"  # the connection's own key wins
    assert ok(run(["--conn", "fed", "--session-factory", OTHER], fenv))["AccessKeyId"] == "AKIDOTHERFACTORY"


def test_the_config_files_default_applies_to_its_own_connections(fenv, run, counter):
    """The file's top-level session_factory is the default for the connections it defines;
    a connection defined in the environment is not the file's and keeps credproc's own."""
    write_config(fenv, {"fed": {"region_name": "us-east-1", "federation": federation(counter)}},
                 session_factory=SEED)
    fenv["CREDPROC_CONN_KEYS"] = json.dumps({"login": "AKIAENVIRONMENTKEYS1", "password": "env-secret-key-0001"})
    assert ok(run(["--conn", "fed"], fenv))["AccessKeyId"] == "key"
    assert ok(run(["--conn", "keys"], fenv))["AccessKeyId"] == "AKIAENVIRONMENTKEYS1"


def test_module_colon_class_and_nested_classes(fenv, run, counter):
    fenv["CREDPROC_CONN_FED"] = json_conn(federation=federation(counter))
    assert ok(run(["--conn", "fed", "--session-factory", "seed_factory:MyCustomSessionFactory"],
                  fenv))["AccessKeyId"] == "key"
    assert ok(run(["--conn", "fed", "--session-factory", "factory_zoo:Outer.Inner"],
                  fenv))["AccessKeyId"] == "AKIDNESTEDFACTORY"


def test_entry_point_short_name(env, run, counter, tmp_path):
    """A package that registers its factory in the entry point group credproc.session_factories
    (here a bare *.dist-info directory on PYTHONPATH, as pip would install it)."""
    site = tmp_path / "site"
    dist_info = site / "corp_federation_plugin-1.0.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: corp-federation-plugin\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text(
        "[credproc.session_factories]\ncorp = seed_factory:MyCustomSessionFactory\n"
        "other = factory_zoo:OtherFactory\nnot-one = factory_zoo:NotAFactory\n")
    fenv = {**env, "PYTHONPATH": f"{site}:{PLUGINS}"}
    fenv["CREDPROC_CONN_FED"] = json_conn(federation=federation(counter), session_factory="corp")

    out = ok(run(["--conn", "fed"], fenv))
    assert {k: out.get(k) for k in SEED_KEYS} == SEED_KEYS
    assert ok(run(["--conn", "fed", "--session-factory", "other"], fenv))["AccessKeyId"] == "AKIDOTHERFACTORY"
    one_error(run(["--conn", "fed", "--session-factory", "nosuch"], fenv), 2,
              "connection 'fed': session factory 'nosuch' (named by --session-factory)",
              "entry point group 'credproc.session_factories'", "registered: corp, not-one, other", alone=False)
    one_error(run(["--conn", "fed", "--session-factory", "not-one"], fenv), 2,
              "'factory_zoo:NotAFactory'", "is not a subclass of credproc.BaseSessionFactory", alone=False)


def test_switching_factories_never_serves_the_others_credentials(fenv, run, counter, tmp_path):
    other_counter = tmp_path / "other-calls"
    fenv["CREDPROC_CONN_FED"] = json_conn(federation=federation(counter), other_counter=str(other_counter))

    def key(*args: str, **variables: str) -> str:
        return ok(run(["--conn", "fed", *args], {**fenv, **variables}))["AccessKeyId"]

    assert key("--session-factory", SEED) == "key"
    assert key("--session-factory", OTHER) == "AKIDOTHERFACTORY"
    assert key(CREDPROC_SESSION_FACTORY=SEED) == "key"
    assert key(CREDPROC_SESSION_FACTORY=OTHER) == "AKIDOTHERFACTORY"
    # Back to the first ones: each is served from its own entry.
    assert key("--session-factory", SEED) == "key"
    assert key("--session-factory", OTHER) == "AKIDOTHERFACTORY"
    assert calls(counter) == 2 and calls(other_counter) == 2  # flag and environment: one fetch each


# -- a role assumed with the factory's credentials ---------------------------------------------


def test_role_arn_is_assumed_with_the_factorys_session(sts, fenv, run, counter):
    fenv["CREDPROC_CONN_FED"] = json_conn(federation=federation(counter), role_arn=ROLE_ARN,
                                          **sts_endpoint(sts.url))
    before = time.time()
    out = ok(run(["--conn", "fed", "--session-factory", SEED], fenv))

    # The output is the role's, not the federation's.
    assert out["AccessKeyId"] not in ("key", "") and out["SessionToken"] != "token"
    assert out["AccountId"] == ACCOUNT
    expires = datetime.strptime(out["Expiration"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    assert before + 3000 < expires.timestamp() < time.time() + 3700
    # AssumeRole was signed with the federated credentials.
    [request] = [r for r in sts.requests if r["action"] == "AssumeRole"]
    headers = {k.lower(): v for k, v in request["headers"].items()}
    assert "Credential=key/" in headers["authorization"]
    assert headers["x-amz-security-token"] == "token"
    assert request["params"]["RoleArn"] == ROLE_ARN
    assert request["params"]["RoleSessionName"] == "credproc-fed"
    assert calls(counter) == 1

    assert ok(run(["--conn", "fed", "--session-factory", SEED], fenv)) == out  # cached
    assert sts.count("AssumeRole") == 1 and calls(counter) == 1


def test_role_arn_with_a_factory_session_without_credentials(sts, fenv, run):
    fenv["CREDPROC_CONN_FED"] = json_conn(role_arn=ROLE_ARN, **sts_endpoint(sts.url))
    one_error(run(["--conn", "fed", "--session-factory", "factory_zoo.NoCredentialsFactory"], fenv), 2,
              "connection 'fed': session factory factory_zoo.NoCredentialsFactory returned a session without "
              "credentials", alone=False)
    assert sts.count("AssumeRole") == 0


# -- extra keys ------------------------------------------------------------------------------


def test_unknown_extra_keys_are_the_factorys_own(fenv, run, counter):
    fenv["CREDPROC_CONN_FED"] = json_conn(federation=federation(counter))
    result = run(["--conn", "fed", "--session-factory", SEED], fenv)
    ok(result)
    assert "warning" not in result.stderr

    # Without a factory, the same key is unknown to credproc and says so.
    fenv["CREDPROC_CONN_KEYS"] = json.dumps({"login": "AKIAENVIRONMENTKEYS1", "password": "env-secret-key-0001",
                                             "extra": {"federation": federation(counter)}})
    result = run(["--conn", "keys"], fenv)
    ok(result)
    assert "credproc: warning: connection 'keys'" in result.stderr
    assert "unknown extra key 'federation' is ignored" in result.stderr


# -- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec, fragments", [
    ("nosuchmodule.Factory", ["session factory 'nosuchmodule.Factory' (named by --session-factory)",
                              "cannot import module 'nosuchmodule'",
                              "ModuleNotFoundError: No module named 'nosuchmodule'",
                              "it must be installed for", "or be on PYTHONPATH"]),
    ("broken_factory.BrokenFactory", ["cannot import module 'broken_factory'",
                                      "No module named 'nonexistent_federation_sdk'"]),
    ("seed_factory.NoSuchClass", ["module 'seed_factory'", "seed_factory.py", "has no attribute 'NoSuchClass'"]),
    ("factory_zoo:Outer.Missing", ["has no attribute 'Outer.Missing'"]),
    ("factory_zoo.NotAFactory", ["'factory_zoo.NotAFactory'", "is not a subclass of credproc.BaseSessionFactory",
                                 "it is the class factory_zoo.NotAFactory"]),
    ("factory_zoo.not_a_class", ["is not a subclass of credproc.BaseSessionFactory", "it is a function"]),
    ("factory_zoo.NoCredentialsFactory", ["session factory factory_zoo.NoCredentialsFactory returned a "
                                          "session without credentials"]),
    ("factory_zoo.BotocoreSessionFactory", ["session factory factory_zoo.BotocoreSessionFactory returned "
                                            "botocore.session.Session, not a boto3.session.Session",
                                            "boto3.session.Session(botocore_session=...)"]),
    ("factory_zoo:", ["expected package.module.ClassName, module:ClassName or an entry point name"]),
])
def test_configuration_errors_exit_2_with_one_line(fenv, run, spec, fragments):
    fenv["CREDPROC_CONN_FED"] = json_conn()
    line = one_error(run(["--conn", "fed", "--session-factory", spec], fenv), 2, "connection 'fed'", *fragments,
                     alone=False)
    assert "Traceback" not in line


def test_errors_name_where_the_factory_was_named(fenv, run):
    write_config(fenv, {"fed": {"region_name": "us-east-1", "session_factory": "nosuchmodule.A"},
                        "plain": {"region_name": "us-east-1"}}, session_factory="nosuchmodule.B")
    one_error(run(["--conn", "fed"], fenv), 2, "session factory 'nosuchmodule.A' (named by session_factory in config "
              f"file {fenv['CREDPROC_CONFIG']} [connections.fed])", alone=False)
    one_error(run(["--conn", "plain"], fenv), 2, "session factory 'nosuchmodule.B' (named by session_factory at the "
              f"top of config file {fenv['CREDPROC_CONFIG']})", alone=False)
    one_error(run(["--conn", "plain"], {**fenv, "CREDPROC_SESSION_FACTORY": "nosuchmodule.C"}), 2,
              "session factory 'nosuchmodule.C' (named by CREDPROC_SESSION_FACTORY)", alone=False)
    write_config(fenv, {"fed": {"session_factory": 42}})
    one_error(run(["--conn", "fed"], fenv), 2, "connection 'fed': session_factory in config file",
              "must be a string such as package.module.ClassName, not int", alone=False)


def test_an_exception_in_the_factory_is_exit_1_with_its_message(fenv, run, counter):
    password = "fed-password-do-not-show-1"
    fenv["CREDPROC_CONN_FED"] = json_conn(federation=federation(
        counter, password=password, fail=f"federation endpoint refused alice/{password}"))

    line = one_error(run(["--conn", "fed", "--session-factory", SEED], fenv), 1,
                     "connection 'fed': session factory seed_factory.MyCustomSessionFactory failed: RuntimeError: "
                     "federation endpoint refused alice/****", "(run with --debug for the traceback)", alone=False)
    assert password not in line

    debug = run(["--conn", "fed", "--session-factory", SEED, "--debug"], fenv)
    assert debug.returncode == 1 and debug.stdout == ""
    assert "Traceback (most recent call last)" in debug.stderr
    assert 'federation_api.py", line' in debug.stderr  # the user's own frame is shown
    assert debug.stderr.strip().splitlines()[-1].startswith("credproc: error: connection 'fed': session factory")
    assert "--debug for the traceback" not in debug.stderr
    assert password not in debug.stderr
    assert not list(Path(fenv["CREDPROC_CACHE_DIR"]).glob("*.entry"))  # failures are not cached


def test_an_exception_while_building_the_basic_session(fenv, run):
    fenv["CREDPROC_CONN_FED"] = json_conn(user="bob")
    one_error(run(["--conn", "fed", "--session-factory", "factory_zoo.RaisingFactory"], fenv), 1,
              "session factory factory_zoo.RaisingFactory failed: ValueError: the federation refused user bob",
              alone=False)


# -- secrets ---------------------------------------------------------------------------------


def test_secret_from_the_definition_is_masked(fenv, run):
    password = "definition-password-0001"
    fenv["CREDPROC_CONN_SEC"] = json_conn(federation={"password": password}, expect=password)
    result = run(["--conn", "sec", "--session-factory", "factory_zoo.SecretFactory"], fenv)
    assert ok(result)["AccessKeyId"] == "AKIDSECRETFACTORY"
    assert "signing in with password ****" in result.stderr and password not in result.stderr

    fenv["CREDPROC_CONN_SEC"] = json_conn(federation={"password": "a-wrong-password-0002"}, expect=password)
    line = one_error(run(["--conn", "sec", "--session-factory", "factory_zoo.SecretFactory"], fenv), 1,
                     "RuntimeError: wrong password ****", alone=False)
    assert "a-wrong-password-0002" not in line


def test_secret_missing_everywhere_is_a_configuration_error(fenv, run):
    pytest.importorskip("keyrings.alt")
    fenv["PYTHON_KEYRING_BACKEND"] = "keyrings.alt.file.PlaintextKeyring"
    fenv["CREDPROC_CONN_SEC"] = json_conn(federation={"username": "alice"})
    one_error(run(["--conn", "sec", "--session-factory", "factory_zoo.SecretFactory"], fenv), 2,
              "connection 'sec' (environment variable CREDPROC_CONN_SEC): no secret 'federation.password'",
              "credproc secret set sec --field federation.password", alone=False)


def test_secret_from_the_keyring(fenv, run):
    """Not in the definition: the OS keyring (here keyrings.alt's file backend under the test's HOME),
    where `credproc secret set sec --field federation.password` puts it."""
    pytest.importorskip("keyrings.alt")
    password = "keyring-password-0003"
    fenv["PYTHON_KEYRING_BACKEND"] = "keyrings.alt.file.PlaintextKeyring"
    stored = subprocess.run([sys.executable, "-c", "import keyring, sys; keyring.set_password(*sys.argv[1:])",
                             "credproc", "sec:federation.password", password],
                            env=fenv, capture_output=True, text=True, check=False)
    assert stored.returncode == 0, stored.stderr
    fenv["CREDPROC_CONN_SEC"] = json_conn(federation={"username": "alice"}, expect=password)

    result = run(["--conn", "sec", "--session-factory", "factory_zoo.SecretFactory"], fenv)
    assert ok(result)["AccessKeyId"] == "AKIDSECRETFACTORY"
    assert "signing in with password ****" in result.stderr and password not in result.stderr


# -- examples/factory: the example factory, its profile and its connection ------------------


EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "factory"


def test_example_factory_with_its_profile_and_connection(sts, env, run, credproc_bin, federation_endpoint):
    """examples/factory as a user would set it up: the profile runs credproc through
    /usr/bin/env PYTHONPATH=<the example's directory>, the connection is the example's TOML
    pointed at a local endpoint, the password is in the OS keyring, and the AWS CLI uses it."""
    pytest.importorskip("keyrings.alt")
    import configparser
    import shlex

    endpoint = federation_endpoint
    password = FEDERATION_PASSWORD
    toml_text = (EXAMPLE / "credproc.toml").read_text()
    assert toml_text.startswith("# ") and "https://federation.example.com/aws/credentials" in toml_text
    Path(env["CREDPROC_CONFIG"]).write_text(
        toml_text.replace("https://federation.example.com/aws/credentials", endpoint.url))
    config_text = (EXAMPLE / "config").read_text()
    assert config_text.startswith("# ") and "/opt/credproc-factories" in config_text
    Path(env["AWS_CONFIG_FILE"]).write_text(
        config_text.replace("/usr/local/bin/credproc", str(credproc_bin))
        .replace("/opt/credproc-factories", str(EXAMPLE)))
    env["PYTHON_KEYRING_BACKEND"] = "keyrings.alt.file.PlaintextKeyring"
    stored = subprocess.run([sys.executable, "-c", "import keyring, sys; keyring.set_password(*sys.argv[1:])",
                             "credproc", "corp:federation.password", password],
                            env=env, capture_output=True, text=True, check=False)
    assert stored.returncode == 0, stored.stderr

    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(Path(env["AWS_CONFIG_FILE"]).read_text())
    argv = shlex.split(parser["profile corp"]["credential_process"])
    direct = subprocess.run(argv, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)
    out = ok(direct)
    assert direct.stderr == ""  # no warning about the factory's own `federation` key
    assert out["AccessKeyId"] == "ASIAFEDERATEDEXAMPLE" and out["SessionToken"] == "federated-session-token"
    assert out["Expiration"] == endpoint.expiration
    assert endpoint.requests == [{"username": "alice", "password": password}]

    for _ in range(2):  # the AWS CLI, through the profile: served from credproc's cache
        cli = subprocess.run([str(credproc_bin.parent / "aws"), "sts", "get-caller-identity", "--profile", "corp",
                              "--endpoint-url", sts.url, "--output", "json"],
                             env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)
        assert cli.returncode == 0, cli.stderr
        assert json.loads(cli.stdout)["Account"]
    assert len(endpoint.requests) == 1
    assert sts.count("GetCallerIdentity") == 2

    # A refusal is exit 1, one line with the endpoint's answer; the password never shows.
    env["CREDPROC_CONN_CORP"] = json.dumps({"extra": {
        "session_factory": "corp_federation.CorpFederationFactory", "region_name": "eu-west-1",
        "federation": {"url": endpoint.url, "username": "alice", "password": "not-the-password-2"}}})
    line = one_error(run(["--conn", "corp"], {**env, "PYTHONPATH": str(EXAMPLE)}), 1,
                     "session factory corp_federation.CorpFederationFactory failed: FederationError: "
                     f"{endpoint.url} refused alice: HTTP 401", alone=False)
    assert "not-the-password-2" not in line


# -- pure logic, in process ---------------------------------------------------------------------


def test_secret_lookup_order_and_errors():
    from credproc.connection import AwsConnection
    from credproc.errors import ConfigError
    from credproc.factory import BaseSessionFactory
    from credproc.log import redact

    class Stored(BaseSessionFactory):
        asked: list[str] = []

        def _stored_secret(self, field):  # the extension point: stands for the keyring here
            self.asked.append(field)
            return {"federation.otp_seed": "stored-otp-seed-000001"}.get(field)

    conn = AwsConnection(conn_id="u", origin="test", password="conn-password-000001",
                         extra_config={"federation": {"password": "extra-password-000001", "port": 8443,
                                                      "client_secret": "client-secret-000001"}})
    factory = Stored(conn)
    assert factory.secret("password") == "conn-password-000001"
    assert factory.secret("federation.password") == "extra-password-000001"
    assert factory.asked == []  # the definition answered: the store is not asked
    assert factory.secret("federation.otp_seed") == "stored-otp-seed-000001"
    assert factory.secret("federation.nothing", required=False) is None
    with pytest.raises(ConfigError, match=r"connection 'u' \(test\): no secret 'federation.nothing'"):
        factory.secret("federation.nothing")
    with pytest.raises(ConfigError, match="federation.port must be a string, not int"):
        factory.secret("federation.port")
    # Every value read as a secret, and every secret-named key of the extra, is masked from then on.
    assert redact("stored-otp-seed-000001 client-secret-000001 8443") == "**** **** 8443"


def test_secret_key_names():
    from credproc.sensitive import is_secret_key

    for key in ("password", "federation_password", "client_secret", "api-key", "aws_session_token", "token"):
        assert is_secret_key(key), key
    for key in ("username", "url", "counter_file", "assume_role_with_web_identity_token_file", "tokens_url"):
        assert not is_secret_key(key), key
