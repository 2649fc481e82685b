"""Where a connection is defined: the raw text of its definition, found without parsing it.

Lookup order, first match wins:

1. ``CREDPROC_CONN_<ID>``: the id upper-cased, anything outside ``A-Z0-9_`` turned to ``_``;
2. ``AIRFLOW_CONN_<ID>``: the id upper-cased exactly as Airflow does, so existing Airflow
   definitions work unchanged;
3. the TOML config file (``$CREDPROC_CONFIG``, else ``$XDG_CONFIG_HOME/credproc/config.toml``,
   else ``~/.config/credproc/config.toml``), table ``[connections.<id>]``;
4. the Airflow connections file named by ``$CREDPROC_AIRFLOW_CONNECTIONS_FILE``: what
   Airflow's ``LocalFilesystemBackend`` reads and ``airflow connections export`` writes
   (JSON, YAML or ``.env``, by the file's extension; ``credproc.airflow_files`` parses it).

This module runs on a cache hit, so :func:`locate` only reads raw text: it never parses
TOML, JSON or YAML (``tomllib`` and ``json`` import ``re``, which alone costs most of
Python's start-up again). The cache keys its entries on that raw text (both files' when the
lookup reaches them, since only parsing says which one defines the id); ``credproc.forms``
parses it, on a miss only.
"""

import os

# typing and collections cost milliseconds on a cache hit; annotations are strings anyway.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

DEFAULT_CONN_ID = "aws_default"
CREDPROC_PREFIX = "CREDPROC_CONN_"
AIRFLOW_PREFIX = "AIRFLOW_CONN_"
AIRFLOW_FILE_VARIABLE = "CREDPROC_AIRFLOW_CONNECTIONS_FILE"

MAX_CONFIG_BYTES = 1 << 20

_ENV_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")

class ConfigFile:
    """A file of definitions, its raw text read once, with a bound: ``CREDPROC_CONFIG=/dev/zero``
    must not hang any command. ``exists`` is False when there is no file; ``read_error``
    says why an existing one cannot be used. ``credproc.forms`` parses it (a miss only).

    The config file carries the Airflow connections file in ``airflow`` (None when
    ``$CREDPROC_AIRFLOW_CONNECTIONS_FILE`` is unset), read with it: it comes next in the
    lookup, and a command that reads the config once for many connections reads both once."""

    __slots__ = ("airflow", "exists", "parsed", "path", "read_error", "text")

    def __init__(self, path: str, exists: bool, text: str = "", read_error: str = ""):
        self.path = path
        self.exists = exists
        self.text = text
        self.read_error = read_error
        self.parsed: tuple[dict, dict] | None = None  # filled by forms.config_tables, on a miss
        self.airflow: ConfigFile | None = None


class Definition:
    """The raw text that defines one connection, and where it was found.

    ``kind`` is ``"env"`` (``where`` is the variable), ``"file"`` (``where`` is the config
    file; the text is the whole file, which may or may not define the id, and
    ``config.airflow`` the Airflow connections file, when one is named, which may define it
    next) or ``"none"`` (no variable, no config file and no Airflow connections file named;
    ``where`` is the config path that was tried). ``config`` is the config file as read,
    whichever kind won.
    """

    __slots__ = ("config", "conn_id", "kind", "read_error", "text", "where")

    def __init__(self, conn_id: str, kind: str, where: str, text: str, read_error: str = "",
                 config: "ConfigFile | None" = None):
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


def config_path(environ: "Mapping[str, str]") -> str:
    explicit = environ.get("CREDPROC_CONFIG")
    if explicit:
        return explicit
    base = environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "credproc", "config.toml")


def read_config(environ: "Mapping[str, str]") -> "ConfigFile":
    """The config file (and the Airflow connections file, as its ``airflow``), read at most
    once per run and never past ``MAX_CONFIG_BYTES``."""
    config = read_file(config_path(environ), "a credproc config file")
    airflow_path = environ.get(AIRFLOW_FILE_VARIABLE)
    if airflow_path:
        config.airflow = read_file(os.path.expanduser(airflow_path), "an Airflow connections file")
    return config


def read_file(path: str, what: str) -> "ConfigFile":
    """``path``'s text, or why it cannot be read; ``what`` names the kind of file for an
    error ("larger than 1 MiB: not <what>")."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        return ConfigFile(path, exists=False)
    except OSError as e:
        return ConfigFile(path, exists=True, read_error=e.strerror or str(e))
    if len(data) > MAX_CONFIG_BYTES:
        return ConfigFile(path, exists=True, read_error=f"larger than 1 MiB: not {what}")
    try:
        return ConfigFile(path, exists=True, text=data.decode("utf-8"))
    except UnicodeDecodeError as e:
        return ConfigFile(path, exists=True, read_error=f"not UTF-8 text ({e.reason})")


def locate(conn_id: str, environ: "Mapping[str, str]", config: "ConfigFile | None" = None) -> "Definition":
    """Find the text that defines ``conn_id``, without parsing it.

    ``config``: the config file already read (``credproc list`` reads it once for every
    connection); read here when not given and no variable defines the connection."""
    for variable in (credproc_variable(conn_id), airflow_variable(conn_id)):
        value = environ.get(variable)
        if value is not None:
            return Definition(conn_id, "env", variable, value, config=config)
    if config is None:
        config = read_config(environ)
    kind = "file" if config.exists or config.airflow is not None else "none"
    return Definition(conn_id, kind, config.path, config.text, config.read_error, config)
