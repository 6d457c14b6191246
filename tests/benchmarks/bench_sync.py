"""Benchmark: the inventory sync of 50 clusters of 100 simulated nodes each.

Run on purpose (not part of the suite):  .venv/bin/python -m tests.benchmarks.bench_sync

One real local control plane (tests/localkube) runs 100 KWOK nodes (a mix of A100, H100, MIG and
CPU-only nodes); it is registered 50 times as 50 platform clusters, so each sync makes the real
calls (list nodes over HTTPS, parse GPU Feature Discovery labels and quantities, upsert the rows in
PostgreSQL). Prints the time of the first sync (inserts) and of a re-sync (updates), per cluster
and in all. The benchmark database is created fresh (``gpupaas_bench``) on the suite's PostgreSQL.
"""

import statistics
import sys
import time
from pathlib import Path


def _nodes():
    from tests.localkube.inventory import A100_40GB, H100_80GB, NodeSpec

    nodes = []
    for i in range(100):
        kind = i % 4
        if kind == 0:
            nodes.append(
                NodeSpec(f"a100-{i}", cpu=96, memory_gib=1152, gpu=A100_40GB, instance_type="p4d.24xlarge")
            )
        elif kind == 1:
            nodes.append(
                NodeSpec(f"h100-{i}", cpu=192, memory_gib=2048, gpu=H100_80GB, instance_type="p5.48xlarge")
            )
        else:
            nodes.append(NodeSpec(f"cpu-{i}", cpu=64, memory_gib=256, instance_type="m6i.16xlarge"))
    return nodes


def main() -> int:
    from tests.benchmarks._db import fresh_database

    fresh_database()
    from inventory import services
    from inventory.models import Node
    from tests.factories import make_operator
    from tests.localkube import LocalCluster

    operator = make_operator(username="bench")
    started = time.perf_counter()
    with LocalCluster(name="bench-sync", nodes=_nodes(), kata=False) as cluster:
        print(f"local control plane with 100 KWOK nodes ready in {time.perf_counter() - started:.1f} s")
        kubeconfig = Path(cluster.kubeconfig_path).read_text()
        clusters = [
            services.cluster_register(actor=operator, name=f"bench-{i:02d}", kubeconfig=kubeconfig)
            for i in range(50)
        ]
        for label in ("first sync (insert)", "re-sync (update)"):
            times = []
            total_start = time.perf_counter()
            for registered in clusters:
                start = time.perf_counter()
                count = services.cluster_sync_nodes(cluster_id=registered.pk)
                times.append(time.perf_counter() - start)
                assert count == 100, count
            total = time.perf_counter() - total_start
            print(
                f"{label}: 50 clusters x 100 nodes in {total:.2f} s; per cluster "
                f"p50 {statistics.median(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms"
            )
        print(f"node rows: {Node.objects.count()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
