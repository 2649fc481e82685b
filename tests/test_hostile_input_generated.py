"""Hostile input, generated: property-based tests (hypothesis) that feed the real ``credproc``
executable random connection definitions - URIs, JSON, TOML, extras of every type - and
random cache files.

The property, for every input: no traceback; exit 0, 1 or 2; stderr holds only one-line
``credproc: warning:`` / ``credproc: error:`` messages, exactly one error line (the last)
when the run fails, and never the generic "(run with --debug for the traceback)" line that
means an exception credproc did not expect; stdout is empty on failure and holds nothing but
the credential JSON on success. See ``helpers.stderr_verdict``.

Example counts: ``CREDPROC_EXAMPLES`` per property, half that for the two whose every
example is a full fetch (default 40: the file takes about a minute and a half on 2 cores);
the full run is

    CREDPROC_EXAMPLES=500 .venv/bin/python -m pytest -p no:cacheprovider tests/test_hostile_input_generated.py

Runs are reproducible (``derandomize``); no example database is written. Inputs stay on
127.0.0.1: endpoints are drawn from the local STS, a closed port and strings without a
host, and ``AWS_ENDPOINT_URL_STS`` points the rest at the local STS. SAML, web identity and
custom session factories are left out of the generated methods and keys while they are
being built (issue 3, 4, 5): add them to ``EXTRA_VALUES`` when they land.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import urllib.parse
from collections import Counter
from hashlib import sha256
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from helpers import ACCESS_KEY, ACCOUNT, ROLE_ARN, SECRET_KEY, conn_uri, credentials_only, stderr_verdict, \
    sts_at, sts_endpoint, toml_key, toml_value  # noqa: E402

pytestmark = pytest.mark.integration

EXAMPLES = int(os.environ.get("CREDPROC_EXAMPLES", "40"))
CONN = "prod"
VARIABLE = f"CREDPROC_CONN_{CONN.upper()}"
BUG_HINT = "(run with --debug for the traceback)"

PROPERTY = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                           HealthCheck.data_too_large])
examples = pytest.mark.parametrize("n", [EXAMPLES], ids=lambda n: f"{n}-examples")
# Every example of these two is a full fetch (about a second): half as many.
HALF = settings(PROPERTY, max_examples=max(10, EXAMPLES // 2))
half_examples = pytest.mark.parametrize("n", [HALF.max_examples], ids=lambda n: f"{n}-examples")


# -- running one input ----------------------------------------------------------------------


@pytest.fixture
def hostile(sts, env, credproc_bin):
    """Run credproc on one generated input; check the property; return the result.

    ``hostile.codes`` counts the exit codes seen; ``hostile.report(name)`` prints them and
    checks the inputs reached both sides: some succeeded, some were refused."""
    base = dict(env)
    base["AWS_ENDPOINT_URL_STS"] = sts.url  # connections without an endpoint stay local too
    base["AWS_MAX_ATTEMPTS"] = "1"  # failures fail fast (config_kwargs.retries may still retry)

    def _run(extra_env: dict, args=("--conn", CONN)) -> subprocess.CompletedProcess:
        run_env = {**base, **extra_env}
        try:
            result = subprocess.run([str(credproc_bin), *args], env=run_env, capture_output=True, text=True,
                                    timeout=90, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"credproc hung on {extra_env!r}") from None
        stderr_verdict(result)
        assert BUG_HINT not in result.stderr, f"an unexpected exception: {result.stderr.splitlines()[-1]}"
        _run.codes[result.returncode] += 1
        return result

    def report(name: str) -> None:
        print(f"{name}: {sum(_run.codes.values())} runs, exit codes {dict(sorted(_run.codes.items()))}")
        assert _run.codes[0] and (_run.codes[1] or _run.codes[2]), f"{name}: one-sided inputs {_run.codes}"

    _run.codes = Counter()
    _run.report = report
    return _run


# -- strategies ---------------------------------------------------------------------------------

# Text that can sit in an environment variable (no NUL, no lone surrogates).
text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=24)
short_ints = st.integers(min_value=-3, max_value=5)
scalars = (st.none() | st.booleans() | st.integers(min_value=-2**70, max_value=2**70) | short_ints
           | st.floats(allow_nan=True, allow_infinity=True) | text)
# Strings that would send botocore to a host other than 127.0.0.1 are excluded everywhere.
scalars = scalars.filter(lambda v: not (isinstance(v, str) and "://" in v))
json_values = st.recursive(scalars, lambda kids: st.lists(kids, max_size=3) | st.dictionaries(text, kids, max_size=3),
                           max_leaves=8)


def endpoints(sts_url: str):
    return st.one_of(
        st.just(sts_url),
        st.builds(lambda path: sts_url + "/" + urllib.parse.quote(path), text),
        st.sampled_from(["http://127.0.0.1:1", "https://127.0.0.1:1", "http://[::1", "http://127.0.0.1:99999",
                         "ftp://127.0.0.1/", "http://user:pw@127.0.0.1:1", "://", "http://"]),
        text.filter(lambda s: "://" not in s),
    )


def extra_values(sts_url: str) -> dict:
    """A strategy for the value of each known extra key (else any JSON value)."""
    endpoint = endpoints(sts_url)
    retries = st.dictionaries(st.sampled_from(["mode", "max_attempts", "total_max_attempts"]) | text,
                              st.sampled_from(["standard", "legacy", "adaptive"]) | short_ints | scalars, max_size=3)
    config_kwargs = st.dictionaries(
        st.sampled_from(["connect_timeout", "read_timeout", "retries", "proxies", "signature_version",
                         "region_name", "user_agent_extra", "max_pool_connections", "tcp_keepalive"]) | text,
        st.one_of(short_ints, st.floats(min_value=-1, max_value=5), retries, scalars,
                  st.dictionaries(st.sampled_from(["http", "https"]),
                                  st.sampled_from(["http://127.0.0.1:1", "not a url"]) | scalars, max_size=2),
                  st.just("unsigned")),
        max_size=4)
    assume_role_kwargs = st.dictionaries(
        st.sampled_from(["DurationSeconds", "ExternalId", "RoleSessionName", "Policy", "Tags", "TokenCode",
                         "SerialNumber", "PolicyArns", "TransitiveTagKeys", "SourceIdentity"]) | text,
        st.one_of(st.integers(min_value=0, max_value=50000), json_values), max_size=3)
    session_kwargs = st.dictionaries(
        st.sampled_from(["aws_access_key_id", "aws_secret_access_key", "aws_session_token", "region_name",
                         "profile_name", "aws_account_id"]) | text, json_values, max_size=3)
    return {
        "role_arn": st.sampled_from([ROLE_ARN, f"arn:aws:iam::{ACCOUNT}:role/x", "arn:", "arn:aws:iam::1:role"])
        | scalars,
        "region_name": st.sampled_from(["us-east-1", "eu-west-1", "a", "-", "us_east_1"]) | scalars,
        "endpoint_url": endpoint | scalars,
        "host": endpoint,
        "service_config": st.one_of(
            st.fixed_dictionaries({"sts": st.fixed_dictionaries({"endpoint_url": endpoint | st.none()})}),
            st.dictionaries(st.sampled_from(["sts", "s3"]) | text, json_values, max_size=2), scalars),
        "verify": st.sampled_from([True, False, "true", "false", "0", "/nonexistent/ca.pem"]) | scalars,
        "config_kwargs": config_kwargs | st.builds(json.dumps, config_kwargs) | scalars,
        "assume_role_kwargs": assume_role_kwargs | st.builds(json.dumps, assume_role_kwargs) | scalars,
        "session_kwargs": session_kwargs | scalars,
        "assume_role_method": st.sampled_from(["assume_role", "assume-role", ""]) | scalars,
        "profile_name": text | scalars,
        "aws_access_key_id": st.just(ACCESS_KEY) | scalars,
        "aws_secret_access_key": st.just(SECRET_KEY) | scalars,
        "aws_session_token": scalars,
        "aws_account_id": st.just(ACCOUNT) | scalars,
        "aws_iam_role": st.just("credproc-test") | scalars,
        "external_id": scalars,
        "s3_config_file": st.sampled_from(["/nonexistent/boto.cfg", "/etc/hostname"]) | text,
        "s3_config_format": st.sampled_from(["boto", "aws", "s3cmd"]) | scalars,
        "profile": scalars,
    }


def extras(sts_url: str):
    """A dict of extras: known keys with values of their kind or any kind, and unknown keys."""
    values = extra_values(sts_url)
    pairs = st.one_of(*[st.tuples(st.just(key), strategy) for key, strategy in values.items()],
                      st.tuples(text, json_values))
    return st.lists(pairs, max_size=7).map(dict)


def valid_base(sts_url: str) -> dict:
    """The extras of a connection that works: hostile inputs are layered on it (sometimes)."""
    return {"role_arn": ROLE_ARN, **sts_at(sts_url)}


# -- working connections with hostile content ---------------------------------------------------
#
# Half the examples are connections that must work whatever their content: secrets of any
# printable character (any character at all for long-term keys, which never go into an HTTP
# header), unknown extras of any type, harmless settings. Their property is stronger: exit 0,
# and the credentials round-trip - long-term keys are printed exactly as written, and a role
# is assumed with a signature by the written key id.

KNOWN = {"login", "password", "host", "port", "schema", "conn_type", "description", "extra", "__extra__",
         "aws_access_key_id", "aws_secret_access_key", "aws_session_token", "region_name", "session_kwargs",
         "profile_name", "config_kwargs", "endpoint_url", "service_config", "verify", "role_arn",
         "assume_role_method", "assume_role_kwargs", "assume_role_with_saml", "session_factory",
         "assume_role_with_web_identity_federation", "assume_role_with_web_identity_federation_audience",
         "assume_role_with_web_identity_token_file", "aws_account_id", "aws_iam_role", "external_id",
         "s3_config_file", "s3_config_format", "profile"}
printable = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=40)
any_secret = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1,
                     max_size=40).filter(lambda v: v.strip() == v and v)
unknown_keys = text.filter(lambda k: k and k not in KNOWN and k.strip() == k)
session_names = st.text(st.sampled_from("abcXYZ019_+=,.@-"), min_size=2, max_size=64)


@st.composite
def working(draw, sts_url: str) -> dict:
    """A connection that must work: ``fields`` (login, password), ``extra``, and what to expect."""
    role = draw(st.booleans())
    # A role's key id goes to moto, which answers odd ids oddly (an ErrorResponse with HTTP 200):
    # realistic ids there; long-term keys never leave the process, so anything goes.
    login = draw(st.from_regex(r"\A(AKIA|ASIA)[A-Z2-7]{16}\Z") if role else any_secret)
    password = draw(printable if role else any_secret)
    token = draw(st.none() | (printable if role else any_secret))
    extra: dict = {**sts_endpoint(sts_url), "region_name": draw(st.sampled_from(["us-east-1", "eu-west-1"]))}
    if token is not None:
        extra["aws_session_token"] = token
    if role:
        extra["role_arn"] = ROLE_ARN
        kwargs = draw(st.fixed_dictionaries({}, optional={
            "DurationSeconds": st.integers(900, 43200), "RoleSessionName": session_names,
            "ExternalId": st.text(st.sampled_from("abcXYZ019_+=,.@:/-"), min_size=2, max_size=100)}))
        if kwargs:
            extra["assume_role_kwargs"] = kwargs
        config = draw(st.fixed_dictionaries({}, optional={
            "connect_timeout": st.floats(1, 10), "read_timeout": st.integers(1, 10),
            "retries": st.fixed_dictionaries({"mode": st.sampled_from(["standard", "legacy", "adaptive"]),
                                              "total_max_attempts": st.integers(1, 3)}),
            "tcp_keepalive": st.booleans()}))
        if config:
            extra["config_kwargs"] = config
    extra.update(draw(st.dictionaries(unknown_keys, json_values, max_size=3)))  # ignored, with a warning
    if draw(st.booleans()):
        extra["verify"] = draw(st.sampled_from([True, False, "true", "false", "1", "0"]))
    expect = {"role": role, "login": login}
    if not role:
        expect["printed"] = {"AccessKeyId": login, "SecretAccessKey": password, **({"SessionToken": token} if token
                                                                                   else {})}
    return {"login": login, "password": password, "extra": extra, "expect": expect}


def check_round_trip(result, expect: dict, sts, requests_before: int) -> None:
    assert result.returncode == 0, f"a working connection failed: {result.stderr}"
    out = credentials_only(result.stdout)
    if expect["role"]:
        assert out["AccessKeyId"] != expect["login"] and out["SessionToken"], out
        if len(sts.requests) > requests_before:  # a fetch (the same text again is a cache hit)
            request = sts.requests[-1]
            authorization = next((v for k, v in request["headers"].items() if k.lower() == "authorization"), "")
            assert f"Credential={expect['login']}/" in authorization, "signed with another key id than written"
    else:
        assert out == {"Version": 1, **expect["printed"]}, f"the keys did not survive: {out} != {expect['printed']}"


def query_value(value) -> str:
    return value if isinstance(value, str) else json.dumps(value)


@st.composite
def working_uris(draw, sts_url: str) -> tuple[str, dict]:
    spec = draw(working(sts_url))
    auth = urllib.parse.quote(spec["login"], safe="") + ":" + urllib.parse.quote(spec["password"], safe="") + "@"
    extra = spec["extra"]
    nested = any(isinstance(v, (dict, list, bool)) or v is None for v in extra.values())
    if nested or draw(st.booleans()):
        query = urllib.parse.urlencode({"__extra__": json.dumps(extra)})
    else:  # flat: strings, numbers as text
        query = urllib.parse.urlencode({k: query_value(v) for k, v in extra.items()})
    return f"aws://{auth}/?{query}", spec["expect"]


@st.composite
def working_json(draw, sts_url: str) -> tuple[str, dict]:
    spec = draw(working(sts_url))
    extra = spec["extra"]
    document = {"conn_type": "aws", "login": spec["login"], "password": spec["password"],
                "extra": json.dumps(extra) if draw(st.booleans()) else extra}
    if draw(st.booleans()):
        document["description"] = draw(text)
    return json.dumps(document, ensure_ascii=draw(st.booleans())), spec["expect"]


@st.composite
def working_toml(draw, sts_url: str) -> tuple[str, dict]:
    spec = draw(working(sts_url))
    extra = {k: v for k, v in spec["extra"].items() if v is not None}  # TOML has no null
    table = {"login": spec["login"], "password": spec["password"]}
    lines = ["[connections.prod]"] + [f"{toml_key(k)} = {toml_value(v)}" for k, v in table.items()]
    if draw(st.booleans()):
        lines += [f"{toml_key(k)} = {toml_value(v)}" for k, v in extra.items()]
    else:
        lines += ["[connections.prod.extra]"] + [f"{toml_key(k)} = {toml_value(v)}" for k, v in extra.items()]
    return "\n".join(lines) + "\n", spec["expect"]


# -- hostile connection definitions ---------------------------------------------------------------


def quote_maybe(draw, value: str) -> str:
    return urllib.parse.quote(value, safe="") if draw(st.booleans()) else value


@st.composite
def hostile_uris(draw, sts_url: str) -> str:
    if draw(st.integers(0, 9)) == 0:  # sometimes no URI at all
        return draw(text.filter(lambda s: not s.strip().startswith("{")))
    scheme = draw(st.sampled_from(["aws", "aws", "aws-x", "", "AWS"]) | text.filter(lambda s: "://" not in s))
    auth = ""
    if draw(st.booleans()):
        login = draw(st.just(ACCESS_KEY) | text)
        password = draw(st.just(SECRET_KEY) | text)
        auth = quote_maybe(draw, login) + (":" + quote_maybe(draw, password) if draw(st.booleans()) else "")
        auth += "@" if draw(st.integers(0, 5)) else ""
    host = draw(st.sampled_from(["", "", "h", "[::1]", "[::1", "h:99999", "h:x", "127.0.0.1:1"]) |
                text.filter(lambda s: "://" not in s))
    path = draw(st.sampled_from(["/", "", "/schema"]) | text.map(lambda s: "/" + s))
    extra = {**(valid_base(sts_url) if draw(st.booleans()) else {}), **draw(extras(sts_url))}
    if draw(st.booleans()):  # nested values as Airflow writes them: __extra__=<url-encoded JSON>
        payload = draw(st.just(json.dumps(extra)) | text.filter(lambda s: "://" not in s))
        query = [("__extra__", payload)] + draw(st.lists(st.tuples(text, text), max_size=2))
    else:  # flat query: every value a string (dicts as JSON text)
        query = [(k, query_value(v)) for k, v in extra.items()]
    if draw(st.booleans()):
        query_text = urllib.parse.urlencode(query)
    else:  # raw, unencoded: '&', '=', '#' and '%' in values break it up as they will
        query_text = "&".join(f"{k}={v}" for k, v in query)
    return f"{scheme}://{auth}{host}{path}?{query_text}"


@st.composite
def hostile_json(draw, sts_url: str) -> str:
    fields = draw(st.dictionaries(
        st.sampled_from(["conn_type", "login", "password", "host", "port", "schema", "description"]),
        st.sampled_from(["aws", ACCESS_KEY, SECRET_KEY]) | json_values, max_size=5))
    kind = draw(st.integers(0, 4))
    extra = {**(valid_base(sts_url) if draw(st.booleans()) else {}), **draw(extras(sts_url))}
    if kind == 0:
        fields["extra"] = json.dumps(extra)  # Airflow's extra as a JSON string
    elif kind == 1:
        fields["extra"] = draw(json_values)
    elif kind in (2, 3):
        fields["extra"] = extra
    if draw(st.integers(0, 5)) == 0:
        fields[draw(text)] = draw(json_values)  # an unknown top-level field
    document = json.dumps(fields, allow_nan=True)
    if draw(st.integers(0, 6)) == 0:  # a syntax error somewhere
        at = draw(st.integers(1, len(document)))
        document = document[:at] + draw(text) + document[at + draw(st.integers(0, 3)):]
    return document


toml_extras_values = json_values | st.datetimes(min_value=dt.datetime(1970, 1, 1)) | st.dates() | st.times()


@st.composite
def hostile_toml(draw, sts_url: str) -> str:
    table = {}
    if draw(st.booleans()):
        table.update(login=ACCESS_KEY, password=SECRET_KEY, **valid_base(sts_url))
    table.update(draw(extras(sts_url)))
    for key in draw(st.lists(st.sampled_from(["login", "password", "port", "schema", "conn_type", "extra"]),
                             max_size=2)):
        table[key] = draw(toml_extras_values | extras(sts_url))
    if draw(st.booleans()):
        table[draw(text)] = draw(toml_extras_values)
    lines = [f"{toml_key(k)} = {toml_value(v)}" for k, v in draw(
        st.dictionaries(text.filter(lambda k: k not in ("connections", "session_factory")), toml_extras_values,
                        max_size=2)).items()]
    lines.append("[connections.prod]" if draw(st.integers(0, 5)) else f"[connections.{toml_key(draw(text))}]")
    lines += [f"{toml_key(k)} = {toml_value(v)}" for k, v in table.items()]
    if draw(st.integers(0, 8)) == 0:
        lines.append("[connections]\nprod = 1")  # a connection that is not a table
    document = "\n".join(lines) + "\n"
    if draw(st.integers(0, 6)) == 0:
        at = draw(st.integers(0, len(document)))
        document = document[:at] + draw(text) + document[at:]
    return document


# Airflow connections files ($CREDPROC_AIRFLOW_CONNECTIONS_FILE): an extension, and the text.
AIRFLOW_FILE_EXTENSIONS = [".json", ".yaml", ".yml", ".env", ".ENV", ".txt", ""]


def _airflow_document(draw, extension: str, entries: dict) -> str:
    """``entries`` written in the format of ``extension`` (anything for an unknown one)."""
    kind = extension.lower()
    if kind in (".yaml", ".yml"):
        import yaml

        return yaml.safe_dump(entries, allow_unicode=draw(st.booleans()), sort_keys=False)
    if kind == ".env":
        return "".join(f"{k}={v if isinstance(v, str) else json.dumps(v)}\n" for k, v in entries.items())
    return json.dumps(entries, allow_nan=True, indent=draw(st.sampled_from([None, 2])))


@st.composite
def hostile_airflow_files(draw, sts_url: str) -> tuple[str, str]:
    """(extension, text): what Airflow's backend reads, with hostile content and shapes."""
    extension = draw(st.sampled_from(AIRFLOW_FILE_EXTENSIONS))
    extra = {**(valid_base(sts_url) if draw(st.booleans()) else {}), **draw(extras(sts_url))}
    obj = draw(st.fixed_dictionaries({}, optional={
        "conn_id": st.just("prod") | text, "conn_type": st.just("aws") | json_values,
        "login": st.just(ACCESS_KEY) | json_values, "password": st.just(SECRET_KEY) | json_values,
        "extra": st.just(json.dumps(extra)) | st.just(extra) | json_values, "extra_dejson": st.just(extra) | json_values,
        "uri": hostile_uris(sts_url) | json_values, "team_name": json_values, "port": json_values,
        "description": json_values}))
    if draw(st.integers(0, 5)) == 0:
        obj[draw(text)] = draw(json_values)  # a key Airflow's Connection does not take
    value = draw(st.one_of(st.just(obj), hostile_uris(sts_url), hostile_json(sts_url), json_values,
                           st.lists(st.just(obj) | hostile_uris(sts_url), max_size=2)))
    conn_id = "prod" if draw(st.integers(0, 5)) else draw(text)
    entries = {conn_id: value, **draw(st.dictionaries(text, json_values, max_size=2))}
    document = _airflow_document(draw, extension, entries)
    if draw(st.integers(0, 6)) == 0:  # a syntax error somewhere
        at = draw(st.integers(0, len(document)))
        document = document[:at] + draw(text) + document[at + draw(st.integers(0, 3)):]
    return extension, document


