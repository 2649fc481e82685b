"""The entry's lock, and the locked refresh: N processes that miss together make one fetch.

A miss only; see :class:`EntryLock` and :func:`get_or_fetch`.
"""

from __future__ import annotations

import os
import time

from credproc.cache import O_CLOEXEC, O_NOFOLLOW, O_NONBLOCK, REFRESH_MARGIN_MIN, Entry, Slot, warn_once
from credproc.cache.store import ensure_directory, write
from credproc.log import warn

TYPE_CHECKING = False  # a stampede's waiters import this module: no typing for them
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import TypeGuard

    from credproc.protocol import Credentials

# Seconds a process waits for another one's refresh before fetching without the lock
# (see EntryLock); CREDPROC_LOCK_TIMEOUT changes it, e.g. for an SDK with a 5 s budget.
LOCK_TIMEOUT = 30.0

# Stale if error: when a refresh fails, the cached credentials are printed instead while they
# keep more than this many seconds. It is the refresh margin's floor (cache.REFRESH_MARGIN_MIN),
# the least any credentials credproc prints have left, which every SDK accepts.
STALE_FLOOR = REFRESH_MARGIN_MIN

HELD, RELEASED, NOT_HELD = "held", "released", "not held"


class EntryLock:
    """The lock of one entry: a ``flock`` on ``<entry>.lock``.

    :meth:`acquire` either takes the lock (HELD), or, when another process holds it, waits
    until that process lets go (RELEASED: this process holds nothing, and should re-read the
    entry the other one has most likely just written), or gives up (NOT_HELD, with a warning).
    Waiting is done by polling for a *shared* lock, so that when a fetch completes all its
    waiters wake at once and read the new entry side by side, instead of queueing for the
    exclusive lock one by one.

    The kernel drops a flock when its holder dies, so a killed process never blocks anyone.
    This is filelock's Unix lock plus the shared wait, in a few lines: filelock takes about
    90 ms to import here (it loads asyncio), which every waiter of a stampede would pay.
    filelock remains the lock where ``fcntl`` does not exist (Windows).
    """

    POLL = 0.05  # seconds between looks at a held lock: a fetch takes far longer

    def __init__(self, slot: Slot, timeout: float):
        self.slot = slot
        self.deadline = time.monotonic() + timeout
        self.timeout = timeout
        self._fd: int | None = None
        self._release: Callable[[], None] | None = None

    def acquire(self) -> str:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            return self._acquire_filelock()
        try:
            if self._fd is None:
                self._fd = self._open()
        except OSError as e:  # BlockingIOError too: not a held lock, a lock file we cannot open
            return self._unavailable(e)
        fd = self._fd
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self._release = lambda: fcntl.flock(fd, fcntl.LOCK_UN)
            return HELD
        except BlockingIOError:
            pass
        except OSError as e:
            return self._unavailable(e)
        while time.monotonic() < self.deadline:
            time.sleep(self.POLL)
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            fcntl.flock(fd, fcntl.LOCK_UN)
            return RELEASED
        # A holder that hangs (stopped, or stuck on a dead IdP) must not stall every SDK
        # process on this machine: after the timeout we fetch without the lock. Writes are
        # atomic renames, so the worst case is one extra STS call.
        warn(f"waited {self.timeout:.0f}s for lock {self.slot.lock_path}; fetching without it")
        return NOT_HELD

    def release(self) -> None:
        if self._release is not None:
            self._release()
            self._release = None

    def close(self) -> None:
        self.release()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _open(self) -> int:
        problem = self.slot.directory_problem()
        if problem:
            raise OSError(0, problem)
        ensure_directory(self.slot)
        fd = os.open(self.slot.lock_path, os.O_RDWR | os.O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, 0o600)
        if os.fstat(fd).st_mode & 0o170000 != 0o100000:
            os.close(fd)
            raise OSError(0, "the lock file is not a regular file")
        return fd

    def _unavailable(self, error: OSError) -> str:
        warn_once(self.slot.directory, f"cannot lock {self.slot.lock_path}: {error.strerror or error}; "
                   "fetching without the lock, and the cache may not be written either")
        return NOT_HELD

    def _acquire_filelock(self) -> str:  # pragma: no cover - Windows
        from filelock import FileLock, Timeout

        lock = FileLock(self.slot.lock_path, timeout=max(0.0, self.deadline - time.monotonic()))
        try:
            lock.acquire()
        except Timeout:
            return NOT_HELD
        self._release = lock.release
        return HELD


def get_or_fetch(slot: Slot, fetch: Callable[[], Credentials], *, refresh: bool = False,
                 lock_timeout: float = LOCK_TIMEOUT) -> bytes:
    """The body to print: a usable entry, else ``fetch()`` under the entry's lock, stored.

    Whoever held the lock has usually just refreshed the entry, so it is read again after
    every wait. An entry written after this call began is taken even when it is not "fresh"
    by the margin (short-lived roles), so a stampede makes one STS call.

    Stale if error: when ``fetch()`` fails, for whatever reason, and the entry still has more
    than ``STALE_FLOOR`` seconds, its body is returned with one warning saying why and until
    when; past the floor, or with ``refresh`` (the user asked for new credentials), the error
    is raised. Expired credentials are never returned.
    """
    started = time.time()

    def usable(entry: Entry | None) -> TypeGuard[Entry]:
        now = time.time()
        return entry is not None and entry.expires > now and (
            entry.fetched >= started or (not refresh and entry.is_fresh(now)))

    lock = EntryLock(slot, lock_timeout)
    try:
        while True:
            state = lock.acquire()
            entry = slot.read()
            if usable(entry):
                return entry.body
            if state == RELEASED:
                continue  # the holder failed or its result is no use: our turn to try
            try:
                credentials = fetch()
            except Exception as error:  # any failure upstream, or in a user's session factory
                if refresh or entry is None or entry.expires - time.time() <= STALE_FLOOR:
                    raise
                _warn_stale(slot, entry, error)
                return entry.body
            body = credentials.to_process_json().encode()
            if credentials.expires_at is not None:  # long-term keys are never cached
                write(slot, body, fetched=time.time(), expires=credentials.expires_at)
            return body
    finally:
        lock.close()


def _warn_stale(slot: Slot, entry: Entry, error: Exception) -> None:
    """One line: which connection, why the refresh failed, and until when the cached
    credentials are served (the error's own text never holds a secret, and warn masks)."""
    from credproc.errors import CredprocError

    reason = str(error) if isinstance(error, CredprocError) else f"{type(error).__name__}: {error}"
    prefix = f"connection {slot.conn_id!r}: "
    reason = reason[len(prefix):] if reason.startswith(prefix) else reason
    left = int(entry.expires - time.time())
    until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(entry.expires))
    warn(f"connection {slot.conn_id!r}: refreshing its credentials failed ({reason}); serving the cached "
         f"ones, which expire at {until} (in {left // 60}m{left % 60:02d}s; served while more than "
         f"{STALE_FLOOR // 60} minutes are left)")
