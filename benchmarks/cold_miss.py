"""Cold miss: credproc assuming a role at the local STS, against a minimal boto3 script
doing the same AssumeRole.

Side by side, interleaved, in one run:
  credproc        bin/credproc --conn bench with its cache emptied before every run: the
                  whole miss path (the fast path's look, the lock, the connection, boto3,
                  AssumeRole, the atomic write)
  boto3-assume    benchmarks/baselines/boto3_helper.py with no cache: import boto3, make an
                  STS client, AssumeRole, print - the least a Python helper can do
  boto3-import    python -c "import boto3": the part of both that no helper can avoid

Both call the same local STS (moto behind the counting proxy, which checks that every
run made exactly one AssumeRole). credproc should add nothing measurable to the script.

usage: .venv/bin/python benchmarks/cold_miss.py [--rounds N]
Writes benchmarks/results/cold_miss.json.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import (BIN, CREDPROC, ROLE_ARN, counting_sts, interleaved, isolated_env, machine,  # noqa: E402
                     medians, reproduce, run_measured, write_results)

HERE = Path(__file__).parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    python = str(BIN / "python")
    with counting_sts() as proxy, tempfile.TemporaryDirectory() as tmp:
        env = isolated_env(Path(tmp), proxy.url)
        commands = {
            "credproc": [str(CREDPROC), "--conn", "bench"],
            "boto3-assume": [python, str(HERE / "baselines" / "boto3_helper.py"), ROLE_ARN, proxy.url, "-"],
            "boto3-import": [python, "-c", "import boto3"],
        }
        cache = Path(env["CREDPROC_CACHE_DIR"])
        samples = interleaved(commands, env, args.rounds, runner=run_measured,
                              before={"credproc": lambda: shutil.rmtree(cache, ignore_errors=True)})
        expected = 2 * (args.rounds + 1)  # one per run of each of the two, warm-up round included
        if proxy.count("AssumeRole") != expected:
            raise SystemExit(f"expected {expected} AssumeRole calls, STS saw {proxy.count('AssumeRole')}")

    results = {name: medians(s) for name, s in samples.items()}
    base = results["boto3-assume"]
    for r in results.values():
        r["ratio_to_boto3_assume"] = round(r["median_ms"] / base["median_ms"], 2)
        r["cpu_ratio_to_boto3_assume"] = round(r["cpu_ms"] / base["cpu_ms"], 2)
    print(f"cold miss (AssumeRole at a local STS), {args.rounds} interleaved rounds; {machine()}")
    print(f"command: {reproduce('cold_miss.py', f'--rounds {args.rounds}')}")
    print(f"  {'':14} {'wall':>9}   {'vs boto3':>8}   {'CPU':>9}   {'vs boto3':>8}")
    for name, r in results.items():
        print(f"  {name:14} {r['median_ms']:6.1f} ms   {r['ratio_to_boto3_assume']:7.2f}x   {r['cpu_ms']:6.1f} ms   "
              f"{r['cpu_ratio_to_boto3_assume']:7.2f}x")
    extra = results["credproc"]["median_ms"] - base["median_ms"]
    print(f"  credproc - boto3 script: {extra:+.1f} ms wall, "
          f"{results['credproc']['cpu_ms'] - base['cpu_ms']:+.1f} ms CPU")
    write_results("cold_miss", {"rounds": args.rounds, "results": results}, {
        "credproc_ms": results["credproc"]["median_ms"],
        "boto3_assume_ms": base["median_ms"],
        "credproc_ratio_to_boto3_assume": results["credproc"]["ratio_to_boto3_assume"],
        "credproc_cpu_ratio_to_boto3_assume": results["credproc"]["cpu_ratio_to_boto3_assume"],
        "boto3_import_ms": results["boto3-import"]["median_ms"],
    })


if __name__ == "__main__":
    main()
