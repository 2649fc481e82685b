"""Unit tests of credproc.sources and credproc.forms, in process: where a connection is
defined (variables, the config file) and how its URI, JSON and TOML forms are parsed."""

import json
import os

import pytest

from credproc import sources
from credproc.errors import ConfigError
from credproc.forms import RawConnection, parse, parse_json, parse_toml, parse_uri, split_table
from credproc.sources import Definition, airflow_variable, config_path, credproc_variable, locate

ORIGIN = "test"


# -- variable names ------------------------------------------------------------------------


def test_credproc_variable_upper_cases_and_replaces_unsafe_chars():
    assert credproc_variable("my-conn.prod") == "CREDPROC_CONN_MY_CONN_PROD"


def test_credproc_variable_keeps_digits_and_underscores():
    assert credproc_variable("aws_default2") == "CREDPROC_CONN_AWS_DEFAULT2"


def test_credproc_variable_replaces_non_ascii_and_spaces():
    assert credproc_variable("prod é/x y") == "CREDPROC_CONN_PROD___X_Y"


def test_airflow_variable_is_plain_upper_case():
    assert airflow_variable("my-conn.prod") == "AIRFLOW_CONN_MY-CONN.PROD"
    assert airflow_variable("aws_default") == "AIRFLOW_CONN_AWS_DEFAULT"


def test_credproc_error_exit_code_is_2():
    assert ConfigError("x").exit_code == 2


# -- config_path ---------------------------------------------------------------------------


def test_config_path_explicit_wins(tmp_path):
    environ = {"CREDPROC_CONFIG": "/etc/x.toml", "XDG_CONFIG_HOME": str(tmp_path)}
    assert config_path(environ) == "/etc/x.toml"


def test_config_path_xdg_config_home(tmp_path):
    assert config_path({"XDG_CONFIG_HOME": str(tmp_path)}) == os.path.join(str(tmp_path), "credproc", "config.toml")


def test_config_path_empty_explicit_falls_through(tmp_path):
    environ = {"CREDPROC_CONFIG": "", "XDG_CONFIG_HOME": str(tmp_path)}
    assert config_path(environ) == os.path.join(str(tmp_path), "credproc", "config.toml")


