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

This package's ``__init__`` is what a hit runs: the entry format, its state, reading. A miss
loads the rest: ``store`` (atomic writes; ``scan`` for ``credproc cache list``) and ``lock``
(the entry's lock, and ``get_or_fetch``, the locked refresh).

A broken entry (truncated, garbage, another key, foreign owner, writable by others, a
symlink) is a miss with a warning, and is replaced; a cache that cannot be written still
lets the run print its credentials.
"""

from __future__ import annotations

import os

try:  # the builtin module: hashlib would first load OpenSSL, ~7 ms on a cache hit
    from _sha256 import sha256  # CPython <= 3.11
except ImportError:  # pragma: no cover - depends on the interpreter
    try:
        from _sha2 import sha256  # CPython >= 3.12
    except ImportError:
        from hashlib import sha256

TYPE_CHECKING = False  # typing and collections cost a cache hit milliseconds
if TYPE_CHECKING:
    from collections.abc import Mapping

    from credproc.sources import Definition

FORMAT = b"credproc-cache"
VERSION = b"1"
MAX_ENTRY_BYTES = 64_000  # Java's SDK refuses more than that on stdout anyway

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

O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
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
                warn_once(self.directory, f"not using cache directory {self.directory}: {problem[11:]}")
            else:
                warn_once(self.path, f"ignoring cache entry {self.path}: {problem}; it will be replaced")
        return entry

    def inspect(self) -> tuple[Entry | None, str | None]:
        """The stored entry and, when there is one that cannot be used, why not."""
        problem = self.directory_problem()
        if problem:
            return None, "directory: " + problem
        try:
            # O_NONBLOCK: a FIFO planted in our place must not block the open (no effect on files)
            fd = os.open(self.path, os.O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
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
        if fields[6] != digest(fields[:6], body) or not _looks_like_output(body):
            return None
        try:
            return Entry(body, float(fields[3]), float(fields[4]))
        except ValueError:
            return None

    def remove(self) -> bool:
        try:
            os.unlink(self.path)
            return True
        except FileNotFoundError:
            return False


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


def digest(fields: list[bytes], body: bytes) -> bytes:
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


def warn_once(what: str, message: str) -> None:
    """Warn once per run about one path: a directory problem is said once, not per entry."""
    if what not in _warned:
        _warned.add(what)
        from credproc.log import warn  # a hit that has nothing to say never loads it

        warn(message)

