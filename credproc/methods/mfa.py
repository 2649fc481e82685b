"""MFA: one code per MFA session, for every role and every process.

A connection with ``mfa_serial`` (or ``assume_role_kwargs.SerialNumber`` without a
``TokenCode``) first opens an *MFA session*: STS ``GetSessionToken(SerialNumber, TokenCode,
DurationSeconds)`` signed with its long-term keys. The session is a cache entry of its own,
keyed on the source access key id and the device (never the secret), so every role of those
keys and that device, in every process, is assumed with it, and the code is asked once per
session (12 hours unless ``mfa_session_duration`` says otherwise). The AssumeRole calls carry
no SerialNumber or TokenCode: a code is single-use, the session proves it was given.

The code comes from, first found:

* ``mfa_process``: a command that prints it, run without a shell (as SDKs run
  ``credential_process``), its stdin on /dev/null, its stderr passed through, bounded in time;
* the controlling terminal, ``/dev/tty``, echo off: never stdin, which SDKs leave open, and
  never stderr, which they capture;
* nowhere: one line saying so, at once.

While the code is asked, every lock this process holds says so (``asking_a_person``), and the
processes of a stampede waiting for them wait up to ``CREDPROC_MFA_TIMEOUT`` (5 minutes), not
the 30 seconds of fetches that ask no one. A detached refresher has no terminal: with the
session expired it fails with "needs an MFA code", which is recorded, and the prompt comes back
in the foreground.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from credproc import cache, settings, sts
from credproc.cache.lock import RELEASED, EntryLock, asking_a_person, person_timeout
from credproc.cache.store import write
from credproc.errors import ConfigError, CredprocError
from credproc.log import add_secret, one_line
from credproc.protocol import Credentials, account_from_arn

if TYPE_CHECKING:
    from credproc.connection import AwsConnection

PROCESS_TIMEOUT_VARIABLE = "CREDPROC_MFA_PROCESS_TIMEOUT"
PROCESS_TIMEOUT = 60.0
MARGIN = 60.0  # a session with less left is not used: the AssumeRole signed with it must arrive in time


def bucket(access_key_id: str, serial: str, environ: Any = os.environ) -> cache.Bucket:
    """Where the MFA session of these keys and this device is cached."""
    key = hashlib.sha256(f"credproc-mfa-1\0{access_key_id}\0{serial}".encode()).hexdigest()
    return cache.Bucket(cache.cache_dir(environ), key, cache.MFA_LABEL + serial.rsplit("/", 1)[-1])


def slot(access_key_id: str, serial: str, environ: Any = os.environ) -> cache.Slot:
    """The MFA session's entry (it depends on no variable: the keys and device are its key)."""
    return bucket(access_key_id, serial, environ).slot(environ, ())


def session(conn: AwsConnection, source: Credentials, signed_client: Callable[[], Any],
            environ: Any = os.environ) -> Credentials:
    """The MFA session of ``source`` (long-term keys) and the connection's device: the cached
    one while it has more than a minute left, else a new one, for the code of a person."""
    serial = conn.mfa_serial or ""
    if source.session_token:
        raise ConfigError(f"connection {conn.conn_id!r}: mfa_serial needs long-term keys to open an MFA "
                          f"session (GetSessionToken), and its keys {source.access_key_id} are temporary "
                          "(they have a session token)")
    where = bucket(source.access_key_id, serial, environ)
    place = where.slot(environ, ())
    found = _usable(place)
    if found is not None:
        return found
    wait = person_timeout(environ)
    lock = EntryLock(where, wait, wait)
    try:
        while True:
            state = lock.acquire()
            found = _usable(place)
            if found is not None:
                return found
            if state == RELEASED:
                continue  # its holder failed (a wrong code, Ctrl-C): our turn to ask
            with asking_a_person():
                code = code_for(conn)
            credentials = _open_session(conn, signed_client(), code)
            if credentials.expires_at is not None:
                write(place, credentials.to_process_json().encode(), fetched=time.time(),
                      expires=credentials.expires_at)
            return credentials
    finally:
        lock.close()


def _usable(place: cache.Slot) -> Credentials | None:
    entry = place.read()
    if entry is None or entry.expires - time.time() <= MARGIN:
        return None
    data = json.loads(entry.body)
    credentials = Credentials(data["AccessKeyId"], data["SecretAccessKey"], data.get("SessionToken"),
                              datetime.fromtimestamp(entry.expires, timezone.utc), data.get("AccountId"))
    add_secret(credentials.secret_access_key)
    add_secret(credentials.session_token)
    return credentials


