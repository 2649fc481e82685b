"""Unit tests of credproc.cache, in process: freshness and refresh margins, the cache key
(identity), where the cache lives, the entry file format and what is refused, and get_or_fetch."""

import os
import stat
import time
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from credproc import cache
from credproc.cache import IDENTITY_VARIABLES, Entry, Slot, cache_dir, identity, refresh_margin
from credproc.cache.lock import get_or_fetch
from credproc.cache.store import write
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


# -- refresh margin and freshness ------------------------------------------------------------


@pytest.mark.parametrize("lifetime, margin", [(3600, 1200), (43200, 1200), (1800, 900), (900, 660), (300, 660)])
def test_refresh_margin(lifetime, margin):
    assert refresh_margin(lifetime) == margin


def test_entry_is_fresh():
    entry = Entry(b"x", fetched=1000.0, expires=4600.0)  # 1 h lifetime: margin 20 min
    assert entry.is_fresh(1000.0)
    assert entry.is_fresh(3399.0)
    assert not entry.is_fresh(3400.0)
    assert not entry.is_fresh(5000.0)


def test_entry_short_lifetime_is_fresh():
    entry = Entry(b"x", fetched=0.0, expires=900.0)  # margin 660 s
    assert entry.is_fresh(239.0)
    assert not entry.is_fresh(240.0)


# -- identity --------------------------------------------------------------------------------

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


def test_identity_changes_with_session_factory():
    d = base_definition()
    keys = {identity(d, None, base_environ()), identity(d, "pkg.mod.A", base_environ()),
            identity(d, "pkg.mod.B", base_environ())}
    assert len(keys) == 3


@pytest.mark.parametrize("name", IDENTITY_VARIABLES)
def test_identity_changes_with_each_variable(name):
    environ = base_environ()
    before = identity(base_definition(), None, environ)
    environ[name] = "something-else"
    assert identity(base_definition(), None, environ) != before
    del environ[name]
    assert identity(base_definition(), None, environ) != before


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


# -- Slot store / read -----------------------------------------------------------------------


@pytest.fixture
def slot(tmp_path):
    return Slot(str(tmp_path / "cache"), KEY_A, "prod")


