"""How credproc is launched, and what is left of a cache hit above the floor.

SDKs start ``credential_process`` on every process start, so the launcher is paid on every
cache hit. Side by side, interleaved, in one run (all on a warm cache entry):

  floor             python -c pass (the interpreter credproc runs on)
  floor -S / -I     the same without the site module / in isolated mode: what the floor is made of
  direct            python -c "from credproc.cli import main; main([...])": no launcher at all
  console-script    the venv's bin/credproc as pip wrote it (pip >= 26: imports only sys)
  old-pip-script    the launcher older pips wrote (it imports re for a regex on argv[0]),
                    written to a temporary file: what users of an old pip get
  python -m         python -m credproc (runpy, and credproc/__main__.py)
  sh-wrapper        a /bin/sh script that execs the console script (as wrapper scripts do)
  pyenv-shim        the console script run by pyenv's python3 shim, when pyenv is installed
                    and its python3 is the venv's version (otherwise left out, and said so)

Then, for the console script: ``python -X importtime`` of a hit (the modules it imports
beyond the floor's, and their cost), and an in-process split of a hit into importing
credproc and answering.

usage: .venv/bin/python benchmarks/launcher.py [--rounds N]
Writes benchmarks/results/launcher.json.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import (BIN, CREDPROC, counting_sts, interleaved, isolated_env, machine, medians,  # noqa: E402
                     reproduce, run_measured, write_results)

# The launcher template of pip < 26 (distlib's), for the same entry point.
OLD_PIP_LAUNCHER = """\
#!{python}
# -*- coding: utf-8 -*-
import re
import sys
from credproc.cli import main
if __name__ == '__main__':
    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])
    sys.exit(main())
"""

IN_PROCESS = """\
import sys, time
t0 = time.perf_counter()
from credproc.cli import main
t1 = time.perf_counter()
code = main(["--conn", "bench"])
t2 = time.perf_counter()
sys.stderr.write(f"{(t1 - t0) * 1000:.3f} {(t2 - t1) * 1000:.3f}\\n")
sys.exit(code)
"""


def pyenv_shim(python: str) -> str | None:
    """pyenv's python3 shim, if pyenv is installed and that python3 is this version."""
    root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    shim = root / "shims" / "python3"
    if not shim.exists():
        return None
    probe = subprocess.run([str(shim), "-c", "import sys; print(sys.version)"], capture_output=True, text=True)
    return str(shim) if probe.returncode == 0 and probe.stdout.strip() == sys.version else None


def importtime(cmd: list[str], env: dict[str, str]) -> dict[str, int]:
    """Module -> self time in microseconds, from ``python -X importtime``."""
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


def imports_beyond_floor(python: str, env: dict[str, str], runs: int = 9) -> dict[str, float]:
    """Self time (µs, best of ``runs``) of each module a hit imports that ``python -c pass``
    does not. The best, not the median: the work is the same each time, and a shared
    machine's load can only add to it."""
    floor = set()
    for _ in range(3):
        floor |= set(importtime([python, "-X", "importtime", "-c", "pass"], env))
    samples: dict[str, list[int]] = {}
    for _ in range(runs):
        for name, us in importtime([python, "-X", "importtime", str(CREDPROC), "--conn", "bench"], env).items():
            if name.strip() not in floor:
                samples.setdefault(name, []).append(us)
    return {name: min(us) for name, us in sorted(samples.items(), key=lambda kv: -min(kv[1]))}


