"""STS AssumeRoleWithWebIdentity (Google or a token file): not built yet."""

from __future__ import annotations


def fetch(factory):
    raise factory.conn.error(
        "assume_role_method assume_role_with_web_identity is not built yet in this credproc version"
    )
