"""Which environment variables a connection's credentials depend on: the cache keys on those.

A fetch records them beside its entry (``cache.Bucket``), so that processes whose
environments differ only in what the connection never reads share one entry, and ones that
differ in what it does read never do. Each rule says where botocore (or google-auth) would
read the variable, and is skipped when the definition decides that part itself:

* the initial credentials: boto3's default chain, unless the definition has a key pair;
  only ``assume_role`` and the role-less case use them (SAML and web identity send an
  unsigned call whose proof is the assertion or the token);
* the region: ``AWS_REGION`` and the profile, unless the definition names one;
* the STS endpoint: ``AWS_ENDPOINT_URL_STS``, ``AWS_ENDPOINT_URL``,
  ``AWS_IGNORE_CONFIGURED_ENDPOINT_URLS`` and the profile's ``endpoint_url``s, unless the
  definition names one in ``service_config.sts.endpoint_url`` (its ``endpoint_url`` and
  ``host`` are other services' and leave the STS endpoint to botocore);
* web identity: the token file variable when the definition names no token file, and the
  Google variables for Google.

A session factory of the user's may read anything: it depends on every variable of
``cache.IDENTITY_VARIABLES``, as every connection did before, unless its class names its
own in ``cache_variables``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from credproc.cache import IDENTITY_VARIABLES

if TYPE_CHECKING:
    from credproc.connection import AwsConnection

# Where the shared config files are and which profile in them applies.
PROFILE = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE")
# boto3's default chain beyond the profile: the environment's own keys, web identity
# (IRSA), the container endpoint. (Instance metadata has no variable that names it.)
CHAIN = (*PROFILE, "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ROLE_ARN",
         "AWS_ROLE_SESSION_NAME", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
         "AWS_CONTAINER_CREDENTIALS_FULL_URI")
REGION = ("AWS_REGION", "AWS_DEFAULT_REGION", *PROFILE)
ENDPOINT = ("AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", *PROFILE)
GOOGLE = ("GOOGLE_APPLICATION_CREDENTIALS", "CLOUDSDK_CONFIG", "GCE_METADATA_HOST", "GCE_METADATA_IP")


def variables(conn: AwsConnection, factory_class: type | None = None) -> tuple[str, ...]:
    """The variables of ``cache.IDENTITY_VARIABLES`` that can change what ``conn`` yields,
    in that order (a factory's own ``cache_variables`` sorted). ``factory_class`` is the
    session factory when it is not credproc's own."""
    if factory_class is not None:
        declared = getattr(factory_class, "cache_variables", None)
        # sorted: a set's order changes with each process's hash seed, and the bucket's
        # record of the variables would be rewritten by every fetch
        if declared is None:
            return IDENTITY_VARIABLES
        names = (declared,) if isinstance(declared, str) else tuple(declared)  # one name, not its letters
        return tuple(sorted(set(names)))
    needed: set[str] = set()
    method = conn.assume_role_method or "assume_role"
    signed = method == "assume_role" or not conn.role_arn  # the initial credentials are used
    if signed and conn.uses_default_chain:
        needed.update(CHAIN)
    if not conn.region_name:
        needed.update(REGION)
    if not conn.sts_endpoint_url:
        needed.update(ENDPOINT)
    if conn.profile_name:
        needed.update(("AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"))
    if conn.role_arn and method == "assume_role_with_web_identity":
        needed.update(_web_identity(conn))
    return tuple(name for name in IDENTITY_VARIABLES if name in needed)


def _web_identity(conn: AwsConnection) -> tuple[str, ...]:
    extra = conn.extra_config
    provider = extra.get("assume_role_with_web_identity_federation")
    if isinstance(provider, str) and provider.strip() == "google":
        return GOOGLE
    path = extra.get("assume_role_with_web_identity_token_file")
    if isinstance(path, str) and path.strip():  # blank: token_file reads the variable instead
        return ()
    return ("AWS_WEB_IDENTITY_TOKEN_FILE",)
