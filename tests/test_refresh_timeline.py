"""The refresh timeline of an AssumeRole connection, around the real executable.

A one-hour role (moto's default) is fetched now, in real time: the entry is fetched at F and
expires at E = F + 1 h. FLOOR is 6 minutes, so (credproc.cache):

* fresh until F + 27 min (halfway to the floor): printed, nobody asks;
* due until E - 6 min = F + 54 min: printed at once, and a detached process refreshes it
  (with ``CREDPROC_BACKGROUND_REFRESH=0``: refreshed in the foreground, a failure serves the
  entry with one warning: stale if error);
* ending until E: refreshed in the foreground before anything is printed, a failure is the
  error; expired after: never printed.

A failed refresh is recorded in the entry's header, and for a backoff (30 s, doubling up to
5 min) the entry is served with one warning and nobody asks the STS.

Time is moved around the real executable with libfaketime (``helpers.run_at``), never
inside credproc; the detached refresher inherits the run's clock. The local STS keeps the
real clock, so ``+28m`` puts credproc 28 minutes into a one-hour role. What is asserted is
what the world sees: AssumeRole calls at the proxy, the entry on disk (its header and body),
stdout, stderr, exit codes, the refresher process in /proc.

The connection fails fast (``connect_timeout`` 1 s, ``read_timeout`` a few seconds, one
attempt per refresh unless a test says otherwise), so a hanging STS costs seconds and
every refresh attempt is one request at the proxy.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import signal
import statistics
import time
from pathlib import Path
from typing import NamedTuple

import pytest
from helpers import (
    ACCESS_KEY,
    ROLE_ARN,
    SECRET_KEY_FORMS,
    extra_uri,
    finish,
    ok,
    one_error,
    run_at,
    signing_key,
    start_at,
    stderr_verdict,
    wait_for,
)

pytestmark = pytest.mark.integration

CONN = "prod"
FOREGROUND = {"CREDPROC_BACKGROUND_REFRESH": "0"}
MODES = [pytest.param({}, id="background"), pytest.param(FOREGROUND, id="foreground")]
DOWN = [(503, "ServiceUnavailable")] * 50  # every attempt fails, however many a test makes
UNAVAILABLE = "ServiceUnavailable"
HANG = 120.0  # seconds the proxy holds a hanging answer (the client gives up long before)

# Reasons recorded in the entry, per outage (credproc.sts.translate).
OUTAGES = {
    "hanging": "STS did not answer: Read timeout",
    "503": "STS AssumeRole failed: ServiceUnavailable (HTTP 503)",
    "refusing": "STS did not answer: Could not connect",
}


def definition(sts_url: str, read_timeout: float, attempts: int) -> str:
    config = {"connect_timeout": 1, "read_timeout": read_timeout,
              "retries": {"mode": "standard", "total_max_attempts": attempts}}
    return extra_uri({"role_arn": ROLE_ARN, "config_kwargs": config}, endpoint=sts_url)


def credproc_at(offset: str, env: dict, *args: str):
    """``credproc --conn prod ARGS`` at ``offset`` from now (libfaketime)."""
    return run_at(offset, ["--conn", CONN, *args], env)


# -- the entry on disk ------------------------------------------------------------------------


class Stored(NamedTuple):
    """An entry as its file holds it (format 2, see credproc.cache), its digest checked."""

    fetched: float
    expires: float
    failed_since: float | None
    failed_at: float | None
    failures: int
    reason: str | None
    body: dict


def cache_dir(env: dict) -> Path:
    return Path(env["CREDPROC_CACHE_DIR"])


def stored(env: dict) -> Stored:
    entries = sorted(cache_dir(env).glob(f"{CONN}--*.entry"))
    assert len(entries) == 1, entries
    data = entries[0].read_bytes()
    header, _, body = data.partition(b"\n")
    fields = header.split(b" ")
    assert len(fields) == 11 and fields[:2] == [b"credproc-cache", b"2"], header
    assert fields[10] == hashlib.sha256(b" ".join(fields[:10]) + b"\n" + body).hexdigest()[:32].encode(), \
        "the entry's digest does not match: a corrupt entry"
    assert bytes.fromhex(fields[5].decode()).decode() == CONN
    assert body.endswith(b"}") and b"\n" not in body, body[-100:]

    def number(field: bytes) -> float | None:
        return None if field == b"-" else float(field)

    return Stored(float(fields[3]), float(fields[4]), number(fields[6]), number(fields[7]), int(fields[8]),
                  None if fields[9] == b"-" else bytes.fromhex(fields[9].decode()).decode(), json.loads(body))


def lock_file(env: dict) -> Path:
    locks = sorted(cache_dir(env).glob(f"{CONN}--*.lock"))
    assert len(locks) == 1, locks
    return locks[0]


def lock_is_held(path: Path) -> bool:
    """Whether a process holds the bucket's lock (flock LOCK_EX): a shared lock is refused."""
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # drops the shared lock if taken
    return False


