"""``credproc configure ID --profile NAME``: write ``[profile NAME]`` into the AWS config file
with a ``credential_process`` that runs this credproc for connection ID.

The file is edited as text (``awsconfig``): every other section, key, comment and blank line
keeps its bytes. Running it twice changes nothing the second time; when it does change the
file, the previous one is kept as ``<file>.credproc-backup``. It refuses a profile that holds
static keys or another credential source, in the config or the credentials file, because
SDKs would use those and never run credproc.

The command line runs credproc's own launcher (``credproc/_launch.py``) with the venv's
interpreter, by absolute paths: ``/venv/bin/python -I -S .../credproc/_launch.py --conn ID``.
That costs a cache hit less than ``python -c pass`` whichever installer wrote the venv
(pip's, pipx's and uv's console scripts differ, and pip < 26's imports ``re``), and never
goes through a shim (pyenv and asdf shims cost tens of milliseconds on every run). It holds
no secret: SDKs print the whole command line when it fails.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Mapping, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any

from credproc import forms, sources
from credproc.commands import _common
from credproc.commands._parser import add_command
from credproc.commands.awsconfig import IniText, profile_of_config_section
from credproc.errors import ConfigError
from credproc.log import warn
from credproc.resolution import Resolution

BACKUP_SUFFIX = ".credproc-backup"
RETRY_MODES = ("standard", "adaptive", "legacy")
# Keys of a config-file profile that SDKs use before credential_process.
SHADOWING_CONFIG_KEYS = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token", "role_arn",
                         "credential_source", "web_identity_token_file", "sso_start_url", "sso_session",
                         "sso_account_id")
STATIC_KEYS = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token")

EPILOG = """\
examples:
  credproc configure prod --profile prod
  credproc configure prod --profile prod --region eu-west-1 --retry-mode standard --max-attempts 10
  aws sts get-caller-identity --profile prod

writes, in $AWS_CONFIG_FILE or else ~/.aws/config:
  [profile prod]
  credential_process = /venv/bin/python -I -S /venv/lib/python3.X/site-packages/credproc/_launch.py --conn prod --profile prod
  region = eu-west-1

That line runs credproc's own launcher with the venv's Python, isolated and without site
until a miss needs them (the fastest start, whatever installed credproc; /venv/bin/credproc
--conn prod works too, slower). After moving credproc to another Python (a new venv), run
this again.

