"""The seed document's custom session factory, unchanged but for one line: it imports
``BaseSessionFactory`` from credproc instead of from Airflow's Amazon provider.

It federates when the connection's extra has a ``federation`` table, and otherwise falls
back to the base class's session; its credentials are botocore ``RefreshableCredentials``
built from the federation call's answer.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import boto3
import botocore.session
from botocore.credentials import RefreshableCredentials

from credproc import BaseSessionFactory  # the only line that differs from the seed's example
from federation_api import get_federated_aws_credentials


class MyCustomSessionFactory(BaseSessionFactory):
    @cached_property
    def federated(self) -> bool:
        return "federation" in self.extra_config

    def _create_basic_session(self, session_kwargs: dict[str, Any]) -> boto3.session.Session:
        if self.federated:
            return self._create_federated_session(session_kwargs)
        return super()._create_basic_session(session_kwargs)

    def _create_federated_session(self, session_kwargs: dict[str, Any]) -> boto3.session.Session:
        username = self.extra_config["federation"]["username"]
        region_name = self._get_region_name()
        self.log.debug(
            "Creating federated session with username=%s region_name=%s for connection %s",
            username,
            region_name,
            self.conn.conn_id,
        )
        credentials = RefreshableCredentials.create_from_metadata(
            metadata=self._refresh_federated_credentials(),
            refresh_using=self._refresh_federated_credentials,
            method="custom-federation",
        )
        session = botocore.session.get_session()
        session._credentials = credentials
        session.set_config_variable("region", region_name)
        return boto3.session.Session(botocore_session=session, **session_kwargs)

    def _refresh_federated_credentials(self) -> dict[str, str]:
        self.log.debug("Refreshing federated AWS credentials")
        credentials = get_federated_aws_credentials(**self.extra_config["federation"])
        access_key_id = credentials["AccessKeyId"]
        expiry_time = credentials["Expiration"]
        self.log.info(
            "New federated AWS credentials received with aws_access_key_id=%s and expiry_time=%s "
            "for connection %s",
            access_key_id,
            expiry_time,
            self.conn.conn_id,
        )
        return {
            "access_key": access_key_id,
            "secret_key": credentials["SecretAccessKey"],
            "token": credentials["SessionToken"],
            "expiry_time": expiry_time,
        }
