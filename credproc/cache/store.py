"""Writing the cache: an entry stored atomically, and the entries on disk listed.

A miss only. Writes go to a temporary file (0600, ``O_EXCL|O_NOFOLLOW``), are fsynced and
renamed into place, so a reader never sees half an entry and never needs the lock.
"""

from __future__ import annotations

import os
import time

from credproc.cache import (
    FORMAT,
    MAX_ENTRY_BYTES,
    O_CLOEXEC,
    O_NOFOLLOW,
    O_NONBLOCK,
    VARIABLES_FORMAT,
    VERSION,
    Bucket,
    Entry,
    Slot,
    _read_all,
    digest,
    warn_once,
)


def write(slot: Slot, body: bytes, fetched: float, expires: float, failure: Entry | None = None) -> bool:
    """Write the entry atomically, with the failures recorded in ``failure`` if given; on
    failure warn and carry on (the caller still prints). True when written."""
    try:
        ensure_directory(slot)
        failed = [b"-", b"-", b"0", b"-"]
        if failure is not None and failure.failures:
            failed = [b"%.3f" % failure.failed_since, b"%.3f" % failure.failed_at, b"%d" % failure.failures,
                      failure.reason.encode("utf-8", "replace").hex().encode() or b"-"]
        fields = [FORMAT, VERSION, slot.key.encode(), b"%.3f" % fetched, b"%.3f" % expires,
                  slot.conn_id.encode("utf-8", "surrogateescape").hex().encode(), *failed]
        header = b" ".join([*fields, digest(fields, body)])
        _atomic_write(slot.path, header + b"\n" + body)
    except OSError as e:
        warn_once(slot.directory, f"cannot write cache entry {slot.path}: {e.strerror or e}; "
                  "credentials will be fetched again on every run until this is fixed")
        return False
    _remove_stale_temporaries(slot)
    return True


def record_failure(slot: Slot, entry: Entry, reason: str, now: float) -> Entry:
    """The entry again, with one more failed refresh (at ``now``, because of ``reason``)
    recorded: the backoff and ``credproc list`` read it. Returns the entry as recorded."""
    failed = Entry(entry.body, entry.fetched, entry.expires, failed_since=entry.failed_since or now,
                   failed_at=now, failures=entry.failures + 1, reason=reason)
    write(slot, entry.body, entry.fetched, entry.expires, failure=failed)
    return failed


def write_variables(bucket: Bucket, names: tuple[str, ...]) -> None:
    """Record the variables the bucket's entries depend on (best effort, like ``write``)."""
    for name in names:
        if not name or not all(c.isascii() and (c.isalnum() or c == "_") for c in name):
            raise ValueError(f"not a variable name: {name!r}")
    fields = [VARIABLES_FORMAT, VERSION, bucket.key.encode(), ",".join(names).encode() or b"-"]
    try:  # noqa: SIM105 - as in _atomic_write
        _atomic_write(bucket.variables_path, b" ".join([*fields, digest(fields, b"")]) + b"\n")
    except OSError:
        pass  # the entry write that follows says what is wrong with the directory


def _remove_stale_temporaries(slot: Slot, older_than: float = 60.0) -> None:
    """Temporary files of this connection's entries and records left by a process killed
    between write and rename.

    They are never read; this only keeps them from piling up. A minute's age tells them
    from a write in progress."""
    prefix = os.path.basename(slot.bucket.prefix)
    now = time.time()
    try:
        with os.scandir(slot.directory) as entries:
            for item in entries:
                if (item.name.startswith(prefix) and item.name.endswith(".tmp")
                        and item.is_file(follow_symlinks=False)
                        and now - item.stat(follow_symlinks=False).st_mtime > older_than):
                    os.unlink(item.path)
    except OSError:
        pass  # best effort: a leftover is harmless


def ensure_directory(slot: Slot | Bucket) -> None:
    """The cache directory, made 0700 if missing; OSError if it must not be trusted."""
    if not os.path.isdir(slot.directory):
        os.makedirs(slot.directory, mode=0o700, exist_ok=True)
        os.chmod(slot.directory, 0o700)
    problem = slot.directory_problem()
    if problem:
        raise OSError(0, f"directory {problem}")


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
            slot = Slot(Bucket(directory, "", conn_id), key)  # an entry's path needs no bucket key
            if slot.path == path:
                entry = slot.read(quiet=True)
        found.append(Stored(path, key, conn_id, entry))
    return found


def _claimed(path: str) -> tuple[str | None, str | None]:
    """The key and connection id an entry's header claims, or (None, None)."""
    try:
        fd = os.open(path, os.O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
    except OSError:
        return None, None
    try:
        # the whole header, however long: a failure's reason (hex) may take 3 kB of it
        fields = _read_all(fd, MAX_ENTRY_BYTES).split(b"\n", 1)[0].split(b" ")
    except OSError:
        return None, None
    finally:
        os.close(fd)
    # Version 1 (credproc before the refresh timeline) had 7 fields: such an entry is listed
    # as invalid under its connection, and cleared with it.
    if len(fields) not in (7, 11) or fields[0] != FORMAT:
        return None, None
    try:
        return fields[2].decode("ascii"), bytes.fromhex(fields[5].decode("ascii")).decode("utf-8", "surrogateescape")
    except (ValueError, UnicodeDecodeError):
        return None, None


def _atomic_write(path: str, data: bytes) -> None:
    directory = os.path.dirname(path)
    tmp = f"{path}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
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
        dfd = os.open(directory, os.O_RDONLY | O_CLOEXEC)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass
