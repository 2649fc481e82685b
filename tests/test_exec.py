"""``credproc exec --conn ID -- CMD``: CMD's SDK gets the connection's credentials from a
server in credproc's process for as long as CMD runs (or, ``--no-server``, as variables).

Real SDKs as CMD: boto3, the AWS CLI, JavaScript v3 and Go v2 sign with the served
credentials; Debian's Ruby aws-sdk-core (3.168) reads only the relative URI of ECS and so
finds none (said in the README). What CMD inherits: nothing that would shadow the server.
A long-running boto3 child keeps working across a refresh (the clock moved with
libfaketime's timestamp file). Signals reach CMD, its status is exec's, the server stops
with it. An exec inside an exec is said.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess

import pytest

from helpers import ACCOUNT, ASSUMED_PREFIX, BIN, ROLE_ARN, extra_uri, one_error, wait_for
from test_interop import INTEROP, JS_DIR, go_sdk, node_sdk, ruby_sdk  # noqa: F401 - the SDK fixtures, shared
from test_serve import BOTO3_IDENTITY, faked_clock, identity

pytestmark = pytest.mark.integration

PYTHON = str(BIN / "python")
SESSION_ARN = ASSUMED_PREFIX + "credproc-demo"
SHOW_ENV = "import json, os; print(json.dumps(dict(os.environ)))"


@pytest.fixture
def demo(sts, env):
    env["CREDPROC_CONN_DEMO"] = extra_uri({"role_arn": ROLE_ARN}, endpoint=sts.url)
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env


def credproc_exec(args: list[str], env: dict, timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
    from helpers import CREDPROC

    return subprocess.run([str(CREDPROC), "exec", *args], env=env, capture_output=True, text=True, timeout=timeout,
                          stdin=kwargs.pop("stdin", subprocess.DEVNULL), **kwargs)


# -- SDKs as the child -------------------------------------------------------------------------------


def test_boto3_child_signs_with_the_served_role(sts, demo):
    result = credproc_exec(["--conn", "demo", "--", PYTHON, "-c", BOTO3_IDENTITY, sts.url], demo)
    out = identity(result)
    assert out["method"] == "container-role" and result.stderr == ""
    assert sts.count("AssumeRole") == 1


def test_aws_cli_child(sts, demo):
    result = credproc_exec(["--conn", "demo", "--", str(BIN / "aws"), "sts", "get-caller-identity", "--endpoint-url",
                            sts.url, "--region", "us-east-1", "--output", "json"], demo)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["Arn"] == SESSION_ARN


def test_js_v3_child(sts, demo, request):
    node = request.getfixturevalue("node_sdk")
    result = credproc_exec(["--conn", "demo", "--", str(node), str(JS_DIR / "caller_identity.js"), sts.url, "3"], demo)
    report = json.loads(result.stdout)
    assert report.get("calls") == [{"Account": ACCOUNT, "Arn": SESSION_ARN}] * 3, report
    assert "awsContainerAuthorizationToken" not in result.stderr  # one token variable, not two


def test_go_v2_child(sts, demo, request):
    binary = request.getfixturevalue("go_sdk")
    result = credproc_exec(["--conn", "demo", "--", str(binary), sts.url, "3"], demo)
    report = json.loads(result.stdout)
    assert report.get("calls") == [{"Account": ACCOUNT, "Arn": SESSION_ARN}] * 3, report


def test_debians_ruby_sdk_reads_only_the_relative_uri_and_finds_no_credentials(sts, demo, request):
    """aws-sdk-core 3.168's chain knows AWS_CONTAINER_CREDENTIALS_RELATIVE_URI (ECS at
    169.254.170.2) and not the full URI nor a token: under exec it finds no credentials and
    says so at once. Later versions read the full URI; with 3.168, --no-server serves it."""
    ruby = request.getfixturevalue("ruby_sdk")
    script = str(INTEROP / "ruby" / "caller_identity.rb")
    served = credproc_exec(["--conn", "demo", "--", str(ruby), script, sts.url, "1"], demo)
    assert served.returncode == 1
    assert "unable to sign request without credentials set" in json.loads(served.stdout)["error"]
    plain = credproc_exec(["--conn", "demo", "--no-server", "--", str(ruby), script, sts.url, "2"], demo)
    assert plain.returncode == 0, plain.stdout + plain.stderr
    assert json.loads(plain.stdout)["calls"] == [{"Account": ACCOUNT, "Arn": SESSION_ARN}] * 2


# -- what the child inherits ------------------------------------------------------------------------


def test_the_child_gets_the_servers_variables_and_nothing_that_would_shadow_them(sts, demo):
    shadows = {"AWS_ACCESS_KEY_ID": "AKIASTATICSTATIC0000", "AWS_SECRET_ACCESS_KEY": "static-secret-static",
               "AWS_SESSION_TOKEN": "static-token-static", "AWS_PROFILE": "elsewhere",
               "AWS_DEFAULT_PROFILE": "elsewhere",
               "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/credentials/ecs",
               "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": "/nowhere", "AWS_ROLE_ARN": ROLE_ARN,
               "AWS_WEB_IDENTITY_TOKEN_FILE": "/nowhere", "AWS_CREDENTIAL_EXPIRATION": "2030-01-01T00:00:00Z"}
    # The connection signs with its own keys: none of these is needed to fetch
    with open(demo["AWS_CONFIG_FILE"], "w") as f:  # AWS_PROFILE applies to the fetch too: it must exist
        f.write("[profile elsewhere]\nregion = us-east-1\n")
    result = credproc_exec(["--conn", "demo", "--", PYTHON, "-c", SHOW_ENV], {**demo, **shadows, "KEEP_ME": "1"})
    assert result.returncode == 0, result.stderr
    child = json.loads(result.stdout)
    assert not set(shadows) & set(child), set(shadows) & set(child)
    assert child["KEEP_ME"] == "1" and child["CREDPROC_EXEC"] == "demo"
    assert child["AWS_CONTAINER_CREDENTIALS_FULL_URI"].startswith("http://127.0.0.1:")
    assert child["AWS_CONTAINER_CREDENTIALS_FULL_URI"].endswith("/credentials/demo")
    assert len(child["AWS_CONTAINER_AUTHORIZATION_TOKEN"]) == 43
    assert "CREDPROC_CHAIN" not in child  # the fetch's mark stays in credproc


def test_no_server_gives_the_credentials_as_variables(sts, demo):
    with open(demo["AWS_CONFIG_FILE"], "w") as f:
        f.write("[profile elsewhere]\nregion = us-east-1\n")
    result = credproc_exec(["--conn", "demo", "--no-server", "--", PYTHON, "-c", SHOW_ENV],
                           {**demo, "AWS_PROFILE": "elsewhere"})
    child = json.loads(result.stdout)
    assert child["AWS_ACCESS_KEY_ID"].startswith("ASIA") and child["AWS_SESSION_TOKEN"]
    assert child["AWS_CREDENTIAL_EXPIRATION"].endswith("Z") and child["CREDPROC_EXEC"] == "demo"
    assert "AWS_CONTAINER_CREDENTIALS_FULL_URI" not in child and "AWS_PROFILE" not in child
    signed = credproc_exec(["--conn", "demo", "--no-server", "--", PYTHON, "-c", BOTO3_IDENTITY, sts.url], demo)
    assert identity(signed)["method"] == "env"


def test_no_server_passes_long_term_keys_which_the_server_refuses(sts, demo):
    demo["CREDPROC_CONN_KEYS"] = extra_uri({}, endpoint=sts.url)
    plain = credproc_exec(["--conn", "keys", "--no-server", "--", PYTHON, "-c", SHOW_ENV], demo)
    child = json.loads(plain.stdout)
    assert child["AWS_ACCESS_KEY_ID"] == "AKIAIOSFODNN7EXAMPLE" and "AWS_SESSION_TOKEN" not in child
    one_error(credproc_exec(["--conn", "keys", "--", PYTHON, "-c", "print('ran')"], demo), 2, "long-term keys",
              "--no-server")


def test_a_default_profile_with_static_keys_is_warned_about_as_boto3_takes_it_first(sts, demo, tmp_path):
    with open(demo["AWS_SHARED_CREDENTIALS_FILE"], "w") as f:
        f.write("[default]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\n"
                "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY\n")
    result = credproc_exec(["--conn", "demo", "--", PYTHON, "-c", BOTO3_IDENTITY, sts.url], demo)
    assert result.stderr.splitlines() == [
        f"credproc: warning: {demo['AWS_SHARED_CREDENTIALS_FILE']} has aws_access_key_id in [default]: SDKs take the "
        f"default profile's credentials before the container endpoint, so {PYTHON} may not use connection 'demo'"]
    assert json.loads(result.stdout)["method"] == "shared-credentials-file"  # what the warning is about
    with open(demo["AWS_CONFIG_FILE"], "w") as f:
        f.write("[profile default]\ncredential_process = true\n")
    os.unlink(demo["AWS_SHARED_CREDENTIALS_FILE"])
    quiet = credproc_exec(["--conn", "demo", "--", PYTHON, "-c", "pass"], demo)
    assert "has credential_process in [profile default]" in quiet.stderr


# -- status, signals, the server's lifetime -------------------------------------------------------------


def test_exit_status_is_the_childs(demo):
    assert credproc_exec(["--conn", "demo", "--", "sh", "-c", "exit 7"], demo).returncode == 7
    assert credproc_exec(["--conn", "demo", "sh", "-c", "exit 0"], demo).returncode == 0  # "--" may be left out
    assert credproc_exec(["--conn", "demo", "--", "sh", "-c", "kill -TERM $$"], demo).returncode == 128 + 15
    assert credproc_exec(["--conn", "demo", "--no-server", "--", "sh", "-c", "exit 9"], demo).returncode == 9
    missing = credproc_exec(["--conn", "demo", "--", "no-such-command-anywhere"], demo)
    assert missing.returncode == 127
    assert missing.stderr == "credproc: error: exec: no-such-command-anywhere: command not found\n"
    one_error(credproc_exec(["--conn", "demo"], demo), 2, "no command to run")


CHILD_WAITS = """\
import os, signal, time
def stop(signum, frame):  # os.write: a print() here could land inside the one below
    os.write(1, f"child got {signal.Signals(signum).name}\\n".encode())
    os._exit(3)
