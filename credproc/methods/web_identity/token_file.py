"""The ``file`` federation: a web identity token read from a file, afresh at every fetch,
because projected tokens (EKS, Kubernetes) are rotated in place."""

from __future__ import annotations

import os

from credproc.connection import AwsConnection
from credproc.errors import CredprocError
from credproc.log import add_secret
from credproc.settings import Table

KEY = "assume_role_with_web_identity_token_file"
VARIABLE = "AWS_WEB_IDENTITY_TOKEN_FILE"
# STS accepts a WebIdentityToken of at most 20,000 characters; a file far larger is not one.
MAX_TOKEN_BYTES = 64 * 1024


def token(conn: AwsConnection) -> tuple[str, str]:
    """The token, and where it came from (for messages): the extra's file, else the variable's."""
    path = Table(conn.extra_config, "", conn.error).path(KEY)
    where = KEY
    if not path:
        path = os.path.expanduser(os.environ.get(VARIABLE) or "") or None
        where = VARIABLE
    if not path:
        raise conn.error(f"federation file needs the token file: set {KEY} or the environment variable {VARIABLE}")
    return read(conn.conn_id, path, where), f"file {path} ({where})"


def read(conn_id: str, path: str, where: str) -> str:
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
        value = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise CredprocError(f"{prefix} is not text") from None
    if not value:
        raise CredprocError(f"{prefix} is empty")
    add_secret(value)
    return value