def test_config_path_home_default(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert config_path({}) == os.path.join(str(tmp_path), ".config", "credproc", "config.toml")


# -- locate --------------------------------------------------------------------------------


def test_locate_credproc_variable_before_airflow(tmp_path):
    environ = {
        "CREDPROC_CONN_MY_CONN": "aws://a:b@/",
        "AIRFLOW_CONN_MY-CONN": "aws://c:d@/",
        "CREDPROC_CONFIG": str(tmp_path / "c.toml"),
    }
    d = locate("my-conn", environ)
    assert (d.kind, d.where, d.text, d.conn_id) == ("env", "CREDPROC_CONN_MY_CONN", "aws://a:b@/", "my-conn")


def test_locate_airflow_variable_before_file(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[connections.prod]\nlogin = 'x'\n")
    environ = {"AIRFLOW_CONN_PROD": '{"login": "a"}', "CREDPROC_CONFIG": str(path)}
    d = locate("prod", environ)
    assert (d.kind, d.where, d.text) == ("env", "AIRFLOW_CONN_PROD", '{"login": "a"}')


def test_locate_file(tmp_path):
    path = tmp_path / "c.toml"
    text = "[connections.prod]\nlogin = 'x'\n"
    path.write_text(text)
    d = locate("prod", {"CREDPROC_CONFIG": str(path)})
    assert (d.kind, d.where, d.text, d.read_error) == ("file", str(path), text, "")


def test_locate_missing_file_is_none(tmp_path):
    path = tmp_path / "absent.toml"
    d = locate("prod", {"CREDPROC_CONFIG": str(path)})
    assert (d.kind, d.where, d.text) == ("none", str(path), "")


def test_locate_unreadable_file_gives_read_error(tmp_path):
    path = tmp_path / "dir.toml"
    path.mkdir()  # opening a directory fails even for root
    d = locate("prod", {"CREDPROC_CONFIG": str(path)})
    assert d.kind == "file"
    assert d.where == str(path)
    assert d.read_error
    assert d.text == ""


def test_locate_non_utf8_file_gives_read_error(tmp_path):
    path = tmp_path / "c.toml"
    path.write_bytes(b"login = '\xff\xfe'\n")
    d = locate("prod", {"CREDPROC_CONFIG": str(path)})
    assert d.kind == "file" and "UTF-8" in d.read_error


def test_parse_unreadable_file_is_config_error(tmp_path):
    path = tmp_path / "dir.toml"
    path.mkdir()
    with pytest.raises(ConfigError, match="cannot read config file"):
        parse(locate("prod", {"CREDPROC_CONFIG": str(path)}))


# -- parse_uri -----------------------------------------------------------------------------


def test_parse_uri_login_password_plain_unquote():
    fields, extra = parse_uri("aws://AKIA%2BX:ab+cd%2Fef%40gh@/", ORIGIN)
    assert fields["login"] == "AKIA+X"
    assert fields["password"] == "ab+cd/ef@gh"  # '+' stays '+', %2F is '/'
    assert fields["conn_type"] == "aws"
    assert extra == {}


def test_parse_uri_query_plus_is_space_and_percent_decoded():
    _, extra = parse_uri("aws://a:b@/?role_session=a+b&path=x%2Fy", ORIGIN)
    assert extra == {"role_session": "a b", "path": "x/y"}


def test_parse_uri_last_duplicate_wins_and_blank_kept():
    _, extra = parse_uri("aws://a:b@/?region_name=eu-west-1&region_name=us-east-1&verify=", ORIGIN)
    assert extra == {"region_name": "us-east-1", "verify": ""}


def test_parse_uri_extra_json_replaces_query_extras(capsys):
    payload = json.dumps({"assume_role_kwargs": {"DurationSeconds": 900}, "verify": False})
    from urllib.parse import quote

    fields, extra = parse_uri(f"aws://a:b@/?region_name=x&__extra__={quote(payload)}", ORIGIN)
    assert extra == {"assume_role_kwargs": {"DurationSeconds": 900}, "verify": False}
    assert "region_name" in capsys.readouterr().err  # the ignored key is named


def test_parse_uri_extra_json_invalid_is_error():
    with pytest.raises(ConfigError, match="invalid JSON"):
        parse_uri("aws://a:b@/?__extra__=%7Bnot", ORIGIN)


@pytest.mark.parametrize("form", ["json", "toml"])
def test_a_definition_nested_too_deeply_is_a_config_error(form):
    """The parsers recurse: a definition of 100 000 nested arrays is one ConfigError (exit 2),
    not a RecursionError that looks like a bug."""
    deep = "[" * 100_000
    with pytest.raises(ConfigError, match="nested too deeply"):
        if form == "json":
            parse_json('{"extra": ' + deep, ORIGIN)
        else:
            parse_toml(f"[connections.x]\nextra = {deep}\n", "config.toml")


def test_parse_uri_extra_json_not_object_is_error():
    with pytest.raises(ConfigError, match="expected a JSON object"):
        parse_uri("aws://a:b@/?__extra__=%5B1%5D", ORIGIN)


def test_parse_uri_bare_scheme_is_empty():
    fields, extra = parse_uri("aws://", ORIGIN)
    assert extra == {}
    assert {k: v for k, v in fields.items() if k != "conn_type"} == {}


def test_parse_uri_missing_at_gives_hint():
    with pytest.raises(ConfigError) as e:
        parse_uri("aws://AKIAEXAMPLE:SECRETKEY/?region_name=x", ORIGIN)
    assert "@" in str(e.value)
    assert "%2F" in str(e.value)
    assert "SECRETKEY" not in str(e.value)


def test_parse_uri_non_numeric_port_is_error():
    with pytest.raises(ConfigError, match="port"):
        parse_uri("aws://a:b@somehost:notaport/", ORIGIN)


def test_parse_uri_host_port_schema():
    fields, _ = parse_uri("aws://a:b@sts.example.com:8443/myschema", ORIGIN)
    assert fields["host"] == "sts.example.com"
    assert fields["port"] == 8443
    assert fields["schema"] == "myschema"


def test_parse_uri_not_a_uri_is_error():
    with pytest.raises(ConfigError):
        parse_uri("just-some-text", ORIGIN)


def test_parse_uri_dash_in_scheme_becomes_underscore():
    fields, _ = parse_uri("aws-x://a:b@/", ORIGIN)
    assert fields["conn_type"] == "aws_x"


# -- parse_json ----------------------------------------------------------------------------


def test_parse_json_extra_object():
    fields, extra = parse_json('{"conn_type": "aws", "login": "L", "password": "P", "extra": {"region_name": "r"}}', ORIGIN)
    assert fields == {"conn_type": "aws", "login": "L", "password": "P"}
    assert extra == {"region_name": "r"}


def test_parse_json_extra_as_json_string():
    text = json.dumps({"login": "L", "extra": json.dumps({"role_arn": "arn:aws:iam::1:role/x"})})
    _, extra = parse_json(text, ORIGIN)
    assert extra == {"role_arn": "arn:aws:iam::1:role/x"}


def test_parse_json_no_extra_is_empty():
    _, extra = parse_json('{"login": "L"}', ORIGIN)
    assert extra == {}


def test_parse_json_unknown_top_level_field_is_error():
    with pytest.raises(ConfigError, match="region_name"):
        parse_json('{"login": "L", "region_name": "eu-west-1"}', ORIGIN)


def test_parse_json_extra_of_wrong_type_is_error():
    with pytest.raises(ConfigError, match="extra"):
        parse_json('{"extra": [1, 2]}', ORIGIN)


def test_parse_json_field_of_wrong_type_is_error():
    with pytest.raises(ConfigError, match="login"):
        parse_json('{"login": 12}', ORIGIN)


def test_parse_json_invalid_names_position_not_secret():
    secret = "wJalrXUtnFEMIK7MDENGbPxRfiCYTOPSECRET"
    text = '{"login": "AKIA",\n "password": "' + secret + '"\n "extra": {}}'
    with pytest.raises(ConfigError) as e:
        parse_json(text, ORIGIN)
    message = str(e.value)
    assert "line 3" in message and "column" in message
    assert secret not in message


def test_parse_json_invalid_extra_string_does_not_show_secret():
    secret = "TOPSECRETVALUE123456"
    text = json.dumps({"extra": '{"aws_secret_access_key": "' + secret + '"'})
    with pytest.raises(ConfigError) as e:
        parse_json(text, ORIGIN)
    assert secret not in str(e.value)
    assert "line 1" in str(e.value)


# -- parse_toml / split_table ----------------------------------------------------------------


def test_parse_toml_returns_settings_and_tables():
    settings, tables = parse_toml('session_factory = "a.B"\n[connections.prod]\nlogin = "L"\n', "p")
    assert settings == {"session_factory": "a.B"}
    assert tables == {"prod": {"login": "L"}}


def test_parse_toml_invalid_is_config_error():
    with pytest.raises(ConfigError, match="invalid TOML"):
        parse_toml("[connections.prod\nlogin = ", "/x/config.toml")


def test_parse_toml_connections_not_table_is_error():
    with pytest.raises(ConfigError):
        parse_toml('connections = "x"\n', "p")


def test_split_table_extras_directly_in_table():
    fields, extra = split_table({"login": "L", "password": "P", "region_name": "r", "role_arn": "arn:x"}, ORIGIN)
    assert fields == {"login": "L", "password": "P"}
    assert extra == {"region_name": "r", "role_arn": "arn:x"}


def test_split_table_extra_subtable():
    fields, extra = split_table({"login": "L", "extra": {"region_name": "r"}, "verify": False}, ORIGIN)
    assert fields == {"login": "L"}
    assert extra == {"region_name": "r", "verify": False}


def test_split_table_same_key_in_both_is_error_naming_it():
    with pytest.raises(ConfigError, match="region_name"):
        split_table({"region_name": "a", "extra": {"region_name": "b"}}, ORIGIN)


def test_split_table_host_is_an_extra():
    fields, extra = split_table({"host": "https://sts.example.com"}, ORIGIN)
    assert "host" not in fields
    assert extra == {"host": "https://sts.example.com"}


def test_split_table_extra_not_table_is_error():
    with pytest.raises(ConfigError):
        split_table({"extra": "x"}, ORIGIN)


# -- parse(Definition) ---------------------------------------------------------------------


def test_parse_env_uri():
    raw = parse(Definition("prod", "env", "CREDPROC_CONN_PROD", "aws://AK:SE%2FC@/?region_name=r"))
    assert isinstance(raw, RawConnection)
    assert raw.conn_id == "prod"
    assert raw.fields["login"] == "AK" and raw.fields["password"] == "SE/C"
    assert raw.extra == {"region_name": "r"}
    assert "CREDPROC_CONN_PROD" in raw.origin


def test_parse_env_json_with_leading_blanks():
    raw = parse(Definition("prod", "env", "AIRFLOW_CONN_PROD", '  \n {"login": "AK", "extra": {"region_name": "r"}}'))
    assert raw.fields == {"login": "AK"}
    assert raw.extra == {"region_name": "r"}


def test_parse_env_empty_is_error():
    with pytest.raises(ConfigError, match="empty"):
        parse(Definition("prod", "env", "CREDPROC_CONN_PROD", "   "))


def test_parse_file_defines_conn():
    text = 'session_factory = "m.F"\n[connections."my.conn"]\nlogin = "AK"\nregion_name = "r"\n'
    raw = parse(Definition("my.conn", "file", "/x/config.toml", text))
    assert raw.fields == {"login": "AK"}
    assert raw.extra == {"region_name": "r"}
    assert raw.file_settings == {"session_factory": "m.F"}
    assert "/x/config.toml" in raw.origin


def test_parse_file_without_table_is_none():
    assert parse(Definition("other", "file", "/x/config.toml", '[connections.prod]\nlogin = "a"\n')) is None


def test_parse_none_kind_is_none():
    assert parse(Definition("prod", "none", "/x/config.toml", "")) is None


def test_parse_file_read_error_is_config_error():
    with pytest.raises(ConfigError, match="cannot read"):
        parse(Definition("prod", "file", "/x/config.toml", "", read_error="Permission denied"))
