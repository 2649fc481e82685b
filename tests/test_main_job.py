"""The main job end to end: ``credproc --conn ID``, the installed executable as SDKs run it,
against the local STS.

Every form a connection arrives in, what each field and extra means at the STS (seen by the
counting proxy: the action, its parameters and the signing key), the empty connection and
boto3's chain, recursion guards, retries, and the one-line errors for bad input.
"""

from __future__ import annotations

import json
import re
import time
import urllib.parse
from datetime import datetime, timezone

import pytest

from helpers import ACCESS_KEY, ACCOUNT, CREDPROC, ROLE_ARN, SECRET_KEY, conn_uri, extra_uri, header, ok, one_error, \
    signing_key, sts_at, sts_toml, toml_string, write_toml

pytestmark = pytest.mark.integration

ENCODED_SECRET = urllib.parse.quote(SECRET_KEY, safe="")
SECRETS = (SECRET_KEY, ENCODED_SECRET)


# -- helpers ---------------------------------------------------------------------------------


def requests_for(sts, action: str = "AssumeRole") -> list[dict]:
    return [r for r in sts.requests if r["action"] == action]


def only_request(sts, action: str = "AssumeRole") -> dict:
    found = requests_for(sts, action)
    assert len(found) == 1, [r["action"] for r in sts.requests]
    return found[0]


def warnings(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("credproc: warning:")]


def sigv4_signature(request: dict, url: str, access_key: str, secret_key: str, region: str = "us-east-1") -> str:
    """Recompute the SigV4 signature of a recorded query-protocol request with a given key pair."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import ReadOnlyCredentials

    signed = re.search(r"SignedHeaders=([^,\s]+)", header(request, "Authorization")).group(1).split(";")
    body = urllib.parse.urlencode(list(request["params"].items()), doseq=True)
    headers = {name: header(request, name) for name in signed if name != "host"}
    aws_request = AWSRequest(method="POST", url=url + "/", data=body.encode(), headers=headers)
    aws_request.context["timestamp"] = header(request, "X-Amz-Date")
    auth = SigV4Auth(ReadOnlyCredentials(access_key, secret_key, None), "sts", region)
    canonical = auth.canonical_request(aws_request)
    return auth.signature(auth.string_to_sign(aws_request, canonical), aws_request)


def recorded_signature(request: dict) -> str:
    return re.search(r"Signature=([0-9a-f]+)", header(request, "Authorization")).group(1)


def write_aws_config(env, text: str) -> None:
    with open(env["AWS_CONFIG_FILE"], "w", encoding="utf-8") as f:
        f.write(text)


def assumed(out: dict) -> None:
    """The output is a role session's: temporary keys, a token and an expiry, not the signer's."""
    assert out["AccessKeyId"] != ACCESS_KEY
    assert out["SecretAccessKey"] != SECRET_KEY
    assert out["SessionToken"]
    assert out["Expiration"].endswith("Z")
    expires = datetime.strptime(out["Expiration"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    assert expires > datetime.now(timezone.utc)


def role(name: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:role/{name}"


# -- forms a connection arrives in ---------------------------------------------------------


def test_credproc_uri(sts, env, run):
    env["CREDPROC_CONN_PROD"] = conn_uri(sts.url, role_arn=ROLE_ARN)
    out = ok(run(["--conn", "prod"], env))
    assumed(out)
    assert out.get("AccountId") == ACCOUNT
    assert only_request(sts)["params"]["RoleArn"] == ROLE_ARN


@pytest.mark.parametrize("extra_as", ["object", "json-string"])
def test_credproc_json(sts, env, run, extra_as):
    extra = {**sts_at(sts.url), "role_arn": ROLE_ARN}
    env["CREDPROC_CONN_PROD"] = json.dumps({
        "conn_type": "aws", "login": ACCESS_KEY, "password": SECRET_KEY,
        "extra": extra if extra_as == "object" else json.dumps(extra),
    })
    out = ok(run(["--conn", "prod"], env))
    assumed(out)
    request = only_request(sts)
    assert request["params"]["RoleArn"] == ROLE_ARN
    assert signing_key(request) == ACCESS_KEY


def test_airflow_uri_unchanged(sts, env, run):
    # As Airflow's own Connection.get_uri() writes it: everything percent-encoded, and an extra
    # with a nested value (service_config) as JSON in __extra__.
    query = urllib.parse.urlencode({"__extra__": json.dumps({"role_arn": ROLE_ARN, **sts_at(sts.url)})})
    env["AIRFLOW_CONN_AWS_PROD"] = f"aws://{ACCESS_KEY}:{ENCODED_SECRET}@/?{query}"
    out = ok(run(["--conn", "aws_prod"], env))
    assumed(out)
    request = only_request(sts)
    assert request["params"]["RoleArn"] == ROLE_ARN
    assert signing_key(request) == ACCESS_KEY
    assert recorded_signature(request) == sigv4_signature(request, sts.url, ACCESS_KEY, SECRET_KEY)


def test_airflow_json(sts, env, run):
    env["AIRFLOW_CONN_AWS_PROD"] = json.dumps({
        "conn_type": "aws", "login": ACCESS_KEY, "password": SECRET_KEY,
        "extra": {**sts_at(sts.url), "role_arn": ROLE_ARN},
    })
    assumed(ok(run(["--conn", "aws_prod"], env)))
    assert only_request(sts)["params"]["RoleArn"] == ROLE_ARN


def test_toml_keys_in_table(sts, env, run):
    write_toml(env, f"""
