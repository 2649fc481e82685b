"""All the benchmarks, one after the other, then the README's "Performance" table from their
results.

usage: .venv/bin/python benchmarks/run_all.py [--quick] [--only NAME ...] [--results-dir DIR] [--old EXE]

Each benchmark prints its figures, the command that reproduces it alone, and its headline
figures next to the previous run's (the JSON it replaces in benchmarks/results/). The full
run takes a few minutes on a 2-core machine; --quick runs few rounds (a smoke check, not
figures to publish) and, unless --results-dir says otherwise, writes to a temporary
directory so that it never replaces the recorded results.

``--old EXE`` (else ``$CREDPROC_BENCH_OLD``) is the previous build's credproc, in a venv of
the same packages (``benchmarks/previous_build.py`` makes one): refresh_point.py and
outage.py run it side by side with this build, and cache_hit.py compares the two hits
(``--compare OLD --compare NEW``). Without it those two are skipped, and said so.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import CREDPROC, HERE, machine, python_label, results_dir  # noqa: E402
from _timeline import OLD_VARIABLE, minutes  # noqa: E402

# name -> (arguments of the full run, arguments of --quick)
BENCHMARKS = {
    "cache_hit": (["--rounds", "40"], ["--rounds", "3"]),
    "launcher": (["--rounds", "30"], ["--rounds", "3", "--only", "pip26"]),
    "cold_miss": (["--rounds", "15"], ["--rounds", "2"]),
    "memory": (["--rounds", "5"], ["--rounds", "1"]),
    "stampede": (["--sizes", "8", "32", "128", "--delay", "1.0"], ["--sizes", "8", "--delay", "0.5"]),
    "fleet": ([], []),
    "refresh_point": (["--processes", "128", "--rounds", "3", "--delays", "0", "1.0"],
                      ["--processes", "16", "--rounds", "1", "--delays", "0"]),
    "outage": (["--roles", "900", "3600", "43200"], ["--roles", "900", "3600"]),
    "serve_load": (["--requests", "1000", "--clients", "10"], ["--requests", "100", "--clients", "10"]),
    "serve_lookup": (["--rounds", "30"], ["--rounds", "3"]),
}
NEEDS_OLD = {"refresh_point", "outage"}  # they run the previous build (--old) side by side


def load(name: str) -> dict:
    path = results_dir() / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else {}


def table() -> str:
    """The README's Performance table, from the results JSON."""
    rows = []
    hit = load("cache_hit").get("results")
    if hit:
        floor = hit["floor"]
        rows.append(f"| `python -c pass` (the floor) | {floor['median_ms']:.1f} ms | 1.00× |")
        rows.append(f"| cache hit: `credproc --conn bench` | {hit['credproc']['median_ms']:.1f} ms | "
                    f"{hit['credproc']['ratio_to_floor']:.2f}× (CPU {hit['credproc']['cpu_ratio_to_floor']:.2f}×) |")
        rows.append(f"| cache hit: a minimal boto3 helper with a JSON cache | {hit['boto3-helper']['median_ms']:.0f} ms | "
                    f"{hit['boto3-helper']['ratio_to_floor']:.1f}× |")
    launch = load("launcher").get("results")
    if launch and "pip26 launcher" in launch:  # the rest, install by install, is the launcher table
        r = launch["pip26 launcher"]
        rows.append(f"| cache hit: the line `credproc configure` writes (`python -I -S .../_launch.py`) | "
                    f"{r['median_ms']:.1f} ms | {r['ratio_to_floor']:.2f}× the venv's own `python -c pass` "
                    f"(CPU {r['cpu_ratio_to_floor']:.2f}×) |")
    miss = load("cold_miss").get("results")
    if miss:
        rows.append(f"| cold miss: credproc, AssumeRole at a local STS | {miss['credproc']['median_ms']:.0f} ms | "
                    f"{miss['credproc']['ratio_to_boto3_assume']:.2f}× a minimal boto3 AssumeRole script "
                    f"({miss['boto3-assume']['median_ms']:.0f} ms) |")
    mem = load("memory").get("results")
    if mem:
        rows.append(f"| peak RSS: hit / miss | {mem['credproc-hit']['rss_mib']:.1f} / {mem['credproc-miss']['rss_mib']:.1f} MiB "
                    f"| floor {mem['floor']['rss_mib']:.1f} MiB; boto3 helper {mem['boto3-helper-hit']['rss_mib']:.1f} / "
                    f"{mem['boto3-helper-miss']['rss_mib']:.1f} MiB |")
    stampede = load("stampede")
    for r in stampede.get("results", []):
        if r["tool"] == "credproc" and r["processes"] == max(x["processes"] for x in stampede["results"]):
            other = next(x for x in stampede["results"] if x["tool"] == "boto3-helper" and x["processes"] == r["processes"])
            rows.append(f"| stampede: {r['processes']} processes, cold cache, STS answering in "
                        f"{stampede['delay_s']:g} s | {r['sts_calls']} STS call, {r['failures']} failures, "
                        f"p50 {r['p50_s']:.1f} s, p99 {r['p99_s']:.1f} s | boto3 helper: {other['sts_calls']} calls, "
                        f"p50 {other['p50_s']:.1f} s, p99 {other['p99_s']:.1f} s |")
    hit_old = [name for name in (hit or {}) if name.endswith("/credproc") and name != str(CREDPROC)]
    if hit and hit_old and str(CREDPROC) in hit:
        old, new = hit[hit_old[0]], hit[str(CREDPROC)]
        rows.append(f"| cache hit, this build against the previous one (`--compare`) | {new['median_ms']:.1f} ms "
                    f"(CPU {new['cpu_ms']:.1f} ms) | {new['median_ms'] / old['median_ms']:.3f}× the previous build's "
                    f"{old['median_ms']:.1f} ms (CPU {new['cpu_ms'] / old['cpu_ms']:.3f}×) |")
    point = load("refresh_point")
    for q in point.get("ratios", []):
        new, old = (next(r for r in point["results"] if r["build"] == b and r["delay_s"] == q["delay_s"])
                    for b in ("new", "old"))
        speed = f"{q['delay_s']:g} s" if q["delay_s"] else "its own time"
        rows.append(f"| {point['processes']} processes across a refresh point (1-h role), STS answering in {speed} | "
                    f"p50 {new['p50_s']:.2f} s, p99 {new['p99_s']:.2f} s, max {new['max_s']:.2f} s, "
                    f"{new['sts_calls_per_burst']:g} STS call | previous build (foreground refresh at "
                    f"{old['refresh_point_min']:g} min): p50 {old['p50_s']:.2f} s, p99 {old['p99_s']:.2f} s, "
                    f"{old['sts_calls_per_burst']:g} STS call; p50 {q['p50_s_new_over_old']:.2f}×, "
                    f"p99 {q['p99_s_new_over_old']:.2f}× |")
    outage = load("outage").get("results")
    if outage:
        lengths = sorted({r["lifetime_s"] for r in outage})
        survived = {(r["build"], r["lifetime_s"]): minutes(r["survived_s"]) for r in outage}
        rows.append(f"| STS outage survived unnoticed, {' / '.join(minutes(x) for x in lengths)} role | "
                    f"{' / '.join(survived[('new', x)] for x in lengths)} | previous build: "
                    f"{' / '.join(survived[('old', x)] for x in lengths)} |")
    served = load("serve_load")
    if served:
        ms = served["latency_ms"]
        rows.append(f"| `credproc serve`: {served['requests']} requests from {served['clients']} concurrent clients | "
                    f"{served['failures']} failures, p50 {ms['p50']:.1f} ms, p90 {ms['p90']:.1f} ms, "
                    f"p99 {ms['p99']:.1f} ms, max {ms['max']:.1f} ms | {served['sts_calls']} STS call |")
    lookup = load("serve_lookup")
    if lookup:
        med = lookup["median_ms"]
        rows.append(f"| one botocore credential lookup through `credproc serve` | {med['server']:.1f} ms | "
                    f"credential_process (a credproc cache hit): {med['credential_process']:.1f} ms, "
                    f"{lookup['ratio_process_to_server']:.1f}× |")
    if not rows:
        return "(no results yet)"
    head = "| | median | vs baseline |\n|---|---|---|"
    return head + "\n" + "\n".join(rows)


