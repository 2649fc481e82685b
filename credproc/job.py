"""The main job on its full path: find the connection, give it meaning, and serve its
credentials from the cache or fetch them under the entry's lock."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping

from credproc import cache, recursion, sources
from credproc.errors import ConfigError


def credentials_for(conn_id: str, *, profile: str | None = None, session_factory: str | None = None,
                    refresh: bool = False, use_cache: bool = True, debug: bool = False) -> bytes:
    """The credential_process JSON for ``conn_id``, as bytes ready for stdout.

    ``session_factory`` is the ``--session-factory`` flag; see :func:`choose_factory`.
    """
    environ = os.environ
    recursion.check(conn_id, environ)
    definition = sources.locate(conn_id, environ)
    # The same identity as the cache-hit fast path in cli.py computes: the flag, if any (the
    # variable CREDPROC_SESSION_FACTORY and the definition's own keys are hashed anyway).
    slot = cache.Slot(cache.cache_dir(environ), cache.identity(definition, session_factory, environ), conn_id)
    if use_cache and not refresh:
        entry = slot.read()
        if entry is not None and entry.is_fresh(time.time()):
            return entry.body

    # A miss. The process that gets the lock fetches; the others wait for it and find the
    # entry it wrote. Until then nothing heavy is imported: in a stampede the waiters never
    # parse the definition nor load boto3. (Errors in the definition are found under the
    # lock, which is released as the error propagates.)
    if definition.kind == "none" and conn_id != sources.DEFAULT_CONN_ID:
        raise not_defined(definition)  # no need to lock to know that
    profile = profile or environ.get("AWS_PROFILE")

    def fetch():
        from credproc.log import setup_logging

        setup_logging(debug)  # for the factory's log; logging imports re, so only here
        with StdoutToStderr():  # a session factory's print() must not corrupt the JSON
            raw = sources.parse(definition)
            factory_spec, named_by = factory_choice(session_factory, raw, definition, environ)
            if raw is not None and factory_spec is None:
                # A custom factory asks for its own secrets (BaseSessionFactory.secret); its
                # `login` may well be a user name, not half a key pair.
                from credproc import keyring_store  # light; imports keyring only for a half key pair

                keyring_store.fill(raw)
            conn = load(definition, raw, custom_factory=factory_spec is not None)
            recursion.enter(conn_id)
            return make_factory(conn, profile=profile, factory_spec=factory_spec,
                                named_by=named_by).credentials()

    if not use_cache:
        return fetch().to_process_json().encode()
    return cache.get_or_fetch(slot, fetch, refresh=refresh, lock_timeout=lock_timeout(environ))


def lock_timeout(environ: Mapping[str, str]) -> float:
    """``CREDPROC_LOCK_TIMEOUT`` in seconds, else the cache's default."""
    value = environ.get("CREDPROC_LOCK_TIMEOUT")
    if not value:
        return cache.LOCK_TIMEOUT
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds <= 3600:
        raise ConfigError(f"CREDPROC_LOCK_TIMEOUT is {value!r}, not a number of seconds from 0 to 3600")
    return seconds


def choose_factory(flag: str | None, raw: sources.RawConnection | None, definition: sources.Definition,
                   environ: Mapping[str, str]) -> str | None:
    """The session factory in use, highest first: ``--session-factory``, the connection's
    ``session_factory`` key, ``CREDPROC_SESSION_FACTORY``, the config file's top-level
    ``session_factory`` (which applies to the connections of that file). None means
    credproc's own ``BaseSessionFactory``."""
    return factory_choice(flag, raw, definition, environ)[0]


def factory_choice(flag: str | None, raw: sources.RawConnection | None, definition: sources.Definition,
                   environ: Mapping[str, str]) -> tuple[str | None, str]:
    """:func:`choose_factory`, and where the chosen name was given (for error messages)."""
    file_settings = raw.file_settings if raw is not None else sources.file_settings(definition)
    origin = raw.origin if raw is not None else definition.where
    candidates = (
        (flag, "--session-factory"),
        (raw.extra.get("session_factory") if raw else None, f"session_factory in {origin}"),
        (environ.get("CREDPROC_SESSION_FACTORY"), "CREDPROC_SESSION_FACTORY"),
        (file_settings.get("session_factory"), f"session_factory at the top of config file {definition.where}"),
    )
    for candidate, named_by in candidates:
        if candidate:
            if not isinstance(candidate, str):
                raise ConfigError(f"connection {definition.conn_id!r}: {named_by} must be a string such as "
                                  f"package.module.ClassName, not {type(candidate).__name__}")
            return candidate, named_by
    return None, ""


def load(definition: sources.Definition, raw: sources.RawConnection | None, *,
         custom_factory: bool = False):
    """The resolved connection, or a ConfigError naming every place that was searched."""
    from credproc import connection

    if raw is not None:
        return connection.resolve(raw, custom_factory=custom_factory)
    if definition.conn_id == sources.DEFAULT_CONN_ID:
        return connection.empty(definition.conn_id, "not defined: boto3's default chain")
    raise not_defined(definition)


def not_defined(definition: sources.Definition) -> ConfigError:
    conn_id = definition.conn_id
    if definition.kind == "file":
        in_file = f"no [connections.{conn_id}] table in {definition.where}"
    else:
        in_file = f"no config file {definition.where}"
    return ConfigError(
        f"connection {conn_id!r} is not defined: no environment variable "
        f"{sources.credproc_variable(conn_id)} or {sources.airflow_variable(conn_id)}, and {in_file}"
    )


def make_factory(conn, *, profile: str | None, factory_spec: str | None = None, named_by: str | None = None):
    from botocore.exceptions import BotoCoreError

    from credproc.clientconfig import make_config
    from credproc.factory import BaseSessionFactory, load_factory, translate

    factory_class = BaseSessionFactory
    if factory_spec:
        try:
            factory_class = load_factory(factory_spec, named_by=named_by)
        except ConfigError as e:
            raise ConfigError(f"connection {conn.conn_id!r}: {e}") from e
    try:
        config = make_config(conn, profile, os.environ)
    except BotoCoreError as e:
        raise translate(e, conn) from e
    return factory_class(conn, config=config)


class StdoutToStderr:
    """While a connection is resolved and its session factory runs, stdout goes to stderr.

    stdout carries the credentials JSON and nothing else, but a user's factory may print(),
    log to a handler on ``sys.stdout`` or start a program that writes to file descriptor 1.
    Both ``sys.stdout`` and descriptor 1 point at stderr meanwhile; the JSON is written after.
    """

    def __enter__(self) -> "StdoutToStderr":
        self.stream = sys.stdout
        _flush(self.stream)
        try:
            self.saved_fd: int | None = os.dup(1)
            os.dup2(2, 1)
        except OSError:  # no descriptor 1 or 2: nothing to protect at that level
            self.saved_fd = None
        sys.stdout = sys.stderr
        return self

    def __exit__(self, *exc_info) -> None:
        # What was buffered for the real stdout meanwhile still belongs on stderr.
        for stream in (sys.stdout, self.stream, sys.__stdout__):
            _flush(stream)
        sys.stdout = self.stream
        if self.saved_fd is not None:
            os.dup2(self.saved_fd, 1)
            os.close(self.saved_fd)


def _flush(stream) -> None:
    try:
        if stream is not None:
            stream.flush()
    except (OSError, ValueError):  # closed or broken: nothing to keep
        pass
