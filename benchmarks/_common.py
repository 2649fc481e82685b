"""Shared set-up for the benchmarks: a local STS, an isolated environment, interleaved timing."""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

BIN = Path(sys.executable).parent
CREDPROC = BIN / "credproc"
ROLE_ARN = "arn:aws:iam::123456789012:role/bench"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def local_sts():
    """moto's STS on 127.0.0.1; yields its URL."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def isolated_env(tmp: Path, sts: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CREDPROC_", "AIRFLOW_CONN_"))}
    env.update({
        "HOME": str(tmp),
        "CREDPROC_CACHE_DIR": str(tmp / "cache"),
        "CREDPROC_CONFIG": str(tmp / "none.toml"),
        "AWS_CONFIG_FILE": str(tmp / "aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "CREDPROC_CONN_BENCH": (
            "aws://AKIAIOSFODNN7EXAMPLE:wJalrXUtnFEMI%2FK7MDENG%2FbPxRfiCYEXAMPLEKEY@/"
            f"?role_arn={ROLE_ARN}&region_name=us-east-1&endpoint_url={sts}"
        ),
    })
    return env


def run_once(cmd: list[str], env: dict[str, str]) -> float:
    # From the home directory: run from the checkout, `python -c "import credproc"` would
    # find the source tree first (and compile it every time under PYTHONDONTWRITEBYTECODE).
    start = time.perf_counter()
    result = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, cwd=env["HOME"])
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"benchmark command failed: {' '.join(cmd)}\n{result.stderr.decode()}")
    return elapsed


def interleaved(commands: dict[str, list[str]], env: dict[str, str], rounds: int) -> dict[str, list[float]]:
    """Run each command once per round, in turn, so drift in machine load hits all alike."""
    times: dict[str, list[float]] = {name: [] for name in commands}
    for name, cmd in commands.items():  # warm the page cache and .pyc files
        run_once(cmd, env)
    for _ in range(rounds):
        for name, cmd in commands.items():
            times[name].append(run_once(cmd, env))
    return times


def median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


def machine() -> str:
    return f"{os.cpu_count()} CPU, Python {sys.version.split()[0]}, {sys.platform}"
