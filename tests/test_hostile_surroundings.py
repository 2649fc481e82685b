"""Hostile surroundings, by hand: someone else's files in the cache, planted entries,
recursion through AWS profiles, and an SDK that leaves stdin open.

The promises (README, "The cache" and "Recursion"): a cache directory or entry that is not
yours alone is never used nor written through, and credentials are still printed with a
warning; an entry that is not this connection's is refused; a connection that leads back to
itself fails fast with exit 2, spawning at most a couple of processes; credproc never reads
stdin and never writes anything but the JSON to stdout.

(tests/test_cache_end_to_end.py already covers corrupt entries, untrusted entry modes and
owners, and an entry symlinked to a valid entry or a FIFO; this file adds the directory, the
lock file, hard links, special files and forged entries.)
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import time
from hashlib import sha256
from pathlib import Path

import pytest

from helpers import ACCESS_KEY, CREDPROC, ROLE_ARN, SECRET_KEY, conn_uri, counting_wrapper, credentials_only, \
    extra_uri, stderr_verdict, sts_at

pytestmark = pytest.mark.integration

CONN = "prod"
VARIABLE = f"CREDPROC_CONN_{CONN.upper()}"


# -- helpers -------------------------------------------------------------------------------------


@pytest.fixture
def prod(sts, env):
    env[VARIABLE] = conn_uri(sts.url, role_arn=ROLE_ARN)
    return env


def cache_dir(env) -> Path:
    return Path(env["CREDPROC_CACHE_DIR"])


def the_entry(env) -> Path:
    (entry,) = cache_dir(env).glob(f"{CONN}--*.entry")
    return entry


def snapshot(directory: Path) -> dict:
    """Every name below ``directory`` with its type, bytes, mode, owner and mtime."""
    out = {}
    for p in sorted(directory.rglob("*")):
        st_ = p.lstat()
        data = p.read_bytes() if stat.S_ISREG(st_.st_mode) else None
        out[p.name] = (stat.S_IFMT(st_.st_mode), data, st_.st_mode, st_.st_uid, st_.st_mtime_ns, st_.st_ino)
    return out


def fetched(result, sts, before: int) -> dict:
    """A successful run that called STS once more (it did not serve what was planted)."""
    assert result.returncode == 0, result.stderr
    out = credentials_only(result.stdout)
    assert sts.count("AssumeRole") == before + 1, "nothing was fetched: the planted file was served"
    return out


def one_warning(result, *needles: str) -> str:
    warned = stderr_verdict(result)
    assert len(warned) == 1, result.stderr
    for needle in needles:
        assert needle in warned[0], f"{needle!r} not in {warned[0]!r}"
    return warned[0]


def hit(run, env, sts, expected: str) -> None:
    """The next run is a clean hit that prints ``expected``."""
    before = sts.count("AssumeRole")
    again = run(["--conn", CONN], env)
    assert again.returncode == 0 and again.stderr == "", again.stderr
    assert again.stdout == expected
    assert sts.count("AssumeRole") == before


# -- the cache directory is not yours alone --------------------------------------------------------

DIRECTORY_ATTACKS = {
    "owned-by-nobody": lambda d: os.chown(d, 65534, 65534),
    "group-writable": lambda d: d.chmod(0o770),
    "world-writable": lambda d: d.chmod(0o707),
    "sticky-world-writable": lambda d: d.chmod(0o1777),
}


@pytest.mark.parametrize("attack", DIRECTORY_ATTACKS)
def test_untrusted_cache_directory_is_neither_read_nor_written(sts, prod, run, attack):
    """A warm cache directory that someone else owns or can write: its entry (valid, fresh:
    a hit if trusted) is not served, nothing in it is created, changed or removed (not even
    the lock), one warning names the directory, and credentials are still printed - on
    every run."""
    if attack == "owned-by-nobody" and os.geteuid() != 0:
        pytest.fail("chown to another uid needs root (CI runs as root)")
    env = prod
    warm = run(["--conn", CONN], env)
    credentials_only(warm.stdout)
    directory = cache_dir(env)
    DIRECTORY_ATTACKS[attack](directory)
    before = snapshot(directory)
    dir_stat = directory.stat()
    for n in (1, 2):
        calls = sts.count("AssumeRole")
        result = run(["--conn", CONN], env)
        out = fetched(result, sts, calls)
        assert result.stdout != warm.stdout
        assert out["SessionToken"]
        one_warning(result, str(directory), "not using cache directory")
        assert snapshot(directory) == before, f"run {n} changed the untrusted directory"
        after = directory.stat()
        assert (after.st_mode, after.st_uid) == (dir_stat.st_mode, dir_stat.st_uid), "the directory was altered"


# -- the entry and the lock are not plain files of yours ------------------------------------------


def _lock_symlink(env, outside: Path) -> str:
    """The lock file is a symlink to a file elsewhere: never opened through the link."""
    the_entry(env).unlink()  # a miss: the lock is taken
    (lock,) = cache_dir(env).glob(f"{CONN}--*.lock")
    lock.unlink()
    lock.symlink_to(outside)
    return "lock"


def _entry_hardlink(env, outside: Path) -> str:
    """The entry is a hard link to a file elsewhere: --refresh must replace the link, never
    write through it."""
    entry = the_entry(env)
    outside.unlink()
    os.link(entry, outside)
    return "refresh"


def _entry_fifo(env, outside: Path) -> str:
    """A FIFO in the entry's place (not a symlink to one): opening it for reading would block."""
    entry = the_entry(env)
    entry.unlink()
    os.mkfifo(entry, 0o600)
    return "entry"


