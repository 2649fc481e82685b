"""What several commands share: loading a connection for display, masking, times, output."""

from __future__ import annotations

import io
import os
import sys
import time
from contextlib import contextmanager
from typing import Any, Iterator

from credproc import cache, sources
from credproc.errors import ConfigError
from credproc.log import redact

MASK = "****"
# Extra keys (at any depth) whose values are secrets: passwords, keys, tokens, assertions.
SECRET_WORDS = ("password", "passwd", "secret", "token", "assertion", "authorization", "private_key",
                "passphrase", "cookie", "credential")
# Tables whose every value may be a credential, whatever its name: HTTP headers (X-Api-Key,
# X-Auth, ...) of idp_request_kwargs, say. Their names are shown, their values never.
OPAQUE_TABLES = ("headers",)


def out(text: str = "") -> None:
    """Print to stdout, through the secret filter like everything credproc says."""
    sys.stdout.write(redact(text) + "\n")


def check_id(conn_id: str, what: str = "connection id") -> str:
    if not conn_id or conn_id.startswith("-") or any(c in conn_id for c in "\r\n\0"):
        raise ConfigError(f"{what} {conn_id!r} is not usable: it must be non-empty, not start with '-', "
                          "and hold no line break")
    return conn_id


@contextmanager
def quiet() -> Iterator[list[str]]:
    """Collect credproc's warnings instead of printing them (for listing many connections)."""
    saved, buffer = sys.stderr, io.StringIO()
    lines: list[str] = []
    sys.stderr = buffer
    try:
        yield lines
    finally:
        sys.stderr = saved
        lines.extend(line for line in buffer.getvalue().splitlines() if line.strip())


class Loaded:
    """One connection as the main job would see it, for display: nothing is fetched."""

    def __init__(self, conn_id: str, environ=None, *, keyring: str = "placeholder"):
        """``keyring``: ``"ask"`` to read the keyring for a half key pair (``show``),
        ``"placeholder"`` to assume it holds the missing half (``list``: no keyring calls)."""
        from credproc import job, keyring_store

        environ = os.environ if environ is None else environ
        self.conn_id = conn_id
        self.definition = sources.locate(conn_id, environ)
        self.raw = sources.parse(self.definition)
        self.keyring_fields: list[str] = []  # fields whose value came (or would come) from the keyring
        self.keyring_problem = ""
        if self.raw is not None:
            if keyring == "ask":
                asked = [field for _, field in keyring_store.wanted(self.raw) if field != "aws_session_token"]
                try:
                    self.keyring_fields = keyring_store.fill(self.raw, interactive=True)
                except ConfigError as e:
                    self.keyring_problem = str(e)
                else:
                    missing = [field for field in asked if field not in self.keyring_fields]
                    if missing:
                        self.keyring_problem = (f"no {' or '.join(missing)} stored for {conn_id!r} "
                                                f"(credproc secret set {conn_id})")
            else:
                for table, field in keyring_store.wanted(self.raw):
                    if field != "aws_session_token":
                        table[field] = "\0from-the-keyring"  # never shown: list prints no values
                        self.keyring_fields.append(field)
        self.factory_spec = job.choose_factory(None, self.raw, self.definition, environ)
        self.conn = job.load(self.definition, self.raw, custom_factory=self.factory_spec is not None)

    def method(self) -> str:
        return describe_method(self.conn, self.factory_spec)


def describe_method(conn, factory_spec: str | None) -> str:
    """How the connection gets its credentials, in a few words."""
    if factory_spec:
        return f"session factory {factory_spec}"
    if conn.role_arn:
        return conn.assume_role_method or "assume_role"
    if conn.aws_access_key_id:
        return "static keys"
    if conn.profile_name:
        return f"profile {conn.profile_name}"
    return "default chain"


def where(definition: sources.Definition) -> str:
    """Where a definition lives, for a person: the variable, or the file and its table."""
    if definition.kind == "env":
        return definition.where
    if definition.kind == "file" and definition.conn_id in _file_ids(definition):
        return f"{tilde(definition.where)} [connections.{sources._toml_key(definition.conn_id)}]"
    return "not defined" + (" (boto3's default chain)" if definition.conn_id == sources.DEFAULT_CONN_ID else "")


def _file_ids(definition: sources.Definition) -> set[str]:
    try:
        return set(sources.parse_toml(definition.text, definition.where)[1])
    except ConfigError:
        return set()


