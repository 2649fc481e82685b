"""``credproc serve``: the container-credentials endpoint, from the outside.

The installed executable serves a connection that assumes ROLE_ARN at the local STS; real
SDKs (boto3, the AWS CLI, JavaScript v3, Go v2) get their credentials from it through
``AWS_CONTAINER_CREDENTIALS_FULL_URI``, and raw ``http.client`` requests check what it
refuses: a missing or wrong token, a foreign Host, unknown paths, other methods, request
heads past the bounds, clients that send nothing. It shares the cache with
``credproc --conn ID``, refreshes ahead (the clock moved with libfaketime's timestamp
file), stops on SIGTERM, SIGINT and SIGHUP (token file removed), and when it is killed an
SDK's next lookup fails at once with the SDK's own error.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import time
from pathlib import Path

import pytest

from helpers import ACCOUNT, ASSUMED_PREFIX, BIN, ROLE_ARN, extra_uri, ok, one_error, wait_for
from test_interop import JS_DIR, go_sdk, node_sdk  # noqa: F401 - the SDK fixtures, shared

pytestmark = pytest.mark.integration

SESSION_ARN = ASSUMED_PREFIX + "credproc-demo"

# One boto3 client's GetCallerIdentity at the local STS, with the access key it signed with.
BOTO3_IDENTITY = """\
import json, sys
import boto3
session = boto3.Session()
answer = session.client("sts", endpoint_url=sys.argv[1], region_name="us-east-1").get_caller_identity()
key = session.get_credentials().get_frozen_credentials().access_key
print(json.dumps({"Account": answer["Account"], "Arn": answer["Arn"], "key": key,
                  "method": session.get_credentials().method}))
