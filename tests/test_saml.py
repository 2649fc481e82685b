"""SAML federation end to end: the installed ``credproc`` executable, a real MIT KDC, a
SPNEGO-protected IdP (a real Kerberos acceptor with a replay cache) and moto's STS.

What the user's ticket cache holds decides the IdP's answer; the assertion the IdP hands
out must arrive unchanged at STS (seen by the counting proxy), in an unsigned request, and
never on stderr. Fixtures: ``kdc``, ``idp``, ``krb_env`` in servers/kerberos.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import tomllib
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from helpers import ACCOUNT, ROLE_ARN, ok, one_error, run_together, sts_at, sts_endpoint
from servers.kerberos import KRB_USER, SAML_PRINCIPAL_ARN

integration = pytest.mark.integration  # all but the pure-logic tests at the end

CONN = "saml"
NAMED = f"'{CONN}'"  # what every error line must say: the connection
VARIABLE = "CREDPROC_CONN_SAML"
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "aws-config" / "saml.toml"


# -- helpers ---------------------------------------------------------------------------------


def define(env: dict, sts, idp, *, extra: dict | None = None, **settings) -> dict:
    """``env`` with connection "saml" defined: the role at the local STS through ``idp``.

    ``settings`` go into the assume_role_with_saml table (None removes a key)."""
    table = {"principal_arn": SAML_PRINCIPAL_ARN, "idp_url": idp.url, "idp_auth_method": "http_spegno_auth",
             **settings}
    table = {k: v for k, v in table.items() if v is not None}
    definition = {"role_arn": ROLE_ARN, "assume_role_method": "assume_role_with_saml",
                  **sts_at(sts.url), "assume_role_with_saml": table,
                  **(extra or {})}
    env[VARIABLE] = json.dumps({"conn_type": "aws", "extra": definition})
    return env


def saml_call(sts) -> dict:
    """The one AssumeRoleWithSAML request STS received."""
    calls = [r for r in sts.requests if r["action"] == "AssumeRoleWithSAML"]
    assert len(calls) == 1, [r["action"] for r in sts.requests]
    return calls[0]


def assert_federated(result, sts, idp) -> dict:
    """The run printed the role's credentials, obtained with the assertion the IdP handed out."""
    out = ok(result, temporary=True)
    call = saml_call(sts)
    params, headers = call["params"], {k.lower(): v for k, v in call["headers"].items()}
    assert params["RoleArn"] == ROLE_ARN
    assert params["PrincipalArn"] == SAML_PRINCIPAL_ARN
    assert params["SAMLAssertion"] == idp.assertions[-1]
    assert "RoleSessionName" not in params  # not a parameter of AssumeRoleWithSAML
    assert "authorization" not in headers  # unsigned: no AWS credentials involved
    assert idp.principals and set(idp.principals) == {KRB_USER}  # Kerberos said who we are
    assert out["AccountId"] == ACCOUNT and out["AccessKeyId"].startswith("ASIA")
    assert sts.count("AssumeRole") == 0
    return out


def secrets_absent(text: str, idp, out: dict | None = None) -> None:
    for assertion in idp.assertions:
        assert assertion not in text
        assert assertion[:40] not in text  # not even a prefix (a truncated dump)
    for token in idp.tokens:
        assert token[:40] not in text  # nor a Negotiate token
    if out:
        assert out["SecretAccessKey"] not in text and out["SessionToken"] not in text


# -- success ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mutual, method", [
    (None, "http_spegno_auth"),
    ("REQUIRED", "http_spegno_auth"),
    ("OPTIONAL", "http_spnego_auth"),
    ("DISABLED", "http_spnego_auth"),
    ("required", "HTTP_SPEGNO_AUTH"),
])
@integration
def test_federates_with_each_mutual_authentication(sts, idp, krb_env, run, mutual, method):
    env = define(krb_env, sts, idp, mutual_authentication=mutual, idp_auth_method=method)
    result = run(["--conn", CONN], env)
    out = assert_federated(result, sts, idp)
    assert result.stderr == ""
    assert idp.count("challenge") == 1 and idp.count("authenticated") == 1 and idp.count("page") == 1
    assert idp.count("rejected") == 0

    # Cached like any expiring credentials: the next run asks neither the IdP nor STS.
    again = run(["--conn", CONN], env)
    assert again.returncode == 0 and again.stdout == result.stdout
    assert idp.count("page") == 1 and sts.count("AssumeRoleWithSAML") == 1
    secrets_absent(result.stderr + again.stderr, idp, out)