@st.composite
def working_airflow_files(draw, sts_url: str) -> tuple[tuple[str, str], dict]:
    spec = draw(working(sts_url))
    extension = draw(st.sampled_from([".json", ".yaml", ".env"]))
    if extension == ".env":
        uri, expect = draw(working_uris(sts_url))
        return (extension, f"# exported\nprod={uri}\n"), expect
    extra = spec["extra"]
    conn = {"conn_type": "aws", "login": spec["login"], "password": spec["password"],
            "extra": json.dumps(extra) if draw(st.booleans()) else extra}
    return (extension, _airflow_document(draw, extension, {"prod": conn})), spec["expect"]


def either(hostile_strategy, working_strategy):
    """Half hostile text (expect nothing but the property), half working connections."""
    return hostile_strategy.map(lambda doc: (doc, None)) | working_strategy


# -- the properties -----------------------------------------------------------------------------


@examples
def test_uri_definitions(sts, hostile, n):
    @PROPERTY
    @given(either(hostile_uris(sts.url), working_uris(sts.url)))
    def check(case):
        value, expect = case
        before = len(sts.requests)
        result = hostile({VARIABLE: value})
        if expect:
            check_round_trip(result, expect, sts, before)

    check()
    hostile.report("URI definitions")


@examples
def test_json_definitions(sts, hostile, n):
    @PROPERTY
    @given(either(hostile_json(sts.url), working_json(sts.url)))
    def check(case):
        value, expect = case
        before = len(sts.requests)
        result = hostile({VARIABLE: value})
        if expect:
            check_round_trip(result, expect, sts, before)

    check()
    hostile.report("JSON definitions")


