"""Ways of getting credentials: one module per STS call (how to fetch).

Each module has ``fetch(factory) -> Credentials``; the factory supplies the connection,
the session that signs the call and a ready STS client. Modules are imported only when
their method is used, so the Kerberos and Google stacks load only for their connections.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from credproc.errors import CredprocError
from credproc.protocol import Credentials, account_from_arn

if TYPE_CHECKING:
    from credproc.factory import BaseSessionFactory

MODULES = {
    "assume_role": "credproc.methods.assume_role",
    "assume_role_with_saml": "credproc.methods.saml",
    "assume_role_with_web_identity": "credproc.methods.web_identity",
}


def fetch(method: str, factory: "BaseSessionFactory") -> Credentials:
    return importlib.import_module(MODULES[method]).fetch(factory)


def call(client, operation: str, conn_id: str, **params: Any) -> dict[str, Any]:
    """One STS call, ``client.<operation>(**params)``.

    botocore's parser raises a bare KeyError for an answer that is well-formed XML but not
    this operation's (a proxy's error page sent with HTTP 200): say that in one line."""
    try:
        return getattr(client, operation)(**params)
    except KeyError as e:
        raise CredprocError(f"connection {conn_id!r}: STS answered {operation} with something else "
                            f"(no {e.args[0]} element)") from e


def from_sts_response(response: dict[str, Any], conn_id: str, user_key: str = "AssumedRoleUser") -> Credentials:
    """The credentials of an AssumeRole* answer; the account comes from the assumed role's ARN.

    An answer without them (a proxy's error page served with HTTP 200, say) is a failure to
    obtain credentials, said in one line, not a KeyError."""
    creds = response.get("Credentials") or {}
    needed = ("AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration")
    missing = [key for key in needed if not creds.get(key)]
    if missing:
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode", "?")
        raise CredprocError(f"connection {conn_id!r}: STS answered (HTTP {status}) without credentials: "
                            f"no {', '.join(missing)}")
    return Credentials(
        access_key_id=creds["AccessKeyId"],
        secret_access_key=creds["SecretAccessKey"],
        session_token=creds["SessionToken"],
        expiration=creds["Expiration"],
        account_id=account_from_arn(response.get(user_key, {}).get("Arn")),
    )
