"""A Google ID token for an audience, from Application Default Credentials, via google-auth.

Used by the ``google`` federation of ``assume_role_with_web_identity``; imported only for
such connections, on a cache miss (it loads google-auth, requests and cryptography: the
optional ``credproc[google]`` install). All OAuth, JWT and metadata-server work is
google-auth's; this module only decides *where* the credentials come from, bounds the
metadata-server probe, and turns google-auth's failures into one-line errors.

The sources, in Application Default Credentials order (first found is used, as
``google.auth.default()`` does; a broken one is an error, not a reason to try the next):

1. the file named by ``GOOGLE_APPLICATION_CREDENTIALS``;
2. gcloud's ADC file (``$CLOUDSDK_CONFIG`` or ``~/.config/gcloud``, file
   ``application_default_credentials.json``);
3. the GCE/GKE metadata server, if it answers a short probe.

A file holds either a service-account key (google-auth signs an assertion with it and the
key's ``token_uri`` returns an ID token for the audience) or a gcloud user login
("authorized_user": refreshing it returns the user's own ID token, whose audience is the
OAuth client of gcloud, not the configured one). google-auth's own
``fetch_id_token_credentials`` ignores gcloud's file and user logins entirely, hence this
module rather than a one-line call.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

# ImportError here means the optional dependencies are missing: the caller says how to
# install them. google-auth's metadata module reads GCE_METADATA_HOST at import.
import google.auth.exceptions
import google.auth.transport.requests
from google.auth import _cloud_sdk, environment_vars
from google.auth.compute_engine import _metadata

from credproc.errors import CredprocError
from credproc.log import add_secret, one_line

if TYPE_CHECKING:
    import google.auth.credentials
    from google.auth.transport import Request, Response

log = logging.getLogger("credproc.google")

# Connect and read timeouts of credproc's own HTTP calls to Google (as for STS): without
# them google-auth's requests transport waits up to 120 s on a token endpoint.
HTTP_TIMEOUT = (5.0, 15.0)

# The metadata-server probe. Off Google Cloud, 169.254.169.254 either refuses at once or
# (behind some firewalls and on other clouds) accepts the connection and never answers;
# google-auth's defaults (3 attempts of 3 s, with back-off) then cost about 12 s before
# "no credentials". On GCE/GKE the server answers the probe within milliseconds, so
# credproc tries twice for 1 s each (about 3 s in all) unless the user sets google-auth's own
# GCE_METADATA_TIMEOUT / GCE_METADATA_DETECT_RETRIES.
PROBE_TIMEOUT = 1.0
PROBE_ATTEMPTS = 2

SUPPORTED_FILE_TYPES = ("service_account", "authorized_user")


@dataclass(frozen=True)
class IdToken:
    """A Google ID token and a description of where it came from (for messages)."""

    token: str
    source: str

    def __repr__(self) -> str:  # never the token itself
        return f"IdToken(source={self.source!r})"


class _Request(google.auth.transport.requests.Request):
    """google-auth's requests transport with credproc's timeouts where the caller set none.

    The metadata-server calls pass their own timeout; the OAuth token endpoint calls do not.
    """

    def __call__(self, url: str, method: str = "GET", body: bytes | None = None,
                 headers: Mapping[str, str] | None = None, timeout: float | tuple[float, float] | None = None,
                 **kwargs: Any) -> Response:
        return super().__call__(url, method=method, body=body, headers=headers,
                                timeout=HTTP_TIMEOUT if timeout is None else timeout, **kwargs)


def id_token(audience: str, request: Request | None = None) -> IdToken:
    """A Google ID token for ``audience`` from the first source of Application Default
    Credentials, or a CredprocError naming what was tried.

    ``request`` is a google-auth transport; tests pass one whose session routes
    Google's fixed OAuth URL to a loopback server.
    """
    _quiet_google_logs()
    request = request or _Request()
    explicit = os.environ.get(environment_vars.CREDENTIALS)
    if explicit:
        return _from_file(explicit, audience, request, f"{environment_vars.CREDENTIALS}={explicit}")
    gcloud_file = _cloud_sdk.get_application_default_credentials_path()
    if os.path.isfile(gcloud_file):
        return _from_file(gcloud_file, audience, request, f"the gcloud ADC file {gcloud_file}")
    token = _from_metadata_server(audience, request)
    if token is not None:
        return token
    raise CredprocError(
        f"no Google credentials for an ID token: {environment_vars.CREDENTIALS} is not set, there is no "
        f"gcloud ADC file {gcloud_file}, and {_probe_summary()}. Set {environment_vars.CREDENTIALS} to a "
        "service-account key file, run `gcloud auth application-default login`, or run on GCE/GKE"
    )


# -- credential files ----------------------------------------------------------------------


def _from_file(path: str, audience: str, request: Request, where: str) -> IdToken:
    info = _read_json(path, where)
    kind = info.get("type")
    # Whatever the file holds that is secret, no message may show it.
    for key in ("private_key", "refresh_token", "client_secret"):
        add_secret(info.get(key))
    if kind == "service_account":
        return _service_account(info, audience, request, where)
    if kind == "authorized_user":
        return _authorized_user(info, request, where)
    raise CredprocError(f"{where}: credentials of type {kind!r} cannot give an ID token here "
                        f"(supported: {', '.join(SUPPORTED_FILE_TYPES)})")


# A service-account key or ADC file is a few kilobytes.
MAX_CREDENTIALS_FILE_BYTES = 1024 * 1024


def _read_json(path: str, where: str) -> dict:
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_CREDENTIALS_FILE_BYTES + 1)  # bounded: /dev/zero must not hang
        if len(data) > MAX_CREDENTIALS_FILE_BYTES:
            raise CredprocError(f"{where}: larger than 1 MiB: not a Google credentials file")
        info = json.loads(data)
    except FileNotFoundError:
        raise CredprocError(f"{where}: no such file") from None
    except IsADirectoryError:
        raise CredprocError(f"{where}: is a directory, not a credentials file") from None
    except OSError as e:
        raise CredprocError(f"{where}: cannot read it: {e.strerror or e}") from None
    except ValueError:  # also UnicodeDecodeError; never echo the content
        raise CredprocError(f"{where}: not a JSON credentials file") from None
    if not isinstance(info, dict):
        raise CredprocError(f"{where}: not a JSON credentials file (expected an object)")
    return info


def _service_account(info: dict[str, Any], audience: str, request: Request, where: str) -> IdToken:
    from google.oauth2 import service_account

    try:
        credentials = service_account.IDTokenCredentials.from_service_account_info(
            info, target_audience=audience)
    except (ValueError, KeyError) as e:  # missing fields, a key that does not parse
        raise CredprocError(f"{where}: not a usable service-account key: {_reason(e)}") from None
    source = f"service account {info.get('client_email')} ({where})"
    _refresh(credentials, request, source, f"token endpoint {info.get('token_uri')}")
    return _token(credentials.token, source)


def _authorized_user(info: dict[str, Any], request: Request, where: str) -> IdToken:
    """A gcloud user login: refreshing it returns the user's own ID token.

    google-auth always sends the refresh to Google's fixed OAuth endpoint (it ignores the
    file's ``token_uri``), and the token's audience is gcloud's OAuth client id: the
    configured audience cannot be asked for (Google issues ID tokens for arbitrary
    audiences only to service accounts). The IAM trust policy must name that client id.
    """
    from google.oauth2 import credentials as user_credentials

    try:
        credentials = user_credentials.Credentials.from_authorized_user_info(info)
    except (ValueError, KeyError) as e:
        raise CredprocError(f"{where}: not a usable authorized-user file: {_reason(e)}") from None
    source = f"gcloud user credentials ({where})"
    _refresh(credentials, request, source, "Google's OAuth endpoint")
    if not credentials.id_token:
        raise CredprocError(f"{source}: Google returned no ID token (the login lacks the openid scope); "
                            "run `gcloud auth application-default login` again")
    log.debug("the ID token of %s has the OAuth client %s as audience, not the configured one",
              source, info.get("client_id"))
    return _token(credentials.id_token, source)


# -- the metadata server -------------------------------------------------------------------


def _probe_settings() -> tuple[float, int]:
    """The probe's timeout and attempts: google-auth's variables if set, else credproc's."""
    from credproc.settings import seconds, whole_number

    timeout = seconds(os.environ, environment_vars.GCE_METADATA_TIMEOUT, PROBE_TIMEOUT, minimum=0.001)
    attempts = whole_number(os.environ, environment_vars.GCE_METADATA_DETECT_RETRIES, PROBE_ATTEMPTS, minimum=1)
    return timeout, attempts


