"""Unit tests of credproc.depends, in process: which environment variables a connection's
credentials depend on (the cache keys its entries on their values), for connections read from
a definition as credproc reads them (forms.parse, then connection.resolve), and what the
Resolution of a miss does with them (its record and its slot)."""

import pytest

from credproc import depends, forms
from credproc.cache import IDENTITY_VARIABLES, Bucket
from credproc.connection import empty, resolve
from credproc.depends import CHAIN, ENDPOINT, GOOGLE, PROFILE, REGION, variables
from credproc.factory import BaseSessionFactory
from credproc.resolution import Resolution
from credproc.sources import Definition
from helpers import ACCESS_KEY, ROLE_ARN, SECRET_KEY, extra_uri, sts_at

ENDPOINT_URL = "http://127.0.0.1:1/sts"
# What the connection decides itself: its region and its STS endpoint.
OWN = {**sts_at(ENDPOINT_URL), "region_name": "eu-west-1"}
STS_ENDPOINT = {"service_config": sts_at(ENDPOINT_URL)["service_config"]}  # the endpoint alone
ROLE = {"role_arn": ROLE_ARN}
SAML = {**ROLE, "assume_role_method": "assume_role_with_saml",
        "assume_role_with_saml": {"idp_url": "https://idp.example/saml", "idp_auth_method": "http_spnego"}}
WEB = {**ROLE, "assume_role_method": "assume_role_with_web_identity"}


def connection_of(extra, *, keys=True, custom=False):
    """The connection an environment variable with this extra (and the key pair, or none) means."""
    text = extra_uri(extra, login=ACCESS_KEY if keys else "", password=SECRET_KEY)
    raw = forms.parse(Definition("prod", "env", "CREDPROC_CONN_PROD", text))
    return resolve(raw, custom_factory=custom)


def depends_on(extra, **kwargs):
    return set(variables(connection_of(extra, **kwargs)))


# -- a connection that decides everything itself ---------------------------------------------------


def test_own_keys_region_endpoint_and_role_depend_on_nothing():
    assert variables(connection_of({**OWN, **ROLE})) == ()


def test_own_keys_region_and_endpoint_without_a_role_depend_on_nothing():
    assert variables(connection_of(OWN)) == ()


def test_a_region_in_session_kwargs_counts():
    assert variables(connection_of({"session_kwargs": {"region_name": "eu-west-1"}, **STS_ENDPOINT})) == ()


@pytest.mark.parametrize("extra", [
    {"endpoint_url": ENDPOINT_URL},
    {"host": ENDPOINT_URL},
    {"endpoint_url": ENDPOINT_URL, "service_config": {"sts": {"endpoint_url": None}}},
    {"endpoint_url": ENDPOINT_URL, "service_config": {"s3": {"endpoint_url": ENDPOINT_URL}}},
], ids=["endpoint_url", "extra-host", "explicit-null", "s3-only"])
def test_endpoint_url_and_host_leave_the_sts_endpoint_to_the_environment(extra):
    """They are the other services' endpoint (as in Airflow): botocore picks STS's, from
    AWS_ENDPOINT_URL_STS, AWS_ENDPOINT_URL or the profile, so the entry depends on those."""
    assert set(variables(connection_of({"region_name": "eu-west-1", **extra}))) == set(ENDPOINT)
    assert {"AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
            "AWS_PROFILE", "AWS_CONFIG_FILE"} <= set(ENDPOINT)


@pytest.mark.parametrize("keys", [
    {"aws_access_key_id": "AKIAEXTRA", "aws_secret_access_key": "extra-secret-value"},
    {"session_kwargs": {"aws_access_key_id": "AKIASK", "aws_secret_access_key": "sk-secret-value"}},
], ids=["extra", "session_kwargs"])
def test_a_key_pair_from_the_extra_counts(keys):
    assert variables(connection_of({**OWN, **ROLE, **keys}, keys=False)) == ()


# -- what is left to the environment ---------------------------------------------------------------


@pytest.mark.parametrize("role", [ROLE, {}], ids=["assume_role", "no-role"])
def test_no_keys_depends_on_the_default_chain(role):
    assert depends_on({**OWN, **role}, keys=False) == set(CHAIN)
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
            "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI"} <= set(CHAIN)


def test_no_region_depends_on_the_region_variables_and_the_profile():
    found = depends_on({**STS_ENDPOINT, **ROLE})
    assert found == set(REGION)
    assert {"AWS_REGION", "AWS_DEFAULT_REGION", *PROFILE} == found
    assert "AWS_ACCESS_KEY_ID" not in found and "AWS_ENDPOINT_URL" not in found


def test_no_endpoint_depends_on_the_endpoint_variables_and_the_profile():
    found = depends_on({"region_name": "eu-west-1", **ROLE})
    assert found == set(ENDPOINT)
    assert {"AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL", *PROFILE} <= found
    assert "AWS_REGION" not in found and "AWS_ACCESS_KEY_ID" not in found


