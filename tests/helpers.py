"""What several test files share: the planted identity and the installed executable, builders
for connection definitions in the forms credproc reads, the checks on a finished run, and
small process helpers.

Test files import it by name (``from helpers import ok, one_error``): conftest.py puts this
directory on ``sys.path`` and registers this module for pytest's assertion rewriting, so a
failed check here reports its values like an assert in a test does. Fixtures and the servers
they start are in ``servers/``; this module starts nothing and holds no fixture.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.parse
import uuid
import datetime as dt
from pathlib import Path

import pytest

# -- who the tests are ----------------------------------------------------------------------

BIN = Path(sys.executable).parent  # the venv that runs pytest, with credproc installed in it
CREDPROC = BIN / "credproc"
ACCOUNT = "123456789012"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/credproc-test"
ROLE_NAME = ROLE_ARN.rsplit("/", 1)[1]
ASSUMED_PREFIX = f"arn:aws:sts::{ACCOUNT}:assumed-role/{ROLE_NAME}/"  # + the role session name
ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY"  # with a '/', as real ones often have
# The forms of SECRET_KEY a leak shows up in: as is, and percent-encoded as in a URI.
SECRET_KEY_FORMS = (SECRET_KEY, urllib.parse.quote(SECRET_KEY, safe=""))


def wait_for(condition, what: str, timeout: float = 15):
    """Poll ``condition`` until it returns something true, and return that; fail the test,
    naming ``what``, after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout:g}s: {what}")
        time.sleep(0.02)
    return value


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (at the time of asking)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- connection definitions -------------------------------------------------------------------


def sts_at(endpoint: str) -> dict:
    """The extra fragment that sends a connection's STS calls to ``endpoint`` (and sets the
    region to us-east-1): ``service_config.sts.endpoint_url``, where Airflow's STS clients
    read it. New tests take it from here, never spell the key themselves: where the STS
    endpoint is written is one decision, made in this one place."""
    return {**sts_endpoint(endpoint), "region_name": "us-east-1"}


def sts_endpoint(endpoint: str | None) -> dict:
    """:func:`sts_at` without the region: the extra fragment naming the STS endpoint alone
    (``None``: the explicit null that leaves it to botocore)."""
    return {"service_config": {"sts": {"endpoint_url": endpoint}}}


def sts_toml(endpoint: str) -> str:
    """:func:`sts_at` as the lines of a TOML connection table."""
    return toml_lines(sts_at(endpoint))


def toml_lines(table: dict) -> str:
    """The keys of ``table`` as TOML lines, one ``key = value`` a line (nested values inline)."""
    return "\n".join(f"{toml_key(str(key))} = {toml_value(value)}" for key, value in table.items())


def conn_uri(endpoint: str, *, login: str = ACCESS_KEY, password: str | None = SECRET_KEY, **extra: str) -> str:
    """An Airflow URI for a connection at ``endpoint`` with the string extras ``extra``.

    A URI's query holds only flat strings, and the STS endpoint is nested
    (``service_config.sts``): the extras go into ``__extra__`` as JSON, strings staying
    strings, as a query would give them. The key pair is percent-encoded; ``password=None``
    gives the login alone (``aws://KEY@/``, the keyring has the secret), ``login=""`` no key
    pair at all."""
    return extra_uri(dict(extra), endpoint=endpoint, login=login, password=password)


def extra_uri(extra: dict, *, endpoint: str | None = None, login: str = ACCESS_KEY,
              password: str | None = SECRET_KEY) -> str:
    """An Airflow URI whose extra is real JSON in ``__extra__``, for nested values.

    ``endpoint`` adds :func:`sts_at` (the STS endpoint and ``region_name = "us-east-1"``) in
    front of ``extra``; ``login`` and ``password`` as for :func:`conn_uri`."""
    if endpoint is not None:
        extra = {**sts_at(endpoint), **extra}
    return f"aws://{_auth(login, password)}/?__extra__={urllib.parse.quote(json.dumps(extra), safe='')}"


def _auth(login: str, password: str | None) -> str:
    if not login:
        return ""
    if password is None:
        return f"{urllib.parse.quote(login, safe='')}@"
    return f"{urllib.parse.quote(login, safe='')}:{urllib.parse.quote(password, safe='')}@"


