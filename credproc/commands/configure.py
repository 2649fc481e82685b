"""``credproc configure ID --profile NAME``: write ``[profile NAME]`` into the AWS config file
with a ``credential_process`` that runs this credproc for connection ID.

The file is edited as text (``awsconfig``): every other section, key, comment and blank line
keeps its bytes. Running it twice changes nothing the second time; when it does change the
file, the previous one is kept as ``<file>.credproc-backup``. It refuses a profile that holds
static keys or another credential source, in the config or the credentials file, because
SDKs would use those and never run credproc.

The command line points at this credproc by absolute path and never through a shim (pyenv
and asdf shims cost tens of milliseconds on every run), and holds no secret: SDKs print the
whole command line when it fails.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Mapping
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
  credential_process = /path/to/venv/bin/credproc --conn prod --profile prod
  region = eu-west-1

Other profiles, keys and comments are kept byte for byte; the previous file is saved as
<file>.credproc-backup. retry_mode and max_attempts govern both the SDK and credproc's own
STS calls. A profile that already has static keys (aws_access_key_id, in the config file or
in ~/.aws/credentials) or another source (role_arn, sso_*, web_identity_token_file) is
refused: SDKs would use those and never run credproc. Remove them, then run this again.
"""


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


# -- which executable ----------------------------------------------------------------------


def executable(argv0: str | None = None, python: str | None = None) -> str:
    """The absolute path of the credproc executable to put in ``credential_process``.

    ``sys.argv[0]`` when it is a credproc console script; else (a shim, ``python -m
    credproc``) the ``credproc`` beside the running interpreter, which is the venv's own.
    The interpreter's path is not resolved: a venv's ``bin/python`` is a symlink to the base
    Python, whose directory has no credproc.
    """
    argv0 = sys.argv[0] if argv0 is None else argv0
    python = sys.executable if python is None else python
    if argv0 and os.path.basename(argv0) == "credproc":
        found = os.path.realpath(argv0)  # pipx and ~/.local/bin links point into the venv
        if os.path.isfile(found) and os.access(found, os.X_OK) and not is_shim(found):
            return found
    beside = Path(python).parent / "credproc"
    if python and beside.is_file() and os.access(beside, os.X_OK) and not is_shim(str(beside)):
        return str(beside.absolute())
    raise ConfigError("cannot find the credproc executable to write into credential_process (running as "
                      "`python -m credproc`, or through a shim?); run the venv's own bin/credproc configure")


def is_shim(path: str) -> bool:
    """A version-manager shim (pyenv, asdf, rbenv...) or any wrapper that is not a Python
    console script: its first line does not run a Python interpreter."""
    if "shims" in Path(path).parts:
        return True
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError:
        return True
    first = head.split(b"\n", 1)[0]
    if not first.startswith(b"#!"):
        return True  # a binary launcher (Windows) or not a script at all
    if b"python" in os.path.basename(first[2:].split()[0] if first[2:].split() else b"").lower():
        return False
    # pip's launcher for interpreter paths too long for a #! line: #!/bin/sh, then exec python
    return b"'''exec' " not in head


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
              exe: str) -> tuple[str, str, str | None]:
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
    command = " ".join(shlex.quote(part) for part in (exe, "--conn", conn_id, "--profile", profile))
    values = {"credential_process": command, **settings}
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
    exe = executable()
    state, path, backup = configure(conn_id, profile, settings, environ, exe)
    section = "[default]" if profile == "default" else f"[profile {profile}]"
    if state == "unchanged":
        _common.out(f"{section} in {path} is already up to date; nothing written")
    else:
        _common.out(f"wrote {section} in {path}" + (f" (previous file saved as {backup})" if backup else ""))
        command = " ".join(shlex.quote(part) for part in (exe, "--conn", conn_id, "--profile", profile))
        _common.out(f"  credential_process = {command}")
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
