"""credproc end to end, with no AWS account: `make demo`.

Starts a local STS (moto, on 127.0.0.1), defines a connection "demo" that assumes a role
there, has `credproc configure` write an AWS config profile whose credential_process runs
this venv's credproc (through credproc's own launcher), and lets the real AWS CLI call STS GetCallerIdentity through it - twice, to show that the
second call is served from credproc's cache (same temporary key, no new AssumeRole).
Everything lives in a temporary directory that is removed at the end.
"""

from __future__ import annotations

import configparser
import json
import os
import shlex
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

BIN = Path(sys.executable).parent
CREDPROC = BIN / "credproc"
ROLE_ARN = "arn:aws:iam::123456789012:role/demo"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def timed(cmd: list[str], env: dict[str, str]) -> tuple[subprocess.CompletedProcess, float]:
    start = time.perf_counter()
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"demo failed: {' '.join(cmd)}\n{result.stderr}")
    return result, elapsed


def main() -> None:
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log lines in the demo

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    sts = f"http://127.0.0.1:{port}"
    try:
        with tempfile.TemporaryDirectory(prefix="credproc-demo-") as tmp:
            run_demo(sts, Path(tmp))
    finally:
        server.stop()


def run_demo(sts: str, tmp: Path) -> None:
    config = tmp / "aws-config"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CREDPROC_", "AIRFLOW_CONN_"))}
    env.update({
        "AWS_CONFIG_FILE": str(config),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "no-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "CREDPROC_CACHE_DIR": str(tmp / "cache"),
        # The initial key pair only signs AssumeRole; the local STS does not check it.
        # The STS endpoint is service_config.sts.endpoint_url, as in Airflow: a nested value,
        # so the extra is JSON in __extra__.
        "CREDPROC_CONN_DEMO": (
            "aws://AKIAIOSFODNN7EXAMPLE:wJalrXUtnFEMI%2FK7MDENG%2FbPxRfiCYEXAMPLEKEY@/?__extra__="
            + urllib.parse.quote(json.dumps({"role_arn": ROLE_ARN, "region_name": "us-east-1",
                                             "service_config": {"sts": {"endpoint_url": sts}}}), safe="")
        ),
    })
    print(f"local STS (moto):      {sts}")
    print(f"connection 'demo':     CREDPROC_CONN_DEMO = aws://AKIA...:****@/?__extra__={{role_arn: {ROLE_ARN}, ...}}")
    timed([str(CREDPROC), "configure", "demo", "--profile", "demo", "--region", "us-east-1", "--retry-mode",
           "standard", "--max-attempts", "3"], env)
    profile = configparser.ConfigParser(interpolation=None)
    profile.read(config)
    line = profile["profile demo"]["credential_process"]
    print(f"AWS profile 'demo':    credential_process = {line}  (written by credproc configure)\n")

    aws = [str(BIN / "aws"), "sts", "get-caller-identity", "--profile", "demo", "--endpoint-url", sts]
    entry_written = None
    for attempt in (1, 2):
        result, elapsed = timed(aws, env)
        identity = json.loads(result.stdout)
        how = "credproc fetched and cached" if attempt == 1 else "credproc answered from its cache"
        print(f"{attempt}. aws sts get-caller-identity --profile demo  ->  {identity['Arn']}"
              f"  ({elapsed:.2f} s; {how})")
        entries = sorted((tmp / "cache").glob("*.entry"))
        if attempt == 1:
            entry_written = entries[0].stat().st_mtime_ns if entries else None

    result, hit_time = timed(shlex.split(line), env)
    printed = json.loads(result.stdout)
    print(f"3. the credential_process line itself  ->  AccessKeyId {printed['AccessKeyId']}, "
          f"Expiration {printed['Expiration']}  ({hit_time * 1000:.0f} ms)")
    entries = sorted((tmp / "cache").glob("*.entry"))
    if len(entries) != 1 or entries[0].stat().st_mtime_ns != entry_written:
        sys.exit("demo failed: the later runs were not served from the cache")
    print(f"\nOne AssumeRole served all three runs: the cache entry {entries[0].name}\n"
          f"(mode {entries[0].stat().st_mode & 0o777:o}) was written by the first run and never again.")


if __name__ == "__main__":
    main()
