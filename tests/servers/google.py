"""Google, as google-auth talks to it (web identity federation "google").

Loopback stand-ins, so that google-auth itself makes every HTTP call: a GCE/GKE metadata
server (reached through GCE_METADATA_HOST / GCE_METADATA_IP, which google-auth reads when it
is imported: set them in the credproc subprocess's environment, see ``.env()``) and an OAuth
token endpoint that verifies the RS256 assertion of the service-account keys it hands out
(their token_uri points at it). ID tokens are JWTs signed for real by a test RSA key
(``GoogleIssuer``). The address that never answers (169.254.169.254 off Google Cloud) is
``blackhole``'s. Servers live for the session; the fixtures reset their counters for each test.

Fixtures: ``google_issuer``, ``gce_metadata``, ``google_token_endpoint``.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from pathlib import Path

import pytest

from servers.loopback import LoopbackHttp

GOOGLE_OAUTH_TOKEN_URL = "https://oauth2.googleapis.com/token"  # the aud of every SA assertion
GOOGLE_SA_EMAIL = "credproc-test@credproc-test.iam.gserviceaccount.com"
GOOGLE_USER_CLIENT_ID = "764086051850-test.apps.googleusercontent.com"


def _rsa_pem() -> tuple[str, str]:
    """A fresh RSA key: (private PKCS#8 PEM, public PEM)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return private, public


class GoogleIssuer:
    """Signs Google-style ID tokens (RS256, iss accounts.google.com) with a test key."""

    def __init__(self):
        from google.auth import crypt

        self.private_pem, self.public_pem = _rsa_pem()
        self.signer = crypt.RSASigner.from_string(self.private_pem, key_id="test-issuer-key")
        self.issued: list[str] = []
        self.lock = threading.Lock()

    def issue(self, audience: str, subject: str, email: str, lifetime: int = 3600) -> str:
        from google.auth import jwt

        now = int(time.time())
        token = jwt.encode(self.signer, {
            "iss": "https://accounts.google.com", "aud": audience, "azp": subject, "sub": subject,
            "email": email, "email_verified": True, "iat": now, "exp": now + lifetime,
        }).decode()
        with self.lock:
            self.issued.append(token)
        return token

    def claims(self, token: str) -> dict:
        """The claims of a token this issuer signed (the signature is checked)."""
        from google.auth import jwt

        return jwt.decode(token, certs=self.public_pem, verify=True)


class FakeMetadataServer(LoopbackHttp):
    """The GCE/GKE metadata server as google-auth uses it.

    Refuses (403) any request without ``Metadata-Flavor: Google``; answers ``GET /`` (the
    probe) with that header; ``.../service-accounts/default/?recursive=true`` with the
    account's JSON; ``.../service-accounts/default/identity?audience=A&format=full`` with an
    ID token for A. Counts: ``ping``, ``account``, ``identity``, ``refused``, ``unknown``.
    """

    PREFIX = "/computeMetadata/v1/instance/service-accounts/default/"

    def __init__(self, issuer: GoogleIssuer):
        self.issuer = issuer
        self.audiences: list[str] = []
        super().__init__(self._handle)

    def env(self) -> dict[str, str]:
        """What points google-auth (in a new process) at this server."""
        return {"GCE_METADATA_HOST": self.address, "GCE_METADATA_IP": self.address}

    def _handle(self, request, body: bytes) -> None:
        flavor = {"Metadata-Flavor": "Google"}
        if request.headers.get("Metadata-Flavor") != "Google":
            self.record("refused", request, body)
            request.answer(403, "Missing Metadata-Flavor: Google header")
            return
        url = urllib.parse.urlsplit(request.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        if url.path == "/":
            self.record("ping", request, body)
            request.answer(200, "computeMetadata/\n", headers=flavor)
        elif url.path == self.PREFIX and query.get("recursive") == "true":
            self.record("account", request, body)
            request.answer(200, json.dumps({"aliases": ["default"], "email": GOOGLE_SA_EMAIL,
                                             "scopes": ["https://www.googleapis.com/auth/cloud-platform"]}),
                           "application/json", flavor)
        elif url.path == self.PREFIX + "identity" and query.get("audience"):
            self.record("identity", request, body)
            with self.lock:
                self.audiences.append(query["audience"])
            token = self.issuer.issue(query["audience"], "104000000000000000001", GOOGLE_SA_EMAIL)
            request.answer(200, token, "text/plain", flavor)
        else:
            self.record("unknown", request, body)
            request.answer(404, "not found", headers=flavor)


class FakeTokenEndpoint(LoopbackHttp):
    """Google's OAuth token endpoint, for the keys and logins it hands out.

    ``jwt-bearer`` grants (service-account keys): the RS256 assertion is verified against
    the key's public half (``kid``, issuer, aud, expiry), then an ID token for its
    ``target_audience`` is returned. ``refresh_token`` grants (gcloud user logins): client
    id, secret and refresh token must match; the answer carries the user's ID token.
    ``refuse = True`` answers 400 invalid_grant, as Google does for a revoked key.
    Counts: ``jwt-bearer``, ``refresh_token``, ``rejected``.
    """

    def __init__(self, issuer: GoogleIssuer):
        self.issuer = issuer
        self.refuse = False
        self.keys: dict[str, tuple[str, str]] = {}  # client_email -> (key id, public PEM)
        self.assertions: list[dict] = []  # the verified claims
        self.user: dict = {}  # the gcloud user login handed out last
        self._sa_key = _rsa_pem()
        super().__init__(self._handle)
        self.url = f"http://{self.address}/token"

    def reset(self) -> None:
        self.reset_counts()
        self.refuse = False
        self.assertions = []

    def service_account_key(self, path, email: str = GOOGLE_SA_EMAIL) -> dict:
        """Write a service-account key file whose token_uri is this endpoint; returns it."""
        private, public = self._sa_key
        key_id = f"test-key-{len(self.keys) + 1}"
        self.keys[email] = (key_id, public)
        info = {"type": "service_account", "project_id": "credproc-test", "private_key_id": key_id,
                "private_key": private, "client_email": email, "client_id": "104000000000000000001",
                "auth_uri": "https://accounts.google.com/o/oauth2/auth", "token_uri": self.url}
        Path(path).write_text(json.dumps(info))
        return info

    def authorized_user(self, path) -> dict:
        """Write a gcloud ADC user login (its token_uri is ignored by google-auth)."""
        info = {"type": "authorized_user", "client_id": GOOGLE_USER_CLIENT_ID,
                "client_secret": "d-FL95Q19q7MQmFpd7hHD0Ty", "refresh_token": "1//0test-refresh-token-credproc",
                "token_uri": self.url, "quota_project_id": "credproc-test"}
        self.user = info
        Path(path).write_text(json.dumps(info))
        return info

    def _refuse(self, request, body: bytes, description: str) -> None:
        self.record("rejected", request, body)
        request.answer(400, json.dumps({"error": "invalid_grant", "error_description": description}),
                       "application/json")

    def _handle(self, request, body: bytes) -> None:
        from google.auth import jwt

        form = dict(urllib.parse.parse_qsl(body.decode()))
        grant = form.get("grant_type", "")
        if request.command != "POST" or urllib.parse.urlsplit(request.path).path != "/token":
            self.record("unknown", request, body)
            request.answer(404, "not found")
            return
        if grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
            self.record("jwt-bearer", request, body)
            assertion = form.get("assertion", "")
            try:
                unverified = jwt.decode(assertion, verify=False)
                key_id, public = self.keys[unverified["iss"]]
                claims = jwt.decode(assertion, certs={key_id: public}, verify=True,
                                    audience=GOOGLE_OAUTH_TOKEN_URL)
            except Exception as e:  # any flaw in the assertion: Google answers invalid_grant
                self._refuse(request, body, f"Invalid JWT: {type(e).__name__}")
                return
            if self.refuse:
                self._refuse(request, body, "Invalid JWT Signature.")
                return
            with self.lock:
                self.assertions.append(claims)
            token = self.issuer.issue(claims["target_audience"], "104000000000000000001", claims["iss"])
            request.answer(200, json.dumps({"id_token": token}), "application/json")
        elif grant == "refresh_token":
            self.record("refresh_token", request, body)
            user = self.user
            if self.refuse or not user or any(form.get(k) != user[k]
                                              for k in ("client_id", "client_secret", "refresh_token")):
                self._refuse(request, body, "Token has been expired or revoked.")
                return
            token = self.issuer.issue(GOOGLE_USER_CLIENT_ID, "117000000000000000002", "someone@example.com")
            request.answer(200, json.dumps({
                "access_token": "ya29.test-access-token", "expires_in": 3599, "token_type": "Bearer",
                "scope": "openid https://www.googleapis.com/auth/userinfo.email", "id_token": token,
            }), "application/json")
        else:
            self.record("unknown", request, body)
            request.answer(400, json.dumps({"error": "unsupported_grant_type"}), "application/json")


@pytest.fixture(scope="session")
def google_issuer():
    pytest.importorskip("google.auth", reason="the google extra: pip install '.[google]'")
    pytest.importorskip("cryptography")
    return GoogleIssuer()


@pytest.fixture(scope="session")
def _gce_metadata_server(google_issuer):
    server = FakeMetadataServer(google_issuer)
    yield server
    server.close()


@pytest.fixture
def gce_metadata(_gce_metadata_server):
    """The fake metadata server for one test: ``.env()``, ``.count(kind)``, ``.audiences``."""
    _gce_metadata_server.reset_counts()
    _gce_metadata_server.audiences = []
    yield _gce_metadata_server


@pytest.fixture(scope="session")
def _google_token_endpoint(google_issuer):
    server = FakeTokenEndpoint(google_issuer)
    yield server
    server.close()


@pytest.fixture
def google_token_endpoint(_google_token_endpoint):
    """The fake OAuth token endpoint for one test: ``.service_account_key(path)``, ``.refuse``."""
    _google_token_endpoint.reset()
    yield _google_token_endpoint
    _google_token_endpoint.reset()