def toml_string(value: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters escaped, the rest as is."""
    out = []
    for ch in value:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def toml_key(key: str) -> str:
    """A TOML key: bare when TOML allows it, else quoted."""
    bare = key and all(c.isascii() and (c.isalnum() or c in "-_") for c in key)
    return key if bare else toml_string(key)


def toml_value(value) -> str:
    """``value`` as a TOML inline value (tables for dicts, arrays for lists, any nesting).

    None has no TOML form and becomes an empty string; non-finite floats are TOML's
    ``nan``/``inf``; dates and times are TOML's own (not strings)."""
    if value is None:
        return '""'
    if isinstance(value, bool):  # before int: True is an int
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{toml_key(str(k))} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(type(value))


def write_toml(env: dict, text: str) -> None:
    """Write the config file ``env`` points credproc at (indentation common to all lines removed)."""
    Path(env["CREDPROC_CONFIG"]).write_text(textwrap.dedent(text), encoding="utf-8")


# -- checks on a finished credproc run ---------------------------------------------------------


def credentials_only(stdout: str) -> dict:
    """The credentials of a successful run, asserting stdout holds that JSON and nothing else
    (one line: SDKs parse all of stdout as one JSON document)."""
    assert stdout.endswith("\n") and stdout.count("\n") == 1 and stdout.startswith("{"), repr(stdout[:300])
    out = json.loads(stdout)
    assert isinstance(out, dict) and out.get("Version") == 1, out
    for key in ("AccessKeyId", "SecretAccessKey"):
        assert isinstance(out.get(key), str) and out[key], out
    assert set(out) <= {"Version", "AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration", "AccountId"}, out
    return out


def stderr_verdict(result: subprocess.CompletedProcess, debug: bool = False) -> list[str]:
    """Check the shape of stderr for any run, and return its warning lines.

    Every line is ``credproc: warning: ...`` or ``credproc: error: ...`` (so no message spills
    over lines, and no traceback); a failed run (exit 1 or 2) ends with exactly one error line
    and prints nothing on stdout; a successful one has no error line and prints only JSON.
    With ``debug`` (a run with --debug), log lines (``credproc: DEBUG: ...``) are allowed too,
    and a traceback before the error line of a failed run.
    """
    assert result.returncode in (0, 1, 2), f"exit {result.returncode}: {result.stderr[-2000:]}"
    lines = result.stderr.splitlines()
    if not (debug and result.returncode != 0):
        assert "Traceback" not in result.stderr, result.stderr[-4000:]
        allowed = ("credproc: ",) if debug else ("credproc: warning: ", "credproc: error: ")
        strays = [line for line in lines if not line.startswith(allowed)]
        assert strays == [], f"stderr lines that are not credproc's one-line messages: {strays[:5]}"
    errors = [line for line in lines if line.startswith("credproc: error: ")]
    if result.returncode == 0:
        assert errors == [], errors
        credentials_only(result.stdout)
    else:
        assert result.stdout == "", f"stdout of a failed run: {result.stdout[:300]!r}"
        assert len(errors) == 1 and lines[-1] == errors[0], f"want exactly one error line, last: {lines}"
    return [line for line in lines if line.startswith("credproc: warning: ")]


def ok(result: subprocess.CompletedProcess, *, text: bool = False, temporary: bool = False,
       account: str | None = None):
    """What a successful run printed: exit 0 and no traceback on stderr (warnings may be there).

    By default the run is the main job: stdout must be the credential JSON alone
    (:func:`credentials_only`), returned as a dict. ``temporary``: the credentials are a
    role session's, with a session token and an expiry; ``account``: they say this AccountId.
    ``text``: the run is a command for people (list, show, secret, ...): stdout is returned
    as the text it is.
    """
    assert result.returncode == 0, f"exit {result.returncode}: {result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr
    if text:
        return result.stdout
    out = credentials_only(result.stdout)
    if temporary:
        assert out.get("SessionToken") and out.get("Expiration", "").endswith("Z"), out
    if account is not None:
        assert out.get("AccountId") == account, out
    return out


def one_error(result: subprocess.CompletedProcess, code: int, *needles: str, alone: bool = True,
              secrets: tuple[str, ...] = SECRET_KEY_FORMS) -> str:
    """The one ``credproc: error:`` line of a failed run, checked for every needle.

    Always: exit ``code``, nothing on stdout, no traceback, exactly one error line, the last
    line of stderr, with none of ``secrets`` anywhere on stderr (by default the planted
    SECRET_KEY, plain and percent-encoded). ``alone``: stderr is that line and nothing else;
    ``alone=False`` lets other lines come before it (warnings, a session factory's own log
    lines, a keyring backend's notes).
    """
    assert result.returncode == code, f"exit {result.returncode} (wanted {code}):\n{result.stdout}{result.stderr}"
    assert result.stdout == "", f"stdout of a failed run: {result.stdout[:300]!r}"
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("credproc: error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], f"want exactly one error line, last: {result.stderr}"
    if alone:
        assert lines == errors, f"want the error line alone on stderr: {result.stderr}"
    for secret in secrets:
        assert secret not in result.stderr, "a secret leaked to stderr"
    for needle in needles:
        assert needle in errors[0], f"{needle!r} not in {errors[0]!r}"
    return errors[0]


def assert_no_secret(*results: subprocess.CompletedProcess, secrets) -> None:
    """None of ``secrets`` is on the stdout or stderr of any of ``results``."""
    for result in results:
        for secret in secrets:
            assert secret not in result.stdout, f"secret on stdout:\n{result.stdout}"
            assert secret not in result.stderr, f"secret on stderr:\n{result.stderr}"


# -- what reached the STS (the counting proxy's ``sts.requests``) ------------------------------


def header(request: dict, name: str) -> str:
    """A header of a recorded request, whatever the case of its name ("" when absent)."""
    for key, value in request["headers"].items():
        if key.lower() == name.lower():
            return value
    return ""


def signing_key(request: dict) -> str:
    """The access key id in the request's SigV4 credential scope."""
    match = re.search(r"Credential=([^/,\s]+)/", header(request, "Authorization"))
    assert match, f"unsigned request: {request['headers']}"
    return match.group(1)


# -- credproc processes started side by side ---------------------------------------------------


def start(executable, args: list[str], env: dict) -> subprocess.Popen:
    """``executable args`` started as an SDK starts credproc (stdin closed), not waited for."""
    return subprocess.Popen([str(executable), *args], env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen, timeout: float = 90) -> subprocess.CompletedProcess:
    """Wait for ``proc``; one that outlives ``timeout`` is killed and fails the test."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"credproc did not finish within {timeout}s: {err}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def run_together(executable, args: list[str], env: dict, count: int,
                 timeout: float = 120) -> list[subprocess.CompletedProcess]:
    """``count`` processes of ``executable args``, all started before any is waited for (a
    stampede on a cold cache); their results in start order. None outlives the call."""
    procs = [start(executable, args, env) for _ in range(count)]
    try:
        return [finish(p, timeout) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


# -- a profile whose credential_process is credproc, as SDKs use it --------------------------


def demo_profile(env: dict, command: str) -> None:
    """``[profile demo]`` in the isolated AWS config, with ``command`` as its credential_process."""
    with open(env["AWS_CONFIG_FILE"], "w", encoding="utf-8") as f:
        f.write(textwrap.dedent(f"""\
            [profile demo]
            credential_process = {command}
            region = us-east-1
            retry_mode = standard
            max_attempts = 3
            """))


def counting_wrapper(directory: Path, name: str = "counted-credproc") -> tuple[Path, Path]:
    """An executable ``directory/name`` that appends a line ("PID ARGS") to a log at each
    start, then execs credproc: how an SDK's (or credproc's own) starts are counted.
    Returns (the executable, its log)."""
    log = directory / f"{name}.log"
    wrapper = directory / name
    wrapper.write_text(f'#!/bin/sh\necho "$$ $*" >> "{log}"\nexec "{CREDPROC}" "$@"\n')
    wrapper.chmod(0o755)
    return wrapper, log


def runs(log: Path) -> int:
    """How often the wrapper of :func:`counting_wrapper` was started."""
    return len(log.read_text().splitlines()) if log.exists() else 0


def expiring_helper(directory: Path, seconds: float, name: str = "expiring-helper") -> tuple[Path, Path]:
    """A ``credential_process`` that is not credproc: each run appends a line to a log and
    prints fixed session credentials whose ``Expiration`` is ``seconds`` after the moment it
    runs. In Python started like credproc (no ``-S``), so a run costs about what a credproc
    cache hit does. What an SDK does with credentials that near their expiry, measured
    without credproc's own floor in the way (tests/test_interop.py,
    benchmarks/sdk_refresh_windows.py). Returns (the executable, its log)."""
    log = directory / f"{name}.log"
    helper = directory / name
    helper.write_text(textwrap.dedent(f"""\
        #!{sys.executable} -I
        import time
        with open({str(log)!r}, "a") as log:
            log.write("run\\n")
        expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + {round(seconds)}))
        print('{{"Version": 1, "AccessKeyId": "ASIAEXPIRINGEXAMPLE1", "SecretAccessKey": "expiring-secret", '
              '"SessionToken": "expiring-token", "Expiration": "%s"}}' % expires)
        """))
    helper.chmod(0o755)
    return helper, log


# -- the OS keyring --------------------------------------------------------------------------

PLAINTEXT_KEYRING = "keyrings.alt.file.PlaintextKeyring"


def use_file_keyring(env: dict, directory: Path) -> Path:
    """Point ``env`` at keyrings.alt's plaintext file backend under ``directory`` (so a test
    sees what was stored, and nothing touches the developer's keyring); returns the file."""
    env["PYTHON_KEYRING_BACKEND"] = PLAINTEXT_KEYRING
    env["XDG_DATA_HOME"] = str(directory / "data")
    return keyring_file(env)


