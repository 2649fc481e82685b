"""GET the identity provider's page with Kerberos (SPNEGO), retrying the whole exchange.

requests-gssapi does the SPNEGO exchange: the IdP answers 401 ``WWW-Authenticate:
Negotiate``, requests-gssapi asks the user's Kerberos ticket cache for a token for
``HTTP@<host>`` and sends it back. Two things it leaves to us:

* **Retries.** ``idp_request_retry_kwargs`` are the parameters of urllib3's ``Retry``, but a
  ``Retry`` mounted on the session retries inside urllib3, re-sending the request as it was,
  Negotiate token included. A Kerberos acceptor keeps a replay cache (IIS/ADFS and Apache
  do), so the second attempt is refused with a 401. Here the loop runs around the whole
  negotiated request, with a fresh ``HTTPSPNEGOAuth`` (so a fresh security context and
  token) per attempt, and urllib3's ``Retry`` object still makes every decision: what to
  retry (``is_retry``), how many times (``increment``), how long to wait (``sleep``,
  honouring ``Retry-After`` and the backoff).
* **Size.** ``requests`` reads every answer whole into memory, decompressing as it goes:
  the page, but also the body of a 401 challenge (requests-gssapi) or of a redirect
  (requests). A SAML page is a few kilobytes, so the session's adapter caps every body at
  ``MAX_PAGE_BYTES`` as it streams in (decompressed size: urllib3 2.6+ bounds what one
  streamed read may inflate to, so a gzip bomb stops at the limit too).
* **Failures.** requests-gssapi returns a final 401 silently (no ticket, expired ticket,
  wrong service principal) and logs the GSSAPI reason, with a traceback and at debug level
  the token itself. Its logger is silenced here; the reason is kept and becomes one line
  that says Kerberos failed and what to do.
"""

from __future__ import annotations

import logging
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from credproc.log import one_line

if TYPE_CHECKING:  # requests and urllib3 are imported on a SAML connection's miss only
    import requests
    import urllib3
    from requests.adapters import HTTPAdapter

log = logging.getLogger("credproc.idp")

# An SDK may be waiting on us (Rust gives up after 5 s): fail fast unless told otherwise,
# as for credproc's own STS calls. idp_request_kwargs.timeout overrides it.
DEFAULT_TIMEOUT = (5.0, 10.0)  # (connect, read) seconds

# An IdP's SAML page is a few kilobytes (ADFS: about 10); this is room for any real page
# and small enough that a hostile or broken IdP cannot exhaust memory.
MAX_PAGE_BYTES = 10 * 1024 * 1024

KINIT_HINT = "check your ticket with `klist`, get or renew one with `kinit`"


class IdpError(Exception):
    """The IdP page could not be fetched (exit 1). The message never holds the page."""


@dataclass(frozen=True)
class Page:
    status: int
    reason: str
    url: str
    content: bytes
    encoding: str | None
    attempts: int

    def describe(self) -> str:
        """``HTTP 200 from http://host/path``, without query string (it may carry tokens)."""
        return f"HTTP {self.status} from {where(self.url)}"


