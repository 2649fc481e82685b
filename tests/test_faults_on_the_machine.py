"""Faults on the machine: credproc killed mid-refresh, a lock holder that hangs, a full disk.

Each test tries to break a promise of the README ("The cache": atomic writes, a lock that
dies with its process, a hung holder waited for 30 s - or ``CREDPROC_LOCK_TIMEOUT`` - then
fetched around, a cache that cannot be written still yields credentials) with the installed
``credproc`` executable in subprocesses against the local STS.

Trial counts. ``test_sigkill_at_random_moments_of_a_refresh`` runs ``CREDPROC_TRIALS``
trials (default 21, about 40 s on 2 cores, so CI stays fast); the full run is

    CREDPROC_TRIALS=300 .venv/bin/python -m pytest -p no:cacheprovider tests/test_faults_on_the_machine.py -k sigkill

(about 5 minutes). ``CREDPROC_SEED`` replays a run: the seed is printed in the test's output.

The window between writing an entry's temporary file and renaming it is microseconds wide.
To hit it on purpose without touching credproc, the killed process gets a ``sitecustomize.py``
on its ``PYTHONPATH`` (Python imports it at start-up) that wraps ``os.replace`` with a sleep
and drops a marker file just before it: the test waits for the marker, then kills at a
random moment of the sleep.
"""

from __future__ import annotations

import fcntl
import os
import random
import resource
import shutil
import signal
import subprocess
import textwrap
import time
import warnings
from collections import Counter
from pathlib import Path

import pytest

from helpers import ROLE_ARN, conn_uri, credentials_only, finish, start, stderr_verdict

pytestmark = pytest.mark.integration

CONN = "prod"
TRIALS = int(os.environ.get("CREDPROC_TRIALS", "21"))
LOCK_TIMEOUT = 30  # credproc.cache.LOCK_TIMEOUT: the documented wait for a hung holder


# -- helpers -------------------------------------------------------------------------------


@pytest.fixture
def prod(sts, env):
    """A role connection "prod" on the local STS."""
    env[f"CREDPROC_CONN_{CONN.upper()}"] = conn_uri(sts.url, role_arn=ROLE_ARN)
    return env


def cache_dir(env) -> Path:
    return Path(env["CREDPROC_CACHE_DIR"])


def files(env, pattern: str) -> list[Path]:
    d = cache_dir(env)
    return sorted(d.glob(pattern)) if d.is_dir() else []


def clean_success(result: subprocess.CompletedProcess) -> dict:
    """A run that printed credentials and said nothing at all: a hit or a clean miss (a
    corrupt entry would have cost a warning)."""
    assert result.returncode == 0, f"exit {result.returncode}: {result.stderr}"
    assert result.stderr == "", result.stderr
    out = credentials_only(result.stdout)
    assert out["SessionToken"] and out["Expiration"].endswith("Z"), out
    return out


def parse_entry(data: bytes) -> tuple[list[bytes], bytes]:
    """The entry format of credproc/cache/__init__.py, read independently: header fields and body."""
    from hashlib import sha256

    header, _, body = data.partition(b"\n")
    fields = header.split(b" ")
    assert len(fields) == 11 and fields[0] == b"credproc-cache", header[:200]
    digest = sha256(b" ".join(fields[:10]) + b"\n" + body).hexdigest()[:32].encode()
    assert fields[10] == digest, "the entry's digest does not match: a partial or corrupt entry"
    credentials_only(body.decode() + "\n")
    return fields, body


def assert_not_locked(lock: Path) -> None:
    """Nobody holds the entry's flock (it died with its holder)."""
    with open(lock, "rb") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pytest.fail(f"{lock} is still locked after its holder was killed")
        fcntl.flock(f, fcntl.LOCK_UN)


def wait_for(condition, proc: subprocess.Popen, timeout: float = 30) -> bool:
    """Poll ``condition`` until it holds (True) or ``proc`` exits first (False)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            return False
        assert time.monotonic() < deadline, "the awaited moment never came"
        time.sleep(0.005)
    return True


SITECUSTOMIZE = '''\
"""Test hook of tests/test_faults_on_the_machine.py, imported by Python at start-up through
PYTHONPATH: widen the window between writing a cache entry's temporary file and renaming it."""
import os
import time

