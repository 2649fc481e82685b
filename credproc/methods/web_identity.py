"""STS AssumeRoleWithWebIdentity, with a token from Google or from a file.

``assume_role_with_web_identity_federation`` says where the token comes from:

* ``file`` (also when the key is absent, as IRSA users expect): the file named by
  ``assume_role_with_web_identity_token_file``, else ``AWS_WEB_IDENTITY_TOKEN_FILE``, read
  afresh at every fetch because projected tokens (EKS, Kubernetes) are rotated in place;
* ``google``: a Google ID token for ``assume_role_with_web_identity_federation_audience``
  from Application Default Credentials (see ``credproc.google``, loaded only here).

The call is unsigned: the token is the only proof, so no AWS credentials are resolved for
it, and the token is registered as a secret the moment it is read.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from credproc.errors import CredprocError
from credproc.log import add_secret
from credproc.methods import call, from_sts_response
from credproc.protocol import Credentials

if TYPE_CHECKING:
    from credproc.factory import BaseSessionFactory

FEDERATIONS = ("file", "google")
FEDERATION_KEY = "assume_role_with_web_identity_federation"
AUDIENCE_KEY = "assume_role_with_web_identity_federation_audience"
TOKEN_FILE_KEY = "assume_role_with_web_identity_token_file"
TOKEN_FILE_VARIABLE = "AWS_WEB_IDENTITY_TOKEN_FILE"
# Parameters credproc sets itself; in assume_role_kwargs they would clash.
RESERVED_KWARGS = ("RoleArn", "WebIdentityToken")


def fetch(factory: "BaseSessionFactory") -> Credentials:
    conn = factory.conn
    federation = _setting(conn, FEDERATION_KEY) or "file"
    if federation not in FEDERATIONS:
        raise conn.error(f"{FEDERATION_KEY} {federation!r} is not one of {', '.join(FEDERATIONS)}")
    clashing = [key for key in RESERVED_KWARGS if key in conn.assume_role_kwargs]
    if clashing:
        raise conn.error(f"assume_role_kwargs must not set {', '.join(clashing)}: credproc sets it")
    if federation == "google":
        token, source = _google_token(conn)
    else:
        token, source = _file_token(conn)

    from botocore.exceptions import BotoCoreError, ClientError

    from credproc.factory import translate

    try:
        client = factory.sts_client(_unsigned_session(factory), unsigned=True)
        factory.log.debug("AssumeRoleWithWebIdentity %s for connection %r, token from %s",
                          conn.role_arn, conn.conn_id, source)
        response = call(client, "assume_role_with_web_identity", conn.conn_id,
                        RoleArn=conn.role_arn, WebIdentityToken=token, **conn.assume_role_kwargs)
    except ClientError as e:
        # STS's own message says what is wrong with the token, never the token; add where
        # it came from, which is what the user has to go and fix.
        error = translate(e, conn)
        raise type(error)(f"{error} (web identity token from {source})") from e
    except BotoCoreError as e:
        raise translate(e, conn) from e
    return from_sts_response(response, factory.conn.conn_id)


def _unsigned_session(factory):
    """A session for the unsigned call: region and profile settings, no credentials.

    Not ``factory.basic_session``: that one guards against an AWS profile that runs credproc
    for this very connection, a loop only when credentials are resolved - and here none
    are, so ``AWS_PROFILE=p`` with ``p`` running this connection must keep working.
    """
    import boto3

    conn = factory.conn
    return boto3.session.Session(profile_name=conn.profile_name, region_name=factory.region_name)


def _setting(conn, key: str) -> str | None:
    value = conn.extra_config.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise conn.error(f"{key} must be a string, not {type(value).__name__}")
    return value.strip()


# -- federation "file" ---------------------------------------------------------------------


def _file_token(conn) -> tuple[str, str]:
    path = _setting(conn, TOKEN_FILE_KEY)
    where = TOKEN_FILE_KEY
    if not path:
        path = os.environ.get(TOKEN_FILE_VARIABLE) or None
        where = TOKEN_FILE_VARIABLE
    if not path:
        raise conn.error(f"federation file needs the token file: set {TOKEN_FILE_KEY} or the environment "
                         f"variable {TOKEN_FILE_VARIABLE}")
    path = os.path.expanduser(path)
    return read_token_file(conn.conn_id, path, where), f"file {path} ({where})"


# STS accepts a WebIdentityToken of at most 20,000 characters; a file far larger is not one.
MAX_TOKEN_BYTES = 64 * 1024


def read_token_file(conn_id: str, path: str, where: str) -> str:
    """The token in ``path``, without surrounding whitespace; read anew on every call."""
    prefix = f"connection {conn_id!r}: web identity token file {path} ({where})"
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_TOKEN_BYTES + 1)  # bounded: a token file on /dev/zero must not hang
    except FileNotFoundError:
        raise CredprocError(f"{prefix} does not exist") from None
    except IsADirectoryError:
        raise CredprocError(f"{prefix} is a directory") from None
    except OSError as e:
        raise CredprocError(f"{prefix} cannot be read: {e.strerror or e}") from None
    if len(data) > MAX_TOKEN_BYTES:
        raise CredprocError(f"{prefix} is larger than {MAX_TOKEN_BYTES // 1024} KiB: not a token "
                            "(STS takes at most 20,000 characters)")
    try:
        token = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise CredprocError(f"{prefix} is not text") from None
    if not token:
        raise CredprocError(f"{prefix} is empty")
    add_secret(token)
    return token


# -- federation "google" -------------------------------------------------------------------


def _google_token(conn) -> tuple[str, str]:
    audience = _setting(conn, AUDIENCE_KEY)
    if not audience:
        raise conn.error(f"federation google needs {AUDIENCE_KEY}: the audience (aud) the Google ID "
                         "token is issued for, which the role's trust policy checks")
    try:
        from credproc import google
    except ImportError as e:
        raise conn.error(f"federation google needs google-auth, which is not installed "
                         f"(no module {e.name or 'google.auth'!r}): pip install 'credproc[google]'") from None
    try:
        token = google.id_token(audience)
    except CredprocError as e:  # ConfigError included: keep the exit code, add the connection
        raise type(e)(f"connection {conn.conn_id!r} ({conn.origin}): {e}") from None
    return token.token, token.source