for name in ("SIGTERM", "SIGHUP", "SIGINT"):
    signal.signal(getattr(signal, name), stop)
os.write(1, (os.environ["AWS_CONTAINER_CREDENTIALS_FULL_URI"] + "\\n").encode())
time.sleep(120)
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_signal_to_exec_reaches_the_child_and_the_server_stops_with_it(sts, demo, signum):
    from helpers import CREDPROC

    proc = subprocess.Popen([str(CREDPROC), "exec", "--conn", "demo", "--", PYTHON, "-c", CHILD_WAITS], env=demo,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    try:
        url = proc.stdout.readline().strip()
        port = int(url.split(":")[2].split("/")[0])
        socket.create_connection(("127.0.0.1", port), timeout=5).close()  # serving while the child runs
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert out == f"child got {signal.Signals(signum).name}\n" and proc.returncode == 3, (out, err)
    assert err == ""
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5)


def test_start_up_failure_runs_no_child(sts, demo, tmp_path):
    sts.faults.append((403, "AccessDenied"))
    marker = tmp_path / "ran"
    one_error(credproc_exec(["--conn", "demo", "--", "touch", str(marker)], demo), 1, "'demo'", "AccessDenied")
    one_error(credproc_exec(["--conn", "nothing", "--", "touch", str(marker)], demo), 2, "not defined")
    assert not marker.exists()