@integration
def test_required_mutual_authentication_refuses_an_idp_that_does_not_prove_itself(sts, idp, krb_env, run):
    idp.mutual_token = False  # the IdP sends no Kerberos token back with its page
    env = define(krb_env, sts, idp, mutual_authentication="REQUIRED")
    one_error(run(["--conn", CONN], env), 1, NAMED, "did not authenticate itself", "mutual_authentication")
    assert sts.count("AssumeRoleWithSAML") == 0

    # The same IdP is fine when mutual authentication is optional or off.
    for mode in ("OPTIONAL", "DISABLED"):
        sts.reset()
        define(krb_env, sts, idp, mutual_authentication=mode)
        assert_federated(run(["--conn", CONN, "--no-cache"], env), sts, idp)


@integration
def test_assume_role_kwargs_reach_sts(sts, idp, krb_env, run):
    env = define(krb_env, sts, idp, extra={"assume_role_kwargs": {"DurationSeconds": 1800}},
                 assume_role_kwargs={"PolicyArns": [{"arn": "arn:aws:iam::aws:policy/ReadOnlyAccess"}]})
    assert_federated(run(["--conn", CONN], env), sts, idp)
    params = saml_call(sts)["params"]
    assert params["DurationSeconds"] == "1800"
    assert params["PolicyArns.member.1.arn"] == "arn:aws:iam::aws:policy/ReadOnlyAccess"


@integration
def test_aws_profile_running_this_connection_is_no_loop(sts, idp, krb_env, run, credproc_bin):
    """The SDK runs credproc with AWS_PROFILE set to the profile that runs it. The SAML call
    is unsigned, so that profile's credentials are never resolved: no loop, no refusal."""
    env = define(krb_env, sts, idp)
    Path(env["AWS_CONFIG_FILE"]).write_text(
        f"[profile saml]\ncredential_process = {credproc_bin} --conn {CONN} --profile saml\nregion = us-east-1\n")
    env["AWS_PROFILE"] = "saml"
    assert_federated(run(["--conn", CONN, "--profile", "saml"], env), sts, idp)


# -- finding the assertion in the page -------------------------------------------------------


@pytest.mark.parametrize("page, xpath", [
    ("form", None),  # the default finds the SAMLResponse field...
    ("upper", None),  # ...whatever the case of the markup
    ("form", "//INPUT[@NAME='SAMLResponse']/@VALUE"),  # the seed's upper-case XPath, lower-case page
    ("upper", "//input[@name='SAMLResponse']/@value"),  # a lower-case XPath, upper-case page
    ("upper", "//Form[@Method=\"POST\"]/Input[@Type='HIDDEN']"),  # an element: its value attribute
    ("form", "string(//form[@name='hiddenform']/input[@name='SAMLResponse']/@value)"),
])
@integration
def test_default_and_custom_xpath_whatever_the_case(sts, idp, krb_env, run, page, xpath):
    idp.page = page
    env = define(krb_env, sts, idp, saml_response_xpath=xpath)
    assert_federated(run(["--conn", CONN], env), sts, idp)


@integration
def test_page_without_the_field(sts, idp, krb_env, run):
    idp.page = "nofield"  # e.g. a login page instead of the form
    env = define(krb_env, sts, idp)
    error = one_error(run(["--conn", CONN], env), 1, NAMED, "//input[@name='SAMLResponse']/@value",
                      "matches nothing", "HTTP 200", idp.url)
    assert "Sign in" not in error and "c2Vzc2lvbi1jb250ZXh0" not in error  # the page is not printed

    xpath = "//INPUT[@NAME='SAMLResponse']/@VALUE"
    define(krb_env, sts, idp, saml_response_xpath=xpath)
    one_error(run(["--conn", CONN], env), 1, NAMED, f"saml_response_xpath {xpath!r}", "matches nothing", "HTTP 200")
    assert sts.count("AssumeRoleWithSAML") == 0


