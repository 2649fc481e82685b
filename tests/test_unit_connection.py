"""Unit tests of credproc.connection, in process: what each key of a connection means once
resolved (the initial key pair, region, endpoint, verify, role and method, role session
name, deprecated extras, unknown keys, secrets registered for masking)."""

import re
from pathlib import Path

import pytest

from credproc import log
from credproc.connection import METHODS, resolve, role_session_name
from credproc.errors import ConfigError
from credproc.forms import RawConnection

ROLE = "arn:aws:iam::123456789012:role/r"


def raw(extra=None, conn_id="prod", **fields):
    return RawConnection(conn_id, "test origin", fields, dict(extra or {}), {})


def warnings(capsys):
    return [line for line in capsys.readouterr().err.splitlines() if line.strip()]


# -- the initial key pair ------------------------------------------------------------------


def test_login_password_win_over_everything(tmp_path):
    ini = tmp_path / "boto.cfg"
    ini.write_text("[Credentials]\naws_access_key_id = FILEKEY\naws_secret_access_key = FILESECRET\n")
    conn = resolve(raw({
        "aws_access_key_id": "EXTRAKEY", "aws_secret_access_key": "EXTRASECRET",
        "session_kwargs": {"aws_access_key_id": "SKKEY", "aws_secret_access_key": "SKSECRET"},
        "s3_config_file": str(ini),
    }, login="LOGINKEY", password="LOGINSECRET"))
    assert (conn.aws_access_key_id, conn.aws_secret_access_key) == ("LOGINKEY", "LOGINSECRET")


def test_extra_keys_second(tmp_path):
    conn = resolve(raw({
        "aws_access_key_id": "EXTRAKEY", "aws_secret_access_key": "EXTRASECRET",
        "session_kwargs": {"aws_access_key_id": "SKKEY", "aws_secret_access_key": "SKSECRET"},
    }))
    assert (conn.aws_access_key_id, conn.aws_secret_access_key) == ("EXTRAKEY", "EXTRASECRET")


def test_session_kwargs_keys_third(tmp_path):
    ini = tmp_path / "boto.cfg"
    ini.write_text("[Credentials]\naws_access_key_id = FILEKEY\naws_secret_access_key = FILESECRET\n")
    conn = resolve(raw({
        "session_kwargs": {"aws_access_key_id": "SKKEY", "aws_secret_access_key": "SKSECRET"},
        "s3_config_file": str(ini),
    }))
    assert (conn.aws_access_key_id, conn.aws_secret_access_key) == ("SKKEY", "SKSECRET")


def test_s3_config_file_last(tmp_path):
    ini = tmp_path / "boto.cfg"
    ini.write_text("[Credentials]\naws_access_key_id = FILEKEY\naws_secret_access_key = FILESECRET\n")
    conn = resolve(raw({"s3_config_file": str(ini)}))
    assert (conn.aws_access_key_id, conn.aws_secret_access_key) == ("FILEKEY", "FILESECRET")


def test_half_login_pair_is_ignored_with_warning(capsys):
    conn = resolve(raw({"aws_access_key_id": "EXTRAKEY", "aws_secret_access_key": "EXTRASECRET"}, login="ONLYLOGIN"))
    assert conn.aws_access_key_id == "EXTRAKEY"
    assert any("one half" in w for w in warnings(capsys))


def test_no_keys_uses_default_chain():
    conn = resolve(raw({"region_name": "eu-west-1"}))
    assert conn.aws_access_key_id is None and conn.uses_default_chain


def test_session_token_from_extra_then_session_kwargs():
    conn = resolve(raw({"aws_session_token": "EXTRATOKEN", "session_kwargs": {"aws_session_token": "SKTOKEN"}},
                       login="K", password="S3CRETVALUE"))
    assert conn.aws_session_token == "EXTRATOKEN"
    conn = resolve(raw({"session_kwargs": {"aws_session_token": "SKTOKEN"}}, login="K", password="S3CRETVALUE"))
    assert conn.aws_session_token == "SKTOKEN"


# -- region, endpoint, verify ----------------------------------------------------------------


def test_region_from_extra_over_session_kwargs():
    conn = resolve(raw({"region_name": "eu-west-1", "session_kwargs": {"region_name": "us-east-2"}}))
    assert conn.region_name == "eu-west-1"