def test_exec_inside_exec_is_said(sts, demo):
    from helpers import CREDPROC

    inner_same = f"{CREDPROC} exec --conn demo -- {PYTHON} -c 'print(1)'"
    result = credproc_exec(["--conn", "demo", "--", "sh", "-c", inner_same], demo)
    assert result.returncode == 0 and result.stdout == "1\n"
    assert result.stderr == f"credproc: warning: already inside credproc exec --conn 'demo': running {PYTHON} " \
                            "with its credentials\n"
    demo["CREDPROC_CONN_OTHER"] = demo["CREDPROC_CONN_DEMO"]
    inner_other = f"{CREDPROC} exec --conn other -- true"
    refused = credproc_exec(["--conn", "demo", "--", "sh", "-c", inner_other], demo)
    one_error(refused, 2, "exec --conn 'other': already inside credproc exec --conn 'demo'", "unset CREDPROC_EXEC")
    other_mode = credproc_exec(["--conn", "demo", "--", "sh", "-c", f"{CREDPROC} exec --conn demo --no-server -- true"],
                               demo)
    one_error(other_mode, 2, "already inside credproc exec")
    on_purpose = credproc_exec(["--conn", "demo", "--", "sh", "-c", f"unset CREDPROC_EXEC; {inner_other}"], demo)
    assert on_purpose.returncode == 0, on_purpose.stderr


