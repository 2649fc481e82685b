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

import os
import time

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
VERSION = b"2"
MAX_ENTRY_BYTES = 64_000  # Java's SDK refuses more than that on stdout anyway

# The refresh timeline of an entry fetched at F that expires at E, lifetime L = E - F:
#
#   F ........ due ................ floor ........ E
#     fresh       due: served, and         ending:
#                 refreshed in the         refreshed before
#                 background               anything is printed
#
# * floor = E - FLOOR. Nothing credproc prints has less than FLOOR (6 minutes) left. Past the
#   floor an entry is refreshed in the foreground, and a failure is an error (expired ones are
#   never printed). Why 6 (benchmarks/sdk_refresh_windows.py): JavaScript v3 and Ruby run the
#   process again once less than 5 minutes remain (Ruby on every call; Java v2's source says
#   5 too), Go only at expiry, so from 6 minutes up they keep what they get for a while. botocore runs it again
#   before every call below 15 minutes, whatever the floor (a hit each time); below 10 its
#   threads wait for each run instead of going on, a cost and never a failure: it raises only
#   when the process prints credentials already expired. credproc serves an entry below 10
#   minutes only while its refresh fails (where a higher floor would be an error instead) or
#   is in flight. A lower floor makes the due point later: fewer STS calls, a longer outage
#   survived.
# * due = F + min((L - FLOOR) / 2, DUE_CAP): halfway through the time the entry may be
#   served, and at most an hour after the fetch. From there a run prints the entry at once
#   and leaves the refresh to a detached process, so an outage that starts at the due point
#   goes unnoticed until the floor: 4.5 minutes for a 15-minute role, 27 minutes for a
#   one-hour role, 10 hours 54 minutes for a 12-hour role.
# * A refresh that fails is recorded in the entry; the next try waits for a backoff that
#   doubles from BACKOFF_FIRST to BACKOFF_MAX, and meanwhile the entry is served as it is.
FLOOR = 6 * 60
DUE_CAP = 60 * 60
BACKOFF_FIRST = 30
BACKOFF_MAX = 5 * 60

# Every variable of the environment that can change what a definition yields. A fetch
# records the ones its connection depends on (credproc.depends) and the entry is keyed on
# their values: a connection with its own keys, region and STS endpoint depends on none.
# Values are hashed, never stored.
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
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "CLOUDSDK_CONFIG",
    "GCE_METADATA_HOST",
    "GCE_METADATA_IP",
)

# The "connection id" of an MFA session's entry (credproc.methods.mfa): no connection id holds
# a NUL, so no connection's entry can be taken for one. Its files are _mfa_<device>--<key>.
MFA_LABEL = "\0mfa:"

O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_warned: set[str] = set()


def cache_dir(environ: "Mapping[str, str]") -> str:
    explicit = environ.get("CREDPROC_CACHE_DIR")
    if explicit:
        return explicit
    base = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "credproc")


def _hash(parts: list[bytes | str]) -> str:
    h = sha256()
    for part in parts:
        data = part if isinstance(part, bytes) else part.encode("utf-8", "surrogateescape")
        h.update(len(data).to_bytes(8, "big"))
        h.update(data)
    return h.hexdigest()


def identity(definition: "Definition", factory: str | None, environ: "Mapping[str, str]") -> str:
    """The key of a connection's bucket: a hash of its definition and its session factory.

    That is the definition's raw text and where it came from (so any edit is a new bucket,
    and a hit need not parse it), the ``--session-factory`` flag and ``CREDPROC_SESSION_FACTORY``
    (which pick the code that runs). Secrets in the definition go into the hash only; the
    hash cannot be turned back into them. The environment's other variables key the entries
    inside the bucket (:meth:`Bucket.slot`)."""
    parts: list[bytes | str] = [b"credproc-identity-2", definition.conn_id, definition.kind, definition.where,
                                definition.text, factory or "", environ.get("CREDPROC_SESSION_FACTORY", "")]
    airflow = definition.config.airflow if definition.config is not None and definition.kind == "file" else None
    if airflow is not None:  # the lookup's next file: an edit there may change what the id means
        parts += [b"airflow-connections-file", airflow.path, "1" if airflow.exists else "0", airflow.text,
                  airflow.read_error]
    return _hash(parts)