[connections.filed]
login = {toml_string(ACCESS_KEY)}
password = {toml_string(SECRET_KEY)}
role_arn = {toml_string(ROLE_ARN)}
{sts_toml(sts.url)}
assume_role_kwargs = {{ DurationSeconds = 1800 }}
""")
    out = ok(run(["--conn", "filed"], env))
    assumed(out)
    request = only_request(sts)
    assert request["params"]["RoleArn"] == ROLE_ARN
    assert request["params"]["DurationSeconds"] == "1800"
    assert signing_key(request) == ACCESS_KEY


def test_toml_extra_sub_table(sts, env, run):
    write_toml(env, f"""
[connections.filed]
login = {toml_string(ACCESS_KEY)}
password = {toml_string(SECRET_KEY)}

[connections.filed.extra]
role_arn = {toml_string(ROLE_ARN)}
{sts_toml(sts.url)}
""")
    assumed(ok(run(["--conn", "filed"], env)))
    request = only_request(sts)
    assert request["params"]["RoleArn"] == ROLE_ARN
    assert signing_key(request) == ACCESS_KEY


def test_id_with_dash_dot_and_slash(sts, env, run):
    env["CREDPROC_CONN_MY_PROD_EU_1"] = conn_uri(sts.url, role_arn=ROLE_ARN)
    assumed(ok(run(["--conn", "my-prod.eu/1"], env)))
    request = only_request(sts)
    assert request["params"]["RoleSessionName"] == "credproc-my-prod.eu-1"


def test_airflow_variable_is_upper_cased_only(sts, env, run):
    # Airflow looks up AIRFLOW_CONN_ + id.upper(), dashes and dots kept.
    env["AIRFLOW_CONN_MY-PROD.EU"] = conn_uri(sts.url, role_arn=ROLE_ARN)
    assumed(ok(run(["--conn", "my-prod.eu"], env)))
    assert only_request(sts)["params"]["RoleSessionName"] == "credproc-my-prod.eu"


def test_precedence_credproc_then_airflow_then_file(sts, env, run):
    write_toml(env, f"""
[connections.prec]
login = {toml_string(ACCESS_KEY)}
password = {toml_string(SECRET_KEY)}
role_arn = {toml_string(role("from-file"))}
{sts_toml(sts.url)}
""")
    env["AIRFLOW_CONN_PREC"] = conn_uri(sts.url, role_arn=role("from-airflow"))
    env["CREDPROC_CONN_PREC"] = conn_uri(sts.url, role_arn=role("from-credproc"))

    ok(run(["--conn", "prec"], env))
    assert [r["params"]["RoleArn"] for r in requests_for(sts)] == [role("from-credproc")]

    del env["CREDPROC_CONN_PREC"]
    ok(run(["--conn", "prec"], env))
    assert [r["params"]["RoleArn"] for r in requests_for(sts)][-1] == role("from-airflow")

    del env["AIRFLOW_CONN_PREC"]
    ok(run(["--conn", "prec"], env))
    assert [r["params"]["RoleArn"] for r in requests_for(sts)] == [
        role("from-credproc"), role("from-airflow"), role("from-file")]


def test_airflow_json_with_every_field(sts, env, run):
    # As Airflow's Connection.as_json() writes it: empty fields present, extra a JSON string.
    env["AIRFLOW_CONN_AWS_PROD"] = json.dumps({
        "conn_type": "aws", "description": "prod deploy role", "host": None, "login": ACCESS_KEY,
        "password": SECRET_KEY, "schema": None, "port": None,
        "extra": json.dumps({**sts_at(sts.url), "role_arn": ROLE_ARN}),
    })
    result = run(["--conn", "aws_prod"], env)
    assumed(ok(result))
    assert result.stderr == ""
    assert only_request(sts)["params"]["RoleArn"] == ROLE_ARN


def test_toml_dotted_id_in_quotes(sts, env, run):
    write_toml(env, f"""
