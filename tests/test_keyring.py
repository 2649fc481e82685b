"""Secrets in the OS keyring: ``credproc secret set/delete``, and connections whose secret is
only in the keyring, through the installed executable.

Every test chooses its backend explicitly with PYTHON_KEYRING_BACKEND: keyrings.alt's
plaintext file (under a temporary XDG_DATA_HOME), keyring's own "fail" backend for a
headless machine, or small backends written here that hang or prompt.
"""

from __future__ import annotations

import base64
import json
import os
import pty
import select
import subprocess
import sys
import textwrap
import time
import urllib.parse

import pytest

from helpers import ACCESS_KEY, CREDPROC, PLAINTEXT_KEYRING, ROLE_ARN, SECRET_KEY, assert_no_secret, conn_uri, \
    finish_headless, keyring_file, ok, one_error, signing_key, start_headless, use_file_keyring

pytest.importorskip("keyring")
pytest.importorskip("keyrings.alt")

pytestmark = pytest.mark.integration

KEYRING_SECRET = "kEyRiNg/SeCrEt+planted/0123456789abcdef"
KEYRING_TOKEN = "IQoJb3JpZ2luX2VjEKeyringPlantedSessionToken987"
KEYRING_SECRETS = (KEYRING_SECRET, KEYRING_TOKEN, urllib.parse.quote(KEYRING_SECRET, safe=""))
# Same as test_cache_end_to_end.py's guard: what a cache hit must not import.
FORBIDDEN_ON_HIT = ("keyring", "keyrings", "jaraco", "boto3", "botocore", "json", "re", "logging", "argparse")


@pytest.fixture
def kenv(env, tmp_path):
    """The isolated environment with a file keyring under tmp."""
    use_file_keyring(env, tmp_path)
    return env


def secret_set(run, env, conn_id: str, value: str, *args: str) -> subprocess.CompletedProcess:
    """``credproc secret set`` with the secret as one line on stdin (not a terminal)."""
    return subprocess.run([str(CREDPROC), "secret", "set", conn_id, *args], env=env, input=value + "\n",
                          capture_output=True, text=True, timeout=60)


# -- secret set / delete, and the main job ---------------------------------------------------


def test_password_only_in_the_keyring_gives_credentials(sts, kenv, run):
    env = kenv
    env["CREDPROC_CONN_KEYS"] = conn_uri(sts.url, password=None)
    stored = secret_set(run, env, "keys", KEYRING_SECRET)
    assert "stored password of connection 'keys'" in ok(stored, text=True)
    assert PLAINTEXT_KEYRING in stored.stdout and "unencrypted" in stored.stderr
    stored_file = keyring_file(env).read_text()  # the backend chosen, under tmp (it base64-encodes)
    assert "keys_3apassword" in stored_file and base64.b64encode(KEYRING_SECRET.encode()).decode() in stored_file

    out = ok(run(["--conn", "keys"], env))
    assert (out["AccessKeyId"], out["SecretAccessKey"]) == (ACCESS_KEY, KEYRING_SECRET)
    assert "SessionToken" not in out

    ok(secret_set(run, env, "keys", KEYRING_TOKEN, "--field", "aws_session_token"), text=True)
    out = ok(run(["--conn", "keys"], env))
    assert (out["SecretAccessKey"], out["SessionToken"]) == (KEYRING_SECRET, KEYRING_TOKEN)

    deleted = run(["secret", "delete", "keys"], env)
    assert "deleted password of connection 'keys'" in ok(deleted, text=True)
    assert "keys_3apassword" not in keyring_file(env).read_text()
    again = run(["secret", "delete", "keys"], env)
    assert "no password stored" in one_error(again, 1, alone=False)
    assert_no_secret(stored, deleted, again, secrets=KEYRING_SECRETS)


def test_extra_key_id_gets_its_secret_from_the_keyring(sts, kenv, run):
    env = kenv
    env["CREDPROC_CONN_EXTRA"] = conn_uri(sts.url, login="", aws_access_key_id=ACCESS_KEY)
    ok(secret_set(run, env, "extra", KEYRING_SECRET, "--field", "aws_secret_access_key"), text=True)
    out = ok(run(["--conn", "extra"], env))
    assert out["SecretAccessKey"] == KEYRING_SECRET


def test_the_definition_wins_over_the_keyring(sts, kenv, run):
    env = kenv
    env["CREDPROC_CONN_BOTH"] = conn_uri(sts.url)
    stored = secret_set(run, env, "both", KEYRING_SECRET)
    assert "already has password" in stored.stderr
    assert ok(run(["--conn", "both"], env))["SecretAccessKey"] == SECRET_KEY


