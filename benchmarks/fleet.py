"""Fleet arithmetic, on paper: STS AssumeRole calls for N hosts x M processes per hour, with
credproc's shared on-disk cache and without one, next to STS's request-rate quota.

Without a shared cache every process that starts makes its own AssumeRole: an SDK's own
role provider (boto3, Go, JS keep credentials per process only) or a helper without a cache.
With credproc, the processes of one host (one user, one connection) share one entry: it is
fetched once and refreshed when it falls due (``cache.Entry.fresh_until``: halfway to the
6-minute floor, at most an hour after the fetch), so a host makes at most
3600 / (due - fetched) calls an hour however many processes start.
When all hosts start P processes in the same second (a deploy, a cron minute), the lock
makes that one call per host instead of P.

The quota is a parameter (``--quota-rps``). The default, 600 requests per second per account
and Region, is the figure users report hitting for STS (e.g. awslabs/mountpoint-s3 issue
1358); AWS's knowledge-center article on IAM and STS throttling ("How do I resolve API
throttling or 'Rate exceeded' errors for IAM and AWS STS?") gives no figure and says these
rate quotas cannot be increased. Check the figure for your account before relying on it.

usage: .venv/bin/python benchmarks/fleet.py [--hosts 100 1000 10000] [--procs-per-hour 60 3600]
                                            [--sessions 3600 900] [--burst 32] [--quota-rps 600]
Writes benchmarks/results/fleet.json. Nothing is measured: it is arithmetic from credproc's
own refresh rule (credproc.cache.Entry.fresh_until).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import reproduce, write_results  # noqa: E402


def num(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:.3g}"


def mark(rps: float, quota: float) -> str:
    """A rate, in bold when above the quota (those requests are throttled)."""
    return f"**{num(rps)}**" if rps > quota else num(rps)


def main() -> None:
    from credproc.cache import Entry

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--procs-per-hour", type=int, nargs="+", default=[60, 3600],
                        help="processes per host per hour that need the connection's credentials")
    parser.add_argument("--sessions", type=int, nargs="+", default=[3600, 900],
                        help="role session lifetimes in seconds (DurationSeconds)")
    parser.add_argument("--burst", type=int, default=32, help="processes per host starting in the same second")
    parser.add_argument("--quota-rps", type=float, default=600.0, help="STS requests per second per account and Region")
    args = parser.parse_args()

    rows = []
    for lifetime in args.sessions:
        served = Entry(b"", 0.0, float(lifetime)).fresh_until  # seconds until an entry is refreshed
        per_host_cap = 3600 / served
        for m in args.procs_per_hour:
            for n in args.hosts:
                without = n * m
                with_cache = n * min(m, per_host_cap)
                rows.append({
                    "session_s": lifetime, "served_s": served, "hosts": n, "procs_per_host_hour": m,
                    "without_calls_per_hour": without, "without_avg_rps": round(without / 3600, 2),
                    "without_burst_rps": n * args.burst,
                    "credproc_calls_per_hour": round(with_cache, 1), "credproc_avg_rps": round(with_cache / 3600, 3),
                    "credproc_burst_rps": n,
                })
    quota = args.quota_rps
    print(f"fleet arithmetic: STS AssumeRole calls, without a shared cache vs with credproc; "
          f"quota assumed {quota:g} requests/s per account and Region; burst = {args.burst} processes "
          f"per host starting in the same second")
    print(f"command: {reproduce('fleet.py', f'--burst {args.burst} --quota-rps {quota:g}')}")
    print()
    print("| session | hosts | processes/host/h | without: calls/h | avg/s | burst/s | credproc: calls/h | avg/s | burst/s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['session_s'] // 60} min (refreshed after {r['served_s'] / 60:g} min) | {r['hosts']:,} | "
              f"{r['procs_per_host_hour']:,} | {num(r['without_calls_per_hour'])} | {mark(r['without_avg_rps'], quota)} | "
              f"{mark(r['without_burst_rps'], quota)} | {num(r['credproc_calls_per_hour'])} | "
              f"{mark(r['credproc_avg_rps'], quota)} | {mark(r['credproc_burst_rps'], quota)} |")
    print(f"\nbold: above the assumed quota of {quota:g}/s (requests are throttled and retried).")
    biggest = max(rows, key=lambda r: (r["session_s"], r["hosts"], r["procs_per_host_hour"]))
    write_results("fleet", {"quota_rps": quota, "burst": args.burst, "results": rows}, {
        "hosts": biggest["hosts"], "procs_per_host_hour": biggest["procs_per_host_hour"],
        "without_avg_rps": biggest["without_avg_rps"], "credproc_avg_rps": biggest["credproc_avg_rps"],
        "without_burst_rps": biggest["without_burst_rps"], "credproc_burst_rps": biggest["credproc_burst_rps"],
    })


if __name__ == "__main__":
    main()