[connections."team.prod"]
login = {toml_string(ACCESS_KEY)}
password = {toml_string(SECRET_KEY)}
role_arn = {toml_string(ROLE_ARN)}
{sts_toml(sts.url)}
""")
    assumed(ok(run(["--conn", "team.prod"], env)))
    assert only_request(sts)["params"]["RoleSessionName"] == "credproc-team.prod"


def test_uri_aws_alone_is_the_empty_connection(sts, env, run):
    env["CREDPROC_CONN_CHAIN"] = "aws://"
    env["AWS_ACCESS_KEY_ID"] = "AKIAENVIRONMENT00002"
    env["AWS_SECRET_ACCESS_KEY"] = "environment/secret/key/EXAMPLE00000000002"
    out = ok(run(["--conn", "chain"], env))
    assert out == {"Version": 1, "AccessKeyId": "AKIAENVIRONMENT00002",
                   "SecretAccessKey": "environment/secret/key/EXAMPLE00000000002"}


# -- the initial credentials only sign -------------------------------------------------------


def test_initial_keys_only_sign_the_call(sts, env, run):
    env["CREDPROC_CONN_PROD"] = conn_uri(sts.url, role_arn=ROLE_ARN)
    out = ok(run(["--conn", "prod"], env))
    assert out["AccessKeyId"] != ACCESS_KEY
    assert SECRET_KEY not in run(["--conn", "prod"], env).stdout
    request = only_request(sts)
    assert f"Credential={ACCESS_KEY}/" in header(request, "Authorization")
    assert "/us-east-1/sts/aws4_request" in header(request, "Authorization")


def test_percent_encoded_secret_signs_correctly(sts, env, run):
    assert "%2F" in conn_uri(sts.url, role_arn=ROLE_ARN)
    env["CREDPROC_CONN_PROD"] = conn_uri(sts.url, role_arn=ROLE_ARN)
    ok(run(["--conn", "prod"], env))
    request = only_request(sts)
    # moto checks no signature: recompute it. Signed with the decoded secret, '/' and all.
    assert recorded_signature(request) == sigv4_signature(request, sts.url, ACCESS_KEY, SECRET_KEY)
    assert recorded_signature(request) != sigv4_signature(request, sts.url, ACCESS_KEY, ENCODED_SECRET)


def test_initial_session_token_signs_with_the_keys(sts, env, run):
    token = "IQoJb3JpZ2luX2VjEXAMPLEINITIALTOKEN/+=="
    env["CREDPROC_CONN_PROD"] = conn_uri(sts.url, role_arn=ROLE_ARN, aws_session_token=token)
    out = ok(run(["--conn", "prod"], env))
    assumed(out)
    assert out["SessionToken"] != token
    request = only_request(sts)
    assert header(request, "X-Amz-Security-Token") == token
    assert signing_key(request) == ACCESS_KEY


def test_sts_unreachable_fails_fast_in_one_line(sts, env, run):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    env["CREDPROC_CONN_PROD"] = conn_uri(dead, role_arn=ROLE_ARN)
    env["AWS_MAX_ATTEMPTS"] = "1"
    started = time.monotonic()
    one_error(run(["--conn", "prod"], env, timeout=60), 1, "'prod'", "127.0.0.1")
    assert time.monotonic() - started < 20


# -- static keys -----------------------------------------------------------------------------


def test_static_keys_printed_as_given(sts, env, run):
    env["CREDPROC_CONN_STATIC"] = conn_uri(sts.url)
    result = run(["--conn", "static"], env)
    out = ok(result)
    assert out == {"Version": 1, "AccessKeyId": ACCESS_KEY, "SecretAccessKey": SECRET_KEY}
    assert result.stderr == ""
    assert sts.requests == []


def test_uri_secret_plus_sign_is_kept(sts, env, run):
    # Login and password are percent-decoded with plain unquote: a raw '+' stays a '+'.
    secret = "abc+def/ghi+jkl/EXAMPLEKEY000000000000000"
    env["CREDPROC_CONN_STATIC"] = f"aws://{ACCESS_KEY}:{secret.replace('/', '%2F')}@/?region_name=us-east-1"
    out = ok(run(["--conn", "static"], env))
    assert out["SecretAccessKey"] == secret


def test_static_keys_with_session_token(sts, env, run):
    token = "FwoGZXIvYXdzEXAMPLESESSIONTOKEN+/=="
    env["CREDPROC_CONN_STATIC"] = conn_uri(sts.url, aws_session_token=token)
    out = ok(run(["--conn", "static"], env))
    assert out["AccessKeyId"] == ACCESS_KEY and out["SecretAccessKey"] == SECRET_KEY
    assert out["SessionToken"] == token
    assert "Expiration" not in out
    assert sts.requests == []


# -- what reaches the STS --------------------------------------------------------------------


def test_default_role_session_name(sts, env, run):
    env["CREDPROC_CONN_TEAM_PROD_EAST"] = conn_uri(sts.url, role_arn=ROLE_ARN)
    ok(run(["--conn", "team/prod:east"], env))
    name = only_request(sts)["params"]["RoleSessionName"]
    assert name == "credproc-team-prod-east"
    assert re.fullmatch(r"[\w+=,.@-]{2,64}", name)


def test_long_id_role_session_name_fits(sts, env, run):
    conn_id = "x" * 80
    env["CREDPROC_CONN_" + conn_id.upper()] = conn_uri(sts.url, role_arn=ROLE_ARN)
    ok(run(["--conn", conn_id], env))
    name = only_request(sts)["params"]["RoleSessionName"]
    assert name.startswith("credproc-xxx") and 2 <= len(name) <= 64


def test_role_session_name_override(sts, env, run):
    env["CREDPROC_CONN_PROD"] = conn_uri(
        sts.url, role_arn=ROLE_ARN, assume_role_kwargs=json.dumps({"RoleSessionName": "alice-laptop"}))
    out = ok(run(["--conn", "prod"], env))
    assert only_request(sts)["params"]["RoleSessionName"] == "alice-laptop"
    assert out["AccessKeyId"] != ACCESS_KEY


def test_duration_seconds_via_extra_json(sts, env, run):
    env["CREDPROC_CONN_PROD"] = extra_uri({"role_arn": ROLE_ARN,
                                          "assume_role_kwargs": {"DurationSeconds": 900}}, endpoint=sts.url)
    result = run(["--conn", "prod"], env)
    out = ok(result)
    assert result.stderr == ""
    assert only_request(sts)["params"]["DurationSeconds"] == "900"
    expires = datetime.strptime(out["Expiration"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    left = (expires - datetime.now(timezone.utc)).total_seconds()
    assert 800 < left <= 900


def test_deprecated_account_and_role_build_the_arn(sts, env, run):
    env["CREDPROC_CONN_LEGACY"] = conn_uri(sts.url, aws_account_id="210987654321", aws_iam_role="legacy-role")
    result = run(["--conn", "legacy"], env)
    assumed(ok(result))
    assert only_request(sts)["params"]["RoleArn"] == "arn:aws:iam::210987654321:role/legacy-role"
    about = [w for w in warnings(result) if "aws_account_id" in w]
    assert len(about) == 1, result.stderr
    assert "deprecated" in about[0] and "role_arn" in about[0]


def test_deprecated_external_id(sts, env, run):
    env["CREDPROC_CONN_PARTNER"] = conn_uri(sts.url, role_arn=ROLE_ARN, external_id="ext-1234")
    result = run(["--conn", "partner"], env)
    assumed(ok(result))
    assert only_request(sts)["params"]["ExternalId"] == "ext-1234"
    about = [w for w in warnings(result) if "external_id" in w]
    assert len(about) == 1, result.stderr
    assert "deprecated" in about[0] and "ExternalId" in about[0]


def test_external_id_in_assume_role_kwargs_wins(sts, env, run):
    env["CREDPROC_CONN_PARTNER"] = extra_uri({
        "role_arn": ROLE_ARN, "external_id": "old", "assume_role_kwargs": {"ExternalId": "new"}}, endpoint=sts.url)
    ok(run(["--conn", "partner"], env))
    assert only_request(sts)["params"]["ExternalId"] == "new"


def test_s3_config_file_supplies_the_signing_key(sts, env, run, tmp_path):
    key, secret = "AKIAS3CONFIGFILE0001", "s3cfg/secret+value/EXAMPLEKEY0000000000000"
    path = tmp_path / "s3.cfg"
    path.write_text(f"[default]\naws_access_key_id = {key}\naws_secret_access_key = {secret}\n")
    env["CREDPROC_CONN_OLD"] = conn_uri(sts.url, login="", role_arn=ROLE_ARN,
                                        s3_config_file=str(path), s3_config_format="aws")
    result = run(["--conn", "old"], env)
    out = ok(result)
    assumed(out)
    request = only_request(sts)
    assert signing_key(request) == key
    assert recorded_signature(request) == sigv4_signature(request, sts.url, key, secret)
    about = [w for w in warnings(result) if "s3_config_file" in w]
    assert len(about) == 1 and "deprecated" in about[0], result.stderr
    assert secret not in result.stderr


@pytest.mark.parametrize("keys", ["with-key-pair", "without-key-pair"])
def test_deprecated_profile_extra_suggests_profile_name(sts, env, run, keys):
    if keys == "with-key-pair":
        env["CREDPROC_CONN_PROD"] = conn_uri(sts.url, role_arn=ROLE_ARN, profile="ops")
    else:  # the signing keys come from boto3's chain (the environment)
        env["CREDPROC_CONN_PROD"] = conn_uri(sts.url, login="", role_arn=ROLE_ARN, profile="ops")
        env["AWS_ACCESS_KEY_ID"] = "AKIAENVIRONMENT00003"
        env["AWS_SECRET_ACCESS_KEY"] = "environment/secret/key/EXAMPLE00000000003"
    result = run(["--conn", "prod"], env)
    assumed(ok(result))
    hints = [w for w in warnings(result) if "'profile'" in w]
    assert len(hints) == 1, result.stderr
    assert "profile_name" in hints[0]


def test_unknown_key_region_suggests_region_name(sts, env, run):
    env["CREDPROC_CONN_PROD"] = conn_uri(sts.url, role_arn=ROLE_ARN, region="eu-west-1")
    result = run(["--conn", "prod"], env)
    assumed(ok(result))
    hints = [w for w in warnings(result) if "'region'" in w]
    assert len(hints) == 1, result.stderr
    assert "did you mean 'region_name'" in hints[0]


# -- the empty connection: boto3's default chain ------------------------------------------


def test_aws_default_undefined_uses_environment_keys(sts, env, run):
    env["AWS_ACCESS_KEY_ID"] = "AKIAENVIRONMENT00001"
    env["AWS_SECRET_ACCESS_KEY"] = "environment/secret/key/EXAMPLE00000000000"
    result = run([], env)
    out = ok(result)
    assert out == {"Version": 1, "AccessKeyId": "AKIAENVIRONMENT00001",
                   "SecretAccessKey": "environment/secret/key/EXAMPLE00000000000"}
    assert ok(run(["--conn", "aws_default"], env)) == out
    assert sts.requests == []


def test_aws_default_with_nothing_fails_in_one_line(sts, env, run):
    result = run(["--conn", "aws_default"], env, timeout=30)
    line = one_error(result, 1, "aws_default")
    assert "credentials" in line.lower()


def test_irsa_web_identity_through_the_default_chain(sts, env, run, tmp_path):
    token = tmp_path / "token"
    token.write_text("eyJhbGciOiJSUzI1NiJ9.any-token.signature")
    env.update({
        "AWS_ROLE_ARN": ROLE_ARN,
        "AWS_WEB_IDENTITY_TOKEN_FILE": str(token),
        "AWS_ENDPOINT_URL_STS": sts.url,
        "AWS_REGION": "us-east-1",
    })
    first = run(["--conn", "aws_default"], env)
    out = ok(first)
    assert out["Expiration"].endswith("Z") and out["SessionToken"]
    assert sts.count("AssumeRoleWithWebIdentity") == 1
    second = run(["--conn", "aws_default"], env)
    assert ok(second) == out
    assert sts.count("AssumeRoleWithWebIdentity") == 1


# -- recursion --------------------------------------------------------------------------------


def assert_loop_refused(result, elapsed: float, conn_id: str) -> None:
    line = one_error(result, 2, repr(conn_id))
    assert "loop" in line or "leads back to itself" in line, line
    assert elapsed < 10, f"took {elapsed:.1f}s"


def timed(run, args, env):
    started = time.monotonic()
    result = run(args, env, timeout=60)
    return result, time.monotonic() - started


def test_recursion_profile_runs_credproc_for_the_empty_connection(sts, env, run):
    write_aws_config(env, f"[profile loop]\ncredential_process = {CREDPROC} --conn aws_default\n")
    env["AWS_PROFILE"] = "loop"
    result, elapsed = timed(run, ["--conn", "aws_default"], env)
    assert_loop_refused(result, elapsed, "aws_default")


def test_recursion_through_source_profile(sts, env, run):
    write_aws_config(env, f"""
