"""The command line: a cache-hit fast path first, then argparse and the full job.

SDKs run ``credproc --conn NAME`` at every process start, so ``main`` first tries to
answer from the cache using nothing but ``os``, ``sys`` and ``time``: no argparse, no
logging, no json (each imports ``re``). Anything it does not recognise at once - other
flags, a miss, a broken entry - goes to the full path, which may take its time.
"""

from __future__ import annotations

import os
import sys
import time

from credproc import sources
from credproc.resolution import Resolution

TYPE_CHECKING = False  # typing and argparse cost a cache hit milliseconds
if TYPE_CHECKING:
    import argparse
    from typing import NoReturn

# Flags the fast path understands; all of them take a value.
_FAST_FLAGS = {"-c": "conn", "--conn": "conn", "--profile": "profile", "--session-factory": "session_factory"}


# The people-facing commands (credproc list, show, check, ...) live in credproc.commands.
COMMANDS = ("list", "show", "check", "configure", "env", "cache", "secret")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if args and args[0] in COMMANDS:
        from credproc.commands import main as command_main

        return command_main(args)
    fast = _fast_args(args)
    if fast is None:  # anything but the plain main job: argparse decides
        options = build_parser().parse_args(args)
        resolution = Resolution(options.conn, session_factory=options.session_factory, profile=options.profile)
        return run(resolution, refresh=options.refresh, use_cache=not options.no_cache, debug=options.debug)
    resolution = Resolution(fast.get("conn", sources.DEFAULT_CONN_ID), session_factory=fast.get("session_factory"),
                            profile=fast.get("profile"))
    if "CREDPROC_CHAIN" not in os.environ:  # inside another credproc's fetch: no shortcuts
        body = resolution.fresh_body(time.time())
        if body is not None:
            write_credentials(body)
            return 0
    return run(resolution)


def _fast_args(args: list[str]) -> dict[str, str] | None:
    """``--conn NAME`` and friends, or None when argparse must look at the command line."""
    found: dict[str, str] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in _FAST_FLAGS and i + 1 < len(args):
            name, value = _FAST_FLAGS[arg], args[i + 1]
            i += 2
        elif arg.startswith("--") and "=" in arg and arg.split("=", 1)[0] in _FAST_FLAGS:
            flag, value = arg.split("=", 1)
            name = _FAST_FLAGS[flag]
            i += 1
        else:
            return None
        if not value or value.startswith("-") or name in found:
            return None
        found[name] = value
    return found


def write_credentials(body: bytes) -> None:
    out = sys.stdout.buffer
    out.write(body + b"\n")
    out.flush()


# --------------------------------------------------------------------------------------
# Past the fast path: a miss, or a command line that needs argparse.

EPILOG = """\
examples:
  credproc --conn prod                 print credentials for connection "prod"
  credproc --conn prod --refresh       ignore the cached entry and fetch anew

in ~/.aws/config:
  [profile prod]
  credential_process = /path/to/credproc --conn prod --profile prod
  retry_mode = standard
  max_attempts = 10

connections are read from CREDPROC_CONN_<ID>, AIRFLOW_CONN_<ID> (Airflow's URI or JSON
form), then [connections.<id>] in $CREDPROC_CONFIG or ~/.config/credproc/config.toml.
exit codes: 0 success, 1 credentials could not be obtained, 2 usage or configuration error.

commands for people (credproc COMMAND --help):
  list, show ID, check ID, configure ID --profile NAME, env ID, cache list|clear, secret set|delete ID
"""


def build_parser() -> argparse.ArgumentParser:
    import argparse

    from credproc import __version__

    class Parser(argparse.ArgumentParser):
        def error(self, message: str) -> NoReturn:  # one line, as SDKs show only stderr's text
            self.exit(2, f"credproc: error: {message} (see credproc --help)\n")

    parser = Parser(
        prog="credproc",
        description="Print AWS credentials in the credential_process format for an "
                    "Airflow-style connection, from a locked on-disk cache when fresh.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-c", "--conn", default=sources.DEFAULT_CONN_ID, metavar="NAME",
                        help="connection id (default: %(default)s)")
    parser.add_argument("--profile", metavar="PROFILE",
                        help="the AWS profile that runs credproc, whose retry_mode and max_attempts "
                             "also govern credproc's STS calls (default: $AWS_PROFILE)")
    parser.add_argument("--session-factory", metavar="PATH",
                        help="a BaseSessionFactory subclass: package.module.ClassName, "
                             "module:ClassName, or a name registered in the credproc.session_factories "
                             "entry-point group (default: the connection's session_factory, "
                             "$CREDPROC_SESSION_FACTORY, the config file's session_factory)")
    cache_group = parser.add_mutually_exclusive_group()
    cache_group.add_argument("--refresh", action="store_true",
                             help="ignore the cached entry, fetch anew and store the result")
    cache_group.add_argument("--no-cache", action="store_true",
                             help="neither read nor write the cache")
    parser.add_argument("--debug", action="store_true",
                        help="log what happens on stderr, and show tracebacks")
    parser.add_argument("--version", action="version", version=f"credproc {__version__}")
    return parser


def run(resolution: Resolution, *, refresh: bool = False, use_cache: bool = True, debug: bool = False) -> int:
    """The main job past the fast path, with its errors turned into one line and an exit code.

    Still no argparse nor logging here: in a stampede, the processes that only wait for the
    fetching one and then read its entry never need them.
    """
    from credproc.errors import CredprocError
    from credproc.log import report_error

    if debug:
        from credproc.log import setup_logging

        setup_logging(debug=True)
    try:
        from credproc import job

        body = job.credentials_for(resolution, refresh=refresh, use_cache=use_cache, debug=debug)
    except CredprocError as e:
        return report_error(str(e), e.exit_code, debug)
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # a bug, or an error inside a user's session factory
        return report_error(f"connection {resolution.conn_id!r}: {type(e).__name__}: {e}", 1, debug,
                            hint=" (run with --debug for the traceback)")
    write_credentials(body)
    return 0
