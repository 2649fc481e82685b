"""The local STS: moto in server mode, behind a reverse proxy that sees every request.

* ``moto``: moto's STS (and IAM) over HTTP, once per session;
* ``sts``: the proxy in front of it for one test (``sts.url`` to point connections at),
  reset before and after: it counts requests per STS ``Action`` (``sts.count``), keeps them
  (``sts.requests``: action, parameters, headers, so a test sees the signing key), and can
  delay answers (``sts.delay``), answer faults instead (``sts.faults``), or stop listening
  so that connections are refused (``sts.refuse()``, ``sts.accept()``). Answers still held
  by a delay when the test ends are dropped, and the proxy listens again.

The benchmarks use the proxy too, through tests/stsproxy.py.
"""

from __future__ import annotations

import http.client
import threading
import urllib.parse
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

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        query = urllib.parse.urlsplit(request.path).query
        params = dict(urllib.parse.parse_qsl(body.decode("utf-8", "replace") + "&" + query))
        action = params.get("Action", "?")
        with self.lock:
            self.calls[action] = self.calls.get(action, 0) + 1
            self.requests.append({"action": action, "params": params, "headers": dict(request.headers)})
            delay = self.delay.get(action, 0.0)
            fault = self.faults.pop(0) if self.faults else None
            released = self._released
        if delay and released.wait(delay):  # the test is over: nobody waits for this answer
            request.close_connection = True
            return
        if fault:
            status, code = fault
            payload = (f'<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error>'
                       f"<Type>Sender</Type><Code>{code}</Code><Message>injected {code}</Message>"
                       f"</Error><RequestId>test</RequestId></ErrorResponse>").encode()
            self._answer(request, status, {"Content-Type": "text/xml"}, payload)
            return
        conn = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=30)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "connection")}
        conn.request(request.command, request.path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        conn.close()
        keep = {k: v for k, v in response.getheaders()
                if k.lower() not in ("transfer-encoding", "connection", "content-length", "server", "date")}
        self._answer(request, response.status, keep, data)

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
