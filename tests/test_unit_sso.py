"""credproc.sso: which profile holds the SSO settings, and which botocore errors mean the
session is over (pure logic; tests/test_sso.py runs the real provider against a local portal)."""

from __future__ import annotations

import pytest
from botocore import exceptions as bx

from credproc import sso

PROFILES = {
    "dev": {"sso_session": "corp", "sso_account_id": "1", "sso_role_name": "R"},
    "legacy": {"sso_start_url": "https://x/start", "sso_region": "eu-west-1"},
    "app": {"role_arn": "arn:aws:iam::1:role/app", "source_profile": "dev"},
    "deeper": {"role_arn": "arn:aws:iam::1:role/deeper", "source_profile": "app"},
    "keys": {"aws_access_key_id": "AKIA..."},
    "loop-a": {"source_profile": "loop-b"},
    "loop-b": {"source_profile": "loop-a"},
}


@pytest.mark.parametrize("name, found", [("dev", "dev"), ("legacy", "legacy"), ("app", "dev"), ("deeper", "dev"),
                                         ("keys", None), ("loop-a", None), ("missing", None), (None, None)])
def test_the_profile_that_holds_the_sso_settings(name, found):
    assert sso.sso_profile(PROFILES, name) == found


@pytest.mark.parametrize("error, over", [
    (bx.SSOTokenLoadError(error_msg="Token for corp does not exist"), True),
    (bx.UnauthorizedSSOTokenError(), True),
    (bx.TokenRetrievalError(provider="sso", error_msg="Token has expired and refresh failed"), True),
    (bx.TokenRetrievalError(provider="other", error_msg="x"), False),
    (bx.NoCredentialsError(), False),
])
def test_which_errors_mean_the_session_is_over(error, over):
    assert sso.session_expired(error) is over
    line = sso.translate(error, "c", PROFILES, "app")
    if over:
        assert str(line) == "connection 'c': the SSO session for profile 'dev' has expired: " \
                            "run `aws sso login --profile dev`"
    else:
        assert line is None


def test_an_error_behind_a_profile_without_sso_is_left_to_the_sts_translation():
    assert sso.translate(bx.UnauthorizedSSOTokenError(), "c", PROFILES, "keys") is None


def test_a_connection_error_is_the_portals_only_at_the_portals_path():
    portal = bx.EndpointConnectionError(endpoint_url="https://portal.sso.eu-west-1.amazonaws.com"
                                                     "/federation/credentials?role_name=R&account_id=1")
    assert "the SSO portal of profile 'dev' did not answer" in str(sso.translate(portal, "c", PROFILES, "dev"))
    other = bx.EndpointConnectionError(endpoint_url="https://sts.amazonaws.com/")
    assert sso.translate(other, "c", PROFILES, "app") is None
