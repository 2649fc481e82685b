"""``BaseSessionFactory``: turns a connection into a boto3 session, and into the credentials
credproc prints. Users subclass it for their own federation (README, "Writing a session
factory"; a working one is in ``examples/factory/``).

The flow of :meth:`BaseSessionFactory.credentials`:

* a subclass that overrides :meth:`~BaseSessionFactory.create_session` is trusted whole: its
  session's credentials are frozen and printed;
* otherwise the *basic session* (the connection's key pair, boto3's default chain, or what a
  subclass's :meth:`~BaseSessionFactory._create_basic_session` returns) either is the answer
  (no ``role_arn``) or only signs the STS call of the connection's ``assume_role_method``:
  the output is then the assumed role's alone.

Which factory a run uses is decided in ``credproc.job`` (``--session-factory``, the
connection's ``session_factory`` key, ``CREDPROC_SESSION_FACTORY``, the config file's
top-level ``session_factory``); :func:`load_factory` imports it.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from typing import TYPE_CHECKING, Any

import boto3
import botocore.session
from botocore import UNSIGNED
from botocore.config import Config
from botocore.credentials import DeferredRefreshableCredentials
from botocore.exceptions import BotoCoreError, ClientError

from credproc import methods, recursion, sensitive, sso
from credproc.connection import AwsConnection
from credproc.errors import ConfigError, CredprocError
from credproc.log import add_secret, one_line
from credproc.protocol import Credentials
from credproc.session import freeze, session_credentials
from credproc.sts import translate

if TYPE_CHECKING:
    from mypy_boto3_sts.client import STSClient  # a stub-only package: never imported at run time


class BaseSessionFactory:
    """Create boto3 sessions for one connection; subclass it to plug in your own federation.

    credproc builds one instance per fetch, ``Factory(conn, config=config)``, and prints
    :meth:`credentials`. The public, stable interface for subclasses:

    Attributes and helpers you may read:

    * ``self.conn``: the resolved connection (``conn_id``, ``origin``, ``login``,
      ``password``, ``role_arn``, ``region_name``, ``session_kwargs``, ...);
    * ``self.extra_config``: the connection's extra as a dict, including keys credproc does
      not know (they are your factory's own settings, and are not warned about);
    * ``self.region_name`` and ``self._get_region_name()``: the connection's region (may be None);
    * ``self.config``: the ``botocore.config.Config`` for STS (retries, timeouts, proxies);
    * ``self.log``: a ``logging.Logger`` that writes to stderr (``--debug`` shows DEBUG and
      INFO; WARNING and above always show). Never print to stdout: it carries the credentials.
      (credproc sends stdout to stderr while a factory runs, but the logger is the way.)
    * ``self.basic_session``: the session from :meth:`_create_basic_session`, built once;
    * ``self.secret(field)``: a secret of the connection (see below).

    Methods you may override:

    * ``_create_basic_session(self, session_kwargs) -> boto3.session.Session``: the session
      holding the *initial* credentials, e.g. a botocore ``RefreshableCredentials`` from
      your federation call put on a botocore session. With a ``role_arn`` in the connection,
      credproc still assumes the role, signing with this session; without one, this
      session's credentials are the output. ``super()._create_basic_session(session_kwargs)``
      is credproc's own (the key pair, else boto3's default chain).
    * ``create_session(self) -> boto3.session.Session``: the *final* session; credproc then
      does nothing else (no assume-role unless you call ``super().create_session()``).

    What credproc does with the session: resolves its credentials once, freezes them, prints
    them and caches them until shortly before their expiry (``RefreshableCredentials`` carry
    one; plain ``Credentials`` are long-term keys, printed without ``Expiration`` and never
    cached). A session without credentials, or something that is not a
    ``boto3.session.Session``, is a configuration error (exit 2); an exception your code
    raises is a failure (exit 1) showing its type and message, with the traceback under
    ``--debug``.

    Secrets. A factory reads a secret with ``self.secret("federation.password")`` rather
    than from ``extra_config`` directly: the value then comes from the connection's
    definition if it is there, else from the OS keyring (``credproc secret set ID --field
    federation.password``), so it need not sit in a config file; and it is registered at
    once so that no log line or error message can show it. :meth:`_stored_secret` is the one
    place that consults the keyring.
    """

    def __init__(self, conn: AwsConnection, region_name: str | None = None, config: Config | None = None):
        self.conn = conn
        self.region_name = region_name or conn.region_name
        self.config = config if config is not None else Config()
        cls = type(self)
        self.log = logging.getLogger("credproc.factory" if cls is BaseSessionFactory
                                     else f"credproc.factory.{cls.__module__}.{cls.__qualname__}")
        # connection.resolve registered these already; a factory built on an AwsConnection made
        # directly (its public constructor) must mask its own secrets (federation.password) too.
        sensitive.register(conn.extra_config)

    @property
    def extra_config(self) -> dict[str, Any]:
        return self.conn.extra_config

    @property
    def role_arn(self) -> str | None:
        return self.conn.role_arn

    def _get_region_name(self) -> str | None:
        return self.region_name

    # -- secrets ----------------------------------------------------------------------------

    def secret(self, field: str, *, required: bool = True) -> str | None:
        """A secret of this connection: its value in the definition, else in the OS keyring.

        ``field`` is ``login`` or ``password`` (the connection's own fields), or a key of the
        extra; a dotted name reaches into a table (``"federation.password"`` is
        ``extra_config["federation"]["password"]``). A missing secret is a ConfigError
        naming the connection and the field, unless ``required=False`` (then None, also when
        the keyring cannot be used).
        """
        value = self._definition_secret(field)
        if value is None:
            try:
                value = self._stored_secret(field)
            except ConfigError:  # an unusable keyring: an error only for a secret that is required
                if required:
                    raise
        if value is None:
            if not required:
                return None
            raise self.conn.error(f"no secret {field!r}: put it in the definition, or in the OS keyring "
                                  f"with `credproc secret set {self.conn.conn_id} --field {field}`")
        add_secret(value)
        return value

    def _definition_secret(self, field: str) -> str | None:
        if field in ("login", "password"):
            return getattr(self.conn, field)
        node: Any = self.extra_config
        for part in field.split("."):
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        if node is None or node == "":
            return None
        if not isinstance(node, str):
            raise self.conn.error(f"{field} must be a string, not {type(node).__name__}")
        return node

    def _stored_secret(self, field: str) -> str | None:
        """The secret ``field`` kept outside the definition, or None: the one place to extend.

        Today: the OS keyring through ``credproc.keyring_store`` (service ``credproc``, user
        ``<conn id>:<field>``), asked on a cache miss only, when the definition lacks the
        field. An unusable keyring is a ConfigError saying how to choose a backend.
        """
        try:
            from credproc import keyring_store
        except ModuleNotFoundError as e:  # a credproc without keyring support
            if e.name != "credproc.keyring_store":
                raise
            return None
        try:
            return keyring_store.lookup(self.conn.conn_id, field)
        except ConfigError as e:
            raise self.conn.error(f"no {field!r} in the definition, and the OS keyring cannot be asked: "
                                  f"{_after_conn(e, self.conn.conn_id)}") from None

    # -- sessions ---------------------------------------------------------------------------

    @cached_property
    def basic_session(self) -> boto3.session.Session:
        """The session holding the initial credentials (built once)."""
        # Positional: an override may name its parameter differently.
        return self._create_basic_session(dict(self.conn.session_kwargs))

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
            recursion.guard_session(session, conn.conn_id)
        return session

    def sts_client(self, session: boto3.session.Session | None = None, *, unsigned: bool = False) -> STSClient:
        """An STS client on the connection's STS endpoint (``service_config.sts.endpoint_url``,
        else none: botocore resolves it, as in Airflow), TLS settings and Config.

        Unsigned and without a session, the client resolves no credentials at all: its session
        has only the connection's region and profile settings. (Not the basic session, which
        refuses an AWS profile that runs credproc for this very connection: a loop only when
        credentials are resolved, so ``AWS_PROFILE=p`` with ``p`` running this connection
        keeps working for SAML and web identity.)"""
        config = self.config.merge(Config(signature_version=UNSIGNED)) if unsigned else self.config
        if session is None:
            session = (boto3.session.Session(profile_name=self.conn.profile_name, region_name=self.region_name)
                       if unsigned else self.basic_session)
        # config_kwargs.region_name outranks the connection's region, as in Airflow (whose STS
        # client takes its region from the Config first, then from the session).
        region = getattr(self.config, "region_name", None) or self.region_name
        return session.client("sts", region_name=region, endpoint_url=self.conn.sts_endpoint_url,
                              verify=self.conn.verify, config=config)

    @cached_property
    def mfa_credentials(self) -> Credentials:
        """The MFA session of the basic session's keys and the connection's ``mfa_serial``
        (``credproc.methods.mfa``): cached, else opened with a code asked once."""
        from credproc.methods import mfa

        conn_id = self.conn.conn_id
        source = freeze(self.basic_session, conn_id)
        return mfa.session(self.conn, source, lambda: self.sts_client(self.basic_session))

    def _signing_session(self) -> boto3.session.Session:
        """What signs the role's STS call: the MFA session when the connection has a device,
        else the basic session. The MFA session's keys sit in a session of the connection's
        profile, so that the profile's settings (its STS endpoint, say) apply as they do to
        the basic session's call."""
        if not self.conn.mfa_serial:
            return self.basic_session
        opened = self.mfa_credentials
        return boto3.session.Session(aws_access_key_id=opened.access_key_id,
                                     aws_secret_access_key=opened.secret_access_key,
                                     aws_session_token=opened.session_token, region_name=self.region_name,
                                     profile_name=self.conn.profile_name)

    def method_context(self) -> methods.Context:
        """What the connection's ``assume_role_method`` gets to make its STS call."""
        return methods.Context(
            conn=self.conn,
            log=self.log,
            basic_session=lambda: self.basic_session,
            sts_client=lambda: self.sts_client(self._signing_session()),
            unsigned_sts_client=lambda: self.sts_client(unsigned=True),
        )

    def create_session(self) -> boto3.session.Session:
        """A session with the connection's final credentials (the assumed role's, if any).

        The role's credentials are fetched when first used, and refreshed by botocore when
        they near expiry, so the session also serves long-lived Python code.
        """
        if not self.conn.role_arn:
            return self._signing_session()
        botocore_session = botocore.session.get_session()
        credentials = DeferredRefreshableCredentials(
            refresh_using=lambda: _metadata(self._role_credentials()),
            method=f"credproc-{self.conn.assume_role_method}",
        )
        # The documented way is private in botocore too, so its stubs do not declare the attribute.
        botocore_session._credentials = credentials  # type: ignore[attr-defined]
        return boto3.session.Session(botocore_session=botocore_session, region_name=self.region_name)

    def _role_credentials(self) -> Credentials:
        return methods.fetch(self.conn.assume_role_method or "assume_role", self.method_context())

    # -- what credproc prints ---------------------------------------------------------------

    def credentials(self) -> Credentials:
        """What credproc prints for this connection: one fetch, frozen."""
        cls = type(self)
        own_session = cls.create_session is not BaseSessionFactory.create_session
        own_basic = cls._create_basic_session is not BaseSessionFactory._create_basic_session
        conn_id = self.conn.conn_id
        supplier = f"session factory {_class_path(cls)}" if own_session or own_basic else None
        try:
            if own_session:
                with self._user_code():
                    return freeze(self.create_session(), conn_id, supplier)
            if own_basic:
                with self._user_code():
                    # Resolving the credentials runs the factory's refresh function, if any.
                    session_credentials(self.basic_session, conn_id, supplier)
                    if not self.conn.role_arn and not self.conn.mfa_serial:
                        return freeze(self.basic_session, conn_id, supplier)
            if self.conn.role_arn:
                return self._role_credentials()
            if self.conn.mfa_serial:
                return self.mfa_credentials
            return freeze(self.basic_session, conn_id)
        except (BotoCoreError, ClientError) as e:
            raise self._translate(e) from e

    def _translate(self, error: BotoCoreError | ClientError) -> CredprocError:
        """One line for a botocore error: an SSO profile's own (naming the profile to log in
        with), else the STS call's."""
        session: Any = self.__dict__.get("basic_session")  # built, unless the error came before it was
        try:
            # boto3 keeps its botocore session private; botocore's full_config is public. A
            # subclass's basic session may be anything: then there is no profile to name.
            profiles = session._session.full_config.get("profiles", {})
            profile = session.profile_name
        except (AttributeError, BotoCoreError):
            profiles, profile = {}, None
        found = sso.translate(error, self.conn.conn_id, profiles, profile)
        return found if found is not None else translate(error, self.conn)

    @contextmanager
    def _user_code(self) -> Iterator[None]:
        """Turn an exception from a subclass's own code into one line naming the factory
        (exit 1). credproc's own errors pass as they are."""
        try:
            yield
        except CredprocError:
            raise
        except Exception as e:
            debug = logging.getLogger("credproc").isEnabledFor(logging.DEBUG)
            hint = "" if debug else " (run with --debug for the traceback)"
            raise CredprocError(f"connection {self.conn.conn_id!r}: session factory {_class_path(type(self))} "
                                f"failed: {type(e).__name__}: {one_line(e)}{hint}") from e


