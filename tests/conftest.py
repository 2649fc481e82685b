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
from stsproxy import StsProxy

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