def test_a_blank_region_or_endpoint_is_none():
    blank = {"service_config": sts_at("")["service_config"]}
    assert depends_on({"region_name": "", **blank, **ROLE}) == set(REGION) | set(ENDPOINT)


def test_a_named_profile_depends_on_where_the_files_are():
    assert depends_on({**OWN, **ROLE, "profile_name": "work"}) == {"AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"}


def test_nothing_given_depends_on_everything_but_google():
    found = depends_on({}, keys=False)
    assert found == set(CHAIN) | set(REGION) | set(ENDPOINT)
    assert found == set(IDENTITY_VARIABLES) - set(GOOGLE)


def test_the_empty_default_connection_depends_on_everything_but_google():
    assert set(variables(empty("aws_default", "not defined"))) == set(IDENTITY_VARIABLES) - set(GOOGLE)


# -- unsigned calls: SAML and web identity ---------------------------------------------------------


@pytest.mark.parametrize("keys", [False, True], ids=["no-keys", "keys"])
def test_saml_does_not_depend_on_the_chain(keys):
    # AssumeRoleWithSAML is unsigned: the assertion is the proof, no initial credentials
    assert variables(connection_of({**OWN, **SAML}, keys=keys)) == ()
    assert depends_on(SAML, keys=keys) == set(REGION) | set(ENDPOINT)
    assert "AWS_ACCESS_KEY_ID" not in depends_on(SAML, keys=keys)


def test_web_identity_with_a_token_file_in_the_extra_depends_on_nothing(tmp_path):
    extra = {**OWN, **WEB, "assume_role_with_web_identity_token_file": str(tmp_path / "token")}
    assert variables(connection_of(extra, keys=False)) == ()


def test_web_identity_without_a_token_file_depends_on_its_variable():
    assert variables(connection_of({**OWN, **WEB}, keys=False)) == ("AWS_WEB_IDENTITY_TOKEN_FILE",)
    assert variables(connection_of({**OWN, **WEB, "assume_role_with_web_identity_federation": "file"},
                                   keys=False)) == ("AWS_WEB_IDENTITY_TOKEN_FILE",)


@pytest.mark.parametrize("blank", ["", "   "], ids=["empty", "spaces"])
def test_web_identity_with_a_blank_token_file_depends_on_its_variable(blank):
    # token_file.token reads the variable when the extra's path is blank (Table.path strips it)
    extra = {**OWN, **WEB, "assume_role_with_web_identity_token_file": blank}
    assert variables(connection_of(extra, keys=False)) == ("AWS_WEB_IDENTITY_TOKEN_FILE",)


@pytest.mark.parametrize("federation", ["google", " google "])
def test_web_identity_google_depends_on_the_google_variables(federation):
    extra = {**OWN, **WEB, "assume_role_with_web_identity_federation": federation,
             "assume_role_with_web_identity_federation_audience": "sts.amazonaws.com"}
    found = variables(connection_of(extra, keys=False))
    assert set(found) == set(GOOGLE)
    assert {"GOOGLE_APPLICATION_CREDENTIALS", "CLOUDSDK_CONFIG", "GCE_METADATA_HOST"} <= set(found)
    assert "AWS_WEB_IDENTITY_TOKEN_FILE" not in found and "AWS_ACCESS_KEY_ID" not in found


def test_web_identity_without_region_or_endpoint_adds_those():
    assert depends_on(WEB, keys=False) == set(REGION) | set(ENDPOINT) | {"AWS_WEB_IDENTITY_TOKEN_FILE"}


# -- a session factory of the user's ---------------------------------------------------------------


class PlainFactory(BaseSessionFactory):
    pass


class DeclaringFactory(BaseSessionFactory):
    cache_variables = ("MY_FEDERATION_USER", "AWS_PROFILE")


class SetFactory(BaseSessionFactory):
    cache_variables = {"AWS_REGION", "AWS_PROFILE", "MY_FEDERATION_USER", "AWS_CONFIG_FILE"}


class NothingFactory(BaseSessionFactory):
    cache_variables = ()


@pytest.mark.parametrize("extra", [{**OWN, **ROLE}, {}], ids=["decides-everything", "decides-nothing"])
def test_a_custom_factory_depends_on_every_identity_variable(extra):
    conn = connection_of(extra, custom=True)
    assert variables(conn, PlainFactory) == IDENTITY_VARIABLES


def test_a_custom_factory_declares_its_own():
    conn = connection_of({}, keys=False, custom=True)
    assert variables(conn, DeclaringFactory) == ("AWS_PROFILE", "MY_FEDERATION_USER")
    assert variables(conn, NothingFactory) == ()