def _metadata(credentials: Credentials) -> dict[str, Any]:
    """botocore's refreshable-credentials metadata for a fetched Credentials."""
    if credentials.expiration is None:  # cannot happen: sts.credentials_of requires an Expiration
        raise CredprocError("the assumed role's credentials came without an expiry, which botocore needs "
                            "in order to refresh them")
    return {
        "access_key": credentials.access_key_id,
        "secret_key": credentials.secret_access_key,
        "token": credentials.session_token,
        "expiry_time": credentials.expiration.isoformat(),
        "account_id": credentials.account_id,
    }


def _class_path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _after_conn(error: Exception, conn_id: str) -> str:
    text = str(error)
    prefix = f"connection {conn_id!r}: "
    return text[len(prefix):] if text.startswith(prefix) else text


# -- choosing a factory --------------------------------------------------------------------

ENTRY_POINT_GROUP = "credproc.session_factories"


def load_factory(spec: str, *, named_by: str | None = None) -> type[BaseSessionFactory]:
    """The factory class named by ``package.module.ClassName``, ``module:ClassName`` (the
    part after ``:`` may be dotted, for a nested class), or the short name of an entry point
    in the ``credproc.session_factories`` group (a name without ``.`` or ``:``).

    It is imported from the environment credproc runs in: its own virtualenv's packages and
    ``PYTHONPATH``. Every failure is a ConfigError (exit 2) whose message starts with
    ``session factory 'SPEC'`` and, given ``named_by``, says where the name was given.
    """
    import importlib

    what = f"session factory {spec!r}" + (f" (named by {named_by})" if named_by else "")
    if ":" in spec:
        module_name, _, attribute = spec.partition(":")
    elif "." in spec:
        module_name, _, attribute = spec.rpartition(".")
    else:
        return _entry_point_factory(spec, what)
    if not module_name or not attribute or ":" in attribute:
        raise ConfigError(f"{what}: expected package.module.ClassName, module:ClassName or an "
                          f"entry point name")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        missing = e.name or ""
        if missing and (module_name == missing or module_name.startswith(missing + ".")):
            where = (f"; it must be installed for {sys.executable} or be on PYTHONPATH "
                     f"(PYTHONPATH={_pythonpath()})")
        else:  # the module exists but imports something that does not
            where = ""
        raise ConfigError(f"{what}: cannot import module {module_name!r}: {type(e).__name__}: "
                          f"{one_line(e)}{where}") from e
    except Exception as e:  # the module itself raised while being imported
        raise ConfigError(f"{what}: cannot import module {module_name!r}: {type(e).__name__}: "
                          f"{one_line(e)}") from e
    target: Any = module
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ConfigError(f"{what}: module {module_name!r} ({getattr(module, '__file__', None) or 'built in'}) "
                              f"has no attribute {attribute!r}") from None
    return _checked(what, target)