def keyring_file(env: dict) -> Path:
    """The file the plaintext backend of ``env`` keeps its secrets in."""
    return Path(env["XDG_DATA_HOME"]) / "python_keyring" / "keyring_pass.cfg"



# -- the clock moved with libfaketime, and the refreshers it leaves behind ------------------


def faketime_path() -> str:
    """Debian's ``faketime`` (libfaketime's wrapper); skips the test when it is not installed
    (a failure under CREDPROC_REQUIRE_INTEGRATION=1)."""
    path = shutil.which("faketime")
    if path is None:
        pytest.skip("faketime is not installed (scripts/system-deps installs it)")
    return path


def at(offset: str, args: list[str], executable=CREDPROC) -> list[str]:
    """The command line of ``executable args`` with its clock moved by ``offset``: libfaketime's
    relative form, the clock still running ("+25m", "+1h", "+1530" seconds, "-2m"). Processes
    it forks (a background refresher) keep the offset; servers (moto) keep the real clock."""
    return [faketime_path(), "-f", offset, str(executable), *args]


def run_at(offset: str, args: list[str], env: dict, *, timeout: float = 60,
           executable=CREDPROC) -> subprocess.CompletedProcess:
    """Run credproc (stdin closed, as an SDK does) with its clock moved by ``offset`` and wait
    for it, reading its stdout and stderr to their end (so a process it left behind holding
    them would keep this waiting). ``result.seconds`` is its wall time."""
    started = time.monotonic()
    result = subprocess.run(at(offset, args, executable), env=env, capture_output=True, text=True,
                            timeout=timeout, stdin=subprocess.DEVNULL)
    result.seconds = time.monotonic() - started  # type: ignore[attr-defined]
    return result