def test_region_from_session_kwargs():
    conn = resolve(raw({"session_kwargs": {"region_name": "us-east-2"}}))
    assert conn.region_name == "us-east-2"


def sts_endpoint_of(extra):
    return resolve(raw(extra)).sts_endpoint_url


def test_the_sts_endpoint_is_service_config_sts_endpoint_url():
    conn = resolve(raw({
        "service_config": {"sts": {"endpoint_url": "https://a.example"}, "s3": {"endpoint_url": "https://s3.x"}},
        "endpoint_url": "https://b.example", "host": "https://c.example",
    }))
    assert conn.sts_endpoint_url == "https://a.example"
    assert conn.endpoint_url == "https://b.example"  # Airflow's, for the other services


@pytest.mark.parametrize("extra", [
    {"endpoint_url": "https://b.example"},
    {"host": "https://c.example"},
    {"endpoint_url": "https://b.example", "host": "https://c.example"},
    {"endpoint_url": "https://b.example", "service_config": {"sts": {"endpoint_url": None}}},
    {"endpoint_url": "https://b.example", "service_config": {"sts": {}}},
    {"endpoint_url": "https://b.example", "service_config": {"s3": {"endpoint_url": "https://s3.x"}}},
    {"service_config": {"sts": {"endpoint_url": ""}}},
], ids=["endpoint_url", "host", "both", "explicit-null", "empty-sts", "s3-only", "blank"])
def test_endpoint_url_and_host_never_name_the_sts_endpoint(extra):
    """As Airflow's assume-role clients: no service_config.sts.endpoint_url (or null) leaves
    the endpoint to botocore (AWS_ENDPOINT_URL_STS, the profile, the region's)."""
    assert sts_endpoint_of(extra) is None


def test_endpoint_service_config_as_json_string():
    conn = resolve(raw({"service_config": '{"sts": {"endpoint_url": "https://a.example"}}',
                        "endpoint_url": "https://b.example"}))
    assert conn.sts_endpoint_url == "https://a.example"


def test_an_sts_endpoint_without_scheme_is_an_error():
    with pytest.raises(ConfigError, match=r"service_config\.sts\.endpoint_url 'sts\.example\.com' must be a URL"):
        sts_endpoint_of({"service_config": {"sts": {"endpoint_url": "sts.example.com"}}})


def test_an_endpoint_url_without_scheme_is_not_stss_business():
    assert sts_endpoint_of({"endpoint_url": "s3.example.com"}) is None


@pytest.mark.parametrize("extra, message", [
    ({"service_config": 3}, "service_config must be a table/object"),
    ({"service_config": "not json"}, "service_config must be a table/object"),
    ({"service_config": {"sts": "https://a.example"}}, "service_config.sts must be a table/object"),
    ({"service_config": {"sts": {"endpoint_url": 5}}}, "service_config.sts.endpoint_url must be a string or null"),
    ({"service_config": {"sts": {"endpoint_url": ["https://a.example"]}}},
     "service_config.sts.endpoint_url must be a string or null, not list"),
    ({"endpoint_url": 5}, "endpoint_url must be a string"),
    ({"host": {"x": 1}}, "host must be a string"),
])
def test_a_misshapen_endpoint_names_its_path(extra, message):
    with pytest.raises(ConfigError) as raised:
        resolve(raw(extra))
    assert message in str(raised.value) and "\n" not in str(raised.value)
    assert str(raised.value).startswith("connection 'prod' (test origin): ")


@pytest.mark.parametrize("key, url", [
    ("endpoint_url", "https://sts.eu-west-1.amazonaws.com"),
    ("host", "https://vpce-0abc.sts.us-east-1.vpce.amazonaws.com"),
    ("endpoint_url", "sts-fips.us-east-1.amazonaws.com"),
])
def test_an_sts_lookalike_endpoint_url_warns_that_sts_does_not_use_it(capsys, key, url):
    assert sts_endpoint_of({key: url}) is None
    lines = warnings(capsys)
    assert len(lines) == 1 and f"{key} {url!r} looks like an STS endpoint" in lines[0], lines
    assert "service_config.sts.endpoint_url" in lines[0]