def _probe_summary() -> str:
    if os.environ.get(environment_vars.NO_GCE_CHECK) == "true":
        return f"the metadata server was not tried ({environment_vars.NO_GCE_CHECK}=true)"
    timeout, attempts = _probe_settings()
    address = os.environ.get(environment_vars.GCE_METADATA_IP, "169.254.169.254")
    return (f"no GCE/GKE metadata server answered at {address} ({attempts} attempt(s) of {timeout:g} s; "
            f"see {environment_vars.GCE_METADATA_TIMEOUT} and {environment_vars.GCE_METADATA_DETECT_RETRIES})")


def _from_metadata_server(audience: str, request: Request) -> IdToken | None:
    """The metadata server's ID token for ``audience``, or None when no server answers."""
    if os.environ.get(environment_vars.NO_GCE_CHECK) == "true":
        return None
    timeout, attempts = _probe_settings()
    if not _metadata.ping(request, timeout=timeout, retry_count=attempts):
        return None
    from google.auth import compute_engine

    host = os.environ.get(environment_vars.GCE_METADATA_HOST) or "metadata.google.internal"
    source = f"the GCE/GKE metadata server ({host})"
    try:
        # Asks the server for the default service account first (its e-mail).
        credentials = compute_engine.IDTokenCredentials(request, audience, use_metadata_identity_endpoint=True)
    except google.auth.exceptions.TransportError as e:
        raise CredprocError(f"{source} answered the probe but not for its service account: {_reason(e)}") from None
    _refresh(credentials, request, source, "its identity endpoint")
    return _token(credentials.token, source)