def test_store_read_round_trip(slot, capsys):
    write(slot, BODY, fetched=1000.0, expires=4600.0)
    entry = slot.read()
    assert entry is not None
    assert entry.body == BODY
    assert (entry.fetched, entry.expires) == (1000.0, 4600.0)
    assert stat.S_IMODE(os.stat(slot.path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(slot.directory).st_mode) == 0o700
    assert warnings(capsys) == []


def test_store_file_layout(slot):
    write(slot, BODY, fetched=1000.0, expires=4600.0)
    with open(slot.path, "rb") as f:
        data = f.read()
    header, body = data.split(b"\n", 1)
    assert body == BODY
    assert header.startswith(b"credproc-cache 1 " + KEY_A.encode())
    assert os.listdir(slot.directory) == [os.path.basename(slot.path)]  # no temporary file left


def test_read_missing_is_none_silently(slot, capsys):
    assert slot.read() is None
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


def test_corrupted_body_byte(slot, capsys):
    write(slot, BODY, fetched=1000.0, expires=4600.0)
    with open(slot.path, "rb") as f:
        data = bytearray(f.read())
    i = data.index(b"AKIAX")
    data[i] = ord("B")
    _rewrite(slot.path, bytes(data))
    _assert_rejected(slot, capsys)


@pytest.mark.parametrize("field", [0, 1, 2, 3, 4, 5], ids=["magic", "version", "key", "fetched", "expires", "digest"])
def test_corrupted_header_byte(slot, capsys, field):
    # A flipped byte anywhere in the header must make the entry a miss, not only in the fields
    # that happen to be compared: a corrupted "expires" serves credentials past their expiry.
    write(slot, BODY, fetched=1000.0, expires=4600.0)
    with open(slot.path, "rb") as f:
        data = f.read()
    header, body = data.split(b"\n", 1)
    fields = header.split(b" ")
    value = bytearray(fields[field])
    # one byte changed to another of the same kind, so the header still splits and parses
    value[0] = {ord("c"): ord("d"), ord("1"): ord("2"), ord("4"): ord("5"), ord("a"): ord("b")}.get(value[0], ord("0"))
    assert bytes(value) != fields[field]
    fields[field] = bytes(value)
    _rewrite(slot.path, b" ".join(fields) + b"\n" + body)
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


def test_entry_renamed_to_another_keys_path(tmp_path, capsys):
    directory = str(tmp_path / "cache")
    a = Slot(directory, KEY_A, "prod")
    b = Slot(directory, KEY_B, "prod")
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


def test_group_writable_directory_not_used(slot, capsys):
    write(slot, BODY, fetched=1000.0, expires=4600.0)
    os.chmod(slot.directory, 0o770)
    assert slot.read() is None
    lines = warnings(capsys)
    assert len(lines) == 1 and slot.directory in lines[0]


def test_store_replaces_entry(slot):
    write(slot, BODY, fetched=1000.0, expires=4600.0)
    newer = BODY[:-1] + b', "AccountId": "123456789012"}'
    write(slot, newer, fetched=2000.0, expires=5600.0)
    entry = slot.read()
    assert (entry.body, entry.fetched, entry.expires) == (newer, 2000.0, 5600.0)


def test_conn_id_with_unsafe_chars_stays_in_directory(tmp_path):
    s = Slot(str(tmp_path / "cache"), KEY_A, "../../etc/passwd")
    assert os.path.dirname(s.path) == str(tmp_path / "cache")


# -- get_or_fetch ------------------------------------------------------------------------------


class Fetcher:
    def __init__(self, expiration="1h"):
        self.calls = 0
        self.expiration = expiration

    def __call__(self):
        self.calls += 1
        exp = None
        if self.expiration == "1h":
            exp = datetime.fromtimestamp(time.time() + 3600, timezone.utc)
        return Credentials(f"AKIA{self.calls}", "SECRETKEYVALUE", "TOKENVALUE", exp)


def test_get_or_fetch_fresh_entry_no_fetch(slot):
    now = time.time()
    write(slot, BODY, fetched=now - 10, expires=now + 3600)
    fetch = Fetcher()
    assert get_or_fetch(slot, fetch) == BODY
    assert fetch.calls == 0


def test_get_or_fetch_stale_entry_fetches(slot):
    now = time.time()
    write(slot, BODY, fetched=now - 3000, expires=now + 600)  # inside the refresh margin
    fetch = Fetcher()
    body = get_or_fetch(slot, fetch)
    assert fetch.calls == 1
    assert b"AKIA1" in body
    assert slot.read().body == body


def test_get_or_fetch_refresh_fetches(slot):
    now = time.time()
    write(slot, BODY, fetched=now - 10, expires=now + 3600)
    fetch = Fetcher()
    body = get_or_fetch(slot, fetch, refresh=True)
    assert fetch.calls == 1
    assert b"AKIA1" in body and body != BODY
    assert slot.read().body == body


def test_get_or_fetch_miss_stores_then_hits(slot):
    fetch = Fetcher()
    first = get_or_fetch(slot, fetch)
    second = get_or_fetch(slot, fetch)
    assert fetch.calls == 1
    assert first == second
    assert slot.read().body == first


def test_get_or_fetch_long_term_not_stored(slot):
    fetch = Fetcher(expiration=None)
    body = get_or_fetch(slot, fetch)
    assert b"Expiration" not in body
    assert slot.read() is None
    assert not os.path.exists(slot.path)
    get_or_fetch(slot, fetch)
    assert fetch.calls == 2


# -- the shape check of an entry's body ------------------------------------------------------

text = st.text(st.characters(codec="utf-8"), max_size=40)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(key=text, secret=text, token=st.none() | text, account=st.none() | text)
def test_every_printed_output_has_the_shape_of_an_entry(key, secret, token, account):
    """Whatever a custom factory's credentials hold (braces, quotes, backslashes, newlines,
    any Unicode), what credproc prints is accepted back from the cache."""
    creds = Credentials(key, secret, token, datetime(2030, 1, 1, tzinfo=timezone.utc), account or None)
    assert cache._looks_like_output(creds.to_process_json().encode())


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
