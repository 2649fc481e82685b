"""credproc: AWS credentials for ``credential_process``, from Airflow-style connections.

This module is imported on every run, including a cache hit, so it stays empty of
imports: ``BaseSessionFactory`` (which needs boto3) is loaded only when asked for.
"""

__version__ = "0.1.0"

__all__ = ["BaseSessionFactory", "__version__"]


def __getattr__(name: str):
    if name == "BaseSessionFactory":
        from credproc.factory import BaseSessionFactory

        return BaseSessionFactory
    raise AttributeError(f"module 'credproc' has no attribute {name!r}")
