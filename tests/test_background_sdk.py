"""SDKs do not wait for the background refresher (issue 13, item 3).

A warm one-hour entry is in its DUE window (libfaketime around the SDK process, ``faketime
-f +30m``, which credproc inherits: due at 27 minutes, floor at 54). credproc prints the
entry at once and leaves the refresh to a detached process, whose STS hangs: the
connection's STS endpoint (``service_config.sts.endpoint_url``) leads to an address that
accepts and never answers, with a 60-second read timeout (and botocore's retries after it).
The SDK's own API call goes to the working local STS (its endpoint is set in code or on the
command line).

Each SDK of the interop suite (the AWS CLI, boto3, JavaScript v3 in both its chain and
``fromProcess`` forms, Go v2, Ruby) must then finish well before that hang could end (under
``PROMPT`` seconds), signed with the cached credentials, while the refresher is still alive,
in a session of its own, holding only ``/dev/null`` on 0-2, the bucket's lock file and the
sockets it opened itself to the hanging endpoint: no pipe of the SDK's, which would keep
the SDK (or whoever reads the SDK's output) waiting for end-of-file.

The entry must exist for the very definition whose endpoint later hangs (the endpoint is
part of the definition, so of the cache key). So the endpoint is a small TCP switch: it
forwards to the local STS while the entry is warmed, then to the blackhole
(``servers/blackhole.py``), which accepts and never answers.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest
from helpers import ACCOUNT, CREDPROC, ROLE_ARN, SECRET_KEY, demo_profile, extra_uri, ok, signing_key, wait_for
from test_interop import FIFTEEN_MINUTES, SESSION_ARN, go_sdk, node_sdk, ruby_sdk  # noqa: F401 - fixtures

pytestmark = pytest.mark.integration

OFFSET = "+30m"  # a one-hour entry: due at 27 minutes, floor at 54
HANG_READ_TIMEOUT = 60  # seconds per attempt the refresher waits for the hanging STS
PROMPT = 15.0  # seconds an SDK process may take, far less than the hang
MARK = "CREDPROC_TEST_BACKGROUND_MARK"  # not credproc's: finds the processes of one test in /proc


class Switch:
    """A TCP forwarder on 127.0.0.1 whose target can be changed: each connection it accepts
    is joined to the target of that moment. ``accepted[address]`` counts them per target."""

    def __init__(self, target: str):
        self.target = target
        self.accepted: dict[str, int] = {}
        self.lock = threading.Lock()
        self.sockets: list[socket.socket] = []
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self._accept, daemon=True).start()

    def switch(self, target: str) -> None:
        with self.lock:
            self.target = target

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                target = self.target
                self.accepted[target] = self.accepted.get(target, 0) + 1
            host, port = target.rsplit(":", 1)
            try:
                upstream = socket.create_connection((host, int(port)), timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self) -> None:
        self.listener.close()
        with self.lock:
            for s in self.sockets:
                s.close()


@pytest.fixture
def faketime() -> str:
    path = shutil.which("faketime")
    if path is None:
        pytest.skip("faketime is not installed (scripts/system-deps installs it)")
    return path


@pytest.fixture
def switch(sts):
    forwarder = Switch(sts.url.removeprefix("http://"))
    yield forwarder
    forwarder.close()


@pytest.fixture
def due(sts, env, run, switch, blackhole):
    """Profile ``demo`` runs credproc for connection ``demo``, whose STS is the switch; a
    one-hour entry fetched through it in real time; then the switch leads to the blackhole.
    Yields the environment for the SDK (with a mark its processes carry); every process
    that still carries the mark at the end is killed."""
    env[MARK] = uuid.uuid4().hex
    demo_profile(env, f"{CREDPROC} --conn demo --profile demo")
    env["CREDPROC_CONN_DEMO"] = extra_uri({
        "role_arn": ROLE_ARN, "config_kwargs": {"read_timeout": HANG_READ_TIMEOUT}}, endpoint=switch.url)
    env["AWS_PROFILE"] = "demo"
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    warm = ok(run(["--conn", "demo", "--profile", "demo"], env), temporary=True)
    assert sts.count("AssumeRole") == 1
    switch.switch(blackhole.address)
    try:
        yield env, warm
    finally:
        for pid in marked(env[MARK]):
            kill(pid)


# -- what /proc says about a process -----------------------------------------------------------


def marked(mark: str) -> list[int]:
    """The live processes whose environment carries ``MARK=mark`` (zombies excluded)."""
    needle = f"{MARK}={mark}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0") and state(int(entry.name)) != "Z":
                found.append(int(entry.name))
        except OSError:  # gone meanwhile, or not ours
            continue
    return found


def stat(pid: int) -> list[str]:
    """/proc/PID/stat's fields after the command name: [state, ppid, pgrp, session, ...]."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2:].split()


def state(pid: int) -> str:
    try:
        return stat(pid)[0]
    except OSError:
        return "gone"


