"""Shell completion (``credproc completion bash|zsh|fish``) in the real shells, and
``credproc check --json`` against the local STS.

The bash script is sourced in a real bash and its function run as readline would run it
(COMP_WORDS, COMP_CWORD); fish answers ``complete -C``; zsh has no completion outside a
terminal, so its function runs with ``compadd`` standing in, after ``zsh -n``. Connection ids
come from ``credproc completion ids``, run by the scripts themselves from PATH.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.parse

import pytest

from helpers import ACCESS_KEY, ACCOUNT, BIN, ROLE_ARN, ROLE_NAME, SECRET_KEY, assert_no_secret, conn_uri, ok, \
    one_error

pytestmark = pytest.mark.integration

SECRETS = (SECRET_KEY, urllib.parse.quote(SECRET_KEY, safe=""))


@pytest.fixture
def shell_env(env, tmp_path):
    """Three connections (two from variables, one from the config file), credproc on PATH."""
    env["PATH"] = f"{BIN}:{env['PATH']}"
    env["CREDPROC_CONN_PROD"] = "aws://"
    env["AIRFLOW_CONN_PREVIEW"] = "aws://"
    (tmp_path / "credproc.toml").write_text('[connections.payments]\nrole_arn = "%s"\n' % ROLE_ARN)
    env["CREDPROC_CONFIG"] = str(tmp_path / "credproc.toml")
    return env


def _need(shell: str) -> str:
    path = shutil.which(shell)
    if path is None:
        pytest.skip(f"{shell} is not installed (scripts/system-deps installs it)")
    return path


def _script(run, env, shell: str, tmp_path) -> str:
    result = run(["completion", shell], env)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    path = tmp_path / f"credproc.{shell}"
    path.write_text(result.stdout)
    return str(path)


# -- check --json ----------------------------------------------------------------------------


def test_check_json_has_the_facts_and_no_secret(sts, env, run):
    env["CREDPROC_CONN_PROD"] = conn_uri(sts.url, role_arn=ROLE_ARN)
    first = run(["check", "prod", "--json"], env)
    facts = json.loads(ok(first, text=True))
    assert facts["connection"] == {"id": "prod", "defined_in": "CREDPROC_CONN_PROD"}
    assert facts["method"] == "assume_role" and facts["role_arn"] == ROLE_ARN
    assert facts["account"] == ACCOUNT
    assert facts["arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/{ROLE_NAME}/credproc-prod"
    assert facts["user_id"] and re.fullmatch(r"\*+[A-Z0-9]{4}", facts["access_key_id"]), facts
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", facts["expires"]) and facts["long_term"] is False
    assert (facts["source"], facts["cached"], facts["mfa"]) == ("fetched", True, None)
    again = json.loads(ok(run(["check", "prod", "--json"], env), text=True))
    assert (again["source"], again["cached"]) == ("cache", True)
    assert (sts.count("AssumeRole"), sts.count("GetCallerIdentity")) == (1, 2)
    printed = ok(run(["--conn", "prod"], env))  # the role session's own secrets, from the cache
    assert_no_secret(first, secrets=(*SECRETS, printed["SecretAccessKey"], printed["SessionToken"]))
    assert "SecretAccessKey" not in first.stdout and "SessionToken" not in first.stdout


def test_check_json_of_long_term_keys_and_exit_codes(sts, env, run):
    env["CREDPROC_CONN_KEYS"] = conn_uri(sts.url)
    keys = run(["check", "keys", "--json"], env)
    facts = json.loads(ok(keys, text=True))
    assert (facts["method"], facts["expires"], facts["long_term"], facts["cached"]) == \
        ("static keys", None, True, False)
    assert facts["access_key_id"] == "*" * (len(ACCESS_KEY) - 4) + ACCESS_KEY[-4:]
    sts.faults.append((403, "InvalidClientTokenId"))
    refused = run(["check", "keys", "--json"], env)
    assert "GetCallerIdentity" in one_error(refused, 1, alone=False) and refused.stdout == ""
    env["CREDPROC_CONN_ODD"] = "aws://x/?role_arn=not-an-arn"
    assert "role_arn" in one_error(run(["check", "odd", "--json"], env), 2, alone=False)
    assert_no_secret(keys, refused, secrets=SECRETS)


# -- the ids the scripts offer ---------------------------------------------------------------


def test_completion_ids_are_those_of_list_without_the_keyring(shell_env, run):
    env = shell_env
    env["PYTHON_KEYRING_BACKEND"] = "no.such.Backend"  # asking the keyring would fail loudly
    ids = run(["completion", "ids"], env)
    assert ids.returncode == 0 and ids.stderr == "", ids.stderr
    listed = [row["id"] for row in json.loads(ok(run(["list", "--json"], env), text=True))]
    assert ids.stdout.splitlines() == listed
    assert {"prod", "preview", "payments"} <= set(listed)


def test_completion_of_an_unknown_shell_is_exit_2(shell_env, run):
    assert "tcsh" in one_error(run(["completion", "tcsh"], shell_env), 2, alone=False)


# -- bash --------------------------------------------------------------------------------------


def _bash(script: str, env, *lines: list[str]) -> list[list[str]]:
    """Each command line (its words, the last one being completed) through the real function."""
    program = [f"source {script}", "complete -p credproc"]
    for words in lines:
        quoted = " ".join("'" + w.replace("'", "'\\''") + "'" for w in words)
        program.append(f"COMP_WORDS=({quoted}); COMP_CWORD={len(words) - 1}; COMPREPLY=(); _credproc; "
                       "echo \"${COMPREPLY[*]}\"")
    result = subprocess.run([_need("bash"), "--norc", "--noprofile", "-c", "\n".join(program)], env=env,
                            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    out = result.stdout.splitlines()
    assert out[0] == "complete -F _credproc credproc"
    return [sorted(line.split()) for line in out[1:]]


def test_bash_completes_commands_flags_and_ids(shell_env, run, tmp_path):
    script = _script(run, shell_env, "bash", tmp_path)
    got = _bash(script, shell_env,
                ["credproc", "sh"], ["credproc", "--c"], ["credproc", "show", "p"],
                ["credproc", ""], ["credproc", "--conn", "pr"], ["credproc", "--conn", "=", "pay"],
                ["credproc", "check", "prod", "--"], ["credproc", "env", "prod", "--format", "f"],
                ["credproc", "cache", "c"], ["credproc", "cache", "clear", "pa"], ["credproc", "secret", "set", "--field",
                                                                                 "x", "pro"],
                ["credproc", "show", "prod", ""], ["credproc", "completion", ""])
    assert got[0] == ["show"]
    assert got[1] == ["--conn"]
    assert got[2] == ["payments", "preview", "prod"]
    assert got[3] == sorted(["list", "show", "check", "configure", "env", "cache", "secret", "completion",
                             "serve", "exec"])
    assert got[4] == ["preview", "prod"]
    assert got[5] == ["payments"]
    assert got[6] == ["--debug", "--help", "--json", "--profile", "--refresh"]
    assert got[7] == ["fish"]
    assert got[8] == ["clear"]
    assert got[9] == ["payments"]
    assert got[10] == ["prod"]
    assert got[11] == []  # show takes one id
    assert got[12] == ["bash", "fish", "zsh"]  # not the hidden "ids"


# -- zsh and fish -------------------------------------------------------------------------------


def test_zsh_script_parses_and_completes(shell_env, run, tmp_path):
    zsh = _need("zsh")
    script = _script(run, shell_env, "zsh", tmp_path)
    syntax = subprocess.run([zsh, "-n", script], capture_output=True, text=True, timeout=60)
    assert syntax.returncode == 0 and syntax.stderr == "", syntax.stderr
    # Outside a terminal zsh has no completion system: compadd stands in, printing what is offered.
    program = f"""source {script}