@integration
def test_page_with_two_different_assertions(sts, idp, krb_env, run):
    idp.page = "two"
    env = define(krb_env, sts, idp)
    result = run(["--conn", CONN, "--debug"], env)
    assert result.returncode == 1, result.stderr
    assert "matches 2 different values" in result.stderr and "HTTP 200" in result.stderr
    secrets_absent(result.stderr, idp)  # neither assertion, even with --debug's traceback
    assert sts.count("AssumeRoleWithSAML") == 0


@integration
def test_xxe_payload_is_not_expanded(sts, idp, krb_env, run, tmp_path):
    """A page with external entities (a file, a URL, a parameter entity) and a "billion
    laughs": nothing is fetched or read, nothing expands, and the real field still works."""
    fifo = tmp_path / "xxe-fifo"
    os.mkfifo(fifo)
    opened = threading.Event()

    def reader_detector():  # opening a FIFO for writing blocks until someone opens it to read
        try:
            with open(fifo, "w") as f:
                opened.set()
                f.write("XXE-FILE-PAYLOAD")
        except OSError:
            pass

    detector = threading.Thread(target=reader_detector, daemon=True)
    detector.start()
    idp.page, idp.xxe_file = "xxe", str(fifo)
    env = define(krb_env, sts, idp)
    started = time.monotonic()
    try:
        result = run(["--conn", CONN], env, timeout=60)
        elapsed = time.monotonic() - started
        out = assert_federated(result, sts, idp)
        assert not opened.is_set(), "the parser opened the external entity's file"
    finally:
        fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # release the detector
        detector.join(10)
        os.close(fd)
    assert idp.count("xxe") == 0, "the parser fetched an external entity"
    assert "XXE" not in result.stdout + result.stderr and "lollol" not in result.stdout + result.stderr
    assert saml_call(sts)["params"]["SAMLAssertion"] == idp.assertions[-1]
    assert elapsed < 30
    secrets_absent(result.stderr, idp, out)


# Runs argv[2:] and writes its peak RSS (KiB) to argv[1]. Linux carries a process's peak RSS
# across exec, so a child of pytest would start from pytest's own peak (hundreds of MiB
# late in a run): the measured process must be the child of a small one.
PEAK_RSS = ("import resource, subprocess, sys; code = subprocess.call(sys.argv[2:]); "
            "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)); "
            "sys.exit(code)")


@integration
@pytest.mark.parametrize("page", ["huge", "endless", "gzip-bomb", "challenge-bomb", "redirect-bomb"])
def test_huge_page_is_refused_without_reading_it_into_memory(sts, idp, krb_env, credproc_bin, tmp_path, page):
    """A 1 GiB page, with its length declared, undeclared (until the connection closes) or
    as a gzip bomb (1 MiB on the wire), and gzip bombs as the body of the 401 that asks for
    Kerberos or of a redirect: refused once past the 10 MiB limit, quickly, with a small peak
    memory."""
    idp.page = page
    env = define(krb_env, sts, idp)
    peak = tmp_path / "peak-rss-kib"
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-c", PEAK_RSS, str(peak), str(credproc_bin), "--conn", CONN],
                            env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    elapsed = time.monotonic() - started
    one_error(result, 1, NAMED, "larger than 10 MiB", idp.url.split("//")[1])
    peak_mib = int(peak.read_text()) / 1024  # KiB on Linux
    print(f"{page}: refused after {elapsed:.1f} s, peak RSS {peak_mib:.0f} MiB")
    assert peak_mib < 200, f"peak RSS {peak_mib:.0f} MiB: the page was read into memory"
    assert elapsed < 30
    assert idp.count("page") == (0 if page.endswith(("challenge-bomb", "redirect-bomb")) else 1)
    assert idp.count("authenticated") == (0 if page == "challenge-bomb" else 1)
    assert idp.count("redirect") == (1 if page == "redirect-bomb" else 0)
    assert sts.count("AssumeRoleWithSAML") == 0


# -- the Kerberos exchange -------------------------------------------------------------------


