"""Where a connection is defined, and how its text becomes fields.

Lookup order, first match wins:

1. ``CREDPROC_CONN_<ID>``: the id upper-cased, anything outside ``A-Z0-9_`` turned to ``_``;
2. ``AIRFLOW_CONN_<ID>``: the id upper-cased exactly as Airflow does, so existing Airflow
   definitions work unchanged;
3. the TOML config file (``$CREDPROC_CONFIG``, else ``$XDG_CONFIG_HOME/credproc/config.toml``,
   else ``~/.config/credproc/config.toml``), table ``[connections.<id>]``.

This module runs on a cache hit, so :func:`locate` only reads raw text: it never parses
TOML or JSON (``tomllib`` and ``json`` import ``re``, which alone costs most of Python's
start-up again). The cache keys its entries on that raw text; the parsers below run on a
miss only and import what they need when they are called.
"""

from __future__ import annotations

import os
import sys

# typing and collections cost milliseconds on a cache hit; annotations are strings anyway.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

DEFAULT_CONN_ID = "aws_default"
CREDPROC_PREFIX = "CREDPROC_CONN_"
AIRFLOW_PREFIX = "AIRFLOW_CONN_"

MAX_CONFIG_BYTES = 1 << 20

_ENV_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")

# Keys of a connection that are connection fields, not extras, in every form.
FIELD_KEYS = ("conn_type", "login", "password", "host", "port", "schema", "description")


class ConfigFile:
    """The config file's raw text, read once, with a bound: ``CREDPROC_CONFIG=/dev/zero``
    must not hang any command. ``exists`` is False when there is no file; ``read_error``
    says why an existing one cannot be used. :meth:`tables` parses it (a miss only)."""

    __slots__ = ("_parsed", "exists", "path", "read_error", "text")

    def __init__(self, path: str, exists: bool, text: str = "", read_error: str = ""):
        self.path = path
        self.exists = exists
        self.text = text
        self.read_error = read_error
        self._parsed: tuple[dict, dict] | None = None

    def parsed(self) -> tuple[dict, dict]:
        """Top-level settings and ``[connections.<id>]`` tables; ConfigError if unreadable or invalid."""
        if self._parsed is None:
            if self.read_error:
                from credproc.errors import ConfigError

                raise ConfigError(f"cannot read config file {self.path}: {self.read_error}")
            self._parsed = parse_toml(self.text, self.path) if self.exists else ({}, {})
        return self._parsed

    def tables(self) -> dict:
        return self.parsed()[1]

    def settings(self) -> dict:
        return self.parsed()[0]


class Definition:
    """The raw text that defines one connection, and where it was found.

    ``kind`` is ``"env"`` (``where`` is the variable), ``"file"`` (``where`` is the config
    file; the text is the whole file, which may or may not define the id) or ``"none"``
    (no variable and no readable file; ``where`` is the config path that was tried).
    ``config`` is the config file as read, whichever kind won.
    """

    __slots__ = ("config", "conn_id", "kind", "read_error", "text", "where")

    def __init__(self, conn_id: str, kind: str, where: str, text: str, read_error: str = "",
                 config: ConfigFile | None = None):
        self.conn_id = conn_id
        self.kind = kind
        self.where = where
        self.text = text
        self.read_error = read_error
        self.config = config


def credproc_variable(conn_id: str) -> str:
    return CREDPROC_PREFIX + "".join(c if c in _ENV_SAFE else "_" for c in conn_id.upper())


def airflow_variable(conn_id: str) -> str:
    return AIRFLOW_PREFIX + conn_id.upper()


def config_path(environ: Mapping[str, str]) -> str:
    explicit = environ.get("CREDPROC_CONFIG")
    if explicit:
        return explicit
    base = environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "credproc", "config.toml")


def read_config(environ: Mapping[str, str]) -> ConfigFile:
    """The config file, read at most once per run and never past ``MAX_CONFIG_BYTES``."""
    path = config_path(environ)
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        return ConfigFile(path, exists=False)
    except OSError as e:
        return ConfigFile(path, exists=True, read_error=e.strerror or str(e))
    if len(data) > MAX_CONFIG_BYTES:
        return ConfigFile(path, exists=True, read_error="larger than 1 MiB: not a credproc config file")
    try:
        return ConfigFile(path, exists=True, text=data.decode("utf-8"))
    except UnicodeDecodeError as e:
        return ConfigFile(path, exists=True, read_error=f"not UTF-8 text ({e.reason})")


