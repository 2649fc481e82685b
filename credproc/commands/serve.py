"""``credproc serve --conn ID [--conn ID ...]``: the container-credentials endpoint, for
the SDKs of other shells and of containers on the host network (``credproc.serve``).

It fetches every connection, listens on 127.0.0.1, and then prints what a shell must
export: ``AWS_CONTAINER_CREDENTIALS_FULL_URI`` for the first connection and
``AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE``, a 0600 file holding the token (the token itself
is never printed), with ``unset`` lines for the variables SDKs would take first. It serves
until SIGTERM, SIGINT or SIGHUP, and then removes the token file.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from typing import Any

from credproc.commands import _common
from credproc.commands._parser import add_command

FORMATS = ("sh", "fish", "json")

EPILOG = """\
examples:
  credproc serve --conn prod                     # prints the exports once it serves
  credproc serve --conn prod --port 9911 > ~/.credproc-serve.sh &
  . ~/.credproc-serve.sh                         # in any shell of yours, once written
  credproc serve --conn prod --conn dev --format json

the server listens on 127.0.0.1 only, answers a request only with the token (a random
256-bit value, in the token file) and for Host 127.0.0.1:PORT, and refreshes ahead like
credproc --conn ID, from the same cache. Stop it with Ctrl-C or kill PID.
"""


def add_parser(subparsers: Any, common: Any) -> None:
    parser = add_command(subparsers, common, "serve", help="serve credentials over the container-credentials endpoint",
                         description="Serve connections' credentials on 127.0.0.1 the way ECS does, so that SDKs "
                                     "refresh them on their own (AWS_CONTAINER_CREDENTIALS_FULL_URI).",
                         epilog=EPILOG)
    parser.add_argument("-c", "--conn", metavar="ID", action="append", required=True, dest="conn_ids",
                        help="a connection to serve (repeatable; the exports name the first)")
    parser.add_argument("--port", type=int, default=0, metavar="PORT",
                        help="the port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--format", choices=FORMATS, default="sh", help="the shell (default: %(default)s)")
    parser.set_defaults(run=run)


def render(endpoint: Any, conn_ids: list[str], fmt: str) -> str:
    from credproc import serve
    from credproc.commands.env import render as render_variables

    if fmt == "json":
        return json.dumps({"pid": os.getpid(), "port": endpoint.port, "token_file": endpoint.token_file.path,
                           "uris": {conn_id: endpoint.uri(conn_id) for conn_id in conn_ids}}, indent=2)
    values: dict[str, str | None] = {serve.FULL_URI: endpoint.uri(conn_ids[0]),
                                     serve.TOKEN_FILE_VARIABLE: endpoint.token_file.path}
    values.update({name: None for name in serve.SHADOWING if name not in values})
    lines = [f"# credproc serve (pid {os.getpid()}): connection {conn_ids[0]!r}; stop it with kill {os.getpid()}"]
    lines += [f"# also served: {conn_id!r} at {endpoint.uri(conn_id)}" for conn_id in conn_ids[1:]]
    return "\n".join(lines) + "\n" + render_variables(values, fmt)


def run(options: Any) -> int:
    from credproc import serve

    conn_ids = [_common.check_id(conn_id) for conn_id in options.conn_ids]
    if not 0 <= options.port <= 65535:
        from credproc.errors import ConfigError

        raise ConfigError(f"--port {options.port}: a port is 0 to 65535")
    stop = threading.Event()
    for name in ("SIGTERM", "SIGINT", "SIGHUP"):  # no SIGHUP on Windows
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), lambda signum, frame: stop.set())
    with serve.running(conn_ids, dict(os.environ), port=options.port, token_file=True,
                       debug=options.debug) as endpoint:
        sys.stdout.write(render(endpoint, list(dict.fromkeys(conn_ids)), options.format) + "\n")
        sys.stdout.flush()
        while not stop.wait(3600):
            pass
    return 0
