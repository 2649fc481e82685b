"""The locked on-disk cache of expiring credentials: *where to cache* and *when to refresh*.

One entry per connection identity, in ``$CREDPROC_CACHE_DIR`` (else
``$XDG_CACHE_HOME/credproc``, else ``~/.cache/credproc``), directory 0700, entries 0600.

An entry is one header line and then the exact JSON that the run prints::

    credproc-cache 1 <key> <fetched> <expires> <conn id in hex> <digest of all before it>
    {"Version": 1, "AccessKeyId": ...}

so a cache hit checks the header with ``str.split`` and copies the body to stdout: it
imports neither ``json`` nor ``re``. Writes are atomic (temporary file, fsync, rename), so
a reader never takes the lock and never sees half an entry; the lock (a flock, taken on a
miss only) is there so that N processes starting together make one STS call.

A broken entry (truncated, garbage, another key, foreign owner, writable by others, a
symlink) is a miss with a warning, and is replaced; a cache that cannot be written still
lets the run print its credentials.
"""

from __future__ import annotations

import os
import time

try:  # the builtin module: hashlib would first load OpenSSL, ~7 ms on a cache hit
    from _sha256 import sha256  # CPython <= 3.11
except ImportError:  # pragma: no cover - depends on the interpreter
    try:
        from _sha2 import sha256  # CPython >= 3.12
    except ImportError:
        from hashlib import sha256

from credproc.log import warn

TYPE_CHECKING = False  # typing and collections cost a cache hit milliseconds
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import TypeGuard

    from credproc.protocol import Credentials
    from credproc.sources import Definition

FORMAT = b"credproc-cache"
VERSION = b"1"
MAX_ENTRY_BYTES = 64_000  # Java's SDK refuses more than that on stdout anyway
# Seconds a process waits for another one's refresh before fetching without the lock
# (see EntryLock); CREDPROC_LOCK_TIMEOUT changes it, e.g. for an SDK with a 5 s budget.
LOCK_TIMEOUT = 30.0

# When to refresh. botocore treats credentials with less than 15 minutes left as due for
# refresh (it re-runs the process on every API call) and refuses, with an error, ones with
# less than 10 minutes left after a refresh. So an entry is served while more than
# ``refresh_margin(lifetime)`` remains: 20 minutes for ordinary sessions (an hour-long
# session is served for 40 minutes), half the lifetime for shorter ones, and never less
# than 11 minutes. A 15-minute role (STS's minimum) is thus served for its first 4 minutes;
# botocore re-runs us on each call in that time, and each run is a cheap hit.
REFRESH_MARGIN_MAX = 20 * 60
REFRESH_MARGIN_MIN = 11 * 60

# Everything in the environment that can change what a definition yields: a change in any of
# them is a new cache identity. Values are hashed, never stored.
IDENTITY_VARIABLES = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_STS",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "CLOUDSDK_CONFIG",
    "GCE_METADATA_HOST",
    "CREDPROC_SESSION_FACTORY",
)

_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_warned: set[str] = set()


def refresh_margin(lifetime: float) -> float:
    """Seconds before expiry at which an entry stops being served (see the note above)."""
    return min(max(lifetime / 2, REFRESH_MARGIN_MIN), REFRESH_MARGIN_MAX)


def cache_dir(environ: Mapping[str, str]) -> str:
    explicit = environ.get("CREDPROC_CACHE_DIR")
    if explicit:
        return explicit
    base = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "credproc")


def identity(definition: Definition, factory: str | None, environ: Mapping[str, str]) -> str:
    """The cache key: a hash of everything that decides which credentials a run yields.

    That is the definition's raw text and where it came from (so any edit is a new entry,
    and a hit need not parse it), the session factory, and ``IDENTITY_VARIABLES``. Secrets
    in the definition go into the hash only; the hash cannot be turned back into them.
    """
    h = sha256()
    parts: list[bytes | str] = [b"credproc-identity-1", definition.conn_id, definition.kind, definition.where,
                                definition.text, factory or ""]
    parts += [f"{name}={environ.get(name, '')}" for name in IDENTITY_VARIABLES]
    for part in parts:
        data = part if isinstance(part, bytes) else part.encode("utf-8", "surrogateescape")
        h.update(len(data).to_bytes(8, "big"))
        h.update(data)
    return h.hexdigest()