@pytest.mark.parametrize("how", ["kdestroy", "no ccache file", "wrong service principal"])
@integration
def test_kerberos_failure_says_kinit(sts, idp, krb_env, run, kdc, tmp_path, how):
    env = define(krb_env, sts, idp)
    if how == "kdestroy":
        kdc.kdestroy(Path(env["KRB5CCNAME"].removeprefix("FILE:")))
    elif how == "no ccache file":
        env["KRB5CCNAME"] = f"FILE:{tmp_path / 'no-such-ccache'}"
    else:  # 127.0.0.1 instead of localhost: GSSAPI asks for HTTP/127.0.0.1, which no keytab holds
        define(krb_env, sts, idp, idp_url=idp.url.replace("localhost", "127.0.0.1"))
    error = one_error(run(["--conn", CONN], env), 1, NAMED, "Kerberos", "kinit", "klist", "HTTP 401")
    assert idp.count("page") == 0 and sts.count("AssumeRoleWithSAML") == 0
    if how == "wrong service principal":
        assert "127.0.0.1" in error


@integration
def test_idp_refuses_a_replayed_token(sts, idp, krb_env, run):
    """The premise of the retry design: the acceptor, like real IdPs, refuses a Negotiate
    token it has seen, which is what a Retry mounted on the session would re-send."""
    env = define(krb_env, sts, idp)
    assert_federated(run(["--conn", CONN], env), sts, idp)
    request = urllib.request.Request(idp.url, headers={"Authorization": f"Negotiate {idp.tokens[-1]}"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 401
    assert idp.count("rejected") == 1 and "replay" in idp.rejections[-1].lower()


@integration
def test_retry_negotiates_afresh_over_two_503s(sts, idp, krb_env, run):
    idp.faults = [503, 503]
    env = define(krb_env, sts, idp, idp_request_retry_kwargs={
        "total": 3, "status_forcelist": [503], "backoff_factor": 0.1})
    assert_federated(run(["--conn", CONN], env), sts, idp)
    assert idp.count("fault") == 2 and idp.count("page") == 1
    assert idp.count("authenticated") == 3 and idp.count("rejected") == 0
    assert len(idp.tokens) == 3 and len(set(idp.tokens)) == 3  # a new token for every attempt


@integration
def test_idp_errors_without_and_beyond_retries(sts, idp, krb_env, run):
    idp.faults = [503]
    env = define(krb_env, sts, idp)  # no idp_request_retry_kwargs: no retry
    one_error(run(["--conn", CONN], env), 1, NAMED, "HTTP 503", "1 attempt")
    assert idp.count("fault") == 1

    idp.reset()
    idp.faults = [503] * 5
    define(krb_env, sts, idp, idp_request_retry_kwargs={"total": 2, "status_forcelist": [503]})
    one_error(run(["--conn", CONN], env), 1, NAMED, "HTTP 503", "3 attempts")
    assert idp.count("fault") == 3 and idp.count("page") == 0
    assert sts.count("AssumeRoleWithSAML") == 0


@integration
def test_idp_timeout_from_idp_request_kwargs(sts, idp, krb_env, run):
    idp.delay = 5
    env = define(krb_env, sts, idp, idp_request_kwargs={"timeout": 1})
    started = time.monotonic()
    one_error(run(["--conn", CONN], env), 1, NAMED, "did not answer", "Timeout")
    assert time.monotonic() - started < 5
    assert sts.count("AssumeRoleWithSAML") == 0


@integration
def test_idp_has_a_default_timeout(sts, idp, krb_env, run):
    idp.delay = 30  # longer than the default read timeout (10 s)
    env = define(krb_env, sts, idp)
    started = time.monotonic()
    one_error(run(["--conn", CONN], env), 1, NAMED, "did not answer", "read timeout=10")
    assert time.monotonic() - started < 25


@integration
def test_unknown_key_in_the_table_is_a_warning_with_a_suggestion(sts, idp, krb_env, run):
    env = define(krb_env, sts, idp, saml_response_path="//input/@value")
    result = run(["--conn", CONN], env)
    assert_federated(result, sts, idp)
    assert result.stderr.splitlines() == [
        "credproc: warning: connection 'saml' (environment variable CREDPROC_CONN_SAML): unknown key "
        "assume_role_with_saml.saml_response_path is ignored; did you mean 'saml_response_xpath'?"]


# -- secrets ---------------------------------------------------------------------------------


@pytest.mark.parametrize("debug, log_idp_response", [(False, False), (True, False), (False, True)])
@integration
def test_assertion_never_on_stderr(sts, idp, krb_env, run, debug, log_idp_response):
    env = define(krb_env, sts, idp, log_idp_response=log_idp_response or None)
    result = run(["--conn", CONN, *(["--debug"] if debug else [])], env)
    out = assert_federated(result, sts, idp)
    secrets_absent(result.stderr, idp, out)
    if not debug:
        assert result.stderr == ""
    else:
        assert "AssumeRoleWithSAML" in result.stderr  # the debug log did run


@integration
def test_log_idp_response_shows_the_page_only_after_a_warning(sts, idp, krb_env, run):
    env = define(krb_env, sts, idp, log_idp_response=True)
    result = run(["--conn", CONN, "--debug"], env)
    out = assert_federated(result, sts, idp)
    lines = result.stderr.splitlines()
    warning = next(i for i, line in enumerate(lines)
                   if line.startswith("credproc: warning:") and "log_idp_response" in line)
    assert "SAML assertion" in lines[warning]
    assertion = idp.assertions[-1]
    first_shown = next(i for i, line in enumerate(lines) if assertion in line)
    assert first_shown > warning
    assert out["SecretAccessKey"] not in result.stderr and out["SessionToken"] not in result.stderr
    assert idp.tokens[-1][:40] not in result.stderr  # the page, not the Kerberos exchange


# -- the cache and lock ----------------------------------------------------------------------


@integration
def test_stampede_fetches_the_idp_page_once(sts, idp, krb_env, credproc_bin):
    idp.delay = 1.5  # all 20 start while the first one is still at the IdP
    env = define(krb_env, sts, idp)
    results = run_together(credproc_bin, ["--conn", CONN], env, 20)
    assert [(r.returncode, r.stderr) for r in results if r.returncode != 0] == []
    assert idp.count("page") == 1 and idp.count("authenticated") == 1
    assert sts.count("AssumeRoleWithSAML") == 1
    assert len({r.stdout for r in results}) == 1
    secrets_absent("".join(r.stderr for r in results), idp)


# -- configuration errors --------------------------------------------------------------------


@pytest.mark.parametrize("settings, extra, needles", [
    ({"principal_arn": None}, {}, ["assume_role_with_saml.principal_arn"]),
    ({"idp_url": None}, {}, ["assume_role_with_saml.idp_url"]),
    ({"idp_url": "ftp://idp.example.com/saml"}, {}, ["idp_url", "http(s) URL"]),
    ({"principal_arn": "my-idp"}, {}, ["principal_arn", "not an ARN"]),
    ({"idp_auth_method": "http_basic_auth"}, {}, ["idp_auth_method", "http_basic_auth", "http_spegno_auth"]),
    ({"mutual_authentication": "MAYBE"}, {}, ["mutual_authentication", "MAYBE", "REQUIRED"]),
    ({"idp_request_retry_kwargs": {"totl": 3}}, {}, ["idp_request_retry_kwargs", "totl"]),
    ({"idp_request_retry_kwargs": [3]}, {}, ["idp_request_retry_kwargs", "table"]),
    ({"idp_request_kwargs": {"auth": ["u", "p"]}}, {}, ["idp_request_kwargs", "auth"]),
    ({"idp_request_kwargs": {"timeout": "soon"}}, {}, ["idp_request_kwargs.timeout"]),
    ({"idp_request_kwargs": {"verify": "False "}}, {}, None),  # the string "false" is false, not a path
    ({"idp_request_kwargs": {"verify": "/no/such/ca.pem"}}, {}, ["idp_request_kwargs.verify", "/no/such/ca.pem"]),
    ({"saml_response_xpath": "//input[@name='SAMLResponse'"}, {}, ["saml_response_xpath", "not valid XPath"]),
    ({"log_idp_response": "sometimes"}, {}, ["log_idp_response"]),
    ({}, {"assume_role_kwargs": {"RoleSessionName": "me"}}, ["RoleSessionName", "AssumeRoleWithSAML"]),
    ({}, {"assume_role_kwargs": {"ExternalId": "x"}}, ["ExternalId", "DurationSeconds"]),
])
@integration
def test_settings_are_checked_before_the_idp_is_asked(sts, idp, krb_env, run, settings, extra, needles):
    env = define(krb_env, sts, idp, extra=extra, **settings)
    if needles is None:  # a valid variant of a setting tested here
        assert_federated(run(["--conn", CONN], env), sts, idp)
        return
    one_error(run(["--conn", CONN], env), 2, NAMED, *needles)
    assert idp.count("challenge") == 0 and sts.count("AssumeRoleWithSAML") == 0


@integration
def test_table_must_be_a_table(sts, idp, krb_env, run):
    env = define(krb_env, sts, idp, extra={"assume_role_with_saml": "https://idp.example.com"})
    one_error(run(["--conn", CONN], env), 2, NAMED, "assume_role_with_saml must be a table")


@integration
def test_without_the_saml_extra_installed(sts, idp, krb_env, run, tmp_path):
    """gssapi absent (shadowed by a package that cannot be imported): a clear error naming the extra."""
    shadow = tmp_path / "shadow" / "gssapi"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'gssapi'\", name='gssapi')\n")
    env = define(krb_env, sts, idp)
    env["PYTHONPATH"] = str(shadow.parent)
    one_error(run(["--conn", CONN], env), 2, NAMED, "pip install 'credproc[saml]'", "gssapi", "libkrb5-dev")
    assert idp.count("challenge") == 0


# -- the example -----------------------------------------------------------------------------


@integration
def test_example_connections_work(sts, idp, krb_env, run):
    text = EXAMPLE.read_text()
    assert text.startswith("# ")
    connections = tomllib.loads(text)["connections"]
    assert connections
    for conn_id, table in connections.items():
        saml = table["assume_role_with_saml"]
        assert table["assume_role_method"] == "assume_role_with_saml"
        assert saml["idp_auth_method"] in ("http_spegno_auth", "http_spnego_auth")
        # The same table, pointed at the local IdP and STS, for the IdP's principal and role.
        table = {**table, **sts_endpoint(sts.url), "role_arn": ROLE_ARN,
                 "assume_role_with_saml": {**saml, "idp_url": idp.url, "principal_arn": SAML_PRINCIPAL_ARN}}
        krb_env[f"CREDPROC_CONN_{conn_id.upper().replace('-', '_')}"] = json.dumps({"extra": table})
        sts.reset()
        result = run(["--conn", conn_id], krb_env)
        assert result.stderr == "", result.stderr
        assert_federated(result, sts, idp)


# -- pure logic: reading a page (in-process, no servers) -----------------------------------


def test_xpath_names_are_lower_cased_outside_string_literals():
    from credproc.methods.saml.page import lower_names

    assert lower_names("//INPUT[@NAME='SAMLResponse']/@VALUE") == "//input[@name='SAMLResponse']/@value"
    assert lower_names('//Form[@ID="Main Form"]//INPUT') == '//form[@id="Main Form"]//input'
    assert lower_names("CONTAINS(@Name, \"It's\")") == "contains(@name, \"It's\")"
    assert lower_names("//A[@B='unclosed") == "//a[@b='unclosed"


def test_finder_reads_wrapped_base64_and_refuses_what_is_not_an_assertion():
    pytest.importorskip("lxml")
    from credproc.methods.saml.page import BadXPath, PageError, compile_xpath

    wrapped = "PHNhbWxwOlJlc3BvbnNl\n  IHhtbG5zOnNhbWxwPSJ1cm4i\n"
    page = f'<form><input type=hidden name=SAMLResponse value="{wrapped}"></form>'.encode()
    assert compile_xpath(None).find(page) == "PHNhbWxwOlJlc3BvbnNlIHhtbG5zOnNhbWxwPSJ1cm4i"
    with pytest.raises(PageError, match="not base64"):
        compile_xpath(None).find(b'<input name="SAMLResponse" value="not base64!">')
    with pytest.raises(PageError, match="empty or not HTML"):
        compile_xpath(None).find(b"")
    with pytest.raises(BadXPath, match="bool"):
        compile_xpath("count(//input) > 0").find(page)
    with pytest.raises(BadXPath, match="not valid XPath"):
        compile_xpath("//input[")
