"""The main job past the fast path: serve a connection's credentials from the cache, or fetch
them under the entry's lock, as the bytes to print.

Everything about *which* connection and *what* it means is the :class:`Resolution`'s; this
module adds only the lock, the stdout shield around user code, and the lock timeout.
"""

from __future__ import annotations

import os
import sys
import time

from credproc import recursion, settings
from credproc.resolution import Resolution

TYPE_CHECKING = False  # waiters of a stampede import this module: typing would cost them
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import IO, Any

    from credproc.protocol import Credentials

LOCK_TIMEOUT_VARIABLE = "CREDPROC_LOCK_TIMEOUT"


def credentials_for(resolution: Resolution, *, refresh: bool = False, use_cache: bool = True,
                    debug: bool = False) -> bytes:
    """The credential_process JSON for the resolution's connection, as bytes ready for stdout."""
    recursion.check(resolution.conn_id, resolution.environ)
    if use_cache and not refresh:
        from credproc import background

        entry, now = resolution.entry(), time.time()
        if entry is not None and background.servable(entry, now, resolution.environ):
            background.after_serving(resolution, entry, now, refresh_in_background)
            return entry.body

    # A miss. The process that gets the lock fetches; the others wait for it and find the
    # entry it wrote. Until then nothing heavy is imported: in a stampede the waiters never
    # parse the definition nor load boto3. (Errors in the definition are found under the
    # lock, which is released as the error propagates.)
    if resolution.undefined:
        raise resolution.not_defined()  # no need to lock to know that

    if not use_cache:
        return _fetcher(resolution, debug)().to_process_json().encode()
    from credproc.cache.lock import get_or_fetch, person_timeout

    return get_or_fetch(resolution.bucket, lambda: resolution.recorded_slot(reread=True), resolution.place,
                        _fetcher(resolution, debug), known=resolution.entry(), refresh=refresh,
                        lock_timeout=lock_timeout(resolution.environ),
                        person_timeout=person_timeout(resolution.environ))


def refresh_in_background(resolution: Resolution) -> None:
    """The detached refresher's work (``credproc.background``), the lock already held: fetch
    and store, or record the failure in the entry. Nothing is printed."""
    from credproc.cache.lock import attempt

    slot = resolution.recorded_slot(reread=True)
    entry = slot.read(quiet=True) if slot is not None else None
    try:
        attempt(slot, entry, resolution.place, _fetcher(resolution, False), background=True)
    except Exception:  # recorded in the entry by attempt(); nobody to tell
        return


def _fetcher(resolution: Resolution, debug: bool) -> Callable[[], Credentials]:
    def fetch() -> Credentials:
        from credproc.log import setup_logging

        setup_logging(debug)  # for the factory's log; logging imports re, so only here
        with StdoutToStderr():  # a session factory's print() must not corrupt the JSON
            return resolution.credentials()

    return fetch


def lock_timeout(environ: Mapping[str, str]) -> float:
    """``CREDPROC_LOCK_TIMEOUT`` in seconds, else the cache's default."""
    from credproc.cache.lock import LOCK_TIMEOUT

    return settings.seconds(environ, LOCK_TIMEOUT_VARIABLE, LOCK_TIMEOUT, maximum=3600)


class StdoutToStderr:
    """While a connection is resolved and its session factory runs, stdout goes to stderr.

    stdout carries the credentials JSON and nothing else, but a user's factory may print(),
    log to a handler on ``sys.stdout`` or start a program that writes to file descriptor 1.
    Both ``sys.stdout`` and descriptor 1 point at stderr meanwhile; the JSON is written after.
    """

    def __enter__(self) -> StdoutToStderr:
        self.stream = sys.stdout
        _flush(self.stream)
        try:
            self.saved_fd: int | None = os.dup(1)
            os.dup2(2, 1)
        except OSError:  # no descriptor 1 or 2: nothing to protect at that level
            self.saved_fd = None
        sys.stdout = sys.stderr
        return self

    def __exit__(self, *exc_info: object) -> None:
        # What was buffered for the real stdout meanwhile still belongs on stderr.
        for stream in (sys.stdout, self.stream, sys.__stdout__):
            _flush(stream)
        sys.stdout = self.stream
        if self.saved_fd is not None:
            os.dup2(self.saved_fd, 1)
            os.close(self.saved_fd)


def _flush(stream: IO[Any] | Any) -> None:
    try:
        if stream is not None:
            stream.flush()
    except (OSError, ValueError):  # closed or broken: nothing to keep
        pass