def in_process_split(python: str, env: dict[str, str], runs: int = 15) -> dict[str, float]:
    """A hit timed from inside: importing credproc.cli, then main() answering (best of ``runs``)."""
    imports, answer = [], []
    for _ in range(runs):
        result = subprocess.run([python, "-c", IN_PROCESS], env=env, cwd=env["HOME"], capture_output=True,
                                text=True, stdin=subprocess.DEVNULL)
        a, b = result.stderr.split()[-2:]
        imports.append(float(a))
        answer.append(float(b))
    return {"import_credproc_ms": round(min(imports), 2), "answer_ms": round(min(answer), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args()
    python = str(BIN / "python")
    console_script = CREDPROC.read_text()
    with counting_sts() as proxy, tempfile.TemporaryDirectory() as tmp:
        env = isolated_env(Path(tmp), proxy.url)
        old = Path(tmp) / "credproc-old-pip"
        old.write_text(OLD_PIP_LAUNCHER.format(python=console_script.splitlines()[0][2:]))
        old.chmod(0o755)
        wrapper = Path(tmp) / "credproc-sh"
        wrapper.write_text(f'#!/bin/sh\nexec "{CREDPROC}" "$@"\n')
        wrapper.chmod(0o755)
        hit = ["--conn", "bench"]
        commands = {
            "floor": [python, "-c", "pass"],
            "floor -S": [python, "-S", "-c", "pass"],
            "floor -I": [python, "-I", "-c", "pass"],
            "direct": [python, "-c", "import sys; from credproc.cli import main; sys.exit(main(['--conn', 'bench']))"],
            "console-script": [str(CREDPROC), *hit],
            "old-pip-script": [str(old), *hit],
            "python -m": [python, "-m", "credproc", *hit],
            "sh-wrapper": [str(wrapper), *hit],
        }
        shim = pyenv_shim(python)
        if shim:  # pyenv's interpreter, with the venv's credproc on its path; env(1) execs it
            import credproc

            where = Path(credproc.__file__).parent.parent
            commands["pyenv-shim"] = ["/usr/bin/env", f"PYTHONPATH={where}", shim, str(CREDPROC), *hit]
        samples = interleaved(commands, env, args.rounds, runner=run_measured)
        if proxy.count("AssumeRole") != 1:
            raise SystemExit(f"expected 1 AssumeRole (the first run), STS saw {proxy.count('AssumeRole')}")
        beyond = imports_beyond_floor(python, env)
        split = in_process_split(python, env)

    results = {name: medians(s) for name, s in samples.items()}
    for r in results.values():
        r["ratio_to_floor"] = round(r["median_ms"] / results["floor"]["median_ms"], 2)
        r["cpu_ratio_to_floor"] = round(r["cpu_ms"] / results["floor"]["cpu_ms"], 2)
    own = {m: us for m, us in beyond.items() if m.startswith("credproc")}
    print(f"launchers on a cache hit, {args.rounds} interleaved rounds; {machine()}")
    print(f"command: {reproduce('launcher.py', f'--rounds {args.rounds}')}")
    print(f"  console script: {CREDPROC} ({'imports re' if 'import re' in console_script else 'does not import re'})")
    print(f"  {'':16} {'wall':>8}   {'vs floor':>8}   {'CPU':>8}   {'vs floor':>8}")
    for name, r in results.items():
        print(f"  {name:16} {r['median_ms']:6.1f} ms   {r['ratio_to_floor']:7.2f}x   {r['cpu_ms']:6.1f} ms   "
              f"{r['cpu_ratio_to_floor']:7.2f}x")
    if not shim:
        print("  pyenv-shim: not measured (no pyenv python3 shim of this Python version here)")
    print(f"  a hit imports beyond the floor: {len(beyond)} modules, {sum(beyond.values()) / 1000:.1f} ms "
          f"by -X importtime, best of 9 (credproc's own: {sum(own.values()) / 1000:.1f} ms):")
    for name, us in list(beyond.items())[:12]:
        print(f"    {us / 1000:6.2f} ms  {name}")
    print(f"  in process, best of 15: importing credproc.cli {split['import_credproc_ms']} ms, "
          f"answering from the cache {split['answer_ms']} ms")
    write_results("launcher", {
        "rounds": args.rounds,
        "console_script_imports_re": "import re" in console_script,
        "pyenv_shim": shim,
        "results": results,
        "imports_beyond_floor_us": beyond,
        "in_process": split,
    }, {
        **{f"{name.replace(' ', '_').replace('-', '_')}_ratio_to_floor": r["ratio_to_floor"]
           for name, r in results.items() if name != "floor"},
        "imports_beyond_floor_ms": round(sum(beyond.values()) / 1000, 2),
        **split,
    })


if __name__ == "__main__":
    main()
