"""The local STS: moto in server mode, behind a reverse proxy that sees every request.

* ``moto``: moto's STS (and IAM) over HTTP, once per session;
* ``sts``: the proxy in front of it for one test (``sts.url`` to point connections at),
  reset before and after: it counts requests per STS ``Action`` (``sts.count``), keeps them
  (``sts.requests``: action, parameters, headers, so a test sees the signing key; ``at``,
  when it arrived, by ``time.monotonic()``; ``status``, the HTTP status answered, and
  ``issued``, the access key id the answer handed out, if any), and can
  delay answers (``sts.delay``), answer faults instead (``sts.faults``), or stop listening
  so that connections are refused (``sts.refuse()``, ``sts.accept()``). Answers still held
  by a delay when the test ends are dropped, and the proxy listens again. It can also check
  MFA as real STS does, which moto does not (``sts.mfa_devices``, ``sts.mfa_roles``: see
  :class:`StsProxy`).

The benchmarks use the proxy too, through tests/stsproxy.py.
"""

from __future__ import annotations

import http.client
import re
import secrets
import string
import threading
import time
import urllib.parse
from datetime import datetime
from http.server import BaseHTTPRequestHandler

import pytest
from helpers import free_port

from servers.loopback import LoopbackServer


class StsProxy:
    """A reverse proxy in front of moto that sees every STS request.

    ``calls`` counts requests per Action; ``delay[action]`` sleeps before forwarding (a
    hanging STS: a long delay, and the client's read timeout ends it); ``faults`` is a list
    of (status, code) answered instead of forwarding, first to last (e.g.
    ``(400, "Throttling")`` or ``(503, "ServiceUnavailable")``); :meth:`refuse` closes the
    listening socket, so that connecting to ``url`` fails at once (ECONNREFUSED), until
    :meth:`accept` listens on the same port again.

    MFA, checked as real STS checks it (moto checks no code), opt-in per test and cleared by
    :meth:`reset`:

    * ``mfa_devices = {SERIAL_ARN: "123456"}``: the code each device shows now (a test sets
      the next one). While it is not empty, a GetSessionToken or AssumeRole that names a
      SerialNumber is refused (403 AccessDenied, STS's own wording, :data:`MFA_FAILED`) for a
      missing TokenCode, an unknown device, a wrong code, or a code already used (single
      use); a good code is forwarded to moto. GetSessionToken answers carry fresh keys
      (moto's are fixed, and are the tests' own long-term pair): ``sessions`` maps each
      access key id to what it is (``mfa``: opened with a code; ``serial``, ``token``,
      ``expires``).
    * ``mfa_roles = {ROLE_ARN}``: roles whose trust policy requires
      ``aws:MultiFactorAuthPresent``. AssumeRole of one is allowed when it is signed by the
      key of an MFA session (with its session token), or carries a good SerialNumber and
      TokenCode; otherwise 403 AccessDenied ("... is not authorized to perform:
      sts:AssumeRole ...").

    Whatever the settings: GetSessionToken signed with temporary keys (a session token) is
    refused as STS refuses it, and a request signed with a session key this proxy handed out
    must carry that session's token, and arrive before it expires. ``denied`` lists every
    refusal (action, code, message), for a test's failure message.
    """

    def __init__(self, upstream: str):
        self.upstream = urllib.parse.urlsplit(upstream)
        self.lock = threading.Lock()
        self._released = threading.Event()
        self.refusing = False
        self.reset()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):
                proxy._handle(self)

            def do_GET(self):
                proxy._handle(self)

        self._handler = Handler
        self._listen(0)
        self.url = f"http://127.0.0.1:{self.port}"

    def _listen(self, port: int) -> None:
        self.server = LoopbackServer(("127.0.0.1", port), self._handler)  # SO_REUSEADDR: the port again
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def reset(self) -> None:
        """Counts, delays and faults cleared; answers a delay still holds are dropped (their
        clients are gone with the test); listening again if :meth:`refuse` stopped it."""
        with self.lock:
            self.calls: dict[str, int] = {}
            self.delay: dict[str, float] = {}
            self.faults: list[tuple[int, str]] = []
            self.requests: list[dict] = []
            self.mfa_devices: dict[str, str] = {}
            self.mfa_roles: set[str] = set()
            self.used_codes: set[tuple[str, str]] = set()
            self.sessions: dict[str, dict] = {}
            self.denied: list[tuple[str, str, str]] = []
            held, self._released = self._released, threading.Event()
        held.set()
        self.accept()

    def refuse(self) -> None:
        """Stop listening: every connection to ``url`` is refused until :meth:`accept`."""
        if not self.refusing:
            self.refusing = True
            self.server.shutdown()
            self.server.server_close()

    def accept(self) -> None:
        """Listen on ``url`` again after :meth:`refuse`."""
        if self.refusing:
            self._listen(self.port)
            self.refusing = False

    def count(self, action: str) -> int:
        with self.lock:
            return self.calls.get(action, 0)

    def mfa_session_keys(self) -> list[str]:
        """The access key ids of the MFA sessions opened so far, oldest first."""
        with self.lock:
            return [key for key, session in self.sessions.items() if session["mfa"]]

    # -- MFA, as real STS checks it --------------------------------------------------------

    def _refusal(self, action: str, params: dict, headers) -> tuple[int, str, str] | None:
        """(status, code, message) when real STS would refuse this request, else None;
        a good MFA code is used up here (under the lock: two requests cannot share one)."""
        key = _signing_key(headers)
        token = _header(headers, "X-Amz-Security-Token")
        session = self.sessions.get(key)
        if session is not None:
            if token != session["token"]:
                return 403, "InvalidClientTokenId", "The security token included in the request is invalid."
            if time.time() >= session["expires"]:
                return 403, "ExpiredToken", "The security token included in the request is expired"
        if action == "GetSessionToken" and token:
            return 403, "AccessDenied", "Cannot call GetSessionToken with session credentials"
        if action not in ("GetSessionToken", "AssumeRole"):
            return None
        serial = params.get("SerialNumber")
        with_code = False
        if serial and self.mfa_devices:
            code = params.get("TokenCode")
            if not code or self.mfa_devices.get(serial) != code or (serial, code) in self.used_codes:
                return 403, "AccessDenied", MFA_FAILED
            self.used_codes.add((serial, code))
            with_code = True
        if action == "AssumeRole" and params.get("RoleArn") in self.mfa_roles:
            if not (with_code or (session is not None and session["mfa"])):
                return 403, "AccessDenied", (f"User: arn:aws:iam::{_account(params['RoleArn'])}:user/credproc-test "
                                             f"is not authorized to perform: sts:AssumeRole on resource: "
                                             f"{params['RoleArn']}")
        return None

    def _new_session(self, params: dict, data: bytes) -> bytes:
        """moto's GetSessionToken answer with keys of its own (moto always hands out the same
        pair, the tests' long-term one), remembered in ``sessions``."""
        expiration = re.search(rb"<Expiration>([^<]+)</Expiration>", data)
        if b"<AccessKeyId>" not in data or expiration is None:
            return data
        alphabet = string.ascii_uppercase + string.digits
        key = "ASIA" + "".join(secrets.choice(alphabet) for _ in range(16))
        secret = secrets.token_urlsafe(30)[:40]
        token = "FwoGZXIvYXdzEMFA" + secrets.token_urlsafe(96)
        expires = datetime.fromisoformat(expiration.group(1).decode().replace("Z", "+00:00")).timestamp()
        for name, value in (("AccessKeyId", key), ("SecretAccessKey", secret), ("SessionToken", token)):
            data = re.sub(rf"<{name}>[^<]*</{name}>".encode(), f"<{name}>{value}</{name}>".encode(), data, count=1)
        with self.lock:
            self.sessions[key] = {"mfa": bool(params.get("SerialNumber")), "serial": params.get("SerialNumber"),
                                  "secret": secret, "token": token, "expires": expires}
        return data

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        query = urllib.parse.urlsplit(request.path).query
        params = dict(urllib.parse.parse_qsl(body.decode("utf-8", "replace") + "&" + query))
        action = params.get("Action", "?")
        with self.lock:
            self.calls[action] = self.calls.get(action, 0) + 1
            record = {"action": action, "params": params, "headers": dict(request.headers),
                      "at": time.monotonic(), "status": None, "issued": None}
            self.requests.append(record)
            delay = self.delay.get(action, 0.0)
            fault = self.faults.pop(0) if self.faults else None
            released = self._released
        if delay and released.wait(delay):  # the test is over: nobody waits for this answer
            request.close_connection = True
            return
        if fault:
            status, code = fault
            record["status"] = status
            self._error(request, status, code, f"injected {code}")
            return
        with self.lock:
            refusal = self._refusal(action, params, request.headers)
            if refusal is not None:
                self.denied.append((action, refusal[1], refusal[2]))
        if refusal is not None:
            record["status"] = refusal[0]
            self._error(request, *refusal)
            return
        conn = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=30)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "connection")}
        conn.request(request.command, request.path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        conn.close()
        keep = {k: v for k, v in response.getheaders()
                if k.lower() not in ("transfer-encoding", "connection", "content-length", "server", "date")}
        if action == "GetSessionToken" and response.status == 200:
            data = self._new_session(params, data)
        issued = re.search(rb"<AccessKeyId>([^<]+)</AccessKeyId>", data)
        with self.lock:
            record["status"] = response.status
            record["issued"] = issued.group(1).decode() if issued else None
        self._answer(request, response.status, keep, data)

    def _error(self, request, status: int, code: str, message: str) -> None:
        payload = (f'<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error>'
                   f"<Type>Sender</Type><Code>{code}</Code><Message>{message}</Message>"
                   f"</Error><RequestId>test</RequestId></ErrorResponse>").encode()
        self._answer(request, status, {"Content-Type": "text/xml"}, payload)

    @staticmethod
    def _answer(request, status: int, headers: dict, data: bytes) -> None:
        request.send_response(status)
        for k, v in headers.items():
            request.send_header(k, v)
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# What real STS answers for a missing, wrong or reused MFA code (HTTP 403, AccessDenied).
MFA_FAILED = "MultiFactorAuthentication failed with invalid MFA one time pass code."


def _header(headers, name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name.lower():
            return value
    return ""


def _signing_key(headers) -> str:
    match = re.search(r"Credential=([^/,\s]+)/", _header(headers, "Authorization"))
    return match.group(1) if match else ""


def _account(arn: str) -> str:
    parts = arn.split(":")
    return parts[4] if len(parts) > 4 and parts[4] else "123456789012"


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
