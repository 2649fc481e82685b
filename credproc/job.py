"""The main job on its full path: find the connection, give it meaning, and serve its
credentials from the cache or fetch them under the entry's lock."""

from __future__ import annotations

import os
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
    # The same identity as the cache-hit fast path in cli.py computes.
    identity_factory = session_factory or environ.get("CREDPROC_SESSION_FACTORY")
    slot = cache.Slot(cache.cache_dir(environ), cache.identity(definition, identity_factory, environ), conn_id)
    if use_cache and not refresh:
        entry = slot.read()
        if entry is not None and entry.is_fresh(time.time()):
            return entry.body

    # A miss. The process that gets the lock fetches; the others wait for it and find the
    # entry it wrote. Until then nothing heavy is imported: in a stampede
    # the waiters never parse the definition nor load boto3. (Errors in the definition are found under the
    # lock, which is released as the error propagates.)
    if definition.kind == "none" and conn_id != sources.DEFAULT_CONN_ID:
        raise not_defined(definition)  # no need to lock to know that
    profile = profile or environ.get("AWS_PROFILE")

    def fetch():
        from credproc.log import setup_logging

        setup_logging(debug)  # for the factory's log; logging imports re, so only here
        raw = sources.parse(definition)
        factory_spec = choose_factory(session_factory, raw, definition, environ)
        conn = load(definition, raw, custom_factory=factory_spec is not None)
        recursion.enter(conn_id)
        return make_factory(conn, profile=profile, factory_spec=factory_spec).credentials()

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
    ``session_factory``. None means credproc's own ``BaseSessionFactory``."""
    file_settings = raw.file_settings if raw is not None else sources.file_settings(definition)
    for candidate in (flag, raw.extra.get("session_factory") if raw else None,
                      environ.get("CREDPROC_SESSION_FACTORY"), file_settings.get("session_factory")):
        if candidate:
            if not isinstance(candidate, str):
                raise ConfigError(f"session_factory must be a string such as package.module.ClassName, "
                                  f"not {type(candidate).__name__}")
            return candidate
    return None


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


def make_factory(conn, *, profile: str | None, factory_spec: str | None = None):
    from botocore.exceptions import BotoCoreError

    from credproc.clientconfig import make_config
    from credproc.factory import BaseSessionFactory, load_factory, translate

    factory_class = load_factory(factory_spec) if factory_spec else BaseSessionFactory
    try:
        config = make_config(conn, profile, os.environ)
    except BotoCoreError as e:
        raise translate(e, conn) from e
    return factory_class(conn, config=config)