@examples
def test_toml_definitions(sts, hostile, tmp_path, n):
    @PROPERTY
    @given(either(hostile_toml(sts.url), working_toml(sts.url)))
    def check(case):
        document, expect = case
        path = tmp_path / "credproc.toml"
        path.write_text(document, encoding="utf-8")
        before = len(sts.requests)
        result = hostile({"CREDPROC_CONFIG": str(path)})
        if expect:
            check_round_trip(result, expect, sts, before)

    check()
    hostile.report("TOML files")


@examples
def test_airflow_connections_files(sts, hostile, tmp_path, n):
    """The file Airflow's LocalFilesystemBackend reads, in its three formats: a working
    connection round-trips; anything else is one line (no traceback, no secret)."""
    pytest.importorskip("yaml")

    @PROPERTY
    @given(either(hostile_airflow_files(sts.url), working_airflow_files(sts.url)))
    def check(case):
        (extension, document), expect = case
        path = tmp_path / f"connections{extension}"
        path.write_text(document, encoding="utf-8")
        before = len(sts.requests)
        result = hostile({"CREDPROC_CONFIG": str(tmp_path / "none.toml"),
                          "CREDPROC_AIRFLOW_CONNECTIONS_FILE": str(path)})
        if expect:
            check_round_trip(result, expect, sts, before)

    check()
    hostile.report("Airflow connections files")


