"""Everything credproc says goes to stderr, one line at a time, and never holds a secret.

Secrets are registered here as soon as they are read (``add_secret``); every warning,
error and log record passes through ``redact`` on its way out. That is the last line of
defence: messages are written not to contain secrets in the first place.

``warn`` is usable on a cache hit: it imports nothing. The ``logging`` package (which
imports ``re``) is configured by ``setup_logging`` on a miss only.
"""

from __future__ import annotations

import sys

_SECRETS: set[str] = set()
_MASK = "****"


def add_secret(value: object) -> None:
    """Remember a secret so that no output line can show it. Short values are ignored:
    masking them would garble ordinary words and they are not credentials anyway."""
    if isinstance(value, str) and len(value) >= 6:
        _SECRETS.add(value)


def redact(text: str) -> str:
    for secret in sorted(_SECRETS, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, _MASK)
    return text


def one_line(text: object) -> str:
    """SDKs show stderr as one message: fold a multi-line text (a child's stderr, say).

    ``text`` may be anything with a ``str()``, an exception most often."""
    return " | ".join(part.strip() for part in str(text).splitlines() if part.strip())


def warn(message: str) -> None:
    sys.stderr.write(redact(f"credproc: warning: {one_line(message)}\n"))


def setup_logging(debug: bool) -> None:
    """Route the ``credproc`` loggers to stderr; with ``debug``, at DEBUG level.

    botocore's own DEBUG output logs response bodies, SecretAccessKey included, so its
    loggers stay at WARNING even with ``--debug``.
    """
    import logging

    class _Redacting(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            return redact(super().format(record))

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Redacting("credproc: %(levelname)s: %(name)s: %(message)s"))
    root = logging.getLogger("credproc")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if debug else logging.WARNING)
    root.propagate = False
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