compadd() {{ while [[ $1 != -- ]]; do shift; done; shift; print -r -- "${{(j: :)@}}"; }}
words=(credproc sh); CURRENT=2; PREFIX=sh; _credproc
words=(credproc --c); CURRENT=2; PREFIX=--c; _credproc
words=(credproc show p); CURRENT=3; PREFIX=p; _credproc
words=(credproc --conn=p); CURRENT=2; PREFIX=--conn=p; IPREFIX=; _credproc; print -r -- "$IPREFIX"
"""
    result = subprocess.run([zsh, "-f", "-c", program], env=shell_env, capture_output=True, text=True,
                            timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    commands, flags, ids, conn, iprefix = result.stdout.splitlines()
    assert "show" in commands.split() and "list" in commands.split()  # zsh filters by PREFIX itself
    assert "--conn" in flags.split() and "--refresh" in flags.split()
    assert {"payments", "preview", "prod"} <= set(ids.split())
    assert {"payments", "preview", "prod"} <= set(conn.split()) and iprefix == "--conn="


def test_fish_script_parses_and_completes(shell_env, run, tmp_path):
    fish = _need("fish")
    script = _script(run, shell_env, "fish", tmp_path)
    syntax = subprocess.run([fish, "--no-config", "-n", script], capture_output=True, text=True, timeout=60)
    assert syntax.returncode == 0 and syntax.stderr == "", syntax.stderr
    lines = ["credproc sh", "credproc --c", "credproc show p", "credproc --conn=pa", "credproc cache clear p",
             "credproc env prod --format p"]
    program = f"source {script}\n" + "\n".join(f"set got (complete -C'{line}'); echo \"$got\"" for line in lines)
    result = subprocess.run([fish, "--no-config", "-c", program], env=shell_env, capture_output=True, text=True,
                            timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    got = [sorted(line.split()) for line in result.stdout.splitlines()]
    assert got == [["show"], ["--conn"], ["payments", "preview", "prod"], ["--conn=payments"],
                   ["payments", "preview", "prod"], ["powershell"]]