@half_examples
def test_connection_ids(sts, hostile, n):
    """Any id on the command line: found through its variable name, or an error naming it."""
    ids = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=70)

    @HALF
    @given(ids)
    def check(conn_id):
        variable = "CREDPROC_CONN_" + "".join(c if c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_" else "_"
                                              for c in conn_id.upper())
        result = hostile({variable: conn_uri(sts.url, role_arn=ROLE_ARN)}, args=("--conn", conn_id))
        if not conn_id.startswith("-"):  # "-x" is a flag to argparse: an error, checked above
            assert result.returncode == 0, result.stderr

    check()


# -- cache files ----------------------------------------------------------------------------------


def _header_with_digest(fields: list[bytes], body: bytes) -> bytes:
    return b" ".join([*fields, sha256(b" ".join(fields) + b"\n" + body).hexdigest()[:32].encode()])


@st.composite
def cache_contents(draw, real: bytes) -> bytes:
    """Bytes for the entry file: garbage, a mutated real entry, or a header of random fields."""
    header, _, body = real.partition(b"\n")
    fields = header.split(b" ")
    kind = draw(st.integers(0, 5))
    if kind == 0:
        return draw(st.binary(max_size=3000))
    if kind == 1:  # the real entry, some bytes changed
        data = bytearray(real)
        for _ in range(draw(st.integers(1, 4))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        return bytes(data)
    if kind == 2:  # the real entry cut short, or with more after it
        return real[:draw(st.integers(0, len(real)))] + draw(st.binary(max_size=50))
    if kind == 3:  # random header fields (the digest only matches by chance)
        fields = [draw(st.sampled_from([f, b"", b"nan", b"inf", b"-1", b"1e309"]) | st.binary(max_size=12))
                  for f in fields]
        return b" ".join(fields) + b"\n" + draw(st.sampled_from([body, b""]) | st.binary(max_size=200))
    if kind == 4:  # random times and conn id under a recomputed digest: well formed, maybe stale
        numbers = (st.sampled_from([b"0", b"-1", b"nan", b"inf", b"-inf", b"1e309", b"9" * 400])
                   | st.floats().map(lambda f: repr(f).encode()))
        times = [draw(numbers), draw(numbers)]
        new = [*fields[:3], *times, draw(st.sampled_from([fields[5], b"", b"zz"]))]
        return _header_with_digest(new, body) + b"\n" + body
    return b"\n" * draw(st.integers(0, 3)) + draw(st.binary(max_size=100)) + real  # the entry after junk


@half_examples
def test_cache_file_contents(sts, env, hostile, n):
    """Whatever the entry file holds, the run succeeds (STS is up): a valid entry is served,
    anything else is a miss with at most one warning naming the entry. Bodies under a
    *recomputed* digest are left to tests/test_hostile_surroundings.py (planted entries)."""
    first = hostile({VARIABLE: _valid(sts.url)})  # the same environment, hence the same entry, as below
    assert first.returncode == 0, first.stderr
    (entry,) = Path(env["CREDPROC_CACHE_DIR"]).glob("*.entry")
    real = entry.read_bytes()
    real_body = real.partition(b"\n")[2]

    @HALF
    @given(cache_contents(real))
    @example(real)  # the control: credproc's own entry, untouched, is a hit
    def check(data):
        entry.write_bytes(data)
        entry.chmod(0o600)
        result = hostile({VARIABLE: _valid(sts.url)})
        assert result.returncode == 0, result.stderr
        lines = result.stderr.splitlines()
        assert len(lines) <= 1 and all(str(entry) in line for line in lines), result.stderr
        printed = result.stdout.encode()[:-1]
        seen.add("hit" if printed == real_body else "miss")
        if printed != real_body:  # not the original credentials: a fresh fetch, stored whole
            stored = entry.read_bytes()
            assert stored.partition(b"\n")[2] == printed, "the printed credentials were not stored"

    seen: set[str] = set()
    check()
    assert seen == {"hit", "miss"}, f"the examples never reached credproc's entry: {seen}"


def _valid(sts_url: str) -> str:
    return conn_uri(sts_url, role_arn=ROLE_ARN)
