"""The typed readers of credproc.settings: a value means the same wherever it is read."""

from __future__ import annotations

import pytest

from credproc.connection import resolve
from credproc.errors import ConfigError
from credproc.methods.saml.settings import read_settings
from credproc.settings import Table, as_boolean, seconds, whole_number
from credproc.forms import RawConnection

ROLE = "arn:aws:iam::123456789012:role/r"
SAML = {"principal_arn": "arn:aws:iam::123456789012:saml-provider/idp", "idp_url": "https://idp.example/saml"}


def table(values: dict) -> Table:
    return Table(values, "t.", ConfigError)


@pytest.mark.parametrize("word, expected", [
    ("true", True), ("Yes", True), (" on ", True), ("1", True), (True, True),
    ("false", False), ("NO", False), ("off", False), ("0", False), (False, False),
    ("maybe", None), ("", None), (1, None), (None, None),
])
def test_boolean_words(word, expected):
    assert as_boolean(word) is expected


def test_verify_yes_means_true_in_the_connection_and_in_idp_request_kwargs_alike():
    """Before one reader, "yes" was True for the connection's verify and a CA bundle path
    (that does not exist: a configuration error) inside idp_request_kwargs."""
    for word, expected in (("yes", True), ("off", False), ("TRUE", True)):
        extra = {"role_arn": ROLE, "assume_role_method": "assume_role_with_saml", "verify": word,
                 "assume_role_with_saml": {**SAML, "idp_request_kwargs": {"verify": word}}}
        conn = resolve(RawConnection("c", "test", {}, extra, {}))
        assert conn.verify is expected
        assert read_settings(conn).idp_request_kwargs["verify"] is expected


def test_verify_takes_an_existing_ca_bundle_and_refuses_a_missing_one(tmp_path):
    bundle = tmp_path / "ca.pem"
    bundle.write_text("not checked here")
    assert table({"verify": str(bundle)}).verify("verify") == str(bundle)
    with pytest.raises(ConfigError, match=r"t\.verify '/no/such\.pem' is neither true/false"):
        table({"verify": "/no/such.pem"}).verify("verify")
    assert table({}).verify("verify") is None


def test_strings_tables_and_their_errors_name_the_full_key():
    values = {"s": " x ", "blank": "  ", "n": 3, "tab": {"a": 1}, "json": '{"b": 2}', "bad": "[1]"}
    t = table(values)
    assert t.string("s") == " x " and t.string("s", strip=True) == "x"
    assert t.string("blank", strip=True) is None and t.string("missing") is None
    with pytest.raises(ConfigError, match=r"t\.n must be a string, not int"):
        t.string("n")
    with pytest.raises(ConfigError, match="needed here"):
        t.string("missing", required="needed here")
    assert t.table("tab") == {"a": 1} and t.table("json") == {"b": 2} and t.table("missing") == {}
    with pytest.raises(ConfigError, match=r"t\.bad must be a table/object"):
        t.table("bad")
    assert t.sub("tab").name("a") == "t.tab.a"


def test_booleans_in_a_table():
    t = table({"on": "yes", "off": 0, "bad": "perhaps"})
    assert t.boolean("on") is True and t.boolean("missing", default=True) is True
    with pytest.raises(ConfigError, match=r"t\.off must be true or false"):
        t.boolean("off")  # an integer is not a boolean word: TOML and JSON have real booleans
    with pytest.raises(ConfigError, match=r"t\.bad must be true or false, not 'perhaps'"):
        t.boolean("bad")


def test_paths_expand_the_home_directory(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert table({"p": "~/token"}).path("p") == str(tmp_path / "token")
    with pytest.raises(ConfigError, match="no such file"):
        table({"p": "~/token"}).path("p", must_exist=True)


def test_durations_from_tables_and_the_environment():
    t = table({"a": 30, "b": "2.5", "c": "soon", "d": True, "e": -1})
    assert t.seconds("a") == 30.0 and t.seconds("b") == 2.5 and t.seconds("missing") is None
    for key in ("c", "d", "e"):
        with pytest.raises(ConfigError, match=f"t\\.{key} must be a number of seconds"):
            t.seconds(key)
    assert seconds({"X": "12"}, "X", 5.0) == 12.0 and seconds({}, "X", 5.0) == 5.0
    with pytest.raises(ConfigError, match="X is 'nan', not a number of seconds from 0 to 60"):
        seconds({"X": "nan"}, "X", 5.0, maximum=60)
    assert whole_number({"N": "3"}, "N", 1, minimum=1) == 3
    with pytest.raises(ConfigError, match="N is '1.5', not a whole number of at least 1"):
        whole_number({"N": "1.5"}, "N", 1, minimum=1)
