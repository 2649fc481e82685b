"""Sharing and splitting the cache, counted at the STS (issue 13, item 4).

An entry is keyed on its connection's definition (the *bucket*) and on the values of the
environment variables that connection can depend on (``credproc.depends``), recorded at
fetch time in one ``.vars`` file per bucket. Everything here is counted where it matters:
at the local STS (the counting proxy ``sts``, and a second proxy in front of the same moto
when two STS endpoints are needed), and in what the cache directory holds.

* a connection with its own key pair, region and STS endpoint: environment noise
  (``AWS_REGION``, ``AWS_DEFAULT_REGION``, ``AWS_ENDPOINT_URL[_STS]``, ``AWS_PROFILE``)
  never splits it;
* one that names no STS endpoint: ``AWS_ENDPOINT_URL_STS`` picks the STS, so two values are
  two entries, each fetched from its own STS once;
* one without a key pair (boto3's default chain): two key pairs in the environment are two
  entries, signed by each pair; a region it does not read shares;
* a user's session factory may read anything: split by every identity variable unless its
  class says ``cache_variables``;
* SAML sends an unsigned call: the environment's keys never split it.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from helpers import ACCESS_KEY, ROLE_ARN, SECRET_KEY, SECRET_KEY_FORMS, conn_uri, extra_uri, ok, signing_key, sts_at
from servers.kerberos import KRB_PASSWORD, SAML_PRINCIPAL_ARN
from servers.sts import StsProxy

pytestmark = pytest.mark.integration

CONN = "shared"
VARIABLE = f"CREDPROC_CONN_{CONN.upper()}"
# The planted key pair, a role and a region, but no STS endpoint: it comes from the environment.
NO_ENDPOINT = extra_uri({"region_name": "us-east-1", "role_arn": ROLE_ARN})
# Nothing listens there: a run that used these would fail, or would be counted nowhere.
NOWHERE = "http://127.0.0.1:9"

# A second key pair for boto3's default chain (moto accepts any).
OTHER_ACCESS_KEY = "AKIAI44QH8DHBEXAMPLE"
OTHER_SECRET_KEY = "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY"

# What credproc.depends records, by rule (in cache.IDENTITY_VARIABLES order).
PROFILE_VARIABLES = ["AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"]
ENDPOINT_VARIABLES = [*PROFILE_VARIABLES, "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_STS",
                      "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"]
CHAIN_VARIABLES = [*PROFILE_VARIABLES, "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                   "AWS_ROLE_ARN", "AWS_ROLE_SESSION_NAME", "AWS_WEB_IDENTITY_TOKEN_FILE",
                   "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI"]
ALL_IDENTITY_VARIABLES = [
    "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ROLE_ARN", "AWS_ROLE_SESSION_NAME",
    "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_STS",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI", "GOOGLE_APPLICATION_CREDENTIALS", "CLOUDSDK_CONFIG", "GCE_METADATA_HOST",
    "GCE_METADATA_IP"]


# -- helpers ---------------------------------------------------------------------------------


def cache_files(env: dict, suffix: str) -> list[Path]:
    return sorted(Path(env["CREDPROC_CACHE_DIR"]).glob(f"*{suffix}"))


def records(env: dict) -> dict[str, list[str]]:
    """The cache directory's ``.vars`` records: file name -> the variable names recorded.

    Each is one line ``credproc-vars 2 <bucket key> <NAME,NAME|-> <digest>``, private to us."""
    found = {}
    for path in cache_files(env, ".vars"):
        assert path.stat().st_mode & 0o077 == 0, f"{path} is readable by others"
        text = path.read_text()
        assert text.endswith("\n") and text.count("\n") == 1, repr(text)
        fields = text.split()
        assert len(fields) == 5 and fields[:2] == ["credproc-vars", "2"], text
        assert path.name.endswith(f"--{fields[2][:32]}.vars"), (path.name, fields[2])
        found[path.name] = [] if fields[3] == "-" else fields[3].split(",")
    return found


def assert_no_values(env: dict, *values: str) -> None:
    """No ``.vars`` record holds any of ``values`` (an environment's values, a secret)."""
    for path in cache_files(env, ".vars"):
        text = path.read_text()
        for value in (*values, *SECRET_KEY_FORMS, OTHER_SECRET_KEY):
            assert value not in text, f"{value!r} is in {path.name}: {text!r}"


def with_vars(env: dict, **variables: str) -> dict:
    return {**env, **variables}


def runs(run, env: dict, variants: list[dict], conn: str = CONN) -> list[dict]:
    """The credentials printed by one run per variant of ``env``, in order."""
    return [ok(run(["--conn", conn], with_vars(env, **variant)), temporary=True) for variant in variants]


@pytest.fixture
def second_sts(moto):
    """A second STS endpoint: another counting proxy in front of the same moto."""
    proxy = StsProxy(moto)
    yield proxy
    proxy.close()


# -- a connection that decides everything itself ----------------------------------------------


def test_environment_noise_never_splits_a_self_contained_connection(sts, env, run):
    """Own key pair, region_name and STS endpoint: five environments that differ only in
    variables the connection never reads make one AssumeRole and print the same credentials."""
    env[VARIABLE] = conn_uri(sts.url, role_arn=ROLE_ARN)
    Path(env["AWS_CONFIG_FILE"]).write_text("[profile elsewhere]\nregion = ap-southeast-2\n"
                                            f"endpoint_url = {NOWHERE}\n")
    variants = [{"AWS_REGION": "eu-west-1"}, {"AWS_DEFAULT_REGION": "sa-east-1"},
                {"AWS_ENDPOINT_URL": NOWHERE}, {"AWS_ENDPOINT_URL_STS": NOWHERE},
                {"AWS_PROFILE": "elsewhere"}]
    printed = runs(run, env, variants)
    assert sts.count("AssumeRole") == 1
    assert all(out == printed[0] for out in printed), [out["AccessKeyId"] for out in printed]
    assert signing_key(next(r for r in sts.requests if r["action"] == "AssumeRole")) == ACCESS_KEY
    assert list(records(env).values()) == [[]], "it depends on no variable"
    assert len(cache_files(env, ".entry")) == 1
    assert_no_values(env, "eu-west-1", "sa-east-1", NOWHERE, "elsewhere")


# -- the STS endpoint from the environment ------------------------------------------------------


def test_a_connection_without_an_endpoint_is_split_by_aws_endpoint_url_sts(sts, second_sts, env, run):
    """No STS endpoint: AWS_ENDPOINT_URL_STS decides which STS answers, so two values are two
    entries, one AssumeRole at each STS; repeated runs under either value are hits."""
    env[VARIABLE] = NO_ENDPOINT
    at_first = {"AWS_ENDPOINT_URL_STS": sts.url}
    at_second = {"AWS_ENDPOINT_URL_STS": second_sts.url}
    printed = runs(run, env, [at_first, at_second, at_first, at_second, at_first, at_second])
    assert sts.count("AssumeRole") == 1 and second_sts.count("AssumeRole") == 1
    assert printed[0] == printed[2] == printed[4]
    assert printed[1] == printed[3] == printed[5]
    assert printed[0]["AccessKeyId"] != printed[1]["AccessKeyId"], "two entries, not one"

    # The region is the connection's own: another AWS_REGION shares the entry of its endpoint.
    again = runs(run, env, [{**at_first, "AWS_REGION": "eu-west-1"}, {**at_second, "AWS_DEFAULT_REGION": "eu-west-1"}])
    assert again == [printed[0], printed[1]]
    assert sts.count("AssumeRole") == 1 and second_sts.count("AssumeRole") == 1

    assert list(records(env).values()) == [ENDPOINT_VARIABLES]
    assert len(cache_files(env, ".entry")) == 2
    assert_no_values(env, sts.url, second_sts.url, sts.url.rsplit(":", 1)[1], second_sts.url.rsplit(":", 1)[1])


def test_aws_endpoint_url_reaches_a_connection_without_an_endpoint_too(sts, second_sts, env, run):
    """AWS_ENDPOINT_URL (every service's endpoint) is read as well when AWS_ENDPOINT_URL_STS
    is unset: a new value is a new entry, fetched from the STS it names."""
    env[VARIABLE] = NO_ENDPOINT
    printed = runs(run, env, [{"AWS_ENDPOINT_URL": sts.url}, {"AWS_ENDPOINT_URL": second_sts.url},
                              {"AWS_ENDPOINT_URL": sts.url}])
    assert sts.count("AssumeRole") == 1 and second_sts.count("AssumeRole") == 1
    assert printed[0] == printed[2] != printed[1]


# -- boto3's default chain ----------------------------------------------------------------------


def test_the_default_chain_is_split_by_the_environments_key_pair(sts, env, run):
    """No key pair in the definition: boto3's chain finds AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY,
    so two pairs are two entries, each AssumeRole signed by its pair. Another AWS_REGION with
    the same pair shares, since the connection names its region."""
    env[VARIABLE] = conn_uri(sts.url, login="", role_arn=ROLE_ARN)
    first = {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
    second = {"AWS_ACCESS_KEY_ID": OTHER_ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": OTHER_SECRET_KEY}
    printed = runs(run, env, [first, second, first, second])
    assert sts.count("AssumeRole") == 2
    signers = [signing_key(r) for r in sts.requests if r["action"] == "AssumeRole"]
    assert signers == [ACCESS_KEY, OTHER_ACCESS_KEY]
    assert printed[0] == printed[2] and printed[1] == printed[3]
    assert printed[0]["AccessKeyId"] != printed[1]["AccessKeyId"]

    shared = runs(run, env, [{**first, "AWS_REGION": "eu-west-1"}, {**second, "AWS_DEFAULT_REGION": "eu-west-1"},
                             {**first, "AWS_ENDPOINT_URL_STS": NOWHERE}])
    assert shared == [printed[0], printed[1], printed[0]]
    assert sts.count("AssumeRole") == 2

    assert list(records(env).values()) == [CHAIN_VARIABLES]
    assert len(cache_files(env, ".entry")) == 2
    assert_no_values(env, ACCESS_KEY, OTHER_ACCESS_KEY, "eu-west-1")


def test_the_default_chain_is_split_by_the_profile_it_reads(sts, env, run):
    """The chain reads AWS_PROFILE: two profiles with different keys are two entries."""
    env[VARIABLE] = conn_uri(sts.url, login="", role_arn=ROLE_ARN)
    Path(env["AWS_SHARED_CREDENTIALS_FILE"]).write_text(textwrap.dedent(f"""\
        [one]
        aws_access_key_id = {ACCESS_KEY}
        aws_secret_access_key = {SECRET_KEY}
        [two]
        aws_access_key_id = {OTHER_ACCESS_KEY}
        aws_secret_access_key = {OTHER_SECRET_KEY}
        """))
    printed = runs(run, env, [{"AWS_PROFILE": "one"}, {"AWS_PROFILE": "two"}, {"AWS_PROFILE": "one"}])
    assert [signing_key(r) for r in sts.requests if r["action"] == "AssumeRole"] == [ACCESS_KEY, OTHER_ACCESS_KEY]
    assert printed[0] == printed[2] != printed[1]


# -- the records ------------------------------------------------------------------------------


def test_one_record_per_bucket_with_names_and_no_values(sts, env, run, tmp_path):
    """Three connections in one cache directory: one ``.vars`` record each, naming the
    variables the connection depends on and nothing else (no value, no secret); the entries
    under a bucket are its own."""
    env["CREDPROC_CONN_SELF"] = conn_uri(sts.url, role_arn=ROLE_ARN)
    env["CREDPROC_CONN_NOENDPOINT"] = NO_ENDPOINT
    env["CREDPROC_CONN_CHAIN"] = conn_uri(sts.url, login="", role_arn=ROLE_ARN)
    noisy = with_vars(env, AWS_ENDPOINT_URL_STS=sts.url, AWS_ACCESS_KEY_ID=OTHER_ACCESS_KEY,
                      AWS_SECRET_ACCESS_KEY=OTHER_SECRET_KEY, AWS_REGION="eu-west-1")
    for conn in ("self", "noendpoint", "chain"):
        ok(run(["--conn", conn], noisy), temporary=True)
    assert sts.count("AssumeRole") == 3
    found = records(env)
    by_conn = {name.split("--")[0]: names for name, names in found.items()}
    assert by_conn == {"self": [], "noendpoint": ENDPOINT_VARIABLES, "chain": CHAIN_VARIABLES}
    entries = cache_files(env, ".entry")
    assert sorted(p.name.split("--")[0] for p in entries) == ["chain", "noendpoint", "self"]
    for path in entries:  # each entry's slot key hashes its own bucket's key and values
        assert path.read_text().split(" ")[2][:32] == path.name.split("--")[1].removesuffix(".entry")
    assert_no_values(env, sts.url, OTHER_ACCESS_KEY, "eu-west-1", str(tmp_path))


# -- a user's session factory -----------------------------------------------------------------

FACTORIES = '''\
from credproc import BaseSessionFactory


class Cautious(BaseSessionFactory):
    """Says nothing of what it reads: credproc assumes it may read every identity variable."""


class Declared(BaseSessionFactory):
    """Reads no variable, and says so."""

    cache_variables = ()


class RegionOnly(BaseSessionFactory):
    cache_variables = ("AWS_REGION",)
'''


@pytest.fixture
def factory_env(env, tmp_path, sts):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "sharing_factories.py").write_text(FACTORIES)
    return {**env, "PYTHONPATH": str(plugins)}


@pytest.mark.parametrize("factory, calls, recorded", [
    ("Cautious", 3, ALL_IDENTITY_VARIABLES),  # split by AWS_REGION and by AWS_PROFILE
    ("Declared", 1, []),
    ("RegionOnly", 2, ["AWS_REGION"]),  # split by AWS_REGION, not by AWS_PROFILE
])
def test_a_session_factory_is_split_unless_it_declares_cache_variables(sts, factory_env, run, factory, calls,
                                                                       recorded):
    env = factory_env
    env[VARIABLE] = conn_uri(sts.url, role_arn=ROLE_ARN, session_factory=f"sharing_factories.{factory}")
    Path(env["AWS_CONFIG_FILE"]).write_text("[profile elsewhere]\nregion = ap-southeast-2\n")
    printed = runs(run, env, [{"AWS_REGION": "eu-west-1"}, {"AWS_REGION": "eu-north-1"},
                              {"AWS_REGION": "eu-west-1", "AWS_PROFILE": "elsewhere"}, {"AWS_REGION": "eu-west-1"}])
    assert sts.count("AssumeRole") == calls
    assert signing_key(next(r for r in sts.requests if r["action"] == "AssumeRole")) == ACCESS_KEY
    assert len({out["AccessKeyId"] for out in printed}) == calls
    assert printed[3] == printed[0]  # the first environment again: a hit whatever the factory
    assert list(records(env).values()) == [recorded]
    assert len(cache_files(env, ".entry")) == calls


# -- SAML -------------------------------------------------------------------------------------


def test_saml_is_not_split_by_the_environments_keys(sts, idp, krb_env, run):
    """AssumeRoleWithSAML is unsigned: the environment's key pair cannot change its answer, so
    two environments that differ in it share one entry: one IdP page, one STS call."""
    env = krb_env
    table = {"principal_arn": SAML_PRINCIPAL_ARN, "idp_url": idp.url, "idp_auth_method": "http_spnego_auth"}
    env[VARIABLE] = json.dumps({"conn_type": "aws", "extra": {
        "role_arn": ROLE_ARN, "assume_role_method": "assume_role_with_saml", **sts_at(sts.url),
        "assume_role_with_saml": table}})
    printed = runs(run, env, [{"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY},
                              {"AWS_ACCESS_KEY_ID": OTHER_ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": OTHER_SECRET_KEY},
                              {"AWS_REGION": "eu-west-1", "AWS_ENDPOINT_URL_STS": NOWHERE}])
    assert sts.count("AssumeRoleWithSAML") == 1 and sts.count("AssumeRole") == 0
    assert idp.count("page") == 1
    assert printed[0] == printed[1] == printed[2]
    assert list(records(env).values()) == [[]]
    assert len(cache_files(env, ".entry")) == 1
    assert_no_values(env, ACCESS_KEY, OTHER_ACCESS_KEY, KRB_PASSWORD, *idp.assertions)
