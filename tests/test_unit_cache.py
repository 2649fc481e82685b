"""Unit tests of credproc.cache, in process: the refresh timeline and the backoff, the bucket
key (identity) and the slot key, where the cache lives, the entry file format (v2, with its
failure record) and what is refused, the variables record, the listing (scan), and
get_or_fetch with a fake fetch.

Time is real: entries are written with ``fetched`` and ``expires`` set relative to
``time.time()``, far enough from every boundary that a slow machine cannot cross one."""

import fcntl
import os
import stat
import threading
import time
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from credproc import cache, log
from credproc.cache import (
    BACKOFF_FIRST,
    BACKOFF_MAX,
    DUE,
    DUE_CAP,
    ENDING,
    EXPIRED,
    FLOOR,
    FRESH,
    IDENTITY_VARIABLES,
    Bucket,
    Entry,
    backoff,
    cache_dir,
    identity,
)
from credproc.cache.lock import get_or_fetch, reason_of
from credproc.cache.store import ensure_directory, record_failure, scan, write, write_variables
from credproc.errors import CredprocError
from credproc.protocol import Credentials
from credproc.sources import Definition

KEY_A = "a" * 64
KEY_B = "b" * 64
BODY = b'{"Version": 1, "AccessKeyId": "AKIAX", "SecretAccessKey": "SECRETX", "Expiration": "2026-11-25T17:49:28Z"}'


@pytest.fixture(autouse=True)
def _fresh_warned(monkeypatch):
    # warnings are given once per path and process: start every test with a clean slate
    monkeypatch.setattr(cache, "_warned", set())


def warnings(capsys):
    return [line for line in capsys.readouterr().err.splitlines() if line.strip()]


# -- the refresh timeline ----------------------------------------------------------------------

F = 1_000_000.0  # a fetch time; the figures below are offsets from it


@pytest.mark.parametrize("lifetime, fresh, floor", [
    (15 * 60, 4 * 60 + 30, 9 * 60),                    # 15-min role: fresh 4.5 min, due 4.5 -> 9 min
    (60 * 60, 27 * 60, 54 * 60),                       # 1-h role: fresh 27 min, due until 54 min
    (12 * 3600, 3600, 11 * 3600 + 54 * 60),            # 12-h role: fresh 1 h (the cap), due until 11h54m
], ids=["15min", "1h", "12h"])
def test_timeline_figures(lifetime, fresh, floor):
    entry = Entry(b"x", fetched=F, expires=F + lifetime)
    assert entry.fresh_until == F + fresh
    assert entry.floor == F + floor == entry.expires - FLOOR


@pytest.mark.parametrize("lifetime, survives", [(15 * 60, 4 * 60 + 30), (60 * 60, 27 * 60),
                                                (12 * 3600, 10 * 3600 + 54 * 60)], ids=["15min", "1h", "12h"])
def test_an_outage_from_the_due_point_goes_unnoticed_until_the_floor(lifetime, survives):
    entry = Entry(b"x", fetched=F, expires=F + lifetime)
    assert entry.floor - entry.fresh_until == survives


@pytest.mark.parametrize("lifetime", [15 * 60, 60 * 60, 12 * 3600], ids=["15min", "1h", "12h"])
def test_state_at_the_boundaries(lifetime):
    entry = Entry(b"x", fetched=F, expires=F + lifetime)
    due, floor, end = entry.fresh_until, entry.floor, entry.expires
    expected = [
        (F - 1, FRESH),  # a clock that stepped back: still fresh
        (F, FRESH),
        (due - 0.001, FRESH),
        (due, DUE),
        (floor - 0.001, DUE),
        (floor, ENDING),
        (end - 0.001, ENDING),
        (end, EXPIRED),
        (end + 86400, EXPIRED),
    ]
    for now, state in expected:
        assert entry.state(now) == state, (now - F, state)
        assert entry.is_fresh(now) == (state == FRESH)


@pytest.mark.parametrize("lifetime", [0, 60, 5 * 60, FLOOR - 1, FLOOR], ids=["0", "1min", "5min", "floor-1s", "floor"])
def test_a_lifetime_under_the_floor_is_never_fresh_and_ending_at_once(lifetime):
    entry = Entry(b"x", fetched=F, expires=F + lifetime)
    assert entry.fresh_until <= entry.floor <= F
    assert not entry.is_fresh(F)
    assert entry.state(F) == (ENDING if lifetime else EXPIRED)
    if lifetime:
        assert entry.state(F + lifetime - 0.001) == ENDING
    assert entry.state(F + lifetime) == EXPIRED


def test_a_lifetime_just_over_the_floor_is_fresh_for_half_the_excess():
    entry = Entry(b"x", fetched=F, expires=F + FLOOR + 20)
    assert entry.fresh_until == F + 10
    assert [entry.state(F + t) for t in (9, 10, 19, 20)] == [FRESH, DUE, DUE, ENDING]


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(fetched=st.floats(0, 4e9), lifetime=st.floats(0, 40 * 86400), offset=st.floats(-1e6, 50 * 86400))
def test_timeline_is_ordered(fetched, lifetime, offset):
    """fresh, then due, then ending, then expired, whatever the lifetime: never fresh past the
    floor nor more than DUE_CAP after the fetch, and the state only moves forward."""
    entry = Entry(b"x", fetched=fetched, expires=fetched + lifetime)
    assert entry.fresh_until <= entry.floor < entry.expires
    assert entry.fresh_until <= fetched + DUE_CAP
    order = [FRESH, DUE, ENDING, EXPIRED]
    now = fetched + offset
    assert order.index(entry.state(now)) <= order.index(entry.state(now + 1.0))


# -- backoff -----------------------------------------------------------------------------------


@pytest.mark.parametrize("failures, seconds", [(1, 30), (2, 60), (3, 120), (4, 240), (5, 300), (6, 300),
                                               (7, 300), (64, 300), (10**6, 300)])
def test_backoff(failures, seconds):
    assert backoff(failures) == seconds


def test_backoff_bounds():
    assert (BACKOFF_FIRST, BACKOFF_MAX) == (30, 300)
    assert backoff(0) == backoff(-3) == 30  # no failure counts as one: never less than the first


