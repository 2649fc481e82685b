"""IAM Identity Center (SSO) profiles: what went wrong, in one line that says what to do.

A connection whose AWS profile is an SSO profile (``sso_session``, or the legacy
``sso_start_url``, with ``sso_account_id`` and ``sso_role_name``) gets its credentials from
botocore's own SSO provider: it reads the token ``aws sso login`` left in
``~/.aws/sso/cache``, renews it at the OIDC endpoint when it can (an ``sso_session`` token
with a refresh token), and asks the portal for the role's credentials. credproc caches those
like any other, and never logs anyone in: that needs a browser, and a ``credential_process``
runs where nobody may be looking. When the session is over, botocore raises one of several
errors (the token missing, expired, refused by the portal, not renewed); they all mean the
same thing to the person, which :func:`translate` says with the profile to log in with.
"""

from __future__ import annotations

from typing import Any

from botocore import exceptions as bx

from credproc.errors import CredprocError
from credproc.log import one_line

SSO_KEYS = ("sso_session", "sso_start_url", "sso_account_id", "sso_role_name")
PORTAL_PATH = "/federation/credentials"  # GetRoleCredentials: how a network error names the portal


def sso_profile(profiles: dict[str, dict[str, Any]], name: str | None) -> str | None:
    """The profile that holds the SSO settings behind profile ``name``: itself, or the
    ``source_profile`` its role is assumed from (followed a few steps, loops cut), or None."""
    seen: set[str] = set()
    while name and name not in seen and len(seen) < 10:
        seen.add(name)
        profile = profiles.get(name) or {}
        if any(key in profile for key in SSO_KEYS):
            return name
        name = profile.get("source_profile")
    return None


def session_expired(error: Exception) -> bool:
    """Whether ``error`` is botocore saying the SSO session is over (or never began here):
    no token cached, a token expired or refused by the portal, a token it could not renew."""
    if isinstance(error, (bx.SSOTokenLoadError, bx.UnauthorizedSSOTokenError)):
        return True
    return isinstance(error, bx.TokenRetrievalError) and getattr(error, "kwargs", {}).get("provider") == "sso"


def translate(error: Exception, conn_id: str, profiles: dict[str, dict[str, Any]],
              profile: str | None) -> CredprocError | None:
    """One line for a failure of botocore's SSO provider behind profile ``profile``, or
    None when ``error`` is not one (the STS translation then applies)."""
    prefix = f"connection {conn_id!r}"
    login = sso_profile(profiles, profile)
    if login is None:
        return None
    if session_expired(error):
        return CredprocError(f"{prefix}: the SSO session for profile {login!r} has expired: "
                             f"run `aws sso login --profile {login}`")
    if isinstance(error, bx.ClientError) and getattr(error, "operation_name", "") == "GetRoleCredentials":
        info = error.response.get("Error", {})
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return CredprocError(f"{prefix}: the SSO portal refused the role of profile {login!r}: "
                             f"{info.get('Code', 'error')}{f' (HTTP {status})' if status else ''}: "
                             f"{one_line(info.get('Message', ''))}")
    if isinstance(error, (bx.ConnectTimeoutError, bx.ReadTimeoutError, bx.EndpointConnectionError)) \
            and PORTAL_PATH in str(getattr(error, "kwargs", {}).get("endpoint_url", "")):
        return CredprocError(f"{prefix}: the SSO portal of profile {login!r} did not answer: {one_line(error)}")
    return None
