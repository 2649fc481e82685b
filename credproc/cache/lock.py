"""The entry's lock, and the locked refresh: N processes that miss together make one fetch.

A miss only; see :class:`EntryLock` and :func:`get_or_fetch`.
"""

from __future__ import annotations

import os
import time

from credproc.cache import Bucket, Entry, Slot, open_lock, warn_once, warn_stale
from credproc.cache.store import ensure_directory, record_failure, write
from credproc.errors import CredprocError
from credproc.log import warn

TYPE_CHECKING = False  # a stampede's waiters import this module: no typing for them
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from credproc.protocol import Credentials

# Seconds a process waits for another one's refresh before fetching without the lock
# (see EntryLock); CREDPROC_LOCK_TIMEOUT changes it, e.g. for an SDK with a 5 s budget.
LOCK_TIMEOUT = 30.0

# Seconds a process waits for one that asks a person (an MFA code) while it asks
# (asking_a_person); CREDPROC_MFA_TIMEOUT changes it.
PERSON_TIMEOUT = 300.0
PERSON_TIMEOUT_VARIABLE = "CREDPROC_MFA_TIMEOUT"


def person_timeout(environ: Mapping[str, str]) -> float:
    """``CREDPROC_MFA_TIMEOUT`` in seconds, else ``PERSON_TIMEOUT``."""
    from credproc import settings

    return settings.seconds(environ, PERSON_TIMEOUT_VARIABLE, PERSON_TIMEOUT, maximum=3600)

HELD, RELEASED, NOT_HELD, BUSY = "held", "released", "not held", "busy"


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

    def __init__(self, bucket: Bucket, timeout: float, person_timeout: float | None = None):
        self.bucket = bucket
        self.started = time.monotonic()
        self.deadline = self.started + timeout
        self.timeout = timeout
        # While the holder asks a person (an MFA code), it says so in the lock file
        # (asking_a_person), and waiting goes on this long instead.
        self.person_timeout = person_timeout
        self._fd: int | None = None
        self._release: Callable[[], None] | None = None

    def acquire(self, *, wait: bool = True) -> str:
        """HELD, RELEASED or NOT_HELD (see the class); without ``wait``, BUSY at once when
        another process holds the lock."""
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
            _unmark(fd)  # a killed holder may have left its "asking" mark
            _held.append(self)
            return HELD
        except BlockingIOError:
            if not wait:
                return BUSY
        except OSError as e:
            return self._unavailable(e)
        while self._person_is_asked(fd) or time.monotonic() < self.deadline:
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
        waited = time.monotonic() - self.started
        warn(f"waited {waited:.0f}s for lock {self.bucket.lock_path}; fetching without it")
        return NOT_HELD

    def _person_is_asked(self, fd: int) -> bool:
        """The holder is asking a person, and the longer wait for that is not over. Each time
        the mark is seen the lock timeout starts again: once the code is typed, the holder
        still has its STS calls to make, and its waiters must not give up in that second."""
        if self.person_timeout is None or time.monotonic() >= self.started + self.person_timeout:
            return False
        try:
            asked = os.fstat(fd).st_size > 0
        except OSError:
            return False
        if asked:
            self.deadline = max(self.deadline, time.monotonic() + self.timeout)
        return asked

    @property
    def holding(self) -> bool:
        return self._release is not None

    def release(self) -> None:
        if self._release is not None:
            if self._fd is not None:
                _unmark(self._fd)
            self._release()
            self._release = None
            if self in _held:
                _held.remove(self)

    def close(self) -> None:
        self.release()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _open(self) -> int:
        problem = self.bucket.directory_problem()
        if problem:
            raise OSError(0, problem)
        ensure_directory(self.bucket)
        return open_lock(self.bucket)

    def _unavailable(self, error: OSError) -> str:
        warn_once(self.bucket.directory, f"cannot lock {self.bucket.lock_path}: {error.strerror or error}; "
                   "fetching without the lock, and the cache may not be written either")
        return NOT_HELD

    def _acquire_filelock(self) -> str:  # pragma: no cover - Windows
        from filelock import FileLock, Timeout

        lock = FileLock(self.bucket.lock_path, timeout=max(0.0, self.deadline - time.monotonic()))
        try:
            lock.acquire()
        except Timeout:
            return NOT_HELD
        self._release = lock.release
        return HELD


_held: list[EntryLock] = []  # the locks this process holds, innermost last
ASKING = b"asking a person\n"


class asking_a_person:  # a context manager, named like one
    """While a person is asked (an MFA code), every lock this process holds says so, and the
    processes waiting for them wait the person's time (``person_timeout``), not the lock
    timeout of fetches that ask no one. (A class, not contextlib: stampede waiters import
    this module, and contextlib would cost them its imports.)"""

    def __enter__(self) -> None:
        self.marked = [lock._fd for lock in _held if lock._fd is not None]
        for fd in self.marked:
            try:  # noqa: SIM105 - no contextlib here, see above
                os.pwrite(fd, ASKING, 0)
            except OSError:
                pass

    def __exit__(self, *exc_info: object) -> None:
        for fd in self.marked:
            _unmark(fd)


