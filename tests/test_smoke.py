import json

import pytest

from conftest import ROLE_ARN, conn_uri

pytestmark = pytest.mark.integration


def test_assume_role_then_cache_hit(sts, env, run):
    env["CREDPROC_CONN_PROD"] = conn_uri(sts.url, role_arn=ROLE_ARN)
    first = run(["--conn", "prod"], env)
    assert first.returncode == 0, first.stderr
    second = run(["--conn", "prod"], env)
    assert second.stdout == first.stdout
    assert sts.count("AssumeRole") == 1
    out = json.loads(first.stdout)
    assert out["Version"] == 1 and out["Expiration"].endswith("Z")
