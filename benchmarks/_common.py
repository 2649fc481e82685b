"""Shared set-up for the benchmarks: a local STS, an isolated environment, interleaved timing,
peak memory of a child, and the results JSON (compared with the previous run's).

Every benchmark runs what it measures side by side with its baseline, one after the other in
each round ("interleaved"), so that drift in the machine's load hits all alike, and reports
medians and ratios. Results go to ``benchmarks/results/NAME.json`` (or
``$CREDPROC_BENCH_RESULTS/NAME.json``); when that file exists already, its headline figures
are printed next to the new ones before it is replaced.
"""

from __future__ import annotations

import json
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

HERE = Path(__file__).parent
BIN = Path(sys.executable).parent
CREDPROC = BIN / "credproc"
ROLE_ARN = "arn:aws:iam::123456789012:role/bench"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def local_sts() -> Iterator[str]:
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


@contextmanager
def counting_sts() -> Iterator:
    """moto behind the tests' counting proxy (tests/stsproxy.py): yields the proxy
    (``.url``, ``.count(action)``, ``.delay``)."""
    sys.path.insert(0, str(HERE.parent / "tests"))
    from stsproxy import StsProxy

    with local_sts() as upstream:
        proxy = StsProxy(upstream)
        try:
            yield proxy
        finally:
            proxy.close()


