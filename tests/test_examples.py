"""The ready-to-copy files in examples/aws-config stay valid: they parse, they agree with each
other, and credproc serves every connection they define (pointed at the local STS)."""

from __future__ import annotations

import configparser
import json
import re
import shlex
import tomllib
import urllib.parse
from pathlib import Path

import pytest

from helpers import CREDPROC, sts_endpoint, toml_lines

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "aws-config"
INSTALLED = "/usr/local/bin/credproc"
EXAMPLE_KEY = "AKIAIOSFODNN7EXAMPLE"
DEFAULT_CONN = "aws_default"


def env_file_connections(text: str) -> dict[str, tuple[str, str]]:
    """``{conn id: (variable, value)}`` of airflow-uri.env; the id is the one its comment names."""
    found: dict[str, tuple[str, str]] = {}
    named = None
    for line in text.splitlines():
        if line.startswith("#"):
            match = re.search(r"`credproc --conn ([^`\s]+)`", line)
            named = match.group(1) if match else named
        elif line.startswith("export "):
            [assignment] = shlex.split(line[len("export "):])
            variable, value = assignment.split("=", 1)
            assert named, f"no comment names the connection of {variable}"
            found[named] = (variable, value)
            named = None
        else:
            assert not line.strip(), f"unexpected line in airflow-uri.env: {line!r}"
    return found


def point_uri(value: str, url: str) -> tuple[str, dict]:
    """The URI with its STS endpoint at ``url``; and its extra. The endpoint is nested
    (``service_config.sts``), which a flat query cannot hold: a flat one becomes ``__extra__``
    (its values staying strings)."""
    parts = urllib.parse.urlsplit(value)
    query = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
    extra = json.loads(query["__extra__"]) if "__extra__" in query else query
    extra = {**extra, **sts_endpoint(url)}
    query = {"__extra__": json.dumps(extra)}
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query))), extra


def point_json(value: str, url: str) -> tuple[str, dict]:
    data = json.loads(value)
    extra = data.get("extra") or {}
    as_string = isinstance(extra, str)
    if as_string:
        extra = json.loads(extra)
    extra.update(sts_endpoint(url))
    data["extra"] = json.dumps(extra) if as_string else extra
    return json.dumps(data), extra


def point_toml(text: str, url: str) -> str:
    """The TOML text with the STS endpoint added to every ``[connections.<id>]`` table."""
    return re.sub(r"(?m)^(\[connections\.[A-Za-z0-9_-]+\][ \t]*)$",
                  lambda m: f"{m.group(1)}\n{toml_lines(sts_endpoint(url))}", text)


