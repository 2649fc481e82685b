"""Credentials a session already holds: the connection's key pair, or boto3's default chain
(environment, shared files, IRSA web identity, container and instance metadata)."""

from __future__ import annotations

import boto3

from credproc import recursion
from credproc.errors import ConfigError, CredprocError
from credproc.log import add_secret
from credproc.protocol import Credentials

CHAIN = ("environment variables, the shared credentials and config files, web identity "
         "(AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE), container and instance metadata")


def guard_profile(session: boto3.session.Session, conn_id: str) -> None:
    """Refuse a chain that would reach a profile running credproc for this connection."""
    botocore_session = session._session  # boto3 exposes no public handle on its config
    profiles = botocore_session.full_config.get("profiles", {})
    profile = botocore_session.profile or "default"
    recursion.check_profile(conn_id, profile, profiles)


def freeze(session: boto3.session.Session, conn_id: str) -> Credentials:
    """The session's credentials, resolved once, with their expiry when they have one."""
    credentials = session.get_credentials()
    if credentials is None:
        raise CredprocError(f"connection {conn_id!r}: no AWS credentials found; boto3's chain tried {CHAIN}")
    frozen = credentials.get_frozen_credentials()
    if not frozen.access_key or not frozen.secret_key:
        raise ConfigError(f"connection {conn_id!r}: the session's credentials have no access key pair")
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
