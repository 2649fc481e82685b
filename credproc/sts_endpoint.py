"""Where a connection's STS calls go, and what decided it: for ``credproc show`` and
``credproc check``.

credproc gives its STS clients an endpoint only when the connection names one in
``service_config.sts.endpoint_url`` (``AwsConnection.sts_endpoint_url``), as Airflow's
assume-role and web-identity clients do; otherwise botocore resolves it. This module asks
botocore for the URL it resolves and names the place it came from, in botocore's order:
``AWS_ENDPOINT_URL_STS``, ``AWS_ENDPOINT_URL``, the ``sts`` entry of the profile's
``services`` section, the profile's ``endpoint_url``, else the region's default endpoint
(all but the last skipped when ``ignore_configured_endpoint_urls`` is on). A command's
module only: it imports botocore.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from credproc.log import one_line
from credproc.settings import as_boolean

if TYPE_CHECKING:
    from botocore.session import Session

    from credproc.connection import AwsConnection

FROM_CONNECTION = "service_config.sts.endpoint_url"


def describe(conn: AwsConnection, region: str | None, environ: Mapping[str, str]) -> dict[str, str | None]:
    """``{"url": ..., "from": ...}``: the STS endpoint of ``conn``'s calls and what set it.

    ``url`` is None when botocore cannot resolve one (no region, a missing profile: the
    main job fails with that reason, which ``from`` then says)."""
    if conn.sts_endpoint_url:
        return {"url": conn.sts_endpoint_url, "from": FROM_CONNECTION}
    import botocore.session
    from botocore import UNSIGNED
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError

    session = botocore.session.get_session()
    if conn.profile_name:
        session.set_config_variable("profile", conn.profile_name)
    if region:
        session.set_config_variable("region", region)
    try:
        origin = _origin(conn, session, environ)
        client = session.create_client("sts", config=Config(signature_version=UNSIGNED, **_endpoint_kwargs(conn)))
    except BotoCoreError as e:
        return {"url": None, "from": f"botocore cannot resolve it: {one_line(e)}"}
    return {"url": client.meta.endpoint_url, "from": f"botocore: {origin}"}


def _endpoint_kwargs(conn: AwsConnection) -> dict[str, Any]:
    """The connection's Config settings that change botocore's choice of endpoint."""
    keys = ("ignore_configured_endpoint_urls", "use_fips_endpoint", "use_dualstack_endpoint")
    return {key: conn.config_kwargs[key] for key in keys if key in conn.config_kwargs}


def _origin(conn: AwsConnection, session: Session, environ: Mapping[str, str]) -> str:
    """What botocore takes the endpoint from, in its own order."""
    region = session.get_config_variable("region")
    default = f"the default endpoint of region {region}" if region else "its default endpoint"
    ignore = conn.config_kwargs.get("ignore_configured_endpoint_urls")
    if ignore is None:
        ignore = session.get_config_variable("ignore_configured_endpoint_urls")
    if as_boolean(ignore):
        return f"{default} (configured endpoint URLs are ignored: ignore_configured_endpoint_urls)"
    for variable in ("AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL"):
        if environ.get(variable):
            return variable
    scoped = session.get_scoped_config()  # raises ProfileNotFound for a profile that is not there
    profile = session.get_config_variable("profile") or "default"
    where = f"AWS profile {profile!r} in {session.get_config_variable('config_file')}"
    section = scoped.get("services")
    if section:
        services = session.full_config.get("services", {}).get(section) or {}
        sts = services.get("sts")
        if isinstance(sts, dict) and sts.get("endpoint_url"):
            return f"sts.endpoint_url of services section {section!r} of {where}"
    if scoped.get("endpoint_url"):
        return f"endpoint_url of {where}"
    return default
