"""The connection definitions of the differential test (tests/test_airflow_parity.py).

Each entry is one connection, run through Airflow's Amazon provider and through credproc at
the same local STS. Keys:

* ``id``: the connection id (also the test's id), unless ``conn_id`` is given;
* exactly one of ``conn`` (a dict, passed as Airflow's JSON form), ``uri`` (Airflow's URI
  form) or ``text`` (the variable's raw value); ``None`` in ``conn`` means *undefined*: no
  ``AIRFLOW_CONN_*`` variable at all;
* ``env``: variables for this entry only (on top of the test's isolated environment);
* ``source``: where the case comes from: an Airflow test (``test_base_aws.py::...``,
  ``test_connection_wrapper.py::...``, in providers/amazon of apache/airflow), an Airflow
  issue or pull request (``apache/airflow#N``), or ``credproc`` for a case of our own;
* ``expected``: the ids of rows of the README's table "Differences from Airflow" that this
  entry shows. The test fails when a listed difference does not occur, and when anything
  else differs.

Markers replaced in every string before a run: ``@STS@`` (the STS endpoint the connections
name in ``service_config.sts.endpoint_url``), ``@DEFAULT@`` (the STS that botocore picks by
itself, through ``AWS_ENDPOINT_URL_STS`` in the test's environment), ``@ELSEWHERE@`` (another
service's endpoint, an S3-compatible store say: an STS request arriving there went to the
wrong place), ``@TOKEN@`` (a web identity token file), ``@TMP@`` (the run's directory);
``@STS_QUOTED@`` is ``@STS@`` percent-encoded, for a URI's ``__extra__``.
"""

from __future__ import annotations

import json

KEY = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY"
EXTRA_KEY = "AKIAEXTRAKEY00000001"
SESSION_KEY = "AKIASESSIONKWARGS001"
ENV_KEY = "AKIAENVIRONMENT00001"  # boto3's chain, from AWS_ACCESS_KEY_ID
PROFILE_KEY = "AKIAPROFILEKEYS00001"  # the AWS config's profile "keys"
S3CFG_KEY = "AKIAS3CONFIGFILE0001"  # the deprecated s3_config_file's
ROLE = "arn:aws:iam::123456789012:role/credproc-test"
OTHER_ROLE = "arn:aws:iam::222222222222:role/awesome-role"
STS = {"service_config": {"sts": {"endpoint_url": "@STS@"}}}
CHAIN = {"AWS_ACCESS_KEY_ID": ENV_KEY, "AWS_SECRET_ACCESS_KEY": "env/secret/key/00000000000000000000000"}

# The AWS shared config and credentials the test writes for every entry.
AWS_CONFIG = f"""\
[profile keys]
aws_access_key_id = {PROFILE_KEY}
aws_secret_access_key = profile/secret/key/000000000000000000000
region = eu-central-1

[profile region-only]
region = ap-southeast-2
"""
S3_CONFIG_BOTO = f"""\
[Credentials]
aws_access_key_id = {S3CFG_KEY}
aws_secret_access_key = s3cfg/secret/key/0000000000000000000000
"""


def keys(**extra) -> dict:
    """login/password and an extra."""
    return {"conn_type": "aws", "login": KEY, "password": SECRET, "extra": extra}


def role(**extra) -> dict:
    """The key pair, a role at the local STS, in us-east-1: Airflow's common assume-role setup."""
    return keys(role_arn=ROLE, region_name="us-east-1", **STS, **extra)


def role_kwargs(**kwargs) -> dict:
    return role(assume_role_kwargs=kwargs)


def web_identity(**extra) -> dict:
    return {"conn_type": "aws", "extra": {"role_arn": ROLE, "assume_role_method": "assume_role_with_web_identity",
                                          "region_name": "us-east-1", **STS, **extra}}


SESSION_NAME = ["default-session-name"]

