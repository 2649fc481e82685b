"""The child of ``credproc exec``: its environment, its signals, its exit status.

The child gets either the server's variables (the SDK's container provider refreshes
through the server for as long as the child runs) or, with ``--no-server``, the
credentials themselves (no refresh). Either way nothing else it inherits may shadow them:
the variables of :data:`credproc.serve.SHADOWING` are removed, and a warning says when the
default profile of the shared files has credentials, which every SDK's chain takes before
the container endpoint (botocore: environment, then the shared credentials and config
files, then the container; the JS and Go v2 SDKs alike).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping

from credproc import serve

NESTED_VARIABLE = "CREDPROC_EXEC"  # the connection of the credproc exec a process runs under
# The keys of a profile that make an SDK take it before the container endpoint.
PROFILE_CREDENTIALS = ("aws_access_key_id", "credential_process", "role_arn", "sso_session", "sso_start_url",
                       "web_identity_token_file")
FORWARDED = ("SIGTERM", "SIGHUP", "SIGINT", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGWINCH", "SIGCONT")
# Sent by a terminal to its whole foreground process group, the child included: forwarded
# only when this process is not in that group, or the child would get each of them twice.
FROM_THE_TERMINAL = ("SIGINT", "SIGQUIT", "SIGWINCH")


def server_environment(environ: Mapping[str, str], conn_id: str, url: str, token: str) -> dict[str, str]:
    child = _cleared(environ)
    # The token as a variable, not a file: every SDK that reads the full URI reads this
    # variable (Go v2 up to 2023 reads nothing else), and the JS SDK warns when both are set.
    # A file would protect nothing more: /proc/PID/environ is readable by this user alone,
    # as a 0600 file would be, and the token gives what the child has anyway.
    child.update({serve.FULL_URI: url, serve.TOKEN_VARIABLE: token, NESTED_VARIABLE: conn_id})
    return child


def plain_environment(environ: Mapping[str, str], conn_id: str, printed: Mapping[str, str]) -> dict[str, str]:
    """The credentials as AWS_ACCESS_KEY_ID and friends (``--no-server``)."""
    from credproc.commands.env import variables

    child = _cleared(environ)
    child.update({name: value for name, value in variables(dict(printed)).items() if value is not None})
    child[NESTED_VARIABLE] = conn_id
    return child


def _cleared(environ: Mapping[str, str]) -> dict[str, str]:
    return {name: value for name, value in environ.items() if name not in serve.SHADOWING}


def default_profile_credentials(environ: Mapping[str, str]) -> str | None:
    """Where the default profile of the shared files has credentials (an SDK would take them
    before the container endpoint), as ``"FILE has KEY"``; None when it has none."""
    import configparser

    home = os.path.expanduser("~")
    files = ((environ.get("AWS_SHARED_CREDENTIALS_FILE") or os.path.join(home, ".aws", "credentials"), ("default",)),
             (environ.get("AWS_CONFIG_FILE") or os.path.join(home, ".aws", "config"), ("default", "profile default")))
    for path, sections in files:
        parser = configparser.RawConfigParser(strict=False, interpolation=None)
        try:
            parser.read(path, encoding="utf-8")
        except (configparser.Error, OSError, UnicodeDecodeError):
            continue  # the SDK will say what is wrong with it
        for section in sections:
            if parser.has_section(section):
                for key in PROFILE_CREDENTIALS:
                    if parser.get(section, key, fallback="").strip():
                        return f"{path} has {key} in [{section}]"
    return None


def run(argv: list[str], environ: dict[str, str]) -> int:
    """Run the child with its signals forwarded; its exit status, 128+N for a signal N
    (as shells say it), 127 when the command is not found and 126 when it cannot run."""
    from credproc.errors import report_error

    try:
        process = subprocess.Popen(argv, env=environ)  # noqa: S603 - the user's own command
    except FileNotFoundError:
        return report_error(f"exec: {argv[0]}: command not found", 127, False)
    except OSError as e:
        return report_error(f"exec: {argv[0]}: {e.strerror or e}", 126, False)
    previous = {}

    def forward(signum: int, frame: object) -> None:
        with contextlib.suppress(OSError):
            process.send_signal(signum)

    in_foreground = _in_terminal_foreground()
    for name in FORWARDED:
        signum = getattr(signal, name, None)
        if signum is None or (in_foreground and name in FROM_THE_TERMINAL):
            continue
        previous[signum] = signal.signal(signum, forward)
    if in_foreground:  # the child has them: this process must outlive it to stop the server
        for name in ("SIGINT", "SIGQUIT"):
            previous[getattr(signal, name)] = signal.signal(getattr(signal, name), signal.SIG_IGN)
    try:
        code = process.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 128 - code if code < 0 else code


def _in_terminal_foreground() -> bool:
    for fd in (0, 1, 2):
        try:
            if os.isatty(fd):
                return os.tcgetpgrp(fd) == os.getpgrp()
        except OSError:
            continue
    return False