def clock(when: float) -> str:
    return time.strftime("%H:%M:%SZ", time.gmtime(when))


def backoff(failures: int) -> int:
    """The interval the design states: 30 s, doubling, at most 5 minutes."""
    return min(30 * 2 ** (failures - 1), 300)


# -- checks on a run --------------------------------------------------------------------------


def served_quietly(result, first: dict) -> None:
    """Exit 0, the cached credentials exactly, nothing on stderr."""
    assert ok(result) == first, "not the cached credentials"
    assert result.stderr == "", result.stderr


def stale_warning(result, first: dict, reason: str) -> str:
    """Exit 0, the cached credentials exactly, and stderr one warning line that names the
    connection, the failure's reason, the expiry and the floor; no secret. Returns the line."""
    assert ok(result) == first, "not the cached credentials"
    warnings = stderr_verdict(result)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and warnings == lines, result.stderr
    warning = lines[0]
    for needle in (f"connection {CONN!r}", "refreshing its credentials failed", reason,
                   f"expire at {first['Expiration']}", "served while more than 6 minutes are left"):
        assert needle in warning, f"{needle!r} not in {warning!r}"
    for secret in (*SECRET_KEY_FORMS, first["SecretAccessKey"], first["SessionToken"]):
        assert secret not in result.stderr
    return warning


# -- fixtures -----------------------------------------------------------------------------------


@pytest.fixture
def warm(sts, env, run, refreshers):
    """``warm(mode, read_timeout=, attempts=)``: the connection defined in ``env`` (plus the
    ``mode`` variables), its one-hour role fetched now, in real time. Returns (env, the
    credentials printed)."""

    def _warm(mode: dict | None = None, *, read_timeout: float = 1.0, attempts: int = 1):
        env.update(mode or {})
        env[f"CREDPROC_CONN_{CONN.upper()}"] = definition(sts.url, read_timeout, attempts)
        first = ok(run(["--conn", CONN], env), temporary=True)
        assert sts.count("AssumeRole") == 1
        entry = stored(env)
        assert entry.body == first and entry.failures == 0 and entry.reason is None
        assert 3500 < entry.expires - entry.fetched <= 3600, "moto's one-hour role"
        return env, first

    return _warm


# -- fresh ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_before_the_due_point_nothing_is_asked_even_with_sts_down(sts, warm, refreshers, mode):
    env, first = warm(mode)
    before = stored(env)
    sts.faults = list(DOWN)
    for offset in ("+20m", "+26m"):  # the due point is at 27 minutes
        served_quietly(credproc_at(offset, env), first)
    assert sts.count("AssumeRole") == 1
    assert refreshers.pids() == []
    assert stored(env) == before, "nothing recorded"


# -- due, background: refresh ahead --------------------------------------------------------------


