"""Cache-hit cost: credproc serving a cached entry, against the floor and the alternative.

Side by side, interleaved, in one run:
  floor            python -c pass, the same interpreter credproc runs on
  credproc         the installed console script, as credential_process runs it
  credproc-module  credproc's main() without pip's launcher (which imports re)
  boto3-helper     benchmarks/baselines/boto3_helper.py answering from its own JSON cache

usage: .venv/bin/python benchmarks/cache_hit.py [--rounds N]
Prints medians and ratios to the floor, and writes benchmarks/results/cache_hit.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import BIN, CREDPROC, ROLE_ARN, interleaved, isolated_env, local_sts, machine, median_ms  # noqa: E402

HERE = Path(__file__).parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args()
    python = str(BIN / "python")
    with local_sts() as sts, tempfile.TemporaryDirectory() as tmp:
        env = isolated_env(Path(tmp), sts)
        commands = {
            "floor": [python, "-c", "pass"],
            "credproc": [str(CREDPROC), "--conn", "bench"],
            "credproc-module": [python, "-c", "import sys; from credproc.cli import main; "
                                "sys.exit(main(['--conn', 'bench']))"],
            "boto3-helper": [python, str(HERE / "baselines" / "boto3_helper.py"), ROLE_ARN, sts,
                             str(Path(tmp) / "helper-cache.json")],
        }
        times = interleaved(commands, env, args.rounds)  # the warm-up round fills both caches
    floor = median_ms(times["floor"])
    results = {name: {"median_ms": round(median_ms(t), 2), "ratio_to_floor": round(median_ms(t) / floor, 2)}
               for name, t in times.items()}
    print(f"cache hit, {args.rounds} interleaved rounds; {machine()}")
    print(f"command: {Path(sys.executable).parent.parent.name}/bin/python benchmarks/cache_hit.py "
          f"--rounds {args.rounds}")
    for name, r in results.items():
        print(f"  {name:16} {r['median_ms']:8.1f} ms   {r['ratio_to_floor']:5.2f}x floor")
    out = HERE / "results" / "cache_hit.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"benchmark": "cache_hit", "rounds": args.rounds, "machine": machine(),
                               "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