FRESH, STALE, EXPIRED = "fresh", "stale", "expired"


class Entry:
    """One cached answer: the body to print and when it was fetched and expires (Unix time).

    Its state is the one question callers ask: :data:`FRESH` (served as it is until
    :attr:`fresh_until`), :data:`STALE` (still valid but due for refresh: the next run fetches)
    or :data:`EXPIRED`."""

    __slots__ = ("body", "expires", "fetched")

    def __init__(self, body: bytes, fetched: float, expires: float):
        self.body = body
        self.fetched = fetched
        self.expires = expires

    @property
    def fresh_until(self) -> float:
        return self.expires - refresh_margin(self.expires - self.fetched)

    def is_fresh(self, now: float) -> bool:
        return self.fresh_until > now

    def state(self, now: float) -> str:
        if self.is_fresh(now):
            return FRESH
        return STALE if self.expires > now else EXPIRED


def directory_problem(directory: str) -> str | None:
    """Why a cache directory must not be trusted, or None. Missing is no problem."""
    try:
        st = os.stat(directory)
    except FileNotFoundError:
        return None
    except OSError as e:
        return e.strerror or str(e)
    if st.st_mode & 0o170000 != 0o040000:
        return "not a directory"
    if hasattr(os, "geteuid") and st.st_uid != os.geteuid():
        return f"owned by uid {st.st_uid}, not by you"
    if st.st_mode & 0o022:
        return f"writable by group or others (mode {st.st_mode & 0o777:o}); chmod 700 it"
    return None


