"""STS AssumeRoleWithSAML through a Kerberos (SPNEGO) protected identity provider.

One fetch: GET ``idp_url`` with the user's Kerberos ticket (``credproc.idp``), pick the
base64 SAML assertion out of the page (``credproc.samlpage``), and pass it to
``AssumeRoleWithSAML``. The call is unsigned - the assertion is the only proof - so no AWS
credentials are resolved for it and nothing can recurse into credproc. The result is cached
like any other expiring credentials, so the whole chain runs once per refresh, under the
cache entry's lock.

The settings live in the extra's ``assume_role_with_saml`` table (see ``SETTINGS``). They are
all checked before the IdP is asked; a bad one is a configuration error naming the key.
The Kerberos stack (requests-gssapi, gssapi, lxml) is the optional extra ``credproc[saml]``:
it is imported only here, and its absence is an error that says how to install it.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from credproc.errors import CredprocError
from credproc.log import add_secret, warn
from credproc.methods import call, from_sts_response
from credproc.protocol import Credentials

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
# Headers of idp_request_kwargs whose values are credentials, by words in their names.
SECRET_HEADER_WORDS = ("auth", "cookie", "token", "secret", "key", "session")

EXTRA_HINT = ("pip install 'credproc[saml]' (gssapi builds against MIT Kerberos: first install "
              "libkrb5-dev and gcc on Debian/Ubuntu, krb5-devel and gcc on Fedora/RHEL)")

log = logging.getLogger("credproc.saml")


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


def fetch(factory) -> Credentials:
    """The role's credentials: settings checked, IdP page fetched, assertion found, STS asked."""
    conn = factory.conn
    settings = read_settings(conn)
    modules = _import_extra(conn)
    from credproc import idp, samlpage

    try:
        finder = samlpage.compile_xpath(settings.saml_response_xpath)
    except samlpage.BadXPath as e:
        raise conn.error(f"{TABLE}.saml_response_xpath {settings.saml_response_xpath!r} {e}") from None
    retry = _retry(conn, settings.idp_request_retry_kwargs, modules["Retry"])
    mutual = (None if settings.mutual_authentication is None
              else getattr(modules["requests_gssapi"], settings.mutual_authentication))

    prefix = f"connection {conn.conn_id!r}"
    try:
        page = idp.get(settings.idp_url, mutual_authentication=mutual,
                       request_kwargs=settings.idp_request_kwargs, retry=retry)
    except idp.IdpError as e:
        raise CredprocError(f"{prefix}: {e}") from None
    if settings.log_idp_response:
        _log_page(conn.conn_id, page)
    xpath_name = (f"{TABLE}.saml_response_xpath {finder.expression!r}" if settings.saml_response_xpath
                  else f"the default XPath {finder.expression!r} (set {TABLE}.saml_response_xpath to change it)")
    try:
        assertion = finder.find(page.content)
    except samlpage.BadXPath as e:
        raise conn.error(f"{xpath_name} {e}") from None
    except samlpage.PageError as e:
        raise CredprocError(f"{prefix}: {xpath_name}: {e} ({page.describe()}); "
                            f"set log_idp_response = true and run with --debug to see the page") from None
    add_secret(assertion)

    client = factory.sts_client(_unsigned_session(factory), unsigned=True)
    log.debug("AssumeRoleWithSAML %s with principal %s for connection %r", conn.role_arn,
              settings.principal_arn, conn.conn_id)
    response = call(client, "assume_role_with_saml", conn.conn_id, RoleArn=conn.role_arn,
                    PrincipalArn=settings.principal_arn, SAMLAssertion=assertion, **settings.sts_kwargs)
    return from_sts_response(response, factory.conn.conn_id)


# -- settings ----------------------------------------------------------------------------