FRESH, DUE, ENDING, EXPIRED = "fresh", "due", "ending", "expired"


def backoff(failures: int) -> float:
    """Seconds between tries after ``failures`` failed refreshes in a row: 30, 60, 120, 240, 300..."""
    return float(min(BACKOFF_FIRST << min(max(failures, 1) - 1, 16), BACKOFF_MAX))


class Entry:
    """One cached answer: the body to print, when it was fetched and expires (Unix time),
    and the failed refreshes since (none, or when the first and the last failed, how many
    in a row, and why, in one line without secrets).

    Its state is the one question callers ask (see the timeline above): :data:`FRESH`,
    :data:`DUE`, :data:`ENDING` or :data:`EXPIRED`."""

    __slots__ = ("body", "expires", "failed_at", "failed_since", "failures", "fetched", "reason")

    def __init__(self, body: bytes, fetched: float, expires: float, failed_since: float = 0.0,
                 failed_at: float = 0.0, failures: int = 0, reason: str = ""):
        self.body = body
        self.fetched = fetched
        self.expires = expires
        self.failed_since = failed_since
        self.failed_at = failed_at
        self.failures = failures
        self.reason = reason

    @property
    def floor(self) -> float:
        """When the entry stops being printed without a refresh first."""
        return self.expires - FLOOR

    @property
    def fresh_until(self) -> float:
        """When it becomes due for refresh (never after the floor)."""
        return min(self.fetched + min((self.expires - self.fetched - FLOOR) / 2, DUE_CAP), self.floor)

    @property
    def retry_at(self) -> float:
        """When the next refresh may be tried after the failures recorded (0: at once)."""
        return self.failed_at + backoff(self.failures) if self.failures else 0.0

    def is_fresh(self, now: float) -> bool:
        return self.fresh_until > now

    def state(self, now: float) -> str:
        if self.fresh_until > now:
            return FRESH
        if self.floor > now:
            return DUE
        return ENDING if self.expires > now else EXPIRED


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


class Bucket:
    """All the entries of one definition: its lock, the record of the variables it depends
    on, and one entry per value of those variables (:meth:`slot`).

    The record (``<bucket>.vars``, one line) is written by the fetch that learns the
    variables from the parsed connection (``credproc.depends``); a hit reads it, one small
    read, so that it never parses the definition."""

    def __init__(self, directory: str, key: str, conn_id: str):
        self.directory = directory
        self.key = key
        self.conn_id = conn_id
        safe = "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_" for c in conn_id)
        self.prefix = os.path.join(directory, f"{safe[:40]}--")
        self.lock_path = f"{self.prefix}{key[:32]}.lock"
        self.variables_path = f"{self.prefix}{key[:32]}.vars"

    def directory_problem(self) -> str | None:
        """Why the directory must not be trusted, or None. Missing is no problem."""
        return directory_problem(self.directory)

    def variables(self) -> tuple[str, ...] | None:
        """The variables recorded by the last fetch, or None when there is no usable record."""
        data = _read_private(self.variables_path, 65536)  # a bound for a planted file, not for names
        if data is None:
            return None
        fields = data.rstrip(b"\n").split(b" ")
        if len(fields) != 5 or fields[0] != VARIABLES_FORMAT or fields[1] != VERSION or fields[2] != self.key.encode():
            return None
        if fields[4] != digest(fields[:4], b""):
            return None
        names = fields[3].decode("ascii", "replace")
        return () if names == "-" else tuple(names.split(","))

    def slot(self, environ: "Mapping[str, str]", variables: tuple[str, ...]) -> "Slot":
        """The entry for the values these variables have in ``environ``. The variables are a
        set: their order (a factory's ``cache_variables`` may be a Python set, ordered
        differently in every process) and repeats make no other entry."""
        parts: list[bytes | str] = [b"credproc-entry-2", self.key]
        parts += [f"{name}={environ.get(name, '')}" for name in sorted(set(variables))]
        return Slot(self, _hash(parts))


VARIABLES_FORMAT = b"credproc-vars"