def test_at_the_due_point_the_run_prints_at_once_and_a_detached_process_refreshes(sts, warm, refreshers):
    env, first = warm(read_timeout=10)
    before = stored(env)
    sts.delay["AssumeRole"] = 3.0  # the refresh takes 3 s at least: no run waits for it

    result = credproc_at("+28m", env)  # a minute past the due point
    served_quietly(result, first)
    assert result.seconds < 3.0, f"the run took {result.seconds:.2f}s: it waited for the refresh"
    assert len(refreshers.pids()) == 1
    second = credproc_at("+28m", env)  # while it refreshes: printed at once, no second refresher
    served_quietly(second, first)
    assert second.seconds < 3.0 and len(refreshers.pids()) == 1

    refreshers.wait()
    renewed = stored(env)
    assert renewed.body["AccessKeyId"] != first["AccessKeyId"]
    assert renewed.failures == 0 and renewed.reason is None
    assert renewed.fetched - before.fetched > 27 * 60, "fetched on the run's clock, 28 minutes on"
    assert sts.count("AssumeRole") == 2, "one refresh for two due runs"
    assert signing_key(sts.requests[-1]) == ACCESS_KEY

    later = credproc_at("+29m", env)
    assert ok(later) == renewed.body and later.stderr == ""
    assert sts.count("AssumeRole") == 2
    assert refreshers.pids() == []


# -- due, background: outages ------------------------------------------------------------------


def outage_begins(sts, outage: str) -> None:
    if outage == "hanging":
        sts.delay["AssumeRole"] = HANG
    elif outage == "503":
        sts.faults = list(DOWN)
    else:
        sts.refuse()


def outage_ends(sts) -> None:
    sts.delay.clear()
    sts.faults = []
    sts.accept()


@pytest.mark.parametrize("outage", list(OUTAGES))
def test_an_outage_in_the_due_window_is_served_from_the_cache(sts, warm, refreshers, outage):
    env, first = warm()
    before = stored(env)
    reason = OUTAGES[outage]
    outage_begins(sts, outage)
    reached = 0 if outage == "refusing" else 1  # requests a refresh attempt makes at the proxy

    served_quietly(credproc_at("+28m", env), first)  # nothing failed yet: nothing to say
    refreshers.wait()
    failed = stored(env)
    assert failed.failures == 1 and reason in failed.reason, failed
    assert failed.body == first and (failed.fetched, failed.expires) == (before.fetched, before.expires)
    assert failed.failed_since == failed.failed_at
    assert sts.count("AssumeRole") == 1 + reached

    # The backoff (30 s from the failure): every run serves the entry with the warning, and
    # nobody asks: no refresher, no new request, no new failure recorded.
    for _ in range(3):
        warning = stale_warning(credproc_at("+28m", env), first, reason)
        assert f"next try after {clock(failed.failed_at + 30)}" in warning, warning
        assert refreshers.pids() == []
    assert sts.count("AssumeRole") == 1 + reached
    assert stored(env) == failed

    # Past the backoff, the STS back: the run still serves (and says why), the refresher renews.
    outage_ends(sts)
    result = credproc_at("+29m", env)
    assert "next try after" not in stale_warning(result, first, reason)
    refreshers.wait()
    renewed = stored(env)
    assert renewed.failures == 0 and renewed.reason is None and renewed.failed_at is None
    assert renewed.body["AccessKeyId"] != first["AccessKeyId"]
    assert sts.count("AssumeRole") == 2 + reached
    after = credproc_at("+29m", env)
    assert ok(after) == renewed.body and after.stderr == ""


def test_32_processes_in_the_due_window_with_sts_hanging_start_one_refresh(sts, warm, refreshers):
    read_timeout = 5.0
    env, first = warm(read_timeout=read_timeout)
    hits = [credproc_at("+10m", env) for _ in range(3)]  # fresh: what a hit costs here
    for hit in hits:
        served_quietly(hit, first)
    sts.delay["AssumeRole"] = HANG

    procs = []
    for _ in range(32):
        procs.append((time.monotonic(), start_at("+28m", ["--conn", CONN], env)))
    walls: dict[int, float] = {}
    while len(walls) < len(procs) and time.monotonic() - procs[0][0] < 60:
        for i, (began, proc) in enumerate(procs):
            if i not in walls and proc.poll() is not None:
                walls[i] = time.monotonic() - began
        time.sleep(0.005)
    alive = refreshers.pids()  # the moment the last one exited
    last = time.monotonic() - procs[0][0]
    results = [finish(proc, timeout=5) for _, proc in procs]
    times = sorted(walls.values())
    print(f"\n32 processes at +28m, STS hanging: each took {times[0]:.2f}s (fastest), "
          f"{statistics.median(times):.2f}s (median), {times[-1]:.2f}s (slowest); all done "
          f"{last:.2f}s after the first started; a lone hit here: {min(hit.seconds for hit in hits):.2f}s")

    for result in results:
        served_quietly(result, first)
    assert len(alive) == 1, f"one refresher, still hanging when the last process exited: {alive}"
    assert last < read_timeout, "a process waited as long as the hanging refresh"
    # The refresher may still be loading boto3 when the last run exits: its one request
    # arrives in its own time (and a second one would fail the count after it gives up).
    wait_for(lambda: sts.count("AssumeRole") >= 2, "the refresher's request reaching the STS",
             timeout=read_timeout)

    refreshers.wait(timeout=read_timeout + 10)  # it gives up at its read timeout
    failed = stored(env)
    assert failed.failures == 1 and OUTAGES["hanging"] in failed.reason and failed.body == first
    assert sts.count("AssumeRole") == 2