def isolated_env(tmp: Path, sts: str) -> dict[str, str]:
    """The environment an SDK would give credproc: nothing from the developer's AWS, credproc
    or Python settings (PYTHONDONTWRITEBYTECODE would make every run compile its modules)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "CREDPROC_", "AIRFLOW_CONN_", "PYTHON"))}
    env.update({
        "HOME": str(tmp),
        "CREDPROC_CACHE_DIR": str(tmp / "cache"),
        "CREDPROC_CONFIG": str(tmp / "none.toml"),
        "AWS_CONFIG_FILE": str(tmp / "aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "CREDPROC_CONN_BENCH": (
            "aws://AKIAIOSFODNN7EXAMPLE:wJalrXUtnFEMI%2FK7MDENG%2FbPxRfiCYEXAMPLEKEY@/?__extra__="
            + urllib.parse.quote(json.dumps({"role_arn": ROLE_ARN, "region_name": "us-east-1",
                                             "service_config": {"sts": {"endpoint_url": sts}}}), safe="")
        ),
    })
    return env


def run_once(cmd: list[str], env: dict[str, str]) -> float:
    """Wall time of one run of ``cmd``, in seconds; a failure stops the benchmark."""
    # From the home directory: run from the checkout, `python -c "import credproc"` would
    # find the source tree first (and compile it every time under PYTHONDONTWRITEBYTECODE).
    start = time.perf_counter()
    result = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, cwd=env["HOME"])
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"benchmark command failed: {' '.join(cmd)}\n{result.stderr.decode()}")
    return elapsed


# Started as `python -S -I -c SPAWNER cmd...`: forks, execs cmd, reaps it with wait4 and
# prints its wall time, CPU time and peak RSS. Why a separate small process: Linux records
# the RSS of the memory a process had before exec in its ru_maxrss, and a child forked (or
# vforked) by this benchmark process would start with the benchmark's (moto, boto3: ~70
# MiB). This spawner is ~5 MiB, below any Python run it measures.
SPAWNER = """\
import os, sys, time
devnull = os.open(os.devnull, os.O_RDWR)
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.dup2(devnull, 0)
        os.dup2(devnull, 1)
        os.execv(sys.argv[1], sys.argv[1:])
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
elapsed = time.perf_counter() - start
print(elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss, os.waitstatus_to_exitcode(status))
"""


def run_measured(cmd: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """Wall time (s), CPU time (user + system, s) and peak resident set size (KiB) of one
    run of ``cmd``, taken by a small spawner process (see SPAWNER).

    The rusage is that of the one child (with any children it reaped): nothing else in the
    process tree - the benchmark, moto - is counted. CPU time is the steadier figure on a
    shared machine: other processes' load stretches wall time, not it. ``cmd[0]`` must be an
    executable path (it is exec'd, not looked up in PATH).
    """
    with tempfile.TemporaryFile() as err:
        out = subprocess.run([sys.executable, "-S", "-I", "-c", SPAWNER, *cmd], env=env, cwd=env["HOME"],
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err, check=True)
        elapsed, cpu, maxrss, code = out.stdout.split()
        if int(code) != 0:
            err.seek(0)
            raise SystemExit(f"benchmark command failed ({int(code)}): {' '.join(cmd)}\n{err.read().decode()}")
    return float(elapsed), float(cpu), int(maxrss)  # ru_maxrss: KiB on Linux


def interleaved(commands: dict[str, list[str]], env: dict[str, str], rounds: int,
                before: dict[str, Callable[[], None]] | None = None,
                runner: Callable[[list[str], dict[str, str]], object] = run_once) -> dict[str, list]:
    """Run each command once per round, so drift in machine load hits all alike.

    The order within a round is shuffled (with a fixed seed), so that no command always
    follows the same one. ``before[name]`` runs, untimed, before every run of that command
    (e.g. to empty a cache). A first, unrecorded round warms the page cache and .pyc files.
    """
    before = before or {}
    shuffle = random.Random(7).shuffle
    results: dict[str, list] = {name: [] for name in commands}
    for name, cmd in commands.items():
        before.get(name, lambda: None)()
        runner(cmd, env)
    names = list(commands)
    for _ in range(rounds):
        shuffle(names)
        for name in names:
            before.get(name, lambda: None)()
            results[name].append(runner(cmd=commands[name], env=env))
    return results


def medians(samples: list[tuple[float, float, int]]) -> dict[str, float]:
    """Medians of run_measured samples: wall and CPU milliseconds, peak RSS in MiB."""
    return {"median_ms": round(statistics.median(s[0] for s in samples) * 1000, 2),
            "cpu_ms": round(statistics.median(s[1] for s in samples) * 1000, 2),
            "rss_mib": round(statistics.median(s[2] for s in samples) / 1024, 1)}


def median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def machine() -> str:
    """What the figures were measured on, for the README and the JSON."""
    cpu = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        pass
    system = platform.system()
    try:
        system = platform.freedesktop_os_release().get("PRETTY_NAME", system)
    except (OSError, AttributeError):
        pass
    return ", ".join(part for part in (f"{os.cpu_count()} CPU", cpu, f"Python {sys.version.split()[0]}",
                                       system) if part)


def python_label() -> str:
    """How the README names this interpreter: ``.venv/bin/python`` for the checkout's venv."""
    venv = Path(sys.executable).parent.parent
    return f"{venv.name}/bin/python" if venv.name == ".venv" else sys.executable


def reproduce(script: str, args: str = "") -> str:
    return f"{python_label()} benchmarks/{script}{' ' + args if args else ''}"


def results_dir() -> Path:
    return Path(os.environ.get("CREDPROC_BENCH_RESULTS") or HERE / "results")


def write_results(name: str, payload: dict, summary: dict[str, float]) -> Path:
    """Write ``results/NAME.json``: the payload plus its headline ``summary`` figures, and
    print those next to the previous run's (from the file being replaced), if any."""
    out = results_dir() / f"{name}.json"
    previous: dict = {}
    if out.exists():
        try:
            previous = json.loads(out.read_text())
        except ValueError:
            previous = {}
    payload = {"benchmark": name, "date": time.strftime("%Y-%m-%d"), "machine": machine(), **payload,
               "summary": summary}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    tmp.replace(out)
    print(compare(previous, payload))
    return out


def compare(previous: dict, current: dict) -> str:
    """The headline figures of this run against the previous run's, one per line."""
    old = previous.get("summary") or {}
    if not old:
        return "  (no previous results to compare with)"
    lines = [f"  against the previous run ({previous.get('date', '?')}; {previous.get('machine', '?')}):"]
    for key, value in current["summary"].items():
        before = old.get(key)
        if isinstance(before, (int, float)) and isinstance(value, (int, float)):
            change = f"{(value - before) / before * 100:+.0f}%" if before else ""
            lines.append(f"    {key:40} {before:>10} -> {value:<10} {change}")
        else:
            lines.append(f"    {key:40} {'(new)':>10} -> {value}")
    return "\n".join(lines)