def locate(conn_id: str, environ: Mapping[str, str], config: ConfigFile | None = None) -> Definition:
    """Find the text that defines ``conn_id``, without parsing it.

    ``config``: the config file already read (``credproc list`` reads it once for every
    connection); read here when not given and no variable defines the connection."""
    for variable in (credproc_variable(conn_id), airflow_variable(conn_id)):
        value = environ.get(variable)
        if value is not None:
            return Definition(conn_id, "env", variable, value, config=config)
    if config is None:
        config = read_config(environ)
    kind = "file" if config.exists else "none"
    return Definition(conn_id, kind, config.path, config.text, config.read_error, config)


def places(conn_id: str, environ: Mapping[str, str], config: ConfigFile) -> list[str]:
    """Every place that defines ``conn_id``, in lookup order (the first one is used)."""
    found = [variable for variable in (credproc_variable(conn_id), airflow_variable(conn_id))
             if variable in environ]
    if defines(config, conn_id):
        found.append(f"{config.path} [connections.{_toml_key(conn_id)}]")
    return found


def defines(config: ConfigFile, conn_id: str) -> bool:
    """Whether the config file has a ``[connections.<conn_id>]`` table (False if it is broken)."""
    from credproc.errors import ConfigError

    try:
        return conn_id in config.tables()
    except ConfigError:
        return False


# --------------------------------------------------------------------------------------
# Parsing: a cache miss only from here on.


class RawConnection:
    """A connection's fields as written, before any meaning is given to them."""

    def __init__(self, conn_id: str, origin: str, fields: dict, extra: dict, file_settings: dict):
        self.conn_id = conn_id
        self.origin = origin  # for messages: "environment variable X", "config file P [connections.id]"
        self.fields = fields  # conn_type, login, password, host, ... as given
        self.extra = extra
        self.file_settings = file_settings  # top-level settings of the config file (session_factory)


def parse(definition: Definition) -> RawConnection | None:
    """The connection's fields, or None when the definition does not define it at all."""
    from credproc.errors import ConfigError

    conn_id = definition.conn_id
    if definition.kind == "env":
        origin = f"environment variable {definition.where}"
        value = definition.text.strip()
        if not value:
            raise ConfigError(f"connection {conn_id!r}: {origin} is empty")
        if value.startswith("{"):
            fields, extra = parse_json(value, origin)
        else:
            fields, extra = parse_uri(value, origin)
        return RawConnection(conn_id, origin, fields, extra, {})
    if definition.kind == "file":
        config = definition.config or ConfigFile(definition.where, True, definition.text, definition.read_error)
        settings, tables = config.parsed()
        table = tables.get(conn_id)
        if table is None:
            return None
        origin = f"config file {definition.where} [connections.{_toml_key(conn_id)}]"
        fields, extra = split_table(table, origin)
        return RawConnection(conn_id, origin, fields, extra, settings)
    return None


def file_settings(definition: Definition) -> dict:
    """The config file's top-level settings (such as ``session_factory``), or {}."""
    from credproc.errors import ConfigError

    if definition.config is None or not definition.config.exists:
        return {}
    try:
        return definition.config.settings()
    except ConfigError:
        return {}


def parse_uri(value: str, origin: str) -> tuple[dict, dict]:
    """Airflow's URI form: ``aws://LOGIN:PASSWORD@HOST/?key=value&__extra__=<json>``.

    Login and password are percent-decoded with plain ``unquote`` (a ``+`` stays a ``+``);
    query values with ``parse_qsl`` (a ``+`` is a space), the last duplicate winning and blank
    values kept, as Airflow does. ``__extra__`` carries real JSON and replaces the query extras.
    """
    from urllib.parse import parse_qsl, unquote, urlsplit

    from credproc.errors import ConfigError

    if "://" not in value:
        raise ConfigError(f"{origin}: not a connection URI (expected aws://...) nor JSON (starting with '{{')")
    try:
        parts = urlsplit(value)
    except ValueError as e:  # e.g. "Invalid IPv6 URL" for an unbalanced '['
        raise ConfigError(f"{origin}: not a valid URI ({e})") from None
    if "@" not in parts.netloc and ":" in parts.netloc:
        raise ConfigError(
            f"{origin}: the URI has 'user:secret' without the '@' that ends it; "
            "write aws://ACCESS_KEY:SECRET_KEY@/?... (a '/' in the secret as %2F)"
        )
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(f"{origin}: the URI's port is not a number") from None
    fields: dict = {"conn_type": parts.scheme.replace("-", "_") or None}
    if parts.username is not None:
        fields["login"] = unquote(parts.username)
    if parts.password is not None:
        fields["password"] = unquote(parts.password)
    if parts.hostname:
        fields["host"] = unquote(parts.hostname)
    if port is not None:
        fields["port"] = port
    if parts.path.strip("/"):
        fields["schema"] = unquote(parts.path.lstrip("/"))
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    if "__extra__" not in query:
        return fields, query
    extra = _json_object(query.pop("__extra__"), f"{origin}, __extra__")
    if query:
        from credproc.log import warn

        warn(f"{origin}: query keys {sorted(query)} are ignored because __extra__ is present")
    return fields, extra


