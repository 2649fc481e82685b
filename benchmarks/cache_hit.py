"""Cache-hit cost: credproc serving a cached entry, against the floor and the alternative.

Side by side, interleaved, in one run:
  floor            python -c pass, the same interpreter credproc runs on
  credproc         the installed console script, as credential_process runs it
  credproc-module  credproc's main() without pip's launcher (which imports re)
  boto3-helper     benchmarks/baselines/boto3_helper.py answering from its own JSON cache
  EXE              with --compare EXE (repeatable): another credproc executable (another
                   version's venv) on the same connection and cache, e.g. main before and
                   after a change, each installed in a venv of the same packages

usage: .venv/bin/python benchmarks/cache_hit.py [--rounds N] [--compare OTHER/bin/credproc ...]
Prints medians (wall and CPU time) and ratios to the floor, and writes benchmarks/results/cache_hit.json
(its headline figures compared with the previous run's). The launcher options are weighed in
launcher.py; what a hit imports beyond the floor, also there.
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
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--compare", metavar="EXE", action="append", default=[],
                        help="another credproc executable to run side by side (repeatable)")
    args = parser.parse_args()
    python = str(BIN / "python")
    with counting_sts() as proxy, tempfile.TemporaryDirectory() as tmp:
        sts = proxy.url
        env = isolated_env(Path(tmp), sts)
        commands = {
            "floor": [python, "-c", "pass"],
            "credproc": [str(CREDPROC), "--conn", "bench"],
            "credproc-module": [python, "-c", "import sys; from credproc.cli import main; "
                                "sys.exit(main(['--conn', 'bench']))"],
            "boto3-helper": [python, str(HERE / "baselines" / "boto3_helper.py"), ROLE_ARN, sts,
                             str(Path(tmp) / "helper-cache.json")],
        }
        for exe in args.compare:
            commands[exe] = [exe, "--conn", "bench"]
        samples = interleaved(commands, env, args.rounds, runner=run_measured)  # warm-up fills the caches
        # One per cache, in the warm-up round, all else hits; another version may key its entry apart.
        expected = set(range(2, 3 + len(args.compare)))
        if proxy.count("AssumeRole") not in expected:
            raise SystemExit(f"expected {' or '.join(map(str, sorted(expected)))} AssumeRole calls, "
                             f"STS saw {proxy.count('AssumeRole')}")
    results = {name: medians(s) for name, s in samples.items()}
    for r in results.values():  # the ratios, by wall time and by CPU time
        r["ratio_to_floor"] = round(r["median_ms"] / results["floor"]["median_ms"], 2)
        r["cpu_ratio_to_floor"] = round(r["cpu_ms"] / results["floor"]["cpu_ms"], 2)
    print(f"cache hit, {args.rounds} interleaved rounds; {machine()}")
    compare = "".join(f" --compare {exe}" for exe in args.compare)
    print(f"command: {reproduce('cache_hit.py', f'--rounds {args.rounds}{compare}')}")
    width = max(16, *(len(name) for name in results))
    print(f"  {'':{width}} {'wall':>8}   {'vs floor':>8}   {'CPU':>8}   {'vs floor':>8}")
    for name, r in results.items():
        print(f"  {name:{width}} {r['median_ms']:6.1f} ms   {r['ratio_to_floor']:7.2f}x   {r['cpu_ms']:6.1f} ms   "
              f"{r['cpu_ratio_to_floor']:7.2f}x")
    helper_vs_credproc = round(results["boto3-helper"]["median_ms"] / results["credproc"]["median_ms"], 1)
    print(f"  the boto3 helper's hit takes {helper_vs_credproc}x credproc's")
    for first, second in zip(args.compare, args.compare[1:], strict=False):
        ratio = round(results[second]["median_ms"] / results[first]["median_ms"], 3)
        print(f"  {second} takes {ratio}x the time of {first}")
    write_results("cache_hit", {"rounds": args.rounds, "results": results}, {
        "floor_ms": results["floor"]["median_ms"],
        "credproc_ms": results["credproc"]["median_ms"],
        "credproc_ratio_to_floor": results["credproc"]["ratio_to_floor"],
        "credproc_cpu_ratio_to_floor": results["credproc"]["cpu_ratio_to_floor"],
        "credproc_module_ratio_to_floor": results["credproc-module"]["ratio_to_floor"],
        "boto3_helper_ratio_to_floor": results["boto3-helper"]["ratio_to_floor"],
        "boto3_helper_vs_credproc": helper_vs_credproc,
    })


if __name__ == "__main__":
    main()
