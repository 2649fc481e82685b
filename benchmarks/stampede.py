"""Stampede: N processes start together on a cold cache while STS is slow.

For each N, credproc and the baseline (benchmarks/baselines/boto3_helper.py: a boto3 helper
with a JSON file cache and no lock, what users write otherwise) run in turn against the same
local STS, whose AssumeRole answer is delayed. Reported: STS AssumeRole calls (credproc must
make exactly 1), failed processes (must be 0), and p50/p99 of each process's wall time.

usage: .venv/bin/python benchmarks/stampede.py [--sizes 8 32 128] [--delay 1.0]
Writes benchmarks/results/stampede.json (compared with the previous run's); exits 1 when
credproc made more than one STS call or a process failed.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from _common import (BIN, CREDPROC, ROLE_ARN, counting_sts, isolated_env, machine, percentile,  # noqa: E402
                     reproduce, write_results)


def stampede(cmd: list[str], env: dict[str, str], n: int) -> tuple[list[float], int]:
    """Start n copies of cmd as fast as possible; each one's wall time, and the failures."""
    times: list[float] = [0.0] * n
    codes: list[int] = [0] * n

    def watch(i: int, proc: subprocess.Popen, started: float) -> None:
        codes[i] = proc.wait()
        times[i] = time.perf_counter() - started

    watchers = []
    for i in range(n):
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        watcher = threading.Thread(target=watch, args=(i, proc, started))
        watcher.start()
        watchers.append(watcher)
    for watcher in watchers:
        watcher.join()
    return times, sum(1 for c in codes if c != 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[8, 32, 128])
    parser.add_argument("--delay", type=float, default=1.0, help="seconds STS takes to answer AssumeRole")
    args = parser.parse_args()
    rows = []
    with counting_sts() as proxy, tempfile.TemporaryDirectory() as tmp:
        env = isolated_env(Path(tmp), proxy.url)
        helper_cache = Path(tmp) / "helper-cache.json"
        contenders = {
            "credproc": [str(CREDPROC), "--conn", "bench"],
            "boto3-helper": [str(BIN / "python"), str(HERE / "baselines" / "boto3_helper.py"),
                             ROLE_ARN, proxy.url, str(helper_cache)],
        }
        for n in args.sizes:
            for name, cmd in contenders.items():
                shutil.rmtree(Path(tmp) / "cache", ignore_errors=True)
                helper_cache.unlink(missing_ok=True)
                proxy.reset()
                proxy.delay["AssumeRole"] = args.delay
                times, failures = stampede(cmd, env, n)
                rows.append({"tool": name, "processes": n, "sts_calls": proxy.count("AssumeRole"),
                             "failures": failures, "p50_s": round(percentile(times, 50), 3),
                             "p99_s": round(percentile(times, 99), 3)})
    print(f"stampede on a cold cache, AssumeRole delayed {args.delay:.1f} s; {machine()}")
    sizes = " ".join(map(str, args.sizes))
    print(f"command: {reproduce('stampede.py', f'--sizes {sizes} --delay {args.delay}')}")
    print(f"  {'tool':14} {'procs':>5} {'STS calls':>9} {'failures':>8} {'p50 s':>7} {'p99 s':>7}")
    for r in rows:
        print(f"  {r['tool']:14} {r['processes']:5} {r['sts_calls']:9} {r['failures']:8} "
              f"{r['p50_s']:7.2f} {r['p99_s']:7.2f}")
    summary = {}
    for r in rows:
        for key in ("sts_calls", "failures", "p50_s", "p99_s"):
            summary[f"{r['tool'].replace('-', '_')}_{r['processes']}_{key}"] = r[key]
    write_results("stampede", {"delay_s": args.delay, "results": rows}, summary)
    bad = [r for r in rows if r["tool"] == "credproc" and (r["sts_calls"] != 1 or r["failures"])]
    if bad:
        raise SystemExit(f"credproc must make 1 STS call and fail no process: {bad}")


if __name__ == "__main__":
    main()
