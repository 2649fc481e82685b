"""Across a refresh point: N processes start together just after a warm entry stops being
fresh, with this build (new) and the previous one (old) side by side.

For each build, in turn and in a shuffled order each round: a one-hour entry (moto's default
session) is fetched in real time into a cache of its own; the clock (libfaketime) is moved
to the moment that build stops serving it as fresh, by its own rule (``Entry.fresh_until``:
the new build's due point, 27 minutes; the old build's refresh point, 40 minutes), plus
``--after`` seconds; and N processes of that build start at once (``--spread`` seconds
between starts, 0: as fast as possible), each as an SDK starts credential_process (stdin
closed, stdout and stderr pipes read to their end). The new build prints the entry at once
and one detached process refreshes it; the old build refreshes in the foreground, under the
lock, while the others wait. Each burst is repeated for every AssumeRole delay of the local
STS (``--delays``: 0 is a local STS's own speed, 1.0 a slow STS).

Reported per build and delay, over all rounds' processes: p50, p99 and max of the
per-process wall time (start to end-of-output and exit), failed processes, STS AssumeRole
calls per burst (counted after any detached refresher has finished), how many processes
printed the cached entry; and the ratios new / old. Nothing is asserted.

usage: .venv/bin/python benchmarks/refresh_point.py --old OTHER_VENV/bin/credproc
           [--processes 128] [--rounds 3] [--delays 0 1.0] [--spread 0] [--after 1]
Writes benchmarks/results/refresh_point.json (its headline figures compared with the
previous run's). The old build: $CREDPROC_BENCH_OLD if --old is not given
(benchmarks/previous_build.py makes one).
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import CREDPROC, counting_sts, isolated_env, machine, percentile, reproduce, write_results  # noqa: E402
from _timeline import (at, credentials, describe, entry_times, fresh_until, old_build, ratio, run,  # noqa: E402
                       wait_unlocked)


def burst(exe: str, env: dict[str, str], n: int, spread: float) -> tuple[list[dict], float]:
    """Start n runs of ``exe --conn bench``; per process: wall time, exit code, the key it
    printed, its warning lines. Also the seconds the starts took."""
    out: list[dict] = [{} for _ in range(n)]

    def watch(i: int, proc: subprocess.Popen, started: float) -> None:
        stdout, stderr = proc.communicate()
        elapsed = time.perf_counter() - started
        creds = credentials(subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr))
        out[i] = {"seconds": elapsed, "exit": proc.returncode, "key": creds and creds["AccessKeyId"],
                  "warnings": sum(1 for line in stderr.splitlines() if line.startswith("credproc: warning:"))}

    watchers = []
    first = time.perf_counter()
    for i in range(n):
        if spread and i:
            time.sleep(spread / (n - 1))
        started = time.perf_counter()
        proc = subprocess.Popen([exe, "--conn", "bench"], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, cwd=env["HOME"])
        watcher = threading.Thread(target=watch, args=(i, proc, started))
        watcher.start()
        watchers.append(watcher)
    span = time.perf_counter() - first
    for watcher in watchers:
        watcher.join()
    return out, span


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--old", help="the previous build's credproc executable (default: $CREDPROC_BENCH_OLD)")
    parser.add_argument("--processes", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--delays", type=float, nargs="+", default=[0.0, 1.0],
                        help="seconds the STS takes to answer AssumeRole")
    parser.add_argument("--spread", type=float, default=0.0, help="seconds over which the processes are started")
    parser.add_argument("--after", type=float, default=1.0, help="seconds past the refresh point the clock is moved to")
    args = parser.parse_args()
    builds = {"old": old_build(args.old), "new": str(CREDPROC)}
    info = {name: describe(exe) for name, exe in builds.items()}
    shuffle = random.Random(13).shuffle
    bursts = []
    with counting_sts() as proxy, tempfile.TemporaryDirectory() as tmp:
        base = isolated_env(Path(tmp), proxy.url)
        for delay in args.delays:
            for rnd in range(args.rounds):
                names = list(builds)
                shuffle(names)
                for name in names:
                    exe = builds[name]
                    env = {**base, "CREDPROC_CACHE_DIR": str(Path(tmp) / f"cache-{name}-{delay:g}-{rnd}")}
                    proxy.reset()
                    warm, _ = run(exe, env)
                    cached = credentials(warm)
                    if cached is None or proxy.count("AssumeRole") != 1:
                        raise SystemExit(f"{name}: warming the entry failed: {warm.stderr}")
                    fetched, expires = entry_times(env["CREDPROC_CACHE_DIR"])
                    point = fresh_until(exe, fetched, expires)
                    proxy.reset()
                    proxy.delay["AssumeRole"] = delay
                    procs, span = burst(exe, at(env, point + args.after), args.processes, args.spread)
                    waited = wait_unlocked(env["CREDPROC_CACHE_DIR"])
                    bursts.append({
                        "build": name, "delay_s": delay, "round": rnd,
                        "refresh_point_min": round((point - fetched) / 60, 2),
                        "lifetime_min": round((expires - fetched) / 60, 2),
                        "start_span_s": round(span, 3), "refresher_after_s": round(waited, 3),
                        "sts_calls": proxy.count("AssumeRole"),
                        "failures": sum(1 for p in procs if p["exit"] != 0),
                        "printed_cached": sum(1 for p in procs if p["key"] == cached["AccessKeyId"]),
                        "warnings": sum(p["warnings"] for p in procs),
                        "seconds": [round(p["seconds"], 4) for p in procs],
                    })
    rows = []
    for delay in args.delays:
        for name in builds:
            mine = [b for b in bursts if b["build"] == name and b["delay_s"] == delay]
            times = [t for b in mine for t in b["seconds"]]
            rows.append({
                "build": name, "delay_s": delay, "bursts": len(mine), "processes": len(times),
                "refresh_point_min": mine[0]["refresh_point_min"],
                "p50_s": round(percentile(times, 50), 3), "p99_s": round(percentile(times, 99), 3),
                "max_s": round(max(times), 3),
                "sts_calls_per_burst": round(statistics.mean(b["sts_calls"] for b in mine), 2),
                "sts_calls_max": max(b["sts_calls"] for b in mine),
                "failures": sum(b["failures"] for b in mine),
                "printed_cached": sum(b["printed_cached"] for b in mine),
                "warnings": sum(b["warnings"] for b in mine),
                "start_span_s": round(statistics.median(b["start_span_s"] for b in mine), 3),
            })
    ratios = []
    for delay in args.delays:
        old = next(r for r in rows if r["build"] == "old" and r["delay_s"] == delay)
        new = next(r for r in rows if r["build"] == "new" and r["delay_s"] == delay)
        ratios.append({"delay_s": delay, **{f"{k}_new_over_old": ratio(new[k], old[k])
                                            for k in ("p50_s", "p99_s", "max_s", "sts_calls_per_burst")}})

    print(f"{args.processes} processes started together across a refresh point, {args.rounds} rounds per "
          f"build and delay; {machine()}")
    print(f"  old: {info['old'].get('commit', info['old']['exe'])}")
    print(f"  new: {info['new'].get('commit', info['new']['exe'])}")
    delays = " ".join(f"{d:g}" for d in args.delays)
    options = (f"--old {builds['old']} --processes {args.processes} --rounds {args.rounds} --delays {delays} "
               f"--spread {args.spread:g} --after {args.after:g}")
    print(f"command: {reproduce('refresh_point.py', options)}")
    print(f"  {'build':5} {'delay':>5} {'point':>7} {'procs':>5} {'p50 s':>7} {'p99 s':>7} {'max s':>7} "
          f"{'STS/burst':>9} {'failed':>6} {'cached':>6} {'warn':>4}")
    for r in rows:
        print(f"  {r['build']:5} {r['delay_s']:5g} {r['refresh_point_min']:5g} m {r['processes']:5} {r['p50_s']:7.3f} "
              f"{r['p99_s']:7.3f} {r['max_s']:7.3f} {r['sts_calls_per_burst']:9g} {r['failures']:6} "
              f"{r['printed_cached']:6} {r['warnings']:4}")
    for q in ratios:
        print(f"  new / old, STS delay {q['delay_s']:g} s: p50 {q['p50_s_new_over_old']}x, "
              f"p99 {q['p99_s_new_over_old']}x, max {q['max_s_new_over_old']}x, "
              f"STS calls {q['sts_calls_per_burst_new_over_old']}x")
    summary: dict[str, float] = {}
    for r in rows:
        tag = f"{r['build']}_{r['delay_s']:g}s"
        for key in ("p50_s", "p99_s", "max_s", "sts_calls_per_burst", "failures"):
            summary[f"{tag}_{key}"] = r[key]
    for q in ratios:
        for key in ("p50_s", "p99_s", "max_s"):
            summary[f"{key}_new_over_old_{q['delay_s']:g}s"] = q[f"{key}_new_over_old"]
    write_results("refresh_point", {
        "processes": args.processes, "rounds": args.rounds, "spread_s": args.spread, "after_s": args.after,
        "builds": info, "results": rows, "ratios": ratios, "bursts": bursts}, summary)


if __name__ == "__main__":
    main()