_delay = float(os.environ.get("CREDPROC_TEST_RENAME_DELAY") or 0)
_mark = os.environ.get("CREDPROC_TEST_RENAME_MARK")
if _delay:
    _replace = os.replace

    def _slow_replace(src, dst, *args, **kwargs):
        if str(src).endswith(".tmp"):
            if _mark:
                with open(_mark, "w") as f:
                    f.write(str(src))
            time.sleep(_delay)
        return _replace(src, dst, *args, **kwargs)

    os.replace = _slow_replace
'''


# -- SIGKILL at random moments -----------------------------------------------------------------

PHASES = ("before-sts", "during-sts", "write-rename")


@pytest.mark.parametrize("trials", [TRIALS], ids=lambda n: f"{n}-trials")
def test_sigkill_at_random_moments_of_a_refresh(sts, prod, credproc_bin, tmp_path, trials):
    """Kill a refreshing credproc with SIGKILL before its STS call, during it, or between
    writing the entry's temporary file and renaming it; some trials have a second credproc
    waiting on the lock. After every kill: the lock is free, the waiter succeeded, the next
    run succeeds with nothing on stderr (a hit, or a clean miss: never a corrupt entry), the
    run after it is a hit, and a leftover temporary file is never what is served."""
    env = prod
    seed = int(os.environ.get("CREDPROC_SEED") or random.randrange(2**32))
    rng = random.Random(seed)
    print(f"SIGKILL trials: {trials} (CREDPROC_SEED={seed})")
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(SITECUSTOMIZE)

    clean_success(subprocess.run([str(credproc_bin), "--conn", CONN], env=env, capture_output=True, text=True,
                                 stdin=subprocess.DEVNULL, timeout=60))
    killed_pids: set[int] = set()
    landed: Counter = Counter()
    waiters = 0

    for trial in range(trials):
        phase = PHASES[trial % len(PHASES)]
        refresh = rng.random() < 0.5
        if not refresh:  # a cold cache: the killed process is the first to fetch
            for entry in files(env, "*.entry"):
                entry.unlink()
        args = ["--conn", CONN, "--refresh"] if refresh else ["--conn", CONN]
        run_env = dict(env)
        mark = tmp_path / f"renaming-{trial}"
        if phase == "write-rename":
            run_env.update(PYTHONPATH=str(hook), CREDPROC_TEST_RENAME_DELAY="0.3",
                           CREDPROC_TEST_RENAME_MARK=str(mark))
        sts.delay["AssumeRole"] = 0.4 if phase == "during-sts" else 0.0
        calls = sts.count("AssumeRole")

        victim = start(credproc_bin, args, run_env)
        waiter = None
        if rng.random() < 0.3:
            waiter = start(credproc_bin, ["--conn", CONN], env)
            waiters += 1
        try:
            if phase == "before-sts":
                time.sleep(rng.uniform(0, 0.6))
            elif phase == "during-sts":
                if wait_for(lambda: sts.count("AssumeRole") > calls, victim):
                    time.sleep(rng.uniform(0, 0.45))
            elif wait_for(mark.exists, victim):
                time.sleep(rng.uniform(0, 0.35))
            if victim.poll() is None:
                if mark.exists():
                    landed["between write and rename"] += 1
                elif sts.count("AssumeRole") > calls:
                    landed["during the STS call"] += 1
                else:
                    landed["before the STS call"] += 1
                os.kill(victim.pid, signal.SIGKILL)
                killed_pids.add(victim.pid)
            else:
                landed["finished before the kill"] += 1
        finally:
            if victim.poll() is None and victim.pid not in killed_pids:
                victim.kill()
            victim.communicate(timeout=30)
        assert victim.returncode in (0, -signal.SIGKILL), victim.returncode
        sts.delay["AssumeRole"] = 0.0

        if waiter is not None:  # it was waiting on the killed process's lock
            clean_success(finish(waiter))

        locks = files(env, "*.lock")
        assert len(locks) <= 1, f"more than one lock file for one entry: {locks}"
        for lock in locks:
            assert_not_locked(lock)
            assert lock.stat().st_size == 0
        for entry in files(env, "*.entry"):  # whatever is on disk is whole
            parse_entry(entry.read_bytes())
        leftovers = files(env, "*.tmp")
        for tmp in leftovers:  # credproc names them <entry or record>.<pid>.<random>.tmp
            pid = int(tmp.name.rsplit(".", 3)[-3])
            assert pid in killed_pids, f"{tmp} left by a process that was not killed"

        calls = sts.count("AssumeRole")
        after = subprocess.run([str(credproc_bin), "--conn", CONN], env=env, capture_output=True, text=True,
                               stdin=subprocess.DEVNULL, timeout=60)
        clean_success(after)
        for tmp in leftovers:
            assert after.stdout.encode() not in tmp.read_bytes() + b"\n", f"{tmp} was served"
        again = subprocess.run([str(credproc_bin), "--conn", CONN], env=env, capture_output=True, text=True,
                               stdin=subprocess.DEVNULL, timeout=60)
        clean_success(again)
        assert again.stdout == after.stdout, f"trial {trial}: the run after the next was not a hit"
        fetched = sts.count("AssumeRole") - calls
        assert fetched <= 1, f"trial {trial}: {fetched} STS calls for two runs"
        (entry,) = files(env, "*.entry")
        assert parse_entry(entry.read_bytes())[1] + b"\n" == after.stdout.encode()

    leftovers = files(env, "*.tmp")
    summary = ", ".join(f"{n} {where}" for where, n in sorted(landed.items()))
    print(f"SIGKILL trials: {trials}; kills landed: {summary}; {waiters} trials with a waiting process; "
          f"temporary files left behind (never served): {len(leftovers)}")
    assert landed["between write and rename"] > 0 or trials < 6, f"no kill landed in the rename window: {landed}"


def test_leftover_temporary_files_are_removed_by_the_next_write(sts, prod, credproc_bin, tmp_path):
    """A kill between write and rename leaves ``<file>.<pid>.<random>.tmp`` (here the first
    rename of a cold run: the bucket's record of variables). The next entry write of that
    connection removes such leftovers once they are more than a minute old (younger ones
    may be a write in progress), and touches nothing else: another connection's leftover, a
    symlink named like a leftover, and its target stay."""
    env = prod
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(SITECUSTOMIZE)
    mark = tmp_path / "renaming"
    victim = start(credproc_bin, ["--conn", CONN], dict(env, PYTHONPATH=str(hook), CREDPROC_TEST_RENAME_MARK=str(mark),
                                                     CREDPROC_TEST_RENAME_DELAY="30"))
    try:
        assert wait_for(mark.exists, victim), victim.communicate()
        os.kill(victim.pid, signal.SIGKILL)
    finally:
        victim.kill()
        victim.communicate()
    (leftover,) = files(env, "*.tmp")
    assert leftover == Path(mark.read_text()) and files(env, "*.entry") == []

    def refresh() -> None:
        clean_success(subprocess.run([str(credproc_bin), "--conn", CONN, "--refresh"], env=env, capture_output=True,
                                     text=True, stdin=subprocess.DEVNULL, timeout=60))

    refresh()
    assert leftover.exists(), "a temporary file younger than a minute was removed (it may be a write in progress)"
    old = time.time() - 120
    os.utime(leftover, (old, old))
    other = cache_dir(env) / "other--0123456789abcdef0123456789abcdef.entry.4242.00ff00ff.tmp"
    other.write_bytes(b"another entry's leftover")
    target = tmp_path / "target"
    target.write_bytes(b"not credproc's")
    link = leftover.with_name(leftover.name.replace(".tmp", "0.tmp"))
    link.symlink_to(target)
    for path in (other, link):
        os.utime(path, (old, old), follow_symlinks=False)
    refresh()
    assert not leftover.exists(), "a leftover older than a minute was not removed by the next write"
    assert other.exists() and link.is_symlink() and target.read_bytes() == b"not credproc's"


# -- a lock holder that hangs --------------------------------------------------------------------


@pytest.mark.parametrize("timeout, waiters", [(None, 1), (2, 3)], ids=["default-30s-1-waiter",
                                                                        "CREDPROC_LOCK_TIMEOUT=2-3-waiters"])
def test_stopped_lock_holder_is_waited_for_then_fetched_around(sts, prod, credproc_bin, timeout, waiters):
    """A holder stopped with SIGSTOP in the middle of its STS call: waiters give up after the
    lock timeout (the documented 30 s, or CREDPROC_LOCK_TIMEOUT), each with one warning naming
    the lock, and still print credentials. When the holder resumes, it finishes normally and
    the cache is whole. (The default case costs 30 s of test time: it is the promise.)"""
    env = dict(prod)
    wait = LOCK_TIMEOUT if timeout is None else timeout
    if timeout is not None:
        env["CREDPROC_LOCK_TIMEOUT"] = str(timeout)
    sts.delay["AssumeRole"] = 2
    holder = start(credproc_bin, ["--conn", CONN], env)
    procs: list[subprocess.Popen] = []
    try:
        assert wait_for(lambda: sts.count("AssumeRole") == 1, holder), holder.communicate()
        os.kill(holder.pid, signal.SIGSTOP)
        (lock,) = files(env, "*.lock")
        sts.delay["AssumeRole"] = 0
        started = time.monotonic()
        procs = [start(credproc_bin, ["--conn", CONN], env) for _ in range(waiters)]
        results = [finish(p, timeout=wait + 60) for p in procs]
        elapsed = time.monotonic() - started
        for result in results:
            assert result.returncode == 0, result.stderr
            credentials_only(result.stdout)
            lines = result.stderr.splitlines()
            assert len(lines) == 1, result.stderr
            assert lines[0].startswith(f"credproc: warning: waited {wait:.0f}s for lock {lock}"), lines[0]
        assert wait - 0.5 < elapsed < wait + 20, f"waiters gave up after {elapsed:.1f}s, not {wait}s"
        assert sts.count("AssumeRole") <= 1 + waiters
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()
        os.kill(holder.pid, signal.SIGCONT)
    resumed = finish(holder, timeout=60)
    clean_success(resumed)
    (entry,) = files(env, "*.entry")
    _, body = parse_entry(entry.read_bytes())
    calls = sts.count("AssumeRole")
    hit = subprocess.run([str(credproc_bin), "--conn", CONN], env=env, capture_output=True, text=True,
                         stdin=subprocess.DEVNULL, timeout=60)
    clean_success(hit)
    assert hit.stdout.encode() == body + b"\n" and sts.count("AssumeRole") == calls
    assert_not_locked(lock)


# -- a full disk -----------------------------------------------------------------------------------


def _warns_about_the_cache(result: subprocess.CompletedProcess) -> None:
    """Credentials printed, and at least one warning: the cache was not written."""
    warned = stderr_verdict(result)
    assert result.returncode == 0, result.stderr
    credentials_only(result.stdout)
    assert warned, "a cache that cannot be written must say so"


def test_file_size_limit_still_prints_credentials(sts, prod, credproc_bin):
    """Writes that fail half-way (RLIMIT_FSIZE: EFBIG after 200 bytes, as on a full disk):
    credentials are printed with a warning, no temporary file is left, nothing is cached;
    an existing entry survives a failed --refresh whole and is still served."""
    env = prod

    def limited():
        resource.setrlimit(resource.RLIMIT_FSIZE, (200, 200))

    for n in (1, 2):
        result = subprocess.run([str(credproc_bin), "--conn", CONN], env=env, capture_output=True, text=True,
                                stdin=subprocess.DEVNULL, timeout=60, preexec_fn=limited)
        _warns_about_the_cache(result)
        assert sts.count("AssumeRole") == n
        assert files(env, "*.tmp") == [] and files(env, "*.entry") == []

    warm = subprocess.run([str(credproc_bin), "--conn", CONN], env=env, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=60)
    clean_success(warm)
    (entry,) = files(env, "*.entry")
    before = entry.read_bytes()
    refresh = subprocess.run([str(credproc_bin), "--conn", CONN, "--refresh"], env=env, capture_output=True,
                             text=True, stdin=subprocess.DEVNULL, timeout=60, preexec_fn=limited)
    _warns_about_the_cache(refresh)
    assert refresh.stdout != warm.stdout
    assert entry.read_bytes() == before and files(env, "*.tmp") == []
    hit = subprocess.run([str(credproc_bin), "--conn", CONN], env=env, capture_output=True, text=True,
                         stdin=subprocess.DEVNULL, timeout=60, preexec_fn=limited)
    clean_success(hit)
    assert hit.stdout == warm.stdout


def _tmpfs_works(tmp_path: Path) -> bool:
    """Whether this machine lets us mount a tmpfs in a private mount namespace (root with
    CAP_SYS_ADMIN, as tests/test_cache_end_to_end.py's read-only variant needs too)."""
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("mount"):
        return False
    probe = tmp_path / "mount-probe"
    probe.mkdir()
    try:
        result = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                                 'mount -t tmpfs -o size=4k tmpfs "$1"', "sh", str(probe)],
                                capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    finally:
        probe.rmdir()
    return result.returncode == 0


# Runs in a private mount namespace: mount a tiny tmpfs on the cache directory ($1), copy the
# staged entries into it ($2), fill it up (blocks, or inodes too), then run credproc twice -
# "$@", the first time with $6 appended unless it is "-" - saving each run's output, the
# listing of the cache and its entries in $3.
FULL_DISK_SCRIPT = textwrap.dedent('''\
    set -e
    cache=$1 staged=$2 out=$3 options=$4 fill=$5 first=$6
    shift 6
    mount -t tmpfs -o "$options" tmpfs "$cache"
    if [ -n "$(ls -A "$staged")" ]; then cp -p "$staged"/* "$cache"/; fi
    dd if=/dev/zero of="$cache/filler" bs=1k 2>/dev/null || true
    if [ "$fill" = inodes ]; then
        n=0
        while touch "$cache/inode.$n" 2>/dev/null; do n=$((n + 1)); done
    fi
    for n in 1 2; do
        set +e
        if [ "$n" = 1 ] && [ "$first" != - ]; then
            "$@" "$first" > "$out/stdout.$n" 2> "$out/stderr.$n" < /dev/null
        else
            "$@" > "$out/stdout.$n" 2> "$out/stderr.$n" < /dev/null
        fi
        echo $? > "$out/rc.$n"
        set -e
    done
    ls -A "$cache" > "$out/listing"
    mkdir "$out/entries"
    for f in "$cache"/*.entry; do if [ -e "$f" ]; then cp -p "$f" "$out/entries/"; fi; done
''')


def _result(out: Path, n: int) -> subprocess.CompletedProcess:
    return subprocess.CompletedProcess([], int((out / f"rc.{n}").read_text()),
                                       (out / f"stdout.{n}").read_text(), (out / f"stderr.{n}").read_text())


@pytest.mark.parametrize("space", ["no-blocks", "no-inodes"])
@pytest.mark.parametrize("warm", [False, True], ids=["cold", "warm-refresh"])
def test_full_disk_still_prints_credentials(sts, prod, credproc_bin, tmp_path, space, warm):
    """The cache directory on a full tmpfs: out of blocks (the entry cannot be written) or out
    of inodes (not even the lock file can be created). Credentials are printed with a warning
    naming the cause, and no temporary file is left.

    cold: two runs, both fetch and warn. warm-refresh: the cache already had an entry; a
    --refresh fetches but cannot store, and the old entry survives whole: the next run is a
    clean hit on it (reading needs no space)."""
    if not _tmpfs_works(tmp_path):
        warnings.warn("full-disk (tmpfs) variant not run: cannot mount a tmpfs here; "
                      "test_file_size_limit_still_prints_credentials covers failing writes")
        return
    env = dict(prod)
    staged = tmp_path / "staged"
    staged.mkdir(mode=0o700)
    old = None
    if warm:
        first = subprocess.run([str(credproc_bin), "--conn", CONN], env=dict(env, CREDPROC_CACHE_DIR=str(staged)),
                               capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)
        clean_success(first)
        (old,) = staged.glob("*.entry")
        for lock in staged.glob("*.lock"):
            lock.unlink()  # out of inodes, the lock file too must be created on the full disk
    cache = cache_dir(env)
    cache.mkdir(mode=0o700)
    out = tmp_path / "out"
    out.mkdir()
    options, fill = (("size=64k,mode=0700", "blocks") if space == "no-blocks"
                     else ("size=1m,nr_inodes=16,mode=0700", "inodes"))
    calls = sts.count("AssumeRole")
    script = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", FULL_DISK_SCRIPT, "sh",
                             str(cache), str(staged), str(out), options, fill, "--refresh" if warm else "-",
                             str(credproc_bin), "--conn", CONN],
                            env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert script.returncode == 0, script.stderr
    listing = (out / "listing").read_text().split()
    assert [name for name in listing if name.endswith(".tmp")] == [], listing
    first = _result(out, 1)
    _warns_about_the_cache(first)
    assert "No space left on device" in first.stderr, first.stderr
    second = _result(out, 2)
    if not warm:
        _warns_about_the_cache(second)
        assert "No space left on device" in second.stderr, second.stderr
        assert sts.count("AssumeRole") == calls + 2, "nothing could be cached: both runs fetch"
        assert not any(name.endswith(".entry") for name in listing), listing
    else:
        assert (out / "entries" / old.name).read_bytes() == old.read_bytes(), "the old entry was damaged"
        assert first.stdout.encode() not in old.read_bytes()
        clean_success(second)
        assert second.stdout.encode() == parse_entry(old.read_bytes())[1] + b"\n"
        assert sts.count("AssumeRole") == calls + 1
