"""credproc.sensitive: the one rule for which values are secrets, as show masks them and as
the connection registers them."""

from __future__ import annotations

import pytest

from credproc import log
from credproc.sensitive import MASK, is_secret_key, mask, secret_values, words


@pytest.mark.parametrize("key, parts", [
    ("X-Api-Key", ["x", "api", "key"]), ("apiKey", ["api", "key"]), ("MSISAuth", ["msis", "auth"]),
    ("aws_secret_access_key", ["aws", "secret", "access", "key"]), ("TokenCode", ["token", "code"]),
])
def test_words(key, parts):
    assert words(key) == parts


@pytest.mark.parametrize("key", [
    "password", "federation_password", "client_secret", "api_key", "X-Api-Key", "apiKey", "MSISAuth",
    "Authorization", "Cookie", "aws_secret_access_key", "aws_session_token", "private_key", "SAMLAssertion",
    "TokenCode", "refresh_token", "passphrase",
])
def test_secret_keys(key):
    assert is_secret_key(key)


@pytest.mark.parametrize("key", [
    "login", "username", "aws_access_key_id", "assume_role_with_web_identity_token_file", "token_file",
    "tokens_url", "secret_name", "idp_auth_method", "RoleSessionName", "session_kwargs", "region_name",
    "principal_arn", "url",
])
def test_keys_that_only_point_at_a_secret_or_are_none(key):
    assert not is_secret_key(key)


EXTRA = {
    "role_arn": "arn:aws:iam::123456789012:role/r",
    "federation": {"api_key": "fed-api-key-0001", "user": "alice", "tokens_url": "https://idp/tokens"},
    "assume_role_with_saml": {"idp_request_kwargs": {
        "headers": {"Accept": "text/html", "X-Tenant": "tenant-value-0001"},
        "cookies": {"MSISAuth": "cookie-value-0001"}}},
    "proxy": "http://user:proxy-password-0001@proxy:3128",
    "list": [{"client_secret": "client-secret-0001"}, "plain"],
}


def test_secret_values_and_mask_agree():
    """What show masks is exactly what the connection registers as secret."""
    found = set(secret_values(EXTRA))
    assert found == {"fed-api-key-0001", "text/html", "tenant-value-0001", "cookie-value-0001",
                     "proxy-password-0001", "client-secret-0001"}
    shown = repr(mask(EXTRA))
    for value in found:
        assert value not in shown
    masked = mask(EXTRA)
    assert masked["federation"] == {"api_key": MASK, "user": "alice", "tokens_url": "https://idp/tokens"}
    assert masked["assume_role_with_saml"]["idp_request_kwargs"]["headers"] == {"Accept": MASK, "X-Tenant": MASK}
    assert masked["proxy"] == f"http://user:{MASK}@proxy:3128"
    assert masked["list"] == [{"client_secret": MASK}, "plain"]


def test_registered_secrets_are_masked_in_every_message():
    from credproc.sensitive import register

    register({"federation": {"password": "registered-pass-0001"}})
    assert log.redact("error: registered-pass-0001 refused") == f"error: {MASK} refused"
