"""The house style of every command's parser: one-line errors, a description, examples."""

from __future__ import annotations

import argparse
from typing import Any, NoReturn


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, like the main job's errors
        self.exit(2, f"credproc: error: {message} (see {self.prog} --help)\n")


def add_command(subparsers: Any, common: argparse.ArgumentParser | None, name: str, *, help: str,
                description: str, epilog: str) -> argparse.ArgumentParser:
    """A subcommand parser in the house style: description, examples, raw formatting."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name, parents=[common] if common else [], help=help, description=description, epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    return parser