[profile outer]
role_arn = {ROLE_ARN}
source_profile = loop
region = us-east-1

[profile loop]
credential_process = {CREDPROC} --conn aws_default
""")
    env["AWS_PROFILE"] = "outer"
    result, elapsed = timed(run, ["--conn", "aws_default"], env)
    assert_loop_refused(result, elapsed, "aws_default")
    assert sts.requests == []


def test_recursion_role_only_connection(sts, env, run):
    env["CREDPROC_CONN_PROD"] = conn_uri(sts.url, login="", role_arn=ROLE_ARN)
    write_aws_config(env, f"[profile loop]\ncredential_process = {CREDPROC} --conn prod\n")
    env["AWS_PROFILE"] = "loop"
    result, elapsed = timed(run, ["--conn", "prod"], env)
    assert_loop_refused(result, elapsed, "prod")
    assert sts.requests == []


def test_recursion_through_a_wrapper_script_is_still_stopped(sts, env, run, tmp_path):
    # A wrapper hides credproc from the profile check; the chain variable still stops it.
    wrapper = tmp_path / "wrapped-credproc"
    wrapper.write_text(f"#!/bin/sh\nexec {CREDPROC} \"$@\"\n")
    wrapper.chmod(0o755)
    write_aws_config(env, f"[profile loop]\ncredential_process = {wrapper} --conn aws_default\n")
    env["AWS_PROFILE"] = "loop"
    result, elapsed = timed(run, ["--conn", "aws_default"], env)
    assert elapsed < 15, f"took {elapsed:.1f}s"
    assert "leads back to itself" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert len([line for line in result.stderr.splitlines() if line.startswith("credproc: error:")]) == 1
    # A loop is a configuration error (exit 2) however it is detected.
    assert result.returncode == 2, result.stderr


def test_recursion_via_aws_default_profile(sts, env, run):
    # botocore also takes the profile from AWS_DEFAULT_PROFILE.
    write_aws_config(env, f"[profile loop]\ncredential_process = {CREDPROC} --conn aws_default\n")
    env["AWS_DEFAULT_PROFILE"] = "loop"
    result, elapsed = timed(run, ["--conn", "aws_default"], env)
    assert_loop_refused(result, elapsed, "aws_default")


def test_recursion_via_the_connections_profile_name(sts, env, run):
    env["CREDPROC_CONN_PROD"] = conn_uri(sts.url, login="", role_arn=ROLE_ARN, profile_name="loop")
    write_aws_config(env, f"[profile loop]\ncredential_process = {CREDPROC} --conn=prod --profile loop\n")
    result, elapsed = timed(run, ["--conn", "prod"], env)
    assert_loop_refused(result, elapsed, "prod")
    assert sts.requests == []


def test_no_false_loop_when_environment_keys_come_first(sts, env, run):
    # boto3's chain takes AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY before any profile's
    # credential_process: the profile that runs credproc is never reached, so there is no loop.
    write_aws_config(env, f"[profile cached]\ncredential_process = {CREDPROC} --conn aws_default --profile cached\n")
    env.update(AWS_PROFILE="cached", AWS_ACCESS_KEY_ID="AKIAENVIRONMENT00004",
               AWS_SECRET_ACCESS_KEY="environment/secret/key/EXAMPLE00000000004")
    out = ok(run(["--conn", "aws_default", "--profile", "cached"], env))
    assert out["AccessKeyId"] == "AKIAENVIRONMENT00004"


def test_no_false_loop_with_irsa_and_a_caching_profile(sts, env, run, tmp_path):
    # EKS: IRSA's variables plus AWS_PROFILE=cached, whose credential_process is credproc for
    # the empty connection (so that SDKs share one cached web-identity session). boto3's chain
    # reaches web identity (from the environment) before the profile's credential_process.
    token = tmp_path / "token"
    token.write_text("eyJhbGciOiJSUzI1NiJ9.any-token.signature")
    write_aws_config(env, f"[profile cached]\ncredential_process = {CREDPROC} --conn aws_default --profile cached\n")
    env.update(AWS_PROFILE="cached", AWS_ROLE_ARN=ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE=str(token),
               AWS_ENDPOINT_URL_STS=sts.url, AWS_REGION="us-east-1")
    out = ok(run(["--conn", "aws_default", "--profile", "cached"], env))
    assert out["Expiration"].endswith("Z")
    assert sts.count("AssumeRoleWithWebIdentity") == 1


def test_legit_chaining_of_different_connections(sts, env, run):
    base_key, base_secret = "AKIABASECONNECTION01", "base/secret/EXAMPLEKEY0000000000000000"
    env["CREDPROC_CONN_BASE"] = conn_uri(sts.url, login=base_key, password=base_secret)
    env["CREDPROC_CONN_PROD"] = conn_uri(sts.url, login="", role_arn=ROLE_ARN, profile_name="base")
    write_aws_config(env, f"[profile base]\ncredential_process = {CREDPROC} --conn base\n")
    out = ok(run(["--conn", "prod"], env))
    assumed(out)
    request = only_request(sts)
    assert signing_key(request) == base_key
    assert recorded_signature(request) == sigv4_signature(request, sts.url, base_key, base_secret)


def test_legit_chaining_with_aws_profile_set(sts, env, run):
    # The SDK runs `credproc --conn prod` for profile "prod" (AWS_PROFILE=prod); prod's keys
    # come from profile "base", which runs credproc for another connection: no loop.
    env["CREDPROC_CONN_BASE"] = conn_uri(sts.url)
    env["CREDPROC_CONN_PROD"] = conn_uri(sts.url, login="", role_arn=ROLE_ARN, profile_name="base")
    write_aws_config(env, f"""
