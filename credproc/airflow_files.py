"""Airflow's own connection files as a source: what Airflow's ``LocalFilesystemBackend``
reads (its ``connections_file_path``) and ``airflow connections export`` writes, so that a
team's existing file works unchanged (``$CREDPROC_AIRFLOW_CONNECTIONS_FILE``, last in the
lookup order of ``credproc.sources``).

The format is the file's extension's, as in Airflow:

* ``.json``: an object ``{conn_id: connection}``;
* ``.yaml`` / ``.yml``: the same as a YAML mapping, read with PyYAML's safe loader (the
  optional extra ``credproc[yaml]``, imported only here);
* ``.env``: ``conn_id=connection`` lines; empty lines and ``#`` comments are skipped, the id
  is everything before the first ``=``, exactly (Airflow strips nothing either).

A connection is a URI; or an object of Airflow ``Connection`` fields (``conn_type``,
``login``, ``password``, ``host``, ``port``, ``schema``, ``description``, ``extra`` as an
object or JSON text, or ``extra_dejson``, or ``uri`` instead of the others; a ``conn_id``,
if given, must be its key); or a list of one such (an empty list defines nothing, two are an
error). Beyond Airflow's backend, a string that starts with ``{`` is Airflow's JSON form, which
``export --file-format env --serialization-format json`` writes and Airflow itself cannot read
back.

An error names the file and the line (``.env``, or a syntax error) or the connection's key,
never a value. Only the entry looked up is checked beyond the file's syntax: a bad entry
breaks itself, not its neighbours (Airflow's backend refuses the whole file).

A miss only (and the commands): ``json`` and ``yaml`` are imported here, and this module
only by ``credproc.forms`` and the commands, inside the functions that need it.
"""

from __future__ import annotations

from typing import Any

from credproc.errors import ConfigError
from credproc.sources import AIRFLOW_FILE_VARIABLE, ConfigFile

FORMATS = {".json": "json", ".yaml": "yaml", ".yml": "yaml", ".env": "env"}
# The keys of an object in the file: Airflow's Connection() arguments, and extra_dejson.
OBJECT_KEYS = frozenset({"conn_id", "conn_type", "description", "host", "login", "password", "schema", "port",
                         "extra", "extra_dejson", "uri", "team_name"})
# With uri, Airflow refuses these beside it (description and the id may stay).
URI_EXCLUSIVE = ("conn_type", "host", "login", "password", "schema", "port", "extra", "extra_dejson")
# YAML aliases can make a 1 MiB file a tree of billions of nodes (every later walk of the
# extra would pay for each); no real connection comes near these.
MAX_NODES = 100_000
MAX_DEPTH = 64


class Entry:
    """One key of the file: its value as written, where it is, and why it cannot be used
    (``problem``: a ``.env`` id given twice), checked only when the id is looked up."""

    __slots__ = ("line", "problem", "value")

    def __init__(self, value: Any, line: int | None = None, problem: str = ""):
        self.value = value
        self.line = line
        self.problem = problem


def entries(file: ConfigFile) -> dict[str, Entry]:
    """The file's connections by id, parsed once (kept in ``file.parsed``); ConfigError when
    the file cannot be read or is not valid as a whole."""
    if file.parsed is None:
        file.parsed = ({}, _parse(file))
    return file.parsed[1]


def describe(file: ConfigFile) -> str:
    return f"Airflow connections file {file.path}"


def place(file: ConfigFile, conn_id: str) -> str:
    """Where ``conn_id`` is defined, for a person (``credproc list``, ``show``)."""
    return f"{file.path} [{conn_id}]"


def defines(file: ConfigFile, conn_id: str) -> bool:
    """Whether the file defines ``conn_id`` (False when the file is broken)."""
    try:
        entry = entries(file).get(conn_id)
    except ConfigError:
        return False
    return entry is not None and entry.value != []


def ids(file: ConfigFile) -> list[str]:
    """The ids the file defines; ConfigError when it is broken."""
    return [conn_id for conn_id, entry in entries(file).items() if entry.value != []]


def lookup(file: ConfigFile, conn_id: str) -> tuple[str, str | dict[str, Any]] | None:
    """``(origin, definition)`` of ``conn_id``, or None when the file does not define it.

    The definition is a string (a URI, or the JSON form) or an object of the fields and
    ``extra`` that ``credproc.forms`` reads as Airflow's JSON form does."""
    entry = entries(file).get(conn_id)
    if entry is None:
        return None
    origin = f"{describe(file)} " + (f"line {entry.line}" if entry.line else f"[{conn_id}]")
    if entry.problem:
        raise ConfigError(f"{origin}: {entry.problem}")
    value = entry.value
    if isinstance(value, list):
        if not value:
            return None  # Airflow's backend creates nothing for it
        if len(value) > 1:
            raise ConfigError(f"{origin}: {len(value)} connections under one id; Airflow takes exactly one")
        value = value[0]
    _check_size(value, origin)
    if isinstance(value, str):
        return origin, value
    if isinstance(value, dict):
        return origin, _object(value, conn_id, origin)
    raise ConfigError(f"{origin}: a connection is a URI or an object of its fields, not {_kind(value)}")


