"""``BaseSessionFactory``: turns a connection into a boto3 session, and into the credentials
credproc prints. Users subclass it for their own federation (see the README).

The flow of :meth:`BaseSessionFactory.credentials`:

* a subclass that overrides :meth:`create_session` is trusted whole: its session's
  credentials are frozen and printed;
* otherwise the *basic session* (the connection's key pair, or boto3's default chain) either
  is the answer (no ``role_arn``) or only signs the STS call of the connection's
  ``assume_role_method`` - the output is then the assumed role's alone.
"""

from __future__ import annotations

import logging
from functools import cached_property
from typing import Any

import boto3
import botocore.session
from botocore import UNSIGNED
from botocore.config import Config
from botocore.credentials import DeferredRefreshableCredentials
from botocore.exceptions import BotoCoreError, ClientError

from credproc import methods, recursion
from credproc.connection import AwsConnection
from credproc.errors import ConfigError, CredprocError
from credproc.log import one_line
from credproc.methods import static
from credproc.protocol import Credentials


class BaseSessionFactory:
    """Create boto3 sessions for one connection.

    Public, stable attributes for subclasses: ``conn`` (the resolved connection, with
    ``conn_id``), ``extra_config`` (its extra as a dict), ``region_name``, ``config`` (the
    botocore Config for STS), ``log`` (a logger writing to stderr) and ``basic_session``.
    Override :meth:`_create_basic_session` to supply the initial credentials, or
    :meth:`create_session` to supply the final session yourself.
    """

    def __init__(self, conn: AwsConnection, region_name: str | None = None, config: Config | None = None):
        self.conn = conn
        self.region_name = region_name or conn.region_name
        self.config = config if config is not None else Config()
        self.log = logging.getLogger("credproc.factory")

    @property
    def extra_config(self) -> dict[str, Any]:
        return self.conn.extra_config

    @property
    def role_arn(self) -> str | None:
        return self.conn.role_arn

    def _get_region_name(self) -> str | None:
        return self.region_name

    @cached_property
    def basic_session(self) -> boto3.session.Session:
        """The session holding the initial credentials (built once)."""
        return self._create_basic_session(session_kwargs=dict(self.conn.session_kwargs))

    def _create_basic_session(self, session_kwargs: dict[str, Any]) -> boto3.session.Session:
        """A session with the connection's key pair, else one over boto3's default chain."""
        conn = self.conn
        kwargs = {k: v for k, v in session_kwargs.items()
                  if k not in ("aws_access_key_id", "aws_secret_access_key", "aws_session_token")}
        kwargs["region_name"] = self.region_name
        if conn.profile_name:
            kwargs["profile_name"] = conn.profile_name
        if conn.aws_access_key_id:
            kwargs["aws_access_key_id"] = conn.aws_access_key_id
            kwargs["aws_secret_access_key"] = conn.aws_secret_access_key
            kwargs["aws_session_token"] = conn.aws_session_token
        session = boto3.session.Session(**kwargs)
        if not conn.aws_access_key_id:
            static.guard_profile(session, conn.conn_id)
        return session

    def sts_client(self, session: boto3.session.Session | None = None, *, unsigned: bool = False):
        """An STS client on the connection's endpoint, TLS settings and Config."""
        config = self.config.merge(Config(signature_version=UNSIGNED)) if unsigned else self.config
        return (session or self.basic_session).client(
            "sts", region_name=self.region_name, endpoint_url=self.conn.endpoint_url,
            verify=self.conn.verify, config=config,
        )

    def create_session(self) -> boto3.session.Session:
        """A session with the connection's final credentials (the assumed role's, if any).

        The role's credentials are fetched when first used, and refreshed by botocore when
        they near expiry, so the session also serves long-lived Python code.
        """
        if not self.conn.role_arn:
            return self.basic_session
        botocore_session = botocore.session.get_session()
        credentials = DeferredRefreshableCredentials(
            refresh_using=lambda: _metadata(self._role_credentials()),
            method=f"credproc-{self.conn.assume_role_method}",
        )
        botocore_session._credentials = credentials  # the documented way is private in botocore too
        return boto3.session.Session(botocore_session=botocore_session, region_name=self.region_name)

    def _role_credentials(self) -> Credentials:
        return methods.fetch(self.conn.assume_role_method, self)

    def credentials(self) -> Credentials:
        """What credproc prints for this connection: one fetch, frozen."""
        cls = type(self)
        custom = (cls.create_session is not BaseSessionFactory.create_session
                  or cls._create_basic_session is not BaseSessionFactory._create_basic_session)
        supplier = f"session factory {cls.__module__}.{cls.__qualname__}" if custom else None
        try:
            if cls.create_session is not BaseSessionFactory.create_session:
                return static.freeze(self.create_session(), self.conn.conn_id, supplier)
            if self.conn.role_arn:
                return self._role_credentials()
            return static.freeze(self.basic_session, self.conn.conn_id, supplier)
        except (BotoCoreError, ClientError) as e:
            raise translate(e, self.conn) from e


