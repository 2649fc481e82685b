"""``credproc list``: every connection credproc can see, one line each.

Connections come from four places (see ``sources``): ``CREDPROC_CONN_<ID>``,
``AIRFLOW_CONN_<ID>``, the config file's ``[connections.<id>]`` tables and the Airflow
connections file's ids. A variable does not say the exact id: ``CREDPROC_CONN_MY_CONN``
serves ``my-conn``, ``my.conn`` and ``my_conn`` alike. So the id shown for a variable is a
file's spelling when a file has one that maps to it (the config file's first), else the
variable's suffix in lower case - and the variable is always shown. Nothing secret is
printed, and the keyring is not asked.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from credproc import forms, sources
from credproc import resolution as resolving
from credproc.commands import _common
from credproc.commands._parser import add_command
from credproc.errors import ConfigError, CredprocError
from credproc.log import warn
from credproc.resolution import Resolution

EPILOG = """\
examples:
  credproc list
  credproc list --json | jq -r '.[] | select(.cache.state != "fresh") | .id'

columns: the connection id; where it is defined (the variable, or the config file and its
table); how it gets credentials (assume_role, static keys, default chain, ...); and the
state of its cache entry for the current environment: "fresh until T" (served as it is
until T); "due" (served, and the next run refreshes it in the background); "refreshing";
"serving stale since T because R" (refreshing failed: served with a warning until 11
minutes are left); "ending" (refreshed before it is printed); "expired" or "none". The
variables a connection depends on (AWS_PROFILE for one that uses boto3's chain, ...) are
part of the cache key, so an SDK running with another AWS_PROFILE may have entries of its
own (see `credproc cache list`).
"""


def add_parser(subparsers: Any, common: Any) -> None:
    parser = add_command(subparsers, common, "list", help="list the connections credproc can see",
                         description="List every connection credproc can see: its id, where it is defined, "
                                     "how it gets credentials, and its cache state.",
                         epilog=EPILOG)
    parser.add_argument("--json", action="store_true", help="print a JSON array instead of a table")
    parser.set_defaults(run=run)


def candidate_ids(environ: Mapping[str, str], config: sources.ConfigFile) -> list[str]:
    """The ids of every connection defined in the environment, the config file or the Airflow
    connections file."""
    file_ids = _file_ids(config) + _airflow_ids(config)
    by_variable: dict[str, str] = {}
    for conn_id in file_ids:  # the file spells the id exactly: prefer its spelling
        by_variable.setdefault(sources.credproc_variable(conn_id), conn_id)
        by_variable.setdefault(sources.airflow_variable(conn_id), conn_id)
    ids = set(file_ids)
    for variable in sorted(environ):
        for prefix in (sources.CREDPROC_PREFIX, sources.AIRFLOW_PREFIX):
            if not variable.startswith(prefix):
                continue
            conn_id = by_variable.get(variable) or variable[len(prefix):].lower()
            reads = (sources.credproc_variable(conn_id) if prefix == sources.CREDPROC_PREFIX
                     else sources.airflow_variable(conn_id))
            if not conn_id or reads != variable:
                warn(f"environment variable {variable} is never read: no connection id maps to it "
                     f"(credproc reads {prefix}<ID> with the id upper-cased)")
                continue
            ids.add(conn_id)
    return sorted(ids)


def _file_ids(config: sources.ConfigFile) -> list[str]:
    if not config.exists:
        return []
    try:
        return list(forms.config_tables(config)[1])
    except ConfigError as e:
        warn(str(e))
        return []


def _airflow_ids(config: sources.ConfigFile) -> list[str]:
    if config.airflow is None:
        return []
    from credproc import airflow_files

    try:
        return airflow_files.ids(config.airflow)
    except ConfigError as e:
        warn(str(e))
        return []


def describe(conn_id: str, environ: Mapping[str, str], config: sources.ConfigFile) -> dict[str, Any]:
    """One row: what ``list`` knows about ``conn_id`` without fetching anything."""
    resolved = Resolution(conn_id, environ=environ, config=config)
    definition = resolved.definition
    row: dict[str, Any] = {
        "id": conn_id,
        "defined_in": dict(zip(("kind", "where"), _common.source(definition), strict=True),
                           shown=_common.where(definition)),
        "also_defined_in": _common.other_places(resolved),
        "method": None, "keyring_fields": [], "warnings": 0, "error": None, "mfa": None,
    }
    with _common.quiet() as warnings:
        try:
            conn = resolved.connection(resolving.KEYRING_ASSUME)
            row["method"] = _common.describe_method(conn, resolved.factory_choice()[0])
            row["keyring_fields"] = resolved.keyring_fields
            row["mfa"] = _common.mfa_state(resolved, conn, chain=False)
        except CredprocError as e:
            row["error"] = _common.redact(str(e))
    row["warnings"] = len(warnings)
    row["cache"] = _common.cache_state(resolved)
    return row


def run(options: Any) -> int:
    environ = os.environ
    config = sources.read_config(environ)  # once, bounded: CREDPROC_CONFIG=/dev/zero must not hang
    ids = candidate_ids(environ, config)
    if sources.DEFAULT_CONN_ID not in ids:
        ids.insert(0, sources.DEFAULT_CONN_ID)  # always there: the empty connection
    rows = [describe(conn_id, environ, config) for conn_id in ids]
    if options.json:
        _common.out(json.dumps(rows, indent=2))
        return 0
    table = [("ID", "DEFINED IN", "METHOD", "CACHE")]
    notes = []
    for row in rows:
        method = row["method"] or "invalid (see credproc show)"
        if row["keyring_fields"]:
            method += " (secret in keyring)"
        cache = _common.describe_cache(row["cache"])
        if row["mfa"]:
            method += " + MFA"
            cache += f"; MFA {_common.describe_mfa(row['mfa'])}"
        table.append((row["id"], row["defined_in"]["shown"], method, cache))
        for place in row["also_defined_in"]:
            notes.append(f"note: {row['id']}: {place} is not used: {row['defined_in']['shown']} comes first")
        if row["warnings"]:
            notes.append(f"note: {row['id']}: {row['warnings']} warning(s), see credproc show {row['id']}")
    widths = [max(len(line[i]) for line in table) for i in range(3)]
    for line in table:
        _common.out("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=False)) + "  " + line[3])
    for note in notes:
        _common.out(note)
    return 0
