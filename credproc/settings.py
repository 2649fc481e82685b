"""Typed readers for settings, so that a value means the same wherever it is read.

A connection's settings arrive as TOML (typed), as JSON (typed), or in a URI's query
(strings only), so every reader accepts the string spelling of its type: ``"true"``,
``"yes"``, ``"on"`` and ``"1"`` are true everywhere (the connection's ``verify`` and
``idp_request_kwargs.verify`` alike), a table may be JSON text, a number may be ``"30"``.
An absent value, ``None`` and ``""`` are all "not set".

:class:`Table` reads the keys of one table and names a bad value by its full dotted name
(``assume_role_with_saml.idp_url``); :func:`seconds` reads a duration from an environment
variable. Errors are :class:`~credproc.errors.ConfigError` (exit 2), made by the caller's
``error`` function so that they say which connection and where it is defined.
"""

from __future__ import annotations

import os

from credproc.errors import ConfigError

TYPE_CHECKING = False  # the lock timeout is read before the lock: no typing for waiters
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

TRUE_WORDS = frozenset({"true", "yes", "on", "1"})
FALSE_WORDS = frozenset({"false", "no", "off", "0"})


def is_unset(value: object) -> bool:
    return value is None or value == ""


def as_boolean(value: object) -> bool | None:
    """``value`` as a boolean, or None when it is neither a boolean nor a boolean word."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
    return None


class Table:
    """Typed access to one table of settings.

    ``prefix`` is the table's dotted name with its trailing dot (``"assume_role_with_saml."``,
    or ``""`` for the extra itself); ``error(message)`` makes the exception to raise.
    """

    def __init__(self, values: Mapping[str, Any] | None, prefix: str, error: Callable[[str], Exception]):
        self.values: Mapping[str, Any] = values or {}
        self.prefix = prefix
        self.error = error

    def name(self, key: str) -> str:
        return f"{self.prefix}{key}"

    def raw(self, key: str) -> Any:
        return self.values.get(key)

    def string(self, key: str, *, required: str | None = None, strip: bool = False) -> str | None:
        """A string, or None when unset. ``required``: the message's end when it is missing
        (``"needs ..."``). ``strip``: surrounding blanks removed, a blank value is unset
        (names, URLs, ARNs; never secrets, whose blanks may be theirs)."""
        value = self.values.get(key)
        if isinstance(value, str) and strip:
            value = value.strip()
        if is_unset(value):
            if required:
                raise self.error(required)
            return None
        if not isinstance(value, str):
            raise self.error(f"{self.name(key)} must be a string, not {type(value).__name__}")
        return value

    def boolean(self, key: str, default: bool = False) -> bool:
        value = self.values.get(key)
        if is_unset(value):
            return default
        result = as_boolean(value)
        if result is None:
            raise self.error(f"{self.name(key)} must be true or false, not {value!r}")
        return result

    def table(self, key: str) -> dict[str, Any]:
        """A table (a copy), or JSON text holding an object: a URI's query can only carry strings."""
        value = self.values.get(key)
        if is_unset(value):
            return {}
        table = as_table(value)
        if table is None:
            raise self.error(f"{self.name(key)} must be a table/object (in a URI, pass it inside __extra__)")
        return table

    def sub(self, key: str) -> Table:
        """The table under ``key``, as a Table of its own."""
        return Table(self.table(key), f"{self.name(key)}.", self.error)

    def path(self, key: str, *, must_exist: bool = False) -> str | None:
        """A file path, ``~`` expanded."""
        value = self.string(key, strip=True)
        if value is None:
            return None
        path = os.path.expanduser(value)
        if must_exist and not os.path.exists(path):
            raise self.error(f"{self.name(key)} {value!r}: no such file")
        return path

    def verify(self, key: str) -> bool | str | None:
        """TLS verification: a boolean (or boolean word), or the path of an existing CA bundle.

        A boolean word is never taken for a file name: Airflow reads ``"false"`` as a CA
        bundle path, which then fails obscurely."""
        value = self.values.get(key)
        if is_unset(value):
            return None
        result = as_boolean(value)
        if result is not None:
            return result
        if not isinstance(value, str):
            raise self.error(f"{self.name(key)} must be true, false or a CA bundle path, not {type(value).__name__}")
        path = os.path.expanduser(value.strip())
        if not os.path.exists(path):  # a file, or a directory of certificates
            raise self.error(f"{self.name(key)} {value!r} is neither true/false nor an existing CA bundle file")
        return path

    def seconds(self, key: str, *, minimum: float = 0.0, maximum: float | None = None) -> float | None:
        """A duration in seconds (a number, or a string holding one), or None when unset."""
        value = self.values.get(key)
        if is_unset(value):
            return None
        parsed = parse_seconds(value, minimum, maximum)
        if parsed is None:
            raise self.error(f"{self.name(key)} must be {describe_range(minimum, maximum)}, not {value!r}")
        return parsed


def as_table(value: object) -> dict[str, Any] | None:
    """``value`` as a table (a copy), also when it is JSON text holding an object; else None."""
    if isinstance(value, str):
        import json

        try:
            value = json.loads(value)
        except ValueError:
            return None
    return dict(value) if isinstance(value, dict) else None


def parse_seconds(value: object, minimum: float = 0.0, maximum: float | None = None) -> float | None:
    """``value`` as seconds within the bounds, or None when it is not such a number."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if not isinstance(value, (int, float)) or value != value:  # NaN is no duration
        return None
    seconds = float(value)
    if seconds < minimum or (maximum is not None and seconds > maximum):
        return None
    return seconds


def describe_range(minimum: float, maximum: float | None) -> str:
    if maximum is None:
        return f"a number of seconds of at least {minimum:g}"
    return f"a number of seconds from {minimum:g} to {maximum:g}"


def seconds(environ: Mapping[str, str], name: str, default: float, *, minimum: float = 0.0,
            maximum: float | None = None) -> float:
    """The duration in environment variable ``name``, else ``default``; ConfigError if malformed."""
    value = environ.get(name)
    if not value:
        return default
    parsed = parse_seconds(value, minimum, maximum)
    if parsed is None:
        raise ConfigError(f"{name} is {value!r}, not {describe_range(minimum, maximum)}")
    return parsed


def whole_number(environ: Mapping[str, str], name: str, default: int, *, minimum: int = 0) -> int:
    """The whole number in environment variable ``name``, else ``default``; ConfigError if malformed."""
    value = environ.get(name)
    if not value:
        return default
    try:
        number = int(value.strip())
    except ValueError:
        number = minimum - 1
    if number < minimum:
        raise ConfigError(f"{name} is {value!r}, not a whole number of at least {minimum}")
    return number
