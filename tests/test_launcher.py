"""credproc's launcher line, as ``credproc configure`` writes it, for each way of installing credproc.

``credproc configure`` writes ``/venv/bin/python -I -S .../credproc/_launch.py --conn ID``
whichever installer made the venv; these tests install credproc each way, from this source
tree (one wheel built from a copy of it; the package registries are the only network), run
that installed credproc's ``configure``, and then run the line it wrote:

  pip23      ``python -m venv`` as Debian and Ubuntu make it (ensurepip's pip 23, whose console
             script imports ``re``), then ``pip install``
  pip26      the venv the tests run in (``make install``: a current pip)
  pipx       ``pipx install`` (its own venv under PIPX_HOME, the command linked into PIPX_BIN_DIR)
  uv-tool    ``uv tool install`` (its own venv under UV_TOOL_DIR)
  uv-pip     ``uv venv`` then ``uv pip install``
  editable   ``pip install -e`` of a copy of the source tree (setuptools' import hook)

Each install is built once per session, on first use, in a temporary directory. For each:
the AWS CLI gets credentials through the line; a hit imports nothing but the interpreter's
own start-up, ``os`` and the modules test_import_graph allows (no ``site``); a miss loads
boto3 from the install's own venv; and nothing is imported from the current directory,
``PYTHONPATH`` or the user site, on a hit or a miss.
"""

from __future__ import annotations

import configparser
import os
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import ACCOUNT, BIN, ROLE_ARN, ROLE_NAME, conn_uri, faketime_path, ok
from test_import_graph import HIT_ALLOWED

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent
INSTALLERS = ("pip23", "pip26", "pipx", "uv-tool", "uv-pip", "editable")
BASE_PYTHON = getattr(sys, "_base_executable", sys.executable)  # the Python the test venv was made from
INSTALL_TIMEOUT = 600


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
            _sh([BIN / "python", "-m", "pip", "wheel", "-q", "--no-deps", "-w", out, self.source()], self.env)
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
        if not _sh([pip, "--version"], self.env).startswith("pip 23."):  # another Python's ensurepip
            _sh([pip, "install", "-q", "pip>=23,<24"], self.env)
        _sh([pip, "install", "-q", self.wheel()], self.env)
        return self._venv_install("pip23", venv)

    def _pip26(self) -> Install:
        return self._venv_install("pip26", BIN.parent)

    def _pipx(self) -> Install:
        _sh([BIN / "pipx", "install", "--python", BASE_PYTHON, self.wheel()], self.env)
        return self._venv_install("pipx", self.tmp / "pipx" / "venvs" / "credproc", self.tmp / "pipx-bin")

    def _uv_tool(self) -> Install:
        _sh([BIN / "uv", "tool", "install", "-q", "--python", BASE_PYTHON, self.wheel()], self.env)
        return self._venv_install("uv-tool", self.tmp / "uv-tools" / "credproc", self.tmp / "uv-bin")

    def _uv_pip(self) -> Install:
        venv = self.tmp / "uv-pip"
        _sh([BIN / "uv", "venv", "-q", "--python", BASE_PYTHON, venv], self.env)
        _sh([BIN / "uv", "pip", "install", "-q", "--python", venv / "bin" / "python", self.wheel()], self.env)
        return self._venv_install("uv-pip", venv)

    def _editable(self) -> Install:
        venv = self.tmp / "editable"
        _sh([BASE_PYTHON, "-m", "venv", venv], self.env)
        _sh([venv / "bin" / "pip", "install", "-q", "-e", self.source()], self.env)
        found = self._venv_install("editable", venv)
        assert found.package == self.source() / "credproc", "not an editable install"
        return found


@pytest.fixture(scope="session")
def installs(tmp_path_factory) -> Installs:
    return Installs(tmp_path_factory.mktemp("installs"))


@pytest.fixture(params=INSTALLERS)
def install(request, installs) -> Install:
    return installs.get(request.param)