def _open_session(conn: AwsConnection, client: Any, code: str) -> Credentials:
    try:
        response = sts.call(client, "get_session_token", conn.conn_id, SerialNumber=conn.mfa_serial,
                            TokenCode=code, DurationSeconds=conn.mfa_session_duration)
    except (BotoCoreError, ClientError) as e:
        raise sts.translate(e, conn) from e
    opened = sts.credentials_of(response, conn.conn_id, user_key="-")
    add_secret(opened.secret_access_key)
    add_secret(opened.session_token)
    return Credentials(opened.access_key_id, opened.secret_access_key, opened.session_token, opened.expiration,
                       account_from_arn(conn.mfa_serial))


# -- the code ------------------------------------------------------------------------------


def code_for(conn: AwsConnection) -> str:
    """The MFA code: from ``mfa_process``, else asked on the terminal; never logged."""
    # No message holds the code, and it is not registered with log.redact either: six digits
    # would be masked inside account ids and times, and a used code opens nothing.
    code = _from_process(conn, conn.mfa_process) if conn.mfa_process else _from_terminal(conn)
    if not (len(code) == 6 and code.isascii() and code.isdigit()):
        source = "mfa_process" if conn.mfa_process else "the terminal"
        raise CredprocError(f"connection {conn.conn_id!r}: the MFA code from {source} is not 6 digits")
    return code


def _from_process(conn: AwsConnection, argv: list[str]) -> str:
    timeout = settings.seconds(os.environ, PROCESS_TIMEOUT_VARIABLE, PROCESS_TIMEOUT, minimum=1, maximum=3600)
    what = f"connection {conn.conn_id!r}: mfa_process {argv[0]}"
    try:
        # stderr is credproc's own (the SDK shows it); stdout is read, never passed on
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, timeout=timeout,  # noqa: S603
                              check=False)  # the user's own command, from their own definition, as SDKs run one
    except FileNotFoundError:
        raise ConfigError(f"{what}: no such program") from None
    except PermissionError:
        raise ConfigError(f"{what}: not executable") from None
    except OSError as e:
        raise CredprocError(f"{what}: {e.strerror or e}") from None
    except subprocess.TimeoutExpired:
        raise CredprocError(f"{what}: no code within {timeout:g} s ({PROCESS_TIMEOUT_VARIABLE})") from None
    if done.returncode != 0:
        raise CredprocError(f"{what}: exit status {done.returncode}")
    return done.stdout[:200].decode("utf-8", "replace").strip()


# Off in credproc exec once its child runs: the terminal is the child's then (a prompt from the
# server's thread would mix with its output and race it for the typed line).
ask_on_the_terminal = True


def _from_terminal(conn: AwsConnection) -> str:
    where = "there is no terminal to ask on" if ask_on_the_terminal else "the terminal is credproc exec's command's"
    try:
        if not ask_on_the_terminal:
            raise OSError(where)
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        raise CredprocError(
            f"connection {conn.conn_id!r} needs an MFA code for {conn.mfa_serial} and {where}: set mfa_process "
            f"(a command that prints the code), or run `credproc --conn {conn.conn_id}` in a terminal once; the "
            "session it opens serves every process") from None
    try:
        return _ask(fd, f"credproc: MFA code for connection {conn.conn_id!r} ({conn.mfa_serial}): ")
    finally:
        os.close(fd)


def _ask(fd: int, prompt: str) -> str:
    """One line typed on the terminal ``fd``, echo off (a code is not shown). Ctrl-C raises
    KeyboardInterrupt as anywhere else; the terminal is restored either way."""
    import termios

    try:
        saved = termios.tcgetattr(fd)
    except termios.error:
        saved = None
    if saved is not None:  # echo off before the prompt shows: nothing typed is ever echoed
        quiet = termios.tcgetattr(fd)
        quiet[3] &= ~termios.ECHO
        termios.tcsetattr(fd, termios.TCSAFLUSH, quiet)
    try:
        os.write(fd, prompt.encode())
        line = b""
        while not line.endswith(b"\n") and len(line) < 200:
            chunk = os.read(fd, 200)
            if not chunk:
                break
            line += chunk
    finally:
        if saved is not None:
            termios.tcsetattr(fd, termios.TCSAFLUSH, saved)
        os.write(fd, b"\n")
    return one_line(line.decode("utf-8", "replace")).strip()
