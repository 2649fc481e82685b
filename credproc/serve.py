"""The container-credentials server of ``credproc serve`` and ``credproc exec``.

Every AWS SDK can read credentials over HTTP from ``AWS_CONTAINER_CREDENTIALS_FULL_URI``,
sending the value of ``AWS_CONTAINER_AUTHORIZATION_TOKEN`` (or of the file named by
``AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE``) as its ``Authorization`` header, and refreshes
through it on its own. This module is that endpoint, for the connections given:

* :class:`Served` is one connection as the server answers for it, from the same cache,
  with the same keys and the same refresh timeline as ``credproc --conn ID`` (so SDKs
  running ``credential_process`` and the server share entries). A fresh or due entry is
  answered at once; a due one is refreshed by the :class:`Refresher` thread, under the
  entry's lock as a detached refresher would; an ending, expired or missing one is fetched
  before the answer (``job.credentials_for``), with stale-if-error.
* :class:`Server` speaks just enough HTTP/1.1 for that, on 127.0.0.1 only: one GET per
  connection, its head bounded (request line, header count and size) and read within a
  deadline, a bounded number of connections at a time, the ``Host`` checked against the
  server's own address (a web page that rebinds a name to 127.0.0.1 is refused), the token
  compared in constant time, no CORS headers. http.server is not used: its bounds are
  module constants (64 KiB lines, 100 headers), it names Python in a Server header, answers
  errors with HTML pages and logs every request line to stderr, and keeps connections alive
  in threads that nothing bounds; overriding all of that is more code than this parser.

Nothing written to stderr holds the token or a secret: errors answered to a client are
credproc's one-line errors (which hold none, and pass through ``log.redact``), and the
request log (``--debug`` only) names the path's connection id and the status.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
import signal
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from http import HTTPStatus

from credproc import cache, job, recursion
from credproc.errors import ConfigError, CredprocError
from credproc.log import one_line, redact, warn
from credproc.resolution import Resolution

HOST = "127.0.0.1"
PATH_PREFIX = "/credentials/"
TOKEN_BYTES = 32  # secrets.token_urlsafe(32): 256 random bits, 43 characters
MAX_REQUEST_LINE = 1024  # "GET /credentials/<id> HTTP/1.1": a connection id is short
MAX_HEAD = 8192  # the request line and all headers; SDKs send about 200 bytes
MAX_HEADERS = 32
READ_DEADLINE = 5.0  # seconds a client has to send its request head, whatever its pace
WRITE_TIMEOUT = 5.0
MAX_CONNECTIONS = 32  # connections handled at a time; more are answered 503 and closed
REFRESH_LOOK = 30.0  # the refresher looks at least this often (a request for a due entry wakes it)
RETRY_LOOK = 5.0  # and no more often than this when an entry it cannot refresh yet is due

# The variables by which a child's SDK could find credentials before the container endpoint
# (or find another endpoint): exec removes them, serve prints `unset` lines for them. In
# botocore's and the JS and Go SDKs' chains, environment keys, a profile named by
# AWS_PROFILE (or botocore's AWS_DEFAULT_PROFILE) and web identity all come first, and
# AWS_CONTAINER_CREDENTIALS_RELATIVE_URI wins over the full URI.
SHADOWING = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
             "AWS_CREDENTIAL_EXPIRATION", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ROLE_ARN",
             "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_SESSION_NAME", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
             "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN",
             "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")
FULL_URI = "AWS_CONTAINER_CREDENTIALS_FULL_URI"
TOKEN_VARIABLE = "AWS_CONTAINER_AUTHORIZATION_TOKEN"  # noqa: S105 - a variable's name
TOKEN_FILE_VARIABLE = "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"  # noqa: S105 - a variable's name


def uri(port: int, conn_id: str) -> str:
    """The URL at which the server answers for ``conn_id``: the id percent-encoded, whole."""
    return f"http://{HOST}:{port}{PATH_PREFIX}{urllib.parse.quote(conn_id, safe='')}"


# -- the cache side -----------------------------------------------------------------------------

# One fetch at a time in this process: a fetch marks os.environ (recursion.enter) and points
# descriptor 1 at stderr (job.StdoutToStderr), both process-wide. Requests that find a usable
# entry never wait for it.
_fetching = threading.Lock()


@contextmanager
def _one_fetch() -> Iterator[None]:
    with _fetching:
        chain = os.environ.get(recursion.CHAIN_VARIABLE)
        try:
            yield
        finally:  # each fetch marks the chain anew: a long-running server must not pile them up
            if chain is None:
                os.environ.pop(recursion.CHAIN_VARIABLE, None)
            else:
                os.environ[recursion.CHAIN_VARIABLE] = chain


class Served:
    """One connection as the server answers for it.

    ``environ`` is the environment its cache keys are computed from (the server's, as it
    started): the same entry as ``credproc --conn ID`` run from that environment."""

    def __init__(self, conn_id: str, environ: Mapping[str, str], on_due: Callable[[], None] = lambda: None):
        self.conn_id = conn_id
        self.environ = dict(environ)
        # A fetch in the foreground must not fork a detached refresher from a threaded process:
        # due entries are this server's Refresher's (the variable is no part of any cache key).
        self.foreground_environ = {**self.environ, "CREDPROC_BACKGROUND_REFRESH": "0"}
        self.on_due = on_due

    def resolution(self) -> Resolution:
        # Anew for every request: the definition may have been edited (a new bucket), and
        # another process may have written the entry since.
        return Resolution(self.conn_id, environ=self.environ)

    def body(self) -> bytes:
        """The credential_process JSON for the connection: from the cache when it is fresh or
        due (a due one is left to the refresher), else fetched now under the entry's lock."""
        entry, now = self.resolution().entry(), time.time()
        if entry is not None and entry.floor > now and entry.expires > now:
            if not entry.is_fresh(now):
                if entry.failures:
                    cache.warn_stale(self.conn_id, entry)
                self.on_due()
            return entry.body
        with _one_fetch():
            return job.credentials_for(Resolution(self.conn_id, environ=self.foreground_environ))

    def next_look(self, now: float) -> float:
        """When the refresher should look at this connection's entry again."""
        entry = self.resolution().entry()
        if entry is None or entry.expires <= now:
            return now + REFRESH_LOOK  # the next request fetches it in the foreground
        return max(entry.fresh_until, entry.retry_at)

    def refresh_ahead(self) -> None:
        """Refresh an entry past its fresh time, as a detached refresher would: only when no
        other process holds its lock (then that one is refreshing it) and no backoff is on,
        under the lock; a failure is recorded in the entry and said in one line."""
        from credproc.cache.lock import HELD, EntryLock

        resolution = self.resolution()
        entry, now = resolution.entry(), time.time()
        if entry is None or entry.is_fresh(now) or now < entry.retry_at:
            return
        with _one_fetch():
            lock = EntryLock(resolution.bucket, 0.0)
            try:
                if lock.acquire(wait=False) != HELD:
                    return
                current = resolution.entry(reread=True)  # under the lock, look again
                now = time.time()
                if current is None or current.is_fresh(now) or now < current.retry_at:
                    return
                job.refresh_in_background(resolution)
            finally:
                lock.close()
        after = resolution.entry(reread=True)
        if after is not None and after.failures > current.failures:
            served = (f"serving the cached ones until {_clock(after.floor)}" if after.floor > time.time()
                      else f"the cached ones have less than {cache.FLOOR // 60} minutes left and are not served")
            warn(f"connection {self.conn_id!r}: refreshing its credentials failed ({after.reason}); {served}, "
                 f"next try after {_clock(after.retry_at)}")


