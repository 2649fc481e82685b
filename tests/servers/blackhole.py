"""Addresses that never answer, for timeout tests (``blackhole``).

A read timeout (a server that accepts and then says nothing, as 169.254.169.254 does off
Google Cloud) and a connect timeout (a port whose accept queue is full, so SYNs are dropped).
"""

from __future__ import annotations

import socket
import threading

import pytest


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
