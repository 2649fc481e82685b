"""What a connection means: the fields and extras of an Airflow "Amazon Web Services
connection", validated, with deprecated extras mapped to their replacements.

``resolve`` turns the raw fields of ``sources`` into an :class:`AwsConnection`: every
question later code asks ("which key pair signs the STS call?", "which endpoint?") has one
answer here, and every bad value is a :class:`ConfigError` naming the key and where it was
defined. See ``shared/reference/connection.md`` for each key's meaning.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field
from typing import Any

from credproc import sensitive
from credproc.errors import ConfigError
from credproc.forms import RawConnection
from credproc.log import add_secret, warn
from credproc.settings import Table

METHODS = ("assume_role", "assume_role_with_saml", "assume_role_with_web_identity")

KNOWN_EXTRA_KEYS = frozenset({
    "aws_access_key_id", "aws_secret_access_key", "aws_session_token",
    "region_name", "session_kwargs", "profile_name", "config_kwargs",
    "endpoint_url", "host", "service_config", "verify",
    "role_arn", "assume_role_method", "assume_role_kwargs", "assume_role_with_saml",
    "assume_role_with_web_identity_federation",
    "assume_role_with_web_identity_federation_audience",
    "assume_role_with_web_identity_token_file",
    "session_factory",
    "mfa_serial", "mfa_process", "mfa_session_duration",
    # deprecated, still honoured
    "aws_account_id", "aws_iam_role", "external_id", "s3_config_file", "s3_config_format", "profile",
})

# boto3.session.Session's keyword arguments (botocore_session cannot be written in a config).
SESSION_KWARGS = frozenset({
    "aws_access_key_id", "aws_secret_access_key", "aws_session_token", "region_name",
    "profile_name", "aws_account_id",
})

# STS allows these characters in a RoleSessionName, 2 to 64 of them.
_SESSION_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+=,.@-")


@dataclass
class AwsConnection:
    """A resolved connection. Attribute names follow Airflow's AwsConnectionWrapper."""

    conn_id: str
    origin: str
    extra_config: dict[str, Any]
    login: str | None = None
    password: str | None = None
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = None
    aws_session_token: str | None = None
    region_name: str | None = None
    profile_name: str | None = None
    session_kwargs: dict[str, Any] = field(default_factory=dict)
    config_kwargs: dict[str, Any] = field(default_factory=dict)
    endpoint_url: str | None = None         # the extra's: Airflow's other services', never STS's
    sts_endpoint_url: str | None = None     # service_config.sts.endpoint_url; None: botocore decides
    verify: bool | str | None = None
    role_arn: str | None = None
    assume_role_method: str | None = None
    assume_role_kwargs: dict[str, Any] = field(default_factory=dict)
    session_factory: str | None = None
    file_settings: dict[str, Any] = field(default_factory=dict)
    mfa_serial: str | None = None           # the MFA device: GetSessionToken first (credproc.methods.mfa)
    mfa_process: list[str] | None = None    # a command that prints the code
    mfa_session_duration: int = 43200       # seconds the MFA session lasts

    def __repr__(self) -> str:  # keep secrets out of tracebacks and debug logs
        return f"AwsConnection(conn_id={self.conn_id!r}, origin={self.origin!r}, role_arn={self.role_arn!r})"

    @property
    def is_empty(self) -> bool:
        """No field and no extra: boto3's default chain decides everything."""
        return not (self.login or self.password or self.extra_config)

    @property
    def uses_default_chain(self) -> bool:
        """The initial credentials come from boto3's chain (no key pair in the definition)."""
        return self.aws_access_key_id is None

    def error(self, message: str) -> ConfigError:
        return ConfigError(f"connection {self.conn_id!r} ({self.origin}): {message}")


def empty(conn_id: str, origin: str) -> AwsConnection:
    return AwsConnection(conn_id=conn_id, origin=origin, extra_config={})