def test_a_custom_factorys_set_of_variables_comes_out_in_one_order():
    # a set's order changes with the hash seed of each process; the bucket's record must not
    conn = connection_of({}, custom=True)
    assert variables(conn, SetFactory) == ("AWS_CONFIG_FILE", "AWS_PROFILE", "AWS_REGION", "MY_FEDERATION_USER")


# -- the rules together ----------------------------------------------------------------------------


@pytest.mark.parametrize("keys", [False, True], ids=["no-keys", "keys"])
@pytest.mark.parametrize("region", [False, True], ids=["no-region", "region"])
@pytest.mark.parametrize("endpoint", [False, True], ids=["no-endpoint", "endpoint"])
@pytest.mark.parametrize("method", [None, "assume_role", "assume_role_with_saml", "assume_role_with_web_identity"])
def test_always_identity_variables_in_their_order(keys, region, endpoint, method):
    extra = {}
    if region:
        extra["region_name"] = "eu-west-1"
    if endpoint:
        extra.update(STS_ENDPOINT)
    if method:
        extra.update(ROLE, assume_role_method=method)
    found = variables(connection_of(extra, keys=keys))
    assert list(found) == [name for name in IDENTITY_VARIABLES if name in found]  # ordered, no repeat
    assert ("AWS_ACCESS_KEY_ID" in found) == (not keys and method in (None, "assume_role"))
    assert ("AWS_REGION" in found) == (not region)
    assert ("AWS_ENDPOINT_URL_STS" in found) == (not endpoint)


def test_every_rule_names_identity_variables():
    assert set(CHAIN) | set(REGION) | set(ENDPOINT) | set(GOOGLE) <= set(IDENTITY_VARIABLES)
    assert depends.PROFILE == ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE")


# -- the Resolution of a miss: the record and the slot ---------------------------------------------


def resolution(tmp_path, extra, *, keys=True, factory=None, **environ):
    env = {"CREDPROC_CONN_PROD": extra_uri(extra, login=ACCESS_KEY if keys else "", password=SECRET_KEY),
           "CREDPROC_CACHE_DIR": str(tmp_path / "cache"), "CREDPROC_CONFIG": str(tmp_path / "none.toml"), **environ}
    return Resolution("prod", session_factory=factory, environ=env)


def test_resolution_variables_of_credprocs_own_factory(tmp_path):
    assert resolution(tmp_path, {**OWN, **ROLE}).variables() == ()
    assert set(resolution(tmp_path, OWN, keys=False).variables()) == set(CHAIN)


@pytest.mark.parametrize("spec, expected", [
    ("test_unit_depends:PlainFactory", IDENTITY_VARIABLES),
    ("test_unit_depends:DeclaringFactory", ("AWS_PROFILE", "MY_FEDERATION_USER")),
    ("credproc.factory.BaseSessionFactory", ()),  # named, but credproc's own: its rules apply
])
def test_resolution_variables_of_a_named_factory(tmp_path, spec, expected):
    assert resolution(tmp_path, {**OWN, **ROLE}, factory=spec).variables() == expected


def test_resolution_place_records_the_variables_and_keys_the_slot_on_them(tmp_path):
    r = resolution(tmp_path, {**OWN, **ROLE}, factory="test_unit_depends:DeclaringFactory",
                   AWS_PROFILE="work", AWS_REGION="us-east-2")
    assert r.recorded_slot() is None  # no fetch yet
    placed = r.place()
    assert r.bucket.variables() == ("AWS_PROFILE", "MY_FEDERATION_USER")
    assert placed.path == r.bucket.slot({"AWS_PROFILE": "work"}, ("AWS_PROFILE", "MY_FEDERATION_USER")).path
    # a hit in another environment finds its slot from the record, without parsing anything
    same = resolution(tmp_path, {**OWN, **ROLE}, factory="test_unit_depends:DeclaringFactory",
                      AWS_PROFILE="work", AWS_REGION="ap-south-1", HOME="/elsewhere")
    other = resolution(tmp_path, {**OWN, **ROLE}, factory="test_unit_depends:DeclaringFactory",
                       AWS_PROFILE="play")
    assert same.bucket.key == other.bucket.key == r.bucket.key
    assert same.recorded_slot().path == placed.path
    assert other.recorded_slot().path != placed.path


def test_resolution_bucket_changes_with_the_factory_but_not_the_region(tmp_path):
    base = resolution(tmp_path, {**OWN, **ROLE}).bucket.key
    assert resolution(tmp_path, {**OWN, **ROLE}, AWS_REGION="x", AWS_PROFILE="y").bucket.key == base
    assert resolution(tmp_path, {**OWN, **ROLE}, factory="test_unit_depends:PlainFactory").bucket.key != base
    assert resolution(tmp_path, {**OWN, **ROLE},
                      CREDPROC_SESSION_FACTORY="test_unit_depends:PlainFactory").bucket.key != base
    assert isinstance(resolution(tmp_path, {}).bucket, Bucket)
