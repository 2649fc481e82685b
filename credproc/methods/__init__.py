"""Ways of getting credentials: one module per STS call (*how to fetch*).

Each module has ``fetch(context) -> Credentials``. A method gets a :class:`Context` - the
connection, a way to make its STS client, the basic session, a logger - and never the
session factory that runs it, so a method cannot reach back into the factory and the two
cannot import each other. Modules are imported only when their method is used, so the
Kerberos and Google stacks load only for their connections.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import boto3
    from mypy_boto3_sts.client import STSClient  # a stub-only package: never imported at run time

    from credproc.connection import AwsConnection
    from credproc.protocol import Credentials

MODULES = {
    "assume_role": "credproc.methods.assume_role",
    "assume_role_with_saml": "credproc.methods.saml",
    "assume_role_with_web_identity": "credproc.methods.web_identity",
}


@dataclass(frozen=True)
class Context:
    """What a method needs to make its one STS call.

    ``sts_client()`` is signed with the basic session's credentials (resolving them);
    ``unsigned_sts_client()`` resolves none, for the calls whose only proof is a token or an
    assertion (and which must work where the basic session would loop back into credproc).
    Both use the connection's endpoint, TLS settings, region and botocore Config.
    """

    conn: AwsConnection
    log: logging.Logger
    basic_session: Callable[[], boto3.session.Session]
    sts_client: Callable[[], STSClient]
    unsigned_sts_client: Callable[[], STSClient]


def fetch(method: str, context: Context) -> Credentials:
    module = importlib.import_module(MODULES[method])
    credentials: Credentials = module.fetch(context)
    return credentials
