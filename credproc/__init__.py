"""credproc: AWS credentials for ``credential_process``, from Airflow-style connections.

This module is imported on every run, including a cache hit, so it stays empty of
imports: ``BaseSessionFactory`` (which needs boto3) is loaded only when asked for.
"""

__version__ = "0.1.0"

__all__ = ["BaseSessionFactory", "__version__"]

TYPE_CHECKING = False  # not typing: this module is imported on every run
if TYPE_CHECKING:
    from credproc.factory import BaseSessionFactory


def __getattr__(name: str) -> "type[BaseSessionFactory]":
    if name == "BaseSessionFactory":
        from credproc.factory import BaseSessionFactory

        return BaseSessionFactory
    raise AttributeError(f"module 'credproc' has no attribute {name!r}")
