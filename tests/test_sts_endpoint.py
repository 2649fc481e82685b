"""Where credproc sends its STS calls (issue 16, item 1): as Airflow's assume-role and
web-identity clients, to ``service_config.sts.endpoint_url`` when the connection names it,
else where botocore resolves (``AWS_ENDPOINT_URL_STS``, ``AWS_ENDPOINT_URL``, the profile's
``services`` section and ``endpoint_url``, the region's endpoint). The extra ``endpoint_url``
and the deprecated ``host`` are the other services' and never reach STS: here they point at
a port where nothing listens, so a call sent there would fail the run.

Every run is the installed executable against the local STS; ``show`` and ``check`` say
where the endpoint came from.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import ROLE_ARN, extra_uri, ok, one_error, sts_at, sts_endpoint

pytestmark = pytest.mark.integration

CONN = "ep"
VARIABLE = f"CREDPROC_CONN_{CONN.upper()}"
# Nothing listens there: an STS call sent to it fails at once.
NOWHERE = "http://127.0.0.1:9"
# What an Airflow user puts in endpoint_url: the S3-compatible store the hooks talk to.
S3_ELSEWHERE = {"endpoint_url": NOWHERE, "host": NOWHERE}
ENDPOINT_VARIABLES = {"AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
                      "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"}


def assumed_at(sts, result) -> None:
    """The run printed a role's credentials, fetched by one AssumeRole at ``sts``."""
    ok(result, temporary=True)
    assert sts.count("AssumeRole") == 1, sts.requests


def show(run, env) -> dict:
    return json.loads(ok(run(["show", CONN, "--json"], env), text=True))


def test_endpoint_url_and_host_at_a_closed_port_are_not_used_for_sts(sts, env, run):
    """The STS endpoint is service_config's; endpoint_url and host (closed port) are never
    called, and the entry depends on no endpoint variable: AWS_ENDPOINT_URL_STS, pointed at
    the closed port too, changes nothing."""
    env[VARIABLE] = extra_uri({"role_arn": ROLE_ARN, **S3_ELSEWHERE}, endpoint=sts.url)
    env["AWS_ENDPOINT_URL_STS"] = NOWHERE
    result = run(["--conn", CONN], env)
    assumed_at(sts, result)
    assert result.stderr == ""  # legal fields, if unused for STS: nothing to warn about
    info = show(run, env)
    assert info["sts_endpoint"] == {"url": sts.url, "from": "service_config.sts.endpoint_url"}
    assert info["endpoint_url"] == NOWHERE and info["host"] == NOWHERE
    assert not ENDPOINT_VARIABLES & set(info["cache_key_variables"]), info["cache_key_variables"]
    text = ok(run(["show", CONN], env), text=True)
    assert f"endpoint_url        {NOWHERE} (not used for STS: Airflow uses it for other services)\n" in text
    assert f"host                {NOWHERE} (not used for STS: the deprecated spelling of endpoint_url" in text


def test_without_service_config_aws_endpoint_url_sts_decides(sts, env, run):
    """endpoint_url at the closed port, no service_config: botocore's resolution sends the
    call to AWS_ENDPOINT_URL_STS, and the entry is keyed on the endpoint variables."""
    env[VARIABLE] = extra_uri({"role_arn": ROLE_ARN, "region_name": "us-east-1", **S3_ELSEWHERE})
    env["AWS_ENDPOINT_URL_STS"] = sts.url
    env["AWS_ENDPOINT_URL"] = NOWHERE  # the global one loses to the service's own
    assumed_at(sts, run(["--conn", CONN], env))
    info = show(run, env)
    assert info["sts_endpoint"] == {"url": sts.url, "from": "botocore: AWS_ENDPOINT_URL_STS"}
    assert ENDPOINT_VARIABLES <= set(info["cache_key_variables"]), info["cache_key_variables"]
    assert f"sts endpoint        {sts.url} (botocore: AWS_ENDPOINT_URL_STS)\n" in ok(run(["show", CONN], env),
                                                                                    text=True)


def test_an_explicit_null_means_botocores_resolution(sts, env, run):
    """service_config.sts.endpoint_url = null, as Airflow reads it: botocore's default
    resolution, here AWS_ENDPOINT_URL_STS; endpoint_url is still not used."""
    env[VARIABLE] = extra_uri({"role_arn": ROLE_ARN, "region_name": "us-east-1", **sts_endpoint(None),
                               "endpoint_url": NOWHERE})
    env["AWS_ENDPOINT_URL_STS"] = sts.url
    assumed_at(sts, run(["--conn", CONN], env))
    assert show(run, env)["sts_endpoint"]["from"] == "botocore: AWS_ENDPOINT_URL_STS"


def test_aws_endpoint_url_is_botocores_next_choice(sts, env, run):
    env[VARIABLE] = extra_uri({"role_arn": ROLE_ARN, "region_name": "us-east-1", "endpoint_url": NOWHERE})
    env["AWS_ENDPOINT_URL"] = sts.url
    assumed_at(sts, run(["--conn", CONN], env))
    assert show(run, env)["sts_endpoint"] == {"url": sts.url, "from": "botocore: AWS_ENDPOINT_URL"}


