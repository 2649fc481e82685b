"""MFA (issue 14): one code per MFA session, for every role and every process, asked where a
person can answer.

The local STS checks codes as real STS does (moto checks none): the proxy knows the code the
device ``alice`` shows now (``sts.mfa_devices``), refuses a missing, wrong or reused one with
STS's own words, and refuses AssumeRole of the MFA-protected roles (``sts.mfa_roles``: their
trust policy requires ``aws:MultiFactorAuthPresent``) unless the call is signed by an MFA
session's key. Its GetSessionToken answers carry keys of their own, so that a test sees which
key signed what (moto always answers with the tests' long-term pair).

A person is a pseudo-terminal (``helpers.Terminal``): the process's controlling terminal,
while its stdin is an open pipe and its stdout and stderr are captured, as under an SDK. A
process with no terminal at all is ``helpers.headless`` (a session of its own, no
controlling terminal, stdin an open pipe).
"""

from __future__ import annotations

import fcntl
import json
import os
import stat
import subprocess
import time
from datetime import datetime
from pathlib import Path

import pytest
from helpers import (
    ACCESS_KEY,
    ACCOUNT,
    ASSUMED_PREFIX,
    BIN,
    CREDPROC,
    ROLE_ARN,
    SECRET_KEY,
    SECRET_KEY_FORMS,
    Terminal,
    at,
    at_terminal,
    credentials_only,
    demo_profile,
    extra_uri,
    finish_headless,
    header,
    headless,
    ok,
    one_error,
    signing_key,
    start_headless,
    stderr_verdict,
    use_file_keyring,
)
from servers.sts import MFA_FAILED

pytestmark = pytest.mark.integration

DEVICE = "alice"
SERIAL = f"arn:aws:iam::{ACCOUNT}:mfa/{DEVICE}"
CODE = "731904"  # not a part of the account id (which the prompt shows)
NEXT_CODE = "582046"  # what the device shows a while later
WRONG_CODE = "319577"
ROLE2_ARN = f"arn:aws:iam::{ACCOUNT}:role/credproc-test-2"
ROLE2_PREFIX = f"arn:aws:sts::{ACCOUNT}:assumed-role/credproc-test-2/"
PROMPT = "MFA code"  # the prompt says this, then names the connection and the device
DENIED_ROLE = "is not authorized to perform: sts:AssumeRole"


# -- fixtures and small helpers -----------------------------------------------------------------


@pytest.fixture
def mfa_sts(sts):
    """The local STS, checking MFA: device ``alice`` shows CODE; both test roles need MFA."""
    sts.mfa_devices = {SERIAL: CODE}
    sts.mfa_roles = {ROLE_ARN, ROLE2_ARN}
    return sts


def mfa_definition(sts, role: str | None = ROLE_ARN, *, login: str = ACCESS_KEY, password: str | None = SECRET_KEY,
                   **extra) -> str:
    """A connection with its own key pair, the device, and (unless None) a role."""
    fields = {"mfa_serial": SERIAL, **extra}
    if role is not None:
        fields["role_arn"] = role
    return extra_uri(fields, endpoint=sts.url, login=login, password=password)


def define(env: dict, conn_id: str, definition: str) -> None:
    env[f"CREDPROC_CONN_{conn_id.upper()}"] = definition


def credproc(conn_id: str, *args: str) -> list[str]:
    return [str(CREDPROC), "--conn", conn_id, *args]


def cache_dir(env: dict) -> Path:
    return Path(env["CREDPROC_CACHE_DIR"])


def session_label(label: str) -> bool:
    """Whether an entry's connection id (its header's, or a ``cache list`` row's) is that of
    the device's MFA session. The brief names it ``mfa-alice``; main writes "\\0mfa:alice" in
    the header (no connection id holds a NUL), ``_mfa_alice--`` in the file name and
    ``mfa:alice`` in ``cache list``: either is taken here."""
    return label.lstrip("\0_").replace(":", "-").replace("_", "-") == f"mfa-{DEVICE}"


def mfa_entries(env: dict) -> list[Path]:
    """The entries of the device's MFA sessions, found by their header."""
    return [path for path in all_entries(env) if session_label(bytes.fromhex(header_fields(path)[5]).decode())]


def entries_of(env: dict, conn_id: str) -> list[Path]:
    return sorted(cache_dir(env).glob(f"{conn_id}--*.entry"))


def all_entries(env: dict) -> list[Path]:
    return sorted(cache_dir(env).glob("*.entry")) if cache_dir(env).exists() else []


def header_fields(path: Path) -> list[str]:
    return path.read_bytes().partition(b"\n")[0].decode().split(" ")


