"""The matchmaker: best-fit placement with reasons (pure Python, no Django, no database)."""

import json
import random

import pytest

from inventory.matchmaker import (
    ClusterCapacity,
    NodeCapacity,
    Placement,
    PlacementRequest,
    ResourceGroup,
    Verdict,
    format_cpu,
    format_gib,
    place,
)
from paas.units import GIB

A100 = "A100-SXM4-40GB"
H100 = "H100-80GB-HBM3"


def gpu_node(name, product, free, *, total=8, cpu=96_000, memory=1024 * GIB, schedulable=True):
    return NodeCapacity(
        name=name,
        gpu_product=product,
        gpus_free=free,
        gpus_total=total,
        cpu_millis_free=cpu,
        memory_bytes_free=memory,
        schedulable=schedulable,
    )


def cluster(name, *, nodes=(), **kwargs):
    return ClusterCapacity.from_nodes(name, nodes, **kwargs)


def gpus(model, count, **kwargs):
    return PlacementRequest(groups=(ResourceGroup(gpu_model=model, gpu_count=count),), **kwargs)


def verdict(placement, name):
    return next(v for v in placement.verdicts if v.cluster == name)


# ---------------------------------------------------------------------------------------------- from_nodes


def test_from_nodes_aggregates_schedulable_nodes_only_and_clamps_negatives():
    c = cluster(
        "c",
        nodes=[
            gpu_node("n1", A100, 3, cpu=10_000, memory=10 * GIB),
            gpu_node("n2", A100, 5, cpu=-500, memory=-GIB),  # over-committed: counts as zero
            gpu_node("n3", A100, 8, schedulable=False),  # cordoned: ignored
            NodeCapacity(
                "m1", gpu_product=H100, mig_free={"mig-1g.10gb": 7, "3g.40gb": 2}, cpu_millis_free=1
            ),
            NodeCapacity("m2", mig_free={"1g.10gb": 7}),
            NodeCapacity("cpu", cpu_millis_free=64_000, memory_bytes_free=256 * GIB),
        ],
        flavors=["namespace", "vm"],
    )
    assert c.gpus_free == {A100: 8, H100: 0}
    assert c.largest_node_gpus_free == {A100: 5, H100: 0}
    assert c.node_gpu_size == {A100: 8}
    assert c.mig_free == {"1g.10gb": 14, "3g.40gb": 2}
    assert c.cpu_millis_free == 10_000 + 1 + 64_000
    assert c.memory_bytes_free == 266 * GIB
    assert c.flavors == frozenset({"namespace", "vm"})


# ---------------------------------------------------------------------------------------------- best fit


def test_single_gpu_fits():
    placement = place(gpus(A100, 1), [cluster("a", nodes=[gpu_node("n", A100, 8)])])
    assert placement.cluster == "a"
    assert placement.verdicts[0] == Verdict("a", True, (), score=(7, 96_000, 1024 * GIB))


def test_best_fit_picks_the_cluster_leaving_the_least_gpus_free():
    clusters = [
        cluster("roomy", nodes=[gpu_node("n1", A100, 8), gpu_node("n2", A100, 8)]),
        cluster("snug", nodes=[gpu_node("n1", A100, 2), gpu_node("n2", A100, 1)]),
        cluster("middle", nodes=[gpu_node("n1", A100, 4)]),
        cluster("too-small", nodes=[gpu_node("n1", A100, 1)]),
        cluster("other-gpu", nodes=[gpu_node("n1", H100, 8)]),
    ]
    placement = place(gpus(A100, 2), clusters)
    assert placement.cluster == "snug"
    assert [v.cluster for v in placement.verdicts] == ["snug", "middle", "other-gpu", "roomy", "too-small"]
    assert [v.cluster for v in placement.fitting] == ["snug", "middle", "roomy"]
    assert verdict(placement, "snug").score[0] == 1
    assert verdict(placement, "too-small").reasons == (f"needs 2 nvidia.com/gpu of {A100}, 1 free",)
    assert verdict(placement, "other-gpu").reasons == (f"needs 2 nvidia.com/gpu of {A100}, 0 free",)


