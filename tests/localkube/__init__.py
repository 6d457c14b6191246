"""localkube: real Kubernetes control planes (built from source) with KWOK-simulated GPU nodes.

See ``tests/localkube/README.md``.
"""

from .cluster import ClusterError, LocalCluster
from .inventory import GpuSpec, NodeSpec, default_inventory

__all__ = ["ClusterError", "GpuSpec", "LocalCluster", "NodeSpec", "default_inventory"]
