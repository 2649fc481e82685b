"""Ways of getting credentials: one module per STS call (how to fetch).

Each module has ``fetch(factory) -> Credentials``; the factory supplies the connection,
the session that signs the call and a ready STS client. Modules are imported only when
their method is used, so the Kerberos and Google stacks load only for their connections.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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


def from_sts_response(response: dict[str, Any], user_key: str = "AssumedRoleUser") -> Credentials:
    """The credentials of an AssumeRole* answer; the account comes from the assumed role's ARN."""
    creds = response["Credentials"]
    return Credentials(
        access_key_id=creds["AccessKeyId"],
        secret_access_key=creds["SecretAccessKey"],
        session_token=creds.get("SessionToken"),
        expiration=creds["Expiration"],
        account_id=account_from_arn(response.get(user_key, {}).get("Arn")),
    )