def test_best_fit_falls_back_to_cpu_then_memory_then_name():
    same_gpus = dict(gpus_free={A100: 4}, largest_node_gpus_free={A100: 4})
    clusters = [
        ClusterCapacity("a-more-cpu", cpu_millis_free=9_000, memory_bytes_free=10 * GIB, **same_gpus),
        ClusterCapacity("b-less-mem", cpu_millis_free=8_000, memory_bytes_free=9 * GIB, **same_gpus),
        ClusterCapacity("c-more-mem", cpu_millis_free=8_000, memory_bytes_free=10 * GIB, **same_gpus),
    ]
    assert place(gpus(A100, 4), clusters).cluster == "b-less-mem"


def test_tie_break_by_name():
    clusters = [cluster(name, nodes=[gpu_node("n", A100, 8)]) for name in ("zeta", "alpha", "mid")]
    placement = place(gpus(A100, 8), clusters)
    assert placement.cluster == "alpha"
    assert [v.cluster for v in placement.verdicts] == ["alpha", "mid", "zeta"]
    assert len({v.score for v in placement.verdicts}) == 1


# -------------------------------------------------------------------------------------------- heterogeneous


def test_heterogeneous_a100_and_h100_in_one_request():
    request = PlacementRequest(
        groups=(
            ResourceGroup(gpu_model=A100, gpu_count=4, cpu_millis=16_000, memory_bytes=128 * GIB),
            ResourceGroup(gpu_model=H100, gpu_count=2, cpu_millis=8_000, memory_bytes=64 * GIB),
        )
    )
    both = cluster("both", nodes=[gpu_node("a", A100, 4), gpu_node("h", H100, 2)])
    a100_only = cluster("a100-only", nodes=[gpu_node("a", A100, 8)])
    placement = place(request, [a100_only, both])
    assert placement.cluster == "both"
    assert verdict(placement, "both").score == (0, 2 * 96_000 - 24_000, 2048 * GIB - 192 * GIB)
    assert verdict(placement, "a100-only").reasons == (f"needs 2 nvidia.com/gpu of {H100}, 0 free",)


def test_two_groups_of_the_same_model_sum_up():
    request = PlacementRequest(
        groups=(ResourceGroup(gpu_model=A100, gpu_count=4), ResourceGroup(gpu_model=A100, gpu_count=4))
    )
    half = cluster("half", nodes=[gpu_node("n1", A100, 4)])
    enough = cluster("enough", nodes=[gpu_node("n1", A100, 4), gpu_node("n2", A100, 4)])
    placement = place(request, [half, enough])
    assert placement.cluster == "enough"
    assert verdict(placement, "half").reasons == (f"needs 8 nvidia.com/gpu of {A100}, 4 free",)


def test_cpu_and_memory_are_summed_over_groups():
    request = PlacementRequest(
        groups=(
            ResourceGroup(cpu_millis=104_000, memory_bytes=400 * GIB),
            ResourceGroup(cpu_millis=104_000, memory_bytes=400 * GIB),
        )
    )
    small = ClusterCapacity("small", cpu_millis_free=96_000, memory_bytes_free=512 * GIB)
    placement = place(request, [small])
    assert placement.cluster is None
    assert verdict(placement, "small").reasons == (
        "needs 208 CPU, 96 free",
        "needs 800 GiB memory, 512 free",
    )


# ---------------------------------------------------------------------------------------------------- MIG


def test_mig_profile_placement_and_shortfall():
    request = PlacementRequest(groups=(ResourceGroup(mig_profile="1g.10gb", mig_count=3),))
    clusters = [
        cluster("two", nodes=[NodeCapacity("m", gpu_product=H100, mig_free={"1g.10gb": 2})]),
        cluster("many", nodes=[NodeCapacity("m", gpu_product=H100, mig_free={"1g.10gb": 28})]),
        cluster("some", nodes=[NodeCapacity("m", gpu_product=H100, mig_free={"mig-1g.10gb": 7})]),
        cluster("other-profile", nodes=[NodeCapacity("m", gpu_product=H100, mig_free={"3g.40gb": 8})]),
    ]
    placement = place(request, clusters)
    assert placement.cluster == "some"
    assert verdict(placement, "some").score[0] == 4
    assert verdict(placement, "two").reasons == ("needs 3 nvidia.com/mig-1g.10gb, 2 free",)
    assert verdict(placement, "other-profile").reasons == ("needs 3 nvidia.com/mig-1g.10gb, 0 free",)