def start_at(offset: str, args: list[str], env: dict, executable=CREDPROC) -> subprocess.Popen:
    """As :func:`run_at`, not waited for (:func:`finish` waits)."""
    command = at(offset, args, executable)
    return start(command[0], command[1:], env)


def process_state(pid: int) -> str | None:
    """The state letter of a process in /proc/PID/stat ("R", "S", "Z"...), None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0].decode()
    except (OSError, IndexError):
        return None


class Refreshers:
    """The background refreshers the credproc runs of one test leave behind.

    Every run gets a marker variable in ``env``; a refresher is a live process whose
    environment carries this test's marker and that runs in a session other than pytest's
    (credproc's runs, and faketime around them, stay in pytest's session; the detached
    refresher calls setsid). A refresher counts until it is dead: a zombie (not yet reaped by
    init) does not count, one still exiting does (its memory, and so its environment, may be
    gone before its descriptors, and so its lock).
    """

    VARIABLE = "CREDPROC_TEST_MARKER"

    def __init__(self, env: dict):
        self.marker = f"{self.VARIABLE}={uuid.uuid4().hex}".encode()
        env[self.VARIABLE] = self.marker.split(b"=", 1)[1].decode()
        self._session = os.getsid(0)
        self._seen: set[int] = set()

    def pids(self) -> list[int]:
        found = self._marked()
        self._seen.update(found)
        for pid in self._seen - set(found):
            if process_state(pid) in (None, "Z", "X"):
                self._seen.discard(pid)
            else:
                found.append(pid)
        return sorted(found)

    def _marked(self) -> list[int]:
        found = []
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open(f"/proc/{name}/environ", "rb") as f:
                    if self.marker not in f.read().split(b"\0"):
                        continue
                with open(f"/proc/{name}/stat", "rb") as f:
                    fields = f.read().rsplit(b")", 1)[1].split()
                with open(f"/proc/{name}/cmdline", "rb") as f:
                    cmdline = f.read()
            except OSError:  # gone meanwhile, or not ours
                continue
            state, session = fields[0], int(fields[3])
            if state not in (b"Z", b"X") and session != self._session and b"credproc" in cmdline:
                found.append(int(name))
        return found

    def wait(self, timeout: float = 30) -> float:
        """Until no refresher is left; the seconds that took. Fails the test after ``timeout``."""
        started = time.monotonic()
        while self.pids():
            if time.monotonic() - started > timeout:
                pytest.fail(f"background refreshers {self.pids()} still running after {timeout}s")
            time.sleep(0.02)
        return time.monotonic() - started

    def wait_for(self, count: int = 1, timeout: float = 15) -> list[int]:
        """Until ``count`` refreshers run; their pids."""
        deadline = time.monotonic() + timeout
        while len(pids := self.pids()) < count:
            if time.monotonic() > deadline:
                pytest.fail(f"{count} background refresher(s) expected, found {pids} after {timeout}s")
            time.sleep(0.02)
        return pids

    def kill(self) -> None:
        """SIGKILL every one left (a test's teardown: none may outlive it)."""
        for _ in range(50):
            pids = self.pids()
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, 9)
            time.sleep(0.02)