[profile base]
credential_process = {CREDPROC} --conn base

[profile prod]
credential_process = {CREDPROC} --conn prod --profile prod
""")
    env["AWS_PROFILE"] = "prod"
    assumed(ok(run(["--conn", "prod", "--profile", "prod"], env)))
    assert signing_key(only_request(sts)) == ACCESS_KEY


# -- retries ----------------------------------------------------------------------------------


def test_throttling_retried_within_aws_max_attempts(sts, env, run):
    env["CREDPROC_CONN_PROD"] = conn_uri(sts.url, role_arn=ROLE_ARN)
    env["AWS_MAX_ATTEMPTS"] = "3"
    sts.faults.extend([(400, "Throttling")] * 2)
    assumed(ok(run(["--conn", "prod"], env)))
    assert sts.count("AssumeRole") == 3


def test_throttling_beyond_aws_max_attempts_fails(sts, env, run):
    env["CREDPROC_CONN_PROD"] = conn_uri(sts.url, role_arn=ROLE_ARN)
    env["AWS_MAX_ATTEMPTS"] = "2"
    sts.faults.extend([(400, "Throttling")] * 2)
    one_error(run(["--conn", "prod"], env), 1, "Throttling", "'prod'")
    assert sts.count("AssumeRole") == 2


@pytest.mark.parametrize("max_attempts, code, requests", [(3, 0, 3), (2, 1, 2)])
def test_retry_settings_from_the_profile_option(sts, env, run, max_attempts, code, requests):
    env["CREDPROC_CONN_PROD"] = conn_uri(sts.url, role_arn=ROLE_ARN)
    write_aws_config(env, f"""
