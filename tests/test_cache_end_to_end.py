"""The on-disk cache, end to end: the installed ``credproc`` executable in subprocesses,
against the local STS (moto behind the counting proxy of servers/sts.py).

What is checked is what users and SDKs see: how many AssumeRole calls reach STS, what is
printed, what is left on disk, and what is said on stderr.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
import urllib.parse
import warnings
from datetime import datetime, timezone
from pathlib import Path

import pytest

from helpers import ACCESS_KEY, ROLE_ARN, SECRET_KEY, conn_uri, extra_uri, ok, run_together, sts_endpoint, sts_toml

pytestmark = pytest.mark.integration

CONN = "prod"


# -- helpers -------------------------------------------------------------------------------


def cache_dir(env) -> Path:
    return Path(env["CREDPROC_CACHE_DIR"])


def entry_files(env, conn_id: str = CONN) -> list[Path]:
    d = cache_dir(env)
    return sorted(d.glob(f"{conn_id}--*.entry")) if d.is_dir() else []


def the_entry(env, conn_id: str = CONN) -> Path:
    found = entry_files(env, conn_id)
    assert len(found) == 1, f"expected one entry for {conn_id!r}, found {found}"
    return found[0]


def all_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*")) if directory.is_dir() else []


def snapshot(directory: Path) -> dict:
    """Every file below ``directory``: its bytes, mode and mtime (None when it does not exist)."""
    if not directory.exists():
        return {}
    out = {}
    for p in all_files(directory):
        st = p.lstat()
        out[str(p)] = (p.read_bytes() if p.is_file() and not p.is_symlink() else None, st.st_mode, st.st_mtime_ns)
    return out


def assumed(result: subprocess.CompletedProcess) -> dict:
    """The printed credentials of a successful run that assumed the role."""
    out = ok(result)
    assert out["AccessKeyId"] != ACCESS_KEY and out["SessionToken"] and out["Expiration"].endswith("Z"), out
    return out


def expiration(out: dict) -> float:
    return datetime.strptime(out["Expiration"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()


def one_warning_naming(stderr: str, path: Path) -> str:
    """The single stderr line that names ``path``; it must be a credproc warning."""
    lines = [line for line in stderr.splitlines() if str(path) in line]
    assert len(lines) == 1, f"expected one line naming {path} on stderr, got:\n{stderr}"
    assert lines[0].startswith("credproc: warning:"), lines[0]
    return lines[0]


def assert_valid_hit(run, env, sts, expected_stdout: str) -> None:
    """The entry on disk is valid: a new run is served from it without calling STS."""
    before = sts.count("AssumeRole")
    again = run(["--conn", CONN], env)
    assert again.returncode == 0, again.stderr
    assert again.stdout == expected_stdout
    assert sts.count("AssumeRole") == before, "the replaced entry was not served"
    assert again.stderr == "", again.stderr


@pytest.fixture
def prod(sts, env):
    """A role connection "prod" on the local STS."""
    env[f"CREDPROC_CONN_{CONN.upper()}"] = conn_uri(sts.url, role_arn=ROLE_ARN)
    return env


# -- hit and miss --------------------------------------------------------------------------


def test_first_run_fetches_second_is_a_hit(sts, prod, run):
    env = prod
    first = run(["--conn", CONN], env)
    assumed(first)
    assert sts.count("AssumeRole") == 1

    second = run(["--conn", CONN], env)
    assert second.returncode == 0, second.stderr
    assert second.stdout == first.stdout
    assert sts.count("AssumeRole") == 1

    entry = the_entry(env)
    directory = cache_dir(env)
    assert stat.S_IMODE(entry.stat().st_mode) == 0o600
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert entry.stat().st_uid == os.geteuid()

    # The source key pair (which signs the STS call) never reaches the disk, in any form.
    forbidden = {ACCESS_KEY, SECRET_KEY, urllib.parse.quote(SECRET_KEY, safe=""),
                 SECRET_KEY.encode().hex(), ACCESS_KEY.encode().hex()}
    for path in all_files(directory):
        for secret in forbidden:
            assert secret not in path.name, f"{secret!r} in file name {path}"
        if path.is_file():
            data = path.read_bytes()
            for secret in forbidden:
                assert secret.encode() not in data, f"{secret!r} in the content of {path}"


def test_entry_modes_do_not_depend_on_umask(sts, prod, run):
    """Under umask 000 the directory is still 0700, the entry 0600, the lock not writable by others."""
    result = run(["--conn", CONN], prod, preexec_fn=lambda: os.umask(0))
    assumed(result)
    assert stat.S_IMODE(cache_dir(prod).stat().st_mode) == 0o700
    assert stat.S_IMODE(the_entry(prod).stat().st_mode) == 0o600
    for lock in cache_dir(prod).glob("*.lock"):
        assert not lock.stat().st_mode & 0o022, f"{lock} is writable by group or others"


@pytest.mark.parametrize("change", ["region", "assume_role_kwargs", "environment"])
def test_definition_change_is_a_new_entry(sts, env, run, change):
    variable = f"CREDPROC_CONN_{CONN.upper()}"
    original = conn_uri(sts.url, role_arn=ROLE_ARN)
    if change == "environment":  # no region of its own: the environment's is used, and keys it
        original = extra_uri({**sts_endpoint(sts.url), "role_arn": ROLE_ARN})
        env["AWS_DEFAULT_REGION"] = "us-east-1"
    env[variable] = original
    first = run(["--conn", CONN], env)
    assumed(first)
    assert sts.count("AssumeRole") == 1

    changed_env = dict(env)
    if change == "region":
        changed_env[variable] = conn_uri(sts.url, role_arn=ROLE_ARN, region_name="eu-west-1")
    elif change == "assume_role_kwargs":
        changed_env[variable] = conn_uri(sts.url, role_arn=ROLE_ARN,
                                         assume_role_kwargs=json.dumps({"RoleSessionName": "another-session"}))
    else:  # a variable the connection depends on (it names no region) is part of the key
        changed_env["AWS_DEFAULT_REGION"] = "eu-west-1"

    second = run(["--conn", CONN], changed_env)
    assumed(second)
    assert sts.count("AssumeRole") == 2, "a changed definition was served the old entry"
    assert second.stdout != first.stdout
    assert len(entry_files(env)) == 2
    if change == "assume_role_kwargs":
        assert sts.requests[-1]["params"].get("RoleSessionName") == "another-session"

    again = run(["--conn", CONN], changed_env)
    assert again.stdout == second.stdout
    assert sts.count("AssumeRole") == 2

    back = run(["--conn", CONN], env)  # switching back serves the old entry
    assert back.returncode == 0, back.stderr
    assert back.stdout == first.stdout
    assert sts.count("AssumeRole") == 2


def test_refresh_fetches_anew_and_replaces_the_entry(sts, prod, run):
    env = prod
    first = run(["--conn", CONN], env)
    assumed(first)
    entry = the_entry(env)
    old_entry = entry.read_bytes()

    refreshed = run(["--conn", CONN, "--refresh"], env)
    assumed(refreshed)
    assert sts.count("AssumeRole") == 2
    assert refreshed.stdout != first.stdout
    assert entry_files(env) == [entry]
    new_entry = entry.read_bytes()
    assert new_entry != old_entry
    assert refreshed.stdout.strip().encode() in new_entry

    plain = run(["--conn", CONN], env)  # the next plain run serves the new credentials
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout == refreshed.stdout
    assert sts.count("AssumeRole") == 2


def test_no_cache_neither_reads_nor_writes(sts, prod, run):
    env = prod
    directory = cache_dir(env)
    outputs = []
    for n in (1, 2):
        result = run(["--conn", CONN, "--no-cache"], env)
        outputs.append(assumed(result))
        assert sts.count("AssumeRole") == n
        assert not directory.exists() or not any(directory.iterdir()), all_files(directory)

    # With a warm cache, --no-cache still fetches and leaves the cache exactly as it was.
    warm = run(["--conn", CONN], env)
    assumed(warm)
    assert sts.count("AssumeRole") == 3
    before = snapshot(directory)
    for n in (4, 5):
        result = run(["--conn", CONN, "--no-cache"], env)
        assumed(result)
        assert result.stdout != warm.stdout, "--no-cache served the cached entry"
        assert sts.count("AssumeRole") == n
        assert snapshot(directory) == before


def test_static_keys_are_printed_without_expiration_and_not_cached(sts, env, run):
    env["CREDPROC_CONN_STATIC"] = conn_uri(sts.url)  # no role_arn: the key pair is the answer
    outputs = []
    for _ in range(2):
        result = run(["--conn", "static"], env)
        out = ok(result)
        assert out == {"Version": 1, "AccessKeyId": ACCESS_KEY, "SecretAccessKey": SECRET_KEY}, out
        outputs.append(result.stdout)
    assert outputs[0] == outputs[1]
    assert sum(sts.calls.values()) == 0, sts.calls
    assert entry_files(env, "static") == []
    for path in all_files(cache_dir(env)):
        assert not path.name.endswith(".entry"), path
        if path.is_file():
            assert SECRET_KEY.encode() not in path.read_bytes(), path


# -- broken entries --------------------------------------------------------------------------


def _garbage(entry: Path, env, run) -> None:
    entry.write_bytes(b"\x00\xffthis is not a credproc cache entry\n{\"Version\": 1}\n")


def _truncated(entry: Path, env, run) -> None:
    data = entry.read_bytes()
    entry.write_bytes(data[: len(data) // 2])


def _header_only(entry: Path, env, run) -> None:
    data = entry.read_bytes()
    entry.write_bytes(data[: data.index(b"\n") + 1])


def _flipped_byte(entry: Path, env, run) -> None:
    data = bytearray(entry.read_bytes())
    body_start = data.index(b"\n") + 1
    # A character inside the SecretAccessKey value: the body stays valid JSON, only wrong.
    at = data.index(b'"SecretAccessKey": "', body_start) + len(b'"SecretAccessKey": "') + 3
    data[at] = ord("A") if data[at] != ord("A") else ord("B")
    entry.write_bytes(bytes(data))


def _flipped_expiry_digit(entry: Path, env, run) -> None:
    """One digit of the header's expiry raised (by 10 s to 11 days): the header is as much
    part of the entry as the body, and a wrong expiry would serve dead credentials as fresh."""
    data = entry.read_bytes()
    header, _, body = data.partition(b"\n")
    fields = header.split(b" ")
    expires = bytearray(fields[4])
    dot = expires.index(b".")
    at = next(i for i in range(dot - 7, dot - 1) if expires[i] != ord("9"))  # the 10**6 .. 10**1 s digits
    expires[at] += 1
    fields[4] = bytes(expires)
    assert float(fields[4]) > float(header.split(b" ")[4]) + 10
    entry.write_bytes(b" ".join(fields) + b"\n" + body)


def _from_other_connection(entry: Path, env, run) -> None:
    other_env = dict(env)
    other_env["CREDPROC_CONN_OTHER"] = other_env[f"CREDPROC_CONN_{CONN.upper()}"]
    assumed(run(["--conn", "other"], other_env))
    other = the_entry(env, "other")
    shutil.copyfile(other, entry)
    os.chmod(entry, 0o600)


@pytest.mark.parametrize("corrupt", [_garbage, _truncated, _header_only, _flipped_byte, _flipped_expiry_digit,
                                     _from_other_connection],
                         ids=["garbage", "truncated", "header-only", "flipped-byte", "flipped-expiry-digit",
                              "other-connection"])
def test_corrupt_entry_is_replaced_with_a_warning(sts, prod, run, corrupt):
    env = prod
    first = run(["--conn", CONN], env)
    assumed(first)
    entry = the_entry(env)
    corrupt(entry, env, run)
    calls = sts.count("AssumeRole")
    corrupted = entry.read_bytes()

    result = run(["--conn", CONN], env)
    assumed(result)
    one_warning_naming(result.stderr, entry)
    assert sts.count("AssumeRole") == calls + 1, "the corrupt entry was served"
    assert entry.read_bytes() != corrupted
    assert stat.S_IMODE(entry.stat().st_mode) == 0o600
    assert result.stdout.strip().encode() in entry.read_bytes()
    assert_valid_hit(run, env, sts, result.stdout)


@pytest.mark.parametrize("how", ["group-writable", "world-writable", "foreign-owner"])
def test_untrusted_entry_is_ignored_and_replaced(sts, prod, run, how):
    env = prod
    first = run(["--conn", CONN], env)
    assumed(first)
    entry = the_entry(env)
    if how == "group-writable":
        os.chmod(entry, 0o620)
    elif how == "world-writable":
        os.chmod(entry, 0o602)
    else:
        assert os.geteuid() == 0, "chown to another uid needs root"
        os.chown(entry, 65534, 65534)

    result = run(["--conn", CONN], env)
    assumed(result)
    assert sts.count("AssumeRole") == 2, f"a {how} entry was served"
    assert result.stdout != first.stdout
    one_warning_naming(result.stderr, entry)
    st = entry.stat()
    assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == os.geteuid()
    assert_valid_hit(run, env, sts, result.stdout)


@pytest.mark.parametrize("target_kind", ["valid-entry", "fifo"])
def test_symlinked_entry_is_ignored_and_target_untouched(sts, prod, run, tmp_path, target_kind):
    """A symlink planted in the entry's place is neither followed for reading nor for writing.

    ``valid-entry``: the target is a copy of this very connection's valid entry, so following
    the link would be a cache hit (no STS call). ``fifo``: opening the target at all, for
    reading or writing, would block the run forever.
    """
    env = prod
    first = run(["--conn", CONN], env)
    assumed(first)
    entry = the_entry(env)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    target = elsewhere / "target"
    if target_kind == "valid-entry":
        shutil.copy2(entry, target)
    else:
        os.mkfifo(target, 0o600)
    before = snapshot(elsewhere)
    entry.unlink()
    entry.symlink_to(target)

    try:
        result = run(["--conn", CONN], env, timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail("credproc blocked: it opened the symlink's target (a FIFO)")
    assumed(result)
    assert sts.count("AssumeRole") == 2, "the symlinked entry was followed and served"
    one_warning_naming(result.stderr, entry)
    assert snapshot(elsewhere) == before, "the symlink's target was changed"
    assert target.exists() and (stat.S_ISFIFO(target.lstat().st_mode) if target_kind == "fifo" else True)
    assert not entry.is_symlink() and entry.is_file(), "the symlink was not replaced by an entry"
    assert stat.S_IMODE(entry.stat().st_mode) == 0o600
    assert_valid_hit(run, env, sts, result.stdout)


# -- a cache that cannot be written ----------------------------------------------------------


def _mount_works(tmp_path: Path) -> bool:
    """Whether this machine lets us mount a read-only tmpfs in a private mount namespace."""
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("mount"):
        return False
    probe = tmp_path / "mount-probe"
    probe.mkdir()
    try:
        result = subprocess.run(
            ["unshare", "-m", "--propagation", "private", "sh", "-c",
             'mount -t tmpfs -o ro,mode=0700 tmpfs "$1" && ! touch "$1/x" 2>/dev/null', "sh", str(probe)],
            capture_output=True, timeout=20,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    finally:
        probe.rmdir()
    return result.returncode == 0


def _run_in_namespace(credproc_bin, script: str, directory: Path, env, args) -> subprocess.CompletedProcess:
    """Run credproc after ``script`` set up mounts on ``$1``, in a private mount namespace
    (the mounts vanish with the process, even if the test dies)."""
    return subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c",
         script + ' && shift && exec "$@"', "sh", str(directory), str(credproc_bin), *args],
        env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )


def test_unwritable_cache_dir_still_prints_credentials(sts, prod, run, tmp_path, credproc_bin):
    env = dict(prod)
    # 1. The cache directory cannot be created: its parent is a regular file.
    blocker = tmp_path / "not-a-directory"
    blocker.write_bytes(b"a regular file\n")
    env["CREDPROC_CACHE_DIR"] = str(blocker / "cache")
    for n in (1, 2):
        result = run(["--conn", CONN], env)
        assumed(result)
        assert "credproc: warning:" in result.stderr, result.stderr
        assert all(line.startswith("credproc: warning:") for line in result.stderr.splitlines()), result.stderr
        assert sts.count("AssumeRole") == n  # nothing could be cached
    assert blocker.read_bytes() == b"a regular file\n"

    # 2. A read-only file system (tmpfs mounted ro, as root, in a private mount namespace).
    # Only where mounting works: in a container without CAP_SYS_ADMIN this variant is left
    # out (with a pytest warning), not skipped - a skipped integration test fails CI.
    if not _mount_works(tmp_path):
        warnings.warn("read-only mount variant not run: cannot mount a tmpfs here")
        return
    ro = tmp_path / "ro-cache"
    ro.mkdir(mode=0o700)
    env["CREDPROC_CACHE_DIR"] = str(ro)
    calls = sts.count("AssumeRole")
    result = _run_in_namespace(credproc_bin, 'mount -t tmpfs -o ro,mode=0700 tmpfs "$1"', ro, env,
                               ["--conn", CONN])
    assumed(result)
    assert "credproc: warning:" in result.stderr, result.stderr
    assert sts.count("AssumeRole") == calls + 1

    # 3. A warm cache bind-mounted read-only: hits still work, nothing is written.
    warm_env = dict(prod)
    warm = run(["--conn", CONN], warm_env)
    assumed(warm)
    directory = cache_dir(warm_env)
    calls = sts.count("AssumeRole")
    result = _run_in_namespace(credproc_bin, 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1"',
                               directory, warm_env, ["--conn", CONN])
    assert result.returncode == 0, result.stderr
    assert result.stdout == warm.stdout and result.stderr == ""
    assert sts.count("AssumeRole") == calls


# -- concurrency and crashes -----------------------------------------------------------------


def test_stampede_makes_one_sts_call(sts, prod, credproc_bin):
    env = prod
    sts.delay["AssumeRole"] = 2
    results = run_together(credproc_bin, ["--conn", CONN], env, 32)  # all started before any is waited for
    failures = [(r.returncode, r.stderr) for r in results if r.returncode != 0]
    assert failures == [], failures
    assert sts.count("AssumeRole") == 1
    stdouts = {r.stdout for r in results}
    assert len(stdouts) == 1, f"{len(stdouts)} different outputs"
    assumed(results[0])
    assert "waited" not in "".join(r.stderr for r in results)  # nobody gave up on the lock


def test_sigkill_while_holding_the_lock(sts, prod, run, credproc_bin):
    env = prod
    sts.delay["AssumeRole"] = 5
    proc = subprocess.Popen([str(credproc_bin), "--conn", CONN], env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while sts.count("AssumeRole") < 1:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the AssumeRole call never reached the proxy"
            time.sleep(0.02)
        # It is inside the STS call now, so it holds the entry's lock.
        locks = list(cache_dir(env).glob(f"{CONN}--*.lock"))
        assert len(locks) == 1, locks
        with open(locks[0], "rb") as f:
            with pytest.raises(BlockingIOError):
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL

    sts.delay["AssumeRole"] = 0  # measure the lock, not the proxy's delay
    started = time.monotonic()
    result = run(["--conn", CONN], env, timeout=60)
    elapsed = time.monotonic() - started
    assumed(result)
    assert elapsed < 10, f"the run after the kill took {elapsed:.1f}s (a stale lock?)"
    assert sts.count("AssumeRole") == 2
    assert_valid_hit(run, env, sts, result.stdout)
    assert list(cache_dir(env).glob("*.tmp")) == []


# -- lifetimes ---------------------------------------------------------------------------------


def test_fifteen_minute_role_is_served_for_its_first_minutes(sts, env, run):
    extra = {"role_arn": ROLE_ARN, "assume_role_kwargs": {"DurationSeconds": 900}}
    env[f"CREDPROC_CONN_{CONN.upper()}"] = extra_uri(extra, endpoint=sts.url)
    first = run(["--conn", CONN], env)
    out = assumed(first)
    assert sts.count("AssumeRole") == 1
    assert sts.requests[-1]["params"].get("DurationSeconds") == "900"
    assert abs(expiration(out) - (time.time() + 900)) < 60, out["Expiration"]

    second = run(["--conn", CONN], env)
    assert second.returncode == 0, second.stderr
    assert second.stdout == first.stdout
    assert sts.count("AssumeRole") == 1, "a 15-minute role was not served from the cache right after the fetch"


STORE = """
import sys
from credproc.cache.store import write
from credproc.resolution import Resolution
conn_id, body, fetched, expires = sys.argv[1], sys.argv[2].encode(), float(sys.argv[3]), float(sys.argv[4])
slot = Resolution(conn_id).place()  # the slot a fetch writes, its variables recorded as a fetch does
write(slot, body, fetched=fetched, expires=expires)
print(slot.path)
"""


def _store(env, body: bytes, fetched: float, expires: float, cwd: Path) -> Path:
    """Write an entry with credproc's own ``cache.store.write``, in the slot a fetch would write
    (``Resolution(conn_id).place()``).

    It runs in a child interpreter started outside the source tree, so that it is the very
    credproc the executable runs (the installed one). In this pytest process ``credproc``
    may resolve to the source checkout, and while that differs from the installed copy
    (entry format, key) the entry would be written in a form the executable rejects.
    """
    result = subprocess.run([sys.executable, "-c", STORE, CONN, body.decode(), repr(fetched), repr(expires)],
                            env=env, cwd=cwd, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    path = Path(result.stdout.strip())
    assert the_entry(env) == path
    return path


def _fake_body(access_key: str, expires: float) -> bytes:
    return json.dumps({
        "Version": 1, "AccessKeyId": access_key, "SecretAccessKey": "not-a-real-secret",
        "SessionToken": "not-a-real-token",
        "Expiration": datetime.fromtimestamp(expires, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }).encode()


@pytest.mark.parametrize("fetched_ago, expires_in", [(3300, 300), (1, 300), (3700, -100), (3250, 350), (560, 340)],
                         ids=["1h-role-5min-left", "5min-entry", "expired", "1h-role-5min50s-left",
                              "15min-role-9min-old"])
def test_nearly_expired_entry_is_not_served(sts, prod, run, tmp_path, fetched_ago, expires_in):
    """Past the floor (less than 6 minutes left) an entry is refreshed before anything is
    printed: an hour-long session with 5 minutes 50 or 5 minutes left, a 15-minute one 9
    minutes old."""
    env = prod
    now = time.time()
    entry = _store(env, _fake_body("ASIASTALESTALESTALE1", now + expires_in), now - fetched_ago, now + expires_in,
                   tmp_path)

    result = run(["--conn", CONN], env)
    out = assumed(result)
    assert out["AccessKeyId"] != "ASIASTALESTALESTALE1", "a nearly expired entry was served"
    assert sts.count("AssumeRole") == 1
    assert the_entry(env) == entry, "credproc used another key than the test (the test proves nothing)"
    assert expiration(out) - time.time() > 15 * 60
    assert_valid_hit(run, env, sts, result.stdout)


@pytest.mark.parametrize("fetched_ago, expires_in", [(0, 3600), (1400, 2200), (100, 800)],
                         ids=["1h-role-new", "1h-role-23min-old", "15min-role-100s-old"])
def test_fresh_stored_entry_is_a_hit(sts, prod, run, tmp_path, fetched_ago, expires_in):
    """Control for the test above: the same store, with an entry still fresh (before its due
    point: 27 minutes into an hour, 4.5 minutes into 15), is served - so the slot computed
    there is credproc's own."""
    env = prod
    now = time.time()
    body = _fake_body("ASIAFRESHFRESHFRESH1", now + expires_in)
    _store(env, body, now - fetched_ago, now + expires_in, tmp_path)
    result = run(["--conn", CONN], env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == body.decode() + "\n"
    assert result.stderr == ""
    assert sts.count("AssumeRole") == 0


# -- the hot path stays light ------------------------------------------------------------------

# A cache hit runs at every SDK process start, so it may import only os, sys, time and
# credproc's light modules. Each of these would cost milliseconds (boto3/botocore ~160 ms,
# requests/google/keyring their own stacks, filelock is only needed to refresh) or pull in
# ``re`` (json, logging, argparse, tomllib, urllib, dataclasses and typing all do; ``re`` alone
# costs most of Python's start-up again), and hashlib loads OpenSSL. Asserting on the
# imported modules, not on a timing, is the real guarantee.
FORBIDDEN_ON_HIT = frozenset({
    "boto3", "botocore", "requests", "google", "keyring", "filelock", "re", "json", "logging",
    "argparse", "tomllib", "urllib", "dataclasses", "hashlib", "typing",
})

IMPORT_MAIN = "import sys; from credproc.cli import main; sys.exit(main(['--conn','prod']))"


def imported_modules(stderr: str) -> set[str]:
    names = set()
    for line in stderr.splitlines():
        if not line.startswith("import time:"):
            continue
        name = line.rsplit("|", 1)[-1].strip()
        if name and name != "imported package":
            names.add(name)
    return names


def _importtime(env, cwd: Path) -> subprocess.CompletedProcess:
    # cwd outside the source tree: the installed credproc is imported, as SDKs run it
    return subprocess.run([sys.executable, "-X", "importtime", "-c", IMPORT_MAIN], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


def test_cache_hit_imports_nothing_heavy(sts, prod, run, tmp_path):
    env = prod
    warm = run(["--conn", CONN], env)
    assumed(warm)
    assert sts.count("AssumeRole") == 1

    hit = _importtime(env, tmp_path)
    assert hit.returncode == 0, hit.stderr
    assert hit.stdout == warm.stdout
    assert sts.count("AssumeRole") == 1
    modules = imported_modules(hit.stderr)
    assert "credproc.cli" in modules, "could not parse -X importtime's output"
    heavy = sorted(m for m in modules if m.split(".")[0] in FORBIDDEN_ON_HIT)
    assert heavy == [], f"a cache hit imported {heavy}"

    # On a miss the same command does import botocore, so the check above can fail.
    for entry in entry_files(env):
        entry.unlink()
    miss = _importtime(env, tmp_path)
    assumed(miss)
    assert sts.count("AssumeRole") == 2
    assert "botocore" in imported_modules(miss.stderr)


def test_a_due_hit_imports_nothing_heavy_either(sts, prod, run, tmp_path):
    """In the due window the run prints the entry and forks the refresher: the printing
    process still imports nothing heavy (the refresher loads boto3 after its descriptors are
    on /dev/null, so its -X importtime lines never reach this stderr). During an outage every
    run takes this path."""
    faketime = shutil.which("faketime")
    if faketime is None:
        pytest.skip("faketime is not installed (scripts/system-deps installs it)")
    env = prod
    warm = run(["--conn", CONN], env)
    assumed(warm)
    due = subprocess.run([faketime, "-f", "+30m", sys.executable, "-X", "importtime", "-c", IMPORT_MAIN], env=env,
                         cwd=tmp_path, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert due.returncode == 0, due.stderr
    assert due.stdout == warm.stdout, "a due entry is printed as it is"
    modules = imported_modules(due.stderr)
    assert "credproc.background" in modules, "the run did not take the due path (the test proves nothing)"
    heavy = sorted(m for m in modules if m.split(".")[0] in FORBIDDEN_ON_HIT)
    assert heavy == [], f"a due hit imported {heavy}"
    deadline = time.monotonic() + 30
    while sts.count("AssumeRole") < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert sts.count("AssumeRole") == 2, "the detached refresher did not refresh the entry"


# -- how often a run reads the definition and the entry ------------------------------------


def _opens(exe: Path, env, tmp_path, conn_id: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    """Run credproc under strace and return the paths it opened (successfully or not)."""
    trace = tmp_path / f"strace-{time.monotonic_ns()}.txt"
    strace = shutil.which("strace")
    if strace is None:
        pytest.skip("strace is not installed (scripts/system-deps installs it)")
    result = subprocess.run([strace, "-f", "-qq", "-e", "trace=open,openat", "-o", str(trace),
                             str(exe), "--conn", conn_id], env=env, capture_output=True, text=True,
                            timeout=60, stdin=subprocess.DEVNULL)
    paths = [line.split('"')[1] for line in trace.read_text().splitlines() if '"' in line]
    return result, paths


def test_a_miss_reads_the_definition_once_and_the_entry_only_before_and_under_the_lock(sts, env, credproc_bin,
                                                                                         tmp_path):
    """One resolution path: the fast path, the main job and the locked fetch share one read of
    the config file. The bucket's record of variables is read by the fast path and again under
    the lock (another process may have written it in between), and the entry once, under the
    lock, in the slot the fetch writes (there is no record before the first fetch). A hit reads
    the config file, the record and the entry once each. (Before the resolution path, a miss
    read the config file twice and the entry three times.)"""
    config = Path(env["CREDPROC_CONFIG"])
    config.write_text(f'[connections.{CONN}]\nlogin = "{ACCESS_KEY}"\npassword = "{SECRET_KEY}"\n'
                      f'role_arn = "{ROLE_ARN}"\n{sts_toml(sts.url)}\n')
    miss, opened = _opens(credproc_bin, env, tmp_path, CONN)
    assumed(miss)
    entry = str(the_entry(env))
    record = [p for p in opened if p.endswith(".vars")]
    assert opened.count(str(config)) == 1, [p for p in opened if "credproc" in p]
    assert opened.count(entry) == 1, [p for p in opened if p.endswith(".entry")]
    assert len(record) == 2 and len(set(record)) == 1, record

    hit, opened = _opens(credproc_bin, env, tmp_path, CONN)
    assert hit.stdout == miss.stdout and sts.count("AssumeRole") == 1
    assert opened.count(str(config)) == 1 and opened.count(entry) == 1 and opened.count(record[0]) == 1