def _clock(when: float) -> str:
    return time.strftime("%H:%M:%SZ", time.gmtime(when))


class Refresher(threading.Thread):
    """Refreshes ahead the entries of the connections served, so that no request waits for
    STS while an entry is merely due. Sleeps until the first entry is due (at most
    REFRESH_LOOK), or until a request finds one due (:meth:`wake`)."""

    def __init__(self) -> None:
        super().__init__(name="credproc-refresher", daemon=True)
        self.served: list[Served] = []
        self._wake = threading.Event()
        self._stop = threading.Event()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def run(self) -> None:
        while not self._stop.is_set():
            now = time.time()
            for served in self.served:
                if self._stop.is_set():
                    return
                try:
                    if served.next_look(now) <= now:
                        served.refresh_ahead()
                except Exception as e:  # a bug, or a cache directory gone bad: say it, keep serving
                    warn(f"connection {served.conn_id!r}: background refresh: {type(e).__name__}: {e}")
            now = time.time()
            try:
                wait = min([s.next_look(now) for s in self.served] + [now + REFRESH_LOOK]) - now
            except Exception:
                wait = REFRESH_LOOK
            # An entry still due after the pass: another process holds its lock (and is
            # refreshing it), or it cannot be locked; look again in a while, not at once.
            self._wake.wait(min(wait if wait > 0 else RETRY_LOOK, REFRESH_LOOK))
            self._wake.clear()