@pytest.mark.parametrize("extra", [
    {"endpoint_url": "https://s3.eu-west-1.amazonaws.com"},
    {"endpoint_url": "http://127.0.0.1:9000"},
    {"endpoint_url": "https://sts.example", "service_config": {"sts": {"endpoint_url": "https://sts.example"}}},
], ids=["s3", "local", "sts-given-too"])
def test_other_endpoint_urls_do_not_warn(capsys, extra):
    resolve(raw(extra))
    assert warnings(capsys) == []


@pytest.mark.parametrize("value, expected", [
    ("true", True), ("True", True), ("False", False), ("false", False), (True, True), (False, False),
])
def test_verify_coercion(value, expected):
    assert resolve(raw({"verify": value})).verify is expected


def test_verify_absent_is_none():
    assert resolve(raw({})).verify is None


def test_verify_missing_path_is_error(tmp_path):
    with pytest.raises(ConfigError, match="verify"):
        resolve(raw({"verify": str(tmp_path / "no-such-ca.pem")}))


def test_verify_existing_path_kept(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    assert resolve(raw({"verify": str(ca)})).verify == str(ca)


# -- role ----------------------------------------------------------------------------------


def test_role_arn_and_default_method():
    conn = resolve(raw({"role_arn": ROLE}))
    assert conn.role_arn == ROLE
    assert conn.assume_role_method == "assume_role"


def test_no_role_arn_no_method():
    conn = resolve(raw({}))
    assert conn.role_arn is None and conn.assume_role_method is None


def test_role_arn_not_an_arn_is_error():
    with pytest.raises(ConfigError, match="role_arn"):
        resolve(raw({"role_arn": "my-role"}))


def test_unknown_method_names_the_three():
    with pytest.raises(ConfigError) as e:
        resolve(raw({"role_arn": ROLE, "assume_role_method": "assume_role_with_magic"}))
    for method in ("assume_role", "assume_role_with_saml", "assume_role_with_web_identity"):
        assert method in str(e.value)
    assert set(METHODS) == {"assume_role", "assume_role_with_saml", "assume_role_with_web_identity"}


@pytest.mark.parametrize("method", ["assume_role_with_saml", "assume_role_with_web_identity"])
def test_federated_methods_need_role_arn(method):
    with pytest.raises(ConfigError, match="role_arn"):
        resolve(raw({"assume_role_method": method}))


@pytest.mark.parametrize("method", ["assume_role_with_saml", "assume_role_with_web_identity"])
def test_federated_methods_with_role_arn(method):
    assert resolve(raw({"role_arn": ROLE, "assume_role_method": method})).assume_role_method == method


# -- RoleSessionName -----------------------------------------------------------------------

STS_NAME = re.compile(r"[\w+=,.@-]{2,64}", re.ASCII)


def test_role_session_name_simple():
    assert role_session_name("prod") == "credproc-prod"


@pytest.mark.parametrize("conn_id", ["a/b", "team prod:eu", "prod-é", "x" * 200, "a" * 55, "a" * 56, ""])
def test_role_session_name_is_valid_for_sts(conn_id):
    name = role_session_name(conn_id)
    assert name.startswith("credproc-")
    assert STS_NAME.fullmatch(name), name


def test_role_session_name_replaces_unsafe_chars():
    assert role_session_name("team/prod eu") == "credproc-team-prod-eu"


def test_role_session_name_boundary_not_truncated():
    conn_id = "a" * 55  # credproc- + 55 = 64
    assert role_session_name(conn_id) == "credproc-" + conn_id


def test_role_session_name_long_truncated_with_hash():
    conn_id = "b" * 100
    name = role_session_name(conn_id)
    assert len(name) == 64
    assert name.startswith("credproc-bbbb")
    assert name != ("credproc-" + conn_id)[:64]  # a hash suffix, not a bare cut


def test_role_session_name_long_ids_with_common_prefix_differ():
    prefix = "p" * 80
    assert role_session_name(prefix + "-one") != role_session_name(prefix + "-two")


def test_role_session_name_is_deterministic():
    assert role_session_name("z" * 90) == role_session_name("z" * 90)


def test_default_role_session_name_set():
    conn = resolve(raw({"role_arn": ROLE}, conn_id="team/prod"))
    assert conn.assume_role_kwargs["RoleSessionName"] == "credproc-team-prod"


def test_role_session_name_override():
    conn = resolve(raw({"role_arn": ROLE, "assume_role_kwargs": {"RoleSessionName": "mine"}}))
    assert conn.assume_role_kwargs["RoleSessionName"] == "mine"


def test_no_role_session_name_without_role():
    assert "RoleSessionName" not in resolve(raw({})).assume_role_kwargs


# -- deprecated extras ---------------------------------------------------------------------


def test_account_id_and_iam_role_build_role_arn(capsys):
    conn = resolve(raw({"aws_account_id": "123456789012", "aws_iam_role": "deployer"}))
    assert conn.role_arn == "arn:aws:iam::123456789012:role/deployer"
    assert conn.assume_role_method == "assume_role"
    lines = warnings(capsys)
    assert len(lines) == 1 and "deprecated" in lines[0]


def test_account_id_and_iam_role_ignored_with_role_arn(capsys):
    conn = resolve(raw({"role_arn": ROLE, "aws_account_id": "999999999999", "aws_iam_role": "x"}))
    assert conn.role_arn == ROLE
    assert len(warnings(capsys)) == 1


def test_account_id_without_iam_role_is_error():
    with pytest.raises(ConfigError):
        resolve(raw({"aws_account_id": "123456789012"}))


def test_external_id_moves_to_assume_role_kwargs(capsys):
    conn = resolve(raw({"role_arn": ROLE, "external_id": "ext-123"}))
    assert conn.assume_role_kwargs["ExternalId"] == "ext-123"
    lines = warnings(capsys)
    assert len(lines) == 1 and "external_id" in lines[0] and "deprecated" in lines[0]


def test_external_id_does_not_override_assume_role_kwargs(capsys):
    conn = resolve(raw({"role_arn": ROLE, "external_id": "old", "assume_role_kwargs": {"ExternalId": "new"}}))
    assert conn.assume_role_kwargs["ExternalId"] == "new"
    lines = warnings(capsys)
    assert len(lines) == 1 and "external_id" in lines[0]


def test_role_arn_in_assume_role_kwargs_gives_way_to_role_arn(capsys):
    other = "arn:aws:iam::222222222222:role/other"
    conn = resolve(raw({"role_arn": ROLE, "assume_role_kwargs": {"RoleArn": other, "DurationSeconds": 900}}))
    assert conn.role_arn == ROLE and conn.assume_role_kwargs == {"DurationSeconds": 900,
                                                                 "RoleSessionName": "credproc-prod"}
    lines = warnings(capsys)
    assert len(lines) == 1 and other in lines[0] and "ignored" in lines[0]


def test_the_same_role_arn_in_assume_role_kwargs_is_no_warning(capsys):
    conn = resolve(raw({"role_arn": ROLE, "assume_role_kwargs": {"RoleArn": ROLE}}))
    assert "RoleArn" not in conn.assume_role_kwargs
    assert warnings(capsys) == []


def _write(path, text):
    path.write_text(text)
    return str(path)


def test_s3_config_file_boto_profile_section(tmp_path, capsys):
    path = _write(tmp_path / "boto", "[Credentials]\naws_access_key_id = CREDKEY\naws_secret_access_key = CREDSECRET\n"
                  "[profile p]\naws_access_key_id = PKEY\naws_secret_access_key = PSECRET\n")
    conn = resolve(raw({"s3_config_file": path, "s3_config_format": "boto", "profile": "p"}))
    assert (conn.aws_access_key_id, conn.aws_secret_access_key) == ("PKEY", "PSECRET")
    lines = warnings(capsys)
    assert len(lines) == 1 and "s3_config_file" in lines[0] and "deprecated" in lines[0]


def test_s3_config_file_boto_falls_back_to_credentials(tmp_path, capsys):
    path = _write(tmp_path / "boto", "[Credentials]\naws_access_key_id = CREDKEY\naws_secret_access_key = CREDSECRET\n")
    conn = resolve(raw({"s3_config_file": path, "profile": "absent"}))  # boto is the default format
    assert (conn.aws_access_key_id, conn.aws_secret_access_key) == ("CREDKEY", "CREDSECRET")
    assert len(warnings(capsys)) == 1


def test_s3_config_file_aws_profile(tmp_path, capsys):
    path = _write(tmp_path / "aws", "[default]\naws_access_key_id = DKEY\naws_secret_access_key = DSECRET\n"
                  "[p]\naws_access_key_id = PKEY\naws_secret_access_key = PSECRET\n")
    conn = resolve(raw({"s3_config_file": path, "s3_config_format": "aws", "profile": "p"}))
    assert (conn.aws_access_key_id, conn.aws_secret_access_key) == ("PKEY", "PSECRET")
    assert len(warnings(capsys)) == 1


def test_s3_config_file_aws_default(tmp_path, capsys):
    path = _write(tmp_path / "aws", "[default]\naws_access_key_id = DKEY\naws_secret_access_key = DSECRET\n"
                  "[p]\naws_access_key_id = PKEY\naws_secret_access_key = PSECRET\n")
    conn = resolve(raw({"s3_config_file": path, "s3_config_format": "aws"}))
    assert (conn.aws_access_key_id, conn.aws_secret_access_key) == ("DKEY", "DSECRET")
    assert len(warnings(capsys)) == 1


def test_s3_config_file_s3cmd(tmp_path, capsys):
    path = _write(tmp_path / "s3cfg", "[default]\naccess_key = SKEY\nsecret_key = SSECRETVALUE\nhost_base = s3.amazonaws.com\n")
    conn = resolve(raw({"s3_config_file": path, "s3_config_format": "s3cmd"}))
    assert (conn.aws_access_key_id, conn.aws_secret_access_key) == ("SKEY", "SSECRETVALUE")
    assert len(warnings(capsys)) == 1


def test_s3_config_file_missing_section_is_error(tmp_path):
    path = _write(tmp_path / "aws", "[other]\naws_access_key_id = K\naws_secret_access_key = S\n")
    with pytest.raises(ConfigError, match=r"\[default\]"):
        resolve(raw({"s3_config_file": path, "s3_config_format": "aws"}))


def test_s3_config_file_unknown_format_is_error(tmp_path):
    path = _write(tmp_path / "aws", "[default]\naws_access_key_id = K\naws_secret_access_key = S\n")
    with pytest.raises(ConfigError, match="s3_config_format"):
        resolve(raw({"s3_config_file": path, "s3_config_format": "yaml"}))


def test_s3_config_file_missing_file_is_error(tmp_path):
    with pytest.raises(ConfigError, match="s3_config_file"):
        resolve(raw({"s3_config_file": str(tmp_path / "absent")}))


@pytest.mark.parametrize("content, needle", [
    (None, "larger than 1 MiB"),  # /dev/zero: read whole, it would never end
    (b"[default]\naws_secret_access_key = \xff\xfe\n", "not UTF-8 text"),
    (b"aws_access_key_id = K\n", "not an INI file"),
], ids=["endless", "not-utf8", "no-section-header"])
def test_s3_config_file_that_is_not_one_is_error(tmp_path, content, needle):
    path = "/dev/zero"
    if content is not None:
        path = str(tmp_path / "s3cfg")
        Path(path).write_bytes(content)
    with pytest.raises(ConfigError, match=needle):
        resolve(raw({"s3_config_file": path, "s3_config_format": "aws"}))


def test_s3_config_file_secret_registered(tmp_path):
    secret = "S3FILE-SECRET-7c1f0a"
    path = _write(tmp_path / "aws", f"[default]\naws_access_key_id = K\naws_secret_access_key = {secret}\n")
    resolve(raw({"s3_config_file": path, "s3_config_format": "aws"}))
    assert secret not in log.redact(f"x {secret} y")


def test_profile_without_s3_config_file_hints_profile_name(capsys):
    conn = resolve(raw({"profile": "prod"}))
    lines = warnings(capsys)
    assert len(lines) == 1 and "did you mean 'profile_name'" in lines[0]
    assert conn.profile_name is None


def test_profile_without_s3_config_file_warns_even_with_a_key_pair(capsys):
    # connection.md: "`profile` without `s3_config_file` warns that `profile_name` was probably
    # meant" - a key pair elsewhere must not make the deprecated key silently ignored.
    resolve(raw({"profile": "prod"}, login="AKIAEXAMPLE", password="SECRETEXAMPLE1"))
    lines = warnings(capsys)
    assert len(lines) == 1 and "did you mean 'profile_name'" in lines[0]


def test_s3_config_file_warns_even_when_a_key_pair_wins(tmp_path, capsys):
    # connection.md: the deprecated s3_config_file "warn"s; when login/password win it is
    # silently ignored today, which is the kind of silent ignoring the doc asks to do better on.
    path = _write(tmp_path / "boto", "[Credentials]\naws_access_key_id = CREDKEY\naws_secret_access_key = CREDSECRET\n")
    conn = resolve(raw({"s3_config_file": path}, login="AKIAEXAMPLE", password="SECRETEXAMPLE2"))
    assert conn.aws_access_key_id == "AKIAEXAMPLE"
    lines = warnings(capsys)
    assert len(lines) == 1 and "s3_config_file" in lines[0]


# -- unknown keys --------------------------------------------------------------------------


@pytest.mark.parametrize("key, hint", [("region", "region_name"), ("rolearn", "role_arn"),
                                       ("aws_sesion_token", "aws_session_token")])
def test_unknown_extra_key_names_nearest(key, hint, capsys):
    resolve(raw({key: "x"}))
    lines = warnings(capsys)
    assert len(lines) == 1
    assert repr(key) in lines[0] and f"did you mean {hint!r}" in lines[0]


def test_unknown_key_without_near_match(capsys):
    resolve(raw({"zzzzqqq": "x"}))
    lines = warnings(capsys)
    assert len(lines) == 1 and "'zzzzqqq'" in lines[0] and "did you mean" not in lines[0]


def test_known_keys_do_not_warn(capsys):
    resolve(raw({"region_name": "eu-west-1", "role_arn": ROLE, "endpoint_url": "https://x.example"}))
    assert warnings(capsys) == []


def test_custom_factory_no_unknown_key_warning(capsys):
    conn = resolve(raw({"my_factory_setting": "x", "region": "y"}), custom_factory=True)
    assert warnings(capsys) == []
    assert conn.extra_config["my_factory_setting"] == "x"


# -- session_kwargs and JSON strings ---------------------------------------------------------


def test_session_kwargs_unknown_key_is_error():
    with pytest.raises(ConfigError, match="credential_source"):
        resolve(raw({"session_kwargs": {"credential_source": "Ec2InstanceMetadata"}}))


def test_session_kwargs_profile_name():
    conn = resolve(raw({"session_kwargs": {"profile_name": "base"}}))
    assert conn.profile_name == "base"


def test_dict_extras_accept_json_strings():
    conn = resolve(raw({
        "role_arn": ROLE,
        "assume_role_kwargs": '{"DurationSeconds": 900}',
        "session_kwargs": '{"region_name": "eu-central-1"}',
        "config_kwargs": '{"connect_timeout": 3}',
    }))
    assert conn.assume_role_kwargs["DurationSeconds"] == 900
    assert conn.region_name == "eu-central-1"
    assert conn.config_kwargs == {"connect_timeout": 3}


def test_dict_extra_invalid_json_string_is_error():
    with pytest.raises(ConfigError, match="assume_role_kwargs"):
        resolve(raw({"role_arn": ROLE, "assume_role_kwargs": "DurationSeconds=900"}))


def test_empty_connection_is_empty():
    conn = resolve(raw({}))
    assert conn.is_empty


# -- secrets -------------------------------------------------------------------------------


def test_repr_has_no_secret():
    password = "RPR-PASSWORD-a8d77f"
    extra_secret = "RPR-EXTRA-SECRET-1b2c3d"
    token = "RPR-TOKEN-99e8f7"
    conn = resolve(raw({"aws_secret_access_key": extra_secret, "aws_access_key_id": "AK2",
                        "aws_session_token": token, "role_arn": ROLE}, login="AK", password=password))
    text = repr(conn)
    assert "prod" in text
    for secret in (password, extra_secret, token):
        assert secret not in text


@pytest.mark.parametrize("where", ["password", "extra", "token", "session_kwargs", "session_kwargs_token"])
def test_secrets_are_registered_for_redaction(where):
    secret = f"REG-SECRET-{where}-5f3e2d1c"
    if where == "password":
        r = raw({}, login="AK", password=secret)
    elif where == "extra":
        r = raw({"aws_access_key_id": "AK", "aws_secret_access_key": secret})
    elif where == "token":
        r = raw({"aws_session_token": secret}, login="AK", password="SOMEPASSWORD")
    elif where == "session_kwargs":
        r = raw({"session_kwargs": {"aws_access_key_id": "AK", "aws_secret_access_key": secret}})
    else:
        r = raw({"session_kwargs": {"aws_session_token": secret}})
    resolve(r)
    out = log.redact(f"before {secret} after")
    assert secret not in out
    assert out.startswith("before ") and out.endswith(" after")


# -- MFA ------------------------------------------------------------------------------------

SERIAL = "arn:aws:iam::123456789012:mfa/alice"


def test_mfa_serial_is_the_device():
    conn = resolve(raw({"role_arn": ROLE, "mfa_serial": f" {SERIAL} "}))
    assert conn.mfa_serial == SERIAL and conn.mfa_process is None and conn.mfa_session_duration == 43200


def test_a_serial_number_without_a_code_is_airflows_way_of_saying_mfa_serial():
    conn = resolve(raw({"role_arn": ROLE, "assume_role_kwargs": {"SerialNumber": SERIAL, "DurationSeconds": 900}}))
    assert conn.mfa_serial == SERIAL
    assert "SerialNumber" not in conn.assume_role_kwargs, "the role is assumed with the session: no code, no serial"
    assert conn.assume_role_kwargs["DurationSeconds"] == 900


def test_a_serial_number_with_a_code_is_passed_through_as_written():
    kwargs = {"SerialNumber": SERIAL, "TokenCode": "123456"}
    conn = resolve(raw({"role_arn": ROLE, "assume_role_kwargs": kwargs}))
    assert conn.mfa_serial is None
    assert conn.assume_role_kwargs["SerialNumber"] == SERIAL and conn.assume_role_kwargs["TokenCode"] == "123456"


def test_two_different_devices_are_a_config_error():
    with pytest.raises(ConfigError, match="mfa_serial .* and assume_role_kwargs.SerialNumber .* differ"):
        resolve(raw({"role_arn": ROLE, "mfa_serial": SERIAL,
                     "assume_role_kwargs": {"SerialNumber": SERIAL.replace("alice", "bob")}}))


@pytest.mark.parametrize("given, argv", [
    ("ykman oath accounts code -s 'aws alice'", ["ykman", "oath", "accounts", "code", "-s", "aws alice"]),
    (["op", "item", "get", "aws", "--otp"], ["op", "item", "get", "aws", "--otp"]),
])
def test_mfa_process_is_a_command_line_or_a_list(given, argv):
    assert resolve(raw({"mfa_serial": SERIAL, "mfa_process": given})).mfa_process == argv


@pytest.mark.parametrize("given", [42, ["ok", 3], {"cmd": "x"}, "unclosed 'quote"])
def test_a_malformed_mfa_process_is_a_config_error(given):
    with pytest.raises(ConfigError, match="mfa_process"):
        resolve(raw({"mfa_serial": SERIAL, "mfa_process": given}))


@pytest.mark.parametrize("given, ok", [(900, True), ("3600", True), (129600, True), (899, False), (129601, False),
                                       ("a day", False)])
def test_mfa_session_duration_is_within_what_sts_allows(given, ok):
    extra = {"mfa_serial": SERIAL, "mfa_session_duration": given}
    if ok:
        assert resolve(raw(extra)).mfa_session_duration == int(given)
    else:
        with pytest.raises(ConfigError, match="mfa_session_duration"):
            resolve(raw(extra))


def test_mfa_with_saml_is_a_config_error():
    with pytest.raises(ConfigError, match="mfa_serial works with assume_role"):
        resolve(raw({"role_arn": ROLE, "assume_role_method": "assume_role_with_saml", "mfa_serial": SERIAL}))


def test_mfa_settings_without_a_device_are_ignored_with_a_warning(capsys):
    conn = resolve(raw({"role_arn": ROLE, "mfa_process": "echo 123456", "mfa_session_duration": 900}))
    assert conn.mfa_serial is None and conn.mfa_process is None
    said = warnings(capsys)
    assert len(said) == 2 and all("ignored without mfa_serial" in line for line in said), said