# -- the detached refresher itself ---------------------------------------------------------------


def hanging_refresher(sts, warm, refreshers) -> tuple[dict, dict, int]:
    """A due run whose refresher hangs on the STS (read timeout 30 s): (env, first, its pid)."""
    env, first = warm(read_timeout=30)
    sts.delay["AssumeRole"] = HANG
    result = credproc_at("+28m", env)
    served_quietly(result, first)
    # run_at read stdout and stderr to their end: a refresher holding them would have kept it.
    assert result.seconds < 10, f"the run took {result.seconds:.1f}s"
    wait_for(lambda: sts.count("AssumeRole") == 2, "the refresher's AssumeRole")
    pids = refreshers.pids()
    assert len(pids) == 1, pids
    return env, first, pids[0]


def test_the_detached_refresher_holds_the_lock_and_nothing_of_its_caller(sts, warm, refreshers):
    env, first, pid = hanging_refresher(sts, warm, refreshers)
    lock = lock_file(env)
    assert lock_is_held(lock)
    proc = Path(f"/proc/{pid}")
    fds = {int(name): os.readlink(proc / "fd" / name) for name in os.listdir(proc / "fd")}
    assert [fds.get(n) for n in (0, 1, 2)] == ["/dev/null"] * 3, fds
    held = [n for n, target in fds.items() if n > 2 and target == str(lock)]
    assert len(held) == 1, fds
    assert "FLOCK" in (proc / "fdinfo" / str(held[0])).read_text(), "the lock is this descriptor's"
    # Besides: its connection to the STS, and /dev/null again (its fetch points descriptor 1
    # at 2 meanwhile, saving a copy). Nothing of the caller's: no pipe, no file of its own.
    others = {n: target for n, target in fds.items() if n > 2 and n != held[0]}
    assert all(target.startswith("socket:") or target == "/dev/null" for target in others.values()), \
        f"descriptors other than the lock, /dev/null and its connection to the STS: {fds}"
    assert any(target.startswith("socket:") for target in others.values()), f"no connection to the STS: {fds}"
    assert os.readlink(proc / "cwd") == "/", "it keeps a directory busy"
    stat = (proc / "stat").read_text().rsplit(")", 1)[1].split()
    ppid, session, tty = int(stat[1]), int(stat[3]), int(stat[4])
    assert session != os.getsid(0) and tty == 0, "in a session of its own, without a terminal"
    assert ppid != os.getpid()


def test_a_refresher_killed_while_it_hangs_leaves_no_lock_and_an_intact_entry(sts, warm, refreshers):
    env, first, pid = hanging_refresher(sts, warm, refreshers)
    before = stored(env)
    lock = lock_file(env)
    assert lock_is_held(lock)

    # Meanwhile: printed at once, no second refresher.
    served_quietly(credproc_at("+28m", env), first)
    assert refreshers.pids() == [pid] and sts.count("AssumeRole") == 2

    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: pid not in refreshers.pids(), "the killed refresher gone")
    assert not lock_is_held(lock), "the lock outlived its holder"
    assert stored(env) == before, "the entry changed"
    assert list(cache_dir(env).glob("*.tmp")) == []

    sts.delay.clear()
    served_quietly(credproc_at("+28m", env), first)  # no corrupt-entry warning, no failure to tell
    refreshers.wait()
    renewed = stored(env)
    assert renewed.body["AccessKeyId"] != first["AccessKeyId"] and renewed.failures == 0
    assert sts.count("AssumeRole") == 3
    after = credproc_at("+29m", env)
    assert ok(after) == renewed.body and after.stderr == ""


