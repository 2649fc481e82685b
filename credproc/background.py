"""Refresh ahead: a due entry is printed at once, and a detached process refreshes it.

An SDK runs credproc and waits for it; a refresh that loads boto3 and waits for STS would
make every program that starts in the due window wait with it. So the run that finds a
due entry (``credproc.cache``: past halfway, above the floor) prints it, and then, unless a
refresh is running (the bucket's lock is held) or a failed one's backoff is not over, takes
the lock and hands it to a detached process:

* forked twice and in a session of its own, so the SDK never waits for it and no terminal
  signal reaches it;
* its descriptors 0, 1 and 2 on ``/dev/null`` and every other one closed but the lock's,
  so that the pipes the SDK reads reach end-of-file when this run exits;
* bounded by an alarm (``DEADLINE``, or ``CREDPROC_BACKGROUND_DEADLINE`` seconds): a
  refresher stuck in a user's factory fails with a timeout, recorded like any failure, and
  cannot hold the lock forever; the kernel drops the lock whenever it dies.

Its outcome is the entry: a new one, or the failure recorded in the old one, which the
runs that follow serve with a warning while the backoff lasts. ``CREDPROC_BACKGROUND_REFRESH=0``
refreshes in the foreground instead (stale if error still holds there).

This module runs on a hit in the due window: standard library only, and little of it.
"""

import os
import time

from credproc import cache

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from credproc.resolution import Resolution

VARIABLE = "CREDPROC_BACKGROUND_REFRESH"
DEADLINE = 300  # seconds a detached refresher may take before its alarm fails it
DEADLINE_VARIABLE = "CREDPROC_BACKGROUND_DEADLINE"


def enabled(environ: "Mapping[str, str]") -> bool:
    """Refresh ahead in the background, unless turned off or impossible (no fork: Windows)."""
    return hasattr(os, "fork") and environ.get(VARIABLE, "").strip().lower() not in ("0", "false", "no", "off")


def servable(entry: cache.Entry, now: float, environ: "Mapping[str, str]") -> bool:
    """Whether a run may print this entry at once: fresh, or due with the refresh left to the background."""
    return entry.is_fresh(now) or (entry.floor > now and entry.expires > now and enabled(environ))


def after_serving(resolution: "Resolution", entry: cache.Entry, now: float,
                  refresh: "Callable[[Resolution], None]") -> None:
    """Arrange the refresh of a due entry the run has just printed (or is about to):
    ``refresh(resolution)`` runs in the detached process (``job.refresh_in_background``)."""
    if entry.is_fresh(now):
        return
    if entry.failures:
        cache.warn_stale(resolution.conn_id, entry)
        if now < entry.retry_at:
            return  # backing off: nobody asks upstream until the interval is over
    try:
        fd = cache.open_lock(resolution.bucket)
    except OSError:
        return  # the next run in the foreground says what is wrong
    try:
        import fcntl

        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return  # a refresh is running
        # Under the lock, look again: the last refresher may have just finished.
        current = resolution.entry(reread=True)
        now = time.time()
        if current is None or current.state(now) != cache.DUE or now < current.retry_at:
            return
        _detach(fd, resolution, refresh)
    finally:
        os.close(fd)  # the lock stays held by the refresher's copy of the descriptor


def _detach(lock_fd: int, resolution: "Resolution", refresh: "Callable[[Resolution], None]") -> None:
    """Fork the refresher (twice, so it is nobody's child to wait for) and return at once."""
    import sys

    for stream in (sys.stdout, sys.stderr):
        try:  # noqa: SIM105 - a hit's module: no contextlib for it
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass
    try:
        pid = os.fork()
    except OSError:
        return  # no process to spare: a later run tries again
    if pid:
        os.waitpid(pid, 0)  # the middle process exits as soon as the refresher exists
        return
    try:
        os.setsid()
        if os.fork():
            os._exit(0)
        _keep_only(lock_fd)
        _deadline(_seconds(resolution.environ.get(DEADLINE_VARIABLE), DEADLINE))
        refresh(resolution)
        code = 0
    except BaseException:  # nothing to tell anyone: the outcome is in the entry
        code = 1
    os._exit(code)


def _seconds(value: str | None, default: int) -> int:
    """A whole number of seconds from 1 to an hour, else the default (in the refresher,
    where nobody would read an error)."""
    try:
        return min(max(int(value or default), 1), 3600)
    except ValueError:
        return default


class RefreshTimeout(Exception):
    """Not an OSError, so that no HTTP layer takes it for a connection error to retry."""


def _deadline(seconds: int) -> None:
    """After ``seconds``, raise in the refresh: the fetch fails like any other, so the failure
    is recorded (and backed off) instead of the process dying without a word."""
    import signal

    def expired(signum: int, frame: object) -> None:
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        signal.alarm(30)  # should recording the failure hang too, SIGALRM's default ends the process
        raise RefreshTimeout(f"the background refresh took more than {seconds} s")

    signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)


def _keep_only(lock_fd: int) -> int:
    """Descriptors 0-2 on /dev/null, every other one closed but the lock's (moved to >= 3)."""
    import fcntl

    lock_fd = fcntl.fcntl(lock_fd, fcntl.F_DUPFD, 3)  # stdin may have been closed: fd 0 may be the lock
    null = os.open(os.devnull, os.O_RDWR)
    for target in (0, 1, 2):
        if null != target:
            os.dup2(null, target)
    top = os.sysconf("SC_OPEN_MAX") if hasattr(os, "sysconf") else 65536
    os.closerange(3, lock_fd)
    os.closerange(lock_fd + 1, max(top, lock_fd + 2))
    os.chdir("/")  # hold no directory (a mount to unmount) busy
    return lock_fd
