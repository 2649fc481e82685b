"""Memory: peak resident set size of a cache hit and of a miss, against the floor and the
boto3 helper.

Side by side, interleaved, in one run; each figure is the child's own peak RSS
(``ru_maxrss`` from ``os.wait4``), the median over the rounds:
  floor               python -c pass
  credproc-hit        bin/credproc --conn bench, cache warm
  credproc-miss       the same with its cache emptied first (AssumeRole at the local STS)
  boto3-helper-hit    benchmarks/baselines/boto3_helper.py answering from its JSON cache
  boto3-helper-miss   the same helper without a cache (AssumeRole)

usage: .venv/bin/python benchmarks/memory.py [--rounds N]
Writes benchmarks/results/memory.json.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import (BIN, CREDPROC, ROLE_ARN, counting_sts, interleaved, isolated_env, machine,  # noqa: E402
                     medians, reproduce, run_measured, write_results)

HERE = Path(__file__).parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    python = str(BIN / "python")
    helper = str(HERE / "baselines" / "boto3_helper.py")
    with counting_sts() as proxy, tempfile.TemporaryDirectory() as tmp:
        env = isolated_env(Path(tmp), proxy.url)
        # Two connections: "bench" stays cached (hits), "miss" has its entry removed each time.
        env["CREDPROC_CONN_MISS"] = env["CREDPROC_CONN_BENCH"]
        cache = Path(env["CREDPROC_CACHE_DIR"])

        def forget_miss() -> None:
            for entry in cache.glob("miss--*"):
                entry.unlink()
        commands = {
            "floor": [python, "-c", "pass"],
            "credproc-hit": [str(CREDPROC), "--conn", "bench"],
            "credproc-miss": [str(CREDPROC), "--conn", "miss"],
            "boto3-helper-hit": [python, helper, ROLE_ARN, proxy.url, str(Path(tmp) / "helper-cache.json")],
            "boto3-helper-miss": [python, helper, ROLE_ARN, proxy.url, "-"],
        }
        samples = interleaved(commands, env, args.rounds, runner=run_measured,
                              before={"credproc-miss": forget_miss})
        expected = 2 + 2 * (args.rounds + 1)  # the two hits' first fills, then every miss
        if proxy.count("AssumeRole") != expected:
            raise SystemExit(f"expected {expected} AssumeRole calls, STS saw {proxy.count('AssumeRole')}")

    results = {name: medians(s) for name, s in samples.items()}
    print(f"peak RSS, median of {args.rounds} interleaved rounds; {machine()}")
    print(f"command: {reproduce('memory.py', f'--rounds {args.rounds}')}")
    for name, r in results.items():
        print(f"  {name:18} {r['rss_mib']:6.1f} MiB   ({r['median_ms']:.0f} ms)")
    write_results("memory", {"rounds": args.rounds, "results": results}, {
        f"{name.replace('-', '_')}_rss_mib": r["rss_mib"] for name, r in results.items()
    })


if __name__ == "__main__":
    main()