# -- the HTTP side ---------------------------------------------------------------------------


class BadRequest(Exception):
    def __init__(self, status: HTTPStatus, message: str):
        super().__init__(message)
        self.status = status


def read_head(sock: socket.socket, deadline: float) -> bytes:
    """The request head (up to the blank line), read within ``deadline`` (monotonic) and
    within MAX_HEAD bytes, whatever the client's pace."""
    data = b""
    while True:
        end = data.find(b"\r\n\r\n")
        if end < 0:
            end = data.find(b"\n\n")
        first_line = data.split(b"\n", 1)[0]
        if len(first_line) > MAX_REQUEST_LINE:
            raise BadRequest(HTTPStatus.REQUEST_URI_TOO_LONG, "request line too long")
        if end >= 0 and end <= MAX_HEAD:
            return data[:end]
        if end > MAX_HEAD or len(data) > MAX_HEAD:
            raise BadRequest(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "request head too large")
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        sock.settimeout(left)
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionResetError
        data += chunk


def parse_head(head: bytes) -> tuple[str, str, dict[str, list[str]]]:
    """Method, target and headers (lower-case names, values in order) of a request head."""
    lines = head.replace(b"\r\n", b"\n").split(b"\n")
    try:
        method, target, version = lines[0].decode("ascii").split(" ")
    except (UnicodeDecodeError, ValueError):
        raise BadRequest(HTTPStatus.BAD_REQUEST, "malformed request line") from None
    if not version.startswith("HTTP/1."):
        raise BadRequest(HTTPStatus.HTTP_VERSION_NOT_SUPPORTED, "HTTP/1.x only")
    if len(lines) - 1 > MAX_HEADERS:
        raise BadRequest(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "too many headers")
    headers: dict[str, list[str]] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not name or name != name.strip() or line[:1] in (b" ", b"\t"):
            raise BadRequest(HTTPStatus.BAD_REQUEST, "malformed header")
        headers.setdefault(name.decode("latin-1").lower(), []).append(value.strip().decode("latin-1"))
    return method, target, headers


