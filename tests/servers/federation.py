"""The federation endpoint examples/factory/corp_federation.py calls (``federation_endpoint``):
a stand-in for an organisation's own service that trades a user name and password for STS-style
credentials. test_factory.py runs the example factory against it."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler

import pytest

from servers.loopback import LoopbackServer

FEDERATION_USER, FEDERATION_PASSWORD = "alice", "corp-federation-password-1"


class FederationEndpoint:
    """A federation endpoint on 127.0.0.1 as examples/factory/corp_federation.py expects:
    POST {"username", "password"} -> STS-style credentials valid for an hour."""

    def __init__(self, username: str, password: str):
        self.requests: list[dict] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                endpoint.requests.append(body)
                if body != {"username": username, "password": password}:
                    self.send_error(401, "Unauthorized")
                    return
                endpoint.expiration = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
                payload = json.dumps({"AccessKeyId": "ASIAFEDERATEDEXAMPLE", "SecretAccessKey": "federated-secret-key",
                                       "SessionToken": "federated-session-token",
                                       "Expiration": endpoint.expiration}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = LoopbackServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/aws/credentials"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

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
