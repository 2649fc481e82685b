"""Unit tests of the Airflow connections file source, in process: the shapes Airflow's
LocalFilesystemBackend reads and `airflow connections export` writes (JSON, YAML, .env),
what each becomes (credproc.airflow_files, then forms), its errors, its place in the lookup
order, and the cache identity it adds."""

from __future__ import annotations

import json
import sys

import pytest

from credproc import airflow_files, cache, sources
from credproc.errors import ConfigError
from credproc.resolution import Resolution
from helpers import ACCESS_KEY, ROLE_ARN, SECRET_KEY

EXTRA = {"region_name": "eu-west-1", "role_arn": ROLE_ARN}
URI = "aws://AKIAIOSFODNN7EXAMPLE:wJalrXUtnFEMI%2FK7MDENG%2FbPxRfiCYzEXAMPLEKEY@/?region_name=eu-west-1"


def environ(tmp_path, name: str, text: str, **more) -> dict:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return {"CREDPROC_CONFIG": str(tmp_path / "none.toml"), "CREDPROC_CACHE_DIR": str(tmp_path / "cache"),
            sources.AIRFLOW_FILE_VARIABLE: str(path), **more}


def raw(tmp_path, name: str, text: str, conn_id: str = "prod", **more):
    return Resolution(conn_id, environ=environ(tmp_path, name, text, **more)).raw()


def exported(conn: dict) -> dict:
    """One connection as `airflow connections export` writes it (every field, extra as text)."""
    return {"conn_type": "aws", "description": None, "login": ACCESS_KEY, "password": SECRET_KEY, "host": None,
            "port": None, "schema": None, "extra": json.dumps(conn)}


# -- what each shape means -------------------------------------------------------------------


@pytest.mark.parametrize("value", [
    exported(EXTRA),                                                   # export's JSON: extra as text
    {"conn_type": "aws", "login": ACCESS_KEY, "password": SECRET_KEY, "extra": EXTRA},  # extra an object
    {"login": ACCESS_KEY, "password": SECRET_KEY, "extra_dejson": EXTRA},
    {"conn_id": "prod", "login": ACCESS_KEY, "password": SECRET_KEY, "extra": EXTRA},
    [{"login": ACCESS_KEY, "password": SECRET_KEY, "extra": EXTRA}],   # a list of one
], ids=["export", "extra-object", "extra_dejson", "matching-conn_id", "list-of-one"])
def test_a_json_object_gives_the_fields_and_the_extra(tmp_path, value):
    found = raw(tmp_path, "connections.json", json.dumps({"other": URI, "prod": value}))
    assert found.fields["login"] == ACCESS_KEY and found.fields["password"] == SECRET_KEY
    assert found.extra == EXTRA
    assert found.origin == f"Airflow connections file {tmp_path / 'connections.json'} [prod]"
    assert found.file_settings == {}


@pytest.mark.parametrize("value", [URI, {"uri": URI}, {"uri": URI, "description": "d", "conn_id": "prod"}, [URI]],
                         ids=["string", "uri-key", "uri-and-description", "list"])
def test_a_uri_is_airflows_uri_form(tmp_path, value):
    found = raw(tmp_path, "c.json", json.dumps({"prod": value}))
    assert (found.fields["login"], found.fields["password"]) == (ACCESS_KEY, SECRET_KEY)
    assert found.extra == {"region_name": "eu-west-1"}


def test_a_string_in_json_form_is_read_too(tmp_path):
    """What `export --file-format env --serialization-format json` writes (Airflow's own
    backend would take it for a URI)."""
    found = raw(tmp_path, "c.env", "prod=" + json.dumps(exported(EXTRA)) + "\n")
    assert found.extra == EXTRA and found.fields["login"] == ACCESS_KEY


def test_the_yaml_of_export_is_read(tmp_path):
    yaml = pytest.importorskip("yaml")
    text = yaml.dump({"prod": exported(EXTRA), "static": {"conn_type": "aws", "login": "AKIAOTHER"}})
    found = raw(tmp_path, "connections.yaml", text)
    assert found.extra == EXTRA and found.fields["password"] == SECRET_KEY
    other = raw(tmp_path, "connections.yml", text, conn_id="static")
    assert other.fields["login"] == "AKIAOTHER" and other.extra == {}


def test_the_env_lines(tmp_path):
    text = f"# exported\n\n  # indented comment\nprod={URI}\nnext=aws://\r\n"
    found = raw(tmp_path, "c.env", text)
    assert found.fields["login"] == ACCESS_KEY
    assert found.origin == f"Airflow connections file {tmp_path / 'c.env'} line 4"
    assert raw(tmp_path, "c.env", text, conn_id="next").fields == {"conn_type": "aws"}


def test_an_env_id_is_taken_exactly_as_airflow_does(tmp_path):
    env = environ(tmp_path, "c.env", f"prod ={URI}\n")
    assert Resolution("prod", environ=env).raw() is None  # the id is "prod ", spaces and all
    assert Resolution("prod ", environ=env).raw().fields["login"] == ACCESS_KEY


