"""What counts as a secret: one rule, used wherever credproc reads, shows or says something.

The rule is applied to the *names* of settings, at any depth of a connection's extra:

* a key names a secret when one of its words is a secret word (``password``, ``token``,
  ``secret``, ``cookie``...) or its last word is a secret ending (``key``, ``auth``,
  ``session``): ``federation.password``, ``client_secret``, ``X-Api-Key``, ``MSISAuth``;
* unless its last word says it only *points* at a secret (``file``, ``path``, ``url``,
  ``id``, ``name``...): ``assume_role_with_web_identity_token_file``, ``aws_access_key_id``
  and ``secret_name`` are readable;
* every value inside a ``headers`` or ``cookies`` table is a secret whatever its name
  (an IdP may authenticate with any header).

:func:`secret_values` yields exactly the values the rule calls secret; the connection
registers them with :mod:`credproc.log` (so no message shows them), and ``credproc show``
masks exactly them (:func:`mask`). Values carry one more rule: the password of a URL's user
info is a secret.

This module is imported on a miss only, but imports nothing heavy anyway.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

MASK = "****"

# Words that make any key a secret's name, wherever they stand in it.
SECRET_WORDS = frozenset({
    "password", "passwd", "passphrase", "secret", "token", "assertion", "authorization",
    "cookie", "cookies", "credential", "credentials",
})
# Words that make a key a secret's name when they end it: ``api_key``, ``X-Auth``, ``X-Session``.
SECRET_ENDINGS = frozenset({"key", "auth", "session"})
# Last words of keys that name where a secret is, or which one, rather than the secret itself.
POINTER_ENDINGS = frozenset({"file", "path", "dir", "url", "uri", "id", "name", "arn", "type", "method",
                             "format", "endpoint", "expiration", "duration"})
# Tables whose every value is a secret, whatever its key: HTTP headers and cookies.
OPAQUE_TABLES = frozenset({"headers", "cookies"})


def words(key: str) -> list[str]:
    """The lower-case words of a key: ``X-Api-Key``, ``apiKey`` and ``api_key`` are all
    ``["api", "key"]`` (``MSISAuth``: ``["msis", "auth"]``)."""
    out: list[str] = []
    current = ""
    previous = ""
    for i, char in enumerate(key):
        following = key[i + 1] if i + 1 < len(key) else ""
        if not char.isalnum():
            boundary, char = True, ""
        else:
            # a new word at lower->Upper ("apiKey") and at the last capital of a run ("MSISAuth")
            boundary = char.isupper() and (previous.islower() or (previous.isupper() and following.islower()))
        if boundary and current:
            out.append(current)
            current = ""
        current += char.lower()
        previous = char
    if current:
        out.append(current)
    return out


def is_secret_key(key: object) -> bool:
    """Whether the value under ``key`` is a secret (see the module's rule)."""
    parts = words(str(key))
    if not parts or parts[-1] in POINTER_ENDINGS:
        return False
    return parts[-1] in SECRET_ENDINGS or any(part in SECRET_WORDS for part in parts)


def is_opaque_table(key: object) -> bool:
    return str(key).lower() in OPAQUE_TABLES


def secret_values(node: Any, key: object = "") -> Iterator[str]:
    """Every string the rule calls secret in a value of a connection (tables, lists, strings)."""
    if key != "" and (is_secret_key(key) or is_opaque_table(key)):
        yield from _strings(node)
        return
    if isinstance(node, dict):
        for child_key, child in node.items():
            yield from secret_values(child, child_key)
    elif isinstance(node, list):
        for child in node:
            yield from secret_values(child)
    elif isinstance(node, str):
        password = url_password(node)
        if password:
            yield password


def register(node: Any) -> None:
    """Register every secret of ``node`` with credproc.log, so no output line can show it."""
    from credproc.log import add_secret

    for value in secret_values(node):
        add_secret(value)


def mask(node: Any, key: object = "") -> Any:
    """A copy of ``node`` fit to print: every value the rule calls secret replaced by ****
    (its key, and the shape of its table, kept), URLs without their passwords, and every
    registered secret masked wherever it appears."""
    from credproc.log import redact

    if key != "" and (is_secret_key(key) or is_opaque_table(key)):
        return _masked(node)
    if isinstance(node, dict):
        return {k: mask(v, k) for k, v in node.items()}
    if isinstance(node, list):
        return [mask(v) for v in node]
    if isinstance(node, str):
        return redact(url_without_password(node))
    return node


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)


def _masked(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _masked(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_masked(v) for v in node]
    return node if node in (None, "") else MASK


def url_password(text: str) -> str | None:
    """The password in a URL's user info (``https://user:PASSWORD@host/``), or None."""
    if "://" not in text or "@" not in text:
        return None
    from urllib.parse import unquote, urlsplit

    try:
        password = urlsplit(text).password
    except ValueError:
        return None
    return unquote(password) if password else None


def url_without_password(text: str) -> str:
    """``text`` with a URL's password masked; an unparseable URL that may hold one, masked whole."""
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