class Server:
    """The endpoint on 127.0.0.1:``port`` (0: a free port) for the connections of ``served``
    (by id), with ``token``. :meth:`start` listens and serves in threads; :meth:`stop` ends it."""

    def __init__(self, served: Mapping[str, Served], token: str, port: int = 0, *, debug: bool = False):
        self.served = dict(served)
        self.token = token.encode()
        self.debug = debug
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind((HOST, port))
        except OSError as e:
            self.sock.close()
            raise ConfigError(f"cannot listen on {HOST}:{port}: {e.strerror or e}") from e
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.host_header = f"{HOST}:{self.port}"
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._accept, name="credproc-server", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        with suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes accept()
        self.sock.close()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                if self._stopped.is_set():
                    return
                time.sleep(0.05)  # EMFILE and the like: do not spin
                continue
            if not self.slots.acquire(blocking=False):
                self._refuse_busy(conn)
                continue
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _refuse_busy(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(0.5)
            conn.sendall(response(HTTPStatus.SERVICE_UNAVAILABLE, error_body("too many connections; try again")))
        except OSError:
            pass
        finally:
            conn.close()

    def _handle(self, conn: socket.socket) -> None:
        started = time.monotonic()
        status, body, what = HTTPStatus.BAD_REQUEST, b"", "-"
        try:
            try:
                method, target, headers = parse_head(read_head(conn, started + READ_DEADLINE))
                status, body, what = self.answer(method, target, headers)
            except BadRequest as e:
                status, body = e.status, error_body(str(e))
            except (TimeoutError, ConnectionError, OSError):
                return  # gone, or too slow: nobody to answer
            conn.settimeout(WRITE_TIMEOUT)
            conn.sendall(response(status, body))
        except OSError:
            pass
        finally:
            conn.close()
            self.slots.release()
            if self.debug:
                import logging

                logging.getLogger("credproc.serve").debug(
                    "%s %d %.1f ms", what, status, (time.monotonic() - started) * 1000)

    def answer(self, method: str, target: str, headers: Mapping[str, list[str]]) -> tuple[HTTPStatus, bytes, str]:
        """The status and body for one request, and what to log of it (a served id, or why
        not). The order matters: a foreign Host learns nothing, not even whether its token
        is right; a missing token learns nothing about which paths exist."""
        hosts = headers.get("host", [])
        if len(hosts) != 1 or hosts[0].lower() != self.host_header:
            return HTTPStatus.FORBIDDEN, error_body(f"this server answers only requests for {self.host_header}"), \
                "foreign host"
        given = headers.get("authorization", [])
        if len(given) != 1 or not hmac.compare_digest(given[0].encode("latin-1"), self.token):
            return HTTPStatus.UNAUTHORIZED, error_body("missing or wrong Authorization token"), "no token"
        if method != "GET":
            return HTTPStatus.METHOD_NOT_ALLOWED, error_body("GET only"), "method"
        path = target.split("?", 1)[0]
        served = self.served.get(urllib.parse.unquote(path[len(PATH_PREFIX):])) if path.startswith(PATH_PREFIX) \
            else None
        if served is None:
            return HTTPStatus.NOT_FOUND, error_body("no connection is served at this path"), "unknown path"
        try:
            body = served.body()
        except CredprocError as e:
            return HTTPStatus.BAD_GATEWAY, error_body(str(e)), served.conn_id
        except Exception as e:  # a bug, or an error inside a user's session factory
            return HTTPStatus.INTERNAL_SERVER_ERROR, \
                error_body(f"connection {served.conn_id!r}: {type(e).__name__}: {e}"), served.conn_id
        return HTTPStatus.OK, container_json(body), served.conn_id


def container_json(body: bytes) -> bytes:
    """The container-credentials answer for a credential_process body: the same values under
    the names of the ECS protocol (``Token``, not ``SessionToken``; no ``Version``)."""
    printed = json.loads(body)
    out = {"AccessKeyId": printed["AccessKeyId"], "SecretAccessKey": printed["SecretAccessKey"],
           "Token": printed.get("SessionToken", ""), "Expiration": printed.get("Expiration", "")}
    if printed.get("AccountId"):
        out["AccountId"] = printed["AccountId"]
    return json.dumps(out).encode()


def error_body(message: str) -> bytes:
    # botocore and the JS SDK put the body in their error; credproc's errors hold no secret,
    # and redact masks any that is known.
    return json.dumps({"code": "CredprocError", "message": redact(one_line(message))}).encode()


def response(status: HTTPStatus, body: bytes) -> bytes:
    head = (f"HTTP/1.1 {status.value} {status.phrase}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n")
    return head.encode("ascii") + body


# -- the token ---------------------------------------------------------------------------------


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def runtime_dir(environ: Mapping[str, str]) -> str:
    """A directory of ours alone for token files: ``$XDG_RUNTIME_DIR/credproc``, else
    ``<tmp>/credproc-<uid>``; created 0700, refused when it is anyone else's or open to others."""
    import tempfile

    uid = os.getuid() if hasattr(os, "getuid") else 0  # Windows: no uid; its temp directory is per user
    base = environ.get("XDG_RUNTIME_DIR")
    path = os.path.join(base, "credproc") if base else os.path.join(tempfile.gettempdir(), f"credproc-{uid}")
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError as e:
        raise ConfigError(f"cannot create the directory for the token file {path}: {e.strerror or e}") from e
    st = os.lstat(path)
    private = os.name == "nt" or (st.st_uid == uid and not st.st_mode & 0o077)
    if not os.path.isdir(path) or os.path.islink(path) or not private:
        raise ConfigError(f"not using {path} for the token file: it must be a directory of yours alone "
                          f"(mode 700, not a symlink); remove it or set XDG_RUNTIME_DIR")
    return path


class TokenFile:
    """The token in a 0600 file (no newline), removed by :meth:`remove` if it is still ours."""

    def __init__(self, directory: str, port: int, token: str):
        self.path = os.path.join(directory, f"server-{port}.token")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        with suppress(FileNotFoundError):
            os.unlink(self.path)  # left by a server on this port that was killed
        fd = os.open(self.path, flags, 0o600)
        try:
            os.write(fd, token.encode())
            self.inode = os.fstat(fd).st_ino
        finally:
            os.close(fd)

    def remove(self) -> None:
        try:
            if os.lstat(self.path).st_ino == self.inode:
                os.unlink(self.path)
        except OSError:
            pass


# -- start-up ------------------------------------------------------------------------------------


def prepare(conn_ids: list[str], environ: Mapping[str, str], refresher: Refresher) -> dict[str, Served]:
    """The connections to serve, each fetched now (so that the first request is a hit and a
    broken connection is said at start-up). Long-term keys are refused: the JS SDK requires
    ``Token`` and ``Expiration``, and credproc does not cache keys that never expire."""
    served: dict[str, Served] = {}
    for conn_id in conn_ids:
        if conn_id in served:
            continue
        one = Served(conn_id, environ, refresher.wake)
        printed = json.loads(one.body())
        if not printed.get("Expiration"):
            raise ConfigError(f"connection {conn_id!r} gives long-term keys (no expiry), which the container "
                              "endpoint does not serve; give it a role_arn, or use credproc exec --no-server")
        served[conn_id] = one
    refresher.served = list(served.values())
    return served


@contextmanager
def _signals_for_the_main_thread() -> Iterator[None]:
    """Threads started in this block (and the threads they start) block the signals that
    serve and exec handle. The kernel gives a process's signal to any thread that does not
    block it, and Python runs handlers in the main thread only when that thread next runs:
    a signal taken by a server thread would wait for the main thread's waitpid() to end."""
    names = ("SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGWINCH", "SIGCONT")
    wanted = {getattr(signal, name) for name in names if hasattr(signal, name)}
    if not hasattr(signal, "pthread_sigmask"):  # pragma: no cover - Windows
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, wanted)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class Endpoint:
    """A running server: where it listens, its token, and (for ``serve``) its token file."""

    def __init__(self, server: Server, token: str, token_file: TokenFile | None):
        self.server = server
        self.port = server.port
        self.token = token
        self.token_file = token_file

    def uri(self, conn_id: str) -> str:
        return uri(self.port, conn_id)


@contextmanager
def running(conn_ids: list[str], environ: Mapping[str, str], *, port: int = 0, token_file: bool = False,
            debug: bool = False) -> Iterator[Endpoint]:
    """Fetch the connections, then serve them (and refresh them ahead) until the block ends.
    ``token_file``: write the token to a 0600 file of :func:`runtime_dir`, removed at the end."""
    refresher = Refresher()
    served = prepare(conn_ids, environ, refresher)
    token = new_token()
    server = Server(served, token, port, debug=debug)
    written = None
    try:
        if token_file:
            written = TokenFile(runtime_dir(environ), server.port, token)
        with _signals_for_the_main_thread():
            server.start()
            refresher.start()
        yield Endpoint(server, token, written)
    finally:
        refresher.stop()
        server.stop()
        if written is not None:
            written.remove()
