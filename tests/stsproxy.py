"""The counting STS proxy under its old name, for benchmarks/_common.py: it puts tests/ on
sys.path and imports StsProxy from here. The proxy lives in servers/sts.py (which imports
from this same directory, so it resolves for any importer that found this module)."""

from servers.loopback import LoopbackServer  # noqa: F401
from servers.sts import StsProxy  # noqa: F401
