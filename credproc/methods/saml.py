"""STS AssumeRoleWithSAML through a Kerberos-protected IdP: not built yet."""

from __future__ import annotations

from credproc.errors import ConfigError


def fetch(factory):
    raise factory.conn.error("assume_role_method assume_role_with_saml is not built yet in this credproc version")
