"""How credproc is launched, for each way of installing it: a cache hit against the interpreter's own start-up.

SDKs start ``credential_process`` on every process start, so the launcher is paid on every
cache hit. credproc is installed each way people install it (tests/installs.py: pip 23's
venv as Debian and Ubuntu make it, pip 26's, pipx, uv tool, uv pip, editable), all from this
source tree, and for each install, side by side, interleaved, in one run, on one warm
cache entry:

  floor           python -c pass, with that install's python (the venv's, with its site)
  floor -I -S     the same isolated and without site: what credproc's launcher starts from
                  (and, for one install, ``-I -S -c "import os"``: what site costs beyond it)
  console-script  the bin/credproc that installer wrote (``credproc --conn bench``)
  launcher        the line that install's ``credproc configure`` writes:
                  python -I -S .../credproc/_launch.py --conn bench

Each is reported as a ratio to the same install's floor (wall and CPU time), and to its
``-I -S`` floor. Then, for the pip 26 install's launcher line: the modules a hit imports
beyond ``python -I -S -c pass`` (``python -X importtime``, best of 9).

The installs take about a minute (the package registries' caches make later runs quicker).

usage: .venv/bin/python benchmarks/launcher.py [--rounds N] [--only NAME ...]
Writes benchmarks/results/launcher.json.
"""

from __future__ import annotations

import argparse
import configparser
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import (HERE, counting_sts, interleaved, isolated_env, machine, medians, reproduce,  # noqa: E402
                     run_measured, write_results)

sys.path.insert(0, str(HERE.parent / "tests"))
from installs import INSTALLERS, Install, Installs  # noqa: E402


def configured_line(install: Install, env: dict[str, str]) -> list[str]:
    """The credential_process that the install's own ``credproc configure`` writes, split."""
    subprocess.run([str(install.credproc), "configure", "bench", "--profile", install.name], env=env, check=True,
                   capture_output=True, stdin=subprocess.DEVNULL, cwd=env["HOME"])
    config = configparser.ConfigParser(interpolation=None)
    config.read(env["AWS_CONFIG_FILE"])
    return shlex.split(config[f"profile {install.name}"]["credential_process"])


def importtime(cmd: list[str], env: dict[str, str]) -> dict[str, int]:
    """Module -> self time in microseconds, from ``python -X importtime``."""
    cmd = [cmd[0], "-X", "importtime", *cmd[1:]]
    result = subprocess.run(cmd, env=env, cwd=env["HOME"], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{result.stderr}")
    modules = {}
    for line in result.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            self_us, _, name = line[len("import time:"):].split("|")
            if self_us.strip().isdigit():
                modules[name.strip()] = int(self_us)
    return modules


def imports_beyond_floor(python: str, line: list[str], env: dict[str, str], runs: int = 9) -> dict[str, int]:
    """Self time (µs, best of ``runs``) of each module a hit through ``line`` imports that
    ``python -I -S -c pass`` does not. The best, not the median: the work is the same each
    time, and a shared machine's load can only add to it."""
    floor: set[str] = set()
    for _ in range(3):
        floor |= set(importtime([python, "-I", "-S", "-c", "pass"], env))
    samples: dict[str, list[int]] = {}
    for _ in range(runs):
        for name, us in importtime(line, env).items():
            if name not in floor:
                samples.setdefault(name, []).append(us)
    return {name: min(us) for name, us in sorted(samples.items(), key=lambda kv: -min(kv[1]))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--only", nargs="+", choices=INSTALLERS, default=list(INSTALLERS),
                        help="the installs to measure (all by default)")
    args = parser.parse_args()
    with counting_sts() as proxy, tempfile.TemporaryDirectory() as tmp:
        installs = Installs(Path(tmp) / "installs")
        home = Path(tmp) / "home"
        home.mkdir()
        env = isolated_env(home, proxy.url)
        commands: dict[str, list[str]] = {}
        found: dict[str, dict] = {}
        for name in args.only:
            install = installs.get(name)
            line = configured_line(install, env)
            python = str(install.python)
            commands.update({
                f"{name} floor": [python, "-c", "pass"],
                f"{name} floor -I -S": [python, "-I", "-S", "-c", "pass"],
                f"{name} console-script": [str(install.credproc), "--conn", "bench"],
                f"{name} launcher": line,
            })
            if name == (args.only[0] if "pip26" not in args.only else "pip26"):
                # What any hit that imports os starts from (site imports it; -S leaves it out).
                commands[f"{name} floor -I -S +os"] = [python, "-I", "-S", "-c", "import os"]
            found[name] = {"python": python, "console_script": str(install.credproc), "launcher": shlex.join(line),
                           "console_script_imports_re": "import re" in Path(install.credproc).read_text()}
        samples = interleaved(commands, env, args.rounds, runner=run_measured)
        if proxy.count("AssumeRole") != 1:
            raise SystemExit(f"expected 1 AssumeRole (the first run), STS saw {proxy.count('AssumeRole')}")
        reference = "pip26" if "pip26" in found else args.only[0]
        beyond = imports_beyond_floor(found[reference]["python"], commands[f"{reference} launcher"], env)

    results = {name: medians(s) for name, s in samples.items()}
    for name, r in results.items():
        install = name.split()[0]
        floor, isolated = results[f"{install} floor"], results[f"{install} floor -I -S"]
        r["ratio_to_floor"] = round(r["median_ms"] / floor["median_ms"], 2)
        r["cpu_ratio_to_floor"] = round(r["cpu_ms"] / floor["cpu_ms"], 2)
        r["ratio_to_isolated_floor"] = round(r["median_ms"] / isolated["median_ms"], 2)
    print(f"a cache hit by install and launcher, {args.rounds} interleaved rounds; {machine()}")
    print(f"command: {reproduce('launcher.py', f'--rounds {args.rounds}')}")
    print(f"  {'':28} {'wall':>8}   {'vs floor':>8}   {'CPU':>8}   {'vs floor':>8}   {'vs -I -S':>8}")
    for name, r in results.items():
        print(f"  {name:28} {r['median_ms']:6.1f} ms   {r['ratio_to_floor']:7.2f}x   {r['cpu_ms']:6.1f} ms   "
              f"{r['cpu_ratio_to_floor']:7.2f}x   {r['ratio_to_isolated_floor']:7.2f}x")
    own = {m: us for m, us in beyond.items() if m.startswith("credproc")}
    print(f"  {reference}'s launcher line imports beyond python -I -S -c pass: {len(beyond)} modules, "
          f"{sum(beyond.values()) / 1000:.1f} ms by -X importtime, best of 9 (credproc's own: "
          f"{sum(own.values()) / 1000:.1f} ms):")
    for name, us in list(beyond.items())[:14]:
        print(f"    {us / 1000:6.2f} ms  {name}")
    summary: dict[str, float] = {}
    for name in found:
        for kind in ("launcher", "console-script"):
            key = f"{name}_{kind}".replace("-", "_")
            summary[f"{key}_ratio_to_floor"] = results[f"{name} {kind}"]["ratio_to_floor"]
            summary[f"{key}_cpu_ratio_to_floor"] = results[f"{name} {kind}"]["cpu_ratio_to_floor"]
    summary["imports_beyond_isolated_floor_ms"] = round(sum(beyond.values()) / 1000, 2)
    write_results("launcher", {"rounds": args.rounds, "installs": found, "results": results,
                               "imports_beyond_isolated_floor_us": beyond}, summary)


if __name__ == "__main__":
    main()
