"""The commands for people: ``credproc list``, ``show``, ``check``, ``configure``, ``env``,
``cache``, ``secret``, ``completion``, ``serve`` and ``exec``.

SDKs only ever run ``credproc --conn NAME``; ``cli.main`` hands everything that starts with
one of these command names to :func:`main`. One module per command, each with
``add_parser(subparsers)`` and ``run(options) -> int``. Errors are one line,
``credproc: error: ...``, with the exit codes of the main job: 0 success, 1 a failure to
obtain or check credentials, 2 a usage or configuration error.
"""

from __future__ import annotations

import argparse
import sys

from credproc.commands._parser import Parser
from credproc.errors import report_error

EPILOG = """\
commands:
  list        the connections credproc can see, and their cache state
  show        one connection, resolved, with its secrets masked
  check       obtain credentials and ask STS who they belong to
  configure   write a profile running credproc into ~/.aws/config
  env         credentials as environment variables for a shell
  cache       list or clear the cached credentials
  secret      keep a connection's secret in the OS keyring
  completion  a shell completion script (bash, zsh, fish)
  serve       serve credentials on 127.0.0.1 as ECS does, refreshed ahead
  exec        run a command with credentials that refresh for as long as it runs

examples:
  credproc list
  credproc configure prod --profile prod --region eu-west-1
  credproc check prod
  eval "$(credproc env prod)"
  credproc secret set prod
  credproc exec --conn prod -- terraform apply

run `credproc COMMAND --help` for each command's options and examples.
exit codes: 0 success, 1 credentials could not be obtained or checked, 2 usage or configuration error.
"""


def build_parser() -> Parser:
    from credproc.commands import cachecmd, check, completion, configure, env, listing, secret, serve, show
    from credproc.commands import exec as exec_command

    parser = Parser(prog="credproc", description="Commands around credproc's connections, for people.",
                    epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show tracebacks and credproc's debug log")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    subparsers.required = True
    for module in (listing, show, check, configure, env, cachecmd, secret, completion, serve, exec_command):
        module.add_parser(subparsers, common)
    parser.set_defaults(commands_parser=parser)  # completion walks it
    return parser


def main(args: list[str]) -> int:
    """Run ``credproc COMMAND ...``; ``args`` starts with the command name."""
    options = build_parser().parse_args(args)
    debug = getattr(options, "debug", False)
    if debug:
        from credproc.log import setup_logging

        setup_logging(debug=True)
    from credproc.errors import CredprocError

    try:
        return options.run(options)
    except CredprocError as e:
        return report_error(str(e), e.exit_code, debug)
    except KeyboardInterrupt:
        sys.stderr.write("\n")
        return 130
    except BrokenPipeError:  # `credproc list | head`
        return 0
    except Exception as e:  # a bug: one line, the traceback with --debug
        return report_error(f"{options.command}: {type(e).__name__}: {e}", 1, debug,
                            hint=" (run with --debug for the traceback)")