def _object(value: dict, conn_id: str, origin: str) -> str | dict[str, Any]:
    """An object of Connection fields, as Airflow's backend takes it, reduced to the fields
    and ``extra`` of Airflow's JSON form, or to its ``uri``."""
    unknown = sorted(str(key) for key in value if key not in OBJECT_KEYS)
    if unknown:
        raise ConfigError(f"{origin}: unknown connection field(s) {unknown} "
                          f"(Airflow's are {', '.join(sorted(OBJECT_KEYS))})")
    data = dict(value)
    given = data.pop("conn_id", None)
    if given is not None and given != conn_id:
        raise ConfigError(f"{origin}: its conn_id {given!r} is not its key {conn_id!r}")
    data.pop("team_name", None)  # Airflow's multi-team scope: credproc has one
    uri = data.pop("uri", None)
    if uri:
        mixed = [key for key in URI_EXCLUSIVE if data.get(key)]
        if mixed:
            raise ConfigError(f"{origin}: uri cannot be mixed with {', '.join(mixed)} (give one or the other)")
        if not isinstance(uri, str):
            raise ConfigError(f"{origin}: uri must be a string, not {_kind(uri)}")
        return uri
    if "extra_dejson" in data:
        if "extra" in data:
            raise ConfigError(f"{origin}: extra and extra_dejson cannot both be given")
        extra = data.pop("extra_dejson")
        if extra is not None and not isinstance(extra, dict):
            raise ConfigError(f"{origin}: extra_dejson must be an object, not {_kind(extra)}")
        data["extra"] = extra
    return data


def _check_size(value: Any, origin: str) -> None:
    """The value, walked without recursion: at most MAX_NODES nodes (an alias counts as many
    times as it is used) and MAX_DEPTH levels."""
    stack = [(value, 0)]
    seen = 0
    while stack:
        node, depth = stack.pop()
        seen += 1
        if seen > MAX_NODES or depth > MAX_DEPTH:
            raise ConfigError(f"{origin}: the connection is nested too deeply or too large "
                              f"(more than {MAX_DEPTH} levels or {MAX_NODES} values, aliases expanded)")
        if isinstance(node, dict):
            stack.extend((child, depth + 1) for child in node.values())
        elif isinstance(node, list):
            stack.extend((child, depth + 1) for child in node)


# -- the three formats -------------------------------------------------------------------


def _parse(file: ConfigFile) -> dict[str, Entry]:
    named = f"{describe(file)} (${AIRFLOW_FILE_VARIABLE})"  # for what the variable may have wrong
    if not file.exists:
        raise ConfigError(f"{named}: no such file")
    if file.read_error:
        raise ConfigError(f"cannot read {named}: {file.read_error}")
    import os

    extension = os.path.splitext(file.path)[1].lower()
    kind = FORMATS.get(extension)
    if kind is None:
        raise ConfigError(f"{named}: the name must end in .json, .yaml, .yml or .env, which says its format "
                          "(as for Airflow's LocalFilesystemBackend)")
    where = describe(file)
    if kind == "env":
        return _env_entries(file.text, where)
    if not file.text.strip():
        raise ConfigError(f"{where}: the file is empty")
    data = _json(file.text, where) if kind == "json" else _yaml(file.text, where)
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected an object {{conn_id: connection}}, found {_kind(data)}")
    return {key: Entry(value) for key, value in data.items() if isinstance(key, str)}


def _json(text: str, where: str) -> Any:
    import json

    try:
        return json.loads(text)
    except ValueError as e:  # the message names line and column; the text may hold a secret
        raise ConfigError(f"{where}: invalid JSON: {getattr(e, 'msg', 'cannot parse')} "
                          f"(line {getattr(e, 'lineno', '?')} column {getattr(e, 'colno', '?')})") from None
    except RecursionError:
        raise ConfigError(f"{where}: invalid JSON: nested too deeply") from None


def _yaml(text: str, where: str) -> Any:
    try:
        import yaml
    except ImportError:
        raise ConfigError(f"{where} is YAML: install credproc[yaml] (PyYAML) to read it") from None
    try:
        return yaml.safe_load(text)  # plain data only: no tag ever builds an object
    except yaml.MarkedYAMLError as e:
        # str(e) quotes the offending line, which may hold a secret: its position only
        mark = e.problem_mark or e.context_mark
        at = f" (line {mark.line + 1} column {mark.column + 1})" if mark is not None else ""
        raise ConfigError(f"{where}: invalid YAML: {e.problem or e.context or 'cannot parse'}{at}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{where}: invalid YAML: {type(e).__name__}") from None
    except RecursionError:
        raise ConfigError(f"{where}: invalid YAML: nested too deeply") from None


def _env_entries(text: str, where: str) -> dict[str, Entry]:
    """``conn_id=connection`` lines, as Airflow's backend reads them: a line without ``=``,
    with nothing before it or nothing after it is an error; an id given twice is an error
    for that id."""
    found: dict[str, Entry] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line or line.lstrip().startswith("#"):
            continue
        conn_id, equals, value = line.partition("=")
        if not equals:
            raise ConfigError(f"{where} line {number}: no '=': each line is CONN_ID=URI (or a # comment)")
        if not conn_id:
            raise ConfigError(f"{where} line {number}: nothing before '=': the connection id is missing")
        if not value:
            raise ConfigError(f"{where} line {number}: nothing after '=': the connection is missing")
        if conn_id in found:
            first = found[conn_id]
            lines = f"lines {first.line} and {number}"
            found[conn_id] = Entry(first.value, first.line, f"{conn_id!r} is defined twice ({lines}); "
                                                            "Airflow takes exactly one")
        else:
            found[conn_id] = Entry(value, number)
    return found


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number",
             float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)
