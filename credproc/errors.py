"""The two ways a run can fail, the exit code each one means to the SDK's user, and how a
failure is reported."""

import sys

from credproc.log import one_line, redact


class CredprocError(Exception):
    """Credentials could not be obtained (STS refused, network down, IdP failed): exit 1."""

    exit_code = 1


class ConfigError(CredprocError):
    """The command line or a connection definition is wrong: exit 2."""

    exit_code = 2


def report_error(message: str, code: int, debug: bool, hint: str = "") -> int:
    """Say why a run failed: one line on stderr, ``credproc: error: ...``, secrets masked, and
    the traceback too with ``debug``. Returns ``code``, the exit code to end with."""
    if debug:
        import traceback

        sys.stderr.write(redact(traceback.format_exc()))
        hint = ""
    sys.stderr.write(redact(f"credproc: error: {one_line(message)}{hint}\n"))
    return code
