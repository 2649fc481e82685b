"""The forms a connection is written in - Airflow's URI and JSON, credproc's TOML file,
Airflow's connection files (``credproc.airflow_files``) - and how their text becomes fields:
a :class:`RawConnection`, before any meaning is given to it.

A miss only (and the commands): ``json`` and ``tomllib`` import ``re``, which a cache hit
must not pay.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping

from credproc.errors import ConfigError
from credproc.sources import ConfigFile, Definition, airflow_variable, credproc_variable

# Keys of a connection that are connection fields, not extras, in every form.
FIELD_KEYS = ("conn_type", "login", "password", "host", "port", "schema", "description")


def config_tables(config: ConfigFile) -> tuple[dict, dict]:
    """The config file's top-level settings and ``[connections.<id>]`` tables, parsed once;
    ConfigError if it cannot be read or is not valid."""
    if config.parsed is None:
        if config.read_error:
            raise ConfigError(f"cannot read config file {config.path}: {config.read_error}")
        config.parsed = parse_toml(config.text, config.path) if config.exists else ({}, {})
    return config.parsed


def places(conn_id: str, environ: Mapping[str, str], config: ConfigFile) -> list[str]:
    """Every place that defines ``conn_id``, in lookup order (the first one is used)."""
    found = [variable for variable in (credproc_variable(conn_id), airflow_variable(conn_id))
             if variable in environ]
    if defines(config, conn_id):
        found.append(f"{config.path} [connections.{toml_key(conn_id)}]")
    if config.airflow is not None:
        from credproc import airflow_files

        if airflow_files.defines(config.airflow, conn_id):
            found.append(airflow_files.place(config.airflow, conn_id))
    return found


def defines(config: ConfigFile, conn_id: str) -> bool:
    """Whether the config file has a ``[connections.<conn_id>]`` table (False if it is broken)."""
    try:
        return conn_id in config_tables(config)[1]
    except ConfigError:
        return False


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
    conn_id = definition.conn_id
    if definition.kind == "env":
        return parse_value(conn_id, f"environment variable {definition.where}", definition.text)
    if definition.kind == "file":
        config = definition.config or ConfigFile(definition.where, True, definition.text, definition.read_error)
        settings, tables = config_tables(config)
        table = tables.get(conn_id)
        if table is None:
            return _airflow_file(config, conn_id)
        origin = f"config file {definition.where} [connections.{toml_key(conn_id)}]"
        fields, extra = split_table(table, origin)
        return RawConnection(conn_id, origin, fields, extra, settings)
    return None


def parse_value(conn_id: str, origin: str, value: str) -> RawConnection:
    """A definition held in one string, in Airflow's URI or JSON form (a variable's value)."""
    value = value.strip()
    if not value:
        raise ConfigError(f"connection {conn_id!r}: {origin} is empty")
    fields, extra = parse_json(value, origin) if value.startswith("{") else parse_uri(value, origin)
    return RawConnection(conn_id, origin, fields, extra, {})


def _airflow_file(config: ConfigFile, conn_id: str) -> RawConnection | None:
    """``conn_id`` in the Airflow connections file that comes after the config file, if any."""
    if config.airflow is None:
        return None
    from credproc import airflow_files

    found = airflow_files.lookup(config.airflow, conn_id)
    if found is None:
        return None
    origin, value = found
    if isinstance(value, str):
        return parse_value(conn_id, origin, value)
    fields, extra = split_object(value, origin)
    return RawConnection(conn_id, origin, fields, extra, {})


def file_settings(definition: Definition) -> dict:
    """The config file's top-level settings (such as ``session_factory``), or {}."""
    if definition.config is None or not definition.config.exists:
        return {}
    try:
        return config_tables(definition.config)[0]
    except ConfigError:
        return {}


def parse_uri(value: str, origin: str) -> tuple[dict, dict]:
    """Airflow's URI form: ``aws://LOGIN:PASSWORD@HOST/?key=value&__extra__=<json>``.

    Login and password are percent-decoded with plain ``unquote`` (a ``+`` stays a ``+``);
    query values with ``parse_qsl`` (a ``+`` is a space), the last duplicate winning and blank
    values kept, as Airflow does. ``__extra__`` carries real JSON and replaces the query extras.
    """
    from urllib.parse import parse_qsl, unquote, urlsplit

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
    return split_object(_json_object(value, origin), origin)


def split_object(data: dict, origin: str) -> tuple[dict, dict]:
    """The fields and the extra of an object in Airflow's JSON form (``extra`` an object or
    JSON text)."""
    data = dict(data)
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

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {path}: invalid TOML: {e}") from None
    except RecursionError:  # tomllib recurses into nested arrays and tables
        raise ConfigError(f"config file {path}: invalid TOML: nested too deeply") from None
    tables = data.pop("connections", {})
    if not isinstance(tables, dict):
        raise ConfigError(f"config file {path}: 'connections' must be a table ([connections.<id>])")
    for conn_id, table in tables.items():
        if not isinstance(table, dict):
            raise ConfigError(
                f"config file {path}: connections.{toml_key(conn_id)} must be a table, "
                f"not a {type(table).__name__}"
            )
    return data, tables


def split_table(table: dict, origin: str) -> tuple[dict, dict]:
    """A TOML connection table: fields and extras side by side, or extras in ``extra``."""
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
    for key, value in fields.items():
        if value is not None and key != "port" and not isinstance(value, str):
            raise ConfigError(f"{origin}: {key} must be a string, not {type(value).__name__}")


def _json_object(text: str, origin: str) -> dict:
    import json

    try:
        data = json.loads(text)
    except ValueError as e:
        # The message names line and column; the text itself may hold a secret, so it is not shown.
        raise ConfigError(f"{origin}: invalid JSON: {getattr(e, 'msg', 'cannot parse')} ({_position(e)})") from None
    except RecursionError:  # the json module recurses into nested arrays and objects
        raise ConfigError(f"{origin}: invalid JSON: nested too deeply") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: expected a JSON object, found {type(data).__name__}")
    return data


def _position(e: ValueError) -> str:
    lineno, colno = getattr(e, "lineno", None), getattr(e, "colno", None)
    return f"line {lineno} column {colno}" if lineno else "position unknown"


def toml_key(conn_id: str) -> str:
    bare = conn_id and all(c.isascii() and (c.isalnum() or c in "-_") for c in conn_id)
    return conn_id if bare else '"' + conn_id.replace("\\", "\\\\").replace('"', '\\"') + '"'