# -- ending and expired: the foreground, whatever the mode ---------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_past_the_floor_a_failed_refresh_is_the_error(sts, warm, refreshers, mode):
    env, first = warm(mode)
    sts.faults = list(DOWN)
    one_error(credproc_at("+55m", env), 1, UNAVAILABLE)  # 5 minutes left
    assert sts.count("AssumeRole") == 2, "the run itself asked"
    assert refreshers.pids() == []
    failed = stored(env)
    assert failed.failures == 1 and failed.body == first


def test_past_the_floor_a_waiter_whose_holder_failed_gets_the_error_without_asking(sts, warm, refreshers):
    env, first = warm(read_timeout=3)
    sts.delay["AssumeRole"] = HANG
    holder = start_at("+55m", ["--conn", CONN], env)
    wait_for(lambda: sts.count("AssumeRole") == 2, "the holder's AssumeRole")
    waiter = start_at("+55m", ["--conn", CONN], env)  # finds the lock held, waits
    one_error(finish(holder), 1, OUTAGES["hanging"])
    one_error(finish(waiter), 1, "refreshing its credentials failed", OUTAGES["hanging"],
              "in another credproc process just now")
    assert sts.count("AssumeRole") == 2, "the waiter asked again"
    assert stored(env).failures == 1


def test_past_the_floor_the_entry_is_refreshed_before_it_is_printed(sts, warm, refreshers):
    env, first = warm()
    result = credproc_at("+55m", env)
    renewed = ok(result, temporary=True)
    assert renewed["AccessKeyId"] != first["AccessKeyId"] and result.stderr == ""
    assert sts.count("AssumeRole") == 2
    assert refreshers.pids() == []
    assert stored(env).body == renewed


@pytest.mark.parametrize("mode", MODES)
def test_expired_credentials_are_never_printed(sts, warm, refreshers, mode):
    env, first = warm(mode)
    sts.faults = list(DOWN)
    result = credproc_at("+61m", env)
    one_error(result, 1, UNAVAILABLE)
    assert first["SecretAccessKey"] not in result.stdout + result.stderr
    assert sts.count("AssumeRole") == 2 and refreshers.pids() == []


@pytest.mark.parametrize("offset", ["+10m", "+28m"], ids=["fresh", "due"])
@pytest.mark.parametrize("mode", MODES)
def test_an_explicit_refresh_that_fails_is_an_error(sts, warm, refreshers, mode, offset):
    """--refresh asks for new credentials: the cached ones are no answer to it."""
    env, _ = warm(mode)
    sts.faults = list(DOWN)
    one_error(credproc_at(offset, env, "--refresh"), 1, UNAVAILABLE)
    assert sts.count("AssumeRole") == 2 and refreshers.pids() == []
    assert stored(env).failures == 1


# -- due, foreground (CREDPROC_BACKGROUND_REFRESH=0): stale if error ----------------------------


def test_foreground_a_failed_refresh_serves_the_cached_credentials_with_one_warning(sts, warm, refreshers):
    env, first = warm(FOREGROUND, attempts=2)
    sts.faults = list(DOWN)
    result = credproc_at("+45m", env)  # 15 minutes left: due, above the floor
    warning = stale_warning(result, first, UNAVAILABLE)
    assert "in 14m" in warning or "in 15m" in warning, warning
    assert sts.count("AssumeRole") == 1 + 2, "the refresh spent its attempts first"
    assert refreshers.pids() == []
    failed = stored(env)
    assert failed.failures == 1 and UNAVAILABLE in failed.reason and failed.body == first
    assert f"next try after {clock(failed.failed_at + 30)}" in warning


def test_foreground_within_the_backoff_the_next_process_does_not_ask(sts, warm, refreshers):
    env, first = warm(FOREGROUND)
    sts.faults = list(DOWN)
    stale_warning(credproc_at("+45m", env), first, UNAVAILABLE)
    assert sts.count("AssumeRole") == 2
    failed = stored(env)
    sts.faults = []  # it would answer now: the backoff is why nobody asks
    for _ in range(2):
        result = credproc_at("+45m", env)
        assert result.seconds < 5
        stale_warning(result, first, UNAVAILABLE)
    assert sts.count("AssumeRole") == 2
    assert stored(env) == failed