def resolve(raw: RawConnection, *, custom_factory: bool = False) -> AwsConnection:
    """Give the raw fields their meaning. Warnings go to stderr as they are found.

    Every secret of the definition (the password, and every value the one rule of
    ``credproc.sensitive`` calls secret, at any depth of the extra) is registered with
    ``credproc.log`` first, so that no message, warning or error can show it."""
    extra = dict(raw.extra)
    conn = AwsConnection(conn_id=raw.conn_id, origin=raw.origin, extra_config=extra,
                         file_settings=dict(raw.file_settings))
    fields = raw.fields
    add_secret(fields.get("password"))
    sensitive.register(extra)
    table = Table(extra, "", conn.error)

    conn_type = fields.get("conn_type")
    if conn_type and conn_type != "aws":
        warn(f"connection {raw.conn_id!r} ({raw.origin}) has type {conn_type!r}, not 'aws'; reading it as AWS")
    if fields.get("host"):
        warn(f"connection {raw.conn_id!r} ({raw.origin}): the connection host is not used; "
             "the STS endpoint is the extra's service_config.sts.endpoint_url")
    if not custom_factory:
        _warn_unknown_keys(conn, extra)

    conn.login = _optional_str(conn, "login", fields.get("login"))
    conn.password = _optional_str(conn, "password", fields.get("password"))
    conn.session_kwargs = table.table("session_kwargs")
    unknown = sorted(set(conn.session_kwargs) - SESSION_KWARGS)
    if unknown:
        raise conn.error(f"session_kwargs: {', '.join(unknown)} not accepted by boto3.session.Session "
                         f"(allowed: {', '.join(sorted(SESSION_KWARGS))})")
    sensitive.register(conn.session_kwargs)  # JSON text in a URI: its secrets are known only now
    session_kwargs = Table(conn.session_kwargs, "session_kwargs.", conn.error)
    conn.config_kwargs = table.table("config_kwargs")
    conn.assume_role_kwargs = table.table("assume_role_kwargs")
    conn.region_name = table.string("region_name") or session_kwargs.string("region_name")
    conn.profile_name = _profile_name(conn, table, session_kwargs)
    conn.endpoint_url = table.string("endpoint_url")
    table.string("host")  # the deprecated spelling of endpoint_url: a string, and unused too
    conn.sts_endpoint_url = sts_endpoint_url(conn, table)
    conn.verify = table.verify("verify")
    conn.session_factory = table.string("session_factory")
    _initial_keys(conn, table, session_kwargs)
    _role(conn, table)
    _mfa(conn, table)
    return conn


# -- the initial key pair ----------------------------------------------------------------


def _initial_keys(conn: AwsConnection, extra: Table, session_kwargs: Table) -> None:
    """login+password, else the extra's pair, else session_kwargs', else s3_config_file."""
    for where, key_id, secret in key_pairs(conn.login, conn.password, extra, session_kwargs):
        if key_id and secret:
            conn.aws_access_key_id, conn.aws_secret_access_key = key_id, secret
            break
        if key_id or secret:
            warn(f"connection {conn.conn_id!r} ({conn.origin}): {where} has only one half of the key pair; "
                 "it is ignored")
    s3_config_file = extra.string("s3_config_file")
    if s3_config_file:
        ignored = " (ignored: the connection has a key pair)" if conn.aws_access_key_id else ""
        warn(f"connection {conn.conn_id!r} ({conn.origin}): s3_config_file is deprecated{ignored}; "
             "put the key pair in login/password or use profile_name")
        if not conn.aws_access_key_id:
            conn.aws_access_key_id, conn.aws_secret_access_key = _s3_config_keys(conn, extra, s3_config_file)
    elif extra.string("profile"):
        warn(f"connection {conn.conn_id!r} ({conn.origin}): extra 'profile' is deprecated and only read "
             "with s3_config_file; did you mean 'profile_name'?")
    conn.aws_session_token = extra.string("aws_session_token") or session_kwargs.string("aws_session_token")
    add_secret(conn.aws_secret_access_key)
    add_secret(conn.aws_session_token)