class Slot:
    """The place of one connection identity in the cache: its entry and its lock."""

    def __init__(self, directory: str, key: str, conn_id: str):
        self.directory = directory
        self.key = key
        self.conn_id = conn_id
        safe = "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_" for c in conn_id)
        self.path = os.path.join(directory, f"{safe[:40]}--{key[:32]}.entry")
        self.lock_path = self.path[: -len(".entry")] + ".lock"

    # -- reading: runs on every cache hit ------------------------------------------------

    def directory_problem(self) -> str | None:
        """Why the directory must not be trusted, or None. Missing is no problem."""
        return directory_problem(self.directory)

    def read(self, quiet: bool = False) -> Entry | None:
        """The stored entry, or None: missing, or unusable (with a warning unless ``quiet``)."""
        entry, problem = self.inspect()
        if problem and not quiet:
            if problem.startswith("directory: "):
                _warn_once(self.directory, f"not using cache directory {self.directory}: {problem[11:]}")
            else:
                _warn_once(self.path, f"ignoring cache entry {self.path}: {problem}; it will be replaced")
        return entry

    def inspect(self) -> tuple[Entry | None, str | None]:
        """The stored entry and, when there is one that cannot be used, why not."""
        problem = self.directory_problem()
        if problem:
            return None, "directory: " + problem
        try:
            # O_NONBLOCK: a FIFO planted in our place must not block the open (no effect on files)
            fd = os.open(self.path, os.O_RDONLY | _O_NOFOLLOW | _O_CLOEXEC | _O_NONBLOCK)
        except FileNotFoundError:
            return None, None
        except OSError as e:  # ELOOP: a symlink planted in our place
            return None, e.strerror or str(e)
        try:
            st = os.fstat(fd)
            if st.st_mode & 0o170000 != 0o100000:
                return None, "not a regular file"
            if hasattr(os, "geteuid") and st.st_uid != os.geteuid():
                return None, f"owned by uid {st.st_uid}, not by you"
            if st.st_mode & 0o022:
                return None, "writable by group or others"
            data = _read_all(fd, MAX_ENTRY_BYTES + 1)
        finally:
            os.close(fd)
        entry = self._parse(data)
        if entry is None:
            return None, "corrupt or from another connection"
        return entry, None

    def _parse(self, data: bytes) -> Entry | None:
        header, _, body = data.partition(b"\n")
        fields = header.split(b" ")
        if len(fields) != 7 or fields[0] != FORMAT or fields[1] != VERSION:
            return None
        if fields[2] != self.key.encode() or len(data) > MAX_ENTRY_BYTES or not body:
            return None
        if fields[6] != _digest(fields[:6], body) or not _looks_like_output(body):
            return None
        try:
            return Entry(body, float(fields[3]), float(fields[4]))
        except ValueError:
            return None

    # -- writing: a cache miss only ------------------------------------------------------

    def store(self, body: bytes, fetched: float, expires: float) -> None:
        """Write the entry atomically; on failure warn and carry on (the caller still prints)."""
        try:
            self._ensure_directory()
            fields = [FORMAT, VERSION, self.key.encode(), b"%.3f" % fetched, b"%.3f" % expires,
                      self.conn_id.encode("utf-8", "surrogateescape").hex().encode()]
            header = b" ".join([*fields, _digest(fields, body)])
            _atomic_write(self.path, header + b"\n" + body)
        except OSError as e:
            _warn_once(self.directory, f"cannot write cache entry {self.path}: {e.strerror or e}; "
                       "credentials will be fetched again on every run until this is fixed")
            return
        self._remove_stale_temporaries()

    def _remove_stale_temporaries(self, older_than: float = 60.0) -> None:
        """Temporary files of this entry left by a process killed between write and rename.

        They are never read; this only keeps them from piling up. A minute's age tells them
        from a write in progress."""
        prefix = os.path.basename(self.path) + "."
        now = time.time()
        try:
            with os.scandir(self.directory) as entries:
                for item in entries:
                    if (item.name.startswith(prefix) and item.name.endswith(".tmp")
                            and item.is_file(follow_symlinks=False)
                            and now - item.stat(follow_symlinks=False).st_mtime > older_than):
                        os.unlink(item.path)
        except OSError:
            pass  # best effort: a leftover is harmless

    def _ensure_directory(self) -> None:
        if not os.path.isdir(self.directory):
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
            os.chmod(self.directory, 0o700)
        problem = self.directory_problem()
        if problem:
            raise OSError(0, f"directory {problem}")

    def lock(self, timeout: float = LOCK_TIMEOUT) -> EntryLock:
        return EntryLock(self, timeout)

    def remove(self) -> bool:
        try:
            os.unlink(self.path)
            return True
        except FileNotFoundError:
            return False


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
        self.slot._ensure_directory()
        fd = os.open(self.slot.lock_path, os.O_RDWR | os.O_CREAT | _O_NOFOLLOW | _O_CLOEXEC | _O_NONBLOCK, 0o600)
        if os.fstat(fd).st_mode & 0o170000 != 0o100000:
            os.close(fd)
            raise OSError(0, "the lock file is not a regular file")
        return fd

    def _unavailable(self, error: OSError) -> str:
        _warn_once(self.slot.directory, f"cannot lock {self.slot.lock_path}: {error.strerror or error}; "
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
    """
    started = time.time()

    def usable(entry: Entry | None) -> TypeGuard[Entry]:
        now = time.time()
        return entry is not None and entry.expires > now and (
            entry.fetched >= started or (not refresh and entry.is_fresh(now)))

    lock = slot.lock(lock_timeout)
    try:
        while True:
            state = lock.acquire()
            entry = slot.read()
            if usable(entry):
                return entry.body
            if state == RELEASED:
                continue  # the holder failed or its result is no use: our turn to try
            credentials = fetch()
            body = credentials.to_process_json().encode()
            if credentials.expires_at is not None:  # long-term keys are never cached
                slot.store(body, fetched=time.time(), expires=credentials.expires_at)
            return body
    finally:
        lock.close()


class Stored:
    """An entry file found in the cache directory (``credproc cache list``): the key and
    connection id its header claims, and the entry when it reads back as the main job would
    read it (None: invalid, or not where that key and id would put it)."""

    __slots__ = ("conn_id", "entry", "key", "path")

    def __init__(self, path: str, key: str | None, conn_id: str | None, entry: Entry | None):
        self.path = path
        self.key = key
        self.conn_id = conn_id
        self.entry = entry


def scan(directory: str) -> list[Stored]:
    """Every ``*.entry`` file of ``directory``, sorted by name; OSError if it cannot be listed.

    Nothing is warned about: an unusable entry is returned with ``entry`` None."""
    names = sorted(name for name in os.listdir(directory) if name.endswith(".entry"))
    found = []
    for name in names:
        path = os.path.join(directory, name)
        key, conn_id = _claimed(path)
        entry = None
        if key is not None and conn_id is not None:
            slot = Slot(directory, key, conn_id)
            if slot.path == path:
                entry = slot.read(quiet=True)
        found.append(Stored(path, key, conn_id, entry))
    return found


def _claimed(path: str) -> tuple[str | None, str | None]:
    """The key and connection id an entry's header claims, or (None, None)."""
    try:
        fd = os.open(path, os.O_RDONLY | _O_NOFOLLOW | _O_CLOEXEC | _O_NONBLOCK)
    except OSError:
        return None, None
    try:
        fields = os.read(fd, 1024).split(b"\n", 1)[0].split(b" ")
    except OSError:
        return None, None
    finally:
        os.close(fd)
    if len(fields) != 7 or fields[0] != FORMAT:
        return None, None
    try:
        return fields[2].decode("ascii"), bytes.fromhex(fields[5].decode("ascii")).decode("utf-8", "surrogateescape")
    except (ValueError, UnicodeDecodeError):
        return None, None


def _looks_like_output(body: bytes) -> bool:
    """The shape of what ``Credentials.to_process_json`` writes: one flat JSON object on one
    line that starts with Version 1 and has a SecretAccessKey. Cheap to check without
    ``json``, and enough to refuse an entry forged with a valid digest (the digest is a
    checksum, not a signature)."""
    if not (body.startswith(b'{"Version": 1, "AccessKeyId": "') and body.endswith(b"}")) or b"\n" in body:
        return False
    # Remove escaped characters, and the quotes left split the text into outside, inside,
    # outside... a string. Strings may hold anything (a custom factory's key may have braces);
    # outside them there is exactly one pair of braces and no array.
    pieces = body.replace(b"\\\\", b"").replace(b'\\"', b"").split(b'"')
    outside = b"".join(pieces[::2])
    return (len(pieces) % 2 == 1 and outside.count(b"{") == 1 and outside.count(b"}") == 1
            and b"[" not in outside and b'"SecretAccessKey": "' in body)


def _digest(fields: list[bytes], body: bytes) -> bytes:
    """Checks the header's fields and the body together: a flipped digit in the expiry is
    as much a corrupt entry as a flipped byte in the secret."""
    return sha256(b" ".join(fields) + b"\n" + body).hexdigest()[:32].encode()


def _read_all(fd: int, limit: int) -> bytes:
    chunks = []
    size = 0
    while size < limit:
        chunk = os.read(fd, limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _atomic_write(path: str, data: bytes) -> None:
    directory = os.path.dirname(path)
    tmp = f"{path}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_CLOEXEC, 0o600)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:  # noqa: SIM105 - this module is a cache hit's: no contextlib import (suppress) for it
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable
        dfd = os.open(directory, os.O_RDONLY | _O_CLOEXEC)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def _warn_once(what: str, message: str) -> None:
    if what not in _warned:
        _warned.add(what)
        warn(message)

