"""The refresh timeline for a SAML connection: a real KDC, the SPNEGO IdP and moto's STS,
with credproc's clock moved by libfaketime around the real executable.

A one-hour role (moto's default) fetched now, in real time, is fresh for 27 minutes, due
(printed at once, refreshed in the background) until 54 minutes, and past that refreshed in
the foreground before anything is printed. Inside the due window an IdP that is down (503,
or not listening at all) or a Kerberos ticket that is gone must not fail anyone:

* in the background (the default): the run prints the cached credentials and says nothing;
  the detached refresher's failure is recorded in the entry; the runs that follow print the
  cached credentials with one warning naming the connection and the failure, and ask the
  IdP again only after the backoff;
* in the foreground (``CREDPROC_BACKGROUND_REFRESH=0``): the run itself tries, fails, and
  prints the cached credentials with that warning;
* past the floor (55 minutes): the error, exit 1.

Never on stderr nor in the recorded reason: an assertion, a Negotiate token, the Kerberos
password, the cached credentials' secrets.

Time: moto and the IdP keep the real clock. The IdP's Kerberos acceptor (python gssapi, in
this process) checks each authenticator's timestamp against its own clock, five minutes
either way by default, which a credproc run 30 minutes ahead can never meet: the fixture
``acceptor_tolerates_faketime`` gives the acceptor a krb5.conf with a two-hour clockskew.
(Real clocks agree; without it, every refresh here would fail with "Clock skew too great".)
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import time
from pathlib import Path
from typing import NamedTuple

import pytest

from helpers import ROLE_ARN, ok, one_error, sts_at
from servers.kerberos import KRB_PASSWORD, KRB_REALM, SAML_PRINCIPAL_ARN, SpnegoIdp

pytestmark = pytest.mark.integration

CONN = "saml"
VARIABLE = "CREDPROC_CONN_SAML"
MINUTE = 60


# -- time, moved around the real executable ---------------------------------------------------

@pytest.fixture
def at(faketime, credproc_bin):
    """``at(env, when)``: ``credproc --conn saml`` with its clock at ``when`` (Unix time, a
    point of the entry's timeline), as libfaketime's offset from now; moto keeps the real clock."""

    def _at(env: dict, when: float, *args: str) -> subprocess.CompletedProcess:
        offset = when - time.time()
        return subprocess.run([faketime, "-f", f"{offset:+.3f}", str(credproc_bin), "--conn", CONN, *args],
                              env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)

    return _at


@pytest.fixture
def acceptor_tolerates_faketime(tmp_path, monkeypatch, kdc):
    """The IdP's acceptor (this process) accepts authenticators up to two hours off its clock.

    MIT krb5 reads KRB5_CONFIG whenever gssapi makes a context, so this holds from now until
    the test ends. Only the IdP reads it: credproc's environment is ``krb_env``'s."""
    conf = tmp_path / "acceptor-krb5.conf"  # the test realm's, with the skew allowed
    conf.write_text(kdc.krb5_conf.read_text().replace("[libdefaults]\n", "[libdefaults]\n    clockskew = 7200\n", 1))
    monkeypatch.setenv("KRB5_CONFIG", str(conf))


# -- the connection and its entry -------------------------------------------------------------


def define(env: dict, sts, idp_url: str) -> dict:
    """``env`` with connection "saml": the role at the local STS through the IdP at ``idp_url``;
    its own region and endpoint, so its entry depends on no variable (one entry)."""
    table = {"principal_arn": SAML_PRINCIPAL_ARN, "idp_url": idp_url, "idp_auth_method": "http_spnego_auth"}
    definition = {"role_arn": ROLE_ARN, "assume_role_method": "assume_role_with_saml",
                  **sts_at(sts.url), "assume_role_with_saml": table}
    env[VARIABLE] = json.dumps({"conn_type": "aws", "extra": definition})
    return env


class Header(NamedTuple):
    fetched: float
    expires: float
    failed_since: float
    failed_at: float
    failures: int
    reason: str

    @property
    def retry_at(self) -> float:  # the backoff: 30 s after the first failure, then doubling
        return self.failed_at + min(30 * 2 ** (self.failures - 1), 300)


def entry_path(env: dict) -> Path:
    entries = sorted(Path(env["CREDPROC_CACHE_DIR"]).glob("*.entry"))
    assert len(entries) == 1, entries
    return entries[0]


def header(env: dict) -> Header:
    """The entry's header, as the brief's format v2 has it: ``credproc-cache 2 <key> <fetched>
    <expires> <conn hex> <failed_since|-> <failed_at|-> <failures> <reason hex|-> <digest>``."""
    line = entry_path(env).read_text().split("\n", 1)[0]
    fields = line.split(" ")
    assert len(fields) == 11 and fields[:2] == ["credproc-cache", "2"], line
    failures = int(fields[8])
    if failures == 0:
        assert fields[6:8] == ["-", "-"] and fields[9] == "-", line
        return Header(float(fields[3]), float(fields[4]), 0.0, 0.0, 0, "")
    return Header(float(fields[3]), float(fields[4]), float(fields[6]), float(fields[7]), failures,
                  bytes.fromhex(fields[9]).decode())


def lock_held(env: dict) -> bool:
    """Whether a process (a background refresher) holds the bucket's lock."""
    locks = sorted(Path(env["CREDPROC_CACHE_DIR"]).glob("*.lock"))
    assert len(locks) == 1, locks
    fd = os.open(locks[0], os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def settled(env: dict, done, timeout: float = 60) -> Header:
    """The entry once the background refresher has finished (the lock is free) and
    ``done(header)`` holds."""
    deadline = time.monotonic() + timeout
    while True:
        current = header(env)
        if not lock_held(env) and done(current):
            return current
        if time.monotonic() > deadline:
            pytest.fail(f"no background refresh finished within {timeout:.0f}s: {current}")
        time.sleep(0.05)


def warning_of(result: subprocess.CompletedProcess) -> str:
    """The one line on stderr of a run that printed credentials: a warning."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("credproc: warning: "), result.stderr
    return lines[0]


def assert_stale_warning(line: str, cached: dict, needles: tuple[str, ...]) -> None:
    for needle in (f"connection {CONN!r}", "refreshing its credentials failed", *needles,
                   f"expire at {cached['Expiration']}", "more than 6 minutes"):
        assert needle in line, f"{needle!r} not in {line!r}"


def assert_no_secret(text: str, idp: SpnegoIdp, *outs: dict) -> None:
    """Nothing secret in ``text`` (stderr, a recorded reason), and nothing that is not text:
    a message with a control character in it (a NUL from GSSAPI, say) is no line to show."""
    assert not [c for c in text if ord(c) < 0x20 and c not in "\n\t"], repr(text)
    assert KRB_PASSWORD not in text
    for assertion in idp.assertions:
        assert assertion[:40] not in text
    for token in idp.tokens:
        assert token[:40] not in text
    for out in outs:
        assert out["SecretAccessKey"] not in text and out["SessionToken"] not in text


# -- the outages ------------------------------------------------------------------------------


class Outage:
    """One way for the SAML refresh to fail, on the IdP the connection uses (``idp``):

    * "idp-503": the IdP authenticates, then answers 503 Service Unavailable;
    * "idp-stopped": an IdP of this test's own, stopped (nothing listens on its port);
    * "kdestroy": the user's ticket cache destroyed.

    ``needles``: what the recorded reason and the warnings say; ``asked()``: requests the
    IdP has received (None when it is stopped); ``end()``: upstream answers again (not for
    "idp-stopped")."""

    def __init__(self, how: str, idp: SpnegoIdp, kdc, ccache: Path):
        self.how, self.idp, self.kdc, self.ccache = how, idp, kdc, ccache
        self.needles = {
            "idp-503": ("the IdP answered HTTP 503", "1 attempt"),
            "idp-stopped": ("the IdP", "did not answer", "ConnectionError"),
            "kdestroy": ("Kerberos (SPNEGO) authentication to the IdP failed", "kinit"),
        }[how]
        self.stopped = False

    def begin(self) -> None:
        if self.how == "idp-503":
            self.idp.faults = [503] * 50
        elif self.how == "idp-stopped":
            self.idp.close()
            self.stopped = True
        else:
            self.kdc.kdestroy(self.ccache)
            assert not self.ccache.exists()

    def end(self) -> None:
        if self.how == "idp-503":
            self.idp.faults = []
        elif self.how == "kdestroy":
            # kinit, and the IdP's service ticket while our clock is the KDC's: a run 30
            # minutes ahead would be refused a service ticket ("Clock skew too great"),
            # which no krb5.conf of credproc's can change.
            self.kdc.kinit(self.ccache)
            env = {**os.environ, **self.kdc.client_env(self.ccache)}
            subprocess.run(["kvno", f"HTTP/localhost@{KRB_REALM}"], env=env, check=True, capture_output=True,
                           timeout=30, stdin=subprocess.DEVNULL)
        else:
            raise AssertionError("a stopped IdP stays stopped")

    def asked(self) -> int | None:
        if self.stopped:
            return None
        return self.idp.count("challenge") + self.idp.count("authenticated") + self.idp.count("rejected")


@pytest.fixture(params=["idp-503", "idp-stopped", "kdestroy"])
def outage(request, idp, kdc, krb_env, tmp_path, acceptor_tolerates_faketime):
    how = request.param
    own = SpnegoIdp(kdc.keytab, tmp_path / "own-idp.rcache2") if how == "idp-stopped" else None
    ccache = Path(krb_env["KRB5CCNAME"].removeprefix("FILE:"))
    yield Outage(how, own or idp, kdc, ccache)
    if own is not None:
        own.close()  # again, if stopped: harmless


@pytest.fixture
def warm(sts, krb_env, run, outage):
    """The connection's one-hour role fetched now, in real time, through the outage's IdP:
    (env, the printed credentials, the entry's header)."""
    env = define(krb_env, sts, outage.idp.url)
    first = ok(run(["--conn", CONN], env), temporary=True)
    assert ok(run(["--conn", CONN], env)) == first  # a hit
    assert sts.count("AssumeRoleWithSAML") == 1
    entry = header(env)
    lifetime = entry.expires - entry.fetched
    assert 59 * MINUTE < lifetime <= 60 * MINUTE, f"a one-hour role, not {lifetime:.0f} s"
    yield env, first, entry
    # A test that failed midway may leave a refresher running: let it finish before the IdP and
    # the STS are reset for the next test, which would otherwise count its requests.
    deadline = time.monotonic() + 60
    while lock_held(env) and time.monotonic() < deadline:
        time.sleep(0.05)


# -- the background refresh (the default) ---------------------------------------------------


def test_an_outage_in_the_due_window_serves_the_cached_credentials(sts, warm, outage, at):
    env, first, entry = warm
    outage.begin()
    asked = outage.asked()

    # Due (30 minutes after the fetch): printed at once, silently; the refresh is detached.
    result = at(env, entry.fetched + 30 * MINUTE)
    assert ok(result) == first and result.stderr == ""
    failed = settled(env, lambda h: h.failures == 1)
    assert (failed.fetched, failed.expires) == (entry.fetched, entry.expires), "the same entry, failure recorded"
    assert abs(failed.failed_at - (entry.fetched + 30 * MINUTE)) < 30, "recorded on the refresher's clock"
    for needle in outage.needles:
        assert needle in failed.reason, f"{needle!r} not in the recorded reason {failed.reason!r}"
    assert_no_secret(failed.reason + entry_path(env).read_text().split("\n", 1)[0], outage.idp)
    if asked is not None:
        assert outage.asked() > asked, "the refresher did ask the IdP"
    assert sts.count("AssumeRoleWithSAML") == 1

    # Inside the backoff: the cached credentials with one warning, and nobody asks upstream.
    asked = outage.asked()
    later = at(env, failed.failed_at + 5)
    assert ok(later) == first
    warning = warning_of(later)
    assert_stale_warning(warning, first, outage.needles)
    assert "next try after" in warning
    assert not lock_held(env) and header(env) == failed, "no refresher was started"
    assert outage.asked() == asked

    # After the backoff, one run starts one more try: it fails too, recorded as the second.
    after = at(env, failed.retry_at + 1)
    assert ok(after) == first
    assert_stale_warning(warning_of(after), first, outage.needles)
    again = settled(env, lambda h: h.failures == 2)
    assert again.failed_since == failed.failed_since and again.failed_at > failed.failed_at
    assert again.retry_at - again.failed_at == 60

    # The floor: 6 minutes before expiry nothing is printed without a refresh, so the error.
    error = one_error(at(env, entry.fetched + 55 * MINUTE), 1, f"connection {CONN!r}", *outage.needles)
    assert_no_secret(error, outage.idp, first)
    assert header(env).failures == 3
    assert sts.count("AssumeRoleWithSAML") == 1
    assert_no_secret(result.stderr + later.stderr + after.stderr, outage.idp, first)


# -- the foreground refresh (CREDPROC_BACKGROUND_REFRESH=0) ----------------------------------


def test_in_the_foreground_the_run_itself_serves_stale_with_a_warning(sts, warm, outage, at):
    env, first, entry = warm
    env["CREDPROC_BACKGROUND_REFRESH"] = "0"
    outage.begin()
    asked = outage.asked()

    result = at(env, entry.fetched + 30 * MINUTE)
    assert ok(result) == first
    assert_stale_warning(warning_of(result), first, outage.needles)
    failed = header(env)  # written before the run exited: no refresher to wait for
    assert failed.failures == 1 and not lock_held(env)
    for needle in outage.needles:
        assert needle in failed.reason
    if asked is not None:
        assert outage.asked() > asked

    # The next run, inside the backoff, serves with the warning and does not try.
    asked = outage.asked()
    later = at(env, failed.failed_at + 5)
    assert ok(later) == first
    assert_stale_warning(warning_of(later), first, outage.needles)
    assert header(env) == failed and outage.asked() == asked

    one_error(at(env, entry.fetched + 55 * MINUTE), 1, f"connection {CONN!r}", *outage.needles)
    assert sts.count("AssumeRoleWithSAML") == 1
    assert_no_secret(result.stderr + later.stderr + failed.reason, outage.idp, first)


# -- the floor, with no failure recorded before ---------------------------------------------


def test_past_the_floor_an_outage_is_the_error(sts, warm, outage, at):
    env, first, entry = warm
    outage.begin()
    result = at(env, entry.fetched + 55 * MINUTE)  # 5 minutes left
    error = one_error(result, 1, f"connection {CONN!r}", *outage.needles)
    assert_no_secret(error, outage.idp, first)
    assert header(env).failures == 1, "recorded all the same"
    assert sts.count("AssumeRoleWithSAML") == 1


# -- upstream back ----------------------------------------------------------------------------


@pytest.mark.parametrize("outage", ["idp-503", "kdestroy"], indirect=True)  # a stopped IdP stays stopped
def test_when_the_idp_answers_again_the_next_try_replaces_the_entry(sts, warm, outage, at):
    env, first, entry = warm
    outage.begin()
    assert ok(at(env, entry.fetched + 30 * MINUTE)) == first
    failed = settled(env, lambda h: h.failures == 1)

    outage.end()
    served = at(env, failed.retry_at + 1)  # still the failure on record: served with the warning...
    assert ok(served) == first
    assert_stale_warning(warning_of(served), first, outage.needles)
    renewed = settled(env, lambda h: h.fetched != entry.fetched)  # ...and its refresher succeeds
    assert renewed.failures == 0 and renewed.reason == ""
    assert sts.count("AssumeRoleWithSAML") == 2

    now = at(env, failed.retry_at + 2)
    out = ok(now, temporary=True)
    assert out["AccessKeyId"] != first["AccessKeyId"] and now.stderr == ""
    assert sts.count("AssumeRoleWithSAML") == 2
