"""``credproc check ID``: obtain the connection's credentials as an SDK would (through the
cache), then ask STS ``GetCallerIdentity`` who they belong to, at the connection's STS endpoint.

It proves the whole path - definition, keyring, signing credentials, role, endpoint - with
one command, and prints only what identifies the credentials, never the secrets.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from credproc import resolution as resolving
from credproc.commands import _common
from credproc.commands._parser import add_command
from credproc.log import add_secret
from credproc.resolution import Resolution

if TYPE_CHECKING:
    from mypy_boto3_sts.type_defs import GetCallerIdentityResponseTypeDef  # stub-only: never imported at run time

EPILOG = """\
examples:
  credproc check prod
  credproc check prod --refresh        fetch new credentials instead of using the cached ones
  credproc check prod --profile prod   with the retry settings of AWS profile "prod"
  credproc check prod --json | jq -r .account

prints the account, the ARN the credentials act as, the method that obtained them and when
they expire (--json: the same facts as one JSON object, never a secret). exit 0 when STS
accepts them, 1 when they cannot be obtained or STS refuses them, 2 for a configuration error.
"""


def add_parser(subparsers: Any, common: Any) -> None:
    parser = add_command(subparsers, common, "check", help="obtain credentials and ask STS who they are",
                         description="Obtain a connection's credentials (through the cache, as an SDK would) "
                                     "and call STS GetCallerIdentity with them.",
                         epilog=EPILOG)
    parser.add_argument("conn_id", metavar="ID", help="the connection id")
    parser.add_argument("--profile", metavar="PROFILE",
                        help="the AWS profile whose retry_mode/max_attempts apply (default: $AWS_PROFILE)")
    parser.add_argument("--refresh", action="store_true", help="ignore the cached entry and fetch anew")
    parser.add_argument("--json", action="store_true", help="print a JSON object instead of text")
    parser.set_defaults(run=run)


def run(options: Any) -> int:
    from credproc import job

    resolved = Resolution(_common.check_id(options.conn_id), profile=options.profile)
    before = _common.cache_state(resolved)
    body = job.credentials_for(resolved, refresh=options.refresh, debug=options.debug)
    printed = json.loads(body)
    for key in ("SecretAccessKey", "SessionToken"):
        add_secret(printed.get(key))
    # Resolved already when the fetch ran. On a hit, resolved now without asking the keyring
    # (only the endpoint and its settings are needed) and quietly, as the hit was.
    with _common.quiet():
        conn = resolved.connection(resolving.KEYRING_ASSUME)
    identity, endpoint = _caller_identity(resolved, printed)

    served = before["state"] == "fresh" and not options.refresh
    expiration = printed.get("Expiration")
    method = _common.describe_method(conn, resolved.factory_choice()[0])
    cached = bool(expiration) and (served or _common.cache_state(resolved, reread=True)["state"] != "none")
    mfa = _common.mfa_state(resolved, conn)
    if options.json:
        _common.out(json.dumps({
            "connection": {"id": resolved.conn_id, "defined_in": _common.where(resolved.definition)},
            "method": method, "role_arn": conn.role_arn,
            "account": identity.get("Account"), "arn": identity.get("Arn"), "user_id": identity.get("UserId"),
            "access_key_id": _common.key_id(printed.get("AccessKeyId")),
            "expires": expiration, "long_term": not expiration,
            "source": "cache" if served else "fetched", "cached": cached,
            "mfa": mfa, "sts_endpoint": endpoint,
        }, indent=2))
        return 0
    lines = [
        ("connection", f"{resolved.conn_id} ({_common.where(resolved.definition)})"),
        ("method", method + (f" {conn.role_arn}" if conn.role_arn else "")),
        ("account", identity.get("Account")),
        ("arn", identity.get("Arn")),
        ("user id", identity.get("UserId")),
        ("access key id", _common.key_id(printed.get("AccessKeyId"))),
        ("expires", f"{expiration} ({_common.relative(expiration)})" if expiration
         else "never: long-term keys (never cached)"),
        ("source", "the cache" if served else "fetched now" + (" and cached" if cached else "")),
        ("mfa", _common.describe_mfa(mfa)),
        ("sts endpoint", endpoint),
    ]
    lines = [(label, value) for label, value in lines if value is not None]
    width = max(len(label) for label, _ in lines)
    for label, value in lines:
        _common.out(f"{label.ljust(width)}  {value}")
    return 0


def _caller_identity(resolved: Resolution,
                     printed: dict[str, Any]) -> tuple[GetCallerIdentityResponseTypeDef, str]:
    """GetCallerIdentity signed with the printed credentials, at the connection's STS endpoint
    (in a session of its profile, as its own STS calls), with its TLS settings, region and
    retry configuration; the answer and the endpoint's URL."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    from credproc.sts import translate

    factory = resolved.factory(custom=False)
    started = time.monotonic()
    try:
        session = boto3.session.Session(aws_access_key_id=printed["AccessKeyId"],
                                        aws_secret_access_key=printed["SecretAccessKey"],
                                        aws_session_token=printed.get("SessionToken"),
                                        region_name=factory.region_name, profile_name=factory.conn.profile_name)
        client = factory.sts_client(session)
        response = client.get_caller_identity()
        endpoint: str = client.meta.endpoint_url
    except (BotoCoreError, ClientError) as e:
        error = translate(e, factory.conn)
        error.args = ((f"{error} (credentials were obtained; checking them with GetCallerIdentity failed "
                       f"after {time.monotonic() - started:.1f}s)"),)
        raise error from e
    return response, endpoint
