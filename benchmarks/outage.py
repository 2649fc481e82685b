"""How long an STS outage each role length survives without an SDK noticing, this build (new)
against the previous one (old), side by side.

For each role length (``--roles``, seconds: moto takes the connection's
``assume_role_kwargs.DurationSeconds``, 900 to 43200) and each build: an entry is fetched in
real time, then the local STS answers every request with 503 ServiceUnavailable. The outage
starts at the moment that build would first refresh the entry (its own rule,
``Entry.fresh_until``: the new build's due point, the old build's refresh point). An outage
of T minutes is survived when a run at its start (+5 s) and a run at its end (-5 s), each
from a copy of the warm cache, exit 0 and print credentials that have not expired at that
(fake) moment; any detached refresher of the first run finishes (its failure recorded in
the entry) before the second starts. The clock is moved with libfaketime; T is bisected
to the minute (``--step``), between 0 and the role's length.

Reported: the longest outage survived (minutes), the refresh point, the credentials left
at the end of that outage, the slowest run during it (an SDK waits for that), and the
warning the last run printed. Nothing is asserted.

usage: .venv/bin/python benchmarks/outage.py --old OTHER_VENV/bin/credproc [--roles 900 3600 43200] [--step 60]
Writes benchmarks/results/outage.json (compared with the previous run's). The old build:
$CREDPROC_BENCH_OLD if --old is not given (benchmarks/previous_build.py makes one).
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import CREDPROC, counting_sts, isolated_env, machine, reproduce, write_results  # noqa: E402
from _timeline import (at, connection, credentials, describe, entry_times, expiration, fresh_until,  # noqa: E402
                       minutes, old_build, run, wait_unlocked)

MARGIN = 5.0  # seconds inside the outage at which its first and last runs happen
OUTAGE = (503, "ServiceUnavailable")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--old", help="the previous build's credproc executable (default: $CREDPROC_BENCH_OLD)")
    parser.add_argument("--roles", type=int, nargs="+", default=[900, 3600, 43200],
                        help="role session lengths in seconds (DurationSeconds, 900..43200)")
    parser.add_argument("--step", type=int, default=60, help="resolution of the bisection, in seconds")
    args = parser.parse_args()
    builds = {"old": old_build(args.old), "new": str(CREDPROC)}
    info = {name: describe(exe) for name, exe in builds.items()}
    rows = []
    with counting_sts() as proxy, tempfile.TemporaryDirectory() as tmp:
        for lifetime in args.roles:
            for name, exe in builds.items():
                rows.append(measure(proxy, Path(tmp) / f"{name}-{lifetime}", name, exe, lifetime, args.step))
                r = rows[-1]
                print(f"  {name} {minutes(lifetime)} role: survives {minutes(r['survived_s'])} "
                      f"({len(r['probes'])} probes)", flush=True)

    print(f"\nSTS outage (503 on every request) from the first refresh point; {machine()}")
    print(f"  old: {info['old'].get('commit', info['old']['exe'])}")
    print(f"  new: {info['new'].get('commit', info['new']['exe'])}")
    roles = " ".join(map(str, args.roles))
    options = f"--old {builds['old']} --roles {roles} --step {args.step}"
    print(f"command: {reproduce('outage.py', options)}")
    print("| role | build | refreshed (outage starts) after | outage survived | left at its end | slowest run in it |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        left = minutes(r["left_at_end_s"]) if r["left_at_end_s"] else "-"
        slowest = "-" if r["slowest_run_s"] is None else f"{r['slowest_run_s']:.2f} s"
        first = r["first_run_after_refresh_point"]
        if not r["survived_s"]:
            slowest = f"the first run: exit {first['exit']} after {first['seconds']:.2f} s"
        print(f"| {minutes(r['lifetime_s'])} | {r['build']} | {minutes(r['refresh_point_s'])} | "
              f"**{minutes(r['survived_s'])}** | {left} | {slowest} |")
    for lifetime in args.roles:
        old, new = (next(r for r in rows if r["lifetime_s"] == lifetime and r["build"] == b) for b in ("old", "new"))
        print(f"  {minutes(lifetime)} role: new survives {minutes(new['survived_s'])}, "
              f"old {minutes(old['survived_s'])}")
    summary: dict[str, float] = {}
    for r in rows:
        summary[f"{r['build']}_{r['lifetime_s']}s_survived_min"] = round(r["survived_s"] / 60, 2)
    write_results("outage", {"fault": f"{OUTAGE[0]} {OUTAGE[1]}", "margin_s": MARGIN, "step_s": args.step,
                             "builds": info, "results": rows}, summary)


def measure(proxy, tmp: Path, name: str, exe: str, lifetime: int, step: int) -> dict:
    """Warm an entry of a ``lifetime``-second role, then bisect the outage it survives."""
    tmp.mkdir(parents=True)
    env = isolated_env(tmp, proxy.url)
    env["CREDPROC_CONN_BENCH"] = connection(proxy.url, assume_role_kwargs={"DurationSeconds": lifetime})
    snapshot = tmp / "cache"
    proxy.reset()
    warm, _ = run(exe, env)
    cached = credentials(warm)
    if cached is None or proxy.count("AssumeRole") != 1:
        raise SystemExit(f"{name}: warming the entry failed: {warm.stderr}")
    asked = [r["params"].get("DurationSeconds") for r in proxy.requests if r["action"] == "AssumeRole"]
    if asked != [str(lifetime)]:
        raise SystemExit(f"{name}: the AssumeRole asked for DurationSeconds {asked}, not {lifetime}")
    fetched, expires = entry_times(str(snapshot))
    point = fresh_until(exe, fetched, expires)
    proxy.faults = [OUTAGE] * 1_000_000  # the outage, from now on
    probes: dict[int, dict] = {}

    def one(when: float, cache: Path) -> dict:
        result, seconds = run(exe, at({**env, "CREDPROC_CACHE_DIR": str(cache)}, when))
        creds = credentials(result)
        left = expiration(creds) - when if creds else None
        valid = creds is not None and left is not None and left > 0
        wait_unlocked(str(cache))  # a detached refresher: its failure is in the entry before the next run
        warnings = [line for line in result.stderr.splitlines() if line.startswith("credproc: warning:")]
        errors = [line for line in result.stderr.splitlines() if line.startswith("credproc: error:")]
        return {"at_s": round(when - fetched, 1), "exit": result.returncode, "valid": valid,
                "cached": creds is not None and creds["AccessKeyId"] == cached["AccessKeyId"],
                "left_s": round(left, 1) if left is not None else None, "seconds": round(seconds, 3),
                "warning": warnings[-1] if warnings else "", "error": errors[-1] if errors else ""}

    def survives(t: int) -> bool:
        """Whether an outage of ``t`` steps from the refresh point goes unnoticed."""
        cache = tmp / f"probe-{t}"
        shutil.copytree(snapshot, cache)
        first = one(point + MARGIN, cache)
        last = one(point + step * t - MARGIN, cache) if first["valid"] else None
        ok = first["valid"] and last is not None and last["valid"]
        probes[t] = {"outage_s": step * t, "survived": ok, "first": first, "last": last}
        shutil.rmtree(cache, ignore_errors=True)
        return ok

    lo, hi = 0, math.ceil((expires - point) / step) + 1  # no outage longer than the credentials' life is survived
    if survives(hi):
        raise SystemExit(f"{name}: an outage longer than the credentials' life was survived: {probes[hi]}")
    if survives(1):
        lo = 1
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if survives(mid):
                lo = mid
            else:
                hi = mid
    best = probes.get(lo)
    runs = [p for t, p in probes.items() if t <= lo and p["survived"]] if lo else []
    slowest = max((run["seconds"] for p in runs for run in (p["first"], p["last"])), default=None)
    return {
        "build": name, "lifetime_s": lifetime, "fetched_to_expiry_s": round(expires - fetched, 1),
        "refresh_point_s": round(point - fetched, 1), "survived_s": step * lo,
        "left_at_end_s": best["last"]["left_s"] if best else None,
        "slowest_run_s": slowest,
        "last_warning": best["last"]["warning"] if best else "",
        "first_run_after_refresh_point": probes[1]["first"],
        "probes": [probes[t] for t in sorted(probes)],
    }


if __name__ == "__main__":
    main()
