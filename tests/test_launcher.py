"""credproc's launcher line, as ``credproc configure`` writes it, for each way of installing credproc.

``credproc configure`` writes ``/venv/bin/python -I -S .../credproc/_launch.py --conn ID``
whichever installer made the venv. These tests install credproc each way (``installs.py``:
pip 23, pip 26, pipx, uv tool, uv pip, editable; each once per session), run that installed
credproc's ``configure``, and then run the line it wrote. For each: the AWS CLI gets
credentials through the line; a hit imports nothing but the interpreter's own start-up,
``os`` and the modules test_import_graph allows (no ``site``), all from the standard library
or the installed package; a miss loads boto3 from the install's own venv; a due hit's
detached refresher finds boto3 too; and nothing is imported from the current directory,
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
from pathlib import Path

import pytest
from helpers import ACCOUNT, BIN, ROLE_ARN, ROLE_NAME, conn_uri, faketime_path, ok
from installs import BASE_PYTHON, INSTALLERS, Install, Installs
from test_import_graph import HIT_ALLOWED
from test_interop import CALLS, OTHER_LANGUAGES, Sdk, assert_identity, boto3, node_sdk, ruby_sdk  # noqa: F401

pytestmark = pytest.mark.integration


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


def test_a_warning_on_a_hit_reaches_stderr_before_the_launcher_exits(installs, prod, sts, refreshers):
    """A launched hit ends with os._exit, which flushes nothing itself: the stale entry's
    warning must still be there, once, with the credentials on stdout."""
    env = prod
    argv = configured_line(installs.get("pip26"), env)
    first = ok(run_line(argv, env), temporary=True)
    sts.refuse()
    try:
        due = run_line(argv, env, prefix=(faketime_path(), "-f", "+40m"))  # its refresher fails
        assert ok(due, temporary=True) == first
        refreshers.wait()
        stale = run_line(argv, env, prefix=(faketime_path(), "-f", "+41m"))
    finally:
        sts.accept()
    assert ok(stale, temporary=True) == first
    warnings = [line for line in stale.stderr.splitlines() if "refreshing its credentials failed" in line]
    assert len(warnings) == 1 and "connection 'prod'" in warnings[0], stale.stderr


def test_an_install_no_site_looks_in_is_a_site_of_its_own_on_a_miss(installs, prod, sts):
    """credproc and boto3 in a --target directory, run by the base Python (whose own
    site-packages has another boto3): the hit needs nothing but credproc, and the miss finds
    isolated site without credproc, so it puts credproc's directory first."""
    env = prod
    target = installs.target()
    configure = subprocess.run([BASE_PYTHON, "-m", "credproc", "configure", "prod", "--profile", "p"],
                               env={**env, "PYTHONPATH": str(target)}, capture_output=True, text=True, timeout=120,
                               stdin=subprocess.DEVNULL, cwd=env["HOME"])
    ok(configure, text=True)
    config = configparser.ConfigParser(interpolation=None)
    config.read(env["AWS_CONFIG_FILE"])
    argv = shlex.split(config["profile p"]["credential_process"])
    assert argv[:4] == [BASE_PYTHON, "-I", "-S", str(target / "credproc" / "_launch.py")]
    miss = run_line([argv[0], "-v", *argv[1:]], env)
    ok(miss, temporary=True)
    boto3 = [path for path in loaded_from(miss.stderr) if "boto3" in path.parts]
    assert boto3 and all(path.is_relative_to(target) for path in boto3), boto3
    ok(run_line(argv, env), temporary=True)
    assert sts.count("AssumeRole") == 1


# The SDKs in other languages start credential_process through a shell (JavaScript's exec,
# Ruby's Open3); botocore splits it itself. Go's is left to test_interop (its build is slow).
LINE_SDKS = {"js-fromProcess": OTHER_LANGUAGES["js-fromProcess"], "ruby": OTHER_LANGUAGES["ruby"], "boto3": boto3}


@pytest.fixture(params=list(LINE_SDKS))
def line_sdk(request) -> Sdk:
    return LINE_SDKS[request.param](request)


def test_sdks_run_the_configured_line(line_sdk, installs, env, sts):
    env["CREDPROC_CONN_DEMO"] = conn_uri(sts.url, role_arn=ROLE_ARN)
    configure = subprocess.run([str(installs.get("pip26").credproc), "configure", "demo", "--profile", "demo",
                                "--region", "us-east-1"], env=env, capture_output=True, text=True, timeout=120,
                               stdin=subprocess.DEVNULL)
    assert "_launch.py" in ok(configure, text=True)
    env["AWS_PROFILE"] = "demo"
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    for _ in range(2):  # a miss, then a process served from the cache
        assert_identity(line_sdk.run(env, sts.url), line_sdk, CALLS)
    assert sts.count("AssumeRole") == 1


def test_configure_moves_a_console_script_profile_to_the_launcher(installs, prod):
    """A profile an older credproc wrote (its console script) gets the launcher line, and the
    rest of the file keeps its bytes."""
    env = prod
    install = installs.get("pip26")
    old = f"credential_process = {install.credproc} --conn prod --profile p"
    before = f"# mine\n[profile p]\nregion = eu-west-1\n{old}\nmax_attempts = 5\n\n[profile other]\noutput = json\n"
    Path(env["AWS_CONFIG_FILE"]).write_text(before)
    argv = configured_line(install, env)
    assert argv[:4] == [str(install.python), "-I", "-S", str(install.package / "_launch.py")]
    assert Path(env["AWS_CONFIG_FILE"]).read_text() == before.replace(old, f"credential_process = {shlex.join(argv)}")
    assert Path(env["AWS_CONFIG_FILE"] + ".credproc-backup").read_text() == before
