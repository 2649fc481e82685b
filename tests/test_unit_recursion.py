"""Unit tests of credproc.recursion, in process: recognising a profile whose credential_process
runs credproc for the same connection, and the depth guard of chained runs."""

import pytest

from credproc.errors import ConfigError
from credproc.recursion import CHAIN_VARIABLE, MAX_DEPTH, check, check_profile, runs_credproc_for


@pytest.mark.parametrize("command, conn_id, expected", [
    ("/x/bin/credproc --conn prod", "prod", True),
    ("credproc -c prod", "prod", True),
    ("credproc --conn=prod", "prod", True),
    ("credproc -cprod", "prod", True),
    ("credproc", "aws_default", True),
    ("credproc", "prod", False),
    ("credproc --profile p", "aws_default", True),
    ("credproc --conn prod --profile prod", "prod", True),
    ("python -m credproc --conn prod", "prod", True),
    ("/usr/bin/python3 -m credproc -c prod", "prod", True),
    ("python -m credproc", "aws_default", True),
    ("/v/bin/python -I -S /v/lib/python3.11/site-packages/credproc/_launch.py --conn prod --profile p", "prod", True),
    ("/v/bin/python -I -S /v/lib/python3.11/site-packages/credproc/_launch.py --conn other", "prod", False),
    ("python3 -X importtime -IS '/a b/credproc/_launch.py' -c prod", "prod", True),
    ("python /src/credproc/_launch.py", "aws_default", True),
    ("python -I -S /elsewhere/_launch.py --conn prod", "prod", False),
    ("python -c 'import credproc' --conn prod", "prod", False),
    ("python -W ignore -m credproc --conn prod", "prod", True),
    ("python -m", "prod", False),
    ("credproc --conn other", "prod", False),
    ("credproc --conn prod", "other", False),
    ("python -m othermodule --conn prod", "prod", False),
    ("aws-vault exec prod --json", "prod", False),
    ("/usr/local/bin/other --conn prod", "prod", False),
    ("", "prod", False),
    ("credproc --conn 'unterminated", "prod", False),
])
def test_runs_credproc_for(command, conn_id, expected):
    assert runs_credproc_for(command, conn_id) is expected


def test_check_profile_direct():
    profiles = {"p": {"credential_process": "credproc --conn prod"}}
    with pytest.raises(ConfigError, match="'p'"):
        check_profile("prod", "p", profiles)


def test_check_profile_follows_source_profile():
    profiles = {
        "top": {"role_arn": "arn:aws:iam::123456789012:role/x", "source_profile": "mid"},
        "mid": {"source_profile": "base"},
        "base": {"credential_process": "/opt/bin/credproc --conn=prod"},
    }
    with pytest.raises(ConfigError) as e:
        check_profile("prod", "top", profiles)
    assert "'base'" in str(e.value)


def test_check_profile_other_connection_allowed():
    profiles = {"top": {"source_profile": "base"}, "base": {"credential_process": "credproc --conn base"}}
    check_profile("prod", "top", profiles)  # chaining different connections is legitimate


def test_check_profile_source_profile_loop_terminates():
    profiles = {"a": {"source_profile": "b"}, "b": {"source_profile": "a"}}
    check_profile("prod", "a", profiles)


def test_check_profile_unknown_profile_ok():
    check_profile("prod", "missing", {})


def test_check_empty_chain_ok():
    check("prod", {})
    check("prod", {CHAIN_VARIABLE: ""})


def test_check_refuses_conn_already_in_chain():
    with pytest.raises(ConfigError) as e:
        check("prod", {CHAIN_VARIABLE: "base\nprod"})
    assert "prod" in str(e.value)


def test_check_allows_different_conn():
    check("other", {CHAIN_VARIABLE: "base\nprod"})


def test_check_does_not_match_substring():
    check("prod", {CHAIN_VARIABLE: "prod2\nmyprod"})


def test_check_refuses_chain_of_max_depth():
    chain = "\n".join(f"c{i}" for i in range(MAX_DEPTH))
    with pytest.raises(ConfigError, match="deep"):
        check("new", {CHAIN_VARIABLE: chain})


def test_check_allows_chain_below_max_depth():
    chain = "\n".join(f"c{i}" for i in range(MAX_DEPTH - 1))
    check("new", {CHAIN_VARIABLE: chain})