def test_examples_are_valid_and_work(sts, env, run):
    config_text = (EXAMPLES / "config").read_text()
    toml_text = (EXAMPLES / "credproc.toml").read_text()
    env_text = (EXAMPLES / "airflow-uri.env").read_text()
    for text in (config_text, toml_text, env_text):
        assert text.startswith("# "), "each example starts with a comment header"

    # credproc.toml: connections pointed at the local STS, nothing else changed.
    tables = tomllib.loads(toml_text)["connections"]
    pointed = tomllib.loads(point_toml(toml_text, sts.url))["connections"]
    assert set(pointed) == set(tables) >= {"base", "prod", "partner"}
    expected_roles: dict[str, str | None] = {}
    extras: dict[str, dict] = {}
    for conn_id, table in pointed.items():
        extra = {**table.get("extra", {}), **{k: v for k, v in table.items() if k != "extra"}}
        assert extra["service_config"] == sts_endpoint(sts.url)["service_config"]
        expected_roles[conn_id] = extra.get("role_arn")
        extras[conn_id] = extra
    assert "ExternalId" in extras["partner"]["assume_role_kwargs"]
    assert expected_roles["base"] is None
    (Path(env["CREDPROC_CONFIG"])).write_text(point_toml(toml_text, sts.url))

    # airflow-uri.env: every variable is the one credproc looks up for the id its comment names.
    variables = env_file_connections(env_text)
    assert {v.split("_CONN_")[0] for v, _ in variables.values()} == {"AIRFLOW", "CREDPROC"}
    for conn_id, (variable, value) in variables.items():
        if variable.startswith("AIRFLOW_"):  # Airflow: the id upper-cased, nothing else
            assert variable == "AIRFLOW_CONN_" + conn_id.upper(), (conn_id, variable)
        else:  # credproc: upper-cased, anything outside A-Z 0-9 _ turned to _
            assert variable == "CREDPROC_CONN_" + re.sub(r"[^A-Z0-9_]", "_", conn_id.upper()), (conn_id, variable)
        if value.lstrip().startswith("{"):
            env[variable], extra = point_json(value, sts.url)
        else:
            assert "%2F" in value.split("@")[0], "the URI's secret is percent-encoded"
            env[variable], extra = point_uri(value, sts.url)
        expected_roles[conn_id] = extra.get("role_arn")
        extras[conn_id] = extra
    assert "DurationSeconds" in extras["ci"]["assume_role_kwargs"]

    # config: profiles that run the installed credproc for connections defined above.
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(config_text)
    profiles = {}
    for section in parser.sections():
        assert section.startswith("profile "), section
        name = section[len("profile "):]
        settings = parser[section]
        argv = shlex.split(settings["credential_process"])
        assert argv[0] == INSTALLED
        assert argv[argv.index("--profile") + 1] == name
        assert settings["region"] and settings["retry_mode"] == "standard"
        assert int(settings["max_attempts"]) >= 1
        conn_id = argv[argv.index("--conn") + 1]
        assert conn_id in expected_roles or conn_id == DEFAULT_CONN, conn_id
        profiles[name] = argv[1:]
    assert {argv[argv.index("--conn") + 1] for argv in profiles.values()} >= {
        "base", "prod", "aws_default", "airflow_prod"}
    Path(env["AWS_CONFIG_FILE"]).write_text(config_text.replace(INSTALLED, str(CREDPROC)))

    def check(args: list[str], conn_id: str) -> None:
        run_env = dict(env)
        if conn_id == DEFAULT_CONN:
            run_env["AWS_ACCESS_KEY_ID"] = "AKIADEFAULTCHAIN0001"
            run_env["AWS_SECRET_ACCESS_KEY"] = "default/chain/secret/EXAMPLEKEY00000000000"
        before = len(sts.requests)
        result = run(args, run_env)
        assert result.returncode == 0, f"{args}: {result.stderr}"
        assert "warning" not in result.stderr, f"{args}: {result.stderr}"
        out = json.loads(result.stdout)
        role_arn = expected_roles.get(conn_id)
        if role_arn is None:
            assert "Expiration" not in out
            if conn_id != DEFAULT_CONN:
                assert out["AccessKeyId"] == EXAMPLE_KEY and "/" in out["SecretAccessKey"]
            return
        assert out["Expiration"].endswith("Z") and out["AccessKeyId"] != EXAMPLE_KEY
        calls = [r for r in sts.requests[before:] if r["action"] == "AssumeRole"]
        if calls:  # else a cache hit: the same connection ran before under another name
            assert calls[-1]["params"]["RoleArn"] == role_arn
            for key, value in (extras[conn_id].get("assume_role_kwargs") or {}).items():
                if isinstance(value, (str, int)):
                    assert calls[-1]["params"][key] == str(value), key

    for conn_id in expected_roles:
        check(["--conn", conn_id], conn_id)
    for name, args in profiles.items():
        check(args, args[args.index("--conn") + 1])
    assert sts.count("AssumeRole") == sum(1 for role_arn in expected_roles.values() if role_arn)


def test_the_mfa_example_defines_working_mfa_connections(sts, env, run, tmp_path):
    """examples/aws-config/mfa.toml: every connection parses, names its device, and (pointed
    at the local STS, its code from a stand-in mfa_process) gets its role through one MFA
    session for all of them."""
    text = (EXAMPLES / "mfa.toml").read_text()
    ids = list(tomllib.loads(text)["connections"])
    assert len(ids) >= 3, ids
    code = tmp_path / "code.sh"
    code.write_text("#!/bin/sh\necho run >> \"$0.runs\"\necho 731904\n")
    code.chmod(0o755)
    pointed = point_toml(text, sts.url)
    pointed = re.sub(r'(?m)^mfa_process = .*$', "", pointed)
    pointed = re.sub(r"(?m)^(\[connections\.[A-Za-z0-9_-]+\][ \t]*)$",
                     lambda m: f"{m.group(1)}\nmfa_process = {json.dumps(str(code))}\n"
                               f"password = \"wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY\"", pointed)
    config = tmp_path / "mfa.toml"
    config.write_text(pointed)
    env["CREDPROC_CONFIG"] = str(config)
    for conn_id in ids:
        shown = run(["show", conn_id], env)
        assert shown.returncode == 0, shown.stderr
        assert "arn:aws:iam::123456789012:mfa/alice" in shown.stdout, shown.stdout
        result = run(["--conn", conn_id], env)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["SessionToken"]
    assert sts.count("GetSessionToken") == 1, "one MFA session for every connection of those keys and that device"
    assert (tmp_path / "code.sh.runs").read_text().count("run") == 1
