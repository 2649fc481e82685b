"""Unit tests of credproc.protocol, in process: the credential_process JSON credproc prints."""

import json
from datetime import datetime, timedelta, timezone

import pytest

from credproc.protocol import Credentials, account_from_arn, format_expiration

EXP = datetime(2026, 11, 25, 17, 49, 28, tzinfo=timezone.utc)


def test_full_output_key_names_and_version():
    creds = Credentials("AKIAX", "SECRETX", "TOKENX", EXP, "123456789012")
    out = json.loads(creds.to_process_json())
    assert out == {
        "Version": 1,
        "AccessKeyId": "AKIAX",
        "SecretAccessKey": "SECRETX",
        "SessionToken": "TOKENX",
        "Expiration": "2026-11-25T17:49:28Z",
        "AccountId": "123456789012",
    }
    assert type(out["Version"]) is int


def test_output_is_one_line_without_trailing_newline():
    text = Credentials("AKIAX", "SECRETX", "TOKENX", EXP).to_process_json()
    assert "\n" not in text


def test_session_token_omitted_when_none():
    out = json.loads(Credentials("AKIAX", "SECRETX", None, EXP).to_process_json())
    assert "SessionToken" not in out
    assert out["Expiration"] == "2026-11-25T17:49:28Z"


def test_long_term_keys_have_no_expiration():
    out = json.loads(Credentials("AKIAX", "SECRETX").to_process_json())
    assert out == {"Version": 1, "AccessKeyId": "AKIAX", "SecretAccessKey": "SECRETX"}


def test_account_id_omitted_when_unset():
    out = json.loads(Credentials("AKIAX", "SECRETX", "T", EXP).to_process_json())
    assert "AccountId" not in out


def test_format_expiration_converts_other_zone_to_utc():
    when = datetime(2026, 11, 25, 19, 49, 28, tzinfo=timezone(timedelta(hours=2)))
    assert format_expiration(when) == "2026-11-25T17:49:28Z"


def test_format_expiration_negative_offset_crosses_day():
    when = datetime(2026, 12, 31, 20, 30, 0, tzinfo=timezone(timedelta(hours=-5)))
    assert format_expiration(when) == "2027-01-01T01:30:00Z"


def test_format_expiration_naive_is_utc():
    assert format_expiration(datetime(2026, 11, 25, 17, 49, 28)) == "2026-11-25T17:49:28Z"


def test_format_expiration_truncates_microseconds():
    when = datetime(2026, 11, 25, 17, 49, 28, 999999, tzinfo=timezone.utc)
    assert format_expiration(when) == "2026-11-25T17:49:28Z"


def test_format_expiration_truncates_at_minute_boundary():
    when = datetime(2026, 11, 25, 17, 59, 59, 999999, tzinfo=timezone(timedelta(hours=1)))
    assert format_expiration(when) == "2026-11-25T16:59:59Z"


def test_expires_at():
    assert Credentials("A", "S", expiration=EXP).expires_at == EXP.timestamp()
    assert Credentials("A", "S").expires_at is None


@pytest.mark.parametrize("arn, account", [
    ("arn:aws:sts::123456789012:assumed-role/role/session", "123456789012"),
    ("arn:aws:iam::210987654321:role/x", "210987654321"),
    ("arn:aws-cn:sts::123456789012:assumed-role/r/s", "123456789012"),
    ("arn:aws:iam::aws:policy/ReadOnlyAccess", None),
    ("arn:aws:iam::12345678901:role/x", None),
    ("arn:aws:iam::1234567890123:role/x", None),
    ("not-an-arn", None),
    ("", None),
    (None, None),
])
def test_account_from_arn(arn, account):
    assert account_from_arn(arn) == account


def test_repr_hides_secret_and_token():
    creds = Credentials("AKIAVISIBLE", "SECRET-shouldnt-show", "TOKEN-shouldnt-show", EXP, "123456789012")
    text = repr(creds)
    assert "AKIAVISIBLE" in text
    assert "SECRET-shouldnt-show" not in text
    assert "TOKEN-shouldnt-show" not in text
    assert "SECRET-shouldnt-show" not in str(creds)
