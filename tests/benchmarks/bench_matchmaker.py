"""Benchmark: the matchmaker's time per decision over 1,000 clusters of 16 nodes each (target < 20 ms).

Run on purpose (pytest does not collect it):

    .venv/bin/python -m tests.benchmarks.bench_matchmaker

Builds a fixed-seed inventory with a realistic mix of nodes (A100 40GB x8, H100 80GB x8, MIG-partitioned
H100 nodes, CPU-only nodes; random free amounts; some clusters unreachable, some dedicated, several
datacenters), times ``ClusterCapacity.from_nodes`` for every cluster once, then ``place()`` for a mix of
requests, and prints p50 / p95 / max per decision with PASS/FAIL against the target (judged on p95).
"""

from __future__ import annotations

import gc
import random
import statistics
import time

from inventory.matchmaker import ClusterCapacity, NodeCapacity, PlacementRequest, ResourceGroup, place
from paas.units import GIB

SEED = 20260
CLUSTERS = 1_000
NODES_PER_CLUSTER = 16
REQUESTS = 240
TARGET_MS = 20.0

A100 = "A100-SXM4-40GB"
H100 = "H100-80GB-HBM3"
DATACENTERS = [f"dc-{i}" for i in range(1, 7)]
ORGS = list(range(1, 31))
FLAVOR_SETS = [
    frozenset({"namespace"}),
    frozenset({"namespace", "virtual_cluster"}),
    frozenset({"namespace", "virtual_cluster", "vm"}),
    frozenset({"namespace", "bare_metal", "dedicated_cluster"}),
]
# H100 MIG layouts per GPU: seven 1g.10gb, or two 3g.40gb.
MIG_LAYOUTS = [{"1g.10gb": 7}, {"3g.40gb": 2}]


def _node(rng: random.Random, kind: str, index: int) -> NodeCapacity:
    name = f"node-{index:02d}"
    schedulable = rng.random() > 0.03
    if kind == "cpu":
        return NodeCapacity(
            name,
            cpu_millis_free=rng.randint(0, 128) * 1_000,
            memory_bytes_free=rng.randint(0, 512) * GIB,
            schedulable=schedulable,
        )
    cpu = rng.randint(0, 192) * 1_000 + rng.choice([0, 250, 500])
    memory = rng.randint(0, 2_048) * GIB
    if kind == "mig":
        layout = rng.choice(MIG_LAYOUTS)
        mig = {profile: rng.randint(0, per_gpu * 8) for profile, per_gpu in layout.items()}
        return NodeCapacity(
            name,
            gpu_product=H100,
            gpus_free=0,
            gpus_total=8,
            mig_free=mig,
            cpu_millis_free=cpu,
            memory_bytes_free=memory,
            schedulable=schedulable,
        )
    product = A100 if kind == "a100" else H100
    free = rng.choice([0, 0, 1, 2, 4, 6, 8, 8, rng.randint(0, 8)])
    return NodeCapacity(
        name,
        gpu_product=product,
        gpus_free=free,
        gpus_total=8,
        cpu_millis_free=cpu,
        memory_bytes_free=memory,
        schedulable=schedulable,
    )


def build_inventory(rng: random.Random) -> list[tuple[str, list[NodeCapacity], dict]]:
    """Clusters as (name, nodes, attributes), before aggregation."""
    mixes = {
        "a100": ["a100"] * 14 + ["cpu"] * 2,
        "h100": ["h100"] * 14 + ["cpu"] * 2,
        "mixed": ["a100"] * 6 + ["h100"] * 6 + ["mig"] * 2 + ["cpu"] * 2,
        "mig": ["mig"] * 10 + ["h100"] * 4 + ["cpu"] * 2,
        "cpu": ["cpu"] * 16,
    }
    kinds = list(mixes)
    weights = [30, 30, 20, 10, 10]
    inventory = []
    for i in range(CLUSTERS):
        mix = mixes[rng.choices(kinds, weights)[0]]
        nodes = [_node(rng, kind, j) for j, kind in enumerate(mix)]
        attributes = {
            "datacenter": rng.choice(DATACENTERS),
            "reachable": rng.random() > 0.05,
            "dedicated_org_id": rng.choice(ORGS) if rng.random() < 0.15 else None,
            "flavors": rng.choice(FLAVOR_SETS),
        }
        inventory.append((f"cluster-{i:04d}", nodes, attributes))
    return inventory


