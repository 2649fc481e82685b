"""``credproc env ID``: the connection's credentials as environment assignments for a shell.

For tools that read only ``AWS_ACCESS_KEY_ID`` and friends (``eval "$(credproc env prod)"``).
The credentials come through the cache as for an SDK. Values are quoted for each shell so
that nothing in them is ever interpreted; for long-term keys the session token and expiry
variables are unset, so that a token left over from an earlier ``eval`` cannot pair with them.
"""

from __future__ import annotations

import json
from typing import Any

from credproc.commands import _common
from credproc.commands._parser import add_command
from credproc.log import add_secret

FORMATS = ("sh", "fish", "powershell", "json")

EPILOG = """\
examples:
  eval "$(credproc env prod)"                          # sh, bash, zsh
  credproc env prod --format fish | source             # fish
  credproc env prod --format powershell | Invoke-Expression
  credproc env prod --format json

sets AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN and AWS_CREDENTIAL_EXPIRATION
(UTC, RFC 3339). The output holds secrets: do not paste it anywhere.
"""


def add_parser(subparsers: Any, common: Any) -> None:
    parser = add_command(subparsers, common, "env", help="print credentials as shell environment assignments",
                         description="Print a connection's credentials as environment variable assignments "
                                     "for a shell.",
                         epilog=EPILOG)
    parser.add_argument("conn_id", metavar="ID", help="the connection id")
    parser.add_argument("--format", choices=FORMATS, default="sh", help="the shell (default: %(default)s)")
    parser.add_argument("--profile", metavar="PROFILE",
                        help="the AWS profile whose retry_mode/max_attempts apply (default: $AWS_PROFILE)")
    parser.add_argument("--refresh", action="store_true", help="ignore the cached entry and fetch anew")
    parser.set_defaults(run=run)


def variables(printed: dict) -> dict[str, str | None]:
    """The variables to set (None: to unset), in a stable order."""
    return {
        "AWS_ACCESS_KEY_ID": printed["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": printed["SecretAccessKey"],
        "AWS_SESSION_TOKEN": printed.get("SessionToken"),
        "AWS_CREDENTIAL_EXPIRATION": printed.get("Expiration"),
    }


def render(values: dict[str, str | None], fmt: str) -> str:
    if fmt == "json":
        return json.dumps({k: v for k, v in values.items() if v is not None}, indent=2)
    lines = []
    for name, value in values.items():
        if fmt == "sh":
            lines.append(f"export {name}={sh_quote(value)}" if value is not None else f"unset {name}")
        elif fmt == "fish":
            lines.append(f"set -gx {name} {fish_quote(value)};" if value is not None else f"set -e {name};")
        else:
            lines.append(f"$Env:{name} = {powershell_quote(value)}" if value is not None
                         else f"Remove-Item Env:{name} -ErrorAction SilentlyContinue")
    return "\n".join(lines)


def sh_quote(value: str) -> str:
    """POSIX single quotes: nothing inside is special; a ' is closed, escaped and reopened."""
    return "'" + value.replace("'", "'\\''") + "'"


def fish_quote(value: str) -> str:
    """fish single quotes: only \\\\ and \\' are escapes inside them."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def powershell_quote(value: str) -> str:
    """PowerShell verbatim strings: a ' is doubled (and so are its typographic variants)."""
    for quote in ("'", "\u2018", "\u2019", "\u201a", "\u201b"):
        value = value.replace(quote, quote * 2)
    return "'" + value + "'"


def run(options: Any) -> int:
    from credproc import job
    from credproc.resolution import Resolution

    resolved = Resolution(_common.check_id(options.conn_id), profile=options.profile)
    body = job.credentials_for(resolved, refresh=options.refresh, debug=options.debug)
    printed = json.loads(body)
    text = render(variables(printed), options.format)
    # The one place besides the main job that prints secrets: written as is, not redacted.
    import sys

    sys.stdout.write(text + "\n")
    for key in ("SecretAccessKey", "SessionToken"):
        add_secret(printed.get(key))
    return 0