def _unmark(fd: int) -> None:
    try:  # noqa: SIM105 - no contextlib here, see asking_a_person
        os.ftruncate(fd, 0)
    except OSError:
        pass


def is_held(bucket: Bucket) -> bool:
    """Whether a process holds the bucket's lock now (is fetching): for ``credproc list``."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        return False
    try:
        fd = os.open(bucket.lock_path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)  # closing drops the shared lock, if taken
    return False


def get_or_fetch(bucket: Bucket, find: Callable[[], Slot | None], place: Callable[[], Slot],
                 fetch: Callable[[], Credentials], *, known: Entry | None = None, refresh: bool = False,
                 lock_timeout: float = LOCK_TIMEOUT, person_timeout: float | None = None) -> bytes:
    """The body to print: a usable entry, else ``fetch()`` under the bucket's lock, stored.

    ``find()`` is the slot the bucket's record of variables points at (None: no record yet);
    ``known`` the entry the caller read there before calling;
    ``place()`` is the slot this fetch writes, from the parsed connection. Whoever held the
    lock has usually just refreshed the entry, so it is looked up again after every wait. An
    entry written after this call began is taken even when it is not fresh (short-lived
    roles), so a stampede makes one STS call.

    A due entry (see ``credproc.cache``) whose last refresh failed less than a backoff ago is
    served without asking upstream, and so is one whose refresh failed in the process whose
    lock this one waited for. When ``fetch()`` itself fails, the failure is recorded in the
    entry, and while it has more than ``FLOOR`` seconds left its body is returned with one
    warning saying why and until when (stale if error). Past the floor, or with ``refresh``
    (the user asked for new credentials), the error is raised. Expired credentials are never
    returned.
    """
    started = time.time()

    def served(entry: Entry | None, state: str) -> bytes | None:
        """The body to print without fetching, or None; raises when the holder we waited
        for has just failed and the entry may not be served."""
        now = time.time()
        if entry is None or entry.expires <= now:
            return None
        if entry.fetched >= started or (not refresh and entry.is_fresh(now)):
            return entry.body
        failed_meanwhile = entry.failed_at >= started
        if not refresh and entry.floor > now and (failed_meanwhile or now < entry.retry_at):
            warn_stale(bucket.conn_id, entry)  # upstream is failing: do not ask it again yet
            return entry.body
        if state == RELEASED and failed_meanwhile:
            raise CredprocError(f"connection {bucket.conn_id!r}: refreshing its credentials failed "
                                f"({entry.reason}), in another credproc process just now")
        return None

    lock = EntryLock(bucket, lock_timeout, person_timeout)
    try:
        state: str | None = None
        now = time.time()
        if known is not None and not refresh and not known.is_fresh(now) and known.floor > now:
            # Due, and refreshed in the foreground: when another process is at it already,
            # print the entry rather than wait for it (with STS hanging, only that one waits).
            state = lock.acquire(wait=False)
            if state == BUSY:
                if known.failures:
                    warn_stale(bucket.conn_id, known)
                return known.body
        while True:
            if state is None:
                state = lock.acquire()
            slot = find()
            entry = slot.read() if slot is not None else None
            body = served(entry, state)
            if body is not None:
                return body
            if state == RELEASED:
                state = None
                continue  # the holder's result is no use to this run: our turn to try
            return attempt(slot, entry, place, fetch, refresh=refresh)
    finally:
        lock.close()


def attempt(slot: Slot | None, entry: Entry | None, place: Callable[[], Slot], fetch: Callable[[], Credentials],
            *, refresh: bool = False, background: bool = False) -> bytes:
    """Fetch (the caller holds the lock) and store the result in the slot ``place()`` gives.

    ``slot`` and ``entry`` are what the bucket's record pointed at. On failure the failure is
    recorded in ``entry``, which is served while it has more than the floor left, unless
    ``refresh`` or ``background`` (a detached refresher prints nothing)."""
    try:
        placed = place()  # parses the connection: its errors are the fetch's
        if slot is None or placed.path != slot.path:  # no record yet, or an outdated one
            slot, entry = placed, placed.read()
        credentials = fetch()
    except Exception as error:  # any failure upstream, or in a user's session factory
        now = time.time()
        if slot is None or entry is None or entry.expires <= now:
            raise
        entry = record_failure(slot, entry, reason_of(error, slot.conn_id), now)
        if refresh or background or entry.floor <= now:
            raise
        warn_stale(slot.conn_id, entry)
        return entry.body
    body = credentials.to_process_json().encode()
    if credentials.expires_at is not None:  # long-term keys are never cached
        write(placed, body, fetched=time.time(), expires=credentials.expires_at)
    return body


def reason_of(error: BaseException, conn_id: str) -> str:
    """Why a refresh failed, in one line without the connection's name (the warning says it).
    credproc's own errors never hold a secret; log.redact masks any that is known."""
    from credproc.log import one_line, redact

    reason = str(error) if isinstance(error, CredprocError) else f"{type(error).__name__}: {error}"
    prefix = f"connection {conn_id!r}: "
    reason = reason[len(prefix):] if reason.startswith(prefix) else reason
    reason = redact(one_line(reason))
    return reason if len(reason) <= 400 else reason[:399] + "…"
