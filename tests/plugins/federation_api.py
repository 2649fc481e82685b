"""Stand-in for an organisation's own federation library, as the seed's example imports it.

``get_federated_aws_credentials`` answers like a federation endpoint would: an STS-style
credentials dict. Each call appends a line to ``counter_file``, so the tests can count how
often credproc ran the federation (a cache hit must not).
"""

from __future__ import annotations


def get_federated_aws_credentials(username: str, counter_file: str, password: str | None = None,
                                  fail: str | None = None, **_ignored) -> dict[str, str]:
    with open(counter_file, "a", encoding="utf-8") as f:
        f.write(f"{username}\n")
    if fail:
        raise RuntimeError(fail)
    return {
        "AccessKeyId": "key",
        "SecretAccessKey": "secret",
        "SessionToken": "token",
        "Expiration": "2050-12-31T00:00:00Z",
    }
