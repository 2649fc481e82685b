"""Kerberos, for SAML federation (assume_role_with_saml): a real MIT KDC and an IdP page
behind SPNEGO.

A Kerberos realm on 127.0.0.1, built once per session in a temporary directory (kdb5_util,
kadmin.local, krb5kdc in the foreground, a private krb5.conf/kdc.conf): a user principal whose
tickets each test gets with ``kinit`` from the password on stdin, and an HTTP/localhost
service principal with a keytab. In front of it, an identity provider protected by SPNEGO: a
stdlib HTTP server whose acceptor is the python ``gssapi`` package (with a replay cache, as
real IdPs have), answering the HTML form of the SAML POST binding with a base64 assertion
moto's STS accepts. Knobs (reset for every test): HTTP faults after authentication, the kind
of page, mutual-authentication tokens; counters per kind of answer.

Fixtures: ``kdc`` (the session's realm), ``idp`` (the IdP for one test; its URL is
http://localhost:PORT/idp, since the service principal is HTTP/localhost), ``krb_env``
(``env`` plus KRB5_CONFIG and a ticket cache holding the user's fresh ticket).
"""

from __future__ import annotations

import base64
import functools
import os
import shutil
import subprocess
import threading
import time
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from helpers import ACCOUNT, ROLE_ARN, free_port
from servers.loopback import LoopbackServer

KRB_REALM = "CREDPROC.TEST"
KRB_USER = f"alice@{KRB_REALM}"
KRB_PASSWORD = "alice-Kerberos-pw-1"
SAML_PRINCIPAL_ARN = f"arn:aws:iam::{ACCOUNT}:saml-provider/credproc-test-idp"
_KRB_TOOLS = ("kdb5_util", "kadmin.local", "krb5kdc", "kinit", "kdestroy")
_KRB_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin", "/usr/local/sbin"])
KRB_PACKAGES = "apt-get install -y krb5-kdc krb5-admin-server krb5-user libkrb5-dev"


