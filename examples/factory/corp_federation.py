"""An example credproc session factory: AWS credentials from an organisation's own
federation endpoint (see README, "Writing a session factory").

The endpoint takes ``POST {"username": ..., "password": ...}`` (JSON) and answers with
STS-style credentials::

    {"AccessKeyId": "ASIA...", "SecretAccessKey": "...", "SessionToken": "...",
     "Expiration": "2026-11-29T11:27:18Z"}

Settings come from the connection's ``federation`` table: ``url``, ``username``, and the
``password``, best kept in the OS keyring (``credproc secret set corp --field
federation.password``) rather than in the config file; ``timeout`` in seconds (default 10).
Only the standard library is used, so the file can be dropped next to credproc as it is.

credproc prints the credentials and caches them until shortly before their ``Expiration``;
with a ``role_arn`` in the connection it assumes that role with them instead.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import boto3
import botocore.session
from botocore.credentials import RefreshableCredentials

from credproc import BaseSessionFactory


class FederationError(Exception):
    """The federation endpoint refused or failed: credproc exits 1 with this message."""


class CorpFederationFactory(BaseSessionFactory):
    def _create_basic_session(self, session_kwargs: dict[str, Any]) -> boto3.session.Session:
        settings = self.extra_config.get("federation")
        if not isinstance(settings, dict):
            # Not a federated connection: credproc's own key pair / default chain.
            return super()._create_basic_session(session_kwargs)
        credentials = RefreshableCredentials.create_from_metadata(
            metadata=self._federate(),
            refresh_using=self._federate,  # for long-lived Python code using this factory
            method="corp-federation",
        )
        botocore_session = botocore.session.get_session()
        botocore_session._credentials = credentials  # botocore has no public setter
        botocore_session.set_config_variable("region", self._get_region_name())
        return boto3.session.Session(botocore_session=botocore_session, **session_kwargs)

    def _federate(self) -> dict[str, Any]:
        """One call to the federation endpoint, as botocore's refreshable-credentials metadata."""
        settings = self.extra_config["federation"]
        url, username = settings["url"], settings["username"]
        password = self.secret("federation.password")  # the definition, else the OS keyring
        body = json.dumps({"username": username, "password": password}).encode()
        request = urllib.request.Request(url, data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        self.log.debug("federating %s at %s for connection %s", username, url, self.conn.conn_id)
        try:
            with urllib.request.urlopen(request, timeout=float(settings.get("timeout", 10))) as response:
                answer = json.load(response)
        except urllib.error.HTTPError as e:
            raise FederationError(f"{url} refused {username}: HTTP {e.code} {e.reason}") from None
        except (urllib.error.URLError, OSError) as e:
            raise FederationError(f"{url} did not answer: {getattr(e, 'reason', e)}") from None
        except ValueError:
            raise FederationError(f"{url} answered something that is not JSON") from None
        self.log.info("federated credentials %s for %s, expiring %s",
                      answer.get("AccessKeyId"), username, answer.get("Expiration"))
        return {
            "access_key": answer["AccessKeyId"],
            "secret_key": answer["SecretAccessKey"],
            "token": answer["SessionToken"],
            "expiry_time": answer["Expiration"],
        }
