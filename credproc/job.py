"""The main job on its full path: find the connection, give it meaning, and serve its
credentials from the cache or fetch them under the entry's lock."""

from __future__ import annotations

import os
import time

from credproc import cache, connection, recursion, sources
from credproc.errors import ConfigError


def credentials_for(conn_id: str, *, profile: str | None = None, session_factory: str | None = None,
                    refresh: bool = False, use_cache: bool = True) -> bytes:
    """The credential_process JSON for ``conn_id``, as bytes ready for stdout."""
    environ = os.environ
    recursion.check(conn_id, environ)
    definition = sources.locate(conn_id, environ)
    if session_factory is None:
        session_factory = environ.get("CREDPROC_SESSION_FACTORY")
    slot = cache.Slot(cache.cache_dir(environ), cache.identity(definition, session_factory, environ), conn_id)
    if use_cache and not refresh:
        entry = slot.read()
        if entry is not None and entry.is_fresh(time.time()):
            return entry.body

    # A miss: everything below may import boto3. Configuration errors surface here, before
    # any lock is taken or any network call made.
    conn = load(definition)
    factory = make_factory(conn, profile=profile or environ.get("AWS_PROFILE"))
    recursion.enter(conn_id)
    if not use_cache:
        return factory.credentials().to_process_json().encode()
    return cache.get_or_fetch(slot, factory.credentials, refresh=refresh)


def load(definition: sources.Definition) -> connection.AwsConnection:
    """The resolved connection, or a ConfigError naming every place that was searched."""
    raw = sources.parse(definition)
    if raw is not None:
        return connection.resolve(raw)
    conn_id = definition.conn_id
    if conn_id == sources.DEFAULT_CONN_ID:
        return connection.empty(conn_id, "not defined: boto3's default chain")
    if definition.kind == "file":
        in_file = f"no [connections.{conn_id}] table in {definition.where}"
    else:
        in_file = f"no config file {definition.where}"
    raise ConfigError(
        f"connection {conn_id!r} is not defined: no environment variable "
        f"{sources.credproc_variable(conn_id)} or {sources.airflow_variable(conn_id)}, and {in_file}"
    )


def make_factory(conn: connection.AwsConnection, *, profile: str | None):
    from botocore.exceptions import BotoCoreError

    from credproc.clientconfig import make_config
    from credproc.factory import BaseSessionFactory, translate

    try:
        config = make_config(conn, profile, os.environ)
    except BotoCoreError as e:
        raise translate(e, conn) from e
    return BaseSessionFactory(conn, config=config)