INSTALL_LABELS = {
    "pip23": "pip 23 (`python3 -m venv` as Debian/Ubuntu make it)",
    "pip26": "pip 26 (`make install`)",
    "pipx": "pipx (`pipx install`)",
    "uv-tool": "uv (`uv tool install`)",
    "uv-pip": "uv (`uv venv` + `uv pip install`)",
    "editable": "editable (`pip install -e`)",
}


def launcher_table() -> str:
    """The README's launcher table (benchmarks/launcher.py): a hit, install by install."""
    launch = load("launcher").get("results") or {}
    rows = []
    for name, label in INSTALL_LABELS.items():
        if f"{name} launcher" not in launch:
            continue
        floor, script, line = (launch[f"{name} {kind}"] for kind in ("floor", "console-script", "launcher"))
        rows.append(f"| {label} | {floor['median_ms']:.1f} ms | {script['median_ms']:.1f} ms "
                    f"({script['ratio_to_floor']:.2f}×, CPU {script['cpu_ratio_to_floor']:.2f}×) | "
                    f"{line['median_ms']:.1f} ms ({line['ratio_to_floor']:.2f}×, CPU {line['cpu_ratio_to_floor']:.2f}×) |")
    if not rows:
        return "(no launcher results yet)"
    head = ("| installed with | `python -c pass` | `bin/credproc` (the installer's) | the line `credproc configure` "
            "writes |\n|---|---|---|---|")
    return head + "\n" + "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="few rounds: a smoke check, written to a temporary dir")
    parser.add_argument("--only", nargs="+", choices=list(BENCHMARKS), help="run only these")
    parser.add_argument("--results-dir", help="where to write the JSON (default: benchmarks/results)")
    parser.add_argument("--old", default=os.environ.get(OLD_VARIABLE),
                        help=f"the previous build's credproc executable (default: ${OLD_VARIABLE})")
    args = parser.parse_args()
    env = dict(os.environ)
    scratch = None
    if args.results_dir:
        env["CREDPROC_BENCH_RESULTS"] = os.environ["CREDPROC_BENCH_RESULTS"] = str(Path(args.results_dir).resolve())
    elif args.quick:
        scratch = tempfile.TemporaryDirectory()
        env["CREDPROC_BENCH_RESULTS"] = os.environ["CREDPROC_BENCH_RESULTS"] = scratch.name
    started = time.perf_counter()
    failed, skipped = [], []
    for name, (full, quick) in BENCHMARKS.items():
        if args.only and name not in args.only:
            continue
        extra: list[str] = []
        if name in NEEDS_OLD:
            if not args.old:
                print(f"\n=== {name}: skipped, no previous build to run it against (--old or ${OLD_VARIABLE}; "
                      "benchmarks/previous_build.py makes one)", flush=True)
                skipped.append(name)
                continue
            extra = ["--old", args.old]
        elif name == "cache_hit" and args.old:
            extra = ["--compare", args.old, "--compare", str(CREDPROC)]
        print(f"\n=== {name}", flush=True)
        t0 = time.perf_counter()
        code = subprocess.call([sys.executable, str(HERE / f"{name}.py"), *(quick if args.quick else full), *extra],
                               env=env)
        print(f"=== {name}: {time.perf_counter() - t0:.0f} s{'' if code == 0 else f', FAILED (exit {code})'}", flush=True)
        if code != 0:
            failed.append(name)
    print(f"\nall done in {time.perf_counter() - started:.0f} s; results in {results_dir()}")
    print(f"\nFor the README ({machine()}; `{python_label()} benchmarks/run_all.py`):\n")
    print(table())
    print(f"\nThe launcher, a hit by install (`{python_label()} benchmarks/launcher.py --rounds 30`):\n")
    print(launcher_table())
    if skipped:
        print(f"\nskipped (no previous build): {', '.join(skipped)}")
    if scratch:
        scratch.cleanup()
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