def test_role_signed_with_a_keyring_secret_then_a_hit_imports_no_keyring(sts, kenv, run, tmp_path):
    env = kenv
    env["CREDPROC_CONN_PROD"] = conn_uri(sts.url, password=None, role_arn=ROLE_ARN)
    ok(secret_set(run, env, "prod", KEYRING_SECRET), text=True)
    miss = subprocess.run([sys.executable, "-X", "importtime", "-m", "credproc", "--conn", "prod"], env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert miss.returncode == 0, miss.stderr
    assert "keyring" in imported(miss.stderr)  # the miss did ask the keyring
    signed = [r for r in sts.requests if r["action"] == "AssumeRole"]
    assert len(signed) == 1 and f"Credential={ACCESS_KEY}/" in signed[0]["headers"]["Authorization"]

    hit = subprocess.run([sys.executable, "-X", "importtime", "-c",
                          "import sys; from credproc.cli import main; sys.exit(main(['--conn', 'prod']))"],
                         env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert hit.returncode == 0, hit.stderr
    assert hit.stdout == miss.stdout and sts.count("AssumeRole") == 1
    heavy = sorted(m for m in imported(hit.stderr) if m.split(".")[0] in FORBIDDEN_ON_HIT)
    assert heavy == [], f"a cache hit imported {heavy}"

    # a new secret clears the connection's cache: the next run signs with it
    stored = secret_set(run, env, "prod", KEYRING_SECRET + "-rotated")
    assert "cleared 1 cached entry" in ok(stored, text=True)
    ok(run(["--conn", "prod"], env))
    assert sts.count("AssumeRole") == 2


def imported(stderr: str) -> set[str]:
    return {line.rsplit("|", 1)[-1].strip() for line in stderr.splitlines() if line.startswith("import time:")}


def test_show_list_check_env_with_a_keyring_secret(sts, kenv, run):
    env = kenv
    env["CREDPROC_CONN_PROD"] = conn_uri(sts.url, password=None, role_arn=ROLE_ARN)
    env["CREDPROC_CONN_KEYS"] = conn_uri(sts.url, password=None)
    ok(secret_set(run, env, "prod", KEYRING_SECRET), text=True)
    ok(secret_set(run, env, "keys", KEYRING_SECRET), text=True)
    ok(secret_set(run, env, "keys", KEYRING_TOKEN, "--field", "aws_session_token"), text=True)
    show = run(["show", "prod"], env)
    assert "secret key          **** (keyring: credproc/prod:password)" in ok(show, text=True)
    assert "method              assume_role" in show.stdout
    show_keys = run(["show", "keys", "--json"], env)
    info = json.loads(ok(show_keys, text=True))
    assert info["session_token"] == "**** (keyring: credproc/keys:aws_session_token)"
    listed = run(["list"], env)
    assert "static keys (secret in keyring)" in ok(listed, text=True)
    check = run(["check", "prod"], env)
    assert "assumed-role/" in ok(check, text=True)
    check_keys = run(["check", "keys"], env)
    assert "never: long-term keys" in ok(check_keys, text=True)
    assert_no_secret(show, show_keys, listed, check, check_keys, secrets=KEYRING_SECRETS)
    # env is the one command that prints secrets: on purpose
    assert f"export AWS_SECRET_ACCESS_KEY='{KEYRING_SECRET}'" in ok(run(["env", "keys"], env), text=True)


def test_secret_set_reads_the_terminal_without_echo(sts, kenv, credproc_bin):
    env = {**kenv, "CREDPROC_CONN_TTY": conn_uri(sts.url, password=None)}
    pid, master = pty.fork()
    if pid == 0:  # the child: the pty is its controlling terminal, as in an interactive shell
        try:
            os.execve(str(credproc_bin), [str(credproc_bin), "secret", "set", "tty"], env)
        finally:
            os._exit(127)
    seen = read_until(master, b"(input hidden): ")
    os.write(master, KEYRING_SECRET.encode() + b"\n")
    seen += read_until(master, None)
    _, status = os.waitpid(pid, 0)
    os.close(master)
    assert os.waitstatus_to_exitcode(status) == 0, seen
    assert b"stored password of connection 'tty'" in seen
    assert KEYRING_SECRET.encode() not in seen  # not echoed
    out = subprocess.run([str(credproc_bin), "--conn", "tty"], env=env, capture_output=True, text=True, timeout=60,
                         stdin=subprocess.DEVNULL)
    assert json.loads(out.stdout)["SecretAccessKey"] == KEYRING_SECRET


def read_until(fd: int, marker: bytes | None, timeout: float = 30) -> bytes:
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the child closed the terminal
            return data
        if not chunk:
            return data
        data += chunk
        if marker is not None and marker in data:
            return data
    raise AssertionError(f"timed out; read so far: {data!r}")


def test_secret_set_refuses_empty_input_and_bad_fields(kenv, run):
    assert "nothing stored" in one_error(secret_set(run, kenv, "x", ""), 2, alone=False)
    assert "--field" in one_error(secret_set(run, kenv, "x", "v", "--field", "a b"), 2, alone=False)
    assert not keyring_file(kenv).exists() or "credproc" not in keyring_file(kenv).read_text()


def test_factory_reads_any_field_through_lookup(sts, kenv, run, tmp_path):
    """A session factory asks for a field of its own with keyring_store.lookup."""
    plugin = tmp_path / "plugins"
    plugin.mkdir()
    (plugin / "kr_factory.py").write_text(textwrap.dedent(f"""\
        import boto3
        from credproc import BaseSessionFactory
        from credproc.keyring_store import lookup

        class KeyringFactory(BaseSessionFactory):
            def create_session(self):
                secret = lookup(self.conn.conn_id, "vault_secret")
                return boto3.session.Session(aws_access_key_id="{ACCESS_KEY}", aws_secret_access_key=secret,
                                             region_name="us-east-1")
        """))
    env = {**kenv, "PYTHONPATH": str(plugin), "CREDPROC_CONN_CUSTOM": "aws://?session_factory=kr_factory.KeyringFactory"}
    stored = secret_set(run, env, "custom", KEYRING_SECRET, "--field", "vault_secret")
    assert "session factory" in ok(stored, text=True) + stored.stderr
    out = ok(run(["--conn", "custom"], env))
    assert out["SecretAccessKey"] == KEYRING_SECRET


# -- headless: no backend, a hanging backend, a prompting backend ------------------------------

FAIL_BACKEND = "keyring.backends.fail.Keyring"


def popen_with_open_stdin(args: list[str], env: dict, timeout: float = 30) -> subprocess.CompletedProcess:
    """Run with stdin an open pipe that never delivers anything, as under some SDKs (kept open
    until the process ends: ``communicate`` would close it at once)."""
    result = finish_headless(start_headless(args, env), timeout)
    result.elapsed = result.seconds
    return result


def test_headless_without_a_backend_fails_at_once_naming_python_keyring_backend(sts, kenv, credproc_bin):
    env = {**kenv, "PYTHON_KEYRING_BACKEND": FAIL_BACKEND, "CREDPROC_CONN_KEYS": conn_uri(sts.url, password=None)}
    # stdin is an open pipe: `secret set` must refuse before reading it
    process = subprocess.Popen([str(credproc_bin), "secret", "set", "keys"], env=env, stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        process.wait(timeout=30)
    finally:
        stderr = process.stderr.read()
        process.stdin.close()
        process.kill()
    assert process.returncode == 2, stderr
    assert "PYTHON_KEYRING_BACKEND" in stderr and "no keyring backend" in stderr and PLAINTEXT_KEYRING in stderr

    job = popen_with_open_stdin([str(credproc_bin), "--conn", "keys"], env)
    line = one_error(job, 2, alone=False)
    assert "'keys'" in line and "has no password" in line and "PYTHON_KEYRING_BACKEND" in line
    assert sts.count("AssumeRole") == 0

    show = subprocess.run([str(credproc_bin), "show", "keys"], env=env, capture_output=True, text=True, timeout=30,
                          stdin=subprocess.DEVNULL)
    assert show.returncode == 0 and "PYTHON_KEYRING_BACKEND" in show.stdout  # show says why, and goes on

    bad = subprocess.run([str(credproc_bin), "--conn", "keys"], env={**env, "PYTHON_KEYRING_BACKEND": "no.Such"},
                         capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert "PYTHON_KEYRING_BACKEND=no.Such cannot be loaded" in one_error(bad, 2, alone=False)


def test_connections_without_a_half_pair_never_ask_the_keyring(sts, kenv, run):
    env = {**kenv, "PYTHON_KEYRING_BACKEND": FAIL_BACKEND}
    env["CREDPROC_CONN_FULL"] = conn_uri(sts.url, role_arn=ROLE_ARN)
    ok(run(["--conn", "full"], env))  # a complete pair: the broken keyring does not matter


NULL_BACKEND = "keyring.backends.null.Keyring"  # a keyring that never has anything
HALF_KEY = "AKIAHALFPAIRONLY0002"  # an access key id whose secret is nowhere
EXTRA_KEY, EXTRA_SECRET = "AKIAEXTRAKEYPAIR0001", "extra/pair/secret+EXAMPLEKEY00000000001"

# A half pair beside a complete one: (the connection at an endpoint, the key id that must sign,
# the field the secret comes from). The complete pair wins (README, "What the keys mean"), so
# the half has nothing to complete and the keyring nothing to answer.
HALF_BESIDE_WHOLE = {
    "login-without-password": (
        lambda url: conn_uri(url, login=HALF_KEY, password=None, role_arn=ROLE_ARN,
                             aws_access_key_id=EXTRA_KEY, aws_secret_access_key=EXTRA_SECRET),
        EXTRA_KEY, "aws_secret_access_key"),
    "lone-extra-key-id": (
        lambda url: conn_uri(url, role_arn=ROLE_ARN, aws_access_key_id=HALF_KEY),
        ACCESS_KEY, "password"),
}


@pytest.mark.parametrize("backend", [NULL_BACKEND, FAIL_BACKEND], ids=["null-keyring", "fail-keyring"])
@pytest.mark.parametrize("case", list(HALF_BESIDE_WHOLE))
def test_a_half_pair_beside_a_complete_pair_never_asks_the_keyring(sts, env, run, case, backend):
    """On a machine without a usable keyring, a connection with a complete key pair works,
    whatever half pair sits beside it: the complete pair signs, and show and list say so."""
    definition, signer, secret_field = HALF_BESIDE_WHOLE[case]
    env = {**env, "PYTHON_KEYRING_BACKEND": backend, "CREDPROC_CONN_MIXED": definition(sts.url)}

    ok(run(["--conn", "mixed"], env), temporary=True)
    (assumed,) = [r for r in sts.requests if r["action"] == "AssumeRole"]
    assert signing_key(assumed) == signer

    info = json.loads(ok(run(["show", "mixed", "--json"], env), text=True))
    assert info["access_key_id"] == "*" * (len(signer) - 4) + signer[-4:], info
    assert info["secret_access_key"] == f"**** (definition: {secret_field})", info
    listed = ok(run(["list"], env), text=True)
    (row,) = [line for line in listed.splitlines() if line.split()[:1] == ["mixed"]]
    assert "(secret in keyring)" not in row, row


BACKENDS = textwrap.dedent("""\
    import time
    from keyring.backend import KeyringBackend

    class Hanging(KeyringBackend):
        priority = 1
        def get_password(self, service, username):
            time.sleep(120)
        def set_password(self, service, username, password):
            raise NotImplementedError
        def delete_password(self, service, username):
            raise NotImplementedError

    class Prompting(Hanging):
        def get_password(self, service, username):
            return input("keyring master password: ")
    """)


@pytest.fixture
def odd_backends(kenv, tmp_path, sts):
    directory = tmp_path / "backends"
    directory.mkdir()
    (directory / "oddrings.py").write_text(BACKENDS)
    return {**kenv, "PYTHONPATH": str(directory), "CREDPROC_CONN_KEYS": conn_uri(sts.url, password=None)}


def test_a_hanging_keyring_is_given_up_after_the_timeout(odd_backends, credproc_bin):
    env = {**odd_backends, "PYTHON_KEYRING_BACKEND": "oddrings.Hanging", "CREDPROC_KEYRING_TIMEOUT": "1.5"}
    result = popen_with_open_stdin([str(credproc_bin), "--conn", "keys"], env)
    line = one_error(result, 1, alone=False)
    assert "did not answer within 1.5s" in line and "'keys'" in line
    assert result.elapsed < 15


def test_a_prompting_keyring_gets_no_input_from_the_sdks_stdin(odd_backends, credproc_bin):
    env = {**odd_backends, "PYTHON_KEYRING_BACKEND": "oddrings.Prompting"}
    result = popen_with_open_stdin([str(credproc_bin), "--conn", "keys"], env)
    line = one_error(result, 2, alone=False)
    assert "asked for input" in line and "PYTHON_KEYRING_BACKEND" in line
    assert result.stdout == ""  # its prompt did not reach stdout, which carries credentials
    assert "credproc: warning: the keyring backend wrote: keyring master password:" in result.stderr.splitlines()
    assert result.elapsed < 9  # not the 10 s timeout: end of file at once