def _entry_point_factory(name: str, what: str) -> type[BaseSessionFactory]:
    from importlib.metadata import entry_points

    registered = list(entry_points(group=ENTRY_POINT_GROUP))
    found = {ep.value: ep for ep in registered if ep.name == name}  # a package seen twice counts once
    if not found:
        known = ", ".join(sorted({ep.name for ep in registered}))
        raise ConfigError(f"{what}: not an import path (package.module.ClassName) and no installed package "
                          f"registers it in entry point group {ENTRY_POINT_GROUP!r}"
                          f"{f' (registered: {known})' if known else ''}")
    if len(found) > 1:
        raise ConfigError(f"{what}: several packages register this name in {ENTRY_POINT_GROUP!r}: "
                          f"{', '.join(sorted(found))}; name the class by its import path instead")
    [entry] = found.values()
    try:
        target = entry.load()
    except Exception as e:
        raise ConfigError(f"{what}: entry point {entry.value!r} does not load: "
                          f"{type(e).__name__}: {one_line(e)}") from e
    return _checked(f"{what} (entry point {entry.value!r})", target)


def _checked(what: str, target: object) -> type[BaseSessionFactory]:
    if isinstance(target, type) and issubclass(target, BaseSessionFactory):
        return target
    if isinstance(target, type):
        kind = f"the class {_class_path(target)}"
    elif isinstance(target, BaseSessionFactory):
        kind = "an instance, not the class"
    else:
        kind = f"a {type(target).__name__}"
    raise ConfigError(f"{what} is not a subclass of credproc.BaseSessionFactory: it is {kind}")


def _pythonpath() -> str:
    import os

    return os.environ.get("PYTHONPATH") or "unset"
