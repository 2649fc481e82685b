"""``credproc secret set ID`` and ``credproc secret delete ID``: a connection's secret in
the OS keyring (see ``credproc.keyring_store``), so no plain file or variable holds it.

The secret is read from the terminal without echo, or as one line from stdin when stdin is
not a terminal (``pass show aws/prod | credproc secret set prod``); never from the command
line, where other users' ``ps`` would see it. The keyring backend is checked before anything
is read, so a headless machine fails at once, naming PYTHON_KEYRING_BACKEND.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from credproc import keyring_store, sources
from credproc.commands import _common
from credproc.commands._parser import add_command
from credproc.errors import ConfigError, CredprocError
from credproc.log import warn
from credproc.resolution import Resolution

EPILOG = """\
examples:
  credproc secret set prod                            prompts for the secret key (no echo)
  credproc secret set prod --field aws_session_token
  pass show aws/prod | credproc secret set prod       from a password manager
  credproc secret delete prod

fields: "password" (default) completes a definition with a login (the access key id) and no
password; "aws_secret_access_key" one whose extra has aws_access_key_id and no secret;
"aws_session_token" is added to either. Other names (e.g. federation.password) are read only
by a session factory, with self.secret(FIELD) or credproc.keyring_store.lookup(ID, FIELD).
Entries are stored under service "credproc", user "<ID>:<field>". Setting or deleting a
secret clears the connection's cache.

without a desktop keyring (servers, containers, CI), choose a backend explicitly:
  PYTHON_KEYRING_BACKEND=keyrings.alt.file.PlaintextKeyring   (pip install keyrings.alt;
      an unencrypted file, $XDG_DATA_HOME/python_keyring/keyring_pass.cfg)
or run a Secret Service (gnome-keyring-daemon) in the session.
"""

FIELD_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


def add_parser(subparsers: Any, common: Any) -> None:
    # --debug belongs to the actions, not to the group
    parser = add_command(subparsers, None, "secret", help="keep a connection's secret in the OS keyring",
                         description="Store or delete a connection's secret in the OS keyring.",
                         epilog=EPILOG)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", parser_class=type(parser))
    actions.required = True
    for name, text in (("set", "store a secret (read from the terminal without echo, or from stdin)"),
                       ("delete", "remove a stored secret")):
        action = actions.add_parser(name, parents=[common], help=text, description=text[0].upper() + text[1:] + ".",
                                    epilog=EPILOG, formatter_class=parser.formatter_class)
        action.add_argument("conn_id", metavar="ID", help="the connection id")
        action.add_argument("--field", default="password", metavar="FIELD",
                            help="which secret: password (default), aws_secret_access_key, aws_session_token, "
                                 "or a name a session factory reads")
        action.set_defaults(run=run_set if name == "set" else run_delete)


def _check_field(field: str) -> str:
    if not field or not set(field) <= FIELD_CHARS:
        raise ConfigError(f"--field {field!r}: use letters, digits, '_', '.' or '-'")
    return field


def read_secret(prompt: str) -> str:
    """The secret, without echo from the terminal, else one line of stdin."""
    if sys.stdin is not None and sys.stdin.isatty():
        import getpass

        try:
            value = getpass.getpass(prompt)
        except EOFError:
            value = ""
    else:
        line = sys.stdin.readline() if sys.stdin is not None else ""
        value = line[:-1] if line.endswith("\n") else line
        value = value[:-1] if value.endswith("\r") else value
    return value


def _advice(conn_id: str, field: str) -> None:
    """Warn when the stored secret would not be used by the definition as it stands."""
    try:
        raw = Resolution(conn_id).raw()
    except ConfigError:
        return  # `credproc show` will say what is wrong with it
    if raw is None:
        if conn_id != sources.DEFAULT_CONN_ID:
            warn(f"connection {conn_id!r} is not defined yet; the secret is used once a definition "
                 f"has {'a login' if field == 'password' else 'an aws_access_key_id'} without it")
        return
    table = raw.fields if field in ("password", "login") else raw.extra
    if table.get(field):
        warn(f"connection {conn_id!r} ({raw.origin}) already has {field}: the definition wins, the keyring's "
             "value is used only when the definition has none")
    elif field == "password" and not raw.fields.get("login"):
        warn(f"connection {conn_id!r} ({raw.origin}) has no login: the keyring password is used only with a "
             "login (the access key id)")
    elif field == "aws_secret_access_key" and not raw.extra.get("aws_access_key_id"):
        warn(f"connection {conn_id!r} ({raw.origin}) has no aws_access_key_id in its extra: the keyring "
             "aws_secret_access_key is used only with one")
    elif field not in keyring_store.AUTO_FIELDS:
        warn(f"field {field!r} is read only by a session factory: self.secret({field!r}) in a "
             "BaseSessionFactory subclass, or credproc.keyring_store.lookup(conn_id, field)")


def _clear_cache(conn_id: str) -> int:
    from credproc.commands import cachecmd

    try:
        return len(cachecmd.clear(os.environ, conn_id))
    except CredprocError as e:
        warn(f"the cached credentials of {conn_id!r} were not cleared: {e}")
        return 0


def run_set(options: Any) -> int:
    conn_id = _common.check_id(options.conn_id)
    field = _check_field(options.field)
    found = keyring_store.backend()  # before the user types anything
    name = keyring_store.backend_name(found)
    value = read_secret(f"{field} of connection {conn_id} (input hidden): ")
    if not value:
        raise ConfigError(f"connection {conn_id!r}: no {field} given (an empty line); nothing stored")
    keyring_store.store(conn_id, field, value)
    cleared = _clear_cache(conn_id)
    _common.out(f"stored {field} of connection {conn_id!r} in the keyring ({name}), "
                f"service {keyring_store.SERVICE!r}, user {keyring_store.username(conn_id, field)!r}"
                + (f"; cleared {cleared} cached entr{'y' if cleared == 1 else 'ies'}" if cleared else ""))
    if name.startswith("keyrings.alt.file.Plaintext"):
        warn(f"{name} keeps secrets unencrypted in {getattr(found, 'file_path', 'a file')}")
    _advice(conn_id, field)
    return 0


def run_delete(options: Any) -> int:
    conn_id = _common.check_id(options.conn_id)
    field = _check_field(options.field)
    if not keyring_store.delete(conn_id, field):
        raise CredprocError(f"connection {conn_id!r}: no {field} stored in the keyring "
                            f"(service {keyring_store.SERVICE!r}, user {keyring_store.username(conn_id, field)!r})")
    cleared = _clear_cache(conn_id)
    _common.out(f"deleted {field} of connection {conn_id!r} from the keyring"
                + (f"; cleared {cleared} cached entr{'y' if cleared == 1 else 'ies'}" if cleared else ""))
    return 0
