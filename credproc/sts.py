"""STS calls and their failures: one call, its answer turned into Credentials, and any botocore
error turned into one line with the right exit code.

Shared by the ways of getting credentials (``credproc.methods``), the session factory and
``credproc check``; it imports botocore, so only a miss loads it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore import exceptions as bx

from credproc import recursion
from credproc.errors import ConfigError, CredprocError
from credproc.log import one_line
from credproc.protocol import Credentials, account_from_arn
from credproc.session import CHAIN

if TYPE_CHECKING:
    from credproc.connection import AwsConnection


def call(client: Any, operation: str, conn_id: str, **params: Any) -> dict[str, Any]:
    """One STS call, ``client.<operation>(**params)``.

    botocore's parser raises a bare KeyError for an answer that is well-formed XML but not
    this operation's (a proxy's error page sent with HTTP 200): say that in one line."""
    try:
        response: dict[str, Any] = getattr(client, operation)(**params)
    except KeyError as e:
        raise CredprocError(f"connection {conn_id!r}: STS answered {operation} with something else "
                            f"(no {e.args[0]} element)") from e
    return response


def credentials_of(response: dict[str, Any], conn_id: str, user_key: str = "AssumedRoleUser") -> Credentials:
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


def translate(error: Exception, conn: AwsConnection) -> CredprocError:
    """One line that says what went wrong, for a botocore exception; exit 2 for bad settings."""
    prefix = f"connection {conn.conn_id!r}"
    if isinstance(error, bx.ClientError):
        info = error.response.get("Error", {})
        operation = getattr(error, "operation_name", "STS")
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return CredprocError(f"{prefix}: STS {operation} failed: {info.get('Code', 'error')}"
                             f"{f' (HTTP {status})' if status else ''}: {one_line(info.get('Message', ''))}")
    if isinstance(error, bx.ParamValidationError):
        # botocore quotes the offending value ("value: 73519046"), which may be a secret
        # (an MFA code, an ExternalId): name the parameter and the problem, not the value.
        import re

        message = re.sub(r"value: .*?, (type|valid)", r"\1", one_line(error))
        return ConfigError(f"{prefix} ({conn.origin}): {message}")
    if isinstance(error, (bx.ProfileNotFound, bx.InvalidConfigError, bx.UnknownRegionError,
                          bx.InvalidRetryConfigurationError, bx.InvalidRegionError)):
        return ConfigError(f"{prefix} ({conn.origin}): {one_line(error)}")
    if isinstance(error, bx.CredentialRetrievalError) and "credproc: error:" in str(error):
        # A profile's credential_process ran credproc (another connection, or a loop the
        # child caught): pass its own message on, not botocore's wrapping of it.
        child = one_line(str(error).rsplit("credproc: error:", 1)[1].strip())
        kind = ConfigError if recursion.LOOP_MARKER in child else CredprocError
        return kind(f"{prefix}: the credential_process of its AWS profile failed: {child}")
    if isinstance(error, bx.NoCredentialsError):
        return CredprocError(f"{prefix}: no AWS credentials to sign the STS call; boto3's chain tried {CHAIN}")
    if isinstance(error, bx.NoRegionError):
        return ConfigError(f"{prefix} ({conn.origin}): no region: set region_name, or AWS_DEFAULT_REGION")
    if isinstance(error, (bx.ConnectTimeoutError, bx.ReadTimeoutError, bx.EndpointConnectionError)):
        return CredprocError(f"{prefix}: STS did not answer: {one_line(error)}")
    return CredprocError(f"{prefix}: {type(error).__name__}: {one_line(error)}")