def where(url: str) -> str:
    """The URL without user info, query or fragment: enough to say which IdP, nothing more."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


def get(url: str, *, mutual_authentication: int | None, request_kwargs: dict[str, Any],
        retry: Any) -> Page:
    """The IdP's answer to a Kerberos-authenticated GET of ``url``.

    ``retry`` is a ``urllib3.util.Retry``; ``request_kwargs`` the keyword arguments of
    ``requests.get`` (a default timeout is added). A final 401 or an HTTP error status
    raises IdpError; any other answer is returned for the caller to read.
    """
    import requests
    from requests_gssapi.exceptions import MutualAuthenticationError
    from urllib3.exceptions import MaxRetryError

    _silence_requests_gssapi()
    kwargs = {"timeout": DEFAULT_TIMEOUT, **request_kwargs}
    auth_kwargs = {} if mutual_authentication is None else {"mutual_authentication": mutual_authentication}
    attempt = 0
    while True:
        attempt += 1
        auth = _spnego_auth(**auth_kwargs)  # fresh per attempt: a replayed token is refused
        log.debug("GET %s (attempt %d)", where(url), attempt)
        try:
            with requests.Session() as session:
                adapter = _bounded_adapter()
                session.mount("http://", adapter)
                session.mount("https://", adapter)
                response = session.get(url, auth=auth, **kwargs)
                content = response.content
        except MutualAuthenticationError:
            raise IdpError(
                f"the IdP {where(url)} did not authenticate itself (mutual_authentication = REQUIRED or "
                "OPTIONAL): its answer carried no valid Kerberos token; if this IdP cannot do mutual "
                "authentication, set mutual_authentication = \"DISABLED\"") from None
        except requests.RequestException as e:
            cause = _cause(e)
            try:
                retry = retry.increment(method="GET", url=url, error=cause)
            except Exception:  # MaxRetryError, or the error re-raised: not to be retried
                raise IdpError(f"the IdP {where(url)} did not answer ({_attempts(attempt)}): "
                               f"{type(cause).__name__}: {one_line(cause)}") from None
            log.debug("IdP attempt %d failed (%s); retrying", attempt, type(cause).__name__)
            retry.sleep()
            continue

        status = response.status_code
        if retry.is_retry("GET", status, has_retry_after="Retry-After" in response.headers):
            try:
                retry = retry.increment(method="GET", url=url, response=response.raw)
            except MaxRetryError:
                pass  # retries exhausted: this answer is the final one
            else:
                log.debug("IdP answered HTTP %d on attempt %d; retrying", status, attempt)
                retry.sleep(response.raw)
                continue

        page = Page(status=status, reason=response.reason or "", url=response.url or url,
                    content=content, encoding=response.encoding, attempts=attempt)
        log.debug("IdP answered %s, %d bytes, after %s", page.describe(), len(content), _attempts(attempt))
        if status == 401:
            raise IdpError(_kerberos_failure(page, auth))
        if status >= 400:
            raise IdpError(f"the IdP answered HTTP {status} {page.reason}".rstrip()
                           + f" ({where(page.url)}, {_attempts(attempt)})")
        return page


class PageTooLarge(IdpError):
    def __init__(self, url: str):
        super().__init__(f"the IdP {where(url)} answered with a body larger than {MAX_PAGE_BYTES // 2**20} MiB "
                         "(a SAML page is a few kilobytes); check idp_url")


def _bounded_adapter() -> HTTPAdapter:
    """A requests adapter whose answers cannot be read past MAX_PAGE_BYTES, decompressed.

    requests reads bodies through ``raw.stream`` (the urllib3 response); each response's
    ``stream`` is replaced by one that counts, so the cap holds wherever requests or
    requests-gssapi read a body. (A factory function: requests is imported on a miss only.)
    """
    from requests.adapters import HTTPAdapter

    class BoundedAdapter(HTTPAdapter):
        def build_response(self, req: requests.PreparedRequest, resp: urllib3.BaseHTTPResponse) -> requests.Response:
            url = req.url or ""  # typed optional, but set on every request an adapter sends
            declared = resp.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > MAX_PAGE_BYTES and "Content-Encoding" not in resp.headers:
                resp.close()
                raise PageTooLarge(url)
            unbounded = resp.stream

            def stream(amt: int | None = 2**16, decode_content: bool | None = None) -> Iterator[bytes]:
                size = 0
                for chunk in unbounded(amt, decode_content=decode_content):
                    size += len(chunk)
                    if size > MAX_PAGE_BYTES:
                        resp.close()
                        raise PageTooLarge(url)
                    yield chunk

            # Replacing one response's method is the point here, not a slip that mypy's check is for.
            resp.stream = stream  # type: ignore[method-assign]
            return super().build_response(req, resp)

    return BoundedAdapter()


def _attempts(n: int) -> str:
    return "1 attempt" if n == 1 else f"{n} attempts"


def _kerberos_failure(page: Page, auth: Any) -> str:
    """Why the IdP still says 401, in words a user can act on."""
    prefix = f"Kerberos (SPNEGO) authentication to the IdP failed ({page.describe()})"
    if auth.failure:  # GSSAPI itself failed: no ticket, expired, no such service principal
        return f"{prefix}: {one_line(auth.failure)}; {KINIT_HINT}"
    if auth.sent:
        return (f"{prefix}: the IdP refused our Kerberos ticket; {KINIT_HINT}, and check that the IdP's "
                f"service principal is HTTP/{urllib.parse.urlsplit(page.url).hostname}")
    return f"{prefix}: the IdP did not offer Negotiate (SPNEGO) authentication"


def _cause(error: Exception) -> Exception:
    """The urllib3 exception under a requests one, as ``Retry.increment`` classifies them."""
    from urllib3.exceptions import MaxRetryError

    cause = error.args[0] if error.args and isinstance(error.args[0], Exception) else error
    if isinstance(cause, MaxRetryError) and isinstance(cause.reason, Exception):
        cause = cause.reason
    return cause


def _spnego_auth(**kwargs: Any) -> Any:  # requests-gssapi has no type hints: its HTTPSPNEGOAuth is Any
    """An HTTPSPNEGOAuth that remembers whether it sent a token and why GSSAPI failed."""
    from requests_gssapi import HTTPSPNEGOAuth
    from requests_gssapi.exceptions import SPNEGOExchangeError

    class Auth(HTTPSPNEGOAuth):
        failure: str | None = None
        sent = False

        def generate_request_header(self, response: requests.Response, host: str, is_preemptive: bool = False) -> str:
            try:
                header = super().generate_request_header(response, host, is_preemptive)
            except SPNEGOExchangeError as e:
                # GSSAPI's status text: no token in it, but a NUL at the end of some of MIT's
                # SPNEGO messages ("cannot find mechanisms to negotiate"), which is no text.
                self.failure = str(e).replace("\x00", "")
                raise
            self.sent = True
            return header

    return Auth(**kwargs)


def _silence_requests_gssapi() -> None:
    """requests-gssapi logs tracebacks on failures and the Negotiate token at debug level:
    neither may reach stderr (the failure is reported by us, in one line)."""
    logger = logging.getLogger("requests_gssapi")
    logger.propagate = False
    logger.handlers[:] = [logging.NullHandler()]
