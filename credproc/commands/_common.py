"""What several commands share: where a connection is defined, its cache state, times, output."""

from __future__ import annotations

import io
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from credproc import cache, forms, sources
from credproc.errors import ConfigError
from credproc.log import redact
from credproc.resolution import Resolution
from credproc.sensitive import MASK, mask

if TYPE_CHECKING:
    from credproc.connection import AwsConnection

__all__ = ["MASK", "mask"]  # show's masking is credproc.sensitive's one rule


def out(text: str = "") -> None:
    """Print to stdout, through the secret filter like everything credproc says."""
    sys.stdout.write(redact(text) + "\n")


def check_id(conn_id: str, what: str = "connection id") -> str:
    if not conn_id or conn_id.startswith("-") or any(c in conn_id for c in "\r\n\0"):
        raise ConfigError(f"{what} {conn_id!r} is not usable: it must be non-empty, not start with '-', "
                          "and hold no line break")
    return conn_id


@contextmanager
def quiet() -> Iterator[list[str]]:
    """Collect credproc's warnings instead of printing them (for listing many connections)."""
    saved, buffer = sys.stderr, io.StringIO()
    lines: list[str] = []
    sys.stderr = buffer
    try:
        yield lines
    finally:
        sys.stderr = saved
        lines.extend(line for line in buffer.getvalue().splitlines() if line.strip())


def describe_method(conn: AwsConnection, factory_spec: str | None) -> str:
    """How the connection gets its credentials, in a few words."""
    if factory_spec:
        return f"session factory {factory_spec}"
    if conn.role_arn:
        return conn.assume_role_method or "assume_role"
    if conn.aws_access_key_id:
        return "static keys"
    if conn.profile_name:
        return f"profile {conn.profile_name}"
    return "default chain"


def source(definition: sources.Definition) -> tuple[str, str]:
    """``(kind, where)`` of the place that defines the connection: ``env`` and the variable,
    ``file`` and the config file, ``airflow-file`` and the Airflow connections file, or
    ``none`` and the config file that was tried."""
    if definition.kind == "env":
        return "env", definition.where
    config = definition.config
    if config is not None and forms.defines(config, definition.conn_id):
        return "file", definition.where
    if definition.kind == "file" and config is not None and config.airflow is not None:
        from credproc import airflow_files

        if airflow_files.defines(config.airflow, definition.conn_id):
            return "airflow-file", config.airflow.path
    return "none", definition.where


def where(definition: sources.Definition) -> str:
    """Where a definition lives, for a person: the variable, or the file and its table (its
    key in an Airflow connections file)."""
    kind, place = source(definition)
    if kind == "env":
        return place
    if kind == "file":
        return f"{tilde(place)} [connections.{forms.toml_key(definition.conn_id)}]"
    if kind == "airflow-file":
        return f"{tilde(place)} [{definition.conn_id}]"
    return "not defined" + (" (boto3's default chain)" if definition.conn_id == sources.DEFAULT_CONN_ID else "")


def other_places(resolution: Resolution) -> list[str]:
    """The definitions of the connection that exist but lose to an earlier one."""
    definition = resolution.definition
    config = definition.config or sources.read_config(resolution.environ)
    found = forms.places(resolution.conn_id, resolution.environ, config)
    return [tilde(place) for place in found[1:]]  # a variable's name is never under ~


def tilde(path: str) -> str:
    home = os.path.expanduser("~")
    if home not in ("", "/") and (path == home or path.startswith(home + os.sep)):
        return "~" + path[len(home):]
    return path


# -- cache state -------------------------------------------------------------------------


def cache_state(resolution: Resolution, *, reread: bool = False) -> dict[str, Any]:
    """The state of the entry the main job would read now for this connection (see
    :func:`entry_state`). ``reread``: read the entry again (after a fetch)."""
    from credproc.cache.lock import is_held

    entry = resolution.entry(reread=reread)
    if entry is None:
        return {"state": "none"}
    return entry_state(entry, refreshing=is_held(resolution.bucket))


def entry_state(entry: cache.Entry, *, refreshing: bool = False) -> dict[str, Any]:
    """An entry's place on the refresh timeline (``credproc.cache``), for people and scripts.

    ``state`` is one of: ``fresh`` (printed as is until ``fresh_until``); ``refreshing`` (a
    process holds the lock and is fetching); ``stale`` (due, and the last refresh failed:
    printed with a warning, see ``failure``); ``due`` (printed, and the next run starts a
    refresh in the background); ``ending`` (less than the floor left: the next run refreshes
    before printing); ``expired``. ``failure`` is the failed refreshes recorded in the entry,
    or None."""
    now = time.time()
    timeline = entry.state(now)
    if timeline == cache.EXPIRED:
        state = "expired"
    elif refreshing:
        state = "refreshing"
    elif timeline == cache.DUE and entry.failures:
        state = "stale"
    else:
        state = timeline
    failure = None
    if entry.failures:
        failure = {"since": iso(entry.failed_since), "last": iso(entry.failed_at), "count": entry.failures,
                   "reason": entry.reason, "next_try": iso(entry.retry_at)}
    return {"state": state, "fresh_until": iso(entry.fresh_until), "served_until": iso(entry.floor),
            "expires": iso(entry.expires), "failure": failure}