def test_retry_at():
    assert Entry(b"x", F, F + 3600).retry_at == 0.0  # no failure: at once
    for failures, wait in [(1, 30), (2, 60), (3, 120), (4, 240), (5, 300), (9, 300)]:
        entry = Entry(b"x", F, F + 3600, failed_since=F + 100, failed_at=F + 500, failures=failures, reason="r")
        assert entry.retry_at == F + 500 + wait  # from the last failure, not the first


# -- identity: the bucket key ----------------------------------------------------------------

SECRET = "wJalrXUtnFEMIK7MDENGbPxRfiCYIDENTITYSECRET"
TEXT = f"aws://AKIAX:{SECRET}@/?region_name=eu-west-1"


def base_definition():
    return Definition("prod", "env", "CREDPROC_CONN_PROD", TEXT)


def base_environ():
    return {name: f"value-of-{name}" for name in IDENTITY_VARIABLES}


def test_identity_stable():
    assert identity(base_definition(), "m.F", base_environ()) == identity(base_definition(), "m.F", base_environ())


def test_identity_ignores_unrelated_variables():
    environ = base_environ()
    before = identity(base_definition(), None, environ)
    environ.update({"HOME": "/elsewhere", "PATH": "/x", "LANG": "C"})
    assert identity(base_definition(), None, environ) == before


@pytest.mark.parametrize("name", IDENTITY_VARIABLES)
def test_identity_ignores_each_identity_variable(name):
    # they key the entries inside the bucket (Bucket.slot), as the connection depends on them
    environ = base_environ()
    before = identity(base_definition(), None, environ)
    environ[name] = "something-else"
    assert identity(base_definition(), None, environ) == before
    del environ[name]
    assert identity(base_definition(), None, environ) == before
    assert identity(base_definition(), None, {}) == before


def test_identity_is_hex_without_secret():
    key = identity(base_definition(), None, base_environ())
    assert len(key) == 64 and all(c in "0123456789abcdef" for c in key)
    assert SECRET not in key and "AKIAX" not in key


@pytest.mark.parametrize("change", ["conn_id", "text", "where", "kind"])
def test_identity_changes_with_definition(change):
    d = base_definition()
    before = identity(d, None, base_environ())
    if change == "conn_id":
        d = Definition("prod2", d.kind, d.where, d.text)
    elif change == "text":
        d = Definition(d.conn_id, d.kind, d.where, d.text + "&x=1")
    elif change == "where":
        d = Definition(d.conn_id, d.kind, "AIRFLOW_CONN_PROD", d.text)
    else:
        d = Definition(d.conn_id, "file", d.where, d.text)
    assert identity(d, None, base_environ()) != before


def test_identity_changes_with_the_session_factory_flag():
    d = base_definition()
    keys = {identity(d, None, base_environ()), identity(d, "pkg.mod.A", base_environ()),
            identity(d, "pkg.mod.B", base_environ())}
    assert len(keys) == 3


def test_identity_changes_with_credproc_session_factory():
    d = base_definition()
    keys = {identity(d, None, {}), identity(d, None, {"CREDPROC_SESSION_FACTORY": "pkg.mod.A"}),
            identity(d, None, {"CREDPROC_SESSION_FACTORY": "pkg.mod.B"})}
    assert len(keys) == 3
    assert identity(d, None, {"CREDPROC_SESSION_FACTORY": ""}) == identity(d, None, {})


def test_identity_flag_and_variable_are_not_confused():
    d = base_definition()
    assert identity(d, "pkg.mod.A", {}) != identity(d, None, {"CREDPROC_SESSION_FACTORY": "pkg.mod.A"})
    assert identity(d, "pkg.mod.A", {"CREDPROC_SESSION_FACTORY": "pkg.mod.B"}) != \
        identity(d, "pkg.mod.B", {"CREDPROC_SESSION_FACTORY": "pkg.mod.A"})


def test_identity_no_field_boundary_confusion():
    # "ab" + "c" and "a" + "bc" must not collide
    d1 = Definition("prod", "env", "ab", "c")
    d2 = Definition("prod", "env", "a", "bc")
    assert identity(d1, None, {}) != identity(d2, None, {})


# -- cache_dir -------------------------------------------------------------------------------


def test_cache_dir_explicit(tmp_path):
    environ = {"CREDPROC_CACHE_DIR": "/c/dir", "XDG_CACHE_HOME": str(tmp_path)}
    assert cache_dir(environ) == "/c/dir"


def test_cache_dir_xdg(tmp_path):
    assert cache_dir({"XDG_CACHE_HOME": str(tmp_path)}) == os.path.join(str(tmp_path), "credproc")


def test_cache_dir_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache_dir({}) == os.path.join(str(tmp_path), ".cache", "credproc")


# -- Bucket and Slot: the places -----------------------------------------------------------------


@pytest.fixture
def directory(tmp_path):
    return str(tmp_path / "cache")


@pytest.fixture
def bucket(directory):
    return Bucket(directory, KEY_A, "prod")


@pytest.fixture
def slot(bucket):
    return bucket.slot({}, ())


def test_bucket_paths(bucket, directory):
    assert bucket.lock_path == os.path.join(directory, f"prod--{KEY_A[:32]}.lock")
    assert bucket.variables_path == os.path.join(directory, f"prod--{KEY_A[:32]}.vars")
    s = bucket.slot({}, ())
    assert s.bucket is bucket and s.lock_path == bucket.lock_path and s.conn_id == "prod"
    assert s.path == os.path.join(directory, f"prod--{s.key[:32]}.entry")
    assert len(s.key) == 64 and s.key != KEY_A


@pytest.mark.parametrize("conn_id", ["../../etc/passwd", "a/b", "..", "x\x00y", "é" * 50, "a b\nc"])
def test_conn_id_with_unsafe_chars_stays_in_directory(directory, conn_id):
    b = Bucket(directory, KEY_A, conn_id)
    for path in (b.lock_path, b.variables_path, b.slot({}, ()).path):
        assert os.path.dirname(path) == directory
        assert os.path.basename(path).isascii() and "\x00" not in path and "\n" not in path


def test_slot_key_changes_with_each_listed_variable(bucket):
    names = ("AWS_PROFILE", "AWS_REGION", "AWS_ENDPOINT_URL_STS")
    environ = dict.fromkeys(names, "one")
    keys = {bucket.slot(environ, names).key}
    for name in names:
        keys.add(bucket.slot({**environ, name: "two"}, names).key)
    assert len(keys) == 1 + len(names)


