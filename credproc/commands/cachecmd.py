"""``credproc cache list`` and ``credproc cache clear [ID]``.

An entry's header (see ``credproc.cache``, which alone reads it: ``cache.store.scan``) names its
key and its connection id, so every entry on disk can be listed, including those of other
environments (another AWS_PROFILE) or of older definitions, which ``credproc list`` does
not show. Each entry is validated as the main job would read it; nothing of the body is
printed.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from typing import Any

from credproc import cache, sources
from credproc.cache.lock import is_held
from credproc.cache.store import scan
from credproc.commands import _common
from credproc.commands._parser import add_command
from credproc.errors import ConfigError
from credproc.resolution import KEYRING_ASSUME, Resolution

EPILOG = """\
examples:
  credproc cache list
  credproc cache list --json
  credproc cache clear prod      remove the cached credentials of connection "prod"
  credproc cache clear           remove every cached entry

The cache directory is $CREDPROC_CACHE_DIR, else $XDG_CACHE_HOME/credproc, else
~/.cache/credproc. "current" marks the entry the main job would read now: the key also
covers the variables the connection depends on (AWS_PROFILE for one that uses boto3's
chain, AWS_ENDPOINT_URL_STS for one that names no STS endpoint, ...).
MFA sessions (credproc's MFA, one per access key and device) are listed as "mfa:DEVICE";
`cache clear ID` removes the connection's MFA session too, so the next run asks for a code.
States: fresh until T; due (the next run refreshes it in the background); refreshing;
serving stale since T because of a failed refresh (with the reason and the next try);
ending (less than 11 minutes left: refreshed before it is printed); expired; invalid.
Clearing is always safe: the next run fetches anew. Lock files are left in place.
"""


def add_parser(subparsers: Any, common: Any) -> None:
    # --debug belongs to the actions, not to the group
    parser = add_command(subparsers, None, "cache", help="list or clear cached credentials",
                         description="List or clear the entries of credproc's credential cache.",
                         epilog=EPILOG)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", parser_class=type(parser))
    actions.required = True
    listing = actions.add_parser("list", parents=[common], help="list the cached entries",
                                 description="List the entries of the cache: connection, state, expiry.",
                                 epilog=EPILOG, formatter_class=parser.formatter_class)
    listing.add_argument("--json", action="store_true", help="print a JSON array instead of a table")
    listing.set_defaults(run=run_list)
    clear = actions.add_parser("clear", parents=[common], help="remove cached entries",
                               description="Remove the cached entries of one connection, or all of them.",
                               epilog=EPILOG, formatter_class=parser.formatter_class)
    clear.add_argument("conn_id", metavar="ID", nargs="?", help="the connection id (default: every entry)")
    clear.set_defaults(run=run_clear)


def entries(environ: Mapping[str, str], conn_id: str | None = None) -> list[dict[str, Any]]:
    """Every entry of the cache directory (of ``conn_id`` only, if given), described."""
    directory = cache.cache_dir(environ)
    problem = cache.directory_problem(directory)
    if problem:
        raise ConfigError(f"cache directory {directory}: {problem}")
    try:
        stored = scan(directory)
    except FileNotFoundError:
        return []
    except OSError as e:
        raise ConfigError(f"cannot list cache directory {directory}: {e.strerror or e}") from None
    config = sources.read_config(environ)  # once for every entry's "current" check
    current: dict[str, tuple[str, bool]] = {}  # per id: the current entry's key, and whether it is refreshing
    rows = []
    for found in stored:
        if conn_id is not None and found.conn_id != conn_id:
            continue
        row: dict[str, Any] = {"id": found.conn_id, "kind": "connection", "path": found.path, "state": "invalid",
                               "fresh_until": None, "served_until": None, "expires": None, "failure": None,
                               "current": False}
        entry = found.entry
        if found.conn_id is not None and found.conn_id.startswith(cache.MFA_LABEL):
            # an MFA session: not a connection's, used until it expires, never refreshed ahead
            row.update(id=found.conn_id[1:], kind="mfa session")
            if entry is not None:
                row.update(state="valid" if entry.expires - time.time() > 60 else "expired",
                           expires=_common.iso(entry.expires))
        elif entry is not None and found.conn_id is not None:
            if found.conn_id not in current:
                resolved = Resolution(found.conn_id, environ=environ, config=config)
                slot = resolved.recorded_slot()
                current[found.conn_id] = (slot.key if slot is not None else "", is_held(resolved.bucket))
            key, refreshing = current[found.conn_id]
            row.update(_common.entry_state(entry, refreshing=refreshing and found.key == key),
                       current=found.key == key)
        rows.append(row)
    return rows


def run_list(options: Any) -> int:
    rows = entries(os.environ)
    if options.json:
        _common.out(json.dumps(rows, indent=2))
        return 0
    if not rows:
        _common.out(f"no cached credentials in {cache.cache_dir(os.environ)}")
        return 0
    table = [("ID", "STATE", "EXPIRES", "CURRENT", "FILE")]
    for row in rows:
        if row["kind"] == "mfa session":
            state = f"MFA session, {row['state']}" if row["state"] != "invalid" else "invalid"
        else:
            state = _common.describe_cache(row) if row["state"] != "invalid" else "invalid"
        table.append((row["id"] or "?", state, row["expires"] or "-", "yes" if row["current"] else "no",
                      _common.tilde(row["path"])))
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]) - 1)]
    for line in table:
        _common.out("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=False)) + "  " + line[-1])
    return 0


def clear(environ: Mapping[str, str], conn_id: str | None = None) -> list[str]:
    """Remove the entries (of ``conn_id`` and its MFA session, or all); the paths removed."""
    removed = []
    rows = entries(environ, conn_id)
    if conn_id is not None:
        session = _mfa_session(conn_id, environ)
        rows += [row for row in entries(environ) if session is not None and row["path"] == session]
    for row in rows:
        try:
            os.unlink(row["path"])
            removed.append(row["path"])
        except FileNotFoundError:
            pass
        except OSError as e:
            raise ConfigError(f"cannot remove cache entry {row['path']}: {e.strerror or e}") from None
    return removed


def _mfa_session(conn_id: str, environ: Mapping[str, str]) -> str | None:
    """The path of the connection's MFA session entry, when it has one."""
    resolved = Resolution(conn_id, environ=environ)
    try:
        if resolved.raw() is None or not resolved.connection(KEYRING_ASSUME).mfa_serial:
            return None
        slot = _common.mfa_slot(resolved)  # loads botocore: only for a connection with a device
    except ConfigError:
        return None
    return slot.path if slot is not None else None


def run_clear(options: Any) -> int:
    conn_id = _common.check_id(options.conn_id) if options.conn_id is not None else None
    removed = clear(os.environ, conn_id)
    what = f"connection {conn_id!r}" if conn_id else "all connections"
    if removed:
        _common.out(f"removed {len(removed)} cache entr{'y' if len(removed) == 1 else 'ies'} of {what} "
                    f"from {cache.cache_dir(os.environ)}")
    else:
        _common.out(f"no cached credentials of {what} in {cache.cache_dir(os.environ)}")
    return 0