def read_settings(conn) -> SamlSettings:
    """The ``assume_role_with_saml`` table, checked whole; ConfigError naming the first bad key."""
    table = _table(conn, conn.extra_config.get(TABLE), TABLE)
    for key in sorted(set(table) - set(SETTINGS)):
        close = difflib.get_close_matches(key, SETTINGS, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        warn(f"connection {conn.conn_id!r} ({conn.origin}): unknown key {TABLE}.{key} is ignored{hint}")

    principal_arn = _string(conn, table, "principal_arn", required=True)
    if not principal_arn.startswith("arn:"):
        raise conn.error(f"{TABLE}.principal_arn {principal_arn!r} is not an ARN "
                         "(arn:aws:iam::ACCOUNT:saml-provider/NAME)")
    idp_url = _string(conn, table, "idp_url", required=True)
    parts = urllib.parse.urlsplit(idp_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise conn.error(f"{TABLE}.idp_url must be an http(s) URL such as https://idp.example.com/..., "
                         f"not {_scheme_and_host(idp_url)!r}")
    method = _string(conn, table, "idp_auth_method")
    if method is not None and method.lower() not in AUTH_METHODS:
        raise conn.error(f"{TABLE}.idp_auth_method {method!r} is not supported: the only method is Kerberos "
                         f"(SPNEGO), spelled {AUTH_METHODS[0]!r} or {AUTH_METHODS[1]!r}")
    mutual = _string(conn, table, "mutual_authentication")
    if mutual is not None:
        if mutual.upper() not in MUTUAL_AUTHENTICATION:
            raise conn.error(f"{TABLE}.mutual_authentication {mutual!r} is not one of "
                             f"{', '.join(MUTUAL_AUTHENTICATION)}")
        mutual = mutual.upper()
    xpath = _string(conn, table, "saml_response_xpath")
    return SamlSettings(
        principal_arn=principal_arn,
        idp_url=idp_url,
        mutual_authentication=mutual,
        idp_request_kwargs=_request_kwargs(conn, table),
        idp_request_retry_kwargs=_table(conn, table.get("idp_request_retry_kwargs"),
                                        f"{TABLE}.idp_request_retry_kwargs"),
        log_idp_response=_boolean(conn, table, "log_idp_response"),
        saml_response_xpath=xpath,
        sts_kwargs=_sts_kwargs(conn, table),
    )


def _scheme_and_host(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}" if parts.scheme else url.split("?", 1)[0]


def _table(conn, value: Any, name: str) -> dict[str, Any]:
    """A table, or an object in JSON text (a URI's query can only carry strings)."""
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            value = None
    if not isinstance(value, dict):
        raise conn.error(f"{name} must be a table/object (in a URI, pass it inside __extra__)")
    return dict(value)


def _string(conn, table: dict, key: str, *, required: bool = False) -> str | None:
    value = table.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise conn.error(f"assume_role_method assume_role_with_saml needs {TABLE}.{key}")
        return None
    if not isinstance(value, str):
        raise conn.error(f"{TABLE}.{key} must be a string, not {type(value).__name__}")
    return value.strip()


def _boolean(conn, table: dict, key: str) -> bool:
    value = table.get(key, False)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", "yes", "no", ""):
        return value.strip().lower() in ("true", "1", "yes")
    if not isinstance(value, bool):
        raise conn.error(f"{TABLE}.{key} must be true or false, not {value!r}")
    return value


def _request_kwargs(conn, table: dict) -> dict[str, Any]:
    name = f"{TABLE}.idp_request_kwargs"
    kwargs = _table(conn, table.get("idp_request_kwargs"), name)
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
        verify = kwargs["verify"]
        if isinstance(verify, str) and verify.strip().lower() in ("true", "false"):
            kwargs["verify"] = verify.strip().lower() == "true"  # not a CA bundle named "false"
        elif not isinstance(verify, (bool, str)):
            raise conn.error(f"{name}.verify must be true, false or a CA bundle path")
        elif isinstance(verify, str):
            kwargs["verify"] = os.path.expanduser(verify)
            if not os.path.exists(kwargs["verify"]):  # requests would fail later, and less clearly
                raise conn.error(f"{name}.verify {verify!r} is neither true/false nor an existing CA bundle")
    for key in ("headers", "cookies", "params", "proxies"):
        if key in kwargs and not isinstance(kwargs[key], dict):
            raise conn.error(f"{name}.{key} must be a table/object")
    for header, value in (kwargs.get("headers") or {}).items():
        if any(word in str(header).lower() for word in SECRET_HEADER_WORDS):
            add_secret(value)  # an Authorization or Cookie header is a credential
    for value in (kwargs.get("cookies") or {}).values():
        add_secret(value)
    return kwargs


def _sts_kwargs(conn, table: dict) -> dict[str, Any]:
    """The connection's assume_role_kwargs (and, as the seed's docs place it, the SAML
    table's), minus the default RoleSessionName that every connection with a role gets."""
    from credproc.connection import role_session_name

    kwargs = dict(conn.assume_role_kwargs)
    if kwargs.get("RoleSessionName") == role_session_name(conn.conn_id) and "RoleSessionName" not in _table(
            conn, conn.extra_config.get("assume_role_kwargs"), "assume_role_kwargs"):
        del kwargs["RoleSessionName"]  # credproc's default, not the user's: SAML has none
    nested = _table(conn, table.get("assume_role_kwargs"), f"{TABLE}.assume_role_kwargs")
    for key, value in nested.items():
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


def _retry(conn, kwargs: dict[str, Any], retry_class: type):
    """urllib3's Retry from idp_request_retry_kwargs; without them, no retry at all."""
    if not kwargs:
        return retry_class(total=0, read=False, redirect=False)  # as requests does by default
    try:
        return retry_class(**kwargs)
    except (TypeError, ValueError) as e:
        raise conn.error(f"{TABLE}.idp_request_retry_kwargs are not urllib3 Retry parameters: {e}") from None


# -- the optional extra ------------------------------------------------------------------


def _import_extra(conn) -> dict[str, Any]:
    """The modules of ``credproc[saml]``, or a ConfigError that says how to install them."""
    try:
        import requests_gssapi
        from lxml import etree
        from urllib3.util.retry import Retry
    except ImportError as e:
        missing = e.name or "a module"
        raise conn.error(f"assume_role_method assume_role_with_saml needs the optional packages of "
                         f"credproc[saml] ({missing} cannot be imported: {e}): {EXTRA_HINT}") from None
    except OSError as e:  # gssapi installed, but the MIT Kerberos library it links against is gone
        raise conn.error(f"assume_role_with_saml: the Kerberos library cannot be loaded ({e}): install "
                         "MIT Kerberos (libgssapi-krb5-2 on Debian/Ubuntu, krb5-libs on Fedora/RHEL)") from None
    return {"requests_gssapi": requests_gssapi, "etree": etree, "Retry": Retry}


# -- the rest ----------------------------------------------------------------------------


def _log_page(conn_id: str, page) -> None:
    """``log_idp_response``: the page, at debug level only, after a warning that says why
    it should not be left on. Logged before the assertion is registered as a secret, since
    seeing it is what the setting is for."""
    if not log.isEnabledFor(logging.DEBUG):
        return
    warn(f"connection {conn_id!r}: log_idp_response is on: the IdP response logged below holds a SAML "
         "assertion, a credential that grants AWS access until it expires; do not share this output, "
         "and turn log_idp_response off again")
    try:
        text = page.content.decode(page.encoding or "utf-8", "replace")
    except LookupError:  # a charset Python does not know
        text = page.content.decode("utf-8", "replace")
    log.debug("IdP response (%s, %d bytes):\n%s", page.describe(), len(page.content), text)


def _unsigned_session(factory):
    """A session for the unsigned call: region and profile settings, no credentials.

    Not ``factory.basic_session``: that one refuses an AWS profile that runs credproc for
    this very connection, a loop only when credentials are resolved - here none are, so
    ``AWS_PROFILE=p`` with ``p`` running this connection must keep working.
    """
    import boto3

    return boto3.session.Session(profile_name=factory.conn.profile_name, region_name=factory.region_name)