def descriptors(pid: int) -> dict[int, str]:
    """fd -> what it points at (a path, ``socket:[inode]``, ``pipe:[inode]``...)."""
    out = {}
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            out[int(fd.name)] = os.readlink(fd)
        except OSError:
            continue
    return out


def tcp_peers(pid: int) -> dict[str, str]:
    """socket inode -> remote "127.0.0.1:port" of the TCP (IPv4) sockets of ``pid``'s network namespace."""
    peers = {}
    for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        address, port = fields[2].split(":")
        host = socket.inet_ntoa(int(address, 16).to_bytes(4, "little"))
        peers[fields[9]] = f"{host}:{int(port, 16)}"
    return peers


def locked(path: str) -> bool:
    """Whether some process holds an exclusive flock on ``path``."""
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 10
    while state(pid) not in ("gone", "Z") and time.monotonic() < deadline:
        time.sleep(0.05)




# -- the test ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(FIFTEEN_MINUTES))
def test_sdk_does_not_wait_for_the_background_refresher(name, request, sts, due, switch, blackhole, faketime,
                                                        record_property):
    sdk = FIFTEEN_MINUTES[name](request)
    env, warm = due
    calls = 1 if name == "aws-cli" else 2
    started = time.monotonic()
    try:
        result = subprocess.run([faketime, "-f", OFFSET, *sdk.command(sts.url, calls)], env=env,
                                capture_output=True, text=True, timeout=2 * PROMPT, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{name} did not finish within {2 * PROMPT:g}s: it waited for the background refresher")
    elapsed = time.monotonic() - started
    record_property("sdk_seconds", round(elapsed, 2))

    # The SDK finished, promptly, signed with the cached credentials (the STS saw them).
    assert result.returncode == 0, f"{name} failed (exit {result.returncode}):\n{result.stdout}\n{result.stderr}"
    assert elapsed < PROMPT, f"{name} took {elapsed:.1f}s"
    report = json.loads(result.stdout)
    assert report.get("calls") == [{"Account": ACCOUNT, "Arn": SESSION_ARN}] * calls, report
    assert SECRET_KEY not in result.stderr and warm["SecretAccessKey"] not in result.stderr
    signers = {signing_key(r) for r in sts.requests if r["action"] == "GetCallerIdentity"}
    assert signers == {warm["AccessKeyId"]}, "the SDK signed with the cached entry's key"
    assert sts.count("AssumeRole") == 1, "the refresh must not have reached the working STS"

    # The refresher is alive after the SDK is done: one process, detached, hanging at the blackhole.
    left = marked(env[MARK])
    assert len(left) == 1, f"want one process of this test left, the refresher: {left}"
    [pid] = left
    fields = stat(pid)
    # setsid in the middle process, then a second fork: a session of its own, not its leader
    assert int(fields[3]) not in (os.getsid(0), pid), f"the refresher's session: {fields[3]}"
    wait_for(lambda: blackhole.accepted >= 1 and switch.accepted.get(blackhole.address, 0) >= 1,
             "the refresher's AssumeRole to reach the hanging STS", timeout=20)

    # Its descriptors: /dev/null on 0-2, the lock, and the sockets it opened to the hanging STS;
    # no pipe (nor any other file) of the SDK's.
    fds = descriptors(pid)
    assert {fd: fds.get(fd) for fd in (0, 1, 2)} == {0: "/dev/null", 1: "/dev/null", 2: "/dev/null"}, fds
    others = {fd: target for fd, target in fds.items() if fd > 2}
    locks = [fd for fd, target in others.items() if target.endswith(".lock")]
    assert len(locks) == 1 and Path(others[locks[0]]).parent == Path(env["CREDPROC_CACHE_DIR"]), fds
    lock_path = others[locks[0]]
    assert locked(lock_path), "the refresher holds the bucket's lock"
    # /dev/null past 2: the stdout shield's saved copy of descriptor 1 (job.StdoutToStderr)
    sockets = {fd: target for fd, target in others.items() if fd not in locks and target != "/dev/null"}
    peers = tcp_peers(pid)
    assert sockets, f"no socket to the hanging STS: {fds}"
    for fd, target in sockets.items():
        assert target.startswith("socket:["), f"fd {fd} is {target}, not the lock nor a socket of its own: {fds}"
        inode = target[len("socket:["):-1]
        assert peers.get(inode) == f"127.0.0.1:{switch.port}", f"fd {fd} ({target}) is not connected to the STS"

    # The hang has not ended: the refresher is still waiting on it (then it is killed).
    assert state(pid) not in ("gone", "Z")
    assert time.monotonic() - started < HANG_READ_TIMEOUT
    kill(pid)
    assert state(pid) in ("gone", "Z")
    assert not locked(lock_path), "the kernel dropped the lock with its holder"
    record_property("refresher_fds", sorted(fds))
