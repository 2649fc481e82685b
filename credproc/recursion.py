"""Never recurse: a connection must not end up running credproc for itself.

A connection without its own key pair asks boto3's default chain for the credentials that
sign its STS call. That chain reads ``AWS_PROFILE``, which the SDK running us passes down,
and a profile's ``credential_process`` may run credproc again - for the same connection,
forever. Two guards:

* before resolving the chain, :func:`check_profile` reads the profile boto3 will use (and
  its ``source_profile``s) and refuses one that runs credproc for this same connection;
* :func:`enter` records the connections being resolved in ``CREDPROC_CHAIN``, which child
  processes inherit; :func:`check` (run first in every credproc) refuses a connection that
  is already in the chain, or a chain that is too deep. This catches the loops the first
  guard cannot see, after at most one extra process.

Chaining *different* connections (``prod`` assuming a role with keys from a profile that
runs ``credproc --conn base``) is legitimate and allowed.
"""

from __future__ import annotations

import os

from credproc.errors import ConfigError

TYPE_CHECKING = False  # checked before the lock: no typing for waiters
if TYPE_CHECKING:
    from collections.abc import Mapping

    import boto3

CHAIN_VARIABLE = "CREDPROC_CHAIN"
MAX_DEPTH = 4
# Words every loop error carries, so that a parent credproc can tell a loop reported by its
# child (through botocore's process provider) from any other failure of that child.
LOOP_MARKER = "leads back to itself"


def _chain(environ: Mapping[str, str]) -> list[str]:
    value = environ.get(CHAIN_VARIABLE, "")
    return value.split("\n") if value else []


def check(conn_id: str, environ: Mapping[str, str]) -> None:
    chain = _chain(environ)
    if conn_id in chain:
        path = " -> ".join([*chain, conn_id])
        raise ConfigError(
            f"connection {conn_id!r} {LOOP_MARKER} ({path}): the AWS profile used for its "
            "credentials runs credproc for the same connection. Give the connection its own key pair "
            "or a profile_name whose credentials do not come from it, or unset AWS_PROFILE/AWS_DEFAULT_PROFILE"
        )
    if len(chain) >= MAX_DEPTH:
        raise ConfigError(f"connection {conn_id!r}: credproc connections chained {len(chain)} deep "
                          f"({' -> '.join(chain)}); refusing to go deeper, as if it {LOOP_MARKER}")


def enter(conn_id: str) -> None:
    """Mark ``conn_id`` as being resolved, for every process we start from now on."""
    os.environ[CHAIN_VARIABLE] = "\n".join([*_chain(os.environ), conn_id])


def runs_credproc_for(command: str, conn_id: str) -> bool:
    """Whether a ``credential_process`` command line runs credproc for ``conn_id``."""
    import shlex  # imports re: only when a profile is checked, never on the way to the lock

    try:
        argv = shlex.split(command)
    except ValueError:
        return False
    if not argv:
        return False
    program = os.path.basename(argv[0])
    if program.startswith("credproc"):
        args = argv[1:]
    elif program.startswith("python"):
        found = _python_runs_credproc(argv[1:])
        if found is None:
            return False
        args = found
    else:
        return False
    target = "aws_default"
    for i, arg in enumerate(args):
        if arg in ("-c", "--conn") and i + 1 < len(args):
            target = args[i + 1]
        elif arg.startswith("--conn="):
            target = arg.split("=", 1)[1]
        elif arg.startswith("-c") and len(arg) > 2:
            target = arg[2:]
    return target == conn_id


def _python_runs_credproc(argv: list[str]) -> list[str] | None:
    """credproc's arguments when a Python command line (past the interpreter) runs it: as
    ``-m credproc``, or through credproc's launcher (``-I -S .../credproc/_launch.py``, what
    ``credproc configure`` writes); None when it runs something else."""
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "-m":
            return argv[i + 2:] if argv[i + 1:i + 2] == ["credproc"] else None
        if arg in ("-c", "-") or not arg.startswith("-"):  # the program: inline code, stdin, or a script
            script = arg.replace(os.sep, "/")
            return argv[i + 1:] if script.endswith("/credproc/_launch.py") else None
        i += 2 if arg in ("-X", "-W", "--check-hash-based-pycs") else 1  # options that take a value
    return None


def check_profile(conn_id: str, profile: str, profiles: Mapping[str, Mapping[str, object]]) -> None:
    """Refuse a profile (or one of its source profiles) whose credential_process is us."""
    seen: set[str] = set()
    name: str | None = profile
    while name and name not in seen:
        seen.add(name)
        settings = profiles.get(name, {})
        command = settings.get("credential_process")
        if command and isinstance(command, str) and runs_credproc_for(command, conn_id):
            via = f" (the source_profile of {profile!r})" if name != profile else ""
            raise ConfigError(
                f"connection {conn_id!r} {LOOP_MARKER}: it has no key pair of its own, so boto3 "
                f"would take its credentials from AWS profile {name!r}{via}, whose credential_process "
                f"runs credproc for this same connection. Give the connection a key pair or a "
                f"profile_name that does not run credproc for it, or run the SDK with another "
                f"profile than {profile!r} (AWS_PROFILE/AWS_DEFAULT_PROFILE)"
            )
        source = settings.get("source_profile")
        name = source if isinstance(source, str) else None


def guard_session(session: boto3.session.Session, conn_id: str) -> None:
    """Refuse a boto3 session whose default chain would reach a profile running credproc for
    this connection (see :func:`check_profile`).

    Only when boto3 would get that far: environment keys and IRSA's web identity come
    before a profile's credential_process in its chain, unless the profile was named
    explicitly (``profile_name``), which takes the environment keys out of the chain.
    """
    botocore_session = session._session  # boto3 exposes no public handle on its config
    explicit = botocore_session.instance_variables().get("profile") is not None
    environ = os.environ
    if not explicit and environ.get("AWS_ACCESS_KEY_ID") and environ.get("AWS_SECRET_ACCESS_KEY"):
        return
    if environ.get("AWS_ROLE_ARN") and environ.get("AWS_WEB_IDENTITY_TOKEN_FILE"):
        return
    profiles = botocore_session.full_config.get("profiles", {})
    profile = botocore_session.profile or "default"
    check_profile(conn_id, profile, profiles)