"""


@pytest.fixture
def demo(sts, env, tmp_path):
    """Connection ``demo`` assumes ROLE_ARN at the local STS; token files go under tmp_path."""
    env["CREDPROC_CONN_DEMO"] = extra_uri({"role_arn": ROLE_ARN}, endpoint=sts.url)
    env["XDG_RUNTIME_DIR"] = str(tmp_path / "run")
    (tmp_path / "run").mkdir(mode=0o700)
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env


def boto3_identity(env: dict, sts_url: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "python"), "-c", BOTO3_IDENTITY, sts_url], env=env, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def identity(result: subprocess.CompletedProcess) -> dict:
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert (out["Account"], out["Arn"]) == (ACCOUNT, SESSION_ARN), out
    return out


# -- SDKs --------------------------------------------------------------------------------------


def test_boto3_takes_the_servers_credentials_from_the_container_provider(sts, demo, serving):
    server = serving(["demo"], demo)
    assert sts.count("AssumeRole") == 1  # fetched at start-up, before it printed anything
    out = identity(boto3_identity(server.env(demo, "demo"), sts.url))
    assert out["method"] == "container-role"
    assert sts.count("AssumeRole") == 1  # the SDK's lookup was a hit


def test_the_server_and_credential_process_share_the_cache_entry(sts, demo, serving, run):
    server = serving(["demo"], demo)
    printed = ok(run(["--conn", "demo"], demo), temporary=True)
    status, _, body = server.request("/credentials/demo", {"Host": f"127.0.0.1:{server.port}",
                                                          "Authorization": server.token})
    served = json.loads(body)
    assert status == 200 and sts.count("AssumeRole") == 1
    assert served == {"AccessKeyId": printed["AccessKeyId"], "SecretAccessKey": printed["SecretAccessKey"],
                      "Token": printed["SessionToken"], "Expiration": printed["Expiration"], "AccountId": ACCOUNT}


def test_the_aws_cli_takes_the_servers_credentials(sts, demo, serving):
    server = serving(["demo"], demo)
    result = subprocess.run([str(BIN / "aws"), "sts", "get-caller-identity", "--endpoint-url", sts.url,
                             "--region", "us-east-1", "--output", "json"], env=server.env(demo, "demo"),
                            capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    identity(result)
    assert sts.count("AssumeRole") == 1


def test_js_v3_default_chain_reads_the_token_file(sts, demo, serving, request):
    node = request.getfixturevalue("node_sdk")
    server = serving(["demo"], demo)
    result = subprocess.run([str(node), str(JS_DIR / "caller_identity.js"), sts.url, "3", "chain"],
                            env=server.env(demo, "demo"), capture_output=True, text=True, timeout=120)
    report = json.loads(result.stdout)
    assert report.get("calls") == [{"Account": ACCOUNT, "Arn": SESSION_ARN}] * 3, report
    assert "awsContainerAuthorizationToken" not in result.stderr  # warned when variable and file are both set


def test_go_v2_reads_the_token_variable(sts, demo, serving, request):
    """Debian's Go SDK (config 1.17) reads AWS_CONTAINER_AUTHORIZATION_TOKEN, not the file:
    the README's line for such SDKs exports the file's content."""
    binary = request.getfixturevalue("go_sdk")
    server = serving(["demo"], demo)
    result = subprocess.run([str(binary), sts.url, "3"], env=server.env(demo, "demo", token_file=False),
                            capture_output=True, text=True, timeout=120)
    report = json.loads(result.stdout)
    assert report.get("calls") == [{"Account": ACCOUNT, "Arn": SESSION_ARN}] * 3, report
    with_the_file_only = subprocess.run([str(binary), sts.url, "1"], env=server.env(demo, "demo"),
                                        capture_output=True, text=True, timeout=120)
    assert with_the_file_only.returncode == 1  # it sent no token, and says what the server answered
    assert "CredprocError: missing or wrong Authorization token" in json.loads(with_the_file_only.stdout)["error"]


def test_two_connections_one_path_each(sts, demo, serving):
    demo["CREDPROC_CONN_OTHER_ONE"] = extra_uri({"role_arn": ROLE_ARN}, endpoint=sts.url)
    server = serving(["demo", "other one"], demo)
    assert server.uri("other one").endswith("/credentials/other%20one")
    other = {**server.env(demo, "demo"), "AWS_CONTAINER_CREDENTIALS_FULL_URI": server.uri("other one")}
    result = boto3_identity(other, sts.url)
    assert result.returncode == 0 and json.loads(result.stdout)["Arn"] == ASSUMED_PREFIX + "credproc-other-one", \
        result.stderr
    identity(boto3_identity(server.env(demo, "demo"), sts.url))
    assert sts.count("AssumeRole") == 2


# -- what the server refuses -------------------------------------------------------------------------


def test_wrong_and_missing_tokens_are_refused_with_nothing_about_the_credentials(sts, demo, serving):
    server = serving(["demo"], demo)
    host = {"Host": f"127.0.0.1:{server.port}"}
    answers = [server.request("/credentials/demo", host),
               server.request("/credentials/demo", {**host, "Authorization": server.token[:-1] + "x"}),
               server.request("/credentials/demo", {**host, "Authorization": "Bearer " + server.token}),
               server.request("/credentials/demo", {**host, "Authorization": server.token,
                                                    "authorization": "second"}),
               server.request("/credentials/nothing-here", host)]  # a missing token learns no path
    for status, headers, body in answers:
        assert status == 401, (status, body)
        assert json.loads(body) == {"code": "CredprocError", "message": "missing or wrong Authorization token"}
        assert not any(name.startswith("access-control") for name in headers), headers
        assert "server" not in headers
    status, _, body = server.request("/credentials/demo", {**host, "Authorization": server.token})
    assert status == 200 and json.loads(body)["AccessKeyId"].startswith("ASIA")


@pytest.mark.parametrize("host", ["evil.example:{port}", "localhost:{port}", "127.0.0.1", "127.0.0.1:1",
                                  "127.0.0.1:{port}.evil.example", None, "twice"])
def test_a_foreign_host_is_refused_even_with_the_token(sts, demo, serving, host):
    """A page that rebinds its name to 127.0.0.1 sends its own name as Host: refused, and told
    nothing about the token (403 whether the token is right or not)."""
    server = serving(["demo"], demo)
    headers = {"Authorization": server.token}
    if host == "twice":
        request = (f"GET /credentials/demo HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                   f"Host: evil.example\r\nAuthorization: {server.token}\r\n\r\n").encode()
        status = raw(server.port, request).split(b" ", 2)[1]
        assert status == b"403"
        return
    if host is not None:
        headers["Host"] = host.format(port=server.port)
    status, _, body = server.request("/credentials/demo", headers)
    assert status == 403 and b"AccessKeyId" not in body and server.token.encode() not in body
    assert json.loads(body)["message"] == f"this server answers only requests for 127.0.0.1:{server.port}"


def test_unknown_paths_and_other_methods(sts, demo, serving):
    server = serving(["demo"], demo)
    auth = {"Host": f"127.0.0.1:{server.port}", "Authorization": server.token}
    for path in ("/", "/credentials/", "/credentials/other", "/credentials/demo/x", "/credentials/de%6Do/",
                 "/latest/meta-data/iam/security-credentials/"):
        status, _, body = server.request(path, auth)
        assert status == 404 and b"AccessKeyId" not in body, (path, status)
    assert server.request("/credentials/de%6Do", auth)[0] == 200  # percent-encoded, the same id
    assert server.request("/credentials/demo?x=1", auth)[0] == 200
    for method in ("POST", "PUT", "DELETE", "OPTIONS"):
        status, headers, _ = server.request("/credentials/demo", auth, method=method)
        assert status == 405 and not any(name.startswith("access-control") for name in headers)


def raw(port: int, data: bytes, timeout: float = 15) -> bytes:
    """Send ``data`` as is; all the server answers before it closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(data)
        except OSError:  # it may close before taking it all
            pass
        chunks = []
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def test_request_heads_past_the_bounds_are_refused(sts, demo, serving):
    server = serving(["demo"], demo)
    host = f"Host: 127.0.0.1:{server.port}\r\nAuthorization: {server.token}\r\n"
    long_line = b"GET /credentials/" + b"a" * 2000 + b" HTTP/1.1\r\n" + host.encode() + b"\r\n"
    many = b"GET /credentials/demo HTTP/1.1\r\n" + host.encode() + b"".join(
        b"X-%d: y\r\n" % i for i in range(40)) + b"\r\n"
    big = b"GET /credentials/demo HTTP/1.1\r\n" + host.encode() + b"X-Big: " + b"y" * 9000 + b"\r\n\r\n"
    endless = b"GET /credentials/demo HTTP/1.1\r\n" + b"X: " + b"y" * 100_000  # never a blank line
    assert raw(server.port, long_line).startswith(b"HTTP/1.1 414 ")
    assert raw(server.port, many).startswith(b"HTTP/1.1 431 ")
    assert raw(server.port, big).startswith(b"HTTP/1.1 431 ")
    assert raw(server.port, endless).startswith(b"HTTP/1.1 431 ")
    assert raw(server.port, b"NONSENSE\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    assert raw(server.port, b"GET / HTTP/2.0\r\n\r\n").startswith(b"HTTP/1.1 505 ")
    ok_answer = raw(server.port, b"GET /credentials/demo HTTP/1.1\r\n" + host.encode() + b"\r\n")
    assert ok_answer.startswith(b"HTTP/1.1 200 OK\r\n") and b'"AccessKeyId"' in ok_answer


def test_silent_clients_are_dropped_and_do_not_stop_the_others(sts, demo, serving):
    """Clients that connect and send nothing (or a byte now and then) hold a connection for
    the read deadline at most; past the connection bound the next ones are told 503, and
    the server answers again once they are gone."""
    server = serving(["demo"], demo)
    auth = {"Host": f"127.0.0.1:{server.port}", "Authorization": server.token}
    silent = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(40)]
    try:
        time.sleep(0.5)
        busy = raw(server.port, b"GET /credentials/demo HTTP/1.1\r\n\r\n")
        assert busy.startswith(b"HTTP/1.1 503 "), busy[:100]
        silent[0].settimeout(20)
        assert silent[0].recv(100) == b""  # closed by the server at its read deadline, unanswered
    finally:
        for s in silent:
            s.close()
    deadline = time.monotonic() + 20
    while server.request("/credentials/demo", auth)[0] != 200:
        assert time.monotonic() < deadline, "the server did not recover from silent clients"
        time.sleep(0.2)


