"""credproc installed each way people install it, from this source tree: for
tests/test_launcher.py and benchmarks/launcher.py.

One wheel is built from a copy of the source tree (builds write into the copy, not into the
checkout); each installer then installs it (or, for the editable install, the copy itself)
into its own venv under a directory of the caller's, fetching the dependencies from the
package registries:

  pip23      ``python -m venv`` as Debian and Ubuntu make it (ensurepip's pip 23, whose console
             script imports ``re``), then ``pip install``
  pip26      the venv the tests run in (``make install``: a current pip)
  pipx       ``pipx install`` (its own venv under PIPX_HOME, the command linked into PIPX_BIN_DIR)
  uv-tool    ``uv tool install`` (its own venv under UV_TOOL_DIR)
  uv-pip     ``uv venv`` then ``uv pip install``
  editable   ``pip install -e`` of the copy (setuptools' import hook; the package stays in the tree)

Each is installed on first use (``Installs.get``) and kept: installs are slow, so a test
session or a benchmark run makes each once.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INSTALLERS = ("pip23", "pip26", "pipx", "uv-tool", "uv-pip", "editable")
BASE_PYTHON = getattr(sys, "_base_executable", sys.executable)  # the Python the test venv was made from
INSTALL_TIMEOUT = 600
VENV_BIN = Path(sys.executable).parent  # the venv running this, with pipx, uv and credproc in it


@dataclass
class Install:
    name: str
    credproc: Path  # the console script, as the installer put it on PATH
    python: Path    # the venv's python, as the console script names it
    package: Path   # the installed credproc package (the source tree's, for an editable install)


def _sh(cmd: list, env: dict | None = None, cwd: Path | None = None) -> str:
    result = subprocess.run([str(c) for c in cmd], env=env, cwd=cwd, capture_output=True, text=True,
                            timeout=INSTALL_TIMEOUT, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _install_env(tmp: Path) -> dict:
    """The developer's environment (its pip and uv caches and settings) with the installers'
    homes in ``tmp``, and no downloaded Pythons: uv uses the one it is given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PIP_REQUIRE", "VIRTUAL_ENV"))}
    env.update(PIPX_HOME=str(tmp / "pipx"), PIPX_BIN_DIR=str(tmp / "pipx-bin"), PIPX_MAN_DIR=str(tmp / "pipx-man"),
               UV_TOOL_DIR=str(tmp / "uv-tools"), UV_TOOL_BIN_DIR=str(tmp / "uv-bin"),
               UV_PYTHON_DOWNLOADS="never", UV_NO_CONFIG="1")
    return env


class Installs:
    """Each installer's credproc, installed on first use and kept for the session."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        tmp.mkdir(parents=True, exist_ok=True)
        self.env = _install_env(tmp)
        self._done: dict[str, Install] = {}
        self._source: Path | None = None
        self._wheel: Path | None = None

    def source(self) -> Path:
        """A copy of the source tree (what a checkout has; builds write into it, not into ours)."""
        if self._source is None:
            self._source = self.tmp / "source"
            ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
            shutil.copytree(ROOT / "credproc", self._source / "credproc", ignore=ignore)
            shutil.copytree(ROOT / "tests", self._source / "tests", ignore=ignore)  # as in a checkout
            for name in ("pyproject.toml", "README.md", "LICENSE"):
                shutil.copy(ROOT / name, self._source / name)
        return self._source

    def wheel(self) -> Path:
        if self._wheel is None:
            out = self.tmp / "wheel"
            _sh([VENV_BIN / "python", "-m", "pip", "wheel", "-q", "--no-deps", "-w", out, self.source()], self.env)
            (self._wheel,) = out.glob("credproc-*.whl")
        return self._wheel

    def get(self, name: str) -> Install:
        if name not in self._done:
            self._done[name] = getattr(self, "_" + name.replace("-", "_"))()
        return self._done[name]

    def _venv_install(self, name: str, venv: Path, bin_dir: Path | None = None) -> Install:
        bin_dir = bin_dir or venv / "bin"
        probe = "import credproc, os; print(os.path.dirname(credproc.__file__))"
        package = Path(_sh([venv / "bin" / "python", "-c", probe], self.env, cwd=self.tmp).strip())
        credproc = bin_dir / "credproc"
        shebang = Path(os.path.realpath(credproc)).read_text().split("\n", 1)[0]
        python = Path(shebang[2:].split()[0])  # the venv's python as the console script runs it (pipx adds -E)
        assert python.parent == venv / "bin", shebang
        return Install(name, credproc, python, package)

    def _pip23(self) -> Install:
        venv = self.tmp / "pip23"
        _sh([BASE_PYTHON, "-m", "venv", venv], self.env)
        pip = venv / "bin" / "pip"
        # pip 23 has published advisories: it installs only this wheel and its dependencies, here.
        if not _sh([pip, "--version"], self.env).startswith("pip 23."):  # another Python's ensurepip
            _sh([pip, "install", "-q", "pip>=23,<24"], self.env)
        _sh([pip, "install", "-q", self.wheel()], self.env)
        return self._venv_install("pip23", venv)

    def _pip26(self) -> Install:
        return self._venv_install("pip26", VENV_BIN.parent)

    def _pipx(self) -> Install:
        _sh([VENV_BIN / "pipx", "install", "--python", BASE_PYTHON, self.wheel()], self.env)
        return self._venv_install("pipx", self.tmp / "pipx" / "venvs" / "credproc", self.tmp / "pipx-bin")

    def _uv_tool(self) -> Install:
        _sh([VENV_BIN / "uv", "tool", "install", "-q", "--python", BASE_PYTHON, self.wheel()], self.env)
        return self._venv_install("uv-tool", self.tmp / "uv-tools" / "credproc", self.tmp / "uv-bin")

    def _uv_pip(self) -> Install:
        venv = self.tmp / "uv-pip"
        _sh([VENV_BIN / "uv", "venv", "-q", "--python", BASE_PYTHON, venv], self.env)
        _sh([VENV_BIN / "uv", "pip", "install", "-q", "--python", venv / "bin" / "python", self.wheel()], self.env)
        return self._venv_install("uv-pip", venv)

    def target(self) -> Path:
        """``pip install --target``: credproc and its dependencies in a plain directory, where
        no site looks (as for a ``pip install --user`` whose user site isolated Python skips)."""
        directory = self.tmp / "target"
        if not directory.exists():
            _sh([VENV_BIN / "python", "-m", "pip", "install", "-q", "--target", directory, self.wheel()], self.env)
        return directory

    def _editable(self) -> Install:
        venv = self.tmp / "editable"
        _sh([BASE_PYTHON, "-m", "venv", venv], self.env)
        _sh([venv / "bin" / "pip", "install", "-q", "-e", self.source()], self.env)
        found = self._venv_install("editable", venv)
        assert found.package == self.source() / "credproc", "not an editable install"
        return found
