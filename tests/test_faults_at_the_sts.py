"""Faults at the STS: throttling and 5xx bursts, and an STS that never answers.

The promises (README, "Retries and timeouts"): credproc succeeds within the configured retry
budget and gives up past it with one clear line, exit 1; the number of requests is exactly
what the settings say - ``AWS_MAX_ATTEMPTS`` and a profile's ``max_attempts`` count all
requests, ``config_kwargs.retries.max_attempts`` counts *retries* (botocore's meaning) and
``total_max_attempts`` all requests; nothing set means standard mode, 3 requests. An STS that
never answers costs about 31 s by default (3 attempts, 10 s read timeout each) and under 5 s
when the connection asks for it.

Faults come from the counting proxy in front of moto (``sts.faults``) and from
``blackhole`` (servers/blackhole.py): a port that accepts and never answers, and one whose connect
never completes. Each parametrized case is one trial; its id says what it tries.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from helpers import ACCESS_KEY, CREDPROC, ROLE_ARN, conn_uri, credentials_only, extra_uri, stderr_verdict

pytestmark = pytest.mark.integration

CONN = "prod"
VARIABLE = f"CREDPROC_CONN_{CONN.upper()}"

THROTTLING = (400, "Throttling")
BURST_5XX = [(500, "InternalFailure"), (502, "BadGateway"), (503, "ServiceUnavailable"), (504, "GatewayTimeout")]


def the_error(result, code: int = 1) -> str:
    stderr_verdict(result)
    assert result.returncode == code, f"exit {result.returncode} (wanted {code}): {result.stderr}"
    line = result.stderr.splitlines()[-1]
    assert f"connection {CONN!r}" in line, line
    return line


# -- throttling and 5xx bursts: exact request counts -----------------------------------------

# (id, how the budget is set, faults injected, requests STS must see, success?)
#   env:N          AWS_MAX_ATTEMPTS=N                      (all requests)
#   profile:N      --profile p, [profile p] max_attempts=N  (all requests)
#   aws_profile:N  AWS_PROFILE=p, same profile               (all requests)
#   retries:{...}  config_kwargs.retries                    (botocore: max_attempts = retries)
#   default        nothing set: standard mode, 3 requests
CASES = [
    ("default-2-throttles-ok", "default", [THROTTLING] * 2, 3, True),
    ("default-5-throttles-fail-after-3", "default", [THROTTLING] * 5, 3, False),
    ("env-3-with-2-throttles-ok", "env:3", [THROTTLING] * 2, 3, True),
    ("env-3-with-5-throttles-fail-after-3", "env:3", [THROTTLING] * 5, 3, False),
    ("env-1-no-retry", "env:1", [(503, "ServiceUnavailable")] * 3, 1, False),
    ("env-5-with-5xx-burst-ok", "env:5", BURST_5XX, 5, True),
    ("env-4-with-5xx-burst-fail-after-4", "env:4", BURST_5XX * 2, 4, False),
    ("env-legacy-mode-3-fail-after-3", "env:3:legacy", [(503, "ServiceUnavailable")] * 5, 3, False),
    ("profile-4-with-3-5xx-ok", "profile:4", BURST_5XX[:3], 4, True),
    ("profile-2-with-throttles-fail-after-2", "profile:2", [THROTTLING] * 4, 2, False),
    ("aws-profile-2-with-5xx-fail-after-2", "aws_profile:2", [(504, "GatewayTimeout")] * 4, 2, False),
    ("env-4-beats-profile-2", "env:4+profile:2", [(503, "ServiceUnavailable")] * 3, 4, True),
    ("retries-max-attempts-2-means-3-requests-ok", "retries:max_attempts=2", [THROTTLING] * 2, 3, True),
    ("retries-max-attempts-2-means-3-requests-fail", "retries:max_attempts=2", [THROTTLING] * 5, 3, False),
    ("retries-max-attempts-0-means-1-request", "retries:max_attempts=0", [(500, "InternalFailure")] * 2, 1, False),
    ("retries-total-2-fail-after-2", "retries:total_max_attempts=2", BURST_5XX, 2, False),
    ("retries-total-beats-max-attempts", "retries:total_max_attempts=2,max_attempts=6", BURST_5XX, 2, False),
    ("retries-beat-env", "retries:total_max_attempts=3+env:1", [(502, "BadGateway")] * 2, 3, True),
]


def apply_budget(budget: str, env: dict, sts, tmp_path) -> list[str]:
    """Set up the retry budget ``budget`` (see CASES); returns extra command-line arguments."""
    args: list[str] = []
    extra: dict = {}
    for part in budget.split("+"):
        kind, _, value = part.partition(":")
        if kind == "default":
            continue
        if kind == "env":
            attempts, _, mode = value.partition(":")
            env["AWS_MAX_ATTEMPTS"] = attempts
            if mode:
                env["AWS_RETRY_MODE"] = mode
        elif kind in ("profile", "aws_profile"):
            with open(env["AWS_CONFIG_FILE"], "w") as f:
                f.write(f"[profile p]\ncredential_process = {CREDPROC} --conn {CONN} --profile p\n"
                        f"retry_mode = standard\nmax_attempts = {value}\n")
            if kind == "profile":
                args += ["--profile", "p"]
            else:
                env["AWS_PROFILE"] = "p"
        elif kind == "retries":
            retries = {"mode": "standard"}
            for setting in value.split(","):
                key, _, number = setting.partition("=")
                retries[key] = int(number)
            extra["config_kwargs"] = {"retries": retries}
        else:
            raise AssertionError(budget)
    env[VARIABLE] = extra_uri({"role_arn": ROLE_ARN, **extra}, endpoint=sts.url)
    return args


@pytest.mark.parametrize("budget, faults, requests, succeeds", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_retry_budget_is_exact(sts, env, run, tmp_path, budget, faults, requests, succeeds):
    args = apply_budget(budget, env, sts, tmp_path)
    sts.faults.extend(faults)
    result = run(["--conn", CONN, *args], env, timeout=120)
    assert sts.count("AssumeRole") == requests, f"{budget}: {sts.count('AssumeRole')} requests, wanted {requests}"
    if succeeds:
        warned = stderr_verdict(result)
        assert result.returncode == 0 and warned == [], result.stderr
        out = credentials_only(result.stdout)
        assert out["SessionToken"] and out["AccessKeyId"] != ACCESS_KEY
    else:
        status, code = faults[requests - 1]  # the answer credproc gave up on
        line = the_error(result, 1)
        assert f"STS AssumeRole failed: {code} (HTTP {status})" in line, line


def test_retries_then_cached(sts, env, run):
    """Credentials obtained after retries are cached like any others: the next run is a hit."""
    env[VARIABLE] = conn_uri(sts.url, role_arn=ROLE_ARN)
    sts.faults.extend([THROTTLING, (503, "ServiceUnavailable")])
    first = run(["--conn", CONN], env, timeout=60)
    credentials_only(first.stdout)
    assert sts.count("AssumeRole") == 3
    second = run(["--conn", CONN], env)
    assert second.stdout == first.stdout and second.stderr == ""
    assert sts.count("AssumeRole") == 3


# -- an STS that never answers -------------------------------------------------------------------


def timed(run, env, timeout: float = 120):
    started = time.monotonic()
    result = run(["--conn", CONN], env, timeout=timeout)
    return result, time.monotonic() - started


STRICT = {"connect_timeout": 1, "read_timeout": 1}


@pytest.mark.parametrize("where, attempts", [("read", 1), ("read", 2), ("connect", 1), ("connect", 2)],
                         ids=["no-answer-1-attempt", "no-answer-2-attempts", "no-connect-1-attempt",
                              "no-connect-2-attempts"])
def test_dead_sts_with_strict_settings_fails_well_inside_5s(env, run, blackhole, where, attempts):
    """For an SDK with a 5-second budget (Rust): connect/read timeouts of 1 s and
    ``retries.total_max_attempts`` 1 or 2 in the connection end the run, exit 1, well
    inside 5 s, with one line saying STS did not answer."""
    url = blackhole.read_url if where == "read" else blackhole.connect_url
    config = {**STRICT, "retries": {"total_max_attempts": attempts}}
    env[VARIABLE] = extra_uri({"role_arn": ROLE_ARN, "config_kwargs": config}, endpoint=url)
    result, elapsed = timed(run, env)
    line = the_error(result, 1)
    assert "STS did not answer" in line and ("Read timeout" if where == "read" else "Connect timeout") in line, line
    assert elapsed < 4.5, f"took {elapsed:.1f}s with {attempts} attempt(s) of 1 s"
    assert elapsed > attempts * 1.0, f"{elapsed:.1f}s: the timeouts did not apply, something else failed"
    if where == "read":
        assert blackhole.accepted == attempts


def test_dead_sts_with_defaults_fails_within_a_minute(sts, env, run, blackhole):
    """Nothing set: standard retries (3 requests) and a 10 s read timeout each - about 31 s,
    exit 1, one line. Slow on purpose: it is the README's promise ("under a minute")."""
    env[VARIABLE] = conn_uri(blackhole.read_url, role_arn=ROLE_ARN)
    result, elapsed = timed(run, env)
    line = the_error(result, 1)
    assert "STS did not answer" in line and "Read timeout" in line, line
    assert blackhole.accepted == 3
    assert 28 < elapsed < 60, f"took {elapsed:.1f}s"
    cache = Path(env["CREDPROC_CACHE_DIR"])
    assert not cache.exists() or list(cache.glob("*.entry")) == [], "a failure was cached"


# -- an STS that answers, but not with an answer -----------------------------------------------------


@pytest.mark.parametrize("status, code", [(200, "NotAnAssumeRoleResponse"), (302, "Found"), (418, "Teapot")],
                         ids=["200-error-document", "302-redirect", "418-unknown-status"])
def test_sts_answering_nonsense_is_a_clear_failure(sts, env, run, status, code):
    """An endpoint that answers something other than an AssumeRole result (an error document
    with HTTP 200, as a wrong endpoint_url or a middlebox can send; a redirect; a status STS
    never uses): exit 1, one line naming the connection, and not credproc's "unexpected
    exception" line."""
    env[VARIABLE] = extra_uri({"role_arn": ROLE_ARN, "config_kwargs": {"retries": {"total_max_attempts": 1}}},
                              endpoint=sts.url)
    sts.faults.append((status, code))
    result = run(["--conn", CONN], env)
    line = the_error(result, 1)
    assert "run with --debug for the traceback" not in line, f"an unexpected exception: {line}"
    assert sts.count("AssumeRole") == 1