@pytest.fixture
def prod(env, sts):
    env["CREDPROC_CONN_PROD"] = conn_uri(sts.url, role_arn=ROLE_ARN)
    return env


def configured_line(install: Install, env: dict, profile: str = "p") -> list[str]:
    """Run the install's ``credproc configure prod --profile P``; the credential_process it wrote, split."""
    result = subprocess.run([str(install.credproc), "configure", "prod", "--profile", profile], env=env,
                            capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    ok(result, text=True)
    config = configparser.ConfigParser(interpolation=None)
    config.read(env["AWS_CONFIG_FILE"])
    return shlex.split(config[f"profile {profile}"]["credential_process"])


def run_line(argv: list[str], env: dict, *, cwd: Path | None = None, importtime: bool = False,
             prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """Run a configured line as an SDK does; ``importtime``: with ``-X importtime`` after the interpreter."""
    if importtime:
        argv = [argv[0], "-X", "importtime", *argv[1:]]
    return subprocess.run([*prefix, *argv], env=env, cwd=cwd or env["HOME"], capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)


def imported(stderr: str) -> set[str]:
    """The modules a ``-X importtime`` run imported."""
    names = set()
    for line in stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name and name != "imported package":
                names.add(name)
    return names


def loaded_from(verbose_stderr: str) -> list[Path]:
    """The files a ``python -v`` run loaded code from (its "# code object from '...'" lines)."""
    found = []
    for line in verbose_stderr.splitlines():
        if line.startswith("# code object from "):
            found.append(Path(line.split("from ", 1)[1].strip().strip("'")))
    return found


def empty_cache(env: dict) -> None:
    shutil.rmtree(env["CREDPROC_CACHE_DIR"], ignore_errors=True)


# -- the line configure writes, through the AWS CLI -----------------------------------------------


def test_configure_writes_the_launcher_line_and_the_aws_cli_runs_it(install, prod, sts):
    env = prod
    argv = configured_line(install, env)
    assert argv == [str(install.python), "-I", "-S", str(install.package / "_launch.py"), "--conn", "prod",
                    "--profile", "p"]
    # The venv's own python, by the path that keeps the venv (not the base Python it links to).
    assert install.python.is_symlink() and os.path.realpath(install.python) != str(install.python)
    aws = [str(BIN / "aws"), "sts", "get-caller-identity", "--profile", "p", "--endpoint-url", sts.url,
           "--region", "us-east-1", "--output", "json"]
    for calls in (1, 1):  # a miss, then a hit
        cli = subprocess.run(aws, env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        assert cli.returncode == 0, cli.stderr
        assert f'"arn:aws:sts::{ACCOUNT}:assumed-role/{ROLE_NAME}/credproc-prod"' in cli.stdout
        assert sts.count("AssumeRole") == calls


# -- what a hit and a miss import ------------------------------------------------------------------


def test_a_hit_imports_only_the_allowed_modules_and_a_miss_loads_boto3_from_the_venv(install, prod, sts):
    env = prod
    argv = configured_line(install, env)
    ok(run_line(argv, env), temporary=True)  # fills the cache
    floor = imported(run_line([str(install.python), "-I", "-S", "-c", "import os"], env, importtime=True).stderr)
    assert "os" in floor, "could not read -X importtime's output"

    hit = run_line(argv, env, importtime=True)
    ok(hit, temporary=True)
    modules = imported(hit.stderr)
    assert "credproc.cli" in modules, "could not read -X importtime's output"
    beyond = sorted(modules - floor - HIT_ALLOWED)
    assert beyond == [], f"a hit through the launcher imported {beyond}"
    assert sts.count("AssumeRole") == 1

    # Every module a hit loads comes from the standard library or from the installed package.
    hit = run_line([argv[0], "-v", *argv[1:]], env)
    ok(hit, temporary=True)
    stdlib = Path(os.__file__).parent
    foreign = [path for path in loaded_from(hit.stderr)
               if not (path.is_relative_to(stdlib) or path.is_relative_to(install.package))]
    assert loaded_from(hit.stderr) and foreign == [], f"a hit loaded {foreign}"

    empty_cache(env)
    miss = run_line([argv[0], "-v", *argv[1:]], env)
    ok(miss, temporary=True)
    assert sts.count("AssumeRole") == 2
    boto3 = [path for path in loaded_from(miss.stderr) if "boto3" in path.parts]
    venv = install.python.parent.parent
    assert boto3 and all(path.is_relative_to(venv) for path in boto3), boto3


def test_a_due_hit_prints_at_once_and_its_refresher_finds_boto3(install, prod, sts, refreshers):
    """In the due window the printing run leaves the refresh to a detached child: that child
    leaves the fast path, so it loads site before boto3."""
    env = prod
    argv = configured_line(install, env)
    first = ok(run_line(argv, env), temporary=True)
    due = run_line(argv, env, importtime=True, prefix=(faketime_path(), "-f", "+40m"))
    assert ok(due, temporary=True) == first, "a due entry is printed as it is"
    modules = imported(due.stderr)
    assert "credproc.background" in modules, "the run did not take the due path (the test proves nothing)"
    assert "site" not in modules and "botocore" not in modules
    refreshers.wait()
    deadline = time.monotonic() + 30
    while sts.count("AssumeRole") < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert sts.count("AssumeRole") == 2, "the detached refresher did not refresh the entry"


def test_commands_and_flags_for_argparse_go_through_the_launcher_too(install, prod, sts):
    env = prod
    argv = configured_line(install, env)
    ok(run_line([*argv, "--refresh"], env), temporary=True)  # argparse's path
    assert sts.count("AssumeRole") == 1
    listed = run_line([*argv[:4], "list"], env)
    assert "prod" in ok(listed, text=True)
    ok(run_line([*argv[:4], "check", "prod"], env), text=True)


# -- nothing from the current directory, PYTHONPATH or the user site ---------------------------------

# Modules a hit or a miss imports (or that Python's start-up looks for), planted where an
# attacker who can write the current directory, PYTHONPATH or the user site would put them.
PLANTED = ("re", "json", "credproc", "boto3", "botocore", "site", "sitecustomize", "usercustomize", "_sha256",
           "__future__", "os")


def plant(directory: Path, mark: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name in PLANTED:
        code = f"open({str(mark)!r}, 'a').write({str(directory)!r} + ' {name}\\n')\n"
        if name in ("credproc", "boto3", "botocore"):
            (directory / name).mkdir(exist_ok=True)
            (directory / name / "__init__.py").write_text(code)
        else:
            (directory / f"{name}.py").write_text(code)


def test_nothing_is_imported_from_the_cwd_pythonpath_or_the_user_site(install, prod, sts, tmp_path):
    env = prod
    argv = configured_line(install, env)
    mark = tmp_path / "imported-planted-modules"
    cwd, path_dir = tmp_path / "cwd", tmp_path / "pythonpath"
    user_base = Path(env["HOME"]) / ".local"
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for directory in (cwd, path_dir, user_base / "lib" / version / "site-packages"):
        plant(directory, mark)
    env.update(PYTHONPATH=str(path_dir), PYTHONUSERBASE=str(user_base))
    # The plants work: the same interpreter without the launcher's flags imports them.
    subprocess.run([str(install.python), "-c", "import json"], env=env, cwd=cwd, capture_output=True, timeout=60)
    assert mark.exists() and str(path_dir) in mark.read_text()
    mark.unlink()

    ok(run_line(argv, env, cwd=cwd), temporary=True)  # a miss
    assert sts.count("AssumeRole") == 1
    ok(run_line(argv, env, cwd=cwd), temporary=True)  # a hit
    ok(run_line([*argv, "--refresh"], env, cwd=cwd), temporary=True)  # argparse, then a fetch
    assert sts.count("AssumeRole") == 2
    assert not mark.exists(), f"the launcher imported planted modules:\n{mark.read_text()}"
