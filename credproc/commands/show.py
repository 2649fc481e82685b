"""``credproc show ID``: one connection as the main job resolves it, secrets masked.

"Resolved" means after precedence (which definition wins) and after the deprecated extras
are mapped (``aws_account_id`` + ``aws_iam_role`` become ``role_arn``, ``external_id``
becomes ``ExternalId``); their warnings are printed on stderr as the main job prints them.
A secret's presence and origin are shown (definition or keyring), never its value.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from credproc import resolution as resolving
from credproc import sts_endpoint
from credproc.commands import _common
from credproc.commands._parser import add_command
from credproc.errors import ConfigError
from credproc.resolution import Resolution

EPILOG = """\
examples:
  credproc show prod
  credproc show prod --json

Secrets (secret keys, passwords, session tokens, anything from the keyring or whose extra
key names a password, token or secret) print as ****. The access key id shows its last four
characters, as `aws configure list` does.
"""


def add_parser(subparsers: Any, common: Any) -> None:
    parser = add_command(subparsers, common, "show", help="show one connection, resolved, secrets masked",
                         description="Show a connection as credproc resolves it: where it is defined, "
                                     "how it gets credentials, and every setting, with secrets masked.",
                         epilog=EPILOG)
    parser.add_argument("conn_id", metavar="ID", help="the connection id")
    parser.add_argument("--json", action="store_true", help="print a JSON object instead of text")
    parser.set_defaults(run=run)


def details(conn_id: str, environ: Mapping[str, str]) -> dict[str, Any]:
    _common.check_id(conn_id)
    resolved = Resolution(conn_id, environ=environ)
    conn = resolved.connection(resolving.KEYRING_ASK)
    raw = resolved.raw()
    factory_spec = resolved.factory_choice()[0]
    fields = raw.fields if raw is not None else {}
    extra = raw.extra if raw is not None else {}

    def origin(field: str, table: dict[str, Any]) -> str | None:
        if field in resolved.keyring_fields:
            return f"{_common.MASK} (keyring: credproc/{conn_id}:{field})"
        return f"{_common.MASK} (definition: {field})" if table.get(field) else None

    secret_source = None
    if conn.aws_secret_access_key:
        if conn.aws_access_key_id == fields.get("login") and conn.password:
            secret_source = origin("password", fields)
        elif conn.aws_access_key_id == extra.get("aws_access_key_id"):
            secret_source = origin("aws_secret_access_key", extra)
        elif conn.aws_access_key_id == conn.session_kwargs.get("aws_access_key_id"):
            secret_source = f"{_common.MASK} (definition: session_kwargs.aws_secret_access_key)"
        else:
            secret_source = f"{_common.MASK} (s3_config_file)"
    token_source = None
    if conn.aws_session_token:
        token_source = (origin("aws_session_token", extra)
                        or f"{_common.MASK} (definition: session_kwargs.aws_session_token)")
    shown = {"aws_access_key_id", "aws_secret_access_key", "aws_session_token", "region_name", "session_kwargs",
             "profile_name", "config_kwargs", "endpoint_url", "service_config", "host", "verify", "role_arn",
             "assume_role_method", "assume_role_kwargs", "session_factory", "aws_account_id", "aws_iam_role",
             "external_id", "mfa_serial", "mfa_process", "mfa_session_duration"}
    info = {
        "id": conn_id,
        "defined_in": _common.where(resolved.definition),
        "also_defined_in": _common.other_places(resolved),
        "method": _common.describe_method(conn, factory_spec),
        "role_arn": conn.role_arn,
        "assume_role_kwargs": _common.mask(conn.assume_role_kwargs) or None,
        "access_key_id": _common.key_id(conn.aws_access_key_id),
        "secret_access_key": secret_source,
        "session_token": token_source,
        "region": conn.region_name,
        "sts_endpoint": _common.mask(sts_endpoint.describe(conn, conn.region_name, environ)),
        "endpoint_url": _common.mask(conn.endpoint_url),
        "host": _common.mask(extra.get("host") or None),
        "verify": conn.verify,
        "profile_name": conn.profile_name,
        "session_kwargs": _common.mask(conn.session_kwargs) or None,
        "config_kwargs": _common.mask(conn.config_kwargs) or None,
        "session_factory": factory_spec,
        "other_extras": _common.mask({k: v for k, v in extra.items() if k not in shown}) or None,
        "keyring": resolved.keyring_problem or None,
        "cache": _common.cache_state(resolved),
        "cache_key_variables": _key_variables(resolved),
        "mfa": _common.mfa_state(resolved, conn),
    }
    if conn.login and conn.aws_access_key_id != conn.login:
        info["login"] = f"{_common.key_id(conn.login)} (not used: its password is missing)"
    return info


def _key_variables(resolved: Resolution) -> list[str] | None:
    """The environment variables whose values key this connection's entries (credproc.depends);
    None when the session factory cannot be loaded (the main job says why)."""
    try:
        return list(resolved.variables())
    except ConfigError:
        return None


def _describe_variables(names: list[str] | None) -> str | None:
    if names is None:
        return None
    if not names:
        return "the definition alone: every environment shares its entry"
    return "the definition and " + ", ".join(names)


# Extras that name an endpoint credproc never sends STS calls to (Airflow neither).
UNUSED_FOR_STS = {
    "endpoint_url": "not used for STS: Airflow uses it for other services",
    "host": "not used for STS: the deprecated spelling of endpoint_url, for other services",
}


def _describe_endpoint(endpoint: dict[str, str | None]) -> str:
    return f"{endpoint['url'] or 'none'} ({endpoint['from']})"


def run(options: Any) -> int:
    info = details(options.conn_id, os.environ)
    if options.json:
        _common.out(json.dumps(info, indent=2, default=str))
        return 0
    labels = [
        ("connection", info["id"]), ("defined in", info["defined_in"]),
        *[("also defined", f"{place} (not used)") for place in info["also_defined_in"]],
        ("method", info["method"]), ("role_arn", info["role_arn"]),
        ("assume_role_kwargs", info["assume_role_kwargs"]),
        ("access key id", info["access_key_id"] or "none in the definition"),
        ("login", info.get("login")),
        ("secret key", info["secret_access_key"]), ("session token", info["session_token"]),
        ("region", info["region"]), ("sts endpoint", _describe_endpoint(info["sts_endpoint"])),
        *[(key, f"{info[key]} ({note})") for key, note in UNUSED_FOR_STS.items() if info[key]],
        ("verify", info["verify"]),
        ("profile_name", info["profile_name"]), ("session_kwargs", info["session_kwargs"]),
        ("config_kwargs", info["config_kwargs"]), ("session factory", info["session_factory"]),
        ("other extras", info["other_extras"]), ("keyring", info["keyring"]),
        ("cache", _common.describe_cache(info["cache"])),
        ("cache keyed on", _describe_variables(info["cache_key_variables"])),
        ("mfa", _common.describe_mfa(info["mfa"])),
    ]
    width = max(len(label) for label, value in labels if value is not None)
    for label, value in labels:
        if value is None:
            continue
        text = json.dumps(value) if isinstance(value, (dict, list, bool)) else str(value)
        _common.out(f"{label.ljust(width)}  {text}")
    return 0