def parse_json(value: str, origin: str) -> tuple[dict, dict]:
    """Airflow's JSON form: ``{"conn_type": "aws", "login": ..., "extra": {...}}``."""
    from credproc.errors import ConfigError

    data = _json_object(value, origin)
    fields = {k: data.pop(k) for k in FIELD_KEYS if k in data}
    extra = data.pop("extra", None)
    if data:
        raise ConfigError(
            f"{origin}: unknown connection field(s) {sorted(data)}; extras belong inside \"extra\""
        )
    if extra is None:
        extra = {}
    elif isinstance(extra, str):
        extra = _json_object(extra, f"{origin}, extra") if extra.strip() else {}
    elif not isinstance(extra, dict):
        raise ConfigError(f"{origin}: \"extra\" must be an object or a JSON string, not {type(extra).__name__}")
    _check_field_types(fields, origin)
    return fields, extra


def parse_toml(text: str, path: str) -> tuple[dict, dict]:
    """The config file: top-level settings, and the ``[connections.<id>]`` tables."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # Python 3.10
        import tomli as tomllib

    from credproc.errors import ConfigError

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {path}: invalid TOML: {e}") from None
    tables = data.pop("connections", {})
    if not isinstance(tables, dict):
        raise ConfigError(f"config file {path}: 'connections' must be a table ([connections.<id>])")
    for conn_id, table in tables.items():
        if not isinstance(table, dict):
            raise ConfigError(
                f"config file {path}: connections.{_toml_key(conn_id)} must be a table, "
                f"not a {type(table).__name__}"
            )
    return data, tables


def split_table(table: dict, origin: str) -> tuple[dict, dict]:
    """A TOML connection table: fields and extras side by side, or extras in ``extra``."""
    from credproc.errors import ConfigError

    table = dict(table)
    fields = {k: table.pop(k) for k in FIELD_KEYS if k in table and k != "host"}
    extra = table.pop("extra", {})
    if not isinstance(extra, dict):
        raise ConfigError(f"{origin}: 'extra' must be a table")
    both = sorted(set(extra) & set(table))
    if both:
        raise ConfigError(f"{origin}: {', '.join(both)} given both directly and in 'extra'; keep one")
    extra = {**extra, **table}
    _check_field_types(fields, origin)
    return fields, extra


def _check_field_types(fields: dict, origin: str) -> None:
    from credproc.errors import ConfigError

    for key, value in fields.items():
        if value is not None and key != "port" and not isinstance(value, str):
            raise ConfigError(f"{origin}: {key} must be a string, not {type(value).__name__}")


def _json_object(text: str, origin: str) -> dict:
    import json

    from credproc.errors import ConfigError

    try:
        data = json.loads(text)
    except ValueError as e:
        # The message names line and column; the text itself may hold a secret, so it is not shown.
        raise ConfigError(f"{origin}: invalid JSON: {getattr(e, 'msg', 'cannot parse')} ({_position(e)})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: expected a JSON object, found {type(data).__name__}")
    return data


def _position(e: ValueError) -> str:
    lineno, colno = getattr(e, "lineno", None), getattr(e, "colno", None)
    return f"line {lineno} column {colno}" if lineno else "position unknown"


def _toml_key(conn_id: str) -> str:
    bare = conn_id and all(c.isascii() and (c.isalnum() or c in "-_") for c in conn_id)
    return conn_id if bare else '"' + conn_id.replace("\\", "\\\\").replace('"', '\\"') + '"'
