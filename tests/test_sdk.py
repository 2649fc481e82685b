"""Real SDKs as consumers: the AWS CLI and boto3 run credproc through ``credential_process``.

A profile ``demo`` in the isolated AWS config runs credproc for connection ``demo``, which
assumes ROLE_ARN at the local STS. Across processes the on-disk cache answers (one
AssumeRole); within a process botocore keeps the 1-hour credentials and never re-runs the
helper. A wrapper script counts how often the SDK starts the helper.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from helpers import ACCOUNT, ASSUMED_PREFIX, BIN, CREDPROC, ROLE_ARN, conn_uri, counting_wrapper, demo_profile, runs

pytestmark = pytest.mark.integration

@pytest.fixture
def demo_env(sts, env, credproc_bin):
    env["CREDPROC_CONN_DEMO"] = conn_uri(sts.url, role_arn=ROLE_ARN)
    return env


def aws_cli(env, sts, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "aws"), *args, "--profile", "demo", "--endpoint-url", sts.url, "--output", "json"],
        env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )


def caller_identity(result: subprocess.CompletedProcess) -> dict:
    assert result.returncode == 0, result.stderr
    identity = json.loads(result.stdout)
    assert identity["Account"] == ACCOUNT
    assert identity["Arn"].startswith(ASSUMED_PREFIX), identity
    return identity


def test_aws_cli_uses_credproc_and_its_cache(sts, demo_env):
    demo_profile(demo_env, f"{CREDPROC} --conn demo")
    first = caller_identity(aws_cli(demo_env, sts, "sts", "get-caller-identity"))
    assert first["Arn"] == ASSUMED_PREFIX + "credproc-demo"
    assert sts.count("AssumeRole") == 1
    second = caller_identity(aws_cli(demo_env, sts, "sts", "get-caller-identity"))
    assert (second["Arn"], second["Account"]) == (first["Arn"], first["Account"])
    assert sts.count("AssumeRole") == 1  # the second process was served from the cache
    assert sts.count("GetCallerIdentity") == 2


def test_aws_cli_runs_the_helper_once_per_process(sts, demo_env, tmp_path):
    wrapper, counter = counting_wrapper(tmp_path)
    demo_profile(demo_env, f"{wrapper} --conn demo --profile demo")
    caller_identity(aws_cli(demo_env, sts, "sts", "get-caller-identity"))
    assert runs(counter) == 1
    caller_identity(aws_cli(demo_env, sts, "sts", "get-caller-identity"))
    assert runs(counter) == 2
    assert sts.count("AssumeRole") == 1


def test_aws_cli_shows_credprocs_error(sts, demo_env):
    demo_profile(demo_env, f"{CREDPROC} --conn demo")
    sts.faults.append((403, "AccessDenied"))
    result = aws_cli(demo_env, sts, "sts", "get-caller-identity")
    assert result.returncode != 0
    assert "AccessDenied" in result.stderr and "credproc: error:" in result.stderr
    assert sts.count("GetCallerIdentity") == 0


def test_aws_cli_with_aws_profile_in_the_environment(sts, demo_env):
    # AWS_PROFILE=demo reaches credproc too; the connection has its own keys: no loop.
    demo_profile(demo_env, f"{CREDPROC} --conn demo --profile demo")
    demo_env["AWS_PROFILE"] = "demo"
    result = subprocess.run([str(BIN / "aws"), "sts", "get-caller-identity", "--endpoint-url", sts.url],
                            env=demo_env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    caller_identity(result)
    assert sts.count("AssumeRole") == 1


BOTO3_SCRIPT = """\
import json, sys
import boto3

session = boto3.Session(profile_name="demo")
client = session.client("sts", endpoint_url=sys.argv[1])
first = client.get_caller_identity()
second = client.get_caller_identity()
credentials = session.get_credentials()
print(json.dumps({"first": first["Arn"], "second": second["Arn"], "account": first["Account"],
                  "method": credentials.method}))
"""


def test_boto3_runs_the_helper_once_per_process(sts, demo_env, tmp_path):
    wrapper, counter = counting_wrapper(tmp_path)
    demo_profile(demo_env, f"{wrapper} --conn demo --profile demo")
    script = tmp_path / "client.py"
    script.write_text(BOTO3_SCRIPT)

    def one_process() -> dict:
        result = subprocess.run([str(BIN / "python"), str(script), sts.url], env=demo_env,
                                capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    first = one_process()
    assert first["account"] == ACCOUNT
    assert first["first"] == first["second"] and first["first"].startswith(ASSUMED_PREFIX)
    assert first["method"] == "custom-process"
    assert runs(counter) == 1  # two API calls, one helper run: 1-hour credentials need no refresh
    assert sts.count("AssumeRole") == 1

    second = one_process()
    assert second["first"] == first["first"]
    assert runs(counter) == 2  # a new process runs the helper again ...
    assert sts.count("AssumeRole") == 1  # ... and the cache answers it
    assert sts.count("GetCallerIdentity") == 4
