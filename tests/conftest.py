"""Fixtures for the real parts the tests talk to. Every server listens on 127.0.0.1 only.

* ``moto``: moto in server mode, once per session (a local STS over HTTP);
* ``sts``: a small reverse proxy in front of it, reset for every test, that counts requests
  per STS ``Action`` and can delay answers or inject faults (throttling, 5xx);
* ``env``: an isolated environment for the ``credproc`` executable (own HOME, cache
  directory, AWS config files; nothing inherited from the developer's AWS setup);
* ``run``: run the installed ``credproc`` executable, as an SDK would.

Tests marked ``integration`` use these. With ``CREDPROC_REQUIRE_INTEGRATION=1`` (CI sets
it) a skipped integration test counts as a failure: a green run must have run them all.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest
from stsproxy import LoopbackServer, StsProxy

BIN = Path(sys.executable).parent
CREDPROC = BIN / "credproc"
ACCOUNT = "123456789012"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/credproc-test"
ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY"  # with a '/', as real ones often have


# -- integration tests are never silently skipped in CI ---------------------------------


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if (report.skipped and "integration" in item.keywords
            and os.environ.get("CREDPROC_REQUIRE_INTEGRATION") == "1"):
        report.outcome = "failed"
        report.longrepr = f"integration test skipped while CREDPROC_REQUIRE_INTEGRATION=1: {report.longrepr}"


# -- the local STS ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def moto():
    """moto's STS (and IAM) over HTTP on 127.0.0.1; yields its base URL."""
    server_mod = pytest.importorskip("moto.server")
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="session")
def _sts_proxy(moto):
    proxy = StsProxy(moto)
    yield proxy
    proxy.close()


@pytest.fixture
def sts(_sts_proxy):
    """The local STS for one test: ``sts.url`` to point connections at, ``sts.count(Action)``."""
    _sts_proxy.reset()
    yield _sts_proxy
    _sts_proxy.reset()


# -- the credproc executable in an isolated environment ------------------------------------


