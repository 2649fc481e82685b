"""The credentials a boto3 session holds, frozen into what credproc prints.

A session's credentials may come from the connection's key pair, from boto3's default chain
(environment, shared files, IRSA web identity, container and instance metadata) or from a
user's session factory; :func:`freeze` resolves them once and keeps their expiry.
"""

from __future__ import annotations

import boto3
from botocore.credentials import Credentials as BotocoreCredentials

from credproc.errors import ConfigError, CredprocError
from credproc.log import add_secret
from credproc.protocol import Credentials

CHAIN = ("environment variables, the shared credentials and config files, web identity "
         "(AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE), container and instance metadata")


def session_credentials(session: object, conn_id: str,
                        supplier: str | None = None) -> BotocoreCredentials:
    """The botocore credentials of ``session``, resolved (a refreshable one has fetched).

    ``supplier`` names a user's session factory: a session of its that is not a boto3
    session, or holds no credentials, is a configuration error (exit 2), not a failure of
    boto3's chain.
    """
    if not isinstance(session, boto3.session.Session):
        kind = type(session)
        hint = (" (wrap it: boto3.session.Session(botocore_session=...))"
                if kind.__module__.startswith("botocore.") else "")
        raise ConfigError(f"connection {conn_id!r}: {supplier or 'the factory'} returned "
                          f"{kind.__module__}.{kind.__qualname__}, not a boto3.session.Session{hint}")
    credentials = session.get_credentials()
    if credentials is None:
        if supplier:
            raise ConfigError(f"connection {conn_id!r}: {supplier} returned a session without credentials "
                              f"(boto3's chain found none either: it tried {CHAIN})")
        raise CredprocError(f"connection {conn_id!r}: no AWS credentials found; boto3's chain tried {CHAIN}")
    return credentials


def freeze(session: boto3.session.Session, conn_id: str, supplier: str | None = None) -> Credentials:
    """The session's credentials, resolved once, with their expiry when they have one.

    ``supplier``: see :func:`session_credentials`.
    """
    credentials = session_credentials(session, conn_id, supplier)
    frozen = credentials.get_frozen_credentials()
    if not frozen.access_key or not frozen.secret_key:
        raise ConfigError(f"connection {conn_id!r}: {supplier or 'the session'}'s credentials have no "
                          "access key pair")
    add_secret(frozen.secret_key)
    add_secret(frozen.token)
    # RefreshableCredentials (assume-role profiles, process, metadata, custom factories) know
    # their expiry; plain Credentials are long-term keys and print without one.
    expiry = getattr(credentials, "_expiry_time", None)
    return Credentials(
        access_key_id=frozen.access_key,
        secret_access_key=frozen.secret_key,
        session_token=frozen.token or None,
        expiration=expiry,
        account_id=getattr(frozen, "account_id", None) or None,
    )