def held_locks(env: dict) -> list[Path]:
    """The lock files of the cache that a process holds now (flock LOCK_EX)."""
    held = []
    for path in sorted(cache_dir(env).glob("*.lock")) if cache_dir(env).exists() else []:
        fd = os.open(path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            held.append(path)
        finally:
            os.close(fd)
    return held


def requests_of(sts, action: str) -> list[dict]:
    return [r for r in sts.requests if r["action"] == action]


def prompts(result) -> int:
    return result.terminal.count(PROMPT)


def asked_at_the_terminal(result, conn_id: str = "prod") -> str:
    """The one prompt the terminal showed: it names the connection and the device; the
    code typed is not on the terminal, nor on stderr. Returns the prompt's line."""
    assert prompts(result) == 1, f"want one prompt, the terminal showed {result.terminal!r}"
    line = next(line for line in result.terminal.splitlines() if PROMPT in line)
    assert f"'{conn_id}'" in line and SERIAL in line, f"the prompt names neither connection nor device: {line!r}"
    for code in (CODE, NEXT_CODE, WRONG_CODE):
        assert code not in result.terminal, f"the code {code} was echoed: {result.terminal!r}"
        assert code not in result.stderr, f"the code {code} is on stderr: {result.stderr!r}"
    return line


def assumed_with_the_mfa_session(sts, count: int | None = None) -> None:
    """Every AssumeRole carried no SerialNumber and no TokenCode and was signed by the key of
    an MFA session (with its token); ``count`` of them, if given."""
    calls = requests_of(sts, "AssumeRole")
    if count is not None:
        assert len(calls) == count, [c["params"] for c in calls]
    for call in calls:
        assert "SerialNumber" not in call["params"] and "TokenCode" not in call["params"], call["params"]
        key = signing_key(call)
        assert key in sts.mfa_session_keys(), f"AssumeRole signed by {key}, not by an MFA session's key"
        assert header(call, "X-Amz-Security-Token") == sts.sessions[key]["token"]


def mfa_script(directory: Path, code: str = CODE, *, seconds: float = 0.3) -> tuple[Path, Path]:
    """A small ``mfa_process``: logs each run (its pid, its arguments) to a file, takes ``seconds``, says a
    line on its stderr, prints ``code``. Returns (the script, its log)."""
    log = directory / "mfa-process.log"
    script = directory / "mfa-code"
    script.write_text(f'#!/bin/sh\necho "$$ $# $*" >> "{log}"\nsleep {seconds}\necho "mfa-code: asked" >&2\n'
                      f'echo {code}\n')
    script.chmod(0o755)
    return script, log


def runs_of(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


def first_run_at_the_terminal(env: dict, conn_id: str = "prod", code: str = CODE) -> dict:
    """``credproc --conn ID`` at the terminal, answered with ``code``: the credentials."""
    result = at_terminal(credproc(conn_id), env, PROMPT, code)
    asked_at_the_terminal(result, conn_id)
    return ok(result, temporary=True)


def quiet_at_the_terminal(argv: list[str], env: dict, timeout: float = 60):
    """Run at the terminal, typing nothing: it must finish without asking (a prompt is
    answered with Ctrl-C at once, and fails the test)."""
    with Terminal(argv, env) as terminal:
        deadline = time.monotonic() + timeout
        while terminal.process.poll() is None and PROMPT not in terminal.seen and time.monotonic() < deadline:
            time.sleep(0.02)
        if PROMPT in terminal.seen:
            terminal.interrupt()
            asked = terminal.wait(30)
            pytest.fail(f"asked for a code: {asked.terminal!r}; stderr {asked.stderr!r}")
        result = terminal.wait(timeout)
    assert PROMPT not in result.terminal, f"asked again: {result.terminal!r}"
    return result


# -- the local STS checks MFA as real STS does -------------------------------------------------


def test_the_local_sts_refuses_missing_wrong_and_reused_codes(mfa_sts):
    """The proxy itself, through boto3: what the tests below rely on."""
    boto3 = pytest.importorskip("boto3")
    from botocore.exceptions import ClientError

    def client(key=ACCESS_KEY, secret=SECRET_KEY, token=None):
        return boto3.client("sts", endpoint_url=mfa_sts.url, region_name="us-east-1", aws_access_key_id=key,
                            aws_secret_access_key=secret, aws_session_token=token)

    def refused(call, code: str, message: str) -> None:
        with pytest.raises(ClientError) as caught:
            call()
        error = caught.value.response["Error"]
        assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
        assert error["Code"] == code and message in error["Message"], error

    user = client()
    refused(lambda: user.get_session_token(SerialNumber=SERIAL), "AccessDenied", MFA_FAILED)
    refused(lambda: user.get_session_token(SerialNumber=SERIAL, TokenCode=WRONG_CODE), "AccessDenied", MFA_FAILED)
    refused(lambda: user.get_session_token(SerialNumber=SERIAL.replace("alice", "bob"), TokenCode=CODE),
            "AccessDenied", MFA_FAILED)
    refused(lambda: user.assume_role(RoleArn=ROLE_ARN, RoleSessionName="ss"), "AccessDenied", DENIED_ROLE)
    assert mfa_sts.count("GetSessionToken") == 3 and mfa_sts.sessions == {}

    session = user.get_session_token(SerialNumber=SERIAL, TokenCode=CODE, DurationSeconds=3600)["Credentials"]
    assert session["AccessKeyId"].startswith("ASIA") and session["AccessKeyId"] != ACCESS_KEY
    assert session["SecretAccessKey"] != SECRET_KEY
    left = session["Expiration"].timestamp() - time.time()
    assert 3500 < left <= 3600, left
    assert mfa_sts.mfa_session_keys() == [session["AccessKeyId"]]
    refused(lambda: user.get_session_token(SerialNumber=SERIAL, TokenCode=CODE), "AccessDenied", MFA_FAILED)  # used

    signed = client(session["AccessKeyId"], session["SecretAccessKey"], session["SessionToken"])
    role = signed.assume_role(RoleArn=ROLE_ARN, RoleSessionName="ss")
    assert role["AssumedRoleUser"]["Arn"] == ASSUMED_PREFIX + "ss"
    refused(lambda: signed.get_session_token(), "AccessDenied", "Cannot call GetSessionToken with session credentials")
    forged = client(session["AccessKeyId"], session["SecretAccessKey"], "not-its-token")
    refused(lambda: forged.assume_role(RoleArn=ROLE_ARN, RoleSessionName="ss"), "InvalidClientTokenId", "invalid")

    # A session opened without a device is no MFA session.
    plain = user.get_session_token()["Credentials"]
    plain_client = client(plain["AccessKeyId"], plain["SecretAccessKey"], plain["SessionToken"])
    refused(lambda: plain_client.assume_role(RoleArn=ROLE_ARN, RoleSessionName="ss"), "AccessDenied", DENIED_ROLE)

    # A code with the call itself: good once, refused again; roles that need no MFA: as moto.
    mfa_sts.mfa_devices[SERIAL] = NEXT_CODE
    user.assume_role(RoleArn=ROLE_ARN, RoleSessionName="ss", SerialNumber=SERIAL, TokenCode=NEXT_CODE)
    refused(lambda: user.assume_role(RoleArn=ROLE_ARN, RoleSessionName="ss", SerialNumber=SERIAL,
                                     TokenCode=NEXT_CODE), "AccessDenied", MFA_FAILED)
    user.assume_role(RoleArn=f"arn:aws:iam::{ACCOUNT}:role/no-mfa-needed", RoleSessionName="ss")
    assert mfa_sts.count("GetSessionToken") == 7 and mfa_sts.count("AssumeRole") == 7
    assert len(mfa_sts.denied) == 9, mfa_sts.denied


# -- the prompt, the session, the roles --------------------------------------------------------


def test_the_prompt_opens_one_session_for_every_role_of_those_keys(mfa_sts, env):
    define(env, "prod", mfa_definition(mfa_sts))
    define(env, "other", mfa_definition(mfa_sts, ROLE2_ARN))

    result = at_terminal(credproc("prod"), env, PROMPT, CODE)
    asked_at_the_terminal(result, "prod")
    first = ok(result, temporary=True, account=ACCOUNT)
    assert stderr_verdict(result) == [] and result.stderr == "", result.stderr
    assert first["AccessKeyId"] not in (ACCESS_KEY, *mfa_sts.mfa_session_keys())  # the role's, not the session's

    (opened,) = requests_of(mfa_sts, "GetSessionToken")
    assert opened["params"]["SerialNumber"] == SERIAL and opened["params"]["TokenCode"] == CODE
    assert opened["params"]["DurationSeconds"] == "43200"  # 12 hours unless mfa_session_duration says
    assert signing_key(opened) == ACCESS_KEY and not header(opened, "X-Amz-Security-Token")
    assumed_with_the_mfa_session(mfa_sts, count=1)

    # The session is a cache entry: 0600, named after the device, holding no long-term secret.
    (session_entry,) = mfa_entries(env)
    assert stat.S_IMODE(session_entry.stat().st_mode) == 0o600
    assert header_fields(session_entry)[:2] == ["credproc-cache", "2"]
    assert DEVICE in session_entry.name and "mfa" in session_entry.name, session_entry.name
    for path in cache_dir(env).iterdir():
        assert ACCESS_KEY not in path.name
        if path.is_file():
            assert not any(s.encode() in path.read_bytes() for s in SECRET_KEY_FORMS), path

    # A second run is a hit: no prompt, nothing asked.
    again = quiet_at_the_terminal(credproc("prod"), env)
    assert ok(again) == first and again.terminal == "" and again.stderr == ""

    # A second role of the same keys and device: the cached session, no prompt.
    other = quiet_at_the_terminal(credproc("other"), env)
    assert ok(other, temporary=True)["AccessKeyId"] != first["AccessKeyId"]
    assert mfa_sts.count("GetSessionToken") == 1
    assumed_with_the_mfa_session(mfa_sts, count=2)
    assert {signing_key(r) for r in requests_of(mfa_sts, "AssumeRole")} == set(mfa_sts.mfa_session_keys())
    assert mfa_sts.denied == []


def test_refresh_assumes_the_role_again_with_the_same_session(mfa_sts, env):
    """``--refresh`` asks for new role credentials, not for a new code: the session lives."""
    define(env, "prod", mfa_definition(mfa_sts))
    first = first_run_at_the_terminal(env)
    refreshed = quiet_at_the_terminal(credproc("prod", "--refresh"), env)
    assert ok(refreshed, temporary=True)["AccessKeyId"] != first["AccessKeyId"]
    assert mfa_sts.count("GetSessionToken") == 1
    assumed_with_the_mfa_session(mfa_sts, count=2)


@pytest.mark.parametrize("duration", [None, 3600], ids=["default-12h", "mfa_session_duration"])
def test_without_a_role_the_mfa_session_is_printed(mfa_sts, env, duration):
    extra = {} if duration is None else {"mfa_session_duration": duration}
    define(env, "prod", mfa_definition(mfa_sts, None, **extra))
    out = first_run_at_the_terminal(env)
    assert [out["AccessKeyId"]] == mfa_sts.mfa_session_keys()
    assert out["SessionToken"] == mfa_sts.sessions[out["AccessKeyId"]]["token"]
    wanted = duration or 43200
    assert requests_of(mfa_sts, "GetSessionToken")[0]["params"]["DurationSeconds"] == str(wanted)
    left = datetime.fromisoformat(out["Expiration"].replace("Z", "+00:00")).timestamp() - time.time()
    assert wanted - 120 < left <= wanted, left
    assert mfa_sts.count("AssumeRole") == 0

    again = quiet_at_the_terminal(credproc("prod"), env)
    assert ok(again) == out
    assert mfa_sts.count("GetSessionToken") == 1


def test_no_terminal_fails_at_once_saying_how_to_give_the_code(mfa_sts, env):
    define(env, "prod", mfa_definition(mfa_sts))
    result = headless(credproc("prod"), env, timeout=30)
    line = one_error(result, 1, "'prod'", SERIAL, "mfa_process")
    assert "credproc --conn prod" in line, line
    assert result.seconds < 5, f"took {result.seconds:.1f}s"
    assert mfa_sts.count("GetSessionToken") == 0 and mfa_sts.count("AssumeRole") == 0
    assert all_entries(env) == []


# -- mfa_process -----------------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["string", "list"])
def test_eight_processes_with_mfa_process_run_it_once(mfa_sts, env, tmp_path, form):
    script, log = mfa_script(tmp_path, seconds=0.5)
    # split as a shell splits words, run without one: no expansion of $HOME
    command = f"{script} --for 'two words' $HOME" if form == "string" else [str(script), "--for", "two words", "$HOME"]
    define(env, "prod", mfa_definition(mfa_sts, mfa_process=command))

    procs = [start_headless(credproc("prod"), env) for _ in range(8)]
    results = [finish_headless(p, 120) for p in procs]
    printed = [ok(r, temporary=True) for r in results]
    assert all(out == printed[0] for out in printed), "the processes printed different credentials"
    assert runs_of(log) == 1
    assert log.read_text().split(" ", 1)[1] == "3 --for two words $HOME\n", log.read_text()
    assert mfa_sts.count("GetSessionToken") == 1 and mfa_sts.count("AssumeRole") == 1
    assumed_with_the_mfa_session(mfa_sts)
    # its stderr is passed through (once: one process ran it), the code never shows
    assert sum("mfa-code: asked" in r.stderr for r in results) == 1, [r.stderr for r in results]
    assert not any(CODE in r.stderr for r in results)
    assert not any("fetching without it" in r.stderr for r in results)

    # later processes: the session and the role are cached, the script is not run again
    ok(headless(credproc("prod"), env))
    assert runs_of(log) == 1


def test_mfa_process_comes_before_the_terminal(mfa_sts, env, tmp_path):
    script, log = mfa_script(tmp_path)
    define(env, "prod", mfa_definition(mfa_sts, mfa_process=str(script)))
    result = quiet_at_the_terminal(credproc("prod"), env)
    ok(result, temporary=True)
    assert result.terminal == "" and runs_of(log) == 1


def test_mfa_process_gets_no_stdin(mfa_sts, env, tmp_path):
    """Its stdin is /dev/null, not the SDK's open pipe: a script that reads it goes on."""
    script = tmp_path / "reads-stdin"
    script.write_text(f"#!/bin/sh\nread line\necho {CODE}\n")
    script.chmod(0o755)
    env["CREDPROC_MFA_PROCESS_TIMEOUT"] = "10"
    define(env, "prod", mfa_definition(mfa_sts, mfa_process=str(script)))
    result = headless(credproc("prod"), env, timeout=30)
    ok(result, temporary=True)
    assert result.seconds < 5, result.seconds


def test_mfa_process_that_fails_hangs_or_prints_no_code(mfa_sts, env, tmp_path):
    failing = tmp_path / "failing"
    failing.write_text("#!/bin/sh\necho 'no token here' >&2\nexit 3\n")
    hanging = tmp_path / "hanging"
    hanging.write_text("#!/bin/sh\nexec sleep 60\n")
    garbage = tmp_path / "garbage"
    garbage.write_text("#!/bin/sh\necho 'code: 12'\n")
    for script in (failing, hanging, garbage):
        script.chmod(0o755)
    env["CREDPROC_MFA_PROCESS_TIMEOUT"] = "1"
    cases = (("failing", failing, "exit status 3"), ("hanging", hanging, "CREDPROC_MFA_PROCESS_TIMEOUT"),
             ("garbage", garbage, "6 digits"))
    for name, script, needle in cases:
        define(env, name, mfa_definition(mfa_sts, mfa_process=str(script)))
        result = headless(credproc(name), env, timeout=30)
        one_error(result, 1, f"'{name}'", needle, alone=False)
        assert result.seconds < 10, (name, result.seconds)
    define(env, "missing", mfa_definition(mfa_sts, mfa_process=str(tmp_path / "no-such-program")))
    one_error(headless(credproc("missing"), env), 2, "mfa_process", alone=False)
    assert mfa_sts.count("GetSessionToken") == 0 and all_entries(env) == []


# -- one prompt per stampede ----------------------------------------------------------------------


def test_a_stampede_waits_for_the_person_at_the_terminal(mfa_sts, env):
    """One process at the terminal asks; three others (no terminal) wait past the lock
    timeout (2 s) while the person takes 4 s to type; all succeed, with one prompt."""
    env["CREDPROC_LOCK_TIMEOUT"] = "2"
    define(env, "prod", mfa_definition(mfa_sts))
    with Terminal(credproc("prod"), env) as terminal:
        terminal.expect(PROMPT)
        waiters = [start_headless(credproc("prod"), env) for _ in range(3)]
        time.sleep(4)
        assert [w.poll() for w in waiters] == [None] * 3, "a waiter gave up while the person was asked"
        terminal.type(CODE)
        asked = terminal.wait()
    waited = [finish_headless(w, 60) for w in waiters]
    asked_at_the_terminal(asked)
    first = ok(asked, temporary=True)
    assert mfa_sts.count("AssumeRole") == 1, [r.stderr for r in waited]
    for result in waited:
        assert ok(result) == first
        assert result.stderr == "", result.stderr  # no "waited 2s for lock ...; fetching without it"
    assert mfa_sts.count("GetSessionToken") == 1 and mfa_sts.count("AssumeRole") == 1
    assert mfa_sts.denied == []


def test_four_processes_on_one_terminal_ask_once(mfa_sts, env, tmp_path):
    """As ``make -j4`` in a terminal: four processes share it, started together; whichever
    takes the lock asks, the others wait for the answer."""
    env["CREDPROC_LOCK_TIMEOUT"] = "2"
    define(env, "prod", mfa_definition(mfa_sts))
    script = " ".join(f'"{CREDPROC}" --conn prod > "{tmp_path}/out{i}" 2> "{tmp_path}/err{i}" &' for i in range(4))
    with Terminal(["/bin/sh", "-c", script + " wait"], env) as terminal:
        terminal.expect(PROMPT)
        time.sleep(3)
        terminal.type(CODE)
        shell = terminal.wait()
    assert shell.returncode == 0
    asked_at_the_terminal(shell)
    printed = [credentials_only((tmp_path / f"out{i}").read_text()) for i in range(4)]
    assert all(out == printed[0] for out in printed)
    assert [(tmp_path / f"err{i}").read_text() for i in range(4)] == [""] * 4
    assert mfa_sts.count("GetSessionToken") == 1 and mfa_sts.count("AssumeRole") == 1


# -- a wrong code, Ctrl-C --------------------------------------------------------------------------


@pytest.mark.parametrize("typed", [WRONG_CODE, "73190"], ids=["wrong", "not-6-digits"])
def test_a_wrong_code_is_one_line_and_nothing_is_cached(mfa_sts, env, typed):
    define(env, "prod", mfa_definition(mfa_sts))
    result = at_terminal(credproc("prod"), env, PROMPT, typed)
    if typed == WRONG_CODE:
        line = one_error(result, 1, "'prod'", "GetSessionToken", "AccessDenied", MFA_FAILED)
        assert mfa_sts.count("GetSessionToken") == 1
    else:
        line = one_error(result, 1, "'prod'", "6 digits")
        assert mfa_sts.count("GetSessionToken") == 0
    assert typed not in line and typed not in result.terminal, (line, result.terminal)
    assert mfa_sts.count("AssumeRole") == 0
    assert all_entries(env) == [], "something was cached"
    assert held_locks(env) == []

    # the next run asks again, and the good code works
    first_run_at_the_terminal(env)
    assert mfa_sts.count("AssumeRole") == 1


def test_a_code_is_used_once(mfa_sts, env):
    """After the session is cleared, the same code again is refused by STS (single use):
    one line; the device's next code opens a new session."""
    define(env, "prod", mfa_definition(mfa_sts))
    first_run_at_the_terminal(env)
    ok(headless([str(CREDPROC), "cache", "clear", "prod"], env), text=True)
    again = at_terminal(credproc("prod"), env, PROMPT, CODE)
    one_error(again, 1, "'prod'", MFA_FAILED)
    assert CODE not in again.terminal and all_entries(env) == []
    mfa_sts.mfa_devices[SERIAL] = NEXT_CODE
    first_run_at_the_terminal(env, code=NEXT_CODE)
    assert mfa_sts.count("GetSessionToken") == 3 and len(mfa_sts.mfa_session_keys()) == 2


def test_ctrl_c_at_the_prompt_exits_130_caches_nothing_and_frees_the_lock(mfa_sts, env):
    define(env, "prod", mfa_definition(mfa_sts))
    with Terminal(credproc("prod"), env) as terminal:
        terminal.expect(PROMPT)
        terminal.interrupt()
        result = terminal.wait(30)
    assert result.returncode == 130, (result.returncode, result.stderr, result.terminal)
    assert result.stdout == "" and "Traceback" not in result.stderr, result.stderr
    assert mfa_sts.count("GetSessionToken") == 0 and all_entries(env) == []
    assert held_locks(env) == []
    for lock in cache_dir(env).glob("*.lock"):
        assert lock.read_bytes() == b"", f"{lock.name} still says {lock.read_bytes()!r}"

    # the next run takes the lock at once and asks
    with Terminal(credproc("prod"), env) as terminal:
        terminal.expect(PROMPT, timeout=3)
        terminal.type(CODE)
        ok(terminal.wait(), temporary=True)


def test_ctrl_c_while_another_waits_lets_it_ask(mfa_sts, env):
    """The asking process is interrupted: a process waiting for it at a terminal takes
    its turn and asks (not the 5 minutes of a person's wait, not a failure)."""
    env["CREDPROC_LOCK_TIMEOUT"] = "2"
    define(env, "prod", mfa_definition(mfa_sts))
    with Terminal(credproc("prod"), env) as first:
        first.expect(PROMPT)
        with Terminal(credproc("prod"), env) as second:
            time.sleep(1)
            assert PROMPT not in second.seen, "the second process asked while the first did"
            first.interrupt()
            assert first.wait(30).returncode == 130
            second.expect(PROMPT, timeout=5)
            second.type(CODE)
            result = second.wait()
    ok(result, temporary=True)
    assert mfa_sts.count("GetSessionToken") == 1


# -- SDKs running credproc through credential_process ---------------------------------------------


def aws_cli(sts) -> list[str]:
    return [str(BIN / "aws"), "sts", "get-caller-identity", "--profile", "demo", "--endpoint-url", sts.url,
            "--output", "json"]


BOTO3_SCRIPT = """\
import json, sys
import boto3

session = boto3.Session(profile_name="demo")
client = session.client("sts", endpoint_url=sys.argv[1])
print(json.dumps(client.get_caller_identity()))
"""


@pytest.mark.parametrize("sdk", ["aws-cli", "boto3"])
def test_an_sdk_running_credproc_shows_the_prompt(mfa_sts, env, tmp_path, sdk):
    define(env, "demo", mfa_definition(mfa_sts))
    demo_profile(env, f"{CREDPROC} --conn demo")
    if sdk == "aws-cli":
        argv = aws_cli(mfa_sts)
    else:
        script = tmp_path / "client.py"
        script.write_text(BOTO3_SCRIPT)
        argv = [str(BIN / "python"), str(script), mfa_sts.url]
    result = at_terminal(argv, env, PROMPT, CODE, timeout=120)
    assert result.returncode == 0, (result.stderr, result.terminal)
    asked_at_the_terminal(result, "demo")
    identity = json.loads(result.stdout)
    assert identity["Arn"] == ASSUMED_PREFIX + "credproc-demo"
    assert mfa_sts.count("GetSessionToken") == 1 and mfa_sts.count("GetCallerIdentity") == 1
    assumed_with_the_mfa_session(mfa_sts, count=1)

    again = quiet_at_the_terminal(argv, env, timeout=120)
    assert again.returncode == 0 and json.loads(again.stdout)["Arn"] == identity["Arn"]
    assert mfa_sts.count("GetSessionToken") == 1 and mfa_sts.count("AssumeRole") == 1


# -- long-term keys from every source -----------------------------------------------------------

SOURCE_KEY = "AKIASOURCEKEYS000001"
SOURCE_SECRET = "source/secret+key/EXAMPLE0000000000000001"


def secret_set(env: dict, conn_id: str, value: str) -> None:
    result = subprocess.run([str(CREDPROC), "secret", "set", conn_id], env=env, input=value + "\n",
                            capture_output=True, text=True, timeout=60, start_new_session=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("source", ["login-password", "extra-pair", "keyring", "profile", "s3_config_file"])
def test_long_term_keys_from_any_source(mfa_sts, env, tmp_path, source):
    if source == "keyring":
        pytest.importorskip("keyring")
    base = {"role_arn": ROLE_ARN, "mfa_serial": SERIAL}
    if source == "login-password":
        definition = extra_uri(base, endpoint=mfa_sts.url, login=SOURCE_KEY, password=SOURCE_SECRET)
    elif source == "extra-pair":
        definition = extra_uri({**base, "aws_access_key_id": SOURCE_KEY, "aws_secret_access_key": SOURCE_SECRET},
                               endpoint=mfa_sts.url, login="")
    elif source == "keyring":
        use_file_keyring(env, tmp_path)
        definition = extra_uri(base, endpoint=mfa_sts.url, login=SOURCE_KEY, password=None)
    elif source == "profile":
        Path(env["AWS_SHARED_CREDENTIALS_FILE"]).write_text(
            f"[static]\naws_access_key_id = {SOURCE_KEY}\naws_secret_access_key = {SOURCE_SECRET}\n")
        definition = extra_uri({**base, "profile_name": "static"}, endpoint=mfa_sts.url, login="")
    else:
        path = tmp_path / "s3.cfg"
        path.write_text(f"[default]\naws_access_key_id = {SOURCE_KEY}\naws_secret_access_key = {SOURCE_SECRET}\n")
        definition = extra_uri({**base, "s3_config_file": str(path), "s3_config_format": "aws"},
                               endpoint=mfa_sts.url, login="")
    define(env, "prod", definition)
    if source == "keyring":
        secret_set(env, "prod", SOURCE_SECRET)

    result = at_terminal(credproc("prod"), env, PROMPT, CODE)
    asked_at_the_terminal(result)
    ok(result, temporary=True)
    assert SOURCE_SECRET not in result.stderr and SOURCE_SECRET not in result.terminal
    (opened,) = requests_of(mfa_sts, "GetSessionToken")
    assert signing_key(opened) == SOURCE_KEY
    assumed_with_the_mfa_session(mfa_sts, count=1)
    assert len(mfa_entries(env)) == 1
    quiet_at_the_terminal(credproc("prod"), env)


def test_temporary_keys_cannot_open_an_mfa_session(mfa_sts, env):
    define(env, "prod", mfa_definition(mfa_sts, aws_session_token="IQoJb3JpZ2luX2VjTemporaryToken"))
    result = quiet_at_the_terminal(credproc("prod"), env)  # no code asked: it could not be used
    one_error(result, 2, "'prod'", "temporary", alone=False)
    assert mfa_sts.count("GetSessionToken") == 0


def test_other_keys_with_the_same_device_open_their_own_session(mfa_sts, env):
    define(env, "prod", mfa_definition(mfa_sts))
    define(env, "rotated", mfa_definition(mfa_sts, ROLE2_ARN, login=SOURCE_KEY, password=SOURCE_SECRET))
    first_run_at_the_terminal(env, "prod")
    mfa_sts.mfa_devices[SERIAL] = NEXT_CODE
    first_run_at_the_terminal(env, "rotated", code=NEXT_CODE)
    assert [signing_key(r) for r in requests_of(mfa_sts, "GetSessionToken")] == [ACCESS_KEY, SOURCE_KEY]
    assert len(mfa_entries(env)) == 2


# -- Airflow's assume_role_kwargs.SerialNumber -------------------------------------------------------


def test_assume_role_kwargs_serial_number_works_like_mfa_serial(mfa_sts, env):
    define(env, "airflow", extra_uri({"role_arn": ROLE_ARN, "assume_role_kwargs": {"SerialNumber": SERIAL}},
                                     endpoint=mfa_sts.url))
    define(env, "prod", mfa_definition(mfa_sts, ROLE2_ARN))  # same keys, same device
    first_run_at_the_terminal(env, "airflow")
    assumed_with_the_mfa_session(mfa_sts, count=1)
    ok(quiet_at_the_terminal(credproc("prod"), env), temporary=True)  # the same session
    assert mfa_sts.count("GetSessionToken") == 1
    assumed_with_the_mfa_session(mfa_sts, count=2)


def test_serial_number_with_a_token_code_is_passed_through(mfa_sts, env):
    """As written, as before: the code goes with the AssumeRole, no session is opened."""
    define(env, "fixed", extra_uri({"role_arn": ROLE_ARN,
                                    "assume_role_kwargs": {"SerialNumber": SERIAL, "TokenCode": CODE}},
                                   endpoint=mfa_sts.url))
    ok(headless(credproc("fixed"), env), temporary=True)
    (call,) = requests_of(mfa_sts, "AssumeRole")
    assert (call["params"]["SerialNumber"], call["params"]["TokenCode"]) == (SERIAL, CODE)
    assert signing_key(call) == ACCESS_KEY and mfa_sts.count("GetSessionToken") == 0


def test_two_different_devices_are_a_configuration_error(mfa_sts, env):
    define(env, "both", extra_uri({"role_arn": ROLE_ARN, "mfa_serial": SERIAL,
                                   "assume_role_kwargs": {"SerialNumber": SERIAL.replace("alice", "bob")}},
                                  endpoint=mfa_sts.url))
    one_error(headless(credproc("both"), env), 2, "mfa_serial", "SerialNumber")
    assert mfa_sts.requests == []


# -- the cache commands ----------------------------------------------------------------------------


def test_cache_list_show_and_clear_know_the_session(mfa_sts, env):
    define(env, "prod", mfa_definition(mfa_sts))
    before = ok(headless([str(CREDPROC), "show", "prod"], env), text=True)
    assert SERIAL in before

    first_run_at_the_terminal(env)
    listed = ok(headless([str(CREDPROC), "cache", "list"], env), text=True)
    rows = [line for line in listed.splitlines() if session_label(line.split(" ", 1)[0])]
    assert len(rows) == 1, listed
    assert "fresh" in rows[0] or "valid" in rows[0], rows[0]
    as_json = json.loads(ok(headless([str(CREDPROC), "cache", "list", "--json"], env), text=True))
    assert sorted(row["id"] for row in as_json if not session_label(row["id"])) == ["prod"], as_json
    assert len([row for row in as_json if session_label(row["id"])]) == 1, as_json

    after = ok(headless([str(CREDPROC), "show", "prod"], env), text=True)
    assert SERIAL in after and after != before, "show says nothing of the session opened"
    shown = json.loads(ok(headless([str(CREDPROC), "show", "prod", "--json"], env), text=True))
    assert SERIAL in json.dumps(shown)
    checked = ok(headless([str(CREDPROC), "check", "prod"], env), text=True)
    assert SERIAL in checked and ASSUMED_PREFIX in checked
    for text in (before, after, listed, checked):
        assert not any(s in text for s in (*SECRET_KEY_FORMS, CODE)), text
    assert mfa_sts.count("GetSessionToken") == 1

    cleared = ok(headless([str(CREDPROC), "cache", "clear", "prod"], env), text=True)
    assert "removed 2 cache entries" in cleared, cleared
    assert mfa_entries(env) == [] and entries_of(env, "prod") == []
    mfa_sts.mfa_devices[SERIAL] = NEXT_CODE
    first_run_at_the_terminal(env, code=NEXT_CODE)  # asked again
    assert mfa_sts.count("GetSessionToken") == 2


def test_list_shows_the_session(mfa_sts, env):
    """Issue 14, item 2: "``list`` and ``cache list`` show it"."""
    define(env, "prod", mfa_definition(mfa_sts))
    first_run_at_the_terminal(env)
    listed = ok(headless([str(CREDPROC), "list"], env), text=True)
    (row,) = [line for line in listed.splitlines() if line.startswith("prod ")]
    assert DEVICE in listed, f"`credproc list` does not show the MFA session:\n{listed}"


# -- background refresh off the cached session ---------------------------------------------------


def test_a_due_role_is_refreshed_in_the_background_off_the_cached_session(mfa_sts, env, faketime, refreshers):
    define(env, "prod", mfa_definition(mfa_sts))
    first = first_run_at_the_terminal(env)
    assert mfa_sts.count("AssumeRole") == 1

    due = quiet_at_the_terminal(at("+28m", ["--conn", "prod"]), env)  # the 1-hour role is due at 27 min
    assert ok(due) == first and due.terminal == "" and due.stderr == ""
    refreshers.wait()
    (entry,) = entries_of(env, "prod")
    renewed = json.loads(entry.read_bytes().partition(b"\n")[2])
    assert renewed["AccessKeyId"] != first["AccessKeyId"]
    assert header_fields(entry)[8] == "0", "a failure was recorded"
    assert mfa_sts.count("GetSessionToken") == 1 and mfa_sts.count("AssumeRole") == 2
    assumed_with_the_mfa_session(mfa_sts)
    later = quiet_at_the_terminal(at("+29m", ["--conn", "prod"]), env)
    assert ok(later) == renewed and later.stderr == ""


def test_an_expired_session_is_a_recorded_failure_in_the_background_and_a_prompt_at_the_floor(
        mfa_sts, env, faketime, refreshers):
    """A 15-minute session: at 30 minutes the role is due but the session is gone. The
    refresher cannot ask: the failure is recorded, the role served with a warning; at the
    role's floor the foreground asks."""
    define(env, "prod", mfa_definition(mfa_sts, mfa_session_duration=900))
    first = first_run_at_the_terminal(env)

    due = quiet_at_the_terminal(at("+30m", ["--conn", "prod"]), env)
    assert ok(due) == first
    refreshers.wait()
    (entry,) = entries_of(env, "prod")
    fields = header_fields(entry)
    assert fields[8] == "1" and "needs an MFA code" in bytes.fromhex(fields[9]).decode(), fields
    assert mfa_sts.count("GetSessionToken") == 1 and mfa_sts.count("AssumeRole") == 1

    served = quiet_at_the_terminal(at("+31m", ["--conn", "prod"]), env)
    assert ok(served) == first
    warnings = stderr_verdict(served)
    assert len(warnings) == 1 and "needs an MFA code" in warnings[0], served.stderr
    assert CODE not in served.stderr

    headless_floor = headless(at("+55m", ["--conn", "prod"]), env)
    one_error(headless_floor, 1, "needs an MFA code", "mfa_process", alone=False)

    mfa_sts.mfa_devices[SERIAL] = NEXT_CODE
    floor = at_terminal(at("+55m", ["--conn", "prod"]), env, PROMPT, NEXT_CODE)
    asked_at_the_terminal(floor)
    assert floor.returncode == 0, floor.stderr
    assert mfa_sts.count("GetSessionToken") == 2