def test_an_empty_list_defines_nothing(tmp_path):
    env = environ(tmp_path, "c.json", json.dumps({"prod": []}))
    assert Resolution("prod", environ=env).raw() is None
    assert airflow_files.ids(sources.read_config(env).airflow) == []


def test_the_ids_in_file_order_and_only_string_keys(tmp_path):
    yaml = pytest.importorskip("yaml")
    env = environ(tmp_path, "c.yaml", yaml.dump({"b": URI, "a": URI, 3: URI}, sort_keys=False))
    assert airflow_files.ids(sources.read_config(env).airflow) == ["b", "a"]


# -- errors: one line, the file and the line or key, never a value ------------------------------


@pytest.mark.parametrize("name, text, message", [
    ("c.json", "", "the file is empty"),
    ("c.json", '{"prod": "aws://",', "invalid JSON: Expecting property name enclosed in double quotes (line 1"),
    ("c.json", "[]", "expected an object {conn_id: connection}, found a list"),
    ("c.yaml", f"prod: {URI}\n  bad: [", "invalid YAML: "),
    ("c.yaml", "- a\n- b\n", "expected an object {conn_id: connection}, found a list"),
    ("c.txt", "{}", "the name must end in .json, .yaml, .yml or .env"),
    ("c.env", f"prod {SECRET_KEY}\n", "line 1: no '='"),
    ("c.env", f"={URI}\n", "line 1: nothing before '='"),
    ("c.env", "# x\nprod=\n", "line 2: nothing after '='"),
], ids=["empty", "json-syntax", "json-list", "yaml-syntax", "yaml-list", "extension", "env-no-equals",
        "env-no-id", "env-no-value"])
def test_a_broken_file_is_one_line_naming_it(tmp_path, name, text, message):
    with pytest.raises(ConfigError) as raised:
        raw(tmp_path, name, text)
    error = str(raised.value)
    assert error.startswith(f"Airflow connections file {tmp_path / name}")
    assert message in error and "\n" not in error, error
    assert SECRET_KEY not in error and "wJalrXUtn" not in error


@pytest.mark.parametrize("value, message", [
    ({"login": "x", "loginn": "y"}, "unknown connection field(s) ['loginn']"),
    ({"conn_id": "other", "login": "x"}, "its conn_id 'other' is not its key 'prod'"),
    ({"uri": URI, "login": "x"}, "uri cannot be mixed with login"),
    ({"uri": 5}, "uri must be a string, not a number"),
    ({"extra": "{}", "extra_dejson": {}}, "extra and extra_dejson cannot both be given"),
    ({"extra_dejson": "[]"}, "extra_dejson must be an object, not a string"),
    ({"extra": "not json"}, "extra: invalid JSON"),
    ({"extra": 5}, '"extra" must be an object or a JSON string, not int'),
    ({"login": 5}, "login must be a string, not int"),
    ([URI, URI], "2 connections under one id; Airflow takes exactly one"),
    (5, "a connection is a URI or an object of its fields, not a number"),
    (None, "a connection is a URI or an object of its fields, not null"),
    ("   ", "is empty"),
    ("sts.amazonaws.com", "not a connection URI"),
], ids=["unknown-field", "conn_id", "uri-mixed", "uri-type", "both-extras", "extra_dejson-type", "extra-text",
        "extra-type", "login-type", "two", "number", "null", "blank", "not-a-uri"])
def test_a_bad_entry_names_its_key(tmp_path, value, message):
    with pytest.raises(ConfigError) as raised:
        raw(tmp_path, "c.json", json.dumps({"prod": value, "fine": URI}))
    error = str(raised.value)
    assert f"Airflow connections file {tmp_path / 'c.json'} [prod]" in error
    assert message in error and "\n" not in error, error
    # the neighbour still works: a bad entry breaks itself only
    assert raw(tmp_path, "c.json", json.dumps({"prod": value, "fine": URI}), conn_id="fine").fields["login"]


def test_an_env_id_given_twice_is_an_error_for_that_id_only(tmp_path):
    text = f"prod={URI}\nfine={URI}\nprod=aws://\n"
    with pytest.raises(ConfigError, match=r"c\.env line 1: 'prod' is defined twice \(lines 1 and 3\)"):
        raw(tmp_path, "c.env", text)
    assert raw(tmp_path, "c.env", text, conn_id="fine").fields["login"] == ACCESS_KEY


def test_yaml_without_pyyaml_says_to_install_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "yaml", None)  # "import yaml" raises ImportError
    with pytest.raises(ConfigError) as raised:
        raw(tmp_path, "c.yaml", f"prod: {URI}\n")
    assert str(raised.value) == (f"Airflow connections file {tmp_path / 'c.yaml'} "
                                 "is YAML: install credproc[yaml] (PyYAML) to read it")