@pytest.mark.parametrize("where", ["endpoint_url", "services"])
def test_the_profiles_endpoint_settings_are_botocores_too(sts, env, run, where):
    """The AWS profile in use (here AWS_PROFILE; the connection's profile_name the same way)
    names the STS endpoint: its own endpoint_url, or the sts entry of its services section."""
    if where == "endpoint_url":
        profile = f"[profile work]\nendpoint_url = {sts.url}\n"
        origin = "endpoint_url of AWS profile 'work'"
    else:
        profile = f"[profile work]\nservices = local\n\n[services local]\nsts =\n  endpoint_url = {sts.url}\n"
        origin = "sts.endpoint_url of services section 'local' of AWS profile 'work'"
    Path(env["AWS_CONFIG_FILE"]).write_text(profile)
    env["AWS_PROFILE"] = "work"
    env[VARIABLE] = extra_uri({"role_arn": ROLE_ARN, "region_name": "us-east-1", "endpoint_url": NOWHERE})
    assumed_at(sts, run(["--conn", CONN], env))
    endpoint = show(run, env)["sts_endpoint"]
    assert endpoint["url"] == sts.url and endpoint["from"].startswith(f"botocore: {origin} in "), endpoint


def test_ignore_configured_endpoint_urls_leaves_the_regions_endpoint(env, run):
    """AWS_IGNORE_CONFIGURED_ENDPOINT_URLS: botocore skips AWS_ENDPOINT_URL_STS and the
    profile, and show says the region's own endpoint (no STS call is made: it is AWS's)."""
    env[VARIABLE] = extra_uri({"role_arn": ROLE_ARN, "region_name": "eu-west-1", "endpoint_url": NOWHERE})
    env["AWS_ENDPOINT_URL_STS"] = NOWHERE
    env["AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"] = "true"
    endpoint = show(run, env)["sts_endpoint"]
    assert endpoint["url"] == "https://sts.eu-west-1.amazonaws.com", endpoint
    assert endpoint["from"].startswith("botocore: the default endpoint of region eu-west-1 (configured endpoint "
                                       "URLs are ignored"), endpoint
    del env["AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"], env["AWS_ENDPOINT_URL_STS"]
    assert show(run, env)["sts_endpoint"] == {"url": "https://sts.eu-west-1.amazonaws.com",
                                              "from": "botocore: the default endpoint of region eu-west-1"}


def test_web_identity_uses_the_same_endpoint(sts, env, run, tmp_path):
    """The unsigned AssumeRoleWithWebIdentity client resolves its endpoint the same way."""
    token = tmp_path / "token"
    token.write_text("a-token-from-a-file-0123456789")
    env[VARIABLE] = extra_uri({"role_arn": ROLE_ARN, "region_name": "us-east-1", "endpoint_url": NOWHERE,
                               "assume_role_method": "assume_role_with_web_identity",
                               "assume_role_with_web_identity_token_file": str(token)}, login="")
    env["AWS_ENDPOINT_URL_STS"] = sts.url
    ok(run(["--conn", CONN], env), temporary=True)
    assert sts.count("AssumeRoleWithWebIdentity") == 1


def test_check_says_which_sts_endpoint_it_asked(sts, env, run):
    env[VARIABLE] = extra_uri({"role_arn": ROLE_ARN, "region_name": "us-east-1", "endpoint_url": NOWHERE})
    env["AWS_ENDPOINT_URL_STS"] = sts.url
    text = ok(run(["check", CONN], env), text=True)
    assert f"sts endpoint   {sts.url}\n" in text, text
    info = json.loads(ok(run(["check", CONN, "--json"], env), text=True))
    assert info["sts_endpoint"] == sts.url and info["source"] == "cache"
    assert sts.count("GetCallerIdentity") == 2 and sts.count("AssumeRole") == 1


def test_an_sts_endpoint_in_endpoint_url_warns_once_and_botocore_decides(sts, env, run):
    """A definition written for the old credproc, its STS endpoint in endpoint_url: the run
    warns where the STS endpoint belongs, and goes where botocore says."""
    env[VARIABLE] = extra_uri({"role_arn": ROLE_ARN, "region_name": "us-east-1",
                               "endpoint_url": "https://sts.us-east-1.amazonaws.com"})
    env["AWS_ENDPOINT_URL_STS"] = sts.url
    result = run(["--conn", CONN], env)
    assumed_at(sts, result)
    [warning] = result.stderr.splitlines()
    assert "endpoint_url 'https://sts.us-east-1.amazonaws.com' looks like an STS endpoint" in warning
    assert "set service_config.sts.endpoint_url for STS" in warning


@pytest.mark.parametrize("extra, message", [
    ({"service_config": {"sts": {"endpoint_url": 443}}}, "service_config.sts.endpoint_url must be a string or null"),
    ({"service_config": {"sts": "http://127.0.0.1:9"}}, "service_config.sts must be a table/object"),
    ({"service_config": ["sts"]}, "service_config must be a table/object"),
    ({"service_config": {"sts": {"endpoint_url": "127.0.0.1:9"}}},
     "service_config.sts.endpoint_url '127.0.0.1:9' must be a URL"),
    ({**sts_at(NOWHERE), "endpoint_url": 5}, "endpoint_url must be a string, not int"),
])
def test_a_misshapen_service_config_is_one_line_naming_its_path(env, run, extra, message):
    env[VARIABLE] = extra_uri({"role_arn": ROLE_ARN, **extra})
    line = one_error(run(["--conn", CONN], env), 2, message)
    assert line.startswith(f"credproc: error: connection '{CONN}' (environment variable {VARIABLE}): ")
