"""One way from a connection id to credentials, shared by the main job and every command.

A :class:`Resolution` is one connection id as this run sees it - the command-line choices
(``--session-factory``, ``--profile``) and the environment - and answers, each at most once:

* ``definition``: where the connection is defined and its raw text (``sources.locate``);
* ``bucket``: its place in the cache, keyed on that text (``cache.identity``);
* :meth:`recorded_slot` and :meth:`entry`: the entry for this environment's values of the
  variables the last fetch recorded (``credproc.depends``), read once;
* :meth:`raw`, :meth:`factory_choice`, :meth:`connection`: the parsed fields, the session
  factory in use, the connection with its meaning (secrets registered, keyring asked as
  the caller says);
* :meth:`factory` and :meth:`credentials`: what the lock holder of a miss runs.

The first three are the cache hit: this module imports only ``os``, ``cache`` and
``sources`` until a miss asks for more, and everything heavier is imported inside the
methods that need it.
"""

import os

from credproc import cache, sources

TYPE_CHECKING = False  # typing itself costs a cache hit milliseconds
if TYPE_CHECKING:
    from collections.abc import Mapping

    from credproc.connection import AwsConnection
    from credproc.errors import ConfigError
    from credproc.factory import BaseSessionFactory
    from credproc.forms import RawConnection
    from credproc.protocol import Credentials

# How a resolution completes a half key pair from the OS keyring (credproc.keyring_store):
KEYRING_FILL = "fill"          # ask it, without a terminal; a failure is the run's error (the main job)
KEYRING_ASK = "ask"            # ask it, with a terminal; a failure is noted in keyring_problem (show)
KEYRING_ASSUME = "assume"      # never ask: take the missing half to be stored (list, check)