# -- a person at a terminal: a pseudo-terminal as the controlling terminal ----------------------


class Terminal:
    """``argv`` run with a pseudo-terminal as its controlling terminal, as from a shell in a
    terminal window, while stdin is an open pipe that never delivers a byte (SDKs leave the
    helper's stdin so) and stdout and stderr are pipes read apart (SDKs capture both).

    Only what the process writes to the terminal itself (``/dev/tty``) shows on it: ``seen``
    is all of that so far, as text (the terminal turns "\\n" into "\\r\\n"). A person answers
    with :meth:`expect` (wait for a prompt), :meth:`type` (a line, typed once the terminal's
    echo is off, so that a code typed at a prompt shows only if the process failed to turn
    it off) and :meth:`interrupt` (Ctrl-C: SIGINT to the terminal's foreground process
    group, which is the process's own). :meth:`wait` returns a CompletedProcess with
    ``terminal`` (everything the terminal showed) and ``seconds`` (wall time).

    The process leads a session of its own (setsid) whose controlling terminal is the pty;
    the child gets no descriptor of it beyond the standard ones it opens itself
    (``/dev/tty``). This side keeps the pty's slave end open, so that reading the master never
    fails while the process has none open. Use it as a context manager: a process still
    running at the end is killed.
    """

    def __init__(self, argv: list[str], env: dict, *, cwd=None):
        import pty
        import threading

        self.master, self.slave = pty.openpty()
        os.set_inheritable(self.slave, False)
        slave = self.slave

        def controlling_terminal() -> None:  # in the child, after setsid (start_new_session)
            import fcntl
            import termios

            fcntl.ioctl(slave, termios.TIOCSCTTY, 0)  # then close_fds closes this descriptor

        self.started = time.monotonic()
        self.process = subprocess.Popen([str(a) for a in argv], env=env, cwd=cwd, stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                                        preexec_fn=controlling_terminal)
        self._screen = bytearray()
        self._position = 0
        self._changed = threading.Condition()
        self._out: dict[str, bytes] = {}
        self._closing = False
        self._readers = [threading.Thread(target=self._read_pipe, args=(name, pipe), daemon=True)
                         for name, pipe in (("stdout", self.process.stdout), ("stderr", self.process.stderr))]
        self._readers.append(threading.Thread(target=self._read_terminal, daemon=True))
        for reader in self._readers:
            reader.start()

    # -- what the process writes --------------------------------------------------------------

    def _read_pipe(self, name: str, pipe) -> None:
        self._out[name] = pipe.read()

    def _read_terminal(self) -> None:
        import select

        while True:
            ready, _, _ = select.select([self.master], [], [], 0.05)
            if not ready:
                if self._closing:
                    return
                continue
            try:
                chunk = os.read(self.master, 4096)
            except OSError:
                return
            if not chunk:
                return
            with self._changed:
                self._screen += chunk
                self._changed.notify_all()

    @property
    def seen(self) -> str:
        with self._changed:
            return bytes(self._screen).decode("utf-8", "replace")

    def expect(self, text: str, timeout: float = 30) -> str:
        """Wait until ``text`` shows on the terminal after what earlier calls waited for;
        the terminal's output up to its end. Fails the test when the process ends first or
        ``timeout`` passes."""
        wanted = text.encode()
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = self._screen.find(wanted, self._position)
                if found >= 0:
                    end = found + len(wanted)
                    shown = bytes(self._screen[self._position:end]).decode("utf-8", "replace")
                    self._position = end
                    return shown
                left = deadline - time.monotonic()
                if left <= 0 or (self.process.poll() is not None and not self._changed.wait(0.2)):
                    screen = bytes(self._screen).decode("utf-8", "replace")
                    ended = self.process.poll()
                    stderr = self._out.get("stderr", b"").decode("utf-8", "replace")
                    pytest.fail(f"{text!r} did not show on the terminal "
                                f"({'the process ended, exit ' + str(ended) if ended is not None else 'timeout'}); "
                                f"it showed {screen!r}; stderr {stderr!r}")
                self._changed.wait(min(left, 0.1))

    def echo_is_off(self) -> bool:
        import termios

        return not termios.tcgetattr(self.slave)[3] & termios.ECHO

    def type(self, text: str, *, enter: bool = True, echo_timeout: float = 2.0) -> None:
        """Type ``text`` (and Enter) as a person does after the prompt: once the terminal's
        echo is off, or after ``echo_timeout`` seconds anyway (and then it shows)."""
        deadline = time.monotonic() + echo_timeout
        while not self.echo_is_off() and time.monotonic() < deadline:
            time.sleep(0.01)
        os.write(self.master, text.encode() + (b"\r" if enter else b""))

    def interrupt(self) -> None:
        """Ctrl-C on the terminal."""
        os.write(self.master, b"\x03")

    # -- the end --------------------------------------------------------------------------------

    def wait(self, timeout: float = 60) -> subprocess.CompletedProcess:
        """Wait for the process (killed, and the test failed, after ``timeout``); then its
        exit status, stdout, stderr, ``terminal`` and ``seconds``."""
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            self._finish()
            pytest.fail(f"{self.process.args} did not finish within {timeout}s; the terminal showed {self.seen!r}; "
                        f"stderr {self._out.get('stderr', b'')!r}")
        return self._finish()

    def _finish(self) -> subprocess.CompletedProcess:
        seconds = time.monotonic() - self.started
        if self.process.stdin and not self.process.stdin.closed:
            self.process.stdin.close()
        for reader in self._readers[:2]:
            reader.join(30)  # the pipes end when the process (and anything it left holding them) is gone
        self._closing = True
        self._readers[2].join(5)
        result = subprocess.CompletedProcess(self.process.args, self.process.returncode,
                                             self._out.get("stdout", b"").decode("utf-8", "replace"),
                                             self._out.get("stderr", b"").decode("utf-8", "replace"))
        result.terminal = self.seen  # type: ignore[attr-defined]
        result.seconds = seconds  # type: ignore[attr-defined]
        return result

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        if not self._closing:
            self._finish()
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> Terminal:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def at_terminal(argv: list[str], env: dict, prompt: str, answer: str | None, *, timeout: float = 60,
                cwd=None) -> subprocess.CompletedProcess:
    """Run ``argv`` at a terminal (:class:`Terminal`), wait for ``prompt``, type ``answer``
    (None: Ctrl-C instead), and wait for the end."""
    with Terminal(argv, env, cwd=cwd) as terminal:
        terminal.expect(prompt, timeout)
        if answer is None:
            terminal.interrupt()
        else:
            terminal.type(answer)
        return terminal.wait(timeout)