def test_slot_key_ignores_unlisted_variables(bucket):
    names = ("AWS_PROFILE",)
    before = bucket.slot({"AWS_PROFILE": "p"}, names).key
    noisy = {"AWS_PROFILE": "p", "AWS_REGION": "eu-west-1", "AWS_ACCESS_KEY_ID": "AKIA", "HOME": "/x"}
    assert bucket.slot(noisy, names).key == before
    assert bucket.slot({"AWS_REGION": "x"}, ()).key == bucket.slot({}, ()).key


def test_slot_key_ignores_order_noise(bucket):
    environ = {"AWS_PROFILE": "p", "AWS_REGION": "r", "HOME": "/h"}
    reordered = dict(reversed(list(environ.items())))
    names = ("AWS_PROFILE", "AWS_REGION")
    assert bucket.slot(environ, names).key == bucket.slot(reordered, names).key
    # the same variables listed in another order, or twice, are the same dependency
    assert bucket.slot(environ, names).key == bucket.slot(environ, names[::-1]).key
    assert bucket.slot(environ, names).key == bucket.slot(environ, (*names, "AWS_PROFILE")).key


def test_slot_key_tells_values_and_names_apart(bucket):
    # A=x,B= and A=,B=x; a value holding "=" or a separator cannot pass for another split
    names = ("AWS_PROFILE", "AWS_REGION")
    keys = {bucket.slot({"AWS_PROFILE": "x"}, names).key, bucket.slot({"AWS_REGION": "x"}, names).key,
            bucket.slot({"AWS_PROFILE": "x=AWS_REGION"}, names).key, bucket.slot({}, names).key,
            bucket.slot({}, ()).key}
    assert len(keys) == 5


def test_slot_key_depends_on_the_bucket(directory):
    environ = {"AWS_PROFILE": "p"}
    a = Bucket(directory, KEY_A, "prod").slot(environ, ("AWS_PROFILE",))
    b = Bucket(directory, KEY_B, "prod").slot(environ, ("AWS_PROFILE",))
    assert a.key != b.key and a.path != b.path


def test_slot_key_has_no_value(bucket):
    secret = "wJalrXUtnFEMIK7MDENGbPxRfiCYVALUESECRET"
    s = bucket.slot({"AWS_SECRET_ACCESS_KEY": secret}, ("AWS_SECRET_ACCESS_KEY",))
    assert secret not in s.key and secret not in s.path


# -- Slot: write and read ----------------------------------------------------------------------