[profile p]
credential_process = {CREDPROC} --conn prod --profile p
retry_mode = standard
max_attempts = {max_attempts}
""")
    sts.faults.extend([(400, "Throttling")] * 2)
    result = run(["--conn", "prod", "--profile", "p"], env)
    if code == 0:
        assumed(ok(result))
    else:
        one_error(result, code, "Throttling")
    assert sts.count("AssumeRole") == requests


def test_retry_settings_from_aws_profile(sts, env, run):
    env["CREDPROC_CONN_PROD"] = conn_uri(sts.url, role_arn=ROLE_ARN)
    write_aws_config(env, "[profile p]\nretry_mode = standard\nmax_attempts = 1\n")
    env["AWS_PROFILE"] = "p"
    sts.faults.append((400, "Throttling"))
    one_error(run(["--conn", "prod"], env), 1, "Throttling")
    assert sts.count("AssumeRole") == 1


def test_config_kwargs_retries_keep_botocores_meaning(sts, env, run):
    env["CREDPROC_CONN_PROD"] = extra_uri({
        "role_arn": ROLE_ARN, "config_kwargs": {"retries": {"max_attempts": 1, "mode": "standard"}}}, endpoint=sts.url)
    env["AWS_MAX_ATTEMPTS"] = "5"  # config_kwargs.retries wins over the environment
    sts.faults.extend([(400, "Throttling")] * 3)
    one_error(run(["--conn", "prod"], env), 1, "Throttling")
    assert sts.count("AssumeRole") == 2


def test_server_errors_are_retried(sts, env, run):
    env["CREDPROC_CONN_PROD"] = conn_uri(sts.url, role_arn=ROLE_ARN)
    env["AWS_MAX_ATTEMPTS"] = "3"
    sts.faults.append((503, "ServiceUnavailable"))
    assumed(ok(run(["--conn", "prod"], env)))
    assert sts.count("AssumeRole") == 2


# -- bad input: one line, exit 2 -----------------------------------------------------------


def test_undefined_connection(sts, env, run):
    line = one_error(run(["--conn", "x"], env), 2, "'x'", "CREDPROC_CONN_X", "AIRFLOW_CONN_X",
                     env["CREDPROC_CONFIG"])
    assert "not defined" in line


def test_undefined_connection_with_a_config_file(sts, env, run):
    write_toml(env, "[connections.other]\nlogin = 'a'\n")
    one_error(run(["--conn", "x"], env), 2, "CREDPROC_CONN_X", "AIRFLOW_CONN_X",
              env["CREDPROC_CONFIG"], "[connections.x]")


def test_uri_without_at(sts, env, run):
    env["CREDPROC_CONN_BAD"] = f"aws://{ACCESS_KEY}:{ENCODED_SECRET}/?region_name=us-east-1"
    one_error(run(["--conn", "bad"], env), 2, "CREDPROC_CONN_BAD", "'@'")


def test_invalid_json(sts, env, run):
    env["CREDPROC_CONN_BAD"] = '{"login": "%s", "password": "%s", ' % (ACCESS_KEY, SECRET_KEY)
    one_error(run(["--conn", "bad"], env), 2, "CREDPROC_CONN_BAD", "invalid JSON")


@pytest.mark.parametrize("value, where", [
    (json.dumps({"login": ACCESS_KEY, "password": SECRET_KEY, "extra": json.dumps([1, 2])}), "extra"),
    (json.dumps({"login": ACCESS_KEY, "password": SECRET_KEY, "extra": 42}), "extra"),
    ("aws://?__extra__=" + urllib.parse.quote(json.dumps(["role_arn"])), "__extra__"),
], ids=["extra-string-list", "extra-number", "uri-extra-list"])
def test_json_not_an_object(sts, env, run, value, where):
    env["CREDPROC_CONN_BAD"] = value
    line = one_error(run(["--conn", "bad"], env), 2, "CREDPROC_CONN_BAD", where)
    assert "object" in line


def test_invalid_toml_names_the_file(sts, env, run):
    write_toml(env, f"[connections.prod]\nlogin = {toml_string(ACCESS_KEY)}\npassword = {toml_string(SECRET_KEY)}\n"
                    "role_arn = arn:aws:iam::123456789012:role/x\n")
    one_error(run(["--conn", "prod"], env), 2, env["CREDPROC_CONFIG"], "TOML")


def test_same_key_in_table_and_extra(sts, env, run):
    write_toml(env, f"""
