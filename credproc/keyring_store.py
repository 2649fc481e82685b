"""Secrets kept in the OS keyring instead of in connection definitions.

``credproc secret set prod`` stores the secret under service ``credproc``, user
``<conn id>:<field>`` (``prod:password``). When a definition gives half a key pair - a
``login`` without ``password``, or an extra ``aws_access_key_id`` without
``aws_secret_access_key`` - the main job asks the keyring for the missing half (and for an
``aws_session_token`` the definition lacks). A session factory can ask for any other field
with :func:`lookup`.

The keyring is asked on a cache miss only, never on a hit: ``import keyring`` alone costs
about 90 ms, and a locked keychain or a D-Bus that does not answer can stall for tens of
seconds. For the same reason the main job's calls run under a timeout, and a backend that
prompts gets no terminal input from the SDK's stdin. On a headless machine keyring has no
backend by default: every failure names ``PYTHON_KEYRING_BACKEND``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any

from credproc.errors import ConfigError, CredprocError
from credproc.log import add_secret, one_line, warn
from credproc.settings import as_table

if TYPE_CHECKING:
    from keyring.backend import KeyringBackend

    from credproc.forms import RawConnection

SERVICE = "credproc"
# The fields the main job completes from the keyring by itself.
AUTO_FIELDS = ("password", "aws_secret_access_key", "aws_session_token")
TIMEOUT_VARIABLE = "CREDPROC_KEYRING_TIMEOUT"
DEFAULT_TIMEOUT = 10.0  # seconds; botocore waits forever for us, Rust only 5 s

HINT = ("choose a backend with PYTHON_KEYRING_BACKEND, e.g. "
        "PYTHON_KEYRING_BACKEND=keyrings.alt.file.PlaintextKeyring (pip install keyrings.alt; "
        "an unencrypted file under $XDG_DATA_HOME), or run a Secret Service such as gnome-keyring")


def username(conn_id: str, field: str) -> str:
    """The keyring user name of one secret: ``<conn id>:<field>``."""
    return f"{conn_id}:{field}"


def backend() -> KeyringBackend:
    """The keyring backend in use, or a ConfigError saying how to choose a usable one.

    ``keyring.backends.fail.Keyring`` (no backend found) and ``null.Keyring`` (keyring
    disabled, which silently stores nothing) are refused here, before anyone types a secret.
    """
    try:
        import keyring
    except ImportError:
        raise ConfigError("the OS keyring cannot be used: the keyring package is not installed "
                          "(pip install 'credproc[keyring]')") from None
    try:
        found = keyring.get_keyring()
    except Exception as e:  # a PYTHON_KEYRING_BACKEND or keyringrc.cfg naming a missing class
        chosen = os.environ.get("PYTHON_KEYRING_BACKEND")
        what = f"PYTHON_KEYRING_BACKEND={chosen}" if chosen else "the configured keyring backend"
        raise ConfigError(f"{what} cannot be loaded: {type(e).__name__}: {e}; {HINT}") from None
    name = backend_name(found)
    if name in ("keyring.backends.fail.Keyring", "keyring.backends.null.Keyring"):
        reason = "keyring is disabled" if name.endswith("null.Keyring") else "no keyring backend is available"
        raise ConfigError(f"{reason} ({name}); {HINT}")
    return found


def backend_name(found: Any) -> str:
    cls = type(found)
    return f"{cls.__module__}.{cls.__qualname__}"


def lookup(conn_id: str, field: str) -> str | None:
    """The secret stored for ``field`` of connection ``conn_id``, or None.

    For session factories too: ``lookup(self.conn.conn_id, "idp_password")``. The value is
    registered as a secret at once, so no later message can show it. An unusable keyring is
    a ConfigError (exit 2) that says how to choose a backend; a keyring that does not answer
    within ``$CREDPROC_KEYRING_TIMEOUT`` seconds (default 10) is a CredprocError (exit 1).
    """
    return lookup_many(conn_id, [field])[field]


def lookup_many(conn_id: str, fields: list[str]) -> dict[str, str | None]:
    """Several fields of one connection in one go (one timeout for them all)."""

    def get() -> dict[str, str | None]:
        found = backend()
        return {field: found.get_password(SERVICE, username(conn_id, field)) for field in fields}

    values = _bounded(get, f"connection {conn_id!r}: reading {', '.join(fields)} from the keyring")
    for value in values.values():
        add_secret(value)
    return values


def store(conn_id: str, field: str, value: str) -> None:
    """Keep ``value`` in the keyring. Interactive: no timeout (a desktop keyring may ask to be
    unlocked), and the backend has been checked before the user typed anything."""
    add_secret(value)
    found = backend()
    try:
        found.set_password(SERVICE, username(conn_id, field), value)
    except Exception as e:
        raise _failure(f"connection {conn_id!r}: cannot store {field} in the keyring", found, e) from None


def delete(conn_id: str, field: str) -> bool:
    """Remove a stored secret; False when there was none."""
    found = backend()
    from keyring.errors import PasswordDeleteError  # keyring is there: backend() found it

    try:
        if found.get_password(SERVICE, username(conn_id, field)) is None:
            return False
        found.delete_password(SERVICE, username(conn_id, field))
    except PasswordDeleteError:
        return False
    except Exception as e:
        raise _failure(f"connection {conn_id!r}: cannot delete {field} from the keyring", found, e) from None
    return True


# -- the main job: complete a half key pair ----------------------------------------------


def wanted(raw: RawConnection) -> list[tuple[dict, str]]:
    """The (table, field) pairs of ``raw`` that the keyring should complete.

    Only a half pair asks, and only when the definition has no complete pair anywhere (in
    login/password, the extra, or session_kwargs): the connection would use that pair, as
    Airflow does, and a complete pair never asks the keyring. A definition with no key id
    at all (a role assumed with boto3's chain, say) never touches the keyring either.
    """
    fields, extra = raw.fields, raw.extra
    # As JSON text in a URI too; a malformed one is reported by the connection's own reading.
    session_kwargs = as_table(extra.get("session_kwargs")) or {}
    pairs = ((fields, "login", "password"), (extra, "aws_access_key_id", "aws_secret_access_key"),
             (session_kwargs, "aws_access_key_id", "aws_secret_access_key"))
    if any(_given(table.get(key_id)) and _given(table.get(secret)) for table, key_id, secret in pairs):
        return []
    out: list[tuple[dict, str]] = []
    if _given(fields.get("login")) and not _given(fields.get("password")):
        out.append((fields, "password"))
    if _given(extra.get("aws_access_key_id")) and not _given(extra.get("aws_secret_access_key")):
        out.append((extra, "aws_secret_access_key"))
    if out and not _given(extra.get("aws_session_token")):
        out.append((extra, "aws_session_token"))
    return out


def fill(raw: RawConnection, *, interactive: bool = False) -> list[str]:
    """Complete ``raw`` from the keyring in place; the names of the fields it filled.

    Outside ``interactive`` commands, stdin is replaced by /dev/null first: credproc never
    reads it in its main job, and a backend that prompts (keyrings.cryptfile, say) then gets
    an end of file at once instead of waiting on the SDK's open pipe.
    """
    targets = wanted(raw)
    if not targets:
        return []
    names = [field for _, field in targets]
    try:
        if interactive:
            values = lookup_many(raw.conn_id, names)
        else:
            _detach_stdin()
            with _output_as_warning():
                values = lookup_many(raw.conn_id, names)
    except ConfigError as e:
        missing = names[0]
        raise ConfigError(f"connection {raw.conn_id!r} ({raw.origin}) has no {missing}, so credproc asked "
                          f"the OS keyring for it: {_after_prefix(e, raw.conn_id)}") from None
    filled = []
    for table, field in targets:
        if values[field]:
            table[field] = values[field]
            filled.append(field)
    return filled


# -- helpers -----------------------------------------------------------------------------


def _given(value: object) -> bool:
    return value is not None and value != ""


def timeout() -> float:
    from credproc.settings import seconds

    return seconds(os.environ, TIMEOUT_VARIABLE, DEFAULT_TIMEOUT)


def _bounded(call: Callable[[], Any], what: str) -> Any:
    """``call()`` in a daemon thread, given up after :func:`timeout` seconds.

    A stuck backend (D-Bus not answering, a prompt on /dev/tty) must not hold the SDK that
    runs us forever; the thread is abandoned and dies with the process.
    """
    import threading

    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["value"] = call()
        except BaseException as e:  # handed to the caller's thread
            result["error"] = e

    limit = timeout()
    worker = threading.Thread(target=target, name="credproc-keyring", daemon=True)
    worker.start()
    worker.join(limit)
    if worker.is_alive():
        raise CredprocError(f"{what}: the keyring did not answer within {limit:g}s (a locked keychain, "
                            f"a prompt, or a D-Bus that does not answer); {HINT}")
    error = result.get("error")
    if isinstance(error, CredprocError):
        raise error
    if error is not None:
        raise _failure(what, None, error)
    return result["value"]


def _failure(what: str, found: Any, error: BaseException) -> CredprocError:
    """A keyring error as one line: its own text names the backend's problem."""
    name = f" ({backend_name(found)})" if found is not None else ""
    if isinstance(error, EOFError):
        return ConfigError(f"{what}: the keyring backend{name} asked for input, and there is no terminal "
                           f"to answer it; {HINT}")
    kind = CredprocError
    try:
        from keyring.errors import InitError, NoKeyringError

        if isinstance(error, (InitError, NoKeyringError)):
            kind = ConfigError
    except ImportError:  # pragma: no cover - keyring is there if we got an error from it
        pass
    detail = " ".join(str(error).split()) or "no detail"
    return kind(f"{what}: {type(error).__name__}{name}: {detail}; {HINT}")


def _after_prefix(error: Exception, conn_id: str) -> str:
    text = str(error)
    prefix = f"connection {conn_id!r}: "
    return text[len(prefix):] if text.startswith(prefix) else text


@contextmanager
def _output_as_warning() -> Iterator[None]:
    """Keep what a backend prints (a prompt, say) off stdout, which carries the credentials,
    and out of the middle of our one-line messages: it is said afterwards as one warning."""
    import io

    saved = sys.stdout, sys.stderr
    sys.stdout = sys.stderr = buffer = io.StringIO()
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved
        text = one_line(buffer.getvalue())
        if text:
            warn(f"the keyring backend wrote: {text}")


def _detach_stdin() -> None:
    with suppress(OSError):
        sys.stdin = open(os.devnull, encoding="utf-8")  # noqa: SIM115 - lives as long as the process