def build_requests(rng: random.Random, names: list[str]) -> list[PlacementRequest]:
    """A mix of request shapes, cycled, with random CPU/memory and occasional constraints."""

    def cpu_mem(cores: int, gib: int) -> dict:
        return {"cpu_millis": cores * 1_000, "memory_bytes": gib * GIB}

    shapes = [
        lambda: (ResourceGroup(gpu_model=rng.choice([A100, H100]), gpu_count=1, **cpu_mem(8, 64)),),
        lambda: (ResourceGroup(gpu_model=rng.choice([A100, H100]), gpu_count=8, **cpu_mem(96, 900)),),
        lambda: (ResourceGroup(gpu_model=H100, gpu_count=32, **cpu_mem(384, 3_000)),),
        lambda: (
            ResourceGroup(gpu_model=A100, gpu_count=4, **cpu_mem(32, 256)),
            ResourceGroup(gpu_model=H100, gpu_count=2, **cpu_mem(16, 128)),
        ),
        lambda: (
            ResourceGroup(gpu_model=A100, gpu_count=4, **cpu_mem(16, 128)),
            ResourceGroup(gpu_model=A100, gpu_count=4, **cpu_mem(16, 128)),
            ResourceGroup(cpu_millis=8_000, memory_bytes=32 * GIB),
        ),
        lambda: (ResourceGroup(mig_profile="1g.10gb", mig_count=rng.randint(1, 6), **cpu_mem(4, 32)),),
        lambda: (ResourceGroup(mig_profile="3g.40gb", mig_count=2, **cpu_mem(8, 64)),),
        lambda: (ResourceGroup(**cpu_mem(rng.randint(1, 64), rng.randint(1, 256))),),
    ]
    requests = []
    for i in range(REQUESTS):
        groups = shapes[i % len(shapes)]()
        kwargs: dict = {"org_id": rng.choice(ORGS)}
        roll = rng.random()
        if roll < 0.25:
            kwargs["datacenter"] = rng.choice(DATACENTERS)
        elif roll < 0.40:
            kwargs["allowed_clusters"] = tuple(rng.sample(names, rng.randint(1, 20)))
        if rng.random() < 0.1:
            kwargs["flavor"] = rng.choice(["vm", "virtual_cluster", "bare_metal"])
        requests.append(PlacementRequest(groups=groups, **kwargs))
    return requests


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main() -> bool:
    """Run the benchmark, print the figures; return True when it meets the target."""
    rng = random.Random(SEED)
    inventory = build_inventory(rng)
    node_count = sum(len(nodes) for _, nodes, _ in inventory)

    started = time.perf_counter()
    clusters = [ClusterCapacity.from_nodes(name, nodes, **attrs) for name, nodes, attrs in inventory]
    build_ms = (time.perf_counter() - started) * 1_000

    requests = build_requests(rng, [c.name for c in clusters])
    place(requests[0], clusters)  # warm-up

    timings: list[float] = []
    placed = 0
    gc.collect()
    for request in requests:
        started = time.perf_counter()
        placement = place(request, clusters)
        timings.append((time.perf_counter() - started) * 1_000)
        placed += placement.cluster is not None

    p50 = statistics.median(timings)
    p95 = _percentile(timings, 0.95)
    worst = max(timings)
    ok = p95 < TARGET_MS
    print(f"clusters: {len(clusters):,}  nodes: {node_count:,} ({NODES_PER_CLUSTER} per cluster)")
    print(f"aggregate build (ClusterCapacity.from_nodes, all clusters once): {build_ms:.1f} ms")
    print(f"decisions: {len(timings)} ({placed} placed, {len(timings) - placed} with no fit)")
    print(f"per decision: p50 {p50:.2f} ms  p95 {p95:.2f} ms  max {worst:.2f} ms")
    verdict = "PASS" if ok else "FAIL"
    print(f"{verdict}: p95 {p95:.2f} ms vs target {TARGET_MS:.0f} ms per decision")
    return ok


if __name__ == "__main__":
    raise SystemExit(0 if main() else 1)
