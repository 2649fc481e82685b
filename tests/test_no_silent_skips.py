"""The guard of conftest.py that keeps CI honest: with CREDPROC_REQUIRE_INTEGRATION=1 a skipped
integration test fails, and a module skipped while it is collected fails the run.

Each test runs a nested pytest (pytester, in this process) on a small test file written for
it, with conftest.py's hooks loaded, once with the variable set and once without: set, the
skip must become a failure that says why; unset, it must stay a plain skip.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]  # this file only needs it; loading it here keeps it out of other runs' setup

VARIABLE = "CREDPROC_REQUIRE_INTEGRATION"


def _our_conftest():
    """conftest.py's module object, to load into the nested run as a plugin: by the object,
    since its module name depends on pytest's import mode."""
    path = Path(__file__).resolve().with_name("conftest.py")
    for module in list(sys.modules.values()):
        file = getattr(module, "__file__", None)
        if file and Path(file).resolve() == path:
            return module
    raise AssertionError(f"{path} is not loaded")


@pytest.fixture
def nested(pytester, monkeypatch):
    """``nested(files, required=...)``: write the test files (name -> source), run pytest on
    them with conftest.py's hooks, the variable set to 1 or absent; the run's result."""
    pytester.makeini("[pytest]\nmarkers =\n    integration: as in pyproject.toml\n")

    def run(files: dict[str, str], *, required: bool):
        if required:
            monkeypatch.setenv(VARIABLE, "1")
        else:
            monkeypatch.delenv(VARIABLE, raising=False)
        pytester.makepyfile(**files)
        return pytester.runpytest("-p", "no:cacheprovider", "-rA", plugins=[_our_conftest()])

    return run


A_PASSING_MODULE = "def test_something_else():\n    pass\n"

MODULE_SKIPS = {
    "importorskip": "import pytest\n"
                    "pytest.importorskip('credproc_no_such_module')\n"
                    "pytestmark = pytest.mark.integration\n"
                    "def test_needs_it():\n    pass\n",
    "skip-allow-module-level": "import pytest\n"
                               "pytest.skip('no toolchain here', allow_module_level=True)\n"
                               "def test_needs_it():\n    pass\n",
}
MODULE_SKIP_REASONS = {"importorskip": "could not import 'credproc_no_such_module'",
                       "skip-allow-module-level": "no toolchain here"}


@pytest.mark.parametrize("how", list(MODULE_SKIPS))
def test_a_module_skipped_at_collection_fails_the_run_only_when_required(nested, how):
    files = {"test_skipping": MODULE_SKIPS[how], "test_other": A_PASSING_MODULE}

    relaxed = nested(files, required=False)
    relaxed.assert_outcomes(passed=1, skipped=1)
    assert relaxed.ret == pytest.ExitCode.OK

    required = nested(files, required=True)
    # A collection error: nothing runs, the run fails, and the message says which module and why.
    required.assert_outcomes(errors=1)
    assert required.ret == pytest.ExitCode.INTERRUPTED
    required.stdout.fnmatch_lines([
        f"*test_skipping.py was skipped while it was collected, so none of its tests ran, "
        f"while {VARIABLE}=1: *{MODULE_SKIP_REASONS[how]}*",
    ])


SKIPS_AT_RUN_TIME = """\
import pytest

@pytest.fixture
def server():
    pytest.skip("the server's toolchain is missing")

@pytest.fixture(scope="session")
def session_server():
    pytest.skip("the session's server is missing")

@pytest.mark.integration
def test_fixture_skips(server):
    pass

@pytest.mark.integration
def test_session_fixture_skips(session_server):
    pass

@pytest.mark.integration
def test_session_fixture_skips_again(session_server):
    pass

@pytest.mark.integration
def test_body_skips():
    pytest.skip("not today")

@pytest.mark.integration
@pytest.mark.skip(reason="marked")
def test_marked_skip():
    pass

@pytest.mark.integration
@pytest.mark.xfail(reason="a known bug", strict=True)
def test_known_bug():
    assert False

def test_unit_test_may_skip(server):
    pass
"""


def test_integration_tests_skipped_by_a_fixture_or_their_body_fail_only_when_required(nested):
    files = {"test_run_time": SKIPS_AT_RUN_TIME}

    relaxed = nested(files, required=False)
    relaxed.assert_outcomes(skipped=6, xfailed=1)

    required = nested(files, required=True)
    # Every skipped integration test fails, in its setup (a fixture, the session's one for
    # each test that uses it, a skip marker) or its body; a unit test may still skip, and an
    # expected failure is no skip.
    required.assert_outcomes(failed=1, errors=4, skipped=1, xfailed=1)
    assert required.ret == pytest.ExitCode.TESTS_FAILED
    required.stdout.fnmatch_lines_random([
        f"*integration test skipped while {VARIABLE}=1: Skipped: the server's toolchain is missing*",
        f"*integration test skipped while {VARIABLE}=1: Skipped: the session's server is missing*",
        f"*integration test skipped while {VARIABLE}=1: Skipped: not today*",
        f"*integration test skipped while {VARIABLE}=1: Skipped: marked*",
    ])
    assert "test_unit_test_may_skip" not in "".join(
        line for line in required.outlines if line.startswith(("FAILED", "ERROR")))