[connections.prod]
login = {toml_string(ACCESS_KEY)}
password = {toml_string(SECRET_KEY)}
role_arn = {toml_string(ROLE_ARN)}

[connections.prod.extra]
role_arn = {toml_string(role("other"))}
""")
    one_error(run(["--conn", "prod"], env), 2, env["CREDPROC_CONFIG"], "[connections.prod]", "role_arn")


def test_unknown_assume_role_method(sts, env, run):
    env["CREDPROC_CONN_PROD"] = conn_uri(sts.url, role_arn=ROLE_ARN, assume_role_method="assume_role_with_magic")
    one_error(run(["--conn", "prod"], env), 2, "CREDPROC_CONN_PROD", "assume_role_method",
              "assume_role_with_magic", "assume_role,", "assume_role_with_saml", "assume_role_with_web_identity")


def test_role_arn_not_an_arn(sts, env, run):
    env["CREDPROC_CONN_PROD"] = conn_uri(sts.url, role_arn="credproc-test")
    one_error(run(["--conn", "prod"], env), 2, "CREDPROC_CONN_PROD", "role_arn", "credproc-test")
    assert sts.requests == []


def test_verify_missing_file(sts, env, run, tmp_path):
    missing = str(tmp_path / "no-such-ca.pem")
    env["CREDPROC_CONN_PROD"] = conn_uri(sts.url, role_arn=ROLE_ARN, verify=missing)
    one_error(run(["--conn", "prod"], env), 2, "CREDPROC_CONN_PROD", "verify", missing)


def test_session_kwargs_unknown_key(sts, env, run):
    env["CREDPROC_CONN_PROD"] = extra_uri({"role_arn": ROLE_ARN,
                                          "session_kwargs": {"botocore_sesion": "x"}}, endpoint=sts.url)
    one_error(run(["--conn", "prod"], env), 2, "CREDPROC_CONN_PROD", "session_kwargs", "botocore_sesion")


def test_config_kwargs_unknown_key(sts, env, run):
    env["CREDPROC_CONN_PROD"] = extra_uri({"role_arn": ROLE_ARN,
                                          "config_kwargs": {"connect_timout": 3}}, endpoint=sts.url)
    one_error(run(["--conn", "prod"], env), 2, "CREDPROC_CONN_PROD", "config_kwargs", "connect_timout")
    assert sts.requests == []


@pytest.mark.parametrize("value", ["three", "0", "-1"])
def test_bad_aws_max_attempts(sts, env, run, value):
    env["CREDPROC_CONN_PROD"] = conn_uri(sts.url, role_arn=ROLE_ARN)
    env["AWS_MAX_ATTEMPTS"] = value
    one_error(run(["--conn", "prod"], env), 2, "AWS_MAX_ATTEMPTS", repr(value))
    assert sts.requests == []


def test_bad_retry_mode_in_profile(sts, env, run):
    env["CREDPROC_CONN_PROD"] = conn_uri(sts.url, role_arn=ROLE_ARN)
    write_aws_config(env, "[profile p]\nretry_mode = eager\n")
    one_error(run(["--conn", "prod", "--profile", "p"], env), 2, "retry_mode", "'p'", "eager")


def test_unknown_flag(sts, env, run):
    result = run(["--conn", "prod", "--frobnicate"], env)
    one_error(result, 2, "--frobnicate")


def test_sts_refusing(sts, env, run):
    env["CREDPROC_CONN_PROD"] = conn_uri(sts.url, role_arn=ROLE_ARN)
    sts.faults.append((403, "AccessDenied"))
    line = one_error(run(["--conn", "prod"], env), 1, "AccessDenied", "'prod'")
    assert "403" in line
    assert sts.count("AssumeRole") == 1  # AccessDenied is not retried


def test_debug_shows_the_traceback(sts, env, run):
    env["CREDPROC_CONN_PROD"] = conn_uri(sts.url, role_arn=ROLE_ARN)
    sts.faults.append((403, "AccessDenied"))
    plain = run(["--conn", "prod"], env)
    assert plain.returncode == 1 and "Traceback" not in plain.stderr
    sts.faults.append((403, "AccessDenied"))
    debug = run(["--conn", "prod", "--debug"], env)
    assert debug.returncode == 1
    assert "Traceback" in debug.stderr and "AccessDenied" in debug.stderr
    assert debug.stderr.rstrip("\n").splitlines()[-1].startswith("credproc: error:")
    for secret in SECRETS:
        assert secret not in debug.stderr


def test_version_and_help(sts, env, run):
    from importlib.metadata import version as installed_version

    __version__ = installed_version("credproc")  # the installed executable's, not the working tree's
    version = run(["--version"], env)
    assert version.returncode == 0 and version.stdout.strip() == f"credproc {__version__}"
    helped = run(["--help"], env)
    assert helped.returncode == 0
    assert "--conn" in helped.stdout and "credential_process" in helped.stdout
    assert sts.requests == []


def test_config_file_that_never_ends_is_refused_promptly(env, run):
    """CREDPROC_CONFIG naming an endless file (/dev/zero) is read up to 1 MiB, then refused."""
    env["CREDPROC_CONFIG"] = "/dev/zero"
    result = run(["--conn", "prod"], env, timeout=20)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "credproc: error: cannot read config file /dev/zero: larger than 1 MiB: not a credproc config file"]
