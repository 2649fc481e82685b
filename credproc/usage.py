"""The main job's command line past the fast path: argparse, and what ``--help`` says.

Loaded only when ``cli``'s fast path does not recognise the command line at once.
"""

from __future__ import annotations

import argparse
from typing import NoReturn

from credproc import sources

EPILOG = """\
examples:
  credproc --conn prod                 print credentials for connection "prod"
  credproc --conn prod --refresh       ignore the cached entry and fetch anew

in ~/.aws/config (as `credproc configure prod --profile prod` writes it; VENV is credproc's venv):
  [profile prod]
  credential_process = VENV/bin/python -I -S VENV/lib/python3.X/site-packages/credproc/_launch.py --conn prod --profile prod
  retry_mode = standard
  max_attempts = 10

connections are read from CREDPROC_CONN_<ID>, AIRFLOW_CONN_<ID> (Airflow's URI or JSON
form), then [connections.<id>] in $CREDPROC_CONFIG or ~/.config/credproc/config.toml.
exit codes: 0 success, 1 credentials could not be obtained, 2 usage or configuration error.

commands for people (credproc COMMAND --help):
  list, show ID, check ID, configure ID --profile NAME, env ID, cache list|clear, secret set|delete ID,
  completion bash|zsh|fish, serve --conn ID, exec --conn ID -- CMD
"""  # noqa: E501 - the credential_process line as configure writes it, whole


def build_parser() -> argparse.ArgumentParser:
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
