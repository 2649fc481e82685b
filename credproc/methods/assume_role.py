"""STS AssumeRole, signed with the connection's initial credentials."""

from __future__ import annotations

from credproc.methods import call, from_sts_response
from credproc.protocol import Credentials


def fetch(factory) -> Credentials:
    conn = factory.conn
    client = factory.sts_client(factory.basic_session)
    factory.log.debug("AssumeRole %s for connection %r", conn.role_arn, conn.conn_id)
    response = call(client, "assume_role", conn.conn_id, RoleArn=conn.role_arn, **conn.assume_role_kwargs)
    return from_sts_response(response, factory.conn.conn_id)
