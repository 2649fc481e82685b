"""STS AssumeRoleWithWebIdentity, with a token from a file or from Google.

``assume_role_with_web_identity_federation`` says where the token comes from:

* ``file`` (also when the key is absent, as IRSA users expect): see ``token_file``;
* ``google``: a Google ID token for ``assume_role_with_web_identity_federation_audience``
  from Application Default Credentials (see ``google``, loaded only here).

The call is unsigned: the token is the only proof, so no AWS credentials are resolved for
it, and the token is registered as a secret the moment it is read.
"""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError

from credproc import sts
from credproc.connection import AwsConnection
from credproc.errors import CredprocError
from credproc.methods import Context
from credproc.methods.web_identity import token_file
from credproc.protocol import Credentials
from credproc.settings import Table

FEDERATIONS = ("file", "google")
FEDERATION_KEY = "assume_role_with_web_identity_federation"
AUDIENCE_KEY = "assume_role_with_web_identity_federation_audience"
# Parameters credproc sets itself; in assume_role_kwargs they would clash.
RESERVED_KWARGS = ("RoleArn", "WebIdentityToken")


def fetch(context: Context) -> Credentials:
    conn = context.conn
    extra = Table(conn.extra_config, "", conn.error)
    federation = extra.string(FEDERATION_KEY, strip=True) or "file"
    if federation not in FEDERATIONS:
        raise conn.error(f"{FEDERATION_KEY} {federation!r} is not one of {', '.join(FEDERATIONS)}")
    clashing = [key for key in RESERVED_KWARGS if key in conn.assume_role_kwargs]
    if clashing:
        raise conn.error(f"assume_role_kwargs must not set {', '.join(clashing)}: credproc sets it")
    if federation == "google":
        token, source = _google_token(conn, extra.string(AUDIENCE_KEY, strip=True))
    else:
        token, source = token_file.token(conn)

    try:
        client = context.unsigned_sts_client()
        context.log.debug("AssumeRoleWithWebIdentity %s for connection %r, token from %s",
                          conn.role_arn, conn.conn_id, source)
        response = sts.call(client, "assume_role_with_web_identity", conn.conn_id,
                            RoleArn=conn.role_arn, WebIdentityToken=token, **conn.assume_role_kwargs)
    except ClientError as e:
        # STS's own message says what is wrong with the token, never the token; add where
        # it came from, which is what the user has to go and fix.
        error = sts.translate(e, conn)
        raise type(error)(f"{error} (web identity token from {source})") from e
    except BotoCoreError as e:
        raise sts.translate(e, conn) from e
    return sts.credentials_of(response, conn.conn_id)


def _google_token(conn: AwsConnection, audience: str | None) -> tuple[str, str]:
    if not audience:
        raise conn.error(f"federation google needs {AUDIENCE_KEY}: the audience (aud) the Google ID "
                         "token is issued for, which the role's trust policy checks")
    try:
        from credproc.methods.web_identity import google
    except ImportError as e:
        raise conn.error(f"federation google needs google-auth, which is not installed "
                         f"(no module {e.name or 'google.auth'!r}): pip install 'credproc[google]'") from None
    try:
        found = google.id_token(audience)
    except CredprocError as e:  # ConfigError included: keep the exit code, add the connection
        raise type(e)(f"connection {conn.conn_id!r} ({conn.origin}): {e}") from None
    return found.token, found.source