# -- the token file, stopping ----------------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_signals_stop_it_cleanly_and_remove_the_token_file(sts, demo, serving, tmp_path, signum):
    server = serving(["demo"], demo)
    token_file = server.token_file
    assert token_file.parent == tmp_path / "run" / "credproc"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600 and token_file.read_text() == server.token
    assert stat.S_IMODE(token_file.parent.stat().st_mode) == 0o700
    assert len(server.token) == 43  # token_urlsafe(32): 256 bits
    result = server.stop(signum)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert not token_file.exists()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", server.port), timeout=5)


def test_exports_for_a_shell(sts, demo, credproc_bin, tmp_path):
    """The sh form exports the URI and the token file, and unsets what SDKs would take first;
    sourced by a real sh, it leads boto3 to the server."""
    proc = subprocess.Popen([str(credproc_bin), "serve", "--conn", "demo"], env=demo, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    try:
        text = os.read(proc.stdout.fileno(), 65536).decode()  # written at once, when it serves
        lines = text.splitlines(keepends=True)
        assert lines[0].startswith(f"# credproc serve (pid {proc.pid}): connection 'demo'")
        assert "export AWS_CONTAINER_CREDENTIALS_FULL_URI='http://127.0.0.1:" in text
        assert "export AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=" in text
        for name in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                     "AWS_CONTAINER_AUTHORIZATION_TOKEN"):
            assert f"unset {name}\n" in text
        script = tmp_path / "serve.sh"
        script.write_text(text)
        shell_env = {**demo, "AWS_PROFILE": "nowhere", "AWS_ACCESS_KEY_ID": "AKIASTATICSTATIC0000"}
        result = subprocess.run(["sh", "-c", f'. "{script}" && exec "$0" -c "$1" "$2"', str(BIN / "python"),
                                 BOTO3_IDENTITY, sts.url], env=shell_env, capture_output=True, text=True, timeout=60)
        identity(result)
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    assert proc.returncode == 0


