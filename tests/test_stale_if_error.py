"""Stale if error: inside the refresh window, a refresh that fails prints the cached
credentials with one warning, while they keep more than the floor (11 minutes); past it, or
when they have expired, the error as before.

Time is moved around the real executable with libfaketime (Debian's ``faketime``), never
inside credproc; the local STS keeps the real clock, so a one-hour role fetched now expires
an hour from real time, and ``faketime -f +45m`` puts credproc 15 minutes before that.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from helpers import ROLE_ARN, SECRET_KEY_FORMS, conn_uri, ok, one_error

pytestmark = pytest.mark.integration

CONN = "prod"
# STS fails every attempt of the run (standard retry mode: 3 attempts; a few to spare).
OUTAGE = [(503, "ServiceUnavailable")] * 6


@pytest.fixture
def faketime():
    path = shutil.which("faketime")
    if path is None:
        pytest.skip("faketime is not installed (scripts/system-deps installs it)")
    return path


@pytest.fixture
def warm(sts, env, run):
    """A one-hour role (moto's default) fetched now, in real time: the cached entry."""
    env[f"CREDPROC_CONN_{CONN.upper()}"] = conn_uri(sts.url, role_arn=ROLE_ARN)
    first = ok(run(["--conn", CONN], env), temporary=True)
    assert sts.count("AssumeRole") == 1
    return env, first


def later(faketime, credproc_bin, env, offset: str, *args: str) -> subprocess.CompletedProcess:
    """credproc run with its clock moved by ``offset`` (libfaketime's "+45m" form)."""
    return subprocess.run([faketime, "-f", offset, str(credproc_bin), "--conn", CONN, *args], env=env,
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def test_a_failed_refresh_inside_the_window_serves_the_cached_credentials(sts, warm, faketime, credproc_bin):
    env, first = warm
    sts.faults = list(OUTAGE)
    result = later(faketime, credproc_bin, env, "+45m")  # 15 minutes left: due, above the floor
    assert ok(result) == first, "the cached credentials, exactly"
    assert sts.count("AssumeRole") > 1, "a refresh was tried"
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("credproc: warning: "), result.stderr
    warning = lines[0]
    for needle in (f"connection {CONN!r}", "refreshing its credentials failed", "ServiceUnavailable",
                   first["Expiration"], "11 minutes"):
        assert needle in warning, f"{needle!r} not in {warning!r}"
    for secret in (*SECRET_KEY_FORMS, first["SecretAccessKey"], first["SessionToken"]):
        assert secret not in result.stderr


def test_when_sts_answers_again_the_refresh_replaces_the_entry(sts, warm, faketime, credproc_bin):
    env, first = warm
    sts.faults = list(OUTAGE)
    ok(later(faketime, credproc_bin, env, "+45m"))
    sts.faults = []
    calls = sts.count("AssumeRole")
    renewed = later(faketime, credproc_bin, env, "+46m")
    assert ok(renewed)["AccessKeyId"] != first["AccessKeyId"]
    assert renewed.stderr == ""
    assert sts.count("AssumeRole") == calls + 1


def test_past_the_floor_a_failed_refresh_is_the_error_as_before(sts, warm, faketime, credproc_bin):
    env, _ = warm
    sts.faults = list(OUTAGE)
    one_error(later(faketime, credproc_bin, env, "+50m"), 1, "ServiceUnavailable")  # 10 minutes left


def test_expired_credentials_are_never_printed(sts, warm, faketime, credproc_bin):
    env, _ = warm
    sts.faults = list(OUTAGE)
    one_error(later(faketime, credproc_bin, env, "+61m"), 1, "ServiceUnavailable")


def test_an_explicit_refresh_that_fails_is_an_error(sts, warm, faketime, credproc_bin):
    """--refresh asks for new credentials: the cached ones are no answer to it."""
    env, _ = warm
    sts.faults = list(OUTAGE)
    one_error(later(faketime, credproc_bin, env, "+45m", "--refresh"), 1, "ServiceUnavailable")


def test_a_fresh_entry_never_asks_sts_even_when_it_is_down(sts, warm, faketime, credproc_bin):
    env, first = warm
    sts.faults = list(OUTAGE)
    result = later(faketime, credproc_bin, env, "+30m")  # 30 minutes left: still fresh (margin 20)
    assert ok(result) == first and result.stderr == ""
    assert sts.count("AssumeRole") == 1


def test_commands_serve_stale_too(sts, warm, faketime, credproc_bin):
    """``credproc env`` goes through the same cache, so it also outlives the outage."""
    env, first = warm
    sts.faults = list(OUTAGE)
    result = subprocess.run([faketime, "-f", "+45m", str(credproc_bin), "env", CONN, "--format", "json"],
                            env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["AWS_ACCESS_KEY_ID"] == first["AccessKeyId"]
    assert "refreshing its credentials failed" in result.stderr
