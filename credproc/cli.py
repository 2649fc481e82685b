"""The command line: a cache-hit fast path first, then argparse and the full job.

SDKs run ``credproc --conn NAME`` at every process start, so ``main`` first tries to
answer from the cache using nothing but ``os``, ``sys`` and ``time``: no argparse, no
logging, no json (each imports ``re``). Anything it does not recognise at once - other
flags, a miss, a broken entry - goes to the full path, which may take its time.

Started by credproc's own launcher (``credproc/_launch.py``: ``python -I -S``), the run has
no ``site`` and so none of the venv's packages until it leaves the fast path, where
:func:`full_path` completes the start-up first.
"""

import os
import sys
import time

from credproc import sources
from credproc.resolution import Resolution

# Flags the fast path understands; all of them take a value.
_FAST_FLAGS = {"-c": "conn", "--conn": "conn", "--profile": "profile", "--session-factory": "session_factory"}


# The people-facing commands (credproc list, show, check, ...) live in credproc.commands.
COMMANDS = ("list", "show", "check", "configure", "env", "cache", "secret", "completion", "serve", "exec")

# The directory credproc's launcher put on the path in place of site's (see defer_site).
_site_deferred: str | None = None


def defer_site(root: str) -> None:
    """Called by credproc's launcher, which started Python without ``site`` and with only
    ``root`` (the directory holding this package) on the path: :func:`full_path` then
    loads ``site`` before anything that needs the venv's packages."""
    global _site_deferred
    _site_deferred = root


def stayed_on_fast_path() -> bool:
    """Whether this run, started by credproc's launcher, has loaded nothing but the fast path
    (``site`` is still deferred): see ``credproc/_launch.py``."""
    return _site_deferred is not None


def full_path() -> None:
    """Leaving the fast path: make the venv's packages importable, if the launcher left them
    out. Called before the first import of anything outside the standard library."""
    global _site_deferred
    if _site_deferred is not None:
        root, _site_deferred = _site_deferred, None
        from credproc import startup

        startup.complete(root)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if args and args[0] in COMMANDS:
        full_path()
        from credproc.commands import main as command_main

        return command_main(args)
    fast = _fast_args(args)
    if fast is None:  # anything but the plain main job: argparse decides
        full_path()
        from credproc.usage import build_parser

        options = build_parser().parse_args(args)
        resolution = Resolution(options.conn, session_factory=options.session_factory, profile=options.profile)
        return run(resolution, refresh=options.refresh, use_cache=not options.no_cache, debug=options.debug)
    resolution = Resolution(fast.get("conn", sources.DEFAULT_CONN_ID), session_factory=fast.get("session_factory"),
                            profile=fast.get("profile"))
    if "CREDPROC_CHAIN" not in os.environ:  # inside another credproc's fetch: no shortcuts
        entry = resolution.entry()
        if entry is not None:
            now = time.time()
            if entry.is_fresh(now):
                write_credentials(entry.body)
                return 0
            if entry.floor > now:  # due: print it, and refresh in the background
                from credproc import background

                if background.enabled(os.environ):
                    write_credentials(entry.body)
                    background.after_serving(resolution, entry, now, _refresh_in_background)
                    return 0
    return run(resolution)


def _refresh_in_background(resolution: Resolution) -> None:
    full_path()  # in the detached refresher only, as is job
    from credproc import job

    job.refresh_in_background(resolution)


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
# Past the fast path: a miss, or a command line that argparse must read (credproc.usage).


def run(resolution: Resolution, *, refresh: bool = False, use_cache: bool = True, debug: bool = False) -> int:
    """The main job past the fast path, with its errors turned into one line and an exit code.

    Still no argparse nor logging here: in a stampede, the processes that only wait for the
    fetching one and then read its entry never need them.
    """
    full_path()
    from credproc.errors import CredprocError, report_error

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