def test_foreground_when_sts_answers_again_the_refresh_replaces_the_entry(sts, warm, refreshers):
    env, first = warm(FOREGROUND)
    sts.faults = list(DOWN)
    stale_warning(credproc_at("+45m", env), first, UNAVAILABLE)
    sts.faults = []
    renewed = credproc_at("+46m", env)  # past the backoff
    assert ok(renewed)["AccessKeyId"] != first["AccessKeyId"]
    assert renewed.stderr == ""
    assert sts.count("AssumeRole") == 3
    entry = stored(env)
    assert entry.failures == 0 and entry.body == ok(renewed)


def test_foreground_a_due_entry_is_printed_while_another_process_refreshes_it(sts, warm, refreshers):
    """With STS hanging, only the process that refreshes waits: one that finds the lock held
    prints the due entry at once, and asks nothing."""
    env, first = warm(FOREGROUND, read_timeout=3)
    sts.delay["AssumeRole"] = HANG
    holder = start_at("+45m", ["--conn", CONN], env)
    wait_for(lambda: sts.count("AssumeRole") == 2, "the holder's AssumeRole")
    other = run_at("+45m", ["--conn", CONN], env)  # finds the lock held
    assert holder.poll() is None, "the holder is still waiting for STS"
    assert ok(other) == first and other.stderr == ""
    stale_warning(finish(holder), first, OUTAGES["hanging"])
    assert sts.count("AssumeRole") == 2, "the other process asked too"
    assert stored(env).failures == 1