# -- a long-running child across a refresh -------------------------------------------------------------

# Reads a line, makes one API call, prints the key it signed with: a long-running process
# whose one boto3 session lives across refreshes.
LONG_RUNNING = """\
import json, sys
import boto3
session = boto3.Session()
client = session.client("sts", endpoint_url=sys.argv[1], region_name="us-east-1")
for line in sys.stdin:
    try:
        arn = client.get_caller_identity()["Arn"]
        print(json.dumps({"key": session.get_credentials().get_frozen_credentials().access_key, "arn": arn}), flush=True)
    except Exception as e:
        print(json.dumps({"error": f"{type(e).__name__}: {e}"}), flush=True)
"""


def test_a_long_running_child_keeps_working_across_refreshes(sts, demo, tmp_path):
    """A 15-minute role: botocore asks the server at every call (less than 15 minutes left),
    the server answers from the cache, refreshes ahead at 4.5 minutes and in the foreground
    past the floor (6 minutes left); the child's one session signs with each new role session in
    turn. (The local STS dates expiries by the real clock, so that every role session ages
    with the moved one: 10 minutes is as far as a 15-minute role goes.)"""
    from helpers import CREDPROC

    demo["CREDPROC_CONN_DEMO"] = extra_uri({"role_arn": ROLE_ARN, "assume_role_kwargs": {"DurationSeconds": 900}},
                                           endpoint=sts.url)
    faked, clock = faked_clock(tmp_path, demo)
    proc = subprocess.Popen([str(CREDPROC), "exec", "--conn", "demo", "--", PYTHON, "-c", LONG_RUNNING, sts.url],
                            env=faked, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def call() -> dict:
        proc.stdin.write("call\n")
        proc.stdin.flush()
        answer = json.loads(proc.stdout.readline())
        assert answer.get("arn") == SESSION_ARN, answer
        return answer

    try:
        keys = [call()["key"]]
        clock.write_text("+5m\n")  # due: served as is, and refreshed ahead by the server
        call()  # it signs with the entry found due (what it prints may be the refreshed one already)
        wait_for(lambda: sts.count("AssumeRole") == 2, "the refresh ahead", timeout=60)
        keys.append(call()["key"])
        clock.write_text("+10m\n")  # past the floor of the new entry: fetched before the answer
        keys.append(call()["key"])
        proc.stdin.close()
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    # Past the floor every lookup fetches (this child looks twice per call: to sign, to print).
    assert len(set(keys)) == 3 and sts.count("AssumeRole") >= 3, keys
    assert proc.stderr.read() == ""


# -- MFA: asked at start-up, never once the command has the terminal -----------------------------------

# Asks the server once the cache is gone (so the server must fetch, and the MFA session with it).
ASKS_AFTER_CLEARING = """\
import json, shutil, sys, botocore.session
shutil.rmtree(sys.argv[1])
try:
    botocore.session.get_session().get_credentials().get_frozen_credentials()
    print("got credentials")
except Exception as e:
    print("no credentials:", e)
"""


def test_mfa_is_asked_at_start_up_and_never_while_the_command_runs(sts, env, tmp_path):
    """exec asks for the code before it starts CMD, at the terminal; once CMD runs, the
    terminal is CMD's, and a fetch that would need a new code fails with one line instead of
    a prompt mixed into CMD's output (the SDK shows it)."""
    from helpers import CREDPROC, Terminal
    from test_mfa import CODE, PROMPT, SERIAL, mfa_definition

    sts.mfa_devices = {SERIAL: CODE}
    env["CREDPROC_CONN_PROD"] = mfa_definition(sts)
    argv = [str(CREDPROC), "exec", "--conn", "prod", "--", PYTHON, "-c", ASKS_AFTER_CLEARING, env["CREDPROC_CACHE_DIR"]]
    with Terminal(argv, env) as terminal:
        terminal.expect(PROMPT)
        terminal.type(CODE)
        result = terminal.wait(90)
    assert result.returncode == 0, result.stderr
    assert result.terminal.count(PROMPT) == 1, result.terminal
    assert result.stdout.startswith("no credentials:"), result.stdout
    assert "needs an MFA code" in result.stdout and "the terminal is credproc exec's command's" in result.stdout
    assert sts.count("GetSessionToken") == 1