def test_mig_profile_prefix_is_normalized():
    assert ResourceGroup(mig_profile="nvidia.com/mig-1g.10gb", mig_count=1).mig_profile == "1g.10gb"
    assert ResourceGroup(mig_profile="mig-2g.20gb", mig_count=1).mig_profile == "2g.20gb"


# ----------------------------------------------------------------------------------------------- CPU only


def test_cpu_only_profile_uses_cpu_then_memory_then_name():
    request = PlacementRequest(groups=(ResourceGroup(cpu_millis=2_500, memory_bytes=8 * GIB),))
    clusters = [
        ClusterCapacity("big", cpu_millis_free=64_000, memory_bytes_free=256 * GIB),
        ClusterCapacity("tight", cpu_millis_free=3_000, memory_bytes_free=512 * GIB),
        ClusterCapacity("tight-b", cpu_millis_free=3_000, memory_bytes_free=64 * GIB),
        ClusterCapacity("tight-a", cpu_millis_free=3_000, memory_bytes_free=64 * GIB),
        ClusterCapacity("too-small", cpu_millis_free=2_000, memory_bytes_free=GIB // 2),
    ]
    placement = place(request, clusters)
    assert placement.cluster == "tight-a"
    assert verdict(placement, "tight-a").score == (0, 500, 56 * GIB)
    assert verdict(placement, "too-small").reasons == (
        "needs 2.5 CPU, 2 free",
        "needs 8 GiB memory, 0.5 free",
    )
    text = placement.explain()
    assert "leaves 0.5 CPU and 56 GiB memory free" in text
    assert "GPU/MIG" not in text


# ------------------------------------------------------------------------------------------------ filters


def test_datacenter_pinning():
    node = gpu_node("n", A100, 8)
    clusters = [
        cluster("east", nodes=[node], datacenter="dc-east"),
        cluster("west", nodes=[node], datacenter="dc-west"),
        cluster("nowhere", nodes=[node]),
    ]
    placement = place(gpus(A100, 1, datacenter="dc-west"), clusters)
    assert placement.cluster == "west"
    assert verdict(placement, "east").reasons == ("in datacenter dc-east, request pins dc-west",)
    assert verdict(placement, "nowhere").reasons == ("in no datacenter, request pins dc-west",)
    assert not verdict(placement, "east").eligible


def test_allowed_cluster_list():
    clusters = [cluster(name, nodes=[gpu_node("n", A100, 8 if name == "c" else 1)]) for name in "abcd"]
    placement = place(gpus(A100, 1, allowed_clusters=("d", "b")), clusters)
    # "b" and "d" are allowed and equally snug; "a" would be as good but is not allowed.
    assert placement.cluster == "b"
    assert verdict(placement, "a").reasons == ("not in the allowed clusters: b, d",)
    assert verdict(placement, "c").reasons == ("not in the allowed clusters: b, d",)
    assert verdict(placement, "d").fits


def test_dedicated_cluster_is_visible_to_its_org_only():
    node = gpu_node("n", A100, 1)
    clusters = [
        cluster("shared", nodes=[gpu_node("n", A100, 8)]),
        cluster("acme-only", nodes=[node], dedicated_org_id=42),
    ]
    assert place(gpus(A100, 1, org_id=42), clusters).cluster == "acme-only"

    placement = place(gpus(A100, 1, org_id=7), clusters)
    assert placement.cluster == "shared"
    reasons = verdict(placement, "acme-only").reasons
    assert reasons == ("dedicated to another organization",)
    assert "42" not in placement.explain()
    assert "42" not in json.dumps(placement.as_dict())

    assert verdict(place(gpus(A100, 1), clusters), "acme-only").reasons == (
        "dedicated to another organization",
    )


def test_unreachable_cluster_is_skipped_with_a_reason():
    clusters = [
        cluster("down", nodes=[gpu_node("n", A100, 1)], reachable=False),
        cluster("up", nodes=[gpu_node("n", A100, 8)]),
    ]
    placement = place(gpus(A100, 1), clusters)
    assert placement.cluster == "up"
    assert verdict(placement, "down").reasons == ("unreachable",)


def test_flavor_filter():
    clusters = [
        cluster("ns", nodes=[gpu_node("n", A100, 1)]),
        cluster("vms", nodes=[gpu_node("n", A100, 8)], flavors={"namespace", "vm"}),
    ]
    placement = place(gpus(A100, 1, flavor="vm"), clusters)
    assert placement.cluster == "vms"
    assert verdict(placement, "ns").reasons == ("does not offer the vm flavor",)


def test_filter_reasons_are_all_listed_and_capacity_is_not_checked():
    c = cluster("bad", nodes=[], reachable=False, datacenter="dc-1", dedicated_org_id=3)
    placement = place(gpus(A100, 8, datacenter="dc-2", allowed_clusters=("x",), flavor="vm"), [c])
    assert verdict(placement, "bad").reasons == (
        "unreachable",
        "in datacenter dc-1, request pins dc-2",
        "not in the allowed clusters: x",
        "dedicated to another organization",
        "does not offer the vm flavor",
    )


# ------------------------------------------------------------------------------------------------- no fit


def test_no_fit_explains_every_cluster_with_exact_numbers():
    request = PlacementRequest(
        groups=(ResourceGroup(gpu_model=A100, gpu_count=8, cpu_millis=64_500, memory_bytes=600 * GIB),),
    )
    clusters = [
        cluster("half", nodes=[gpu_node("n", A100, 4, cpu=96_000, memory=1024 * GIB)]),
        cluster("none", nodes=[NodeCapacity("c", cpu_millis_free=32_000, memory_bytes_free=512 * GIB)]),
        cluster("down", nodes=[gpu_node("n", A100, 8)], reachable=False),
    ]
    placement = place(request, clusters)
    assert placement.cluster is None
    assert [v.cluster for v in placement.verdicts] == ["down", "half", "none"]
    assert placement.closest() == ("half",)
    text = placement.explain()
    lines = text.splitlines()
    assert lines[0] == f"Request: 8 nvidia.com/gpu of {A100}, 64.5 CPU, 600 GiB memory (flavor namespace)."
    assert lines[1].startswith("No cluster fits: none of the 3 clusters considered can take this request.")
    assert "1 was excluded before capacity was checked" in lines[1]
    assert "2 were short of capacity; closest: half (" in lines[1]
    assert f"  - half: needs 8 nvidia.com/gpu of {A100}, 4 free" in lines
    assert (
        f"  - none: needs 8 nvidia.com/gpu of {A100}, 0 free; needs 64.5 CPU, 32 free; "
        "needs 600 GiB memory, 512 free"
    ) in lines
    assert "  - down: unreachable" in lines


def test_no_clusters_at_all():
    placement = place(gpus(A100, 1), [])
    assert placement.cluster is None
    assert placement.verdicts == ()
    assert "no clusters to consider" in placement.explain()


def test_explain_names_the_choice_and_the_rejections():
    clusters = [
        cluster("a", nodes=[gpu_node("n", A100, 8)]),
        cluster("b", nodes=[gpu_node("n", A100, 2)]),
        cluster("c", nodes=[gpu_node("n", A100, 0)]),
    ]
    text = place(gpus(A100, 2), clusters).explain()
    assert "Placed on cluster b: the best fit of 2 fitting clusters out of 3 considered" in text
    assert "leaves 0 requested GPU/MIG units, 96 CPU and 1024 GiB memory free" in text
    assert "Also fit (ranked):\n  - a: leaves 6 requested GPU/MIG units" in text
    assert text.endswith(f"Rejected:\n  - c: needs 2 nvidia.com/gpu of {A100}, 0 free")


# ----------------------------------------------------------------------------------------- one-node rule


def test_small_group_must_fit_on_one_node():
    scattered = cluster("scattered", nodes=[gpu_node(f"n{i}", A100, 2) for i in range(4)])
    together = cluster("together", nodes=[gpu_node("n0", A100, 4), gpu_node("n1", A100, 8)])
    placement = place(gpus(A100, 4), [scattered, together])
    assert placement.cluster == "together"
    assert verdict(placement, "scattered").reasons == (
        f"needs 4 nvidia.com/gpu of {A100} on one node, at most 2 free on any node",
    )


def test_group_larger_than_a_node_may_span_nodes():
    spread = cluster("spread", nodes=[gpu_node(f"n{i}", A100, 6) for i in range(6)])  # 36 free, none whole
    placement = place(gpus(A100, 32), [spread])
    assert placement.cluster == "spread"


def test_one_node_rule_uses_the_reported_node_size():
    # Nodes of 4 GPUs: a group of 8 cannot be on one node, so it spans nodes.
    small_nodes = cluster("l40s", nodes=[gpu_node(f"n{i}", "L40S", 4, total=4) for i in range(3)])
    assert place(gpus("L40S", 8), [small_nodes]).cluster == "l40s"
    # Without a reported size, 8 GPUs per node is assumed: a group of 8 needs a whole free node.
    unknown = cluster("unknown", nodes=[gpu_node(f"n{i}", "L40S", 4, total=0) for i in range(3)])
    assert verdict(place(gpus("L40S", 8), [unknown]), "unknown").reasons == (
        "needs 8 nvidia.com/gpu of L40S on one node, at most 4 free on any node",
    )


def test_one_node_reason_only_when_the_total_suffices():
    c = cluster("c", nodes=[gpu_node("n0", A100, 2), gpu_node("n1", A100, 1)])
    assert verdict(place(gpus(A100, 4), [c]), "c").reasons == (f"needs 4 nvidia.com/gpu of {A100}, 3 free",)


# ----------------------------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: PlacementRequest(groups=()), "no resource groups"),
        (lambda: ResourceGroup(gpu_model=A100, gpu_count=-1), "gpu_count must not be negative"),
        (lambda: ResourceGroup(cpu_millis=-1), "cpu_millis must not be negative"),
        (lambda: ResourceGroup(memory_bytes=-5), "memory_bytes must not be negative"),
        (lambda: ResourceGroup(mig_profile="1g.10gb", mig_count=-2), "mig_count must not be negative"),
        (
            lambda: ResourceGroup(gpu_model=A100, gpu_count=1, mig_profile="1g.10gb", mig_count=1),
            "both whole GPUs",
        ),
        (lambda: ResourceGroup(gpu_count=2), "gpu_count=2 needs a gpu_model"),
        (lambda: ResourceGroup(mig_count=2), "mig_count=2 needs a mig_profile"),
        (lambda: ResourceGroup(cpu_millis=1.5), "cpu_millis must be an integer"),
        (lambda: PlacementRequest(groups=(ResourceGroup(),)), "group 1 asks for no resources"),
        (lambda: PlacementRequest(groups=(ResourceGroup(cpu_millis=1),), flavor="lambda"), "unknown flavor"),
    ],
)
def test_request_validation(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_duplicate_cluster_names_are_rejected():
    with pytest.raises(ValueError, match="duplicate cluster name 'a'"):
        place(gpus(A100, 1), [ClusterCapacity("a"), ClusterCapacity("a")])


# ---------------------------------------------------------------------------------------------- determinism


def _random_clusters(rng, count):
    clusters = []
    for i in range(count):
        nodes = [
            gpu_node(f"n{j}", rng.choice([A100, H100]), rng.randint(0, 8), cpu=rng.randint(0, 4) * 16_000)
            for j in range(4)
        ]
        clusters.append(
            cluster(
                f"c{i:03d}",
                nodes=nodes,
                datacenter=rng.choice(["dc-1", "dc-2"]),
                reachable=rng.random() > 0.1,
                dedicated_org_id=rng.choice([None, None, None, 1, 2]),
            )
        )
    return clusters


def test_same_input_in_any_order_gives_the_same_output():
    rng = random.Random(1234)
    clusters = _random_clusters(rng, 60)
    # Make several clusters tie exactly, so only the name decides.
    clusters += [cluster(name, nodes=[gpu_node("n", A100, 3)]) for name in ("tie-b", "tie-a", "tie-c")]
    request = PlacementRequest(
        groups=(ResourceGroup(gpu_model=A100, gpu_count=2, cpu_millis=1_000),), org_id=1
    )
    expected = place(request, clusters)
    assert expected.cluster is not None
    for seed in range(20):
        shuffled = clusters[:]
        random.Random(seed).shuffle(shuffled)
        result = place(request, shuffled)
        assert result == expected
        assert result.explain() == expected.explain()
        assert result.as_dict() == expected.as_dict()


def test_tied_clusters_are_decided_by_name_regardless_of_order():
    clusters = [cluster(name, nodes=[gpu_node("n", A100, 3)]) for name in ("tie-b", "tie-a", "tie-c")]
    for seed in range(10):
        random.Random(seed).shuffle(clusters)
        assert place(gpus(A100, 3), clusters).cluster == "tie-a"


# ------------------------------------------------------------------------------------------ serialisation


def test_as_dict_is_json_serialisable_and_round_trips():
    request = PlacementRequest(
        groups=(
            ResourceGroup(gpu_model=A100, gpu_count=2, cpu_millis=8_000, memory_bytes=64 * GIB),
            ResourceGroup(mig_profile="1g.10gb", mig_count=1),
        ),
        datacenter="dc-1",
        allowed_clusters=("a", "b"),
        org_id=5,
    )
    clusters = [
        cluster(
            "a",
            nodes=[gpu_node("n", A100, 4), NodeCapacity("m", mig_free={"1g.10gb": 7})],
            datacenter="dc-1",
        ),
        cluster("b", nodes=[gpu_node("n", A100, 1)], datacenter="dc-1"),
        cluster("c", nodes=[gpu_node("n", A100, 8)], datacenter="dc-2"),
    ]
    placement = place(request, clusters)
    data = json.loads(json.dumps(placement.as_dict()))
    assert data["cluster"] == "a"
    assert data["request"]["groups"][1] == {
        "gpu_model": "",
        "gpu_count": 0,
        "mig_profile": "1g.10gb",
        "mig_count": 1,
        "cpu_millis": 0,
        "memory_bytes": 0,
    }
    assert data["verdicts"][0] == {
        "cluster": "a",
        "fits": True,
        "reasons": [],
        "score": [8, 96_000 - 8_000, 1024 * GIB - 64 * GIB],
        "eligible": True,
        "shortfall": None,
    }
    assert data["explanation"] == placement.explain()
    assert Placement.from_dict(data) == placement

    no_fit = place(gpus(A100, 16), clusters)
    assert json.loads(json.dumps(no_fit.as_dict()))["cluster"] is None


# ---------------------------------------------------------------------------------------------- formatting


@pytest.mark.parametrize(
    ("millis", "text"),
    [
        (208_000, "208"),
        (96_000, "96"),
        (1_500, "1.5"),
        (250, "0.25"),
        (1, "0.001"),
        (0, "0"),
        (12_340, "12.34"),
    ],
)
def test_format_cpu(millis, text):
    assert format_cpu(millis) == text


def test_format_gib():
    assert format_gib(800 * GIB) == "800"
    assert format_gib(GIB // 2) == "0.5"
    assert format_gib(0) == "0"
    # A shortfall never prints need and free as equal.
    need, free = 800 * GIB + GIB // 100, 800 * GIB
    assert format_gib(need, "up") == "800.1"
    assert format_gib(free, "down") == "800"
