"""Session factories for the tests of credproc's factory handling: good ones that can be
told apart by their keys, and each kind of mistake a user can make."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta, timezone

import boto3
import botocore.session
from botocore.credentials import RefreshableCredentials

from credproc import BaseSessionFactory


def _session(access_key: str, counter_file: str | None = None) -> boto3.session.Session:
    """A session with refreshable credentials ``access_key``/..., valid for a day."""
    def refresh() -> dict[str, str]:
        if counter_file:
            with open(counter_file, "a", encoding="utf-8") as f:
                f.write(access_key + "\n")
        expiry = datetime.now(timezone.utc) + timedelta(days=1)
        return {"access_key": access_key, "secret_key": f"{access_key}-secret-part",
                "token": f"{access_key}-token-part", "expiry_time": expiry.isoformat()}

    botocore_session = botocore.session.get_session()
    botocore_session._credentials = RefreshableCredentials.create_from_metadata(
        metadata=refresh(), refresh_using=refresh, method="zoo")
    return boto3.session.Session(botocore_session=botocore_session)


class OtherFactory(BaseSessionFactory):
    """Overrides create_session: its credentials are the output, whatever the connection says."""

    def create_session(self) -> boto3.session.Session:
        return _session("AKIDOTHERFACTORY", self.extra_config.get("other_counter"))


class Outer:
    class Inner(BaseSessionFactory):
        def create_session(self) -> boto3.session.Session:
            return _session("AKIDNESTEDFACTORY")


class NotAFactory:
    def create_session(self):
        raise AssertionError("never called")


def not_a_class():
    raise AssertionError("never called")


class NoCredentialsFactory(BaseSessionFactory):
    """A session with nothing in it (boto3's chain finds nothing in the test environment)."""

    def _create_basic_session(self, session_kwargs):
        return boto3.session.Session(region_name="us-east-1")


class BotocoreSessionFactory(BaseSessionFactory):
    """Returns the botocore session instead of wrapping it in a boto3 one."""

    def create_session(self):
        return _session("AKIDBOTOCORE")._session


class RaisingFactory(BaseSessionFactory):
    def _create_basic_session(self, session_kwargs):
        raise ValueError(f"the federation refused user {self.extra_config.get('user', '?')}")


class PrintingFactory(BaseSessionFactory):
    """Writes to stdout every way it can: print(), a logging handler on the real stdout, a child
    process, an unflushed write."""

    def create_session(self) -> boto3.session.Session:
        import logging

        print("print() from the factory")
        own = logging.getLogger("printing_factory")
        own.addHandler(logging.StreamHandler(sys.__stdout__))
        own.warning("a handler on the real stdout")
        subprocess.run([sys.executable, "-c", "print('a child process of the factory')"], check=True)
        sys.__stdout__.write("an unflushed write")  # no newline, no flush
        self.log.warning("self.log from the factory")
        return _session("AKIDPRINTING")


class SecretFactory(BaseSessionFactory):
    """Reads its password through self.secret; logs it (a mistake) to show it is masked."""

    def create_session(self) -> boto3.session.Session:
        field = self.extra_config.get("secret_field", "federation.password")
        password = self.secret(field)
        self.log.warning("signing in with password %s", password)
        if password != self.extra_config.get("expect"):
            raise RuntimeError(f"wrong password {password}")
        return _session("AKIDSECRETFACTORY")
