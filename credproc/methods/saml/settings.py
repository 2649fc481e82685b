"""The ``assume_role_with_saml`` table of a connection's extra, checked whole before the IdP
is asked; a bad value is a configuration error naming its key.

See ``SETTINGS`` for the keys. ``assume_role_kwargs`` may also sit inside the table (where the
seed's documentation put it); it is merged with the connection's own.
"""

from __future__ import annotations

import difflib
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from credproc import sensitive
from credproc.connection import AwsConnection, role_session_name
from credproc.log import warn
from credproc.settings import Table

TABLE = "assume_role_with_saml"
SETTINGS = ("principal_arn", "idp_url", "idp_auth_method", "mutual_authentication", "idp_request_kwargs",
            "idp_request_retry_kwargs", "log_idp_response", "saml_response_xpath", "assume_role_kwargs")
# "spegno" is how the seed (and so Airflow, and every existing connection) spells it.
AUTH_METHODS = ("http_spegno_auth", "http_spnego_auth")
MUTUAL_AUTHENTICATION = ("REQUIRED", "OPTIONAL", "DISABLED")
# What requests.get may be given; auth is ours, the rest (stream, hooks, data) makes no sense here.
REQUEST_KWARGS = ("headers", "cookies", "params", "timeout", "verify", "cert", "proxies", "allow_redirects")
# AssumeRoleWithSAML's parameters besides the three credproc sets (RoleArn, PrincipalArn,
# SAMLAssertion). It has no RoleSessionName: the IdP puts the session name in the assertion.
STS_KWARGS = ("DurationSeconds", "Policy", "PolicyArns")


@dataclass
class SamlSettings:
    principal_arn: str
    idp_url: str
    mutual_authentication: str | None = None
    idp_request_kwargs: dict[str, Any] = field(default_factory=dict)
    idp_request_retry_kwargs: dict[str, Any] = field(default_factory=dict)
    log_idp_response: bool = False
    saml_response_xpath: str | None = None
    sts_kwargs: dict[str, Any] = field(default_factory=dict)


def read_settings(conn: AwsConnection) -> SamlSettings:
    """The ``assume_role_with_saml`` table, checked whole; ConfigError naming the first bad key."""
    table = Table(conn.extra_config, "", conn.error).sub(TABLE)
    for key in sorted(set(table.values) - set(SETTINGS)):
        close = difflib.get_close_matches(key, SETTINGS, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        warn(f"connection {conn.conn_id!r} ({conn.origin}): unknown key {TABLE}.{key} is ignored{hint}")

    def needed(key: str) -> str:
        return f"assume_role_method assume_role_with_saml needs {TABLE}.{key}"

    principal_arn = table.string("principal_arn", required=needed("principal_arn"), strip=True) or ""
    if not principal_arn.startswith("arn:"):
        raise conn.error(f"{TABLE}.principal_arn {principal_arn!r} is not an ARN "
                         "(arn:aws:iam::ACCOUNT:saml-provider/NAME)")
    idp_url = table.string("idp_url", required=needed("idp_url"), strip=True) or ""
    parts = urllib.parse.urlsplit(idp_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise conn.error(f"{TABLE}.idp_url must be an http(s) URL such as https://idp.example.com/..., "
                         f"not {_scheme_and_host(idp_url)!r}")
    method = table.string("idp_auth_method", strip=True)
    if method is not None and method.lower() not in AUTH_METHODS:
        raise conn.error(f"{TABLE}.idp_auth_method {method!r} is not supported: the only method is Kerberos "
                         f"(SPNEGO), spelled {AUTH_METHODS[0]!r} or {AUTH_METHODS[1]!r}")
    mutual = table.string("mutual_authentication", strip=True)
    if mutual is not None:
        if mutual.upper() not in MUTUAL_AUTHENTICATION:
            raise conn.error(f"{TABLE}.mutual_authentication {mutual!r} is not one of "
                             f"{', '.join(MUTUAL_AUTHENTICATION)}")
        mutual = mutual.upper()
    return SamlSettings(
        principal_arn=principal_arn,
        idp_url=idp_url,
        mutual_authentication=mutual,
        idp_request_kwargs=_request_kwargs(table.sub("idp_request_kwargs"), conn),
        idp_request_retry_kwargs=table.table("idp_request_retry_kwargs"),
        log_idp_response=table.boolean("log_idp_response"),
        saml_response_xpath=table.string("saml_response_xpath", strip=True),
        sts_kwargs=_sts_kwargs(conn, table),
    )


def _scheme_and_host(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}" if parts.scheme else url.split("?", 1)[0]


def _request_kwargs(table: Table, conn: AwsConnection) -> dict[str, Any]:
    name = table.prefix.rstrip(".")
    kwargs = dict(table.values)
    unknown = sorted(set(kwargs) - set(REQUEST_KWARGS))
    if unknown:
        raise conn.error(f"{name}: {', '.join(unknown)} not accepted (allowed: {', '.join(REQUEST_KWARGS)}; "
                         "authentication is always Kerberos)")
    if "timeout" in kwargs:
        timeout = kwargs["timeout"]
        parts = timeout if isinstance(timeout, list) and len(timeout) == 2 else [timeout]
        if not all(isinstance(p, (int, float)) and not isinstance(p, bool) and p > 0 for p in parts):
            raise conn.error(f"{name}.timeout must be a number of seconds or [connect, read], not {timeout!r}")
        kwargs["timeout"] = tuple(parts) if len(parts) == 2 else parts[0]
    if "verify" in kwargs:
        verify = table.verify("verify")  # read as the connection's own verify is
        if verify is None:
            del kwargs["verify"]
        else:
            kwargs["verify"] = verify
    for key in ("headers", "cookies", "params", "proxies"):
        if key in kwargs and not isinstance(kwargs[key], dict):
            raise conn.error(f"{name}.{key} must be a table/object")
    sensitive.register(kwargs)  # headers and cookies are credentials, whatever their names
    return kwargs


def _sts_kwargs(conn: AwsConnection, table: Table) -> dict[str, Any]:
    """The connection's assume_role_kwargs (and, as the seed's docs place it, the SAML
    table's), minus the default RoleSessionName that every connection with a role gets."""
    kwargs = dict(conn.assume_role_kwargs)
    own = Table(conn.extra_config, "", conn.error).table("assume_role_kwargs")
    if kwargs.get("RoleSessionName") == role_session_name(conn.conn_id) and "RoleSessionName" not in own:
        del kwargs["RoleSessionName"]  # credproc's default, not the user's: SAML has none
    for key, value in table.table("assume_role_kwargs").items():
        if key in kwargs and kwargs[key] != value:
            raise conn.error(f"assume_role_kwargs.{key} and {TABLE}.assume_role_kwargs.{key} differ; "
                             "set it in one place")
        kwargs[key] = value
    rejected = sorted(set(kwargs) - set(STS_KWARGS))
    if rejected:
        why = (" (the session name comes from the assertion's RoleSessionName attribute, set by the IdP)"
               if "RoleSessionName" in rejected else "")
        raise conn.error(f"assume_role_kwargs: {', '.join(rejected)} not accepted by AssumeRoleWithSAML "
                         f"(allowed: {', '.join(STS_KWARGS)}){why}")
    return kwargs