# -- common --------------------------------------------------------------------------------


def _refresh(credentials: google.auth.credentials.Credentials, request: Request, source: str,
             endpoint: str) -> None:
    try:
        credentials.refresh(request)
    except google.auth.exceptions.RefreshError as e:
        raise CredprocError(f"Google refused an ID token for {source}: {_reason(e)}") from None
    except google.auth.exceptions.TransportError as e:
        raise CredprocError(f"{source}: {endpoint} did not answer: {_reason(e)}") from None
    except (google.auth.exceptions.GoogleAuthError, ValueError) as e:
        raise CredprocError(f"{source}: no ID token: {type(e).__name__}: {_reason(e)}") from None


def _token(value: object, source: str) -> IdToken:
    if not isinstance(value, str) or not value:
        raise CredprocError(f"{source}: Google returned no ID token")
    add_secret(value)
    return IdToken(token=value, source=source)


def _reason(error: Exception) -> str:
    """google-auth's message: its exceptions carry (message, response data, ...) as args."""
    first = error.args[0] if error.args else error
    return one_line(str(first)) or type(error).__name__


def _quiet_google_logs() -> None:
    """google-auth logs each failed probe attempt as a WARNING, and request bodies at DEBUG.

    SDKs show stderr as one message, so those lines stay out; with ``--debug`` its warnings
    (not its DEBUG records) go through credproc's redacting handler.
    """
    google_log = logging.getLogger("google")
    google_log.propagate = False
    credproc_log = logging.getLogger("credproc")
    if credproc_log.isEnabledFor(logging.DEBUG) and credproc_log.handlers:
        google_log.handlers[:] = list(credproc_log.handlers)
        google_log.setLevel(logging.WARNING)
    else:
        google_log.handlers[:] = [logging.NullHandler()]
        google_log.setLevel(logging.CRITICAL)