def test_a_port_in_use_is_one_error(sts, demo, run):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        one_error(run(["serve", "--conn", "demo", "--port", str(port)], demo), 2, f"cannot listen on 127.0.0.1:{port}")


def test_start_up_failures_are_one_error_line(sts, demo, run):
    sts.faults.append((403, "AccessDenied"))
    one_error(run(["serve", "--conn", "demo"], demo), 1, "'demo'", "AccessDenied")
    one_error(run(["serve", "--conn", "nothing"], demo), 2, "connection 'nothing' is not defined")
    demo["CREDPROC_CONN_KEYS"] = extra_uri({}, endpoint=sts.url)
    one_error(run(["serve", "--conn", "keys"], demo), 2, "long-term keys")
    assert list(Path(demo["XDG_RUNTIME_DIR"]).rglob("*.token")) == []


# -- refresh ahead, and the server gone --------------------------------------------------------------


def faked_clock(tmp_path: Path, env: dict, offset: str = "+0") -> tuple[dict, Path]:
    """``env`` with libfaketime preloaded, reading its offset from a file the test rewrites
    (so the clock of a running server and its SDK moves mid-run); the file."""
    from helpers import faketime_path

    faketime_path()  # skips (fails, in CI) without libfaketime
    library = next(Path("/usr/lib").glob("*/faketime/libfaketime.so.1"), None)
    assert library is not None, "libfaketime.so.1 not found"
    clock = tmp_path / "clock"
    clock.write_text(offset + "\n")
    return {**env, "LD_PRELOAD": str(library), "FAKETIME_TIMESTAMP_FILE": str(clock), "FAKETIME_NO_CACHE": "1"}, clock


def short_role_served(sts, demo: dict, serving, tmp_path: Path, **extra) -> tuple:
    """Connection ``demo``, a 15-minute role (plus ``extra``), served under a clock the test
    moves: (server, the request headers, the clock file, the faked environment, the first
    credentials served)."""
    demo["CREDPROC_CONN_DEMO"] = extra_uri({"role_arn": ROLE_ARN, "assume_role_kwargs": {"DurationSeconds": 900},
                                            **extra}, endpoint=sts.url)
    faked, clock = faked_clock(tmp_path, demo)
    server = serving(["demo"], faked)
    auth = {"Host": f"127.0.0.1:{server.port}", "Authorization": server.token}
    first = json.loads(server.request("/credentials/demo", auth)[2])
    return server, auth, clock, faked, first


