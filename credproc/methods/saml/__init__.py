"""STS AssumeRoleWithSAML through a Kerberos (SPNEGO) protected identity provider.

One fetch, one module per step: the settings (``settings``: the extra's
``assume_role_with_saml`` table, checked whole before anything is asked), the GET of
``idp_url`` with the user's Kerberos ticket (``idp``), the base64 SAML assertion picked out
of the page (``page``), and ``AssumeRoleWithSAML``. The call is unsigned - the assertion is
the only proof - so no AWS credentials are resolved for it and nothing can recurse into
credproc. The result is cached like any other expiring credentials, so the whole chain runs
once per refresh, under the cache entry's lock.

The Kerberos stack (requests-gssapi, gssapi, lxml) is the optional extra ``credproc[saml]``:
it is imported only here, and its absence is an error that says how to install it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from credproc import sts
from credproc.connection import AwsConnection
from credproc.errors import CredprocError
from credproc.log import add_secret, warn
from credproc.methods import Context
from credproc.methods.saml.settings import TABLE, read_settings
from credproc.protocol import Credentials

if TYPE_CHECKING:
    from credproc.methods.saml.idp import Page

EXTRA_HINT = ("pip install 'credproc[saml]' (gssapi builds against MIT Kerberos: first install "
              "libkrb5-dev and gcc on Debian/Ubuntu, krb5-devel and gcc on Fedora/RHEL)")

log = logging.getLogger("credproc.saml")


def fetch(context: Context) -> Credentials:
    """The role's credentials: settings checked, IdP page fetched, assertion found, STS asked."""
    conn = context.conn
    settings = read_settings(conn)
    modules = _import_extra(conn)
    from credproc.methods.saml import idp
    from credproc.methods.saml import page as samlpage

    try:
        finder = samlpage.compile_xpath(settings.saml_response_xpath)
    except samlpage.BadXPath as e:
        raise conn.error(f"{TABLE}.saml_response_xpath {settings.saml_response_xpath!r} {e}") from None
    retry = _retry(conn, settings.idp_request_retry_kwargs, modules["Retry"])
    mutual = (None if settings.mutual_authentication is None
              else getattr(modules["requests_gssapi"], settings.mutual_authentication))

    prefix = f"connection {conn.conn_id!r}"
    try:
        answer = idp.get(settings.idp_url, mutual_authentication=mutual,
                         request_kwargs=settings.idp_request_kwargs, retry=retry)
    except idp.IdpError as e:
        raise CredprocError(f"{prefix}: {e}") from None
    if settings.log_idp_response:
        _log_page(conn.conn_id, answer)
    xpath_name = (f"{TABLE}.saml_response_xpath {finder.expression!r}" if settings.saml_response_xpath
                  else f"the default XPath {finder.expression!r} (set {TABLE}.saml_response_xpath to change it)")
    try:
        assertion = finder.find(answer.content)
    except samlpage.BadXPath as e:
        raise conn.error(f"{xpath_name} {e}") from None
    except samlpage.PageError as e:
        raise CredprocError(f"{prefix}: {xpath_name}: {e} ({answer.describe()}); "
                            f"set log_idp_response = true and run with --debug to see the page") from None
    add_secret(assertion)

    client = context.unsigned_sts_client()
    log.debug("AssumeRoleWithSAML %s with principal %s for connection %r", conn.role_arn,
              settings.principal_arn, conn.conn_id)
    response = sts.call(client, "assume_role_with_saml", conn.conn_id, RoleArn=conn.role_arn,
                        PrincipalArn=settings.principal_arn, SAMLAssertion=assertion, **settings.sts_kwargs)
    return sts.credentials_of(response, conn.conn_id)


def _retry(conn: AwsConnection, kwargs: dict[str, Any], retry_class: type) -> Any:
    """urllib3's Retry from idp_request_retry_kwargs; without them, no retry at all."""
    if not kwargs:
        return retry_class(total=0, read=False, redirect=False)  # as requests does by default
    try:
        return retry_class(**kwargs)
    except (TypeError, ValueError) as e:
        raise conn.error(f"{TABLE}.idp_request_retry_kwargs are not urllib3 Retry parameters: {e}") from None


def _import_extra(conn: AwsConnection) -> dict[str, Any]:
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


def _log_page(conn_id: str, answer: Page) -> None:
    """``log_idp_response``: the page, at debug level only, after a warning that says why
    it should not be left on. Logged before the assertion is registered as a secret, since
    seeing it is what the setting is for."""
    if not log.isEnabledFor(logging.DEBUG):
        return
    warn(f"connection {conn_id!r}: log_idp_response is on: the IdP response logged below holds a SAML "
         "assertion, a credential that grants AWS access until it expires; do not share this output, "
         "and turn log_idp_response off again")
    try:
        text = answer.content.decode(answer.encoding or "utf-8", "replace")
    except LookupError:  # a charset Python does not know
        text = answer.content.decode("utf-8", "replace")
    log.debug("IdP response (%s, %d bytes):\n%s", answer.describe(), len(answer.content), text)
