"""IAM Identity Center (SSO), as botocore's own SSO provider talks to it.

One loopback server plays both endpoints botocore calls for an SSO profile:

* the portal (the ``sso`` client): ``GET /federation/credentials?role_name=R&account_id=A``
  with the access token in ``x-amz-sso_bearer_token``, answered with ``roleCredentials``
  (fresh keys each call, ``expiration`` in milliseconds), or 401 ``UnauthorizedException``
  for a token it does not know or that has expired, or 403 ``ForbiddenException`` for a
  role it was not told about;
* the OIDC service (the ``sso-oidc`` client): ``POST /token`` (CreateToken, grant type
  ``refresh_token``), which swaps a known refresh token for a new access token, or answers
  400 ``InvalidGrantException``.

botocore is pointed at it by the profile's ``services`` section (:meth:`SsoServer.services`),
so the AWS config file says where the portal is, as it says everything else. ``aws sso login``
is replaced by :meth:`SsoServer.login`, which writes the token where botocore reads it
(``~/.aws/sso/cache/<sha1>.json``) and tells the server it is valid. Counts: ``credentials``,
``unauthorized``, ``forbidden``, ``token``, ``token-refused``, ``unknown``.

Fixture: ``sso`` (one server for the session, reset for each test).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
import urllib.parse
from contextlib import closing
from pathlib import Path

import pytest

from servers.loopback import LoopbackHttp

ISO = "%Y-%m-%dT%H:%M:%SZ"


def _iso(when: float) -> str:
    return time.strftime(ISO, time.gmtime(when))


class SsoServer(LoopbackHttp):
    def __init__(self):
        super().__init__(self._handle)
        self.url = f"http://{self.address}"
        self.reset()

    def reset(self) -> None:
        self.reset_counts()
        with self.lock:
            self.tokens: dict[str, float] = {}  # access token -> when it expires (epoch seconds)
            self.refresh_tokens: set[str] = set()
            self.roles: set[tuple[str, str]] = set()  # (account id, role name) the user may use
            self.issued: list[dict] = []  # the roleCredentials answered, in order
            self.delay = 0.0  # seconds before each portal answer: a stampede piles up meanwhile
            self.lifetime = 3600  # seconds of each roleCredentials

    # -- what `aws sso login` leaves behind ---------------------------------------------------

    def services(self, name: str = "local-sso") -> str:
        """An AWS config ``services`` section sending botocore's ``sso`` and ``sso-oidc``
        clients here (a profile names it with ``services = NAME``)."""
        return (f"[services {name}]\nsso =\n  endpoint_url = {self.url}\n"
                f"sso_oidc =\n  endpoint_url = {self.url}\n")

    def login(self, home: Path, key: str, *, start_url: str, region: str, expires_in: float = 8 * 3600,
              refreshable: bool = False, valid: bool = True) -> Path:
        """Write the token cache file botocore reads for ``key`` (the sso-session's name, or
        the start URL of a legacy profile); the token expires ``expires_in`` seconds from now
        (negative: already expired). ``refreshable``: with the registration and refresh token
        that let botocore renew it at the OIDC endpoint. ``valid``: the portal knows it."""
        token = "sso-access-" + secrets.token_urlsafe(12)
        expires = time.time() + expires_in
        record = {"startUrl": start_url, "region": region, "accessToken": token, "expiresAt": _iso(expires)}
        if refreshable:
            refresh = "sso-refresh-" + secrets.token_urlsafe(12)
            record.update(clientId="credproc-test-client", clientSecret="sso-client-" + secrets.token_urlsafe(12),
                          registrationExpiresAt=_iso(time.time() + 90 * 86400), refreshToken=refresh)
            with self.lock:
                self.refresh_tokens.add(refresh)
        if valid:
            with self.lock:
                self.tokens[token] = expires
        path = self.token_file(home, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record))
        return path

    @staticmethod
    def token_file(home: Path, key: str) -> Path:
        return home / ".aws" / "sso" / "cache" / f"{hashlib.sha1(key.encode()).hexdigest()}.json"

    def bearer_tokens(self) -> list[str]:
        """The access token of each portal request, in order."""
        with self.lock:
            return [r["headers"].get("x-amz-sso_bearer_token", "") for r in self.requests if r["kind"] != "token"]

    # -- the two endpoints ----------------------------------------------------------------------

    def _handle(self, request, body: bytes) -> None:
        url = urllib.parse.urlsplit(request.path)
        if request.command == "GET" and url.path == "/federation/credentials":
            self._credentials(request, dict(urllib.parse.parse_qsl(url.query)))
        elif request.command == "POST" and url.path == "/token":
            self._create_token(request, body)
        else:
            self.record("unknown", request, body)
            request.answer(404, "not found")

    def _error(self, request, status: int, code: str, message: str) -> None:
        request.answer(status, json.dumps({"__type": code, "message": message}), "application/json",
                       {"x-amzn-ErrorType": code})

    def _credentials(self, request, query: dict[str, str]) -> None:
        if self.delay:
            time.sleep(self.delay)
        token = request.headers.get("x-amz-sso_bearer_token", "")
        with self.lock:
            expires = self.tokens.get(token)
            allowed = (query.get("account_id"), query.get("role_name")) in self.roles
        if expires is None or expires <= time.time():
            self.record("unauthorized", request, b"")
            return self._error(request, 401, "UnauthorizedException", "Session token not found or invalid")
        if not allowed:
            self.record("forbidden", request, b"")
            return self._error(request, 403, "ForbiddenException", "No access")
        answer = {"accessKeyId": "ASIA" + secrets.token_hex(8).upper(),
                  "secretAccessKey": secrets.token_urlsafe(30),
                  "sessionToken": "sso-session-" + secrets.token_urlsafe(40),
                  "expiration": int((time.time() + self.lifetime) * 1000)}
        with self.lock:
            self.issued.append(answer)
        self.record("credentials", request, b"")
        request.answer(200, json.dumps({"roleCredentials": answer}), "application/json")

    def _create_token(self, request, body: bytes) -> None:
        try:
            params = json.loads(body or b"{}")
        except ValueError:
            params = {}
        with self.lock:
            known = params.get("grantType") == "refresh_token" and params.get("refreshToken") in self.refresh_tokens
            if known:
                self.refresh_tokens.discard(params["refreshToken"])
                token, refresh = "sso-access-" + secrets.token_urlsafe(12), "sso-refresh-" + secrets.token_urlsafe(12)
                self.tokens[token] = time.time() + 8 * 3600
                self.refresh_tokens.add(refresh)
        if not known:
            self.record("token-refused", request, body)
            return self._error(request, 400, "InvalidGrantException", "Invalid refresh token")
        self.record("token", request, body)
        request.answer(200, json.dumps({"accessToken": token, "expiresIn": 8 * 3600, "refreshToken": refresh,
                                        "tokenType": "Bearer"}), "application/json")


@pytest.fixture(scope="session")
def _sso_server():
    with closing(SsoServer()) as server:
        yield server


@pytest.fixture
def sso(_sso_server):
    """The local IAM Identity Center for one test: ``.login(...)``, ``.services()``, ``.roles``,
    ``.count(kind)``, ``.issued``, ``.delay``. Reset before each test that uses it."""
    _sso_server.reset()
    return _sso_server