def start_headless(argv: list[str], env: dict, *, cwd=None) -> subprocess.Popen:
    """``argv`` started with no controlling terminal at all (a session of its own: not
    pytest's, which may have one when run from a shell) and stdin an open pipe that delivers
    nothing, as under an SDK run from cron or CI. ``finish_headless`` waits for it."""
    process = subprocess.Popen([str(a) for a in argv], env=env, cwd=cwd, stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    process.started = time.monotonic()  # type: ignore[attr-defined]
    return process


def finish_headless(process: subprocess.Popen, timeout: float = 90) -> subprocess.CompletedProcess:
    """Wait for a :func:`start_headless` process, stdin kept open until it ends (unlike
    ``communicate``, which closes it at once); ``seconds`` is its wall time. One that outlives
    ``timeout`` is killed and fails the test."""
    import threading

    out: dict[str, str] = {}
    readers = [threading.Thread(target=lambda n=name, p=pipe: out.__setitem__(n, p.read()), daemon=True)
               for name, pipe in (("stdout", process.stdout), ("stderr", process.stderr))]
    for reader in readers:
        reader.start()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        pytest.fail(f"{process.args} did not finish within {timeout}s")
    finally:
        seconds = time.monotonic() - process.started  # type: ignore[attr-defined]
        if process.stdin and not process.stdin.closed:
            process.stdin.close()
    for reader in readers:
        reader.join(30)
    result = subprocess.CompletedProcess(process.args, process.returncode, out.get("stdout", ""),
                                         out.get("stderr", ""))
    result.seconds = seconds  # type: ignore[attr-defined]
    return result


def headless(argv: list[str], env: dict, *, timeout: float = 90, cwd=None) -> subprocess.CompletedProcess:
    """Run ``argv`` as :func:`start_headless` starts it and wait for it (:func:`finish_headless`)."""
    return finish_headless(start_headless(argv, env, cwd=cwd), timeout)


# -- credproc serve ----------------------------------------------------------------------------


class Serving:
    """A ``credproc serve --format json`` process (the ``serving`` fixture of conftest.py)."""

    def __init__(self, proc: subprocess.Popen, printed: dict):
        self.proc = proc
        self.printed = printed
        self.port: int = printed["port"]
        self.token_file = Path(printed["token_file"])
        self.token = self.token_file.read_text()

    @classmethod
    def start(cls, command: list[str], conn_ids: list[str], env: dict, extra=(), timeout: float = 60) -> Serving:
        args = [*command, "serve", *(a for c in conn_ids for a in ("--conn", c)), "--format", "json", *extra]
        proc = subprocess.Popen(args, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        lines: list[str] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:  # the JSON ends with a line "}" (indent=2)
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line == "}\n":
                return cls(proc, json.loads("".join(lines)))
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"credproc serve printed no exports (exit {proc.returncode}): {''.join(lines)}{out}\n{err}")

    def uri(self, conn_id: str) -> str:
        return self.printed["uris"][conn_id]

    def env(self, env: dict, conn_id: str, *, token_file: bool = True) -> dict:
        """``env`` as the exports make it: the full URI, and the token (in its file, or in
        AWS_CONTAINER_AUTHORIZATION_TOKEN for SDKs that read only that), no AWS_PROFILE."""
        out = {k: v for k, v in env.items() if k not in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE")}
        out["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = self.uri(conn_id)
        if token_file:
            out["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"] = str(self.token_file)
        else:
            out["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = self.token
        return out

    def request(self, path: str, headers: dict | None = None, method: str = "GET") -> tuple[int, dict, bytes]:
        """One raw request (http.client): status, headers (lower-case names), body."""
        import http.client

        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            for name, value in (headers or {}).items():
                connection.putheader(name, value)
            connection.endheaders()
            answer = connection.getresponse()
            return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
        finally:
            connection.close()

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 30) -> subprocess.CompletedProcess:
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
        return subprocess.CompletedProcess(self.proc.args, self.proc.returncode, out, err)