def _entry_directory(env, outside: Path) -> str:
    entry = the_entry(env)
    entry.unlink()
    entry.mkdir(mode=0o700)
    return "entry"


def _entry_huge_sparse(env, outside: Path) -> str:
    """A 1 GiB (sparse) entry: reading it whole would cost a gigabyte of memory."""
    entry = the_entry(env)
    with open(entry, "r+b") as f:
        f.truncate(1 << 30)
    return "entry"


ENTRY_ATTACKS = {"lock-symlink": _lock_symlink, "entry-hardlink": _entry_hardlink, "entry-fifo": _entry_fifo,
                 "entry-directory": _entry_directory, "entry-huge-sparse": _entry_huge_sparse}


@pytest.mark.parametrize("attack", ENTRY_ATTACKS)
def test_odd_files_in_the_cache_are_not_followed(sts, prod, run, tmp_path, attack):
    """The run finishes promptly, prints fresh credentials, warns (one line naming the file),
    and leaves the file outside the cache exactly as it was."""
    env = prod
    credentials_only(run(["--conn", CONN], env).stdout)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    outside = elsewhere / "precious"
    outside.write_bytes(b"not credproc's to touch\n")
    entry_path = the_entry(env)  # where the attack plants its file
    kind = ENTRY_ATTACKS[attack](env, outside)
    before = snapshot(elsewhere)
    calls = sts.count("AssumeRole")
    args = ["--conn", CONN, "--refresh"] if kind == "refresh" else ["--conn", CONN]
    started = time.monotonic()
    try:
        result = run(args, env, timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail(f"credproc blocked on the {attack} (it opened something it should not have)")
    assert time.monotonic() - started < 15
    fetched(result, sts, calls)
    if kind == "lock":
        one_warning(result, "cannot lock")
        assert next(cache_dir(env).glob("*.lock")).is_symlink()
    elif kind == "entry":
        warned = stderr_verdict(result)
        assert warned and str(entry_path) in warned[0], result.stderr
    else:
        assert result.stderr == "", result.stderr
        assert the_entry(env).stat().st_ino != outside.stat().st_ino, "the hard link was written through"
    assert snapshot(elsewhere) == before, f"the file outside the cache was changed through the {attack}"


# -- planted entries ---------------------------------------------------------------------------------


def forge(entry: Path, body: bytes, *, lifetime: float = 3600) -> None:
    """Write an entry under this connection's key with a correct digest: the header of the
    real entry (format of credproc/cache/__init__.py), new times, and ``body``."""
    fields = entry.read_bytes().partition(b"\n")[0].split(b" ")
    now = time.time()
    fields = [*fields[:3], b"%.3f" % now, b"%.3f" % (now + lifetime), fields[5], b"-", b"-", b"0", b"-"]
    digest = sha256(b" ".join(fields) + b"\n" + body).hexdigest()[:32].encode()
    entry.write_bytes(b" ".join([*fields, digest]) + b"\n" + body)
    entry.chmod(0o600)


JUNK_BODIES = {
    "not-json": b"this is not JSON",
    "json-without-keys": b'{"Version": 1}',
    "json-array": b"[1, 2, 3]",
    "two-documents": b'{"Version": 1, "AccessKeyId": "ASIAFORGED", "SecretAccessKey": "x"}\n{"Version": 1}',
    "version-2": b'{"Version": 2, "AccessKeyId": "ASIAFORGED", "SecretAccessKey": "x", "SessionToken": "t", '
                 b'"Expiration": "2099-01-01T00:00:00Z"}',
    "binary": bytes(range(256)),
    "nested-object": b'{"Version": 1, "AccessKeyId": "ASIAFORGED", "SecretAccessKey": {"x": "y"}}',
    "array-value": b'{"Version": 1, "AccessKeyId": "ASIAFORGED", "SecretAccessKey": "x", "SessionToken": ["t"]}',
    "two-objects-on-a-line": b'{"Version": 1, "AccessKeyId": "ASIAFORGED", "SecretAccessKey": "x"}{"a": "b"}',
    "unterminated-string": b'{"Version": 1, "AccessKeyId": "ASIAFORGED", "SecretAccessKey": "x\\"}',
}


@pytest.mark.parametrize("junk", JUNK_BODIES)
def test_forged_entry_with_a_junk_body_is_refused(sts, prod, run, credproc_bin, junk):
    """An entry with a valid header and digest for this very key but a body that is not
    credential_process JSON (hand-made, or written by a buggy credproc): never printed to
    the SDK; a warning, a fresh fetch, and the entry replaced."""
    env = prod
    credentials_only(run(["--conn", CONN], env).stdout)
    entry = the_entry(env)
    forge(entry, JUNK_BODIES[junk])
    calls = sts.count("AssumeRole")
    raw = subprocess.run([str(credproc_bin), "--conn", CONN], env=env, capture_output=True, timeout=60,
                         stdin=subprocess.DEVNULL)  # bytes: the junk may not be text
    assert JUNK_BODIES[junk] not in raw.stdout, f"the junk body was printed: {raw.stdout[:80]!r}"
    result = subprocess.CompletedProcess(raw.args, raw.returncode, raw.stdout.decode(), raw.stderr.decode())
    fetched(result, sts, calls)
    one_warning(result, str(entry))
    hit(run, env, sts, result.stdout)


def test_entry_copied_from_another_connection_is_refused(sts, prod, run):
    """Another connection's valid, fresh entry copied (mode and all) over this one's: the key
    in its header is not this connection's, so it is refused and replaced."""
    env = prod
    mine = run(["--conn", CONN], env)
    credentials_only(mine.stdout)
    other_env = dict(env, CREDPROC_CONN_OTHER=conn_uri(sts.url, login="AKIAOTHERCONNECTION1", role_arn=ROLE_ARN))
    theirs = run(["--conn", "other"], other_env)
    credentials_only(theirs.stdout)
    (other_entry,) = cache_dir(env).glob("other--*.entry")
    entry = the_entry(env)
    shutil.copy2(other_entry, entry)
    calls = sts.count("AssumeRole")
    result = run(["--conn", CONN], env)
    assert result.stdout != theirs.stdout, "another connection's credentials were served"
    fetched(result, sts, calls)
    one_warning(result, str(entry), "another connection")
    hit(run, env, sts, result.stdout)


# -- recursion -----------------------------------------------------------------------------------------


LOOPS = ["profile_name", "session_kwargs.profile_name", "inherited-AWS_PROFILE", "two-connection-cycle"]


@pytest.mark.parametrize("visible", [True, False], ids=["credproc-in-profile", "credproc-behind-a-wrapper"])
@pytest.mark.parametrize("loop", LOOPS)
def test_recursion_fails_fast_with_few_processes(sts, env, tmp_path, loop, visible):
    """A connection whose signing credentials come back to credproc for itself. The profile's
    credential_process either names credproc (found before any process is started) or a
    wrapper script that hides it (found by CREDPROC_CHAIN in the first child). Every start
    is counted through the wrapper: at most 2 processes for a loop onto itself, 3 for a
    cycle of two connections; exit 2, one line, no STS call, well under 10 s."""
    program, log = counting_wrapper(tmp_path, "credproc-logged" if visible else "aws-creds-helper")
    base = {**sts_at(sts.url), "role_arn": ROLE_ARN}
    aws_config = f"[profile loop]\ncredential_process = {program} --conn {CONN}\n"
    if loop == "profile_name":
        env[VARIABLE] = extra_uri({**base, "profile_name": "loop"}, login="")
    elif loop == "session_kwargs.profile_name":
        env[VARIABLE] = extra_uri({**base, "session_kwargs": {"profile_name": "loop"}}, login="")
    elif loop == "inherited-AWS_PROFILE":
        env[VARIABLE] = extra_uri(base, login="")
        env["AWS_PROFILE"] = "loop"
    else:  # prod signs with profile "other", which runs credproc for "other", signed by "loop" -> prod
        env[VARIABLE] = extra_uri({**base, "profile_name": "other"}, login="")
        env["CREDPROC_CONN_OTHER"] = extra_uri({**base, "profile_name": "loop"}, login="")
        aws_config += f"[profile other]\ncredential_process = {program} --conn other\n"
    Path(env["AWS_CONFIG_FILE"]).write_text(aws_config)
    started = time.monotonic()
    result = subprocess.run([str(program), "--conn", CONN], env=env, capture_output=True, text=True, timeout=60,
                            stdin=subprocess.DEVNULL)
    elapsed = time.monotonic() - started
    stderr_verdict(result)
    assert result.returncode == 2, result.stderr
    line = result.stderr.splitlines()[-1]
    assert "leads back to itself" in line and f"connection {CONN!r}" in line, line
    starts = log.read_text().splitlines()
    limit = 3 if loop == "two-connection-cycle" else (1 if visible else 2)
    assert len(starts) <= limit, f"{len(starts)} processes: {starts}"
    assert elapsed < 10, f"took {elapsed:.1f}s"
    assert sts.requests == []
    print(f"{loop}, {'visible' if visible else 'hidden'}: {len(starts)} process(es), {elapsed:.1f}s")


# -- stdin and stdout ---------------------------------------------------------------------------------


def _static(env, sts):
    env[VARIABLE] = conn_uri(sts.url)


def _role(env, sts):
    env[VARIABLE] = conn_uri(sts.url, role_arn=ROLE_ARN)


def _config_error(env, sts):
    env[VARIABLE] = "aws://AKIA:secret-without-at/?x=1"


def _sts_refuses(env, sts):
    env[VARIABLE] = conn_uri(sts.url, role_arn=ROLE_ARN)
    sts.faults.append((403, "AccessDenied"))


def _default_chain(env, sts):
    env.pop(VARIABLE, None)
    env.update(AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY)


STDIN_CASES = {  # name: (setup, arguments, runs, exit code)
    "miss-then-hit": (_role, ["--conn", CONN], 2, 0),
    "refresh": (_role, ["--conn", CONN, "--refresh"], 1, 0),
    "no-cache-debug": (_role, ["--conn", CONN, "--no-cache", "--debug"], 1, 0),
    "static-keys": (_static, ["--conn", CONN], 1, 0),
    "default-chain": (_default_chain, [], 1, 0),
    "config-error": (_config_error, ["--conn", CONN], 1, 2),
    "sts-refuses": (_sts_refuses, ["--conn", CONN], 1, 1),
}


@pytest.mark.parametrize("case", STDIN_CASES)
def test_stdin_left_open_is_never_read(sts, env, credproc_bin, tmp_path, case):
    """The JavaScript SDK starts the helper with stdin an open pipe it never writes nor
    closes. credproc must finish on its own, promptly, and on success write the JSON and
    nothing else to stdout."""
    setup, args, runs, code = STDIN_CASES[case]
    setup(env, sts)
    for n in range(runs):
        out_path, err_path = tmp_path / f"out.{n}", tmp_path / f"err.{n}"
        with open(out_path, "w") as out, open(err_path, "w") as err:
            proc = subprocess.Popen([str(credproc_bin), *args], env=env, stdin=subprocess.PIPE, stdout=out,
                                    stderr=err, text=True)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                pytest.fail("credproc waited on stdin")
            finally:
                proc.stdin.close()
        result = subprocess.CompletedProcess(args, proc.returncode, out_path.read_text(), err_path.read_text())
        stderr_verdict(result, debug="--debug" in args)
        assert result.returncode == code, result.stderr


def test_stdout_is_only_the_json_even_with_warnings_and_debug(sts, env, run):
    """Warnings (deprecated and unknown extras), --debug logging and a chained connection
    whose child credproc also prints: stdout holds exactly one line, the credentials."""
    env[VARIABLE] = conn_uri(sts.url, role_arn=ROLE_ARN, external_id="x-42", region="eu-west-1")
    for args in (["--conn", CONN], ["--conn", CONN], ["--conn", CONN, "--debug"],
                 ["--conn", CONN, "--refresh", "--debug"], ["--conn", CONN, "--no-cache"]):
        result = run(args, env)
        warned = stderr_verdict(result, debug="--debug" in args)
        assert result.returncode == 0, result.stderr
        credentials_only(result.stdout)
        assert all("deprecated" in w or "unknown" in w for w in warned), warned

    # Chained: "chained" signs with profile "base", which runs credproc --conn base.
    env["CREDPROC_CONN_BASE"] = conn_uri(sts.url, region="x")  # a warning in the child too
    env["CREDPROC_CONN_CHAINED"] = extra_uri({"role_arn": ROLE_ARN, "profile_name": "base"}, endpoint=sts.url,
                                             login="")
    Path(env["AWS_CONFIG_FILE"]).write_text(f"[profile base]\ncredential_process = {CREDPROC} --conn base\n")
    for args in (["--conn", "chained"], ["--conn", "chained", "--debug"]):
        result = run(args, env)
        stderr_verdict(result, debug="--debug" in args)
        assert result.returncode == 0, result.stderr
        out = credentials_only(result.stdout)
        assert out["AccessKeyId"] != ACCESS_KEY
