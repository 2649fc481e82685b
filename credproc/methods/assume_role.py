"""STS AssumeRole, signed with the connection's initial credentials."""

from __future__ import annotations

from credproc import sts
from credproc.methods import Context
from credproc.protocol import Credentials


def fetch(context: Context) -> Credentials:
    conn = context.conn
    client = context.sts_client()
    context.log.debug("AssumeRole %s for connection %r", conn.role_arn, conn.conn_id)
    response = sts.call(client, "assume_role", conn.conn_id, RoleArn=conn.role_arn, **conn.assume_role_kwargs)
    return sts.credentials_of(response, conn.conn_id)
