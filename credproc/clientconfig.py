"""The botocore ``Config`` for credproc's own STS calls: the connection's ``config_kwargs``,
timeouts that fail fast, and retry settings shared with the SDK that runs us.

Retry settings, first match wins:

1. ``config_kwargs.retries``, taken whole, in botocore's own meaning: ``max_attempts``
   counts *retries*, ``total_max_attempts`` counts all requests;
2. ``AWS_RETRY_MODE`` / ``AWS_MAX_ATTEMPTS``;
3. ``retry_mode`` / ``max_attempts`` of the AWS profile named by ``--profile``, else
   ``AWS_PROFILE`` - the profile whose ``credential_process`` runs credproc, so a user who
   sets ``retry_mode = standard`` once governs both the SDK and credproc.

In 2 and 3 ``max_attempts`` counts all requests, as the AWS CLI and SDKs read it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from botocore import UNSIGNED
from botocore.config import Config

from credproc.connection import AwsConnection
from credproc.errors import ConfigError
from credproc.log import warn

RETRY_MODES = ("legacy", "standard", "adaptive")

# botocore waits 60 s to connect and 60 s per read, per attempt; an SDK waiting on us (Rust
# gives up after 5 s) is better served by failing fast. With the default retry mode below
# (standard: 3 attempts, backoff of a second or two) a dead STS costs at most about 35 s.
# config_kwargs overrides both timeouts; the retry settings below override the mode.
DEFAULT_CONNECT_TIMEOUT = 5
DEFAULT_READ_TIMEOUT = 10
DEFAULT_RETRY_MODE = "standard"


def aws_config_path(environ: Mapping[str, str]) -> str:
    return os.path.expanduser(environ.get("AWS_CONFIG_FILE") or os.path.join("~", ".aws", "config"))


def profile_settings(profile: str | None, environ: Mapping[str, str]) -> dict[str, Any]:
    """The keys of ``[profile NAME]`` (``[default]``) in the AWS config file, or {}.

    A profile named but absent gets a warning: its retry settings cannot apply."""
    if not profile:
        return {}
    from botocore.configloader import load_config

    path = aws_config_path(environ)
    if not os.path.isfile(path):
        return {}
    try:
        profiles = load_config(path).get("profiles", {})
    except Exception as e:  # botocore raises its own parse errors
        raise ConfigError(f"cannot read the AWS config file {path}: {type(e).__name__}") from None
    if profile not in profiles:
        warn(f"AWS profile {profile!r} is not in {path}: its retry_mode and max_attempts "
             "cannot apply to credproc's STS calls")
    return profiles.get(profile, {})


def retry_settings(conn: AwsConnection, profile: str | None, environ: Mapping[str, str]) -> dict[str, Any]:
    """The ``retries`` dict for botocore's Config (standard mode when nothing says otherwise)."""
    if "retries" in conn.config_kwargs:
        return _checked_retries(conn, conn.config_kwargs["retries"])
    settings = profile_settings(profile, environ)
    where_profile = f"profile {profile!r} in {aws_config_path(environ)}"
    mode, mode_from = environ.get("AWS_RETRY_MODE"), "AWS_RETRY_MODE"
    if not mode and settings.get("retry_mode"):
        mode, mode_from = settings["retry_mode"], f"retry_mode of {where_profile}"
    attempts, attempts_from = environ.get("AWS_MAX_ATTEMPTS"), "AWS_MAX_ATTEMPTS"
    if not attempts and settings.get("max_attempts"):
        attempts, attempts_from = settings["max_attempts"], f"max_attempts of {where_profile}"

    retries: dict[str, Any] = {}
    if mode:
        if mode not in RETRY_MODES:
            raise ConfigError(f"{mode_from} is {mode!r}, not one of {', '.join(RETRY_MODES)}")
        retries["mode"] = mode
    if attempts:
        try:
            total = int(attempts)
        except ValueError:
            total = 0
        if total < 1:
            raise ConfigError(f"{attempts_from} is {attempts!r}, not a whole number of at least 1")
        retries["total_max_attempts"] = total
    retries.setdefault("mode", DEFAULT_RETRY_MODE)
    return retries


def _checked_retries(conn: AwsConnection, retries: Any) -> dict[str, Any]:
    """config_kwargs.retries, checked here so that a mistake names its key."""
    if not isinstance(retries, dict):
        raise conn.error("config_kwargs.retries must be a table/object")
    for key, value in retries.items():
        if key == "mode":
            if value not in RETRY_MODES:
                raise conn.error(f"config_kwargs.retries.mode {value!r} is not one of {', '.join(RETRY_MODES)}")
        elif key in ("max_attempts", "total_max_attempts"):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise conn.error(f"config_kwargs.retries.{key} must be a whole number, not {value!r}")
        else:
            raise conn.error(f"config_kwargs.retries.{key} is not a retry setting "
                             "(mode, max_attempts, total_max_attempts)")
    return dict(retries)


def make_config(conn: AwsConnection, profile: str | None, environ: Mapping[str, str]) -> Config:
    kwargs = dict(conn.config_kwargs)
    if str(kwargs.get("signature_version", "")).lower() == "unsigned":
        kwargs["signature_version"] = UNSIGNED
    kwargs["retries"] = retry_settings(conn, profile, environ)
    kwargs.setdefault("connect_timeout", DEFAULT_CONNECT_TIMEOUT)
    kwargs.setdefault("read_timeout", DEFAULT_READ_TIMEOUT)
    try:
        return Config(**kwargs)
    except (TypeError, ValueError) as e:
        raise conn.error(f"config_kwargs: {e}") from None