def test_store_read_round_trip(slot, capsys):
    assert write(slot, BODY, fetched=1000.0, expires=4600.0)
    entry = slot.read()
    assert entry is not None
    assert entry.body == BODY
    assert (entry.fetched, entry.expires) == (1000.0, 4600.0)
    assert (entry.failed_since, entry.failed_at, entry.failures, entry.reason) == (0.0, 0.0, 0, "")
    assert entry.retry_at == 0.0
    assert stat.S_IMODE(os.stat(slot.path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(slot.directory).st_mode) == 0o700
    assert warnings(capsys) == []


def test_store_file_layout(slot):
    write(slot, BODY, fetched=1000.0, expires=4600.0)
    with open(slot.path, "rb") as f:
        data = f.read()
    header, body = data.split(b"\n", 1)
    assert body == BODY
    fields = header.split(b" ")
    assert len(fields) == 11
    assert fields[:5] == [b"credproc-cache", b"2", slot.key.encode(), b"1000.000", b"4600.000"]
    assert fields[5] == b"prod".hex().encode()
    assert fields[6:10] == [b"-", b"-", b"0", b"-"]  # no failure
    assert fields[10] == cache.digest(fields[:10], body)
    assert os.listdir(slot.directory) == [os.path.basename(slot.path)]  # no temporary file left


def test_read_missing_is_none_silently(slot, capsys):
    assert slot.read() is None
    assert slot.inspect() == (None, None)
    assert warnings(capsys) == []


def _rewrite(path, data):
    with open(path, "r+b") as f:
        f.seek(0)
        f.write(data)
        f.truncate()


def _assert_rejected(slot, capsys):
    assert slot.read() is None
    lines = warnings(capsys)
    assert len(lines) == 1, lines
    assert "warning" in lines[0] and slot.path in lines[0]


def _failed_entry():
    return Entry(BODY, 1000.0, 4600.0, failed_since=2000.0, failed_at=2100.0, failures=3, reason="STS said no")


def test_corrupted_body_byte(slot, capsys):
    write(slot, BODY, fetched=1000.0, expires=4600.0)
    with open(slot.path, "rb") as f:
        data = bytearray(f.read())
    i = data.index(b"AKIAX")
    data[i] = ord("B")
    _rewrite(slot.path, bytes(data))
    _assert_rejected(slot, capsys)


def _same_kind(byte):
    """Another byte of the same kind (digit, hex letter), so that the header still splits and
    parses: a "-" becomes a "0"."""
    for kind in (b"0123456789", b"abcdef", b"ghijklmnopqrstuvwxyz"):
        if byte in kind:
            return kind[(kind.index(byte) + 1) % len(kind)]
    return ord("0")


FIELDS = ["magic", "version", "key", "fetched", "expires", "conn-id", "failed_since", "failed_at", "failures",
          "reason", "digest"]


@pytest.mark.parametrize("failed", [False, True], ids=["no-failure", "with-failure"])
@pytest.mark.parametrize("field", range(11), ids=FIELDS)
def test_corrupted_header_byte(slot, capsys, field, failed):
    # A flipped byte anywhere in the header must make the entry a miss, not only in the fields
    # that happen to be compared: a corrupted "expires" serves credentials past their expiry,
    # a corrupted failure count or time changes the backoff.
    write(slot, BODY, fetched=1000.0, expires=4600.0, failure=_failed_entry() if failed else None)
    assert slot.read() is not None
    with open(slot.path, "rb") as f:
        data = f.read()
    header, body = data.split(b"\n", 1)
    fields = header.split(b" ")
    assert len(fields) == 11
    value = bytearray(fields[field])
    value[0] = _same_kind(value[0])
    assert bytes(value) != fields[field]
    fields[field] = bytes(value)
    _rewrite(slot.path, b" ".join(fields) + b"\n" + body)
    _assert_rejected(slot, capsys)


@pytest.mark.parametrize("count", [10, 12, 7])
def test_header_with_another_number_of_fields(slot, capsys, count):
    write(slot, BODY, fetched=1000.0, expires=4600.0)
    with open(slot.path, "rb") as f:
        header, body = f.read().split(b"\n", 1)
    fields = header.split(b" ")
    fields = (fields + [b"-"] * 2)[:count - 1]
    fields.append(cache.digest(fields, body))  # even with a digest that matches
    _rewrite(slot.path, b" ".join(fields) + b"\n" + body)
    _assert_rejected(slot, capsys)


def test_version_1_entry_is_replaced(slot, capsys):
    """What credproc wrote before the refresh timeline: 7 fields, version 1."""
    ensure_directory(slot)
    fields = [b"credproc-cache", b"1", slot.key.encode(), b"1000.000", b"4600.000", b"prod".hex().encode()]
    header = b" ".join([*fields, cache.digest(fields, BODY)])
    with open(slot.path, "wb") as f:
        f.write(header + b"\n" + BODY)
    os.chmod(slot.path, 0o600)
    _assert_rejected(slot, capsys)


@pytest.mark.parametrize("keep", [0.5, "header", 10])
def test_truncated_file(slot, capsys, keep):
    write(slot, BODY, fetched=1000.0, expires=4600.0)
    with open(slot.path, "rb") as f:
        data = f.read()
    if keep == "header":
        cut = data.index(b"\n") + 1
    elif isinstance(keep, float):
        cut = int(len(data) * keep)
    else:
        cut = keep
    _rewrite(slot.path, data[:cut])
    _assert_rejected(slot, capsys)


def test_garbage_file(slot, capsys):
    write(slot, BODY, fetched=1000.0, expires=4600.0)
    _rewrite(slot.path, b"\x00\xffnot a cache entry at all")
    _assert_rejected(slot, capsys)


def test_entry_renamed_to_another_slots_path(bucket, capsys):
    a = bucket.slot({"AWS_PROFILE": "a"}, ("AWS_PROFILE",))
    b = bucket.slot({"AWS_PROFILE": "b"}, ("AWS_PROFILE",))
    assert a.path != b.path
    write(a, BODY, fetched=1000.0, expires=4600.0)
    os.rename(a.path, b.path)
    _assert_rejected(b, capsys)


def test_entry_renamed_to_another_buckets_path(directory, capsys):
    a = Bucket(directory, KEY_A, "prod").slot({}, ())
    b = Bucket(directory, KEY_B, "prod").slot({}, ())
    assert a.path != b.path
    write(a, BODY, fetched=1000.0, expires=4600.0)
    os.rename(a.path, b.path)
    _assert_rejected(b, capsys)


@pytest.mark.parametrize("mode", [0o620, 0o602, 0o666])
def test_writable_by_others_entry(slot, capsys, mode):
    write(slot, BODY, fetched=1000.0, expires=4600.0)
    os.chmod(slot.path, mode)
    _assert_rejected(slot, capsys)


def test_symlink_entry(slot, tmp_path, capsys):
    write(slot, BODY, fetched=1000.0, expires=4600.0)
    real = tmp_path / "elsewhere.entry"
    os.rename(slot.path, real)  # a valid entry for this very key, reached through a link
    os.symlink(real, slot.path)
    _assert_rejected(slot, capsys)


def test_fifo_entry_does_not_block(slot, capsys):
    ensure_directory(slot)
    os.mkfifo(slot.path, 0o600)
    _assert_rejected(slot, capsys)


def test_group_writable_directory_not_used(slot, capsys):
    write(slot, BODY, fetched=1000.0, expires=4600.0)
    os.chmod(slot.directory, 0o770)
    assert slot.read() is None
    lines = warnings(capsys)
    assert len(lines) == 1 and slot.directory in lines[0]
    assert not write(slot, BODY, fetched=1000.0, expires=4600.0)  # nor written to


def test_store_replaces_entry(slot):
    write(slot, BODY, fetched=1000.0, expires=4600.0)
    newer = BODY[:-1] + b', "AccountId": "123456789012"}'
    write(slot, newer, fetched=2000.0, expires=5600.0)
    entry = slot.read()
    assert (entry.body, entry.fetched, entry.expires) == (newer, 2000.0, 5600.0)


# -- the failure record --------------------------------------------------------------------------


def test_record_failure_round_trip(slot, capsys):
    write(slot, BODY, fetched=1000.0, expires=4600.0)
    reason = "STS: connexion refusée — 接続拒否 ☂ (ssl: certificate verify failed)"
    recorded = record_failure(slot, slot.read(), reason, now=2000.25)
    entry = slot.read()
    assert entry is not None
    assert (entry.body, entry.fetched, entry.expires) == (BODY, 1000.0, 4600.0)  # same body
    assert (entry.failed_since, entry.failed_at, entry.failures, entry.reason) == (2000.25, 2000.25, 1, reason)
    assert (recorded.failed_since, recorded.failed_at, recorded.failures, recorded.reason) == \
        (2000.25, 2000.25, 1, reason)
    assert entry.retry_at == 2000.25 + 30
    assert warnings(capsys) == []


def test_record_failure_long_reason(slot):
    # the longest reason_of gives (400 characters, each of 3 bytes in UTF-8)
    reason = reason_of(CredprocError("connection 'prod': " + "€" * 5000), "prod")
    assert len(reason) == 400
    write(slot, BODY, fetched=1000.0, expires=4600.0)
    record_failure(slot, slot.read(), reason, now=2000.0)
    assert slot.read().reason == reason


def test_record_failure_reason_with_spaces_and_newline_stays_one_header_line(slot):
    write(slot, BODY, fetched=1000.0, expires=4600.0)
    record_failure(slot, slot.read(), "two words\nand a line", now=2000.0)
    with open(slot.path, "rb") as f:
        assert len(f.read().split(b"\n", 1)[0].split(b" ")) == 11
    assert slot.read().reason == "two words\nand a line"


def test_record_failure_empty_reason(slot):
    write(slot, BODY, fetched=1000.0, expires=4600.0)
    record_failure(slot, slot.read(), "", now=2000.0)
    entry = slot.read()
    assert entry is not None  # the entry stays servable: a failure without words is still one
    assert (entry.failures, entry.reason) == (1, "")


def test_second_failure_keeps_failed_since_and_counts(slot):
    write(slot, BODY, fetched=1000.0, expires=4600.0)
    record_failure(slot, slot.read(), "first", now=2000.0)
    record_failure(slot, slot.read(), "second", now=2100.0)
    entry = slot.read()
    assert (entry.failed_since, entry.failed_at, entry.failures, entry.reason) == (2000.0, 2100.0, 2, "second")
    assert entry.retry_at == 2100.0 + 60
    record_failure(slot, entry, "third", now=2500.0)
    assert (slot.read().failed_since, slot.read().failures, slot.read().retry_at) == (2000.0, 3, 2620.0)


def test_successful_write_clears_the_failure(slot):
    write(slot, BODY, fetched=1000.0, expires=4600.0)
    record_failure(slot, slot.read(), "down", now=2000.0)
    newer = BODY[:-1] + b', "AccountId": "123456789012"}'
    write(slot, newer, fetched=3000.0, expires=6600.0)
    entry = slot.read()
    assert (entry.body, entry.failures, entry.failed_since, entry.failed_at, entry.reason) == (newer, 0, 0.0, 0.0, "")
    assert entry.retry_at == 0.0


def test_record_failure_keeps_the_secret_out_of_the_header(slot):
    write(slot, BODY, fetched=1000.0, expires=4600.0)
    record_failure(slot, slot.read(), "nothing secret here", now=2000.0)
    with open(slot.path, "rb") as f:
        header = f.read().split(b"\n", 1)[0]
    assert b"nothing" not in header  # hex: not even the reason is readable with grep
    assert b"nothing secret here".hex().encode() in header


def test_reason_of_masks_known_secrets_and_drops_the_connection():
    secret = "wJalrXUtnFEMIK7MDENGbPxRfiCYREASONSECRET"
    log.add_secret(secret)
    try:
        reason = reason_of(RuntimeError(f"bad key {secret}\nsecond line"), "prod")
        assert secret not in reason and reason == "RuntimeError: bad key **** | second line"
        assert reason_of(CredprocError("connection 'prod': STS said no"), "prod") == "STS said no"
    finally:
        log._SECRETS.discard(secret)


# -- the variables record ------------------------------------------------------------------------


def _record(bucket, names):
    ensure_directory(bucket)
    write_variables(bucket, names)


def test_variables_round_trip(bucket):
    assert bucket.variables() is None  # no record yet
    names = ("AWS_PROFILE", "AWS_REGION", "AWS_ENDPOINT_URL_STS")
    _record(bucket, names)
    assert bucket.variables() == names
    assert stat.S_IMODE(os.stat(bucket.variables_path).st_mode) == 0o600
    with open(bucket.variables_path, "rb") as f:
        fields = f.read().rstrip(b"\n").split(b" ")
    assert fields[:4] == [b"credproc-vars", b"2", KEY_A.encode(), b"AWS_PROFILE,AWS_REGION,AWS_ENDPOINT_URL_STS"]


def test_variables_all_identity_variables(bucket):
    _record(bucket, IDENTITY_VARIABLES)
    assert bucket.variables() == IDENTITY_VARIABLES


def test_variables_empty_list(bucket):
    _record(bucket, ())
    assert bucket.variables() == ()
    with open(bucket.variables_path, "rb") as f:
        assert f.read().split(b" ")[3] == b"-"


def test_variables_rewritten(bucket):
    _record(bucket, ("AWS_PROFILE",))
    _record(bucket, ())
    assert bucket.variables() == ()


@pytest.mark.parametrize("name", ["", "A B", "A,B", "A=B", "-", "ÄWS", "A\n", "A/B", "A-B"])
def test_variables_refused_names(bucket, name):
    ensure_directory(bucket)
    with pytest.raises(ValueError, match="not a variable name"):
        write_variables(bucket, ("AWS_PROFILE", name))
    assert not os.path.exists(bucket.variables_path)


def test_variables_unwritable_directory_is_silent(tmp_path, capsys):
    b = Bucket(str(tmp_path / "missing" / "cache"), KEY_A, "prod")
    write_variables(b, ("AWS_PROFILE",))  # the entry write that follows says what is wrong
    assert b.variables() is None
    assert warnings(capsys) == []


@pytest.mark.parametrize("damage", ["digest", "names", "version", "magic", "truncated", "garbage", "empty",
                                    "extra-field"])
def test_variables_corrupt_record_is_none(bucket, damage):
    _record(bucket, ("AWS_PROFILE", "AWS_REGION"))
    with open(bucket.variables_path, "rb") as f:
        line = f.read()
    fields = line.rstrip(b"\n").split(b" ")
    if damage == "digest":
        fields[4] = bytes(reversed(fields[4]))
        line = b" ".join(fields)
    elif damage == "names":
        fields[3] = b"AWS_PROFILE"  # one variable dropped: the slot would be another one
        line = b" ".join(fields)
    elif damage == "version":
        fields[1] = b"1"
        line = b" ".join(fields)
    elif damage == "magic":
        fields[0] = b"credproc-cache"
        line = b" ".join(fields)
    elif damage == "truncated":
        line = line[: len(line) // 2]
    elif damage == "garbage":
        line = b"\x00\xff" * 100
    elif damage == "empty":
        line = b""
    else:
        line = b" ".join([*fields, b"x"])
    _rewrite(bucket.variables_path, line)
    assert bucket.variables() is None


def test_variables_record_of_another_bucket_is_none(directory):
    a = Bucket(directory, KEY_A, "prod")
    b = Bucket(directory, "a" * 32 + "c" * 32, "prod")  # same file name: the first 32 characters
    assert a.variables_path == b.variables_path
    _record(a, ("AWS_PROFILE",))
    assert a.variables() == ("AWS_PROFILE",)
    assert b.variables() is None


def test_variables_record_renamed_from_another_bucket_is_none(directory):
    a = Bucket(directory, KEY_A, "prod")
    b = Bucket(directory, KEY_B, "prod")
    _record(a, ("AWS_PROFILE",))
    os.rename(a.variables_path, b.variables_path)
    assert b.variables() is None


@pytest.mark.parametrize("foreign", ["symlink", "group-writable", "fifo"])
def test_variables_foreign_record_is_none(bucket, tmp_path, foreign):
    _record(bucket, ("AWS_PROFILE",))
    if foreign == "symlink":
        real = tmp_path / "elsewhere.vars"
        os.rename(bucket.variables_path, real)
        os.symlink(real, bucket.variables_path)
    elif foreign == "group-writable":
        os.chmod(bucket.variables_path, 0o620)
    else:
        os.unlink(bucket.variables_path)
        os.mkfifo(bucket.variables_path, 0o600)
    assert bucket.variables() is None


# -- scan: what credproc cache list reads ----------------------------------------------------------


def test_scan_lists_entries_with_their_failure(directory, bucket):
    ok = bucket.slot({}, ())
    write(ok, BODY, fetched=1000.0, expires=4600.0)
    failing = Bucket(directory, KEY_B, "staging").slot({}, ())
    write(failing, BODY, fetched=1000.0, expires=4600.0)
    # the longest reason reason_of gives, for a connection with a long id
    long_id = Bucket(directory, KEY_B, "c" * 60).slot({}, ())
    write(long_id, BODY, fetched=1000.0, expires=4600.0)
    reason = reason_of(CredprocError("€" * 5000), "x")
    record_failure(failing, failing.read(), "refused", now=2000.0)
    record_failure(long_id, long_id.read(), reason, now=2000.0)
    found = {stored.path: stored for stored in scan(directory)}
    assert set(found) == {ok.path, failing.path, long_id.path}
    assert (found[ok.path].key, found[ok.path].conn_id, found[ok.path].entry.failures) == (ok.key, "prod", 0)
    assert (found[failing.path].conn_id, found[failing.path].entry.reason) == ("staging", "refused")
    assert found[long_id.path].conn_id == "c" * 60
    assert found[long_id.path].entry is not None and found[long_id.path].entry.reason == reason


def test_scan_shows_unusable_entries_without_warning(directory, bucket, capsys):
    s = bucket.slot({}, ())
    write(s, BODY, fetched=1000.0, expires=4600.0)
    other = bucket.slot({"AWS_PROFILE": "x"}, ("AWS_PROFILE",))
    os.rename(s.path, other.path)  # claims a key that does not put it there
    garbage = os.path.join(directory, "junk--0000.entry")
    with open(garbage, "wb") as f:
        f.write(b"not an entry")
    found = {stored.path: stored for stored in scan(directory)}
    assert found[other.path].entry is None and found[other.path].conn_id == "prod"
    assert (found[garbage].key, found[garbage].conn_id, found[garbage].entry) == (None, None, None)
    assert warnings(capsys) == []


# -- get_or_fetch --------------------------------------------------------------------------------


class Fetcher:
    """A fake fetch: one-hour credentials (or long-term keys, or an error), counted."""

    def __init__(self, expiration="1h", error=None):
        self.calls = 0
        self.expiration = expiration
        self.error = error

    def __call__(self):
        self.calls += 1
        if self.error is not None:
            raise self.error
        exp = None
        if self.expiration == "1h":
            exp = datetime.fromtimestamp(time.time() + 3600, timezone.utc)
        return Credentials(f"AKIA{self.calls}", "SECRETKEYVALUE", "TOKENVALUE", exp)


DOWN = CredprocError("connection 'prod': STS is unreachable (connect timeout)")


class Places:
    """``find`` and ``place`` as a Resolution gives them to get_or_fetch: the slot the bucket's
    record points at, and the slot a fetch writes (recording the variables)."""

    def __init__(self, bucket, environ=None, variables=()):
        self.bucket = bucket
        self.environ = environ or {}
        self.variables = variables

    def find(self):
        recorded = self.bucket.variables()
        return None if recorded is None else self.bucket.slot(self.environ, recorded)

    def place(self):
        if self.bucket.variables() != self.variables:
            ensure_directory(self.bucket)
            write_variables(self.bucket, self.variables)
        return self.bucket.slot(self.environ, self.variables)

    def slot(self):
        return self.bucket.slot(self.environ, self.variables)

    def seed(self, fetched, expires, failure=None):
        """An entry fetched and expiring at these offsets from now."""
        now = time.time()
        if failure is not None:
            failure = Entry(BODY, now + fetched, now + expires, failed_since=now + failure[0],
                            failed_at=now + failure[0], failures=failure[1], reason="earlier")
        ensure_directory(self.bucket)
        write_variables(self.bucket, self.variables)
        assert write(self.slot(), BODY, fetched=now + fetched, expires=now + expires, failure=failure)

    def __call__(self, fetch, **kwargs):
        return get_or_fetch(self.bucket, self.find, self.place, fetch, **kwargs)


@pytest.fixture
def places(bucket):
    return Places(bucket)


# Entries with a one-hour lifetime, fetched ... ago: fresh until 27 min, due until 54 min.
FRESH_1H = (-60, 3540)
DUE_1H = (-30 * 60, 30 * 60)      # 30 min left: due
ENDING_1H = (-55 * 60, 5 * 60)    # 5 min left: past the floor


def test_fresh_entry_no_fetch(places, capsys):
    places.seed(*FRESH_1H)
    fetch = Fetcher()
    assert places(fetch) == BODY
    assert fetch.calls == 0
    assert warnings(capsys) == []


def test_due_entry_fetched_in_the_foreground(places, capsys):
    places.seed(*DUE_1H)
    fetch = Fetcher()
    body = places(fetch)
    assert fetch.calls == 1
    assert b"AKIA1" in body
    entry = places.slot().read()
    assert entry.body == body and entry.state(time.time()) == FRESH and entry.failures == 0
    assert warnings(capsys) == []


def test_due_entry_failing_fetch_serves_the_body_with_one_warning(places, capsys):
    places.seed(*DUE_1H)
    fetch = Fetcher(error=DOWN)
    started = time.time()
    assert places(fetch) == BODY
    assert fetch.calls == 1
    entry = places.slot().read()
    assert entry.body == BODY and entry.failures == 1
    assert started - 0.001 <= entry.failed_since == entry.failed_at <= time.time()  # stored to the ms
    assert entry.reason == "STS is unreachable (connect timeout)"
    lines = warnings(capsys)
    assert len(lines) == 1, lines
    assert "connection 'prod': refreshing its credentials failed (STS is unreachable (connect timeout))" in lines[0]
    assert "serving the cached ones, which expire at" in lines[0]
    assert "served while more than 6 minutes are left" in lines[0] and "next try after" in lines[0]


def test_within_the_backoff_a_second_call_does_not_fetch(places, capsys):
    places.seed(*DUE_1H)
    fetch = Fetcher(error=DOWN)
    assert places(fetch) == BODY
    assert places(fetch) == BODY
    assert fetch.calls == 1
    assert places.slot().read().failures == 1  # not asked: not counted
    assert len(warnings(capsys)) == 1  # once per process


def test_within_the_backoff_of_an_earlier_failure_no_fetch_and_a_warning(places, capsys):
    places.seed(*DUE_1H, failure=(-10, 1))  # failed 10 s ago: next try in 20 s
    fetch = Fetcher()
    assert places(fetch) == BODY
    assert fetch.calls == 0
    lines = warnings(capsys)
    assert len(lines) == 1 and "refreshing its credentials failed (earlier)" in lines[0]


def test_past_the_backoff_the_next_failure_counts(places, capsys):
    places.seed(*DUE_1H, failure=(-40, 1))  # failed 40 s ago: backoff (30 s) over
    before = places.slot().read().failed_since
    fetch = Fetcher(error=DOWN)
    assert places(fetch) == BODY
    assert fetch.calls == 1
    entry = places.slot().read()
    assert (entry.failures, entry.failed_since) == (2, before)
    assert entry.retry_at == entry.failed_at + 60
    lines = warnings(capsys)
    assert len(lines) == 1 and "2 tries since" in lines[0]


def test_past_the_backoff_a_success_clears_the_failure(places):
    places.seed(*DUE_1H, failure=(-400, 4))  # backoff 240 s, over
    fetch = Fetcher()
    body = places(fetch)
    assert fetch.calls == 1 and b"AKIA1" in body
    assert places.slot().read().failures == 0


def test_past_the_floor_a_failing_fetch_raises(places, capsys):
    places.seed(*ENDING_1H)
    fetch = Fetcher(error=DOWN)
    with pytest.raises(CredprocError, match="STS is unreachable"):
        places(fetch)
    assert fetch.calls == 1
    entry = places.slot().read()
    assert entry.failures == 1 and entry.body == BODY  # recorded, for the next one's backoff
    assert warnings(capsys) == []


def test_past_the_floor_the_backoff_does_not_hold_back_the_fetch(places):
    places.seed(*ENDING_1H, failure=(-5, 3))  # failed 5 s ago, next try in 115 s
    fetch = Fetcher()
    assert b"AKIA1" in places(fetch)
    assert fetch.calls == 1


@pytest.mark.parametrize("failure", [None, (-5, 1)], ids=["no-failure", "within-backoff"])
def test_expired_is_never_returned(places, failure):
    places.seed(-3600, -1, failure=failure)
    with pytest.raises(CredprocError, match="STS is unreachable"):
        places(Fetcher(error=DOWN))
    fetch = Fetcher()
    assert b"AKIA1" in places(fetch) and fetch.calls == 1


def test_refresh_fetches_a_fresh_entry(places):
    places.seed(*FRESH_1H)
    fetch = Fetcher()
    body = places(fetch, refresh=True)
    assert fetch.calls == 1
    assert b"AKIA1" in body and body != BODY
    assert places.slot().read().body == body


@pytest.mark.parametrize("seeded", [FRESH_1H, DUE_1H], ids=["fresh", "due"])
def test_refresh_failing_raises(places, capsys, seeded):
    places.seed(*seeded)
    fetch = Fetcher(error=DOWN)
    with pytest.raises(CredprocError, match="STS is unreachable"):
        places(fetch, refresh=True)
    assert fetch.calls == 1
    assert warnings(capsys) == []


def test_refresh_ignores_the_backoff(places):
    places.seed(*DUE_1H, failure=(-5, 1))
    fetch = Fetcher()
    assert b"AKIA1" in places(fetch, refresh=True)
    assert fetch.calls == 1


def test_miss_stores_then_hits(places, bucket):
    fetch = Fetcher()
    first = places(fetch)
    second = places(fetch)
    assert fetch.calls == 1
    assert first == second
    assert bucket.variables() == ()
    assert places.slot().read().body == first


def test_miss_without_an_entry_failing_raises(places):
    with pytest.raises(CredprocError, match="STS is unreachable"):
        places(Fetcher(error=DOWN))
    assert places.slot().read() is None


def test_miss_records_the_variables_and_keys_the_entry_on_them(bucket):
    names = ("AWS_PROFILE", "AWS_REGION")
    one = Places(bucket, {"AWS_PROFILE": "one", "HOME": "/a"}, names)
    fetch = Fetcher()
    first = one(fetch)
    assert bucket.variables() == names
    assert Places(bucket, {"AWS_PROFILE": "one", "HOME": "/b"}, names)(fetch) == first  # unlisted: same entry
    assert fetch.calls == 1
    second = Places(bucket, {"AWS_PROFILE": "two"}, names)(fetch)  # listed: another entry
    assert fetch.calls == 2 and second != first
    assert one(fetch) == first and fetch.calls == 2  # both kept


def test_an_outdated_record_is_replaced(bucket):
    old = Places(bucket, {"AWS_PROFILE": "p"}, ("AWS_PROFILE",))
    old.seed(*FRESH_1H)
    new = Places(bucket, {"AWS_PROFILE": "p"}, ())
    fetch = Fetcher()
    assert old(fetch) == BODY and fetch.calls == 0  # the record points at the old slot: a hit
    assert new(fetch, refresh=True) != BODY and fetch.calls == 1
    assert bucket.variables() == ()


def test_long_term_keys_not_stored(places):
    fetch = Fetcher(expiration=None)
    body = places(fetch)
    assert b"Expiration" not in body
    assert places.slot().read() is None
    assert not os.path.exists(places.slot().path)
    places(fetch)
    assert fetch.calls == 2


def test_long_term_keys_leave_a_due_entry_alone(places):
    places.seed(*DUE_1H)
    fetch = Fetcher(expiration=None)
    body = places(fetch)
    assert b"Expiration" not in body and body != BODY
    assert places.slot().read().body == BODY


def test_an_error_in_place_is_the_fetchs(places):
    """place() parses the connection: its failure on a due entry is a failed refresh too."""
    places.seed(*DUE_1H)

    def broken():
        raise CredprocError("connection 'prod': the definition is broken now")

    fetch = Fetcher()
    assert get_or_fetch(places.bucket, places.find, broken, fetch) == BODY
    assert fetch.calls == 0
    assert places.slot().read().reason == "the definition is broken now"


# -- get_or_fetch waiting for another process's lock -------------------------------------------


class Holder:
    """Another credproc process holding the bucket's lock (another open file description: a
    flock conflicts even within one process), doing ``work`` and letting go after a moment."""

    def __init__(self, bucket, work, after=0.2):
        ensure_directory(bucket)
        self.fd = cache.open_lock(bucket)
        fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.timer = threading.Timer(after, self._finish, args=(work,))

    def _finish(self, work):
        try:
            work()
        finally:
            fcntl.flock(self.fd, fcntl.LOCK_UN)

    def __enter__(self):
        self.timer.start()
        return self

    def __exit__(self, *exc_info):
        self.timer.join()
        os.close(self.fd)


def test_waiter_takes_the_entry_its_holder_wrote_even_when_not_fresh(places):
    places.seed(*ENDING_1H)
    short = BODY[:-1] + b', "AccountId": "123456789012"}'
    fetch = Fetcher()

    def holder_fetches():  # a role whose lifetime is under the floor: never fresh
        now = time.time()
        write(places.slot(), short, fetched=now, expires=now + 600)

    with Holder(places.bucket, holder_fetches):
        assert places(fetch) == short
    assert fetch.calls == 0


def test_waiter_serves_a_due_entry_its_holder_failed_to_refresh(places, capsys):
    places.seed(*DUE_1H)
    fetch = Fetcher()
    with Holder(places.bucket, lambda: record_failure(places.slot(), places.slot().read(), "down", time.time())):
        assert places(fetch) == BODY
    assert fetch.calls == 0
    lines = warnings(capsys)
    assert len(lines) == 1 and "refreshing its credentials failed (down)" in lines[0]


def test_waiter_raises_when_its_holder_failed_past_the_floor(places):
    places.seed(*ENDING_1H)
    fetch = Fetcher()
    with Holder(places.bucket, lambda: record_failure(places.slot(), places.slot().read(), "down", time.time())), \
            pytest.raises(CredprocError, match=r"refreshing its credentials failed \(down\), in another credproc "
                                                r"process just now"):
        places(fetch)
    assert fetch.calls == 0


def test_waiter_fetches_when_its_holder_left_nothing(places):
    places.seed(*DUE_1H)
    fetch = Fetcher()
    with Holder(places.bucket, lambda: None):  # killed before it wrote anything
        assert b"AKIA1" in places(fetch)
    assert fetch.calls == 1


def test_lock_timeout_fetches_without_the_lock(places, capsys):
    places.seed(*ENDING_1H)
    fetch = Fetcher()
    with Holder(places.bucket, lambda: None, after=0.3):
        assert b"AKIA1" in places(fetch, lock_timeout=0.1)
    assert fetch.calls == 1
    lines = warnings(capsys)
    assert len(lines) == 1 and "fetching without it" in lines[0]


# -- the shape check of an entry's body ------------------------------------------------------

text = st.text(st.characters(codec="utf-8"), max_size=40)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(key=text, secret=text, token=st.none() | text, account=st.none() | text)
def test_every_printed_output_has_the_shape_of_an_entry(key, secret, token, account):
    """Whatever a custom factory's credentials hold (braces, quotes, backslashes, newlines,
    any Unicode), what credproc prints is accepted back from the cache."""
    creds = Credentials(key, secret, token, datetime(2030, 1, 1, tzinfo=timezone.utc), account or None)
    assert cache._looks_like_output(creds.to_process_json().encode())


@settings(max_examples=25, deadline=None, derandomize=True, database=None)
@given(key=text, secret=text, reason=st.text(max_size=60))
def test_every_printed_output_round_trips_through_an_entry_with_a_failure(tmp_path_factory, key, secret, reason):
    s = Bucket(str(tmp_path_factory.mktemp("c")), KEY_A, "prod").slot({}, ())
    body = Credentials(key, secret, None, datetime(2030, 1, 1, tzinfo=timezone.utc)).to_process_json().encode()
    write(s, body, fetched=1000.0, expires=4600.0)
    record_failure(s, s.read(quiet=True), reason, now=2000.0)
    entry = s.read(quiet=True)
    assert entry is not None and entry.body == body
    assert entry.reason == reason.encode("utf-8", "replace").decode("utf-8", "replace")


@pytest.mark.parametrize("body", [
    b'{"Version": 1, "AccessKeyId": "A", "SecretAccessKey": {"nested": "x"}}',
    b'{"Version": 1, "AccessKeyId": "A", "SecretAccessKey": "x", "SessionToken": ["t"]}',
    b'{"Version": 1, "AccessKeyId": "A", "SecretAccessKey": "x"}{"Version": 1}',
    b'{"Version": 1, "AccessKeyId": "A", "SecretAccessKey": "x}',
    b'{"Version": 1, "AccessKeyId": "A", "SecretAccessKey": "x\\"}',
    b'{"Version": 1, "AccessKeyId": "A", "Secret": "\\"SecretAccessKey\\": \\""}',
    b'{"Version": 1, "AccessKeyId": "A", "SecretAccessKey": "x"}\n{"Version": 1}',
    b'{"Version": 2, "AccessKeyId": "A", "SecretAccessKey": "x"}',
], ids=["nested", "array", "two-objects", "unterminated", "escaped-quote-unterminated",
        "key-only-inside-a-string", "two-lines", "version-2"])
def test_bodies_credproc_never_writes_are_refused(body):
    assert not cache._looks_like_output(body)


def test_a_forged_body_with_a_valid_digest_is_refused(slot, capsys):
    forged = b'{"Version": 1, "AccessKeyId": "A", "SecretAccessKey": {"nested": "x"}}'
    write(slot, forged, fetched=1000.0, expires=4600.0)
    _assert_rejected(slot, capsys)