class Kdc:
    """An MIT KDC for realm CREDPROC.TEST on 127.0.0.1, with its files under ``root``."""

    def __init__(self, root: Path):
        self.root = root
        self.tools = {name: shutil.which(name, path=_KRB_PATH) for name in _KRB_TOOLS}
        self.port = free_port()
        self.krb5_conf = root / "krb5.conf"
        self.keytab = root / "http.keytab"
        kdc_conf = root / "kdc.conf"
        self.krb5_conf.write_text(f"""\
[libdefaults]
    default_realm = {KRB_REALM}
    dns_lookup_kdc = false
    dns_lookup_realm = false
    rdns = false
    dns_canonicalize_hostname = false
    udp_preference_limit = 1
    default_ccache_name = FILE:{root}/ccache-unused
[realms]
    {KRB_REALM} = {{
        kdc = 127.0.0.1:{self.port}
    }}
[domain_realm]
    localhost = {KRB_REALM}
""")
        kdc_conf.write_text(f"""\
[kdcdefaults]
    kdc_listen = 127.0.0.1:{self.port}
    kdc_tcp_listen = 127.0.0.1:{self.port}
[realms]
    {KRB_REALM} = {{
        database_name = {root}/principal
        key_stash_file = {root}/stash
        acl_file = {root}/kadm5.acl
        max_life = 10h
    }}
[logging]
    kdc = FILE:{root}/kdc.log
""")
        self.admin_env = {**os.environ, "KRB5_CONFIG": str(self.krb5_conf), "KRB5_KDC_PROFILE": str(kdc_conf),
                          "KRB5CCNAME": f"FILE:{root}/ccache-unused"}
        self._admin([self.tools["kdb5_util"], "create", "-s", "-r", KRB_REALM, "-P", "master-pw-credproc"])
        self._admin([self.tools["kadmin.local"], "-q", f"addprinc -pw {KRB_PASSWORD} {KRB_USER}"])
        self._admin([self.tools["kadmin.local"], "-q", f"addprinc -randkey HTTP/localhost@{KRB_REALM}"])
        self._admin([self.tools["kadmin.local"], "-q", f"ktadd -k {self.keytab} HTTP/localhost@{KRB_REALM}"])
        # -n: stay in the foreground, so the fixture owns the process and stops it by its id.
        self.process = subprocess.Popen([self.tools["krb5kdc"], "-n", "-r", KRB_REALM], env=self.admin_env,
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while True:  # ready when it answers
            if self.process.poll() is not None:
                raise RuntimeError(f"krb5kdc exited with {self.process.returncode}; see {root}/kdc.log")
            try:
                self.kinit(root / "ccache-probe")
                break
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def _admin(self, argv: list) -> None:
        result = subprocess.run(argv, env=self.admin_env, capture_output=True, text=True, timeout=60,
                                stdin=subprocess.DEVNULL)
        if result.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed: {result.stderr.strip()}")

    def client_env(self, ccache: Path) -> dict[str, str]:
        return {"KRB5_CONFIG": str(self.krb5_conf), "KRB5CCNAME": f"FILE:{ccache}"}

    def kinit(self, ccache: Path, password: str = KRB_PASSWORD) -> None:
        """A ticket for alice in ``ccache``, from the password on kinit's stdin."""
        result = subprocess.run([self.tools["kinit"], KRB_USER], input=password + "\n", capture_output=True,
                                text=True, timeout=30, env={**os.environ, **self.client_env(ccache)})
        if result.returncode != 0:
            raise RuntimeError(f"kinit failed: {result.stderr.strip()}")

    def kdestroy(self, ccache: Path) -> None:
        subprocess.run([self.tools["kdestroy"]], capture_output=True, timeout=30,
                       env={**os.environ, **self.client_env(ccache)}, check=True)

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def saml_assertion(role_arn: str, principal_arn: str, session_name: str, duration: int | None = None) -> str:
    """A base64 SAML response as an IdP posts it to AWS, with a unique ID (so every page
    holds a different assertion). Unsigned: moto checks the structure only."""
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    attributes = [("https://aws.amazon.com/SAML/Attributes/Role", f"{role_arn},{principal_arn}"),
                  ("https://aws.amazon.com/SAML/Attributes/RoleSessionName", session_name)]
    if duration is not None:
        attributes.append(("https://aws.amazon.com/SAML/Attributes/SessionDuration", str(duration)))
    values = "".join(f'<saml:Attribute Name="{name}"><saml:AttributeValue>{value}</saml:AttributeValue>'
                     "</saml:Attribute>" for name, value in attributes)
    xml = (f'<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" '
           f'xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_{uuid.uuid4().hex}" Version="2.0" '
           f'IssueInstant="{now}" Destination="https://signin.aws.amazon.com/saml">'
           "<saml:Issuer>http://localhost/idp</saml:Issuer>"
           '<samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status>'
           f'<saml:Assertion ID="_{uuid.uuid4().hex}" Version="2.0" IssueInstant="{now}">'
           "<saml:Issuer>http://localhost/idp</saml:Issuer>"
           f"<saml:Subject><saml:NameID>{session_name}</saml:NameID></saml:Subject>"
           f"<saml:AttributeStatement>{values}</saml:AttributeStatement>"
           "</saml:Assertion></samlp:Response>")
    return base64.b64encode(xml.encode()).decode()


# The pages an IdP answers with. {a} is the assertion; {b} a second one.
IDP_PAGES = {
    # ADFS-like, and not well-formed XML (unquoted attribute, <br>, unclosed <p>).
    "form": """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Working...</title></head>
<body onload="document.forms[0].submit()"><br>
<form method=POST name="hiddenform" action="https://signin.aws.amazon.com:443/saml">
<input type="hidden" name="SAMLResponse" value="{a}" /><input type="hidden" name="RelayState" value="">
<noscript><p>Script is disabled. Click Submit to continue.<input type="submit" value="Submit"></noscript>
</form></body></html>""",
    # The same in upper case, as old IdPs (and the seed's XPath) write it.
    "upper": """<HTML><HEAD><TITLE>Working...</TITLE></HEAD>
<BODY ONLOAD="document.forms[0].submit()"><FORM METHOD="POST" ACTION="https://signin.aws.amazon.com/saml">
<INPUT TYPE="HIDDEN" NAME="SAMLResponse" VALUE="{a}"><INPUT TYPE="SUBMIT" VALUE="Submit">
</FORM></BODY></HTML>""",
    # A login page instead of the form: no SAMLResponse field.
    "nofield": """<!DOCTYPE html><html><body><h1>Sign in</h1><form method="post" action="/login">
<input type="text" name="UserName"><input type="password" name="Password">
<input type="hidden" name="Context" value="c2Vzc2lvbi1jb250ZXh0LTEyMzQ1Njc4OTA="></form></body></html>""",
    # Two forms with two different assertions: which one would STS want?
    "two": """<html><body><form><input type="hidden" name="SAMLResponse" value="{a}"></form>
<form><input type="hidden" name="SAMLResponse" value="{b}"></form></body></html>""",
    # XXE, external parameter entity, and "billion laughs", with the real assertion in its field.
    "xxe": """<?xml version="1.0" encoding="utf-8"?>
<!DOCTYPE html [
  <!ENTITY xxe SYSTEM "file://{xxe_file}">
  <!ENTITY xxehttp SYSTEM "{xxe_url}">
  <!ENTITY % remote SYSTEM "{xxe_url}-dtd">
  %remote;
  <!ENTITY lol "lol">
  <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
  <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
  <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
  <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
  <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
  <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
  <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<html><body><p>&lol9; &xxe; &xxehttp;</p>
<form method="post" action="https://signin.aws.amazon.com/saml">
<input type="hidden" name="SAMLResponse" value="{a}"><input type="hidden" name="RelayState" value="&xxe;&xxehttp;">
</form></body></html>""",
}


# Answers too large for any IdP, streamed rather than built (see Handler.flood): as the page,
# as the body of the 401 that asks for Kerberos, as the body of a redirect to the page.
IDP_FLOODS = ("huge", "endless", "gzip-bomb", "challenge-bomb", "redirect-bomb")


@functools.lru_cache(maxsize=None)
def _gzip_bomb(size: int) -> bytes:
    """A gzip stream of ``size`` zero bytes, a thousandth of that on the wire: one member of
    16 MiB repeated (a gzip stream may be many members; HTTP clients inflate them all)."""
    import gzip

    member = gzip.compress(bytes(16 << 20), compresslevel=9, mtime=0)
    return member * max(1, size >> 24)


class SpnegoIdp:
    """An IdP page behind SPNEGO, answered by a real Kerberos acceptor (python gssapi).

    Per test (``reset``): ``page`` (a key of IDP_PAGES or IDP_FLOODS, whose size is
    ``flood_bytes``), ``faults`` (HTTP statuses answered
    after a successful authentication, first to last), ``mutual_token`` (send the acceptor's
    token back, which mutual authentication needs), ``delay`` (seconds before answering a
    page), ``xxe_file``. Records: ``count(kind)`` for "challenge" (401 Negotiate to a request
    without a token), "rejected" (a token the acceptor refused, replays included),
    "authenticated", "fault", "page" and "xxe" (a fetch of the XXE payload's URL);
    ``tokens``, ``principals``, ``assertions`` (each page's first one), ``rejections``.
    """

    def __init__(self, keytab: Path, rcache: Path):
        import gssapi

        self.gssapi = gssapi
        # The replay cache in our temp dir: a token sent twice is refused, as by real IdPs.
        self.creds = gssapi.Credentials(usage="accept", store={"keytab": str(keytab), "rcache": f"file2:{rcache}"})
        self.lock = threading.Lock()
        idp = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                idp._handle(self)

            def answer(self, status: int, body: str, headers: dict | None = None) -> None:
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

            def flood(self, kind: str, total: int, headers: dict, status: int = 200) -> None:
                """A body of ``total`` bytes: "huge" declares its length, "endless" does not (it
                ends when the connection closes), the "-bomb"s inflate to ``total`` zero bytes."""
                self.send_response(status)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                for k, v in headers.items():
                    self.send_header(k, v)
                if kind.endswith("-bomb"):
                    body = _gzip_bomb(total)
                    self.send_header("Content-Encoding", "gzip")
                    self.send_header("Content-Length", str(len(body)))
                    chunks = iter([body])
                else:
                    if kind == "huge":
                        self.send_header("Content-Length", str(total))
                    self.send_header("Connection", "close")
                    self.close_connection = True
                    block = b"<p>" + b"x" * (64 * 1024 - 8) + b"</p>\n"  # 64 KiB
                    chunks = (block for _ in range(total // len(block)))
                self.end_headers()
                try:
                    for chunk in chunks:
                        self.wfile.write(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client stopped reading: what a bounded reader does

        self.server = LoopbackServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://localhost:{self.port}/idp"  # the service principal is HTTP/localhost
        self.xxe_url = f"http://127.0.0.1:{self.port}/xxe"
        self.reset()
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def reset(self) -> None:
        with self.lock:
            # Answers still pending from the last test (a delayed page its client gave up
            # on) are dropped, not recorded in this test's counters.
            self.generation = getattr(self, "generation", 0) + 1
            if hasattr(self, "wake"):
                self.wake.set()
            self.wake = threading.Event()
            self.page = "form"
            self.faults: list[int] = []
            self.mutual_token = True
            self.delay = 0.0
            self.xxe_file: str = "/nonexistent"
            self.flood_bytes = 1 << 30  # the size of the IDP_FLOODS pages
            self.role_arn = ROLE_ARN
            self.principal_arn = SAML_PRINCIPAL_ARN
            self.session_duration: int | None = None
            self.calls: dict[str, int] = {}
            self.tokens: list[str] = []
            self.principals: list[str] = []
            self.assertions: list[str] = []
            self.rejections: list[str] = []

    def count(self, kind: str) -> int:
        with self.lock:
            return self.calls.get(kind, 0)

    def _record(self, kind: str) -> None:
        with self.lock:
            self.calls[kind] = self.calls.get(kind, 0) + 1

    def _handle(self, request) -> None:
        if request.path.startswith("/xxe"):
            self._record("xxe")
            request.answer(200, "XXE-HTTP-PAYLOAD-FETCHED")
            return
        with self.lock:
            generation, wake = self.generation, self.wake
        header = request.headers.get("Authorization", "")
        if not header.startswith("Negotiate "):
            self._record("challenge")
            if self.page == "challenge-bomb":
                request.flood(self.page, self.flood_bytes, {"WWW-Authenticate": "Negotiate"}, status=401)
                return
            request.answer(401, "<html><body>Kerberos required</body></html>", {"WWW-Authenticate": "Negotiate"})
            return
        token = header.split(None, 1)[1].strip()
        with self.lock:
            self.tokens.append(token)
        context = self.gssapi.SecurityContext(creds=self.creds, usage="accept")
        try:
            out = context.step(base64.b64decode(token))
            # SPNEGO defers an error that comes with an error token: reading the state raises it.
            failure = None if context.complete else "the security context is not complete"
        except self.gssapi.exceptions.GSSError as e:
            failure = e.gen_message()
        if failure:
            self._record("rejected")
            with self.lock:
                self.rejections.append(failure)
            request.answer(401, "<html><body>Kerberos failed</body></html>", {"WWW-Authenticate": "Negotiate"})
            return
        principal = str(context.initiator_name)
        self._record("authenticated")
        with self.lock:
            self.principals.append(principal)
            fault = self.faults.pop(0) if self.faults else None
            page, delay = self.page, self.delay
        headers = {}
        if out and self.mutual_token:
            headers["WWW-Authenticate"] = "Negotiate " + base64.b64encode(out).decode()
        if fault:
            self._record("fault")
            request.answer(fault, "<html><body>Service Unavailable</body></html>", headers)
            return
        if delay:
            wake.wait(delay)
            with self.lock:
                if generation != self.generation:
                    return  # the test is over: no answer, nothing recorded
        session_name = principal.split("@")[0]
        first = saml_assertion(self.role_arn, self.principal_arn, session_name, self.session_duration)
        second = saml_assertion(self.role_arn, self.principal_arn, session_name + "-2", self.session_duration)
        with self.lock:
            self.assertions.extend([first, second] if page == "two" else [first])
        if page == "redirect-bomb" and not request.path.endswith("/landing"):
            self._record("redirect")
            request.flood(page, self.flood_bytes, {**headers, "Location": "/idp/landing"}, status=302)
            return
        if page in IDP_FLOODS:
            self._record("page")
            request.flood(page, self.flood_bytes, headers)
            return
        body = IDP_PAGES[page]
        for key, value in (("{a}", first), ("{b}", second), ("{xxe_file}", self.xxe_file),
                           ("{xxe_url}", self.xxe_url)):
            body = body.replace(key, value)
        self._record("page")
        request.answer(200, body, headers)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="session")
def kdc(tmp_path_factory):
    """The session's KDC; skips (a failure in CI) when MIT Kerberos is not installed."""
    missing = [name for name in _KRB_TOOLS if not shutil.which(name, path=_KRB_PATH)]
    if missing:
        pytest.skip(f"MIT Kerberos tools missing ({', '.join(missing)}): {KRB_PACKAGES}")
    server = Kdc(tmp_path_factory.mktemp("kdc"))
    yield server
    server.close()


@pytest.fixture(scope="session")
def _spnego_idp(kdc):
    pytest.importorskip("gssapi", reason="pip install 'credproc[saml]' (needs libkrb5-dev and gcc)")
    # The acceptor runs in this process: it reads the test realm's krb5.conf (no DNS lookups,
    # no reverse DNS), never the machine's /etc/krb5.conf, whose lookups can stall an answer.
    saved = os.environ.get("KRB5_CONFIG")
    os.environ["KRB5_CONFIG"] = str(kdc.krb5_conf)
    server = SpnegoIdp(kdc.keytab, kdc.root / "idp.rcache2")
    yield server
    server.close()
    if saved is None:
        os.environ.pop("KRB5_CONFIG", None)
    else:
        os.environ["KRB5_CONFIG"] = saved


@pytest.fixture
def idp(_spnego_idp):
    """The SPNEGO-protected IdP for one test: ``idp.url``, knobs and counters (see SpnegoIdp)."""
    _spnego_idp.reset()
    yield _spnego_idp
    _spnego_idp.reset()


@pytest.fixture
def krb_env(env, kdc, tmp_path):
    """``env`` plus a private krb5.conf and a ticket cache holding alice's fresh ticket
    (``krb_env["KRB5CCNAME"]``); no Kerberos setting leaks in from the developer's own."""
    ccache = tmp_path / "krb5cc"
    kdc.kinit(ccache)
    for key in [k for k in env if k.startswith("KRB5")]:
        del env[key]
    env.update(kdc.client_env(ccache))
    return env
