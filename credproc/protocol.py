"""The credential_process output format, as every SDK reads it.

See ``shared/reference/protocol.md``: ``Version`` is the integer 1, ``Expiration`` is UTC
RFC 3339 with a ``Z`` (Go and Rust refuse ``+00:00``), ``SessionToken`` is left out when there
is none, and no ``Expiration`` at all means long-term keys that the SDK never refreshes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone


@dataclass(frozen=True)
class Credentials:
    """Frozen credentials: what one fetch produced and what one run prints."""

    access_key_id: str
    secret_access_key: str
    session_token: str | None = None
    expiration: datetime | None = None
    account_id: str | None = None

    def __repr__(self) -> str:  # never let a secret reach a log line or a traceback
        return (
            f"Credentials(access_key_id={self.access_key_id!r}, secret_access_key='****', "
            f"session_token={'****' if self.session_token else None}, "
            f"expiration={self.expiration!r}, account_id={self.account_id!r})"
        )

    @property
    def expires_at(self) -> float | None:
        """Expiration as a Unix timestamp, or None for long-term keys."""
        return self.expiration.timestamp() if self.expiration else None

    def to_process_json(self) -> str:
        """The exact text to print on stdout (no trailing newline)."""
        out: dict[str, object] = {
            "Version": 1,
            "AccessKeyId": self.access_key_id,
            "SecretAccessKey": self.secret_access_key,
        }
        if self.session_token:
            out["SessionToken"] = self.session_token
        if self.expiration is not None:
            out["Expiration"] = format_expiration(self.expiration)
        if self.account_id:
            out["AccountId"] = self.account_id
        return json.dumps(out)


def format_expiration(when: datetime) -> str:
    """UTC, whole seconds, ``Z`` suffix: the one form every SDK parses the same way.

    A naive datetime is taken to be UTC already (botocore's parser returns aware ones;
    a custom factory might not). Sub-second parts are dropped, never rounded up, so
    the printed time is never later than the real expiry.
    """
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def account_from_arn(arn: str | None) -> str | None:
    """The 12-digit account of an STS/IAM ARN, or None when the ARN does not say for certain."""
    if not arn:
        return None
    parts = arn.split(":")
    if len(parts) >= 6 and parts[0] == "arn" and len(parts[4]) == 12 and parts[4].isdigit():
        return parts[4]
    return None
