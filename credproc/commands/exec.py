"""``credproc exec --conn ID -- CMD ARGS...``: run CMD with a connection's credentials for
as long as it runs (``credproc.serve``, ``credproc.child``).

By default a server on 127.0.0.1, in this process, serves the credentials to CMD's SDK
through ``AWS_CONTAINER_CREDENTIALS_FULL_URI`` and refreshes them ahead; it stops when CMD
ends. ``--no-server`` gives CMD the credentials themselves instead (no refresh), for tools
that read only ``AWS_ACCESS_KEY_ID`` and friends. exec exits with CMD's status.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from credproc.commands import _common
from credproc.commands._parser import add_command
from credproc.errors import ConfigError

EPILOG = """\
examples:
  credproc exec --conn prod -- terraform apply
  credproc exec --conn prod -- python long_job.py
  credproc exec --conn prod --no-server -- ./tool-that-reads-only-the-environment

CMD gets AWS_CONTAINER_CREDENTIALS_FULL_URI and AWS_CONTAINER_AUTHORIZATION_TOKEN (or, with
--no-server, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN and
AWS_CREDENTIAL_EXPIRATION), and none of the variables that SDKs would take first
(AWS_PROFILE, static keys, web identity, another container endpoint). Signals sent to exec
reach CMD; exec exits with CMD's status (128+N when a signal N ended it).
"""


def add_parser(subparsers: Any, common: Any) -> None:
    parser = add_command(subparsers, common, "exec", help="run a command with credentials that refresh",
                         description="Run a command with a connection's credentials, served to its SDK by a "
                                     "server on 127.0.0.1 for as long as it runs.",
                         epilog=EPILOG)
    parser.add_argument("-c", "--conn", metavar="ID", required=True, dest="conn_id", help="the connection id")
    parser.add_argument("--no-server", action="store_true",
                        help="give CMD the credentials as AWS_ACCESS_KEY_ID and friends (no refresh)")
    parser.add_argument("command", nargs=argparse.REMAINDER, metavar="-- CMD ARGS", help="the command to run")
    parser.set_defaults(run=run)


def run(options: Any) -> int:
    from credproc import child

    conn_id = _common.check_id(options.conn_id)
    argv = options.command[1:] if options.command[:1] == ["--"] else options.command
    if not argv:
        raise ConfigError("exec: no command to run (credproc exec --conn ID -- CMD ARGS...)")
    environ = dict(os.environ)  # before any fetch marks it (recursion.enter)
    outer = environ.get(child.NESTED_VARIABLE)
    if outer is not None:
        return nested(outer, conn_id, argv, environ, options.no_server)
    if options.no_server:
        return plain(conn_id, argv, environ, options.debug)
    from credproc import serve
    from credproc.log import warn

    shadow = child.default_profile_credentials(environ)
    if shadow:
        warn(f"{shadow}: SDKs take the default profile's credentials before the container endpoint, "
             f"so {argv[0]} may not use connection {conn_id!r}")
    with serve.running([conn_id], environ, debug=options.debug) as endpoint:
        from credproc.methods import mfa

        mfa.ask_on_the_terminal = False  # asked at start-up if need be; from now on the terminal is CMD's
        return child.run(argv, child.server_environment(environ, conn_id, endpoint.uri(conn_id), endpoint.token))


def plain(conn_id: str, argv: list[str], environ: dict[str, str], debug: bool) -> int:
    import json

    from credproc import child, job
    from credproc.resolution import Resolution

    printed = json.loads(job.credentials_for(Resolution(conn_id, environ=environ), debug=debug))
    return child.run(argv, child.plain_environment(environ, conn_id, printed))


def nested(outer: str, conn_id: str, argv: list[str], environ: dict[str, str], no_server: bool) -> int:
    """An exec inside an exec: for the same connection in the same mode, CMD runs with what
    the outer one gave (one line says so); anything else is refused, since the inner exec
    would take its own credentials from the outer one's."""
    from credproc import child, serve
    from credproc.log import warn

    same_mode = (serve.FULL_URI not in environ) == no_server
    if outer == conn_id and same_mode:
        warn(f"already inside credproc exec --conn {conn_id!r}: running {argv[0]} with its credentials")
        return child.run(argv, environ)
    raise ConfigError(f"exec --conn {conn_id!r}: already inside credproc exec --conn {outer!r} "
                      f"({child.NESTED_VARIABLE} is set); run the command there, or unset {child.NESTED_VARIABLE} "
                      "to nest on purpose")
