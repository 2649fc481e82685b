"""A factory module whose own dependency is not installed."""

import nonexistent_federation_sdk  # noqa: F401

from credproc import BaseSessionFactory


class BrokenFactory(BaseSessionFactory):
    pass