Other profiles, keys and comments are kept byte for byte; the previous file is saved as
<file>.credproc-backup. retry_mode and max_attempts govern both the SDK and credproc's own
STS calls. A profile that already has static keys (aws_access_key_id, in the config file or
in ~/.aws/credentials) or another source (role_arn, sso_*, web_identity_token_file) is
refused: SDKs would use those and never run credproc. Remove them, then run this again.
"""  # noqa: E501 - the credential_process line as configure writes it, whole


def add_parser(subparsers: Any, common: Any) -> None:
    parser = add_command(subparsers, common, "configure", help="write an AWS profile that runs credproc",
                         description="Write or update [profile NAME] in the AWS config file so that SDKs "
                                     "get the connection's credentials from credproc.",
                         epilog=EPILOG)
    parser.add_argument("conn_id", metavar="ID", help="the connection id")
    parser.add_argument("--profile", required=True, metavar="NAME", help="the AWS profile to write")
    parser.add_argument("--region", metavar="REGION", help="the profile's region")
    parser.add_argument("--retry-mode", choices=RETRY_MODES, help="the profile's retry_mode")
    parser.add_argument("--max-attempts", type=_positive, metavar="N",
                        help="the profile's max_attempts (all requests, the first included)")
    parser.set_defaults(run=run)


def _positive(text: str) -> int:
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be 1 or more")
    return value


# -- which command -------------------------------------------------------------------------


def launcher_command(python: str | None = None, package: str | None = None) -> list[str]:
    """The program part of ``credential_process``: this interpreter, isolated and without
    ``site``, running credproc's launcher (``credproc/_launch.py``) from this package.

    The interpreter's path is ``sys.executable`` as it is, never resolved: a venv's
    ``bin/python`` is a symlink to the base Python, and through the link's target Python
    would start outside the venv (``site`` finds ``pyvenv.cfg`` beside the path it was
    started by). pipx's and uv's tool venvs are venvs like any other.
    """
    python = sys.executable if python is None else python
    if package is None:
        import credproc

        package = os.path.dirname(os.path.abspath(credproc.__file__))
    launcher = os.path.join(package, "_launch.py")
    if not python or not os.path.isabs(python) or not os.access(python, os.X_OK) or os.path.isdir(python):
        raise ConfigError(f"cannot tell which Python runs credproc (sys.executable is {python!r}) to write into "
                          "credential_process; run the venv's own bin/credproc configure")
    if "shims" in Path(python).parts:
        raise ConfigError(f"{python} is a version manager's shim, which would cost every run tens of milliseconds; "
                          "run the venv's own bin/credproc configure")
    if not os.path.isfile(launcher):
        raise ConfigError(f"credproc's launcher {launcher} is not a file (credproc imported from an archive?); "
                          "install credproc into a venv and run its bin/credproc configure")
    return [python, "-I", "-S", launcher]


def command_line(program: Sequence[str], conn_id: str, profile: str) -> str:
    """The ``credential_process`` value, quoted as SDKs split it (as a POSIX shell would)."""
    return " ".join(shlex.quote(part) for part in (*program, "--conn", conn_id, "--profile", profile))


# -- the edit ------------------------------------------------------------------------------


def config_path(environ: Mapping[str, str]) -> str:
    return os.path.expanduser(environ.get("AWS_CONFIG_FILE") or os.path.join("~", ".aws", "config"))


def credentials_path(environ: Mapping[str, str]) -> str:
    return os.path.expanduser(environ.get("AWS_SHARED_CREDENTIALS_FILE") or os.path.join("~", ".aws", "credentials"))


def _check_profile_name(name: str) -> str:
    bad = not name or name.startswith("-") or any(c.isspace() or c in "[]'\"#;\\" for c in name)
    if bad:
        raise ConfigError(f"--profile {name!r}: a profile name must be non-empty and hold no spaces, quotes, "
                          "brackets, '#', ';' or backslashes")
    return name


def _read(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror or e}") from None
    return data.decode("utf-8", "surrogateescape")


def shadowing(profile: str, config: IniText, config_file: str, environ: Mapping[str, str]) -> list[str]:
    """Where the profile already gets credentials some other way, as "key at FILE line N"."""
    found = []
    for section in config.find(lambda name: profile_of_config_section(name) == profile):
        for option in section.options:
            if option.key in SHADOWING_CONFIG_KEYS:
                found.append(f"{option.key} at {config_file} line {option.start + 1} ([{section.name}])")
    credentials_file = credentials_path(environ)
    text = _read(credentials_file)
    if text is not None:
        for section in IniText(text).find(lambda name: name == profile):
            for option in section.options:
                if option.key in STATIC_KEYS:
                    found.append(f"{option.key} at {credentials_file} line {option.start + 1} ([{section.name}])")
    return found


def configure(conn_id: str, profile: str, settings: dict[str, str], environ: Mapping[str, str],
              program: Sequence[str]) -> tuple[str, str, str | None]:
    """Edit the config file; ("written" | "unchanged", its path, the backup's path or None)."""
    path = config_path(environ)
    old = _read(path)
    config = IniText(old or "")
    sections = config.find(lambda name: profile_of_config_section(name) == profile)
    if len(sections) > 1:
        lines = ", ".join(str(s.header + 1) for s in sections)
        raise ConfigError(f"profile {profile!r} has {len(sections)} sections in {path} (lines {lines}); botocore "
                          "refuses such a file: merge them, then run credproc configure again")
    problems = shadowing(profile, config, path, environ)
    if problems:
        raise ConfigError(f"profile {profile!r} already gets credentials without credential_process, and SDKs "
                          f"would use those instead of credproc: {'; '.join(problems)}. Remove them (or choose "
                          "another --profile), then run credproc configure again")
    values = {"credential_process": command_line(program, conn_id, profile), **settings}
    header = "default" if profile == "default" else f"profile {profile}"
    config.set_options(sections[0] if sections else None, header, values)
    new = config.text()
    if new == old:
        return "unchanged", path, None
    backup = None
    target = os.path.realpath(path)  # a symlinked dotfile stays a symlink
    if old is not None:
        backup = path + BACKUP_SUFFIX
        _write(backup, old, _mode(target))
    else:
        os.makedirs(os.path.dirname(target) or ".", mode=0o700, exist_ok=True)
    _write(target, new, _mode(target))
    return "written", path, backup


def _mode(path: str) -> int:
    try:
        return os.stat(path).st_mode & 0o777
    except OSError:
        return 0o600


def _write(path: str, text: str, mode: int) -> None:
    """Atomically: a crash leaves the old file or the new one, never half of one."""
    directory = os.path.dirname(path) or "."
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(text.encode("utf-8", "surrogateescape"))
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as e:
        with suppress(OSError):
            os.unlink(tmp)
        raise ConfigError(f"cannot write {path}: {e.strerror or e}") from None


def run(options: Any) -> int:
    environ = os.environ
    conn_id = _common.check_id(options.conn_id)
    profile = _check_profile_name(options.profile)
    settings = {}
    if options.region:
        if any(c.isspace() for c in options.region):
            raise ConfigError(f"--region {options.region!r} holds spaces")
        settings["region"] = options.region
    if options.retry_mode:
        settings["retry_mode"] = options.retry_mode
    if options.max_attempts:
        settings["max_attempts"] = str(options.max_attempts)
    program = launcher_command()
    state, path, backup = configure(conn_id, profile, settings, environ, program)
    section = "[default]" if profile == "default" else f"[profile {profile}]"
    if state == "unchanged":
        _common.out(f"{section} in {path} is already up to date; nothing written")
    else:
        _common.out(f"wrote {section} in {path}" + (f" (previous file saved as {backup})" if backup else ""))
        _common.out(f"  credential_process = {command_line(program, conn_id, profile)}")
    try:
        defined = Resolution(conn_id, environ=environ).raw() is not None
    except ConfigError:
        defined = True  # defined, wrongly: credproc show says how
    if not defined and conn_id != sources.DEFAULT_CONN_ID:
        warn(f"connection {conn_id!r} is not defined yet: set {sources.credproc_variable(conn_id)} or add "
             f"[connections.{forms.toml_key(conn_id)}] to {sources.config_path(environ)} before using the profile")
    if environ.get("AWS_ACCESS_KEY_ID"):
        warn("AWS_ACCESS_KEY_ID is set in this environment: SDKs use it before any profile named by AWS_PROFILE "
             "(pass --profile to the AWS CLI, or unset it)")
    _common.out(f"check it: credproc check {shlex.quote(conn_id)}; aws sts get-caller-identity --profile {profile}")
    return 0