@pytest.mark.parametrize("mode", MODES)
def test_commands_serve_the_due_entry_too(sts, warm, refreshers, mode):
    """``credproc env`` goes through the same cache, so it outlives the outage as well."""
    env, first = warm(mode)
    sts.faults = list(DOWN)
    result = run_at("+45m", ["env", CONN, "--format", "json"], env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["AWS_ACCESS_KEY_ID"] == first["AccessKeyId"]
    if mode:
        assert "refreshing its credentials failed" in result.stderr
    else:  # printed at once; the refresher fails behind it
        assert result.stderr == ""
        refreshers.wait()
    assert stored(env).failures == 1 and sts.count("AssumeRole") == 2


# -- the backoff ---------------------------------------------------------------------------------

# Each failure comes after the backoff of the one before (30 s, 1, 2, 4 min, then 5 at most),
# all inside the due window (27 to 54 minutes).
STEPS = ["+28m", "+29m", "+31m", "+34m", "+39m", "+45m"]


@pytest.mark.parametrize("mode", MODES)
def test_the_backoff_grows_with_each_failure(sts, warm, refreshers, mode):
    env, first = warm(mode)
    sts.faults = list(DOWN)
    since = None
    for failures, offset in enumerate(STEPS, 1):
        asked = sts.count("AssumeRole")
        result = credproc_at(offset, env)  # past the backoff: one try (here, or in the background)
        assert ok(result) == first
        refreshers.wait()
        failed = stored(env)
        assert failed.failures == failures, (offset, failed)
        assert sts.count("AssumeRole") == asked + 1
        since = since or failed.failed_at
        assert failed.failed_since == since and failed.body == first

        # Within the backoff: served, with the failures counted and the next try named.
        warning = stale_warning(credproc_at(offset, env), first, UNAVAILABLE)
        assert f"next try after {clock(failed.failed_at + backoff(failures))}" in warning, warning
        if failures > 1:
            assert f"{failures} tries since {clock(since)}" in warning, warning
        assert sts.count("AssumeRole") == asked + 1 and refreshers.pids() == []
        assert stored(env) == failed


# -- what list and cache list show ------------------------------------------------------------


def states(offset: str, env: dict) -> tuple[dict, dict, str, str]:
    """The entry's state as ``credproc list`` and ``credproc cache list`` show it at ``offset``:
    both --json rows and both tables' text."""
    listed = {row["id"]: row for row in json.loads(ok(run_at(offset, ["list", "--json"], env), text=True))}
    (cached,) = json.loads(ok(run_at(offset, ["cache", "list", "--json"], env), text=True))
    table = ok(run_at(offset, ["list"], env), text=True)
    cache_table = ok(run_at(offset, ["cache", "list"], env), text=True)
    assert cached["current"] is True
    for name in ("state", "fresh_until", "served_until", "expires", "failure"):
        assert listed[CONN]["cache"][name] == cached[name], name
    return listed[CONN]["cache"], cached, table, cache_table


def test_list_and_cache_list_show_where_the_entry_is_on_its_timeline(sts, warm, refreshers):
    """fresh until T; refreshing while a process holds the lock; serving stale since T because
    of the recorded reason; ending past the floor; expired. Nothing secret in any of it."""
    env, first = warm(read_timeout=15)  # long enough for the four looks while it refreshes
    entry = stored(env)
    shown, _, table, _ = states("+10m", env)
    assert shown["state"] == "fresh" and shown["failure"] is None
    assert shown["fresh_until"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(entry.fetched + 1620))
    assert f"fresh until {shown['fresh_until']}" in table

    sts.delay["AssumeRole"] = HANG  # the refresher hangs for its read timeout (15 s)
    served_quietly(credproc_at("+28m", env), first)
    refreshers.wait_for(1)
    shown, _, table, cache_table = states("+28m", env)
    assert shown["state"] == "refreshing", shown
    assert "refreshing" in table and "refreshing" in cache_table
    refreshers.wait()

    shown, _, table, cache_table = states("+28m", env)
    failure = shown["failure"]
    assert shown["state"] == "stale" and failure["count"] == 1, shown
    assert OUTAGES["hanging"] in failure["reason"]
    recorded = stored(env)
    assert failure["since"] == failure["last"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(recorded.failed_at))
    for text in (table, cache_table):
        assert f"serving stale since {failure['since']} because {failure['reason']}" in text, text
        assert f"next try after {failure['next_try']}" in text

    sts.delay.clear()
    sts.faults = list(DOWN)
    shown, _, table, _ = states("+55m", env)
    assert shown["state"] == "ending" and "ending" in table
    shown, _, table, _ = states("+61m", env)
    assert shown["state"] == "expired" and "expired" in table
    assert sts.count("AssumeRole") == 2, "looking asks nobody"
    for text in (table, cache_table):
        for secret in (*SECRET_KEY_FORMS, first["SecretAccessKey"], first["SessionToken"]):
            assert secret not in text


SLOW_FACTORY = '''
import os
import time

from credproc import BaseSessionFactory


class Slow(BaseSessionFactory):
    """Hangs while the file named by SLOW_FACTORY_FLAG exists: a federation stuck for good."""

    def credentials(self):
        while os.path.exists(os.environ["SLOW_FACTORY_FLAG"]):
            time.sleep(0.05)
        return super().credentials()
'''


def test_a_refresher_stuck_in_a_session_factory_fails_at_its_deadline(sts, warm, refreshers, tmp_path):
    """The detached refresher's alarm (CREDPROC_BACKGROUND_DEADLINE, 300 s by default) makes a
    stuck refresh a failure like any other: recorded in the entry, backed off, the lock let go."""
    (tmp_path / "slow_factory.py").write_text(SLOW_FACTORY)
    flag = tmp_path / "stuck"
    env, first = warm({"PYTHONPATH": str(tmp_path), "CREDPROC_SESSION_FACTORY": "slow_factory.Slow",
                       "SLOW_FACTORY_FLAG": str(flag), "CREDPROC_BACKGROUND_DEADLINE": "2"})
    flag.touch()
    served_quietly(credproc_at("+28m", env), first)
    refreshers.wait_for(1)
    assert lock_is_held(lock_file(env))
    refreshers.wait(timeout=15)
    assert not lock_is_held(lock_file(env)), "the lock outlived the refresher"
    recorded = stored(env)
    assert recorded.failures == 1 and "the background refresh took more than 2 s" in recorded.reason, recorded
    assert recorded.body == first and sts.count("AssumeRole") == 1
    stale_warning(credproc_at("+28m", env), first, "took more than 2 s")