CORPUS: list[dict] = [
    # -- the initial key pair ------------------------------------------------------------------
    {"id": "login-password", "source": "test_connection_wrapper.py::test_get_credentials_from_login",
     "conn": keys()},
    {"id": "login-password-token", "source": "test_connection_wrapper.py::test_get_credentials_from_login",
     "conn": keys(aws_session_token="login-session-token")},
    {"id": "extra-keys", "source": "test_connection_wrapper.py::test_get_credentials_from_extra",
     "conn": {"conn_type": "aws", "extra": {"aws_access_key_id": EXTRA_KEY, "aws_secret_access_key": "extra/secret"}}},
    {"id": "extra-keys-token", "source": "test_connection_wrapper.py::test_get_credentials_from_extra",
     "conn": {"conn_type": "aws", "extra": {"aws_access_key_id": EXTRA_KEY, "aws_secret_access_key": "extra/secret",
                                            "aws_session_token": "extra-session-token"}}},
    {"id": "login-beats-extra", "source": "connection_wrapper._get_credentials (order 1 before 2)",
     "conn": keys(aws_access_key_id=EXTRA_KEY, aws_secret_access_key="extra/secret")},
    {"id": "half-login-extra-keys", "source": "credproc (half pair; resolution-path issue)",
     "conn": {"conn_type": "aws", "login": KEY,
              "extra": {"aws_access_key_id": EXTRA_KEY, "aws_secret_access_key": "extra/secret"}}},
    {"id": "half-login-chain", "source": "credproc (half pair; resolution-path issue)", "env": CHAIN,
     "conn": {"conn_type": "aws", "login": KEY}},
    {"id": "half-password-chain", "source": "credproc (half pair)", "env": CHAIN,
     "conn": {"conn_type": "aws", "password": SECRET}},
    {"id": "session-kwargs-keys", "source": "connection_wrapper._get_credentials (order 3, session_kwargs)",
     "conn": {"conn_type": "aws", "extra": {"session_kwargs": {"aws_access_key_id": SESSION_KEY,
                                                               "aws_secret_access_key": "session/secret"}}}},
    {"id": "session-kwargs-keys-token", "source": "connection_wrapper._get_credentials (session_kwargs token)",
     "conn": {"conn_type": "aws", "extra": {"session_kwargs": {"aws_access_key_id": SESSION_KEY,
                                                               "aws_secret_access_key": "session/secret",
                                                               "aws_session_token": "session-token"}}}},
    {"id": "extra-keys-beat-session-kwargs", "source": "connection_wrapper._get_credentials (order 2 before 3)",
     "conn": {"conn_type": "aws", "extra": {"aws_access_key_id": EXTRA_KEY, "aws_secret_access_key": "extra/secret",
                                            "session_kwargs": {"aws_access_key_id": SESSION_KEY,
                                                               "aws_secret_access_key": "session/secret"}}}},
    {"id": "uri-login-password", "source": "Airflow docs: URI form, secret percent-encoded",
     "uri": "aws://AKIAIOSFODNN7EXAMPLE:wJalrXUtnFEMI%2FK7MDENG%2FbPxRfiCYzEXAMPLEKEY@/?region_name=eu-west-1"},
    {"id": "uri-keys-in-query", "source": "Airflow docs: extras in the URI query",
     "uri": f"aws://?aws_access_key_id={EXTRA_KEY}&aws_secret_access_key=extra%2Fsecret"},
    {"id": "uri-extra-json", "source": "Airflow docs: __extra__ for nested extras",
     "uri": "aws://AKIAIOSFODNN7EXAMPLE:wJalrXUtnFEMI%2FK7MDENG%2FbPxRfiCYzEXAMPLEKEY@/?__extra__="
            "%7B%22role_arn%22%3A%20%22arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fcredproc-test%22%2C%20"
            "%22region_name%22%3A%20%22us-east-1%22%2C%20%22service_config%22%3A%20%7B%22sts%22%3A%20"
            "%7B%22endpoint_url%22%3A%20%22@STS_QUOTED@%22%7D%7D%7D", "expected": SESSION_NAME},
    {"id": "uri-unencoded-endpoint", "source": "Airflow docs: a URI's extras must be URL-encoded", "env": CHAIN,
     "uri": "aws://AKIAIOSFODNN7EXAMPLE:wJalrXUtnFEMI%2FK7MDENG%2FbPxRfiCYzEXAMPLEKEY@/?region_name=us-east-1"
            "&role_arn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fcredproc-test&endpoint_url=@DEFAULT@",
     "expected": ["unread-definition"]},

    # -- empty and undefined connections, boto3's chain ----------------------------------------
    {"id": "empty-connection-chain", "source": "test_base_aws.py (empty connection: boto3's chain)", "env": CHAIN,
     "conn": {"conn_type": "aws"}},
    {"id": "empty-connection-nothing", "source": "credproc (no credentials anywhere)",
     "conn": {"conn_type": "aws"}},
    {"id": "empty-extra-chain", "source": "test_connection_wrapper.py::test_values_from_connection (extra None)",
     "env": CHAIN, "conn": {"conn_type": "aws", "extra": {}}},
    {"id": "undefined-connection", "source": "base_aws.conn_config: 'Unable to find AWS Connection ID'",
     "env": CHAIN, "conn": None, "expected": ["undefined-connection"]},
    {"id": "undefined-aws-default", "conn_id": "aws_default", "source": "credproc README (aws_default undefined)",
     "env": CHAIN, "conn": None},
    {"id": "chain-signs-role", "source": "apache/airflow#26946 (assume role with the default chain)", "env": CHAIN,
     "conn": {"conn_type": "aws", "extra": {"role_arn": ROLE, "region_name": "us-east-1", **STS}},
     "expected": SESSION_NAME},
    {"id": "nothing-signs-role", "source": "credproc (a role and no credentials to sign with)",
     "conn": {"conn_type": "aws", "extra": {"role_arn": ROLE, "region_name": "us-east-1", **STS}}},

    # -- profiles and session_kwargs -----------------------------------------------------------
    {"id": "profile-keys", "source": "test_connection_wrapper.py::test_get_session_kwargs_from_wrapper",
     "conn": {"conn_type": "aws", "extra": {"profile_name": "keys"}}},
    {"id": "profile-signs-role", "source": "Airflow docs: profile_name with role_arn",
     "conn": {"conn_type": "aws", "extra": {"profile_name": "keys", "role_arn": ROLE, **STS}},
     "expected": SESSION_NAME},
    {"id": "profile-region-keys-role", "source": "credproc (the profile gives the region only)",
     "conn": keys(profile_name="region-only", role_arn=ROLE, **STS), "expected": SESSION_NAME},
    {"id": "profile-missing", "source": "credproc (an unknown profile)",
     "conn": {"conn_type": "aws", "extra": {"profile_name": "no-such-profile"}}},
    {"id": "session-kwargs-profile", "source": "apache/airflow#24670 (session_kwargs: only profile_name useful)",
     "conn": {"conn_type": "aws", "extra": {"session_kwargs": {"profile_name": "keys"}}},
     "expected": ["session-kwargs"]},
    {"id": "session-kwargs-region", "source": "apache/airflow#24670 (session_kwargs)",
     "conn": keys(role_arn=ROLE, session_kwargs={"region_name": "eu-west-2"}, **STS),
     "expected": ["session-kwargs"]},
    {"id": "session-kwargs-unknown", "source": "credproc (a key boto3.session.Session does not take)",
     "conn": keys(session_kwargs={"botocore_session": "x"}), "expected": ["session-kwargs"]},
    {"id": "profile-beats-session-kwargs", "source": "credproc (profile_name in both places)",
     "conn": {"conn_type": "aws", "extra": {"profile_name": "keys",
                                            "session_kwargs": {"profile_name": "region-only"}}}},

    # -- the region ----------------------------------------------------------------------------
    {"id": "region-extra", "source": "test_connection_wrapper.py::test_get_region_name",
     "conn": keys(role_arn=ROLE, region_name="eu-west-1", **STS), "expected": SESSION_NAME},
    {"id": "region-none", "source": "credproc (no region anywhere, an STS endpoint given)",
     "conn": keys(role_arn=ROLE, **STS)},
    {"id": "region-aws-region", "source": "credproc (AWS_REGION: botocore reads AWS_DEFAULT_REGION only)",
     "env": {"AWS_REGION": "ca-central-1"}, "conn": keys(role_arn=ROLE, **STS)},
    {"id": "region-aws-default-region", "source": "credproc (AWS_DEFAULT_REGION)",
     "env": {"AWS_DEFAULT_REGION": "sa-east-1"}, "conn": keys(role_arn=ROLE, **STS), "expected": SESSION_NAME},
    {"id": "region-extra-beats-env", "source": "test_connection_wrapper.py::test_get_region_name",
     "env": {"AWS_REGION": "ca-central-1"}, "conn": keys(role_arn=ROLE, region_name="eu-north-1", **STS),
     "expected": SESSION_NAME},
    {"id": "region-empty-string", "source": "credproc (region_name \"\")",
     "conn": keys(role_arn=ROLE, region_name="", **STS), "expected": ["checked-before-sts"]},
    {"id": "region-not-a-string", "source": "credproc (bad type)",
     "conn": keys(role_arn=ROLE, region_name=42, **STS)},
    {"id": "region-in-uri-query", "source": "apache/airflow#23976 (aws://?region_name=eu-west-1)",
     "uri": "aws://AKIAIOSFODNN7EXAMPLE:wJalrXUtnFEMI%2FK7MDENG%2FbPxRfiCYzEXAMPLEKEY@/?region_name=eu-west-1"
            "&role_arn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fcredproc-test",
     "expected": SESSION_NAME},
    {"id": "region-config-kwargs", "source": "credproc (config_kwargs.region_name and region_name)",
     "conn": keys(role_arn=ROLE, region_name="eu-west-1", config_kwargs={"region_name": "ap-south-1"}, **STS),
     "expected": SESSION_NAME},

    # -- assume role and its parameters --------------------------------------------------------
    {"id": "role-basic", "source": "test_base_aws.py::test_get_credentials_from_role_arn",
     "conn": role(), "expected": SESSION_NAME},
    {"id": "role-method-explicit", "source": "test_connection_wrapper.py::test_get_assume_role_method",
     "conn": role(assume_role_method="assume_role"), "expected": SESSION_NAME},
    {"id": "role-session-name", "source": "Airflow docs: assume_role_kwargs.RoleSessionName",
     "conn": role_kwargs(RoleSessionName="my-session")},
    {"id": "role-duration", "source": "test_connection_wrapper.py::test_get_assume_role_kwargs (DurationSeconds)",
     "conn": role_kwargs(DurationSeconds=3600), "expected": SESSION_NAME},
    {"id": "role-duration-string", "source": "credproc (DurationSeconds as a string, as a URI gives it)",
     "conn": role_kwargs(DurationSeconds="3600")},
    {"id": "role-external-id",
     "source": "test_connection_wrapper.py::test_get_assume_role_kwargs_external_id_in_kwargs",
     "conn": role_kwargs(ExternalId="mock-external-id-in-kwargs"), "expected": SESSION_NAME},
    {"id": "role-tags", "source": "Airflow docs: assume_role_kwargs (Tags)",
     "conn": role_kwargs(Tags=[{"Key": "team", "Value": "data"}, {"Key": "env", "Value": "prod"}]),
     "expected": SESSION_NAME},
    {"id": "role-transitive-tags", "source": "Airflow docs: assume_role_kwargs",
     "conn": role_kwargs(Tags=[{"Key": "team", "Value": "data"}], TransitiveTagKeys=["team"]),
     "expected": SESSION_NAME},
    {"id": "role-policy", "source": "Airflow docs: assume_role_kwargs (Policy)",
     "conn": role_kwargs(Policy=json.dumps({"Version": "2012-10-17", "Statement": [
         {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]})), "expected": SESSION_NAME},
    {"id": "role-policy-arns", "source": "Airflow docs: assume_role_kwargs (PolicyArns)",
     "conn": role_kwargs(PolicyArns=[{"arn": "arn:aws:iam::aws:policy/ReadOnlyAccess"}]), "expected": SESSION_NAME},
    {"id": "role-source-identity", "source": "Airflow docs: assume_role_kwargs",
     "conn": role_kwargs(SourceIdentity="alice", RoleSessionName="alice-session")},
    {"id": "role-serial-and-code", "source": "Airflow docs: assume_role_kwargs (SerialNumber, TokenCode)",
     "conn": role_kwargs(SerialNumber="arn:aws:iam::123456789012:mfa/alice", TokenCode="123456"),
     "expected": SESSION_NAME},
    {"id": "role-serial-without-code", "source": "credproc README (SerialNumber without TokenCode is mfa_serial)",
     "conn": role_kwargs(SerialNumber="arn:aws:iam::123456789012:mfa/alice"),
     "expected": ["mfa-serial"]},
    {"id": "role-arn-in-kwargs", "source": "base_aws._assume_role (RoleArn set last)",
     "conn": role_kwargs(RoleArn=OTHER_ROLE), "expected": SESSION_NAME},
    {"id": "role-kwargs-unknown-parameter", "source": "credproc (botocore's parameter validation)",
     "conn": role_kwargs(Foo="bar")},
    {"id": "role-kwargs-list", "source": "credproc (bad type)", "conn": role(assume_role_kwargs=["DurationSeconds"])},
    {"id": "role-kwargs-string", "source": "credproc (bad type: JSON text instead of an object)",
     "conn": role(assume_role_kwargs='{"DurationSeconds": 900}'), "expected": ["tables-as-json-text"]},
    {"id": "role-kwargs-null", "source": "connection_wrapper._get_assume_role_configs (kwargs or {})",
     "conn": role(assume_role_kwargs=None), "expected": SESSION_NAME},
    {"id": "role-arn-empty", "source": "test_connection_wrapper.py::test_empty_role_arn",
     "conn": keys(role_arn="", **STS)},
    {"id": "role-arn-not-an-arn", "source": "credproc (role_arn checked before STS is asked)",
     "conn": keys(role_arn="deploy-role-of-the-data-team", region_name="us-east-1", **STS),
     "expected": ["checked-before-sts"]},
    {"id": "role-arn-not-a-string", "source": "credproc (bad type)", "conn": keys(role_arn=123456789012, **STS)},
    {"id": "role-other-account", "source": "test_connection_wrapper.py (MOCK_ROLE_ARN)",
     "conn": keys(role_arn=OTHER_ROLE, region_name="us-east-1", **STS), "expected": SESSION_NAME},
    {"id": "role-method-unknown", "source": "test_connection_wrapper.py::test_unsupported_assume_role_method",
     "conn": role(assume_role_method="dummy_method")},
    {"id": "method-without-role", "source": "connection_wrapper._get_assume_role_configs (no role_arn: method unread)",
     "conn": keys(assume_role_method="assume_role_with_web_identity", **STS), "expected": ["method-without-role"]},
    {"id": "role-with-session-token", "source": "credproc (temporary keys sign the AssumeRole)",
     "conn": role(aws_session_token="login-session-token"), "expected": SESSION_NAME},
    {"id": "role-conn-id-characters", "conn_id": "team.data@prod:eu/1",
     "source": "base_aws._strip_invalid_session_name_characters (slugify)",
     "conn": role(), "expected": SESSION_NAME},
    {"id": "role-long-conn-id", "conn_id": "a-connection-id-long-enough-to-pass-the-sixty-four-characters-of-sts",
     "source": "credproc (RoleSessionName at most 64 characters)", "conn": role(), "expected": ["long-session-name"]},

    # -- deprecated extras ---------------------------------------------------------------------
    {"id": "deprecated-account-and-role", "source": "apache/airflow#24670 (aws_account_id, aws_iam_role deprecated)",
     "conn": keys(aws_account_id="123456789012", aws_iam_role="credproc-test", region_name="us-east-1", **STS),
     "expected": ["deprecated-extras"]},
    {"id": "deprecated-account-and-role-with-arn", "source": "test_connection_wrapper.py::test_get_role_arn",
     "conn": role(aws_account_id="111111111111", aws_iam_role="another-role"), "expected": SESSION_NAME},
    {"id": "deprecated-account-alone", "source": "credproc (half of the deprecated pair)",
     "conn": keys(aws_account_id="123456789012", **STS), "expected": ["deprecated-extras"]},
    {"id": "deprecated-external-id", "source": "apache/airflow#24670 (external_id deprecated)",
     "conn": role(external_id="legacy-external-id"), "expected": [*SESSION_NAME, "deprecated-extras"]},
    {"id": "deprecated-external-id-and-kwargs",
     "source": "test_connection_wrapper.py::test_get_assume_role_kwargs_external_id_in_kwargs",
     "conn": role(external_id="mock-external-id-in-extra",
                  assume_role_kwargs={"ExternalId": "mock-external-id-in-kwargs"}),
     "expected": SESSION_NAME},
    {"id": "deprecated-s3-config-file", "source": "apache/airflow#24670 (s3_config_file deprecated)", "env": CHAIN,
     "conn": {"conn_type": "aws", "extra": {"s3_config_file": "@TMP@/s3.cfg", "s3_config_format": "boto"}},
     "expected": ["deprecated-extras"]},
    {"id": "deprecated-s3-config-file-and-login", "source": "credproc (login/password before s3_config_file)",
     "conn": keys(s3_config_file="@TMP@/s3.cfg")},
    {"id": "deprecated-profile-alone", "source": "test_connection_wrapper.py::test_warn_wrong_profile_param_used",
     "env": CHAIN, "conn": {"conn_type": "aws", "extra": {"profile": "keys"}}},

    # -- the STS endpoint ----------------------------------------------------------------------
    {"id": "endpoint-elsewhere-and-service-config", "source": "apache/airflow#34593 (service_config.sts)",
     "conn": role(endpoint_url="@ELSEWHERE@"), "expected": SESSION_NAME},
    {"id": "endpoint-elsewhere-only", "source": "issue 16 (endpoint_url at S3, role at real STS)",
     "conn": keys(role_arn=ROLE, region_name="us-east-1", endpoint_url="@ELSEWHERE@"), "expected": SESSION_NAME},
    {"id": "endpoint-null-service-config", "source": "issue 16 (service_config.sts.endpoint_url null)",
     "conn": keys(role_arn=ROLE, region_name="us-east-1", endpoint_url="@ELSEWHERE@",
                  service_config={"sts": {"endpoint_url": None}}), "expected": SESSION_NAME},
    {"id": "endpoint-null-alone", "source": "issue 16 (null: botocore's default)",
     "conn": keys(role_arn=ROLE, region_name="us-east-1", service_config={"sts": {"endpoint_url": None}}),
     "expected": SESSION_NAME},
    {"id": "endpoint-botocore-default", "source": "apache/airflow#27078 (no endpoint: botocore decides)",
     "conn": keys(role_arn=ROLE, region_name="us-east-1"), "expected": SESSION_NAME},
    {"id": "endpoint-other-service-only", "source": "apache/airflow#34593 (service_config for s3 only)",
     "conn": keys(role_arn=ROLE, region_name="us-east-1", service_config={"s3": {"endpoint_url": "@ELSEWHERE@"}}),
     "expected": SESSION_NAME},
    {"id": "endpoint-extra-host", "source": "apache/airflow#24670 (extra host, renamed endpoint_url)",
     "conn": keys(role_arn=ROLE, region_name="us-east-1", host="@ELSEWHERE@"), "expected": SESSION_NAME},
    {"id": "endpoint-service-config-not-a-table", "source": "credproc (bad type)",
     "conn": keys(role_arn=ROLE, region_name="us-east-1", service_config={"sts": "@STS@"})},
    {"id": "endpoint-without-scheme", "source": "credproc (an endpoint that is no URL)",
     "conn": keys(role_arn=ROLE, region_name="us-east-1", service_config={"sts": {"endpoint_url": "127.0.0.1:9"}})},

    # -- botocore Config, TLS ------------------------------------------------------------------
    {"id": "config-kwargs-retries", "source": "test_connection_wrapper.py::test_get_botocore_config",
     "conn": role(config_kwargs={"retries": {"max_attempts": 2, "mode": "standard"}, "connect_timeout": 5}),
     "expected": SESSION_NAME},
    {"id": "config-kwargs-unsigned", "source": "test_connection_wrapper.py::test_get_botocore_config (unsigned)",
     "conn": role(config_kwargs={"signature_version": "unsigned"}), "expected": SESSION_NAME},
    {"id": "config-kwargs-unknown", "source": "credproc (a key botocore's Config does not take)",
     "conn": role(config_kwargs={"no_such_option": 1})},
    {"id": "verify-false", "source": "test_connection_wrapper.py (verify)", "conn": role(verify=False),
     "expected": SESSION_NAME},

    # -- web identity --------------------------------------------------------------------------
    {"id": "web-identity-file", "source": "test_base_aws.py (assume_role_with_web_identity, federation file)",
     "conn": web_identity(assume_role_with_web_identity_federation="file",
                          assume_role_with_web_identity_token_file="@TOKEN@"), "expected": SESSION_NAME},
    {"id": "web-identity-env-token-file", "source": "test_base_aws.py (AWS_WEB_IDENTITY_TOKEN_FILE)",
     "env": {"AWS_WEB_IDENTITY_TOKEN_FILE": "@TOKEN@"},
     "conn": web_identity(assume_role_with_web_identity_federation="file"), "expected": SESSION_NAME},
    {"id": "web-identity-no-federation", "source": "credproc README (file is the default federation)",
     "conn": web_identity(assume_role_with_web_identity_token_file="@TOKEN@"),
     "expected": ["web-identity-file-default"]},
    {"id": "web-identity-session-name", "source": "Airflow docs: assume_role_kwargs with web identity",
     "conn": web_identity(assume_role_with_web_identity_federation="file",
                          assume_role_with_web_identity_token_file="@TOKEN@",
                          assume_role_kwargs={"RoleSessionName": "irsa-session", "DurationSeconds": 900})},
    {"id": "web-identity-missing-token", "source": "credproc (the token file does not exist)",
     "conn": web_identity(assume_role_with_web_identity_federation="file",
                          assume_role_with_web_identity_token_file="@TMP@/no-such-token")},
    {"id": "web-identity-keys-ignored", "source": "credproc (AssumeRoleWithWebIdentity is unsigned)",
     "conn": {**web_identity(assume_role_with_web_identity_federation="file",
                             assume_role_with_web_identity_token_file="@TOKEN@"), "login": KEY, "password": SECRET},
     "expected": SESSION_NAME},
    {"id": "web-identity-unknown-federation", "source": "base_aws._get_web_identity_credential_fetcher",
     "conn": web_identity(assume_role_with_web_identity_federation="azure")},

    # -- forms and bad input -------------------------------------------------------------------
    {"id": "extra-as-json-text", "source": "test_connection_wrapper.py::test_values_from_connection (extra str)",
     "conn": {"conn_type": "aws", "login": KEY, "password": SECRET,
              "extra": json.dumps({"role_arn": ROLE, "region_name": "us-east-1", **STS})},
     "expected": SESSION_NAME},
    {"id": "extra-invalid-json-text", "source": "_ConnectionMetadata.extra_dejson (invalid JSON)",
     "conn": {"conn_type": "aws", "login": KEY, "password": SECRET, "extra": "{not json"},
     "expected": ["invalid-extra"]},
    {"id": "extra-a-list", "source": "_ConnectionMetadata.extra_dejson (not an object)",
     "conn": {"conn_type": "aws", "login": KEY, "password": SECRET, "extra": ["role_arn"]}},
    {"id": "conn-type-not-aws", "source": "test_connection_wrapper.py::test_unexpected_aws_connection_type",
     "conn": {**role(), "conn_type": "emr"}, "expected": SESSION_NAME},
    {"id": "login-not-a-string", "source": "credproc (bad type)",
     "conn": {"conn_type": "aws", "login": 12345, "password": SECRET}},
    {"id": "definition-not-json-nor-uri", "source": "credproc (garbage in the variable)", "text": "not a connection"},
    {"id": "definition-garbage-chain", "source": "credproc (garbage in the variable, keys in the environment)",
     "env": CHAIN, "text": "not a connection", "expected": ["unread-definition"]},
    {"id": "login-not-a-string-chain", "source": "credproc (bad type, keys in the environment)", "env": CHAIN,
     "conn": {"conn_type": "aws", "login": 12345, "password": SECRET}, "expected": ["unread-definition"]},
]