def test_a_due_entry_is_served_at_once_and_refreshed_ahead_by_the_server(sts, demo, serving, tmp_path, run):
    """A 15-minute role is due 4.5 minutes after its fetch: the request that finds it due gets
    it at once, the server's refresher thread assumes the role again under the entry's lock,
    and credential_process then finds the new entry fresh (a hit)."""
    server, auth, clock, faked, first = short_role_served(sts, demo, serving, tmp_path)
    clock.write_text("+5m\n")
    status, _, body = server.request("/credentials/demo", auth)
    assert status == 200 and json.loads(body)["AccessKeyId"] == first["AccessKeyId"]  # due: served as is
    wait_for(lambda: sts.count("AssumeRole") == 2, "the refresh ahead", timeout=60)
    wait_for(lambda: json.loads(server.request("/credentials/demo", auth)[2])["AccessKeyId"] != first["AccessKeyId"],
             "the new entry", timeout=60)
    renewed = json.loads(server.request("/credentials/demo", auth)[2])
    hit = ok(run(["--conn", "demo"], {**faked}), temporary=True)
    assert hit["AccessKeyId"] == renewed["AccessKeyId"] and sts.count("AssumeRole") == 2


def test_a_failing_refresh_serves_the_entry_and_says_so(sts, demo, serving, tmp_path):
    server, auth, clock, _, first = short_role_served(
        sts, demo, serving, tmp_path, config_kwargs={"retries": {"total_max_attempts": 1}})
    sts.faults.extend([(503, "ServiceUnavailable")] * 5)
    clock.write_text("+5m\n")
    assert json.loads(server.request("/credentials/demo", auth)[2])["AccessKeyId"] == first["AccessKeyId"]
    wait_for(lambda: sts.count("AssumeRole") == 2, "the refresh ahead", timeout=60)
    time.sleep(1)
    assert json.loads(server.request("/credentials/demo", auth)[2])["AccessKeyId"] == first["AccessKeyId"]
    clock.write_text("+7m\n")  # above the floor (9 minutes after the fetch): still served
    assert server.request("/credentials/demo", auth)[0] == 200
    clock.write_text("+10m\n")  # past the floor: refreshed before the answer, which is the error
    status, _, body = server.request("/credentials/demo", auth)
    assert status == 502 and b"AccessKeyId" not in body
    assert "ServiceUnavailable" in json.loads(body)["message"]
    result = server.stop()
    lines = [line for line in result.stderr.splitlines() if line]
    assert lines and all(line.startswith("credproc: warning: connection 'demo': refreshing its credentials failed")
                         for line in lines), result.stderr
    assert "ServiceUnavailable" in lines[0]


def test_an_ending_entry_is_fetched_before_the_answer(sts, demo, serving, tmp_path):
    server, auth, clock, _, first = short_role_served(sts, demo, serving, tmp_path)
    clock.write_text("+10m\n")  # 5 minutes left, below the 6-minute floor
    after = json.loads(server.request("/credentials/demo", auth)[2])
    assert after["AccessKeyId"] != first["AccessKeyId"] and sts.count("AssumeRole") == 2


def test_the_server_killed_the_sdks_next_lookup_fails_at_once(sts, demo, serving):
    server = serving(["demo"], demo)
    child_env = server.env(demo, "demo")
    identity(boto3_identity(child_env, sts.url))
    server.proc.kill()
    server.proc.wait()
    result = boto3_identity(child_env, sts.url, timeout=60)  # hanging would be a TimeoutExpired
    assert result.returncode == 1
    assert "Error when retrieving credentials from container-role" in result.stderr, result.stderr[-2000:]


def test_a_token_directory_open_to_others_is_refused(sts, demo, run, tmp_path):
    shared = tmp_path / "run" / "credproc"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    one_error(run(["serve", "--conn", "demo"], demo), 2, f"not using {shared} for the token file")
    shared.rmdir()
    (tmp_path / "elsewhere").mkdir(mode=0o700)
    shared.symlink_to(tmp_path / "elsewhere")
    one_error(run(["serve", "--conn", "demo"], demo), 2, "not a symlink")