def key_pairs(login: str | None, password: str | None, extra: Table,
              session_kwargs: Table) -> list[tuple[str, str | None, str | None]]:
    """The places a key pair may be given, in precedence order: (where, key id, secret).

    The first complete pair is used; a half pair is ignored with a warning. The keyring
    completes a half pair only when no complete pair is given anywhere
    (``credproc.keyring_store.wanted``, which reads these same places)."""
    return [
        ("login/password", login, password),
        ("extra aws_access_key_id/aws_secret_access_key",
         extra.string("aws_access_key_id"), extra.string("aws_secret_access_key")),
        ("session_kwargs", session_kwargs.string("aws_access_key_id"),
         session_kwargs.string("aws_secret_access_key")),
    ]


S3_CONFIG_MAX_BYTES = 1024 * 1024  # a boto, aws or s3cmd file is a few hundred bytes


def _s3_config_keys(conn: AwsConnection, extra: Table, path: str) -> tuple[str, str]:
    """The deprecated ``s3_config_file``: a key pair read from a boto, aws or s3cmd file."""
    profile = extra.string("profile")
    fmt = (extra.string("s3_config_format") or "boto").lower()
    import configparser

    parser = configparser.ConfigParser(interpolation=None)
    try:
        with open(os.path.expanduser(path), "rb") as f:
            data = f.read(S3_CONFIG_MAX_BYTES + 1)  # bounded: /dev/zero must not hang
        if len(data) > S3_CONFIG_MAX_BYTES:
            raise conn.error(f"s3_config_file {path}: larger than 1 MiB, not a credentials file")
        parser.read_string(data.decode("utf-8"), source=path)
    except OSError as e:
        raise conn.error(f"s3_config_file {path}: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise conn.error(f"s3_config_file {path}: not UTF-8 text") from None
    except configparser.Error as e:
        raise conn.error(f"s3_config_file {path}: not an INI file ({type(e).__name__})") from None
    if fmt == "boto":
        section = f"profile {profile}" if profile and parser.has_section(f"profile {profile}") else "Credentials"
        names = ("aws_access_key_id", "aws_secret_access_key")
    elif fmt == "aws":
        section = profile or "default"
        names = ("aws_access_key_id", "aws_secret_access_key")
    elif fmt == "s3cmd":
        section = "default"
        names = ("access_key", "secret_key")
    else:
        raise conn.error(f"s3_config_format {fmt!r} is not one of boto, aws, s3cmd")
    if not parser.has_section(section):
        raise conn.error(f"s3_config_file {path} has no [{section}] section ({fmt} format)")
    values = [parser.get(section, name, fallback="").strip() for name in names]
    if not all(values):
        raise conn.error(f"s3_config_file {path} [{section}] lacks {' or '.join(names)}")
    add_secret(values[1])
    return values[0], values[1]


# -- the role ----------------------------------------------------------------------------


def _role(conn: AwsConnection, extra: Table) -> None:
    conn.role_arn = extra.string("role_arn")
    account, role = extra.string("aws_account_id"), extra.string("aws_iam_role")
    if account or role:
        if not (account and role):
            raise conn.error("the deprecated aws_account_id and aws_iam_role must be given together")
        if conn.role_arn:
            warn(f"connection {conn.conn_id!r} ({conn.origin}): aws_account_id/aws_iam_role are ignored "
                 "because role_arn is set")
        else:
            warn(f"connection {conn.conn_id!r} ({conn.origin}): aws_account_id/aws_iam_role are deprecated; "
                 f"use role_arn = \"arn:aws:iam::{account}:role/{role}\"")
            conn.role_arn = f"arn:aws:iam::{account}:role/{role}"
    if conn.role_arn is not None and not conn.role_arn.startswith("arn:"):
        raise conn.error(f"role_arn {conn.role_arn!r} is not an ARN (arn:aws:iam::ACCOUNT:role/NAME)")

    method = extra.raw("assume_role_method")
    if method is not None and method not in METHODS:
        raise conn.error(f"assume_role_method {method!r} is not one of {', '.join(METHODS)}")
    if method in ("assume_role_with_saml", "assume_role_with_web_identity") and not conn.role_arn:
        raise conn.error(f"assume_role_method {method} needs role_arn")
    conn.assume_role_method = (method or "assume_role") if conn.role_arn else None

    external_id = extra.raw("external_id")
    if external_id is not None:
        if conn.assume_role_method != "assume_role":
            warn(f"connection {conn.conn_id!r} ({conn.origin}): the deprecated external_id is only used "
                 "with assume_role; ignored")
        elif "ExternalId" in conn.assume_role_kwargs:
            warn(f"connection {conn.conn_id!r} ({conn.origin}): the deprecated external_id is ignored "
                 "because assume_role_kwargs has ExternalId")
        else:
            warn(f"connection {conn.conn_id!r} ({conn.origin}): external_id is deprecated; "
                 "put ExternalId in assume_role_kwargs")
            conn.assume_role_kwargs["ExternalId"] = str(external_id)
    if conn.assume_role_method == "assume_role" and "RoleArn" in conn.assume_role_kwargs:
        # As in Airflow, role_arn names the role: AssumeRole got RoleArn twice (a TypeError) before.
        other = conn.assume_role_kwargs.pop("RoleArn")
        if other != conn.role_arn:
            warn(f"connection {conn.conn_id!r} ({conn.origin}): assume_role_kwargs.RoleArn {other!r} is ignored; "
                 f"role_arn {conn.role_arn!r} is the role assumed")
    if "TokenCode" in conn.assume_role_kwargs:  # an MFA code belongs in no log line either
        add_secret(str(conn.assume_role_kwargs["TokenCode"]))
    if conn.role_arn:
        conn.assume_role_kwargs.setdefault("RoleSessionName", role_session_name(conn.conn_id))


# GetSessionToken's DurationSeconds for an IAM user: 15 minutes to 36 hours.
MFA_DURATION_RANGE = (900, 129600)


def _mfa(conn: AwsConnection, extra: Table) -> None:
    """``mfa_serial`` (the AWS config's name), or ``assume_role_kwargs.SerialNumber`` without a
    TokenCode (Airflow's way): the device whose code opens an MFA session for the roles."""
    serial = extra.string("mfa_serial", strip=True)
    kwargs = conn.assume_role_kwargs
    if "SerialNumber" in kwargs and "TokenCode" not in kwargs:
        given = str(kwargs["SerialNumber"]).strip()
        if serial and given != serial:
            raise conn.error(f"mfa_serial {serial!r} and assume_role_kwargs.SerialNumber {given!r} differ")
        serial = given or serial
        del kwargs["SerialNumber"]  # the role is assumed with the MFA session, which carries no code
    process = extra.raw("mfa_process")
    duration = extra.seconds("mfa_session_duration", minimum=MFA_DURATION_RANGE[0], maximum=MFA_DURATION_RANGE[1])
    if not serial:
        for key in ("mfa_process", "mfa_session_duration"):
            if extra.raw(key) is not None:
                warn(f"connection {conn.conn_id!r} ({conn.origin}): {key} is ignored without mfa_serial")
        return
    if conn.assume_role_method not in (None, "assume_role"):
        raise conn.error(f"mfa_serial works with assume_role (or no role), not {conn.assume_role_method}")
    conn.mfa_serial = serial
    if isinstance(process, str) and process.strip():
        import shlex

        try:
            conn.mfa_process = shlex.split(process)
        except ValueError as e:
            raise conn.error(f"mfa_process {process!r}: {e}") from None
    elif isinstance(process, list) and process and all(isinstance(part, str) for part in process):
        conn.mfa_process = list(process)
    elif process not in (None, "", []):
        raise conn.error("mfa_process must be a command line (a string) or a list of strings")
    if duration is not None:
        conn.mfa_session_duration = int(duration)


def role_session_name(conn_id: str) -> str:
    """``credproc-<conn id>`` in STS's character set, 2 to 64 characters.

    A long id keeps its start and gets a short hash of the whole id, so two long ids that
    share a prefix stay distinguishable in CloudTrail.
    """
    name = "credproc-" + "".join(c if c in _SESSION_NAME_CHARS else "-" for c in conn_id)
    if len(name) > 64:
        import hashlib

        name = name[:55] + "-" + hashlib.sha256(conn_id.encode()).hexdigest()[:8]
    return name


# -- small typed getters -----------------------------------------------------------------


def _warn_unknown_keys(conn: AwsConnection, extra: dict) -> None:
    for key in sorted(set(extra) - KNOWN_EXTRA_KEYS):
        close = difflib.get_close_matches(key, sorted(KNOWN_EXTRA_KEYS), n=1, cutoff=0.6)
        if key == "region":
            close = ["region_name"]
        hint = f"; did you mean {close[0]!r}?" if close else ""
        warn(f"connection {conn.conn_id!r} ({conn.origin}): unknown extra key {key!r} is ignored{hint}")


def _optional_str(conn: AwsConnection, name: str, value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise conn.error(f"{name} must be a string")
    return value


def _profile_name(conn: AwsConnection, extra: Table, session_kwargs: Table) -> str | None:
    direct = extra.string("profile_name")
    nested = session_kwargs.string("profile_name")
    if direct and nested and direct != nested:
        warn(f"connection {conn.conn_id!r} ({conn.origin}): profile_name {direct!r} overrides "
             f"session_kwargs.profile_name {nested!r}")
    return direct or nested


def sts_endpoint_url(conn: AwsConnection, extra: Table) -> str | None:
    """``service_config.sts.endpoint_url``: the one STS endpoint a connection names, as in
    Airflow, whose assume-role and web-identity STS clients read nothing else. An explicit
    null (or no value) leaves it to botocore: ``AWS_ENDPOINT_URL_STS``, ``AWS_ENDPOINT_URL``,
    the profile's ``endpoint_url``s, else the region's endpoint. The extra's ``endpoint_url``
    (and the deprecated ``host``) are the other services' and are never used for STS."""
    sts = extra.sub("service_config").sub("sts")
    value = sts.raw("endpoint_url")
    if value is not None and not isinstance(value, str):
        raise conn.error(f"{sts.name('endpoint_url')} must be a string or null, not {type(value).__name__}")
    url = sts.string("endpoint_url", strip=True)
    if url and "://" not in url:
        raise conn.error(f"{sts.name('endpoint_url')} {url!r} must be a URL such as "
                         "https://sts.eu-west-1.amazonaws.com")
    if url is None:
        _warn_sts_lookalike(conn, extra)
    return url


def _warn_sts_lookalike(conn: AwsConnection, extra: Table) -> None:
    """An ``endpoint_url`` (or ``host``) that names an STS host was probably meant for STS (as
    credproc read it before): say where that goes, since botocore now picks the endpoint."""
    for key in ("endpoint_url", "host"):
        url = extra.string(key, strip=True)
        if not url:
            continue
        from urllib.parse import urlsplit

        try:
            labels = (urlsplit(url if "://" in url else f"//{url}").hostname or "").split(".")
        except ValueError:
            continue
        if any(label == "sts" or label.startswith("sts-") for label in labels):
            warn(f"connection {conn.conn_id!r} ({conn.origin}): {key} {url!r} looks like an STS endpoint, but "
                 "STS calls do not use it (as in Airflow, it is for other services); "
                 "set service_config.sts.endpoint_url for STS")