def _metadata(credentials: Credentials) -> dict[str, Any]:
    """botocore's refreshable-credentials metadata for a fetched Credentials."""
    return {
        "access_key": credentials.access_key_id,
        "secret_key": credentials.secret_access_key,
        "token": credentials.session_token,
        "expiry_time": credentials.expiration.isoformat(),
        "account_id": credentials.account_id,
    }


def translate(error: Exception, conn: AwsConnection) -> CredprocError:
    """One line that says what went wrong, for a botocore exception; exit 2 for bad settings."""
    from botocore import exceptions as bx

    prefix = f"connection {conn.conn_id!r}"
    if isinstance(error, ClientError):
        info = error.response.get("Error", {})
        operation = getattr(error, "operation_name", "STS")
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return CredprocError(f"{prefix}: STS {operation} failed: {info.get('Code', 'error')}"
                             f"{f' (HTTP {status})' if status else ''}: {one_line(info.get('Message', ''))}")
    if isinstance(error, bx.ParamValidationError):
        return ConfigError(f"{prefix} ({conn.origin}): {one_line(error)}")
    if isinstance(error, (bx.ProfileNotFound, bx.InvalidConfigError, bx.UnknownRegionError,
                          bx.InvalidRetryConfigurationError, bx.InvalidRegionError)):
        return ConfigError(f"{prefix} ({conn.origin}): {one_line(error)}")
    if isinstance(error, bx.CredentialRetrievalError) and "credproc: error:" in str(error):
        # A profile's credential_process ran credproc (another connection, or a loop the
        # child caught): pass its own message on, not botocore's wrapping of it.
        child = one_line(str(error).rsplit("credproc: error:", 1)[1].strip())
        kind = ConfigError if recursion.LOOP_MARKER in child else CredprocError
        return kind(f"{prefix}: the credential_process of its AWS profile failed: {child}")
    if isinstance(error, bx.NoCredentialsError):
        return CredprocError(f"{prefix}: no AWS credentials to sign the STS call; boto3's chain tried "
                             f"{static.CHAIN}")
    if isinstance(error, bx.NoRegionError):
        return ConfigError(f"{prefix} ({conn.origin}): no region: set region_name, or AWS_REGION")
    if isinstance(error, (bx.ConnectTimeoutError, bx.ReadTimeoutError, bx.EndpointConnectionError)):
        return CredprocError(f"{prefix}: STS did not answer: {one_line(error)}")
    return CredprocError(f"{prefix}: {type(error).__name__}: {one_line(error)}")


# -- choosing a factory --------------------------------------------------------------------

ENTRY_POINT_GROUP = "credproc.session_factories"


def load_factory(spec: str) -> type[BaseSessionFactory]:
    """The factory class named by ``package.module.ClassName``, ``module:ClassName``, or
    the short name of an entry point in the ``credproc.session_factories`` group."""
    import importlib

    if ":" in spec:
        module_name, _, attribute = spec.partition(":")
    elif "." in spec:
        module_name, _, attribute = spec.rpartition(".")
    else:
        return _entry_point_factory(spec)
    if not module_name or not attribute:
        raise ConfigError(f"session factory {spec!r}: expected package.module.ClassName or module:ClassName")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ConfigError(f"session factory {spec!r}: cannot import module {module_name!r}: "
                          f"{type(e).__name__}: {e}") from e
    except Exception as e:  # the module itself raised while being imported
        raise ConfigError(f"session factory {spec!r}: importing module {module_name!r} failed: "
                          f"{type(e).__name__}: {one_line(e)}") from e
    target = module
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ConfigError(f"session factory {spec!r}: module {module_name!r} has no {attribute!r}") from None
    return _checked(spec, target)


def _entry_point_factory(name: str) -> type[BaseSessionFactory]:
    from importlib.metadata import entry_points

    found = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
    if not found:
        known = sorted(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))
        raise ConfigError(f"session factory {name!r}: not an import path (package.module.ClassName) and no "
                          f"installed package registers it in entry point group {ENTRY_POINT_GROUP!r}"
                          f"{f' (registered: {known})' if known else ''}")
    try:
        target = found[0].load()
    except Exception as e:
        raise ConfigError(f"session factory {name!r}: entry point {found[0].value!r} does not load: "
                          f"{type(e).__name__}: {one_line(e)}") from e
    return _checked(name, target)


def _checked(spec: str, target: object) -> type[BaseSessionFactory]:
    if not (isinstance(target, type) and issubclass(target, BaseSessionFactory)):
        raise ConfigError(f"session factory {spec!r} is not a subclass of credproc.BaseSessionFactory")
    return target