def test_a_yaml_error_never_quotes_the_line(tmp_path):
    pytest.importorskip("yaml")
    with pytest.raises(ConfigError) as raised:
        raw(tmp_path, "c.yaml", f'prod:\n  password: "{SECRET_KEY}\n  login: [x\n')
    assert "line " in str(raised.value) and SECRET_KEY not in str(raised.value) and "wJalr" not in str(raised.value)


def test_yaml_aliases_cannot_blow_up_a_connection(tmp_path):
    pytest.importorskip("yaml")
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 7)]
    text = "\n".join(lines) + "\nprod:\n  login: x\n  extra_dejson: {region_name: us-east-1, bomb: *a6}\n"
    assert len(text) < 1000  # ten million strings once expanded
    with pytest.raises(ConfigError, match="nested too deeply or too large"):
        raw(tmp_path, "c.yaml", text)


def test_a_deeply_nested_entry_is_refused(tmp_path):
    deep = {"login": "x", "extra": {"region_name": "us-east-1", "n": json.loads("[" * 80 + "]" * 80)}}
    with pytest.raises(ConfigError, match="nested too deeply or too large"):
        raw(tmp_path, "c.json", json.dumps({"prod": deep}))


def test_the_size_bound_and_a_missing_file(tmp_path):
    big = tmp_path / "big.json"
    big.write_text(json.dumps({"prod": URI, "pad": "x" * sources.MAX_CONFIG_BYTES}))
    env = {"CREDPROC_CONFIG": str(tmp_path / "none.toml"), sources.AIRFLOW_FILE_VARIABLE: str(big)}
    with pytest.raises(ConfigError, match=r"cannot read Airflow connections file .*big\.json .*larger than 1 MiB"):
        Resolution("prod", environ=env).raw()
    env[sources.AIRFLOW_FILE_VARIABLE] = str(tmp_path / "gone.json")
    with pytest.raises(ConfigError, match=r"gone\.json \(\$CREDPROC_AIRFLOW_CONNECTIONS_FILE\): no such file"):
        Resolution("prod", environ=env).raw()


# -- the lookup order, and what names the cache --------------------------------------------------


def test_the_config_file_and_the_variables_come_first(tmp_path):
    env = environ(tmp_path, "c.json", json.dumps({"prod": exported({"role_arn": ROLE_ARN + "-file"})}))
    (tmp_path / "none.toml").write_text('[connections.prod]\nrole_arn = "arn:aws:iam::1:role/toml"\n')
    assert Resolution("prod", environ=env).raw().extra["role_arn"] == "arn:aws:iam::1:role/toml"
    env["AIRFLOW_CONN_PROD"] = "aws://?role_arn=arn%3Aaws%3Aiam%3A%3A1%3Arole%2Fvariable"
    assert Resolution("prod", environ=env).raw().extra["role_arn"] == "arn:aws:iam::1:role/variable"
    (tmp_path / "none.toml").unlink()
    del env["AIRFLOW_CONN_PROD"]
    assert Resolution("prod", environ=env).raw().extra["role_arn"] == ROLE_ARN + "-file"


def test_not_defined_names_the_airflow_file_too(tmp_path):
    env = environ(tmp_path, "c.json", json.dumps({"other": URI}))
    resolution = Resolution("prod", environ=env)
    assert not resolution.undefined  # a file is named: only parsing it can tell
    with pytest.raises(ConfigError) as raised:
        resolution.connection()
    assert str(raised.value).endswith(f"no config file {tmp_path / 'none.toml'}, nor 'prod' in the Airflow "
                                      f"connections file {tmp_path / 'c.json'}")


def test_the_bucket_follows_the_airflow_files_text(tmp_path):
    text = json.dumps({"prod": URI, "other": "aws://"})
    env = environ(tmp_path, "c.json", text)
    key = Resolution("prod", environ=env).bucket.key
    assert Resolution("prod", environ=env).bucket.key == key  # the same text: the same bucket
    (tmp_path / "c.json").write_text(text.replace("aws://\"", "aws://?x=1\""))
    assert Resolution("prod", environ=env).bucket.key != key  # any edit, as for the TOML file
    without = {k: v for k, v in env.items() if k != sources.AIRFLOW_FILE_VARIABLE}
    definition = sources.locate("prod", without)
    assert definition.kind == "none" and definition.config.airflow is None
    # without the variable the key is what it always was (existing entries stay valid)
    assert cache.identity(definition, None, without) == cache._hash(
        [b"credproc-identity-2", "prod", "none", definition.where, "", "", ""])


def test_a_variable_defined_connection_does_not_read_the_file(tmp_path):
    env = environ(tmp_path, "c.json", "{ broken")
    env["CREDPROC_CONN_PROD"] = URI
    definition = sources.locate("prod", env)
    assert definition.kind == "env" and definition.config is None
    assert Resolution("prod", environ=env).raw().fields["login"] == ACCESS_KEY
