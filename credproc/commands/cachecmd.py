"""``credproc cache list`` and ``credproc cache clear [ID]``.

An entry's header (see ``credproc.cache``) names its key and its connection id, so every
entry on disk can be listed, including those of other environments (another AWS_PROFILE)
or of older definitions, which ``credproc list`` does not show. Each entry is validated by
reading it through ``cache.Slot``, as the main job would; nothing of the body is printed.
"""

from __future__ import annotations

import json
import os
import time

from credproc import cache, sources
from credproc.commands import _common, add_command
from credproc.errors import ConfigError

EPILOG = """\
examples:
  credproc cache list
  credproc cache list --json
  credproc cache clear prod      remove the cached credentials of connection "prod"
  credproc cache clear           remove every cached entry

The cache directory is $CREDPROC_CACHE_DIR, else $XDG_CACHE_HOME/credproc, else
~/.cache/credproc. "current" marks the entry the main job would read now: the key also
covers AWS_PROFILE and the other variables that change what a connection yields.
Clearing is always safe: the next run fetches anew. Lock files are left in place.
"""


def add_parser(subparsers, common) -> None:
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


def entries(environ, conn_id: str | None = None) -> list[dict]:
    """Every ``*.entry`` file of the cache directory (of ``conn_id`` only, if given)."""
    directory = cache.cache_dir(environ)
    problem = cache.Slot(directory, "0" * 64, "").directory_problem()
    if problem:
        raise ConfigError(f"cache directory {directory}: {problem}")
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return []
    except OSError as e:
        raise ConfigError(f"cannot list cache directory {directory}: {e.strerror or e}") from None
    found = []
    for name in names:
        if not name.endswith(".entry"):
            continue
        path = os.path.join(directory, name)
        key, entry_conn = _header(path)
        if conn_id is not None and entry_conn != conn_id:
            continue
        found.append(_describe(directory, path, key, entry_conn, environ))
    return found


def _header(path: str) -> tuple[str | None, str | None]:
    """The key and connection id an entry's header claims, or (None, None)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None, None
    try:
        first = os.read(fd, 1024).split(b"\n", 1)[0].split(b" ")
    finally:
        os.close(fd)
    if len(first) != 7 or first[0] != cache.FORMAT:
        return None, None
    try:
        return first[2].decode("ascii"), bytes.fromhex(first[5].decode("ascii")).decode("utf-8", "surrogateescape")
    except (ValueError, UnicodeDecodeError):
        return None, None


def _describe(directory: str, path: str, key: str | None, conn_id: str | None, environ) -> dict:
    row = {"id": conn_id, "path": path, "state": "invalid", "fresh_until": None, "expires": None, "current": False}
    if key is None or conn_id is None:
        return row
    slot = cache.Slot(directory, key, conn_id)
    if slot.path != path:
        return row
    with _common.quiet():  # an unusable entry is reported in the table, not as a warning
        entry = slot.read()
    if entry is None:
        return row
    now = time.time()
    row["state"] = "fresh" if entry.is_fresh(now) else "stale" if entry.expires > now else "expired"
    row["fresh_until"] = _common.iso(entry.expires - cache.refresh_margin(entry.expires - entry.fetched))
    row["expires"] = _common.iso(entry.expires)
    definition = sources.locate(conn_id, environ)
    row["current"] = key == _common.current_slot(definition, environ).key
    return row


def run_list(options) -> int:
    rows = entries(os.environ)
    if options.json:
        _common.out(json.dumps(rows, indent=2))
        return 0
    if not rows:
        _common.out(f"no cached credentials in {cache.cache_dir(os.environ)}")
        return 0
    table = [("ID", "STATE", "EXPIRES", "CURRENT", "FILE")]
    for row in rows:
        state = row["state"] + (f" until {row['fresh_until']}" if row["state"] == "fresh" else "")
        table.append((row["id"] or "?", state, row["expires"] or "-", "yes" if row["current"] else "no",
                      _common.tilde(row["path"])))
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]) - 1)]
    for line in table:
        _common.out("  ".join(cell.ljust(width) for cell, width in zip(line, widths)) + "  " + line[-1])
    return 0


def clear(environ, conn_id: str | None = None) -> list[str]:
    """Remove the entries (of ``conn_id``, or all); the paths removed."""
    removed = []
    for row in entries(environ, conn_id):
        try:
            os.unlink(row["path"])
            removed.append(row["path"])
        except FileNotFoundError:
            pass
        except OSError as e:
            raise ConfigError(f"cannot remove cache entry {row['path']}: {e.strerror or e}") from None
    return removed


def run_clear(options) -> int:
    conn_id = _common.check_id(options.conn_id) if options.conn_id is not None else None
    removed = clear(os.environ, conn_id)
    what = f"connection {conn_id!r}" if conn_id else "all connections"
    if removed:
        _common.out(f"removed {len(removed)} cache entr{'y' if len(removed) == 1 else 'ies'} of {what} "
                    f"from {cache.cache_dir(os.environ)}")
    else:
        _common.out(f"no cached credentials of {what} in {cache.cache_dir(os.environ)}")
    return 0