def mfa_state(resolution: Resolution, conn: AwsConnection, *, chain: bool = True) -> dict[str, Any] | None:
    """The connection's MFA device and its session (``credproc.methods.mfa``), or None.
    ``chain=False``: boto3's chain is not asked for the access key id (``list``); without one
    in the definition the session is then ``unknown``."""
    if not conn.mfa_serial:
        return None
    from credproc.methods import mfa

    info: dict[str, Any] = {"device": conn.mfa_serial, "source": "mfa_process" if conn.mfa_process else "terminal",
                            "session": "none", "expires": None}
    if not chain and not conn.aws_access_key_id:
        info["session"] = "unknown"
        return info
    slot = mfa_slot(resolution)
    entry = slot.read(quiet=True) if slot is not None else None
    if entry is not None:
        info["session"] = "valid" if entry.expires - time.time() > mfa.MARGIN else "expired"
        info["expires"] = iso(entry.expires)
    return info


def mfa_slot(resolution: Resolution) -> cache.Slot | None:
    """The slot of the connection's MFA session (for ``show``, ``check``, ``cache clear``);
    None without ``mfa_serial``, or when its long-term keys cannot be found (boto3's chain is
    asked only when the definition holds no access key id)."""
    from credproc import resolution as resolving

    conn = resolution.connection(resolving.KEYRING_ASSUME) if resolution.raw() is not None else None
    if conn is None or not conn.mfa_serial:
        return None
    from credproc.methods import mfa

    key_id = conn.aws_access_key_id
    if not key_id:
        from credproc.session import freeze

        try:
            key_id = freeze(resolution.factory(custom=False).basic_session, conn.conn_id).access_key_id
        except Exception:  # no keys, a profile that fails...: there is no session to speak of
            return None
    return mfa.slot(key_id, conn.mfa_serial, resolution.environ)


def describe_mfa(info: dict[str, Any] | None) -> str | None:
    if info is None:
        return None
    ask = "mfa_process" if info["source"] == "mfa_process" else "the terminal"
    if info["session"] == "valid":
        session = f"session valid until {info['expires']} ({relative(info['expires'])})"
    elif info["session"] == "expired":
        session = f"session expired {info['expires']}: the next fetch asks {ask} for a code"
    elif info["session"] == "unknown":
        session = "session not looked up (its keys come from boto3's chain: see credproc show)"
    else:
        session = f"no session: the next fetch asks {ask} for a code"
    return f"{info['device']}; {session}"


def describe_cache(info: dict[str, Any]) -> str:
    """One phrase for a table cell or a ``show`` line."""
    state = info["state"]
    failure = info.get("failure")
    failed = f"; last refresh failed: {failure['reason']}" if failure else ""
    if state == "fresh":
        return f"fresh until {info['fresh_until']} ({relative(info['fresh_until'])})"
    if state == "refreshing":
        return f"refreshing (expires {info['expires']}){failed}"
    if state == "stale" and failure:
        return (f"serving stale since {failure['since']} because {failure['reason']} ({failure['count']} failed "
                f"tr{'y' if failure['count'] == 1 else 'ies'}; next try after {failure['next_try']}; "
                f"served until {info['served_until']})")
    if state == "due":
        return f"due: the next run refreshes it in the background (served until {info['served_until']})"
    if state == "ending":
        return f"ending: expires {info['expires']}, the next run refreshes it before printing{failed}"
    if state == "expired":
        return f"expired {info['expires']}{failed}"
    return "none"


def iso(timestamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def relative(when: str) -> str:
    import calendar

    seconds = calendar.timegm(time.strptime(when, "%Y-%m-%dT%H:%M:%SZ")) - time.time()
    past = seconds < 0
    seconds = abs(int(seconds))
    if seconds >= 3600:
        text = f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    else:
        text = f"{seconds // 60}m" if seconds >= 120 else f"{seconds}s"
    return f"{text} ago" if past else f"in {text}"


def key_id(value: str | None) -> str | None:
    """An access key id as the AWS CLI shows it: all but the last four characters hidden."""
    if not value:
        return None
    return "*" * max(len(value) - 4, 0) + value[-4:]