class Slot:
    """The place of one entry: a bucket, and the values of the variables it depends on."""

    def __init__(self, bucket: Bucket, key: str):
        self.bucket = bucket
        self.key = key
        self.conn_id = bucket.conn_id
        self.directory = bucket.directory
        self.path = f"{bucket.prefix}{key[:32]}.entry"
        self.lock_path = bucket.lock_path

    # -- reading: runs on every cache hit ------------------------------------------------

    def directory_problem(self) -> str | None:
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
            data = _read_private(self.path, MAX_ENTRY_BYTES + 1, strict=True)
        except OSError as e:
            return None, e.strerror or str(e)
        if data is None:
            return None, None
        entry = self._parse(data)
        if entry is None:
            return None, "corrupt or from another connection"
        return entry, None

    def _parse(self, data: bytes) -> Entry | None:
        header, _, body = data.partition(b"\n")
        fields = header.split(b" ")
        if len(fields) != 11 or fields[0] != FORMAT or fields[1] != VERSION:
            return None
        if fields[2] != self.key.encode() or len(data) > MAX_ENTRY_BYTES or not body:
            return None
        if fields[10] != digest(fields[:10], body) or not _looks_like_output(body):
            return None
        try:
            entry = Entry(body, float(fields[3]), float(fields[4]))
            if fields[8] != b"0":
                entry.failed_since, entry.failed_at = float(fields[6]), float(fields[7])
                entry.failures = int(fields[8])
                if fields[9] != b"-":  # "-": an empty reason (store.write)
                    entry.reason = bytes.fromhex(fields[9].decode("ascii")).decode("utf-8", "replace")
        except ValueError:
            return None
        return entry

    def remove(self) -> bool:
        try:
            os.unlink(self.path)
            return True
        except FileNotFoundError:
            return False


def _read_private(path: str, limit: int, strict: bool = False) -> bytes | None:
    """The first ``limit`` bytes of a regular file that is ours and writable by us alone;
    None when it is missing. Otherwise None, or with ``strict`` an OSError saying why not."""
    try:
        # O_NONBLOCK: a FIFO planted in our place must not block the open (no effect on files)
        fd = os.open(path, os.O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError:  # ELOOP: a symlink planted in our place
        if strict:
            raise
        return None
    try:
        st = os.fstat(fd)
        if st.st_mode & 0o170000 != 0o100000:
            problem = "not a regular file"
        elif hasattr(os, "geteuid") and st.st_uid != os.geteuid():
            problem = f"owned by uid {st.st_uid}, not by you"
        elif st.st_mode & 0o022:
            problem = "writable by group or others"
        else:
            return _read_all(fd, limit)
    finally:
        os.close(fd)
    if strict:
        raise OSError(0, problem)
    return None


def open_lock(bucket: Bucket) -> int:
    """A descriptor on the bucket's lock file (created 0600 if missing); OSError if it
    cannot be opened or is not a regular file. Locking it is the caller's business."""
    fd = os.open(bucket.lock_path, os.O_RDWR | os.O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, 0o600)
    if os.fstat(fd).st_mode & 0o170000 != 0o100000:
        os.close(fd)
        raise OSError(0, "the lock file is not a regular file")
    return fd


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



def warn_stale(conn_id: str, entry: Entry) -> None:
    """One line when failing refreshes leave the cached credentials to be served: which
    connection, why (the recorded reason holds no secret), and until when."""
    now = time.time()
    left = int(entry.expires - now)
    since = "" if entry.failures < 2 else f", {entry.failures} tries since {_clock(entry.failed_since)}"
    retry = f"; next try after {_clock(entry.retry_at)}" if entry.retry_at > now else ""
    warn_once(f"stale {conn_id}", f"connection {conn_id!r}: refreshing its credentials failed ({entry.reason}{since}); "
              f"serving the cached ones, which expire at {_clock(entry.expires, True)} (in {left // 60}m"
              f"{left % 60:02d}s; served while more than {FLOOR // 60} minutes are left){retry}")


def _clock(when: float, date: bool = False) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ" if date else "%H:%M:%SZ", time.gmtime(when))
