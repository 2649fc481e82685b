"""What every test shares: the credproc executable in an isolated environment, and the
guard that keeps CI from passing with tests that did not run.

* ``env``: an environment for the ``credproc`` executable (own HOME, cache directory, AWS
  config files; nothing inherited from the developer's AWS setup);
* ``credproc_bin``: the installed executable (skips when it is not installed);
* ``run``: run it as an SDK would (``run(args, env)``);
* ``faketime``: the path of libfaketime's wrapper (skips when it is missing); with it,
  ``helpers.run_at(offset, args, env)`` runs credproc with its clock moved (``"+25m"``);
* ``refreshers``: the background refreshers this test's runs leave behind (``.pids()``,
  ``.wait()``, ``.wait_for(n)``), each run marked through ``env``; killed at teardown.

The real parts the tests talk to (the local STS, Kerberos, Google, ...) are started by the
fixtures of ``servers/``, registered here as plugins; the helpers several test files use are
in ``helpers.py``. Both are imported by name from this directory, which is put on sys.path
here rather than left to pytest's import mode.

Tests marked ``integration`` use these. With ``CREDPROC_REQUIRE_INTEGRATION=1`` (CI sets
it) a skipped integration test counts as a failure, and a test module skipped while it is
collected (a module-level ``pytest.importorskip``) is a collection error: a green run must
have run them all.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# tests/ has no __init__.py: pytest's default "prepend" import mode happens to put it on
# sys.path, other modes do not. Putting it there ourselves keeps `from helpers import ...`
# and the plugins below working whatever the mode.
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

# Before the first import of helpers: its checks are plain asserts, and only a module marked
# for rewriting reports their values. (The plugin modules below are marked by pytest itself.)
pytest.register_assert_rewrite("helpers")

from helpers import BIN, CREDPROC, Refreshers, faketime_path  # noqa: E402

pytest_plugins = [
    "servers.sts",
    "servers.kerberos",
    "servers.google",
    "servers.blackhole",
    "servers.federation",
    "servers.sso",
]


# -- integration tests are never silently skipped in CI ---------------------------------

REQUIRE_INTEGRATION = "CREDPROC_REQUIRE_INTEGRATION"


def _integration_required() -> bool:
    return os.environ.get(REQUIRE_INTEGRATION) == "1"


def _skip_reason(longrepr) -> str:
    """The reason of a skip report: its longrepr is (path, line number, "Skipped: reason")."""
    return str(longrepr[2]) if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A skipped integration test fails: in its setup (a fixture that skips, a skip marker)
    or its body. An xfail is reported as skipped too, but is no silent skip: left alone."""
    outcome = yield
    report = outcome.get_result()
    if (report.skipped and not hasattr(report, "wasxfail") and "integration" in item.keywords
            and _integration_required()):
        report.outcome = "failed"
        report.longrepr = (f"integration test skipped while {REQUIRE_INTEGRATION}=1: "
                           f"{_skip_reason(report.longrepr)}")


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    """A module (or class) skipped while it is collected, e.g. by a module-level
    ``pytest.importorskip``, never reaches the hook above: none of its tests exists, so none
    is reported. Turn that skip into a collection error, which names the module and the
    reason, and which stops the run before any test (as a module that fails to import does:
    the suite is incomplete). ``--continue-on-collection-errors`` runs the rest anyway."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and _integration_required():
        report.outcome = "failed"
        report.longrepr = (f"{collector.nodeid} was skipped while it was collected, so none of its tests "
                           f"ran, while {REQUIRE_INTEGRATION}=1: {_skip_reason(report.longrepr)}")


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


@pytest.fixture
def faketime() -> str:
    """libfaketime's ``faketime``, to move a credproc run's clock (``helpers.run_at``)."""
    return faketime_path()


@pytest.fixture
def refreshers(env):
    """The detached refreshers of this test's credproc runs (``helpers.Refreshers``): ``env``
    carries the marker that finds them. None outlives the test: a refresher left running
    would ask the STS in the next one."""
    tracker = Refreshers(env)
    yield tracker
    tracker.kill()


# -- credproc serve, running ------------------------------------------------------------------------


@pytest.fixture
def serving(credproc_bin, env):
    """``serving(conn_ids, env, *, prefix=())``: ``credproc serve --format json`` started for the
    connections, once it has printed its exports (so it has fetched and listens); returns a
    ``helpers.Serving`` (``.port``, ``.token``, ``.token_file``, ``.uri(id)``, ``.env(for_env)``,
    ``.proc``). ``prefix`` goes in front of the executable (faketime). Every server started is
    stopped at teardown, killed if SIGTERM does not stop it."""
    from helpers import Serving

    started: list[Serving] = []

    def _start(conn_ids, env, *, prefix=(), extra=()) -> Serving:
        serving = Serving.start([*prefix, str(credproc_bin)], conn_ids, env, extra)
        started.append(serving)
        return serving

    yield _start
    for serving in started:
        serving.stop()
