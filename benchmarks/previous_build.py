"""Build another commit of credproc into a venv of its own with the very package versions of
this venv, so that a benchmark run side by side (``--old``, ``--compare``) differs in
credproc only.

usage: .venv/bin/python benchmarks/previous_build.py [REV] [DIR]
       (defaults: REV = the parent of the last commit that changed credproc/, DIR = ../wt-old)

It adds a detached git worktree of REV at DIR (or uses the one there, checked out at REV),
makes DIR/.venv with the same pip, installs this venv's ``pip freeze`` (credproc left out)
and then DIR itself with ``--no-deps --force-reinstall``, as ``make install`` installs a
checkout. It prints the executable to pass as ``--old`` (or ``$CREDPROC_BENCH_OLD``).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
CHECKOUT = HERE.parent


def git(*args: str, cwd: Path = CHECKOUT) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("rev", nargs="?", help="the commit to build (default: before the last change to credproc/)")
    parser.add_argument("dir", nargs="?", help="where its worktree goes (default: ../wt-old)")
    args = parser.parse_args()
    rev = args.rev or git("log", "-1", "--format=%H", "--", "credproc") + "^"
    commit = git("rev-parse", "--verify", f"{rev}^{{commit}}")
    target = Path(args.dir or CHECKOUT.parent / "wt-old").resolve()
    if target.exists():
        if git("rev-parse", "HEAD", cwd=target) != commit:
            raise SystemExit(f"{target} exists and is not at {commit[:7]}")
    else:
        git("worktree", "add", "--detach", str(target), commit)
    python = target / ".venv" / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(target / ".venv")], check=True)
    pip_version = subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True, text=True,
                                 check=True).stdout.split()[1]
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", f"pip=={pip_version}"], check=True)
    frozen = subprocess.run([sys.executable, "-m", "pip", "freeze", "--exclude-editable"], capture_output=True,
                            text=True, check=True).stdout
    wanted = "".join(line + "\n" for line in frozen.splitlines()
                     if line.strip() and not line.lower().startswith("credproc"))
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as requirements:
        requirements.write(wanted)
        requirements.flush()
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "-r", requirements.name], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--force-reinstall", str(target)],
                   check=True)
    theirs = subprocess.run([str(python), "-m", "pip", "freeze", "--exclude-editable"], capture_output=True,
                            text=True, check=True).stdout
    differ = sorted(set(wanted.splitlines()) ^ {line for line in theirs.splitlines()
                                                 if not line.lower().startswith("credproc")})
    if differ:
        raise SystemExit(f"the two venvs differ beyond credproc: {differ}")
    print(f"{commit[:7]} built; its executable: {target / '.venv' / 'bin' / 'credproc'}")


if __name__ == "__main__":
    main()