@pytest.fixture
def env(tmp_path):
    """Environment for credproc and the SDKs: nothing leaks in from the developer's setup."""
    home = tmp_path / "home"
    home.mkdir()
    keep = {k: v for k, v in os.environ.items()
            if not k.startswith(("AWS_", "CREDPROC_", "AIRFLOW_CONN_", "BOTO_", "XDG_", "GOOGLE_"))}
    keep.update({
        "HOME": str(home),
        "CREDPROC_CACHE_DIR": str(tmp_path / "cache"),
        "CREDPROC_CONFIG": str(tmp_path / "credproc.toml"),
        "AWS_CONFIG_FILE": str(tmp_path / "aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        "PYTHONDONTWRITEBYTECODE": "1",
    })
    return keep


@pytest.fixture
def credproc_bin() -> Path:
    if not CREDPROC.exists():
        pytest.skip(f"{CREDPROC} is not installed: run `make test`")
    return CREDPROC


@pytest.fixture
def run(credproc_bin):
    """``run(args, env)``: the credproc executable, stdin closed, as an SDK starts it."""

    def _run(args, env, timeout: float = 60, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run([str(credproc_bin), *args], env=env, capture_output=True, text=True,
                              timeout=timeout, stdin=kwargs.pop("stdin", subprocess.DEVNULL), **kwargs)

    return _run


def conn_uri(endpoint: str, *, login: str = ACCESS_KEY, password: str = SECRET_KEY, **extra: str) -> str:
    """An Airflow URI for a connection at ``endpoint`` (percent-encoding the secret)."""
    query = {"endpoint_url": endpoint, "region_name": "us-east-1", **extra}
    auth = f"{urllib.parse.quote(login, safe='')}:{urllib.parse.quote(password, safe='')}@" if login else ""
    return f"aws://{auth}/?{urllib.parse.urlencode(query)}"


# =============================================================================================
# Google metadata server + OAuth token endpoint (web identity federation "google")
#
# Loopback stand-ins for what google-auth talks to, so that google-auth itself makes every
# HTTP call: a GCE/GKE metadata server (reached through GCE_METADATA_HOST / GCE_METADATA_IP,
# which google-auth reads when it is imported: set them in the credproc subprocess's
# environment), an OAuth token endpoint that verifies the RS256 assertion of the
# service-account keys it hands out (their token_uri points at it), and an address that
# accepts connections and never answers (169.254.169.254 off Google Cloud). ID tokens are
# JWTs signed for real by a test RSA key. Servers live for the session; the fixtures reset
# their counters for each test.
# =============================================================================================

import json as _json
import threading as _threading
import time as _time
import urllib.parse as _urlparse
from http.server import BaseHTTPRequestHandler as _Handler

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
        self.lock = _threading.Lock()

    def issue(self, audience: str, subject: str, email: str, lifetime: int = 3600) -> str:
        from google.auth import jwt

        now = int(_time.time())
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


class _LoopbackHttp:
    """A threaded HTTP server on 127.0.0.1 that counts what it handles, by kind."""

    def __init__(self, handle):
        self.lock = _threading.Lock()
        self.calls: dict[str, int] = {}
        self.requests: list[dict] = []

        class Handler(_Handler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                handle(self, b"")

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                handle(self, self.rfile.read(length) if length else b"")

            def answer(self, status: int, body: bytes | str, content_type: str = "text/plain",
                       headers: dict | None = None) -> None:
                data = body.encode() if isinstance(body, str) else body
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = LoopbackServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        _threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def record(self, kind: str, request, body: bytes) -> None:
        with self.lock:
            self.calls[kind] = self.calls.get(kind, 0) + 1
            self.requests.append({"kind": kind, "method": request.command, "path": request.path,
                                  "headers": dict(request.headers), "body": body})

    def count(self, kind: str) -> int:
        with self.lock:
            return self.calls.get(kind, 0)

    def reset_counts(self) -> None:
        with self.lock:
            self.calls = {}
            self.requests = []

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class FakeMetadataServer(_LoopbackHttp):
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
        url = _urlparse.urlsplit(request.path)
        query = dict(_urlparse.parse_qsl(url.query))
        if url.path == "/":
            self.record("ping", request, body)
            request.answer(200, "computeMetadata/\n", headers=flavor)
        elif url.path == self.PREFIX and query.get("recursive") == "true":
            self.record("account", request, body)
            request.answer(200, _json.dumps({"aliases": ["default"], "email": GOOGLE_SA_EMAIL,
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


class FakeTokenEndpoint(_LoopbackHttp):
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
        Path(path).write_text(_json.dumps(info))
        return info

    def authorized_user(self, path) -> dict:
        """Write a gcloud ADC user login (its token_uri is ignored by google-auth)."""
        info = {"type": "authorized_user", "client_id": GOOGLE_USER_CLIENT_ID,
                "client_secret": "d-FL95Q19q7MQmFpd7hHD0Ty", "refresh_token": "1//0test-refresh-token-credproc",
                "token_uri": self.url, "quota_project_id": "credproc-test"}
        self.user = info
        Path(path).write_text(_json.dumps(info))
        return info

    def _refuse(self, request, body: bytes, description: str) -> None:
        self.record("rejected", request, body)
        request.answer(400, _json.dumps({"error": "invalid_grant", "error_description": description}),
                       "application/json")

    def _handle(self, request, body: bytes) -> None:
        from google.auth import jwt

        form = dict(_urlparse.parse_qsl(body.decode()))
        grant = form.get("grant_type", "")
        if request.command != "POST" or _urlparse.urlsplit(request.path).path != "/token":
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
            request.answer(200, _json.dumps({"id_token": token}), "application/json")
        elif grant == "refresh_token":
            self.record("refresh_token", request, body)
            user = self.user
            if self.refuse or not user or any(form.get(k) != user[k]
                                              for k in ("client_id", "client_secret", "refresh_token")):
                self._refuse(request, body, "Token has been expired or revoked.")
                return
            token = self.issuer.issue(GOOGLE_USER_CLIENT_ID, "117000000000000000002", "someone@example.com")
            request.answer(200, _json.dumps({
                "access_token": "ya29.test-access-token", "expires_in": 3599, "token_type": "Bearer",
                "scope": "openid https://www.googleapis.com/auth/userinfo.email", "id_token": token,
            }), "application/json")
        else:
            self.record("unknown", request, body)
            request.answer(400, _json.dumps({"error": "unsupported_grant_type"}), "application/json")


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


# =========================================================================================
# Fault injection (issue 8, hardening): servers that misbehave on purpose.
# =========================================================================================


class Blackhole:
    """Two endpoints on 127.0.0.1 that never answer, for timeout tests.

    * ``read_url`` (``address`` without the scheme): accepts TCP connections, then neither
      reads nor writes: a request is sent and its answer never comes (a read timeout), as
      169.254.169.254 can off Google Cloud. ``accepted`` counts the connections, so a test
      sees how many attempts a client made.
    * ``connect_url``: a listening socket whose accept queue is kept full and never drained,
      so the kernel drops new SYNs: connecting never completes (a connect timeout).
    """

    def __init__(self):
        import threading

        self._lock = threading.Lock()
        self._held: list[socket.socket] = []
        self.accepted = 0
        self._reader = socket.socket()
        self._reader.bind(("127.0.0.1", 0))
        self._reader.listen(64)
        self.address = f"127.0.0.1:{self._reader.getsockname()[1]}"
        self.read_url = f"http://{self.address}"
        threading.Thread(target=self._accept, daemon=True).start()

        self._full = socket.socket()
        self._full.bind(("127.0.0.1", 0))
        self._full.listen(0)  # Linux queues backlog + 1 = one connection, then drops SYNs
        self.connect_url = f"http://127.0.0.1:{self._full.getsockname()[1]}"
        self._fillers: list[socket.socket] = []
        for _ in range(8):  # fill the queue until a connect times out: then it is full
            filler = socket.socket()
            filler.settimeout(0.5)
            try:
                filler.connect(self._full.getsockname())
            except OSError:
                filler.close()
                break
            self._fillers.append(filler)

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._reader.accept()
            except OSError:
                return
            with self._lock:
                self._held.append(conn)
                self.accepted += 1

    def reset(self) -> None:
        with self._lock:
            for conn in self._held:
                conn.close()
            self._held, self.accepted = [], 0

    def close(self) -> None:
        self.reset()
        for s in [self._reader, self._full, *self._fillers]:
            s.close()


@pytest.fixture(scope="session")
def _blackhole():
    server = Blackhole()
    yield server
    server.close()


@pytest.fixture
def blackhole(_blackhole):
    """Endpoints that never answer: ``read_url`` (counts ``accepted``) and ``connect_url``."""
    _blackhole.reset()
    yield _blackhole
    _blackhole.reset()


# -- the federation endpoint of examples/factory (test_factory.py) ----------------------------

FEDERATION_USER, FEDERATION_PASSWORD = "alice", "corp-federation-password-1"


class FederationEndpoint:
    """A federation endpoint on 127.0.0.1 as examples/factory/corp_federation.py expects:
    POST {"username", "password"} -> STS-style credentials valid for an hour."""

    def __init__(self, username: str, password: str):
        self.requests: list[dict] = []
        endpoint = self

        class Handler(_Handler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = _json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                endpoint.requests.append(body)
                if body != {"username": username, "password": password}:
                    self.send_error(401, "Unauthorized")
                    return
                endpoint.expiration = _time.strftime("%Y-%m-%dT%H:%M:%SZ", _time.gmtime(_time.time() + 3600))
                payload = _json.dumps({"AccessKeyId": "ASIAFEDERATEDEXAMPLE", "SecretAccessKey": "federated-secret-key",
                                       "SessionToken": "federated-session-token",
                                       "Expiration": endpoint.expiration}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = LoopbackServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/aws/credentials"
        _threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def federation_endpoint():
    """The endpoint examples/factory/corp_federation.py calls, taking FEDERATION_USER and
    FEDERATION_PASSWORD: ``.url``, ``.requests``, ``.expiration`` of what it issued last."""
    endpoint = FederationEndpoint(FEDERATION_USER, FEDERATION_PASSWORD)
    yield endpoint
    endpoint.close()


# -- checks on a credproc run, shared by the hardening tests --------------------------------


def credentials_only(stdout: str) -> dict:
    """The credentials of a successful run, asserting stdout holds that JSON and nothing else
    (one line: SDKs parse all of stdout as one JSON document)."""
    import json

    assert stdout.endswith("\n") and stdout.count("\n") == 1 and stdout.startswith("{"), repr(stdout[:300])
    out = json.loads(stdout)
    assert isinstance(out, dict) and out.get("Version") == 1, out
    for key in ("AccessKeyId", "SecretAccessKey"):
        assert isinstance(out.get(key), str) and out[key], out
    assert set(out) <= {"Version", "AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration", "AccountId"}, out
    return out


def stderr_verdict(result: subprocess.CompletedProcess, debug: bool = False) -> list[str]:
    """Check the shape of stderr for any run, and return its warning lines.

    Every line is ``credproc: warning: ...`` or ``credproc: error: ...`` (so no message spills
    over lines, and no traceback); a failed run (exit 1 or 2) ends with exactly one error line
    and prints nothing on stdout; a successful one has no error line and prints only JSON.
    With ``debug`` (a run with --debug), log lines (``credproc: DEBUG: ...``) are allowed too,
    and a traceback before the error line of a failed run.
    """
    assert result.returncode in (0, 1, 2), f"exit {result.returncode}: {result.stderr[-2000:]}"
    lines = result.stderr.splitlines()
    if not (debug and result.returncode != 0):
        assert "Traceback" not in result.stderr, result.stderr[-4000:]
        allowed = ("credproc: ",) if debug else ("credproc: warning: ", "credproc: error: ")
        strays = [line for line in lines if not line.startswith(allowed)]
        assert strays == [], f"stderr lines that are not credproc's one-line messages: {strays[:5]}"
    errors = [line for line in lines if line.startswith("credproc: error: ")]
    if result.returncode == 0:
        assert errors == [], errors
        credentials_only(result.stdout)
    else:
        assert result.stdout == "", f"stdout of a failed run: {result.stdout[:300]!r}"
        assert len(errors) == 1 and lines[-1] == errors[0], f"want exactly one error line, last: {lines}"
    return [line for line in lines if line.startswith("credproc: warning: ")]


# ========================= end of fault injection (issue 8) ==============================


# =============================================================================================
# Kerberos KDC + SPNEGO IdP (assume_role_with_saml)
#
# A real MIT Kerberos realm on 127.0.0.1, built once per session in a temporary directory
# (kdb5_util, kadmin.local, krb5kdc in the foreground, a private krb5.conf/kdc.conf): a user
# principal whose tickets each test gets with `kinit` from the password on stdin, and an
# HTTP/localhost service principal with a keytab. In front of it, an identity provider
# protected by SPNEGO: a stdlib HTTP server whose acceptor is the python `gssapi` package
# (with a replay cache, as real IdPs have), answering the HTML form of the SAML POST binding
# with a base64 assertion moto's STS accepts. Knobs (reset for every test): HTTP faults after
# authentication, the kind of page, mutual-authentication tokens; counters per kind of answer.
# The credproc subprocess gets KRB5_CONFIG/KRB5CCNAME through the `krb_env` fixture; the
# IdP's URL is http://localhost:PORT/idp, since the service principal is HTTP/localhost.
# =============================================================================================

import base64 as _krb_base64
import shutil as _krb_shutil
import threading as _krb_threading
import time as _krb_time
import uuid as _krb_uuid
from datetime import datetime as _krb_datetime
from datetime import timezone as _krb_timezone
import functools as _functools
from http.server import BaseHTTPRequestHandler as _KrbHandler

KRB_REALM = "CREDPROC.TEST"
KRB_USER = f"alice@{KRB_REALM}"
KRB_PASSWORD = "alice-Kerberos-pw-1"
SAML_PRINCIPAL_ARN = f"arn:aws:iam::{ACCOUNT}:saml-provider/credproc-test-idp"
_KRB_TOOLS = ("kdb5_util", "kadmin.local", "krb5kdc", "kinit", "kdestroy")
_KRB_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin", "/usr/local/sbin"])
KRB_PACKAGES = "apt-get install -y krb5-kdc krb5-admin-server krb5-user libkrb5-dev"


class Kdc:
    """An MIT KDC for realm CREDPROC.TEST on 127.0.0.1, with its files under ``root``."""

    def __init__(self, root: Path):
        self.root = root
        self.tools = {name: _krb_shutil.which(name, path=_KRB_PATH) for name in _KRB_TOOLS}
        self.port = free_port()
        self.krb5_conf = root / "krb5.conf"
        self.keytab = root / "http.keytab"
        kdc_conf = root / "kdc.conf"
        self.krb5_conf.write_text(f"""\
[libdefaults]
    default_realm = {KRB_REALM}
    dns_lookup_kdc = false
    dns_lookup_realm = false
    rdns = false
    dns_canonicalize_hostname = false
    udp_preference_limit = 1
    default_ccache_name = FILE:{root}/ccache-unused
[realms]
    {KRB_REALM} = {{
        kdc = 127.0.0.1:{self.port}
    }}
[domain_realm]
    localhost = {KRB_REALM}
""")
        kdc_conf.write_text(f"""\
[kdcdefaults]
    kdc_listen = 127.0.0.1:{self.port}
    kdc_tcp_listen = 127.0.0.1:{self.port}
[realms]
    {KRB_REALM} = {{
        database_name = {root}/principal
        key_stash_file = {root}/stash
        acl_file = {root}/kadm5.acl
        max_life = 10h
    }}
[logging]
    kdc = FILE:{root}/kdc.log
""")
        self.admin_env = {**os.environ, "KRB5_CONFIG": str(self.krb5_conf), "KRB5_KDC_PROFILE": str(kdc_conf),
                          "KRB5CCNAME": f"FILE:{root}/ccache-unused"}
        self._admin([self.tools["kdb5_util"], "create", "-s", "-r", KRB_REALM, "-P", "master-pw-credproc"])
        self._admin([self.tools["kadmin.local"], "-q", f"addprinc -pw {KRB_PASSWORD} {KRB_USER}"])
        self._admin([self.tools["kadmin.local"], "-q", f"addprinc -randkey HTTP/localhost@{KRB_REALM}"])
        self._admin([self.tools["kadmin.local"], "-q", f"ktadd -k {self.keytab} HTTP/localhost@{KRB_REALM}"])
        # -n: stay in the foreground, so the fixture owns the process and stops it by its id.
        self.process = subprocess.Popen([self.tools["krb5kdc"], "-n", "-r", KRB_REALM], env=self.admin_env,
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        deadline = _krb_time.monotonic() + 15
        while True:  # ready when it answers
            if self.process.poll() is not None:
                raise RuntimeError(f"krb5kdc exited with {self.process.returncode}; see {root}/kdc.log")
            try:
                self.kinit(root / "ccache-probe")
                break
            except RuntimeError:
                if _krb_time.monotonic() > deadline:
                    raise
                _krb_time.sleep(0.1)

    def _admin(self, argv: list) -> None:
        result = subprocess.run(argv, env=self.admin_env, capture_output=True, text=True, timeout=60,
                                stdin=subprocess.DEVNULL)
        if result.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed: {result.stderr.strip()}")

    def client_env(self, ccache: Path) -> dict[str, str]:
        return {"KRB5_CONFIG": str(self.krb5_conf), "KRB5CCNAME": f"FILE:{ccache}"}

    def kinit(self, ccache: Path, password: str = KRB_PASSWORD) -> None:
        """A ticket for alice in ``ccache``, from the password on kinit's stdin."""
        result = subprocess.run([self.tools["kinit"], KRB_USER], input=password + "\n", capture_output=True,
                                text=True, timeout=30, env={**os.environ, **self.client_env(ccache)})
        if result.returncode != 0:
            raise RuntimeError(f"kinit failed: {result.stderr.strip()}")

    def kdestroy(self, ccache: Path) -> None:
        subprocess.run([self.tools["kdestroy"]], capture_output=True, timeout=30,
                       env={**os.environ, **self.client_env(ccache)}, check=True)

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def saml_assertion(role_arn: str, principal_arn: str, session_name: str, duration: int | None = None) -> str:
    """A base64 SAML response as an IdP posts it to AWS, with a unique ID (so every page
    holds a different assertion). Unsigned: moto checks the structure only."""
    now = _krb_datetime.now(_krb_timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    attributes = [("https://aws.amazon.com/SAML/Attributes/Role", f"{role_arn},{principal_arn}"),
                  ("https://aws.amazon.com/SAML/Attributes/RoleSessionName", session_name)]
    if duration is not None:
        attributes.append(("https://aws.amazon.com/SAML/Attributes/SessionDuration", str(duration)))
    values = "".join(f'<saml:Attribute Name="{name}"><saml:AttributeValue>{value}</saml:AttributeValue>'
                     "</saml:Attribute>" for name, value in attributes)
    xml = (f'<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" '
           f'xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_{_krb_uuid.uuid4().hex}" Version="2.0" '
           f'IssueInstant="{now}" Destination="https://signin.aws.amazon.com/saml">'
           "<saml:Issuer>http://localhost/idp</saml:Issuer>"
           '<samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status>'
           f'<saml:Assertion ID="_{_krb_uuid.uuid4().hex}" Version="2.0" IssueInstant="{now}">'
           "<saml:Issuer>http://localhost/idp</saml:Issuer>"
           f"<saml:Subject><saml:NameID>{session_name}</saml:NameID></saml:Subject>"
           f"<saml:AttributeStatement>{values}</saml:AttributeStatement>"
           "</saml:Assertion></samlp:Response>")
    return _krb_base64.b64encode(xml.encode()).decode()


# The pages an IdP answers with. {a} is the assertion; {b} a second one.
IDP_PAGES = {
    # ADFS-like, and not well-formed XML (unquoted attribute, <br>, unclosed <p>).
    "form": """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Working...</title></head>
<body onload="document.forms[0].submit()"><br>
<form method=POST name="hiddenform" action="https://signin.aws.amazon.com:443/saml">
<input type="hidden" name="SAMLResponse" value="{a}" /><input type="hidden" name="RelayState" value="">
<noscript><p>Script is disabled. Click Submit to continue.<input type="submit" value="Submit"></noscript>
</form></body></html>""",
    # The same in upper case, as old IdPs (and the seed's XPath) write it.
    "upper": """<HTML><HEAD><TITLE>Working...</TITLE></HEAD>
<BODY ONLOAD="document.forms[0].submit()"><FORM METHOD="POST" ACTION="https://signin.aws.amazon.com/saml">
<INPUT TYPE="HIDDEN" NAME="SAMLResponse" VALUE="{a}"><INPUT TYPE="SUBMIT" VALUE="Submit">
</FORM></BODY></HTML>""",
    # A login page instead of the form: no SAMLResponse field.
    "nofield": """<!DOCTYPE html><html><body><h1>Sign in</h1><form method="post" action="/login">
<input type="text" name="UserName"><input type="password" name="Password">
<input type="hidden" name="Context" value="c2Vzc2lvbi1jb250ZXh0LTEyMzQ1Njc4OTA="></form></body></html>""",
    # Two forms with two different assertions: which one would STS want?
    "two": """<html><body><form><input type="hidden" name="SAMLResponse" value="{a}"></form>
<form><input type="hidden" name="SAMLResponse" value="{b}"></form></body></html>""",
    # XXE, external parameter entity, and "billion laughs", with the real assertion in its field.
    "xxe": """<?xml version="1.0" encoding="utf-8"?>
<!DOCTYPE html [
  <!ENTITY xxe SYSTEM "file://{xxe_file}">
  <!ENTITY xxehttp SYSTEM "{xxe_url}">
  <!ENTITY % remote SYSTEM "{xxe_url}-dtd">
  %remote;
  <!ENTITY lol "lol">
  <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
  <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
  <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
  <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
  <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
  <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
  <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<html><body><p>&lol9; &xxe; &xxehttp;</p>
<form method="post" action="https://signin.aws.amazon.com/saml">
<input type="hidden" name="SAMLResponse" value="{a}"><input type="hidden" name="RelayState" value="&xxe;&xxehttp;">
</form></body></html>""",
}


# Answers too large for any IdP, streamed rather than built (see Handler.flood): as the page,
# as the body of the 401 that asks for Kerberos, as the body of a redirect to the page.
IDP_FLOODS = ("huge", "endless", "gzip-bomb", "challenge-bomb", "redirect-bomb")


@_functools.lru_cache(maxsize=None)
def _gzip_bomb(size: int) -> bytes:
    """A gzip stream of ``size`` zero bytes, a thousandth of that on the wire: one member of
    16 MiB repeated (a gzip stream may be many members; HTTP clients inflate them all)."""
    import gzip

    member = gzip.compress(bytes(16 << 20), compresslevel=9, mtime=0)
    return member * max(1, size >> 24)


class SpnegoIdp:
    """An IdP page behind SPNEGO, answered by a real Kerberos acceptor (python gssapi).

    Per test (``reset``): ``page`` (a key of IDP_PAGES or IDP_FLOODS, whose size is
    ``flood_bytes``), ``faults`` (HTTP statuses answered
    after a successful authentication, first to last), ``mutual_token`` (send the acceptor's
    token back, which mutual authentication needs), ``delay`` (seconds before answering a
    page), ``xxe_file``. Records: ``count(kind)`` for "challenge" (401 Negotiate to a request
    without a token), "rejected" (a token the acceptor refused, replays included),
    "authenticated", "fault", "page" and "xxe" (a fetch of the XXE payload's URL);
    ``tokens``, ``principals``, ``assertions`` (each page's first one), ``rejections``.
    """

    def __init__(self, keytab: Path, rcache: Path):
        import gssapi

        self.gssapi = gssapi
        # The replay cache in our temp dir: a token sent twice is refused, as by real IdPs.
        self.creds = gssapi.Credentials(usage="accept", store={"keytab": str(keytab), "rcache": f"file2:{rcache}"})
        self.lock = _krb_threading.Lock()
        idp = self

        class Handler(_KrbHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                idp._handle(self)

            def answer(self, status: int, body: str, headers: dict | None = None) -> None:
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

            def flood(self, kind: str, total: int, headers: dict, status: int = 200) -> None:
                """A body of ``total`` bytes: "huge" declares its length, "endless" does not (it
                ends when the connection closes), the "-bomb"s inflate to ``total`` zero bytes."""
                self.send_response(status)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                for k, v in headers.items():
                    self.send_header(k, v)
                if kind.endswith("-bomb"):
                    body = _gzip_bomb(total)
                    self.send_header("Content-Encoding", "gzip")
                    self.send_header("Content-Length", str(len(body)))
                    chunks = iter([body])
                else:
                    if kind == "huge":
                        self.send_header("Content-Length", str(total))
                    self.send_header("Connection", "close")
                    self.close_connection = True
                    block = b"<p>" + b"x" * (64 * 1024 - 8) + b"</p>\n"  # 64 KiB
                    chunks = (block for _ in range(total // len(block)))
                self.end_headers()
                try:
                    for chunk in chunks:
                        self.wfile.write(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client stopped reading: what a bounded reader does

        self.server = LoopbackServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://localhost:{self.port}/idp"  # the service principal is HTTP/localhost
        self.xxe_url = f"http://127.0.0.1:{self.port}/xxe"
        self.reset()
        _krb_threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def reset(self) -> None:
        with self.lock:
            # Answers still pending from the last test (a delayed page its client gave up
            # on) are dropped, not recorded in this test's counters.
            self.generation = getattr(self, "generation", 0) + 1
            if hasattr(self, "wake"):
                self.wake.set()
            self.wake = _krb_threading.Event()
            self.page = "form"
            self.faults: list[int] = []
            self.mutual_token = True
            self.delay = 0.0
            self.xxe_file: str = "/nonexistent"
            self.flood_bytes = 1 << 30  # the size of the IDP_FLOODS pages
            self.role_arn = ROLE_ARN
            self.principal_arn = SAML_PRINCIPAL_ARN
            self.session_duration: int | None = None
            self.calls: dict[str, int] = {}
            self.tokens: list[str] = []
            self.principals: list[str] = []
            self.assertions: list[str] = []
            self.rejections: list[str] = []

    def count(self, kind: str) -> int:
        with self.lock:
            return self.calls.get(kind, 0)

    def _record(self, kind: str) -> None:
        with self.lock:
            self.calls[kind] = self.calls.get(kind, 0) + 1

    def _handle(self, request) -> None:
        if request.path.startswith("/xxe"):
            self._record("xxe")
            request.answer(200, "XXE-HTTP-PAYLOAD-FETCHED")
            return
        with self.lock:
            generation, wake = self.generation, self.wake
        header = request.headers.get("Authorization", "")
        if not header.startswith("Negotiate "):
            self._record("challenge")
            if self.page == "challenge-bomb":
                request.flood(self.page, self.flood_bytes, {"WWW-Authenticate": "Negotiate"}, status=401)
                return
            request.answer(401, "<html><body>Kerberos required</body></html>", {"WWW-Authenticate": "Negotiate"})
            return
        token = header.split(None, 1)[1].strip()
        with self.lock:
            self.tokens.append(token)
        context = self.gssapi.SecurityContext(creds=self.creds, usage="accept")
        try:
            out = context.step(_krb_base64.b64decode(token))
            # SPNEGO defers an error that comes with an error token: reading the state raises it.
            failure = None if context.complete else "the security context is not complete"
        except self.gssapi.exceptions.GSSError as e:
            failure = e.gen_message()
        if failure:
            self._record("rejected")
            with self.lock:
                self.rejections.append(failure)
            request.answer(401, "<html><body>Kerberos failed</body></html>", {"WWW-Authenticate": "Negotiate"})
            return
        principal = str(context.initiator_name)
        self._record("authenticated")
        with self.lock:
            self.principals.append(principal)
            fault = self.faults.pop(0) if self.faults else None
            page, delay = self.page, self.delay
        headers = {}
        if out and self.mutual_token:
            headers["WWW-Authenticate"] = "Negotiate " + _krb_base64.b64encode(out).decode()
        if fault:
            self._record("fault")
            request.answer(fault, "<html><body>Service Unavailable</body></html>", headers)
            return
        if delay:
            wake.wait(delay)
            with self.lock:
                if generation != self.generation:
                    return  # the test is over: no answer, nothing recorded
        session_name = principal.split("@")[0]
        first = saml_assertion(self.role_arn, self.principal_arn, session_name, self.session_duration)
        second = saml_assertion(self.role_arn, self.principal_arn, session_name + "-2", self.session_duration)
        with self.lock:
            self.assertions.extend([first, second] if page == "two" else [first])
        if page == "redirect-bomb" and not request.path.endswith("/landing"):
            self._record("redirect")
            request.flood(page, self.flood_bytes, {**headers, "Location": "/idp/landing"}, status=302)
            return
        if page in IDP_FLOODS:
            self._record("page")
            request.flood(page, self.flood_bytes, headers)
            return
        body = IDP_PAGES[page]
        for key, value in (("{a}", first), ("{b}", second), ("{xxe_file}", self.xxe_file),
                           ("{xxe_url}", self.xxe_url)):
            body = body.replace(key, value)
        self._record("page")
        request.answer(200, body, headers)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="session")
def kdc(tmp_path_factory):
    """The session's KDC; skips (a failure in CI) when MIT Kerberos is not installed."""
    missing = [name for name in _KRB_TOOLS if not _krb_shutil.which(name, path=_KRB_PATH)]
    if missing:
        pytest.skip(f"MIT Kerberos tools missing ({', '.join(missing)}): {KRB_PACKAGES}")
    server = Kdc(tmp_path_factory.mktemp("kdc"))
    yield server
    server.close()


@pytest.fixture(scope="session")
def _spnego_idp(kdc):
    pytest.importorskip("gssapi", reason="pip install 'credproc[saml]' (needs libkrb5-dev and gcc)")
    server = SpnegoIdp(kdc.keytab, kdc.root / "idp.rcache2")
    yield server
    server.close()


@pytest.fixture
def idp(_spnego_idp):
    """The SPNEGO-protected IdP for one test: ``idp.url``, knobs and counters (see SpnegoIdp)."""
    _spnego_idp.reset()
    yield _spnego_idp
    _spnego_idp.reset()


@pytest.fixture
def krb_env(env, kdc, tmp_path):
    """``env`` plus a private krb5.conf and a ticket cache holding alice's fresh ticket
    (``krb_env["KRB5CCNAME"]``); no Kerberos setting leaks in from the developer's own."""
    ccache = tmp_path / "krb5cc"
    kdc.kinit(ccache)
    for key in [k for k in env if k.startswith("KRB5")]:
        del env[key]
    env.update(kdc.client_env(ccache))
    return env