class Resolution:
    """One connection id, resolved as far as a caller asks and no further."""

    def __init__(self, conn_id: str, *, session_factory: str | None = None, profile: str | None = None,
                 environ: "Mapping[str, str] | None" = None, config: sources.ConfigFile | None = None):
        self.conn_id = conn_id
        self.environ = os.environ if environ is None else environ
        self.session_factory_flag = session_factory
        self.profile = profile
        self.definition = sources.locate(conn_id, self.environ, config)
        # The flag is part of the key, like CREDPROC_SESSION_FACTORY and the definition's own
        # session_factory (in its text).
        key = cache.identity(self.definition, session_factory, self.environ)
        self.bucket = cache.Bucket(cache.cache_dir(self.environ), key, conn_id)
        self._slot: cache.Slot | None = None
        self._slot_read = False
        self._recorded: tuple[str, ...] | None = None  # the variables the bucket's record names
        self._entry: cache.Entry | None = None
        self._entry_read = False
        self._raw: RawConnection | None = None
        self._raw_parsed = False
        self._conn: AwsConnection | None = None
        self.keyring_fields: list[str] = []  # fields whose value came (or would come) from the keyring
        self.keyring_problem = ""            # why the keyring could not complete them (KEYRING_ASK)

    # -- the cache hit ---------------------------------------------------------------------

    def recorded_slot(self, *, reread: bool = False) -> cache.Slot | None:
        """The slot of this environment's entry, by the bucket's record of the variables its
        entries depend on; None before any fetch has recorded them. ``reread``: read the
        record again (another process may have written it since)."""
        if reread or not self._slot_read:
            self._recorded = self.bucket.variables()
            self._slot = None if self._recorded is None else self.bucket.slot(self.environ, self._recorded)
            self._slot_read = True
        return self._slot

    def entry(self, *, reread: bool = False) -> cache.Entry | None:
        """The cached entry as read the first time it was asked for, or again with ``reread``."""
        if reread or not self._entry_read:
            slot = self.recorded_slot(reread=reread)
            self._entry, self._entry_read = (slot.read() if slot is not None else None), True
        return self._entry

    # -- a miss: what the definition means -----------------------------------------------

    @property
    def undefined(self) -> bool:
        """Known without parsing: no variable, no config file, and not the default id
        (which means boto3's chain)."""
        return self.definition.kind == "none" and self.conn_id != sources.DEFAULT_CONN_ID

    def raw(self) -> "RawConnection | None":
        """The connection's fields as written, parsed once; None when nothing defines it."""
        if not self._raw_parsed:
            from credproc import forms

            self._raw, self._raw_parsed = forms.parse(self.definition), True
        return self._raw

    def factory_choice(self) -> tuple[str | None, str]:
        """The session factory in use and where it was named, highest first:
        ``--session-factory``, the connection's ``session_factory`` key,
        ``CREDPROC_SESSION_FACTORY``, the config file's top-level ``session_factory`` (which
        applies to the connections of that file). ``(None, "")`` is credproc's own
        ``BaseSessionFactory``."""
        from credproc import forms
        from credproc.errors import ConfigError

        raw = self.raw()
        definition = self.definition
        file_settings = raw.file_settings if raw is not None else forms.file_settings(definition)
        origin = raw.origin if raw is not None else definition.where
        candidates = (
            (self.session_factory_flag, "--session-factory"),
            (raw.extra.get("session_factory") if raw else None, f"session_factory in {origin}"),
            (self.environ.get("CREDPROC_SESSION_FACTORY"), "CREDPROC_SESSION_FACTORY"),
            (file_settings.get("session_factory"), f"session_factory at the top of config file {definition.where}"),
        )
        for candidate, named_by in candidates:
            if candidate:
                if not isinstance(candidate, str):
                    raise ConfigError(f"connection {self.conn_id!r}: {named_by} must be a string such as "
                                      f"package.module.ClassName, not {type(candidate).__name__}")
                return candidate, named_by
        return None, ""

    def connection(self, keyring: str = KEYRING_FILL) -> "AwsConnection":
        """The connection with its meaning (``credproc.connection.resolve``), resolved once.

        ``keyring`` says how a half key pair is completed (see the KEYRING_ constants); a
        connection with a custom session factory never asks on its own, since its ``login``
        may well be a user name (the factory asks with ``self.secret``)."""
        if self._conn is not None:
            return self._conn
        from credproc import connection

        raw = self.raw()
        if raw is None:
            if self.conn_id != sources.DEFAULT_CONN_ID:
                raise self.not_defined()
            self._conn = connection.empty(self.conn_id, "not defined: boto3's default chain")
            return self._conn
        custom = self.factory_choice()[0] is not None
        if not custom:
            raw = self._completed(raw, keyring)
        self._conn = connection.resolve(raw, custom_factory=custom)
        return self._conn

    def _completed(self, raw: "RawConnection", keyring: str) -> "RawConnection":
        """A copy of ``raw`` with a half key pair completed from the keyring, as ``keyring`` says."""
        from credproc import keyring_store  # light: imports keyring only when a half pair asks
        from credproc.errors import ConfigError
        from credproc.forms import RawConnection

        raw = RawConnection(raw.conn_id, raw.origin, dict(raw.fields), dict(raw.extra), raw.file_settings)
        if keyring == KEYRING_FILL:
            self.keyring_fields = keyring_store.fill(raw)
        elif keyring == KEYRING_ASK:
            asked = [field for _, field in keyring_store.wanted(raw) if field != "aws_session_token"]
            try:
                self.keyring_fields = keyring_store.fill(raw, interactive=True)
            except ConfigError as e:
                self.keyring_problem = str(e)
            else:
                missing = [field for field in asked if field not in self.keyring_fields]
                if missing:
                    self.keyring_problem = (f"no {' or '.join(missing)} stored for {self.conn_id!r} "
                                            f"(credproc secret set {self.conn_id})")
        else:
            for table, field in keyring_store.wanted(raw):
                if field != "aws_session_token":
                    table[field] = "\0from-the-keyring"  # a stand-in, never shown nor sent
                    self.keyring_fields.append(field)
        return raw

    def not_defined(self) -> "ConfigError":
        from credproc.errors import ConfigError
        from credproc.forms import toml_key

        conn_id = self.conn_id
        config = self.definition.config
        if config is not None and config.exists:
            in_file = f"no [connections.{toml_key(conn_id)}] table in {self.definition.where}"
        else:
            in_file = f"no config file {self.definition.where}"
        if config is not None and config.airflow is not None:
            in_file += f", nor {conn_id!r} in the Airflow connections file {config.airflow.path}"
        return ConfigError(
            f"connection {conn_id!r} is not defined: no environment variable "
            f"{sources.credproc_variable(conn_id)} or {sources.airflow_variable(conn_id)}, and {in_file}"
        )

    # -- a miss: the fetch ---------------------------------------------------------------

    def variables(self) -> tuple[str, ...]:
        """The variables of the environment that this connection's credentials depend on
        (``credproc.depends``), from the parsed connection and the factory in use."""
        from credproc import depends
        from credproc.factory import BaseSessionFactory

        conn = self.connection()  # the fetch's own: the keyring is asked once, warnings said once
        factory_class = self._factory_class()
        return depends.variables(conn, None if factory_class is BaseSessionFactory else factory_class)

    def place(self) -> cache.Slot:
        """The slot a fetch writes: by the variables the parsed connection depends on,
        which it records for the hits to come when the record says otherwise."""
        variables = self.variables()
        if not self._slot_read:
            self.recorded_slot()
        if self._recorded != variables:
            import contextlib

            from credproc.cache.store import ensure_directory, write_variables

            with contextlib.suppress(OSError):  # the entry write says what is wrong
                ensure_directory(self.bucket)
            write_variables(self.bucket, variables)
        self._slot, self._slot_read = self.bucket.slot(self.environ, variables), True
        return self._slot

    def factory(self, *, custom: bool = True) -> "BaseSessionFactory":
        """The session factory for this connection, with the botocore Config of its STS calls.

        ``custom=False``: credproc's own ``BaseSessionFactory`` whatever the connection names
        (``credproc check`` uses it for GetCallerIdentity)."""
        from botocore.exceptions import BotoCoreError

        from credproc.clientconfig import make_config
        from credproc.factory import BaseSessionFactory
        from credproc.sts import translate

        conn = self.connection()
        factory_class = self._factory_class() if custom else BaseSessionFactory
        profile = self.profile or self.environ.get("AWS_PROFILE")
        try:
            config = make_config(conn, profile, self.environ)
        except BotoCoreError as e:
            raise translate(e, conn) from e
        return factory_class(conn, config=config)

    def _factory_class(self) -> "type[BaseSessionFactory]":
        """The class of the session factory in use (``factory_choice``), loaded."""
        from credproc.errors import ConfigError
        from credproc.factory import BaseSessionFactory, load_factory

        spec, named_by = self.factory_choice()
        if not spec:
            return BaseSessionFactory
        try:
            return load_factory(spec, named_by=named_by)
        except ConfigError as e:
            raise ConfigError(f"connection {self.conn_id!r}: {e}") from e

    def credentials(self) -> "Credentials":
        """Fetch: resolve the connection (asking the keyring for a half key pair), mark it as
        being resolved for any credproc this starts, and run its session factory."""
        from credproc import recursion

        self.connection(KEYRING_FILL)
        recursion.enter(self.conn_id)
        return self.factory().credentials()
