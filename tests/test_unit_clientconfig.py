"""Unit tests of credproc.clientconfig, in process: the botocore Config of the STS client, and
which retry settings win (config_kwargs, environment, AWS profile)."""

import pytest
from botocore import UNSIGNED

from credproc.clientconfig import DEFAULT_CONNECT_TIMEOUT, DEFAULT_READ_TIMEOUT, make_config, retry_settings
from credproc.connection import AwsConnection
from credproc.errors import ConfigError


def conn(**config_kwargs):
    return AwsConnection(conn_id="prod", origin="test", extra_config={}, config_kwargs=config_kwargs)


@pytest.fixture
def aws_config(tmp_path):
    """Write an AWS config file; returns an environ dict pointing at it."""

    def _write(text):
        path = tmp_path / "aws-config"
        path.write_text(text)
        return {"AWS_CONFIG_FILE": str(path)}

    return _write


def test_config_kwargs_retries_win_whole(aws_config):
    environ = aws_config("[profile p]\nretry_mode = adaptive\nmax_attempts = 9\n")
    environ.update({"AWS_RETRY_MODE": "standard", "AWS_MAX_ATTEMPTS": "7"})
    c = conn(retries={"max_attempts": 2})
    assert retry_settings(c, "p", environ) == {"max_attempts": 2}


def test_config_kwargs_retries_must_be_dict():
    with pytest.raises(ConfigError, match="retries"):
        retry_settings(conn(retries=3), None, {})


def test_environment_variables():
    environ = {"AWS_RETRY_MODE": "adaptive", "AWS_MAX_ATTEMPTS": "5"}
    assert retry_settings(conn(), None, environ) == {"mode": "adaptive", "total_max_attempts": 5}


def test_environment_over_profile(aws_config):
    environ = aws_config("[profile p]\nretry_mode = adaptive\nmax_attempts = 9\n")
    environ.update({"AWS_RETRY_MODE": "standard", "AWS_MAX_ATTEMPTS": "4"})
    assert retry_settings(conn(), "p", environ) == {"mode": "standard", "total_max_attempts": 4}


def test_profile_settings(aws_config):
    environ = aws_config("[default]\nretry_mode = legacy\n[profile p]\nretry_mode = standard\nmax_attempts = 7\n")
    assert retry_settings(conn(), "p", environ) == {"mode": "standard", "total_max_attempts": 7}


def test_default_profile_section(aws_config):
    environ = aws_config("[default]\nretry_mode = legacy\nmax_attempts = 2\n[profile p]\nretry_mode = standard\n")
    assert retry_settings(conn(), "default", environ) == {"mode": "legacy", "total_max_attempts": 2}


def test_per_field_precedence_mode_env_attempts_profile(aws_config):
    environ = aws_config("[profile p]\nretry_mode = adaptive\nmax_attempts = 9\n")
    environ["AWS_RETRY_MODE"] = "standard"
    assert retry_settings(conn(), "p", environ) == {"mode": "standard", "total_max_attempts": 9}


def test_per_field_precedence_attempts_env_mode_profile(aws_config):
    environ = aws_config("[profile p]\nretry_mode = adaptive\nmax_attempts = 9\n")
    environ["AWS_MAX_ATTEMPTS"] = "3"
    assert retry_settings(conn(), "p", environ) == {"mode": "adaptive", "total_max_attempts": 3}


STANDARD = {"mode": "standard"}  # credproc's default: 3 attempts, so a dead STS fails within a minute


def test_nothing_set_is_standard_mode(aws_config):
    environ = aws_config("[profile p]\nregion = eu-west-1\n")
    assert retry_settings(conn(), "p", environ) == STANDARD
    assert retry_settings(conn(), None, {}) == STANDARD


def test_attempts_without_mode_use_standard_mode():
    assert retry_settings(conn(), None, {"AWS_MAX_ATTEMPTS": "4"}) == {"mode": "standard", "total_max_attempts": 4}


def test_other_profile_is_not_read(aws_config):
    environ = aws_config("[profile other]\nretry_mode = adaptive\n")
    assert retry_settings(conn(), "p", environ) == STANDARD


def test_missing_config_file(tmp_path):
    assert retry_settings(conn(), "p", {"AWS_CONFIG_FILE": str(tmp_path / "absent")}) == STANDARD


def test_invalid_env_mode_names_variable():
    with pytest.raises(ConfigError, match="AWS_RETRY_MODE"):
        retry_settings(conn(), None, {"AWS_RETRY_MODE": "aggressive"})


@pytest.mark.parametrize("value", ["zero", "0", "-1", "2.5"])
def test_invalid_env_attempts_names_variable(value):
    with pytest.raises(ConfigError, match="AWS_MAX_ATTEMPTS"):
        retry_settings(conn(), None, {"AWS_MAX_ATTEMPTS": value})


def test_invalid_profile_mode_names_profile(aws_config):
    environ = aws_config("[profile p]\nretry_mode = turbo\n")
    with pytest.raises(ConfigError) as e:
        retry_settings(conn(), "p", environ)
    assert "retry_mode" in str(e.value) and "'p'" in str(e.value)


def test_invalid_profile_attempts_names_profile(aws_config):
    environ = aws_config("[profile p]\nmax_attempts = many\n")
    with pytest.raises(ConfigError) as e:
        retry_settings(conn(), "p", environ)
    assert "max_attempts" in str(e.value) and "'p'" in str(e.value)


def test_make_config_applies_retries():
    cfg = make_config(conn(), None, {"AWS_RETRY_MODE": "standard", "AWS_MAX_ATTEMPTS": "6"})
    assert cfg.retries == {"mode": "standard", "total_max_attempts": 6}


def test_make_config_unsigned():
    cfg = make_config(conn(signature_version="unsigned"), None, {})
    assert cfg.signature_version is UNSIGNED


def test_make_config_other_signature_version_kept():
    cfg = make_config(conn(signature_version="v4"), None, {})
    assert cfg.signature_version == "v4"


def test_make_config_default_timeouts():
    cfg = make_config(conn(), None, {})
    assert cfg.connect_timeout == DEFAULT_CONNECT_TIMEOUT == 5
    assert cfg.read_timeout == DEFAULT_READ_TIMEOUT == 10


def test_make_config_timeouts_overridden():
    cfg = make_config(conn(connect_timeout=2, read_timeout=30), None, {})
    assert (cfg.connect_timeout, cfg.read_timeout) == (2, 30)


def test_make_config_keeps_other_kwargs():
    cfg = make_config(conn(proxies={"https": "http://proxy:3128"}), None, {})
    assert cfg.proxies == {"https": "http://proxy:3128"}


def test_make_config_invalid_key_is_config_error():
    with pytest.raises(ConfigError, match="config_kwargs"):
        make_config(conn(no_such_option=1), None, {})


def test_make_config_does_not_mutate_connection():
    c = conn(signature_version="unsigned")
    make_config(c, None, {"AWS_MAX_ATTEMPTS": "3"})
    assert c.config_kwargs == {"signature_version": "unsigned"}
