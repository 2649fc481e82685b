"""The threaded HTTP server every test server is built on, and a base for the small ones that
count what they answer."""

from __future__ import annotations

import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class LoopbackServer(ThreadingHTTPServer):
    """A threaded HTTP server for tests, whose clients may go away mid-answer (a process
    killed on purpose, a client that timed out). That is no error here, and its traceback,
    printed by a server thread at any moment, would land in whichever test is capturing
    stderr then."""

    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)


class LoopbackHttp:
    """A threaded HTTP server on 127.0.0.1 that counts what it handles, by kind.

    ``handle(request, body)`` answers every GET and POST; ``request.answer(status, body,
    content_type, headers)`` sends a whole answer, and ``record(kind, request, body)`` counts
    it (``count(kind)``, ``requests``)."""

    def __init__(self, handle):
        self.lock = threading.Lock()
        self.calls: dict[str, int] = {}
        self.requests: list[dict] = []

        class Handler(BaseHTTPRequestHandler):
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
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

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