def other_places(conn_id: str, environ) -> list[str]:
    """The definitions of ``conn_id`` that exist but lose to an earlier one."""
    places = []
    for variable in (sources.credproc_variable(conn_id), sources.airflow_variable(conn_id)):
        if variable in environ:
            places.append(variable)
    path = sources.config_path(environ)
    try:
        with open(path, encoding="utf-8") as f:
            tables = sources.parse_toml(f.read(), path)[1]
    except (OSError, UnicodeDecodeError, ConfigError):
        tables = {}
    if conn_id in tables:
        places.append(f"{tilde(path)} [connections.{sources._toml_key(conn_id)}]")
    return places[1:]


def tilde(path: str) -> str:
    home = os.path.expanduser("~")
    if home not in ("", "/") and (path == home or path.startswith(home + os.sep)):
        return "~" + path[len(home):]
    return path


# -- cache state -------------------------------------------------------------------------


def current_slot(definition: sources.Definition, environ) -> cache.Slot:
    """The slot ``credproc --conn ID`` reads, as SDKs run it (no --session-factory flag:
    CREDPROC_SESSION_FACTORY is one of the identity variables)."""
    return cache.Slot(cache.cache_dir(environ), cache.identity(definition, None, environ), definition.conn_id)


def cache_state(definition: sources.Definition, environ=None) -> dict[str, Any]:
    """The state of the entry the main job would read now for this definition.

    ``state`` is ``fresh`` (served until ``fresh_until``), ``stale`` (still valid, the next
    run refreshes it), ``expired`` or ``none``.
    """
    environ = os.environ if environ is None else environ
    entry = current_slot(definition, environ).read()
    if entry is None:
        return {"state": "none"}
    now = time.time()
    fresh_until = entry.expires - cache.refresh_margin(entry.expires - entry.fetched)
    state = "fresh" if entry.is_fresh(now) else "stale" if entry.expires > now else "expired"
    return {"state": state, "fresh_until": iso(fresh_until), "expires": iso(entry.expires)}


def describe_cache(info: dict[str, Any]) -> str:
    state = info["state"]
    if state == "fresh":
        return f"fresh until {info['fresh_until']} ({relative(info['fresh_until'])})"
    if state == "stale":
        return f"stale: expires {info['expires']}, the next run refreshes it"
    if state == "expired":
        return f"expired {info['expires']}"
    return "none"


def iso(timestamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def relative(when: str) -> str:
    import calendar

    seconds = calendar.timegm(time.strptime(when, "%Y-%m-%dT%H:%M:%SZ")) - time.time()
    past = seconds < 0
    seconds = abs(int(seconds))
    if seconds >= 3600:
        text = f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    else:
        text = f"{seconds // 60}m" if seconds >= 120 else f"{seconds}s"
    return f"{text} ago" if past else f"in {text}"


# -- masking -----------------------------------------------------------------------------


def is_secret_key(key: str) -> bool:
    lowered = key.lower()
    return any(word in lowered for word in SECRET_WORDS) and lowered not in (
        "aws_access_key_id", "token_file", "assume_role_with_web_identity_token_file")


def mask(value: Any, key: str = "") -> Any:
    """A copy of an extra value fit to print: secrets by key name replaced by ****, URLs
    without their passwords, and every registered secret masked wherever it appears."""
    if key and (is_secret_key(key) or key.lower() in OPAQUE_TABLES):
        if isinstance(value, (dict, list)):  # a table of secrets (cookies, headers): every value masked
            return _mask_values(value)
        if value not in (None, ""):
            return MASK
    if isinstance(value, dict):
        return {k: mask(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [mask(v) for v in value]
    if isinstance(value, str):
        return redact(_url_without_password(value))
    return value


def _mask_values(value: Any) -> Any:
    """A copy with its keys (and shape) kept and every value replaced by ****."""
    if isinstance(value, dict):
        return {k: _mask_values(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask_values(v) for v in value]
    return value if value in (None, "") else MASK


def _url_without_password(text: str) -> str:
    if "://" not in text or "@" not in text:
        return text
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(text)
        if parts.password is None:
            return text
        netloc = f"{parts.username}:{MASK}@{parts.hostname or ''}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    except ValueError:
        return MASK


def key_id(value: str | None) -> str | None:
    """An access key id as the AWS CLI shows it: all but the last four characters hidden."""
    if not value:
        return None
    return "*" * max(len(value) - 4, 0) + value[-4:]
