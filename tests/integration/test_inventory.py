"""Inventory against the real local control plane: registration, sync, partitioning, secrets."""

import logging
import threading
from pathlib import Path

import pytest
import yaml
from django.db import connection

from inventory import kube, services, tasks
from inventory.models import Cluster, MigChange, Node, Storage
from paas.audit import audit_verify
from paas.errors import ValidationFailed
from tests.support.wait import wait_for

pytestmark = pytest.mark.kube


@pytest.fixture
def kubeconfig(kube_cluster) -> str:
    return Path(kube_cluster.kubeconfig_path).read_text()


@pytest.fixture
def registered(world, kubeconfig, django_capture_on_commit_callbacks) -> Cluster:
    datacenter = services.datacenter_create(
        actor=world.operator,
        name="dc-local",
        kind="data_center",
        infrastructure_type="bare_metal",
        operating_system="Ubuntu 22.04 LTS",
        gpu_types=["A100", "H100"],
        credentials="ssh-ed25519 AAAA-secret-key",
    )
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        cluster = services.cluster_register(
            actor=world.operator,
            name="local",
            datacenter=datacenter,
            kubeconfig=kubeconfig,
            labels={"region": "lab"},
        )
    # the refresh is enqueued on commit, for the cluster's agent (beside it: the audit event's sealer)
    assert len([c for c in callbacks if "enqueue_on" in getattr(c, "__qualname__", "")]) == 1
    tasks.cluster_refresh(cluster.pk)  # run it here, as the worker would
    cluster.refresh_from_db()
    return cluster


def test_sync_reads_gpu_and_mig_nodes(registered):
    cluster = registered
    assert cluster.status == "reachable" and cluster.kubernetes_version.startswith("v1.")
    assert cluster.offers_sandbox_runtime is True and cluster.last_seen_at is not None
    nodes = {n.name: n for n in Node.objects.filter(cluster=cluster)}
    a100 = nodes["gpu-a100-0"]
    assert (a100.gpu_product, a100.gpu_count, a100.allocatable_gpus, a100.gpu_memory_mib) == (
        "A100-SXM4-40GB",
        8,
        8,
        40960,
    )
    assert a100.schedulable and a100.ready and a100.allocatable_cpu_millis > 90_000
    h100 = nodes["gpu-h100-0"]
    assert (h100.gpu_product, h100.allocatable_gpus) == ("NVIDIA-H100-80GB-HBM3", 8)
    mig_node = nodes["gpu-a100-mig-0"]
    assert (mig_node.mig_strategy, mig_node.mig_config, mig_node.mig_config_state) == (
        "mixed",
        "all-1g.10gb",
        "success",
    )
    assert mig_node.allocatable_mig == {"1g.10gb": 56} and mig_node.allocatable_gpus == 0
    assert nodes["gpu-a100-mig-1"].allocatable_mig == {"1g.10gb": 16, "2g.20gb": 8, "3g.40gb": 8}
    cpu = nodes["cpu-0"]
    assert (cpu.gpu_product, cpu.gpu_count, cpu.allocatable_gpus) == ("", 0, 0)
    # A second sync converges: same rows, nothing duplicated.
    ids = set(Node.objects.filter(cluster=cluster).values_list("pk", flat=True))
    assert services.cluster_sync_nodes(cluster_id=cluster.pk) == len(ids)
    assert set(Node.objects.filter(cluster=cluster).values_list("pk", flat=True)) == ids


def test_unreachable_cluster_is_reported_not_fatal(world, kubeconfig):
    dead = yaml.safe_load(kubeconfig)
    dead["clusters"][0]["cluster"]["server"] = "https://127.0.0.1:1"  # nothing listens there
    cluster = services.cluster_register(actor=world.operator, name="gone", kubeconfig=yaml.safe_dump(dead))
    assert tasks.cluster_refresh(cluster.pk) == 0
    cluster.refresh_from_db()
    assert cluster.status == "unreachable" and "Cannot reach the API server" in cluster.status_message
    # Wrong credentials: the API server is there but refuses us.
    forged = yaml.safe_load(kubeconfig)
    forged["users"][0]["user"] = {"token": "not-a-valid-token"}
    refused = services.cluster_register(
        actor=world.operator, name="refused", kubeconfig=yaml.safe_dump(forged)
    )
    tasks.cluster_refresh(refused.pk)
    refused.refresh_from_db()
    assert refused.status == "unreachable" and "refused the credentials (HTTP 401)" in refused.status_message
    # The sync of every cluster goes on regardless (each one on its agent's queue).
    queued = []
    assert services.inventory_sync_all(enqueue=lambda *a, **kw: queued.append((a, kw))) == 2
    assert {kw["cluster"] for _, kw in queued} == {"default"}


def test_partitioning_sets_the_label_and_follows_the_state(registered, kube_cluster):
    """The test plays NVIDIA's MIG manager (it needs real GPUs): it sees the requested config and
    reports success through the state label, as the manager does."""
    from kubernetes import client as k8s

    core = k8s.CoreV1Api(kube_cluster.api_client())
    operator = registered._world_operator if hasattr(registered, "_world_operator") else None
    from tenancy.models import User

    operator = User.objects.filter(is_superuser=True).first()
    change = services.mig_change_request(
        actor=operator, cluster=registered, config="all-2g.20gb", node_names=["gpu-a100-mig-0"]
    )
    assert change.previous_configs == {"gpu-a100-mig-0": "all-1g.10gb"}

    def mig_manager():
        def requested():
            labels = core.read_node("gpu-a100-mig-0").metadata.labels
            return (
                labels.get("nvidia.com/mig.config") == "all-2g.20gb"
                and labels.get("nvidia.com/mig.config.state") == "pending"
            )

        wait_for(requested, timeout=30, what="the platform's MIG request")
        core.patch_node(
            "gpu-a100-mig-0", {"metadata": {"labels": {"nvidia.com/mig.config.state": "success"}}}
        )

    manager = threading.Thread(target=mig_manager)
    manager.start()
    try:
        done = services.mig_change_apply(change_id=change.pk, poll_seconds=0.2, deadline_seconds=30)
    finally:
        manager.join()
        core.patch_node(
            "gpu-a100-mig-0",
            {
                "metadata": {
                    "labels": {
                        "nvidia.com/mig.config": "all-1g.10gb",
                        "nvidia.com/mig.config.state": "success",
                    }
                }
            },
        )
    assert done.state == MigChange.State.SUCCESS and done.finished_at
    assert Node.objects.get(cluster=registered, name="gpu-a100-mig-0").mig_config == "all-2g.20gb"
    assert audit_verify().ok


def test_partitioning_failure_is_reported(registered, kube_cluster):
    from kubernetes import client as k8s

    from tenancy.models import User

    core = k8s.CoreV1Api(kube_cluster.api_client())
    operator = User.objects.filter(is_superuser=True).first()
    change = services.mig_change_request(
        actor=operator,
        cluster=registered,
        config="all-3g.40gb",
        node_selector="nvidia.com/mig.config=all-balanced",
    )
    assert change.node_names == ["gpu-a100-mig-1"]

    def failing_manager():
        wait_for(
            lambda: (
                core.read_node("gpu-a100-mig-1").metadata.labels.get("nvidia.com/mig.config.state")
                == "pending"
            ),
            timeout=30,
        )
        core.patch_node("gpu-a100-mig-1", {"metadata": {"labels": {"nvidia.com/mig.config.state": "failed"}}})

    manager = threading.Thread(target=failing_manager)
    manager.start()
    try:
        done = services.mig_change_apply(change_id=change.pk, poll_seconds=0.2, deadline_seconds=30)
    finally:
        manager.join()
        core.patch_node(
            "gpu-a100-mig-1",
            {
                "metadata": {
                    "labels": {
                        "nvidia.com/mig.config": "all-balanced",
                        "nvidia.com/mig.config.state": "success",
                    }
                }
            },
        )
    assert done.state == MigChange.State.FAILED and "gpu-a100-mig-1" in done.message


def test_partitioning_refuses_invalid_configs(registered):
    from tenancy.models import User

    operator = User.objects.filter(is_superuser=True).first()
    cases = [
        (
            ["gpu-h100-0"],
            "all-1g.5gb",
            "not valid for gpu-h100-0 (NVIDIA-H100-80GB-HBM3); choose one of: all-1g.10gb",
        ),
        (
            ["gpu-a100-0"],
            "all-1g.10gb",
            "not valid for gpu-a100-0 (A100-SXM4-40GB); choose one of: all-1g.5gb",
        ),
        (["cpu-0"], "all-1g.10gb", "cpu-0 (no GPU) does not support MIG"),
        (["gpu-a100-mig-0"], "all-9g.99gb", "'all-9g.99gb' is not valid"),
        (["nope"], "all-1g.10gb", "Not in local: nope"),
    ]
    for nodes, config, message in cases:
        with pytest.raises(ValidationFailed) as failure:
            services.mig_change_request(actor=operator, cluster=registered, config=config, node_names=nodes)
        assert any(message in m for ms in failure.value.fields.values() for m in ms), failure.value.fields
    assert not MigChange.objects.exists()


def test_storage_visibility_rule(world, api):
    op = world.operator
    dc1 = services.datacenter_create(
        actor=op, name="dc-1", kind="public_cloud", provider="aws", region="us-east-1"
    )
    dc2 = services.datacenter_create(actor=op, name="dc-2", kind="data_center", infrastructure_type="nutanix")
    services.storage_create(actor=op, name="hss-common", kind="high-speed-storage", storage_class="fast")
    services.storage_create(
        actor=op, name="hss-dc1", kind="high-speed-storage", storage_class="fast", datacenter=dc1
    )
    services.storage_create(
        actor=op,
        name="obj-dc2",
        kind="object-storage",
        datacenter=dc2,
        bucket_endpoint="https://s3.example.com",
        bucket_name="b",
        credentials="AKIA-secret",
    )
    client = api.as_user(world.a.users["paas_admin_org"])  # a PaaS admin picks storage for a profile

    def names(query):
        return {s["name"] for s in client.get(f"/api/v1/storage/?{query}").json()["results"]}

    assert names("visible_in=none") == {"hss-common"}
    assert names(f"visible_in={dc1.pk}") == {"hss-common", "hss-dc1"}
    assert names(f"visible_in={dc2.pk}") == {"hss-common", "obj-dc2"}
    assert client.get("/api/v1/storage/?visible_in=999999").status_code == 404
    bad = api.as_user(op).post("/api/v1/storage/", {"name": "x", "kind": "object-storage"}, format="json")
    assert bad.status_code == 400 and "bucket_name" in bad.json()["error"]["fields"]


def test_secrets_never_come_back(registered, world, api, client, kubeconfig, caplog):
    caplog.set_level(logging.DEBUG)
    secret_bits = [
        kubeconfig,
        yaml.safe_load(kubeconfig)["users"][0]["user"]["client-key-data"][:40],
        "AAAA-secret-key",
    ]
    # Stored encrypted: the raw column holds neither the kubeconfig nor the key.
    with connection.cursor() as cursor:
        cursor.execute("SELECT kubeconfig FROM inventory_cluster WHERE id = %s", [registered.pk])
        raw = cursor.fetchone()[0]
        cursor.execute(
            "SELECT credentials FROM inventory_datacenter WHERE id = %s", [registered.datacenter_id]
        )
        raw += cursor.fetchone()[0]
    assert all(bit not in raw for bit in secret_bits) and raw.startswith("gAAAA")
    assert str(registered.kubeconfig) == "••••••" and registered.kubeconfig.reveal() == kubeconfig
    op = api.as_user(world.operator)
    bodies = [
        op.get(f"/api/v1/clusters/{registered.pk}/").content.decode(),
        op.get("/api/v1/clusters/").content.decode(),
        op.get(f"/api/v1/datacenters/{registered.datacenter_id}/").content.decode(),
        op.patch(
            f"/api/v1/clusters/{registered.pk}/", {"kubeconfig": kubeconfig}, format="json"
        ).content.decode(),
        op.get("/api/v1/audit-events/?page_size=500").content.decode(),
        op.get("/api/schema/").content.decode(),
    ]
    client.force_login(world.operator)
    for page in (
        f"/studio/inventory/cluster/{registered.pk}/change/",
        "/studio/inventory/cluster/",
        f"/studio/inventory/datacenter/{registered.datacenter_id}/change/",
    ):
        response = client.get(page)
        assert response.status_code == 200
        bodies.append(response.content.decode())
    tasks.cluster_refresh(registered.pk)  # logs of a check and sync
    bodies.append(caplog.text)
    for body in bodies:
        for bit in secret_bits:
            assert bit not in body
    assert '"has_credentials":true' in bodies[2]


def test_org_admins_read_what_their_org_may_use(registered, world, api, kubeconfig):
    dedicated_b = services.cluster_register(
        actor=world.operator,
        name="only-b",
        kubeconfig=kubeconfig,
        tenancy="dedicated",
        dedicated_org=world.b.org,
    )
    a_admin = api.as_user(world.a.users["org_admin"])
    names = {c["name"] for c in a_admin.get("/api/v1/clusters/").json()["results"]}
    assert "local" in names and "only-b" not in names
    assert a_admin.get(f"/api/v1/clusters/{dedicated_b.pk}/").status_code == 404
    b_admin = api.as_user(world.b.users["org_admin"])
    assert b_admin.get(f"/api/v1/clusters/{dedicated_b.pk}/").status_code == 200
    assert a_admin.post("/api/v1/clusters/", {"name": "mine", "kubeconfig": kubeconfig}).status_code == 403
    assert a_admin.patch(f"/api/v1/clusters/{registered.pk}/", {"display_name": "x"}).status_code == 403
    assert a_admin.get("/api/v1/agents/").json()["count"] == 0
    end_user = api.as_user(world.a.users["workspace_admin"])
    assert end_user.get("/api/v1/clusters/").json()["count"] == 0
    assert end_user.get("/api/v1/nodes/").json()["count"] == 0


def test_cluster_registration_validation(world, api):
    op = api.as_user(world.operator)
    cases = [
        ({"name": "x", "kubeconfig": "::: not yaml"}, "kubeconfig"),
        ({"name": "x", "kubeconfig": "kind: Config\ncontexts: []\n"}, "kubeconfig"),
        ({"name": "x"}, "server"),
        ({"name": "Bad Name", "kubeconfig": "x"}, "name"),
        (
            {"name": "x", "server_url": "https://h:6443", "token": "t", "tenancy": "dedicated"},
            "dedicated_org",
        ),
    ]
    for body, field in cases:
        response = op.post("/api/v1/clusters/", body, format="json")
        assert response.status_code == 400, (body, response.content)
        assert field in response.json()["error"]["fields"], (body, response.json())
    made = op.post(
        "/api/v1/clusters/",
        # nothing listens there: registration asks the server its version, so no simulated address
        {"name": "by-token", "server_url": "https://127.0.0.1:1", "token": "t0k", "ca_data": ""},
        format="json",
    )
    assert made.status_code == 201 and made.json()["server"] == "https://127.0.0.1:1"
    assert "t0k" not in made.content.decode()
    assert kube.parse_kubeconfig(Cluster.objects.get(name="by-token").kubeconfig.reveal())["users"][0][
        "user"
    ] == {"token": "t0k"}


def test_storage_and_datacenter_validation(world, api):
    op = api.as_user(world.operator)
    assert op.post("/api/v1/datacenters/", {"name": "x", "kind": "public_cloud"}, format="json").json()[
        "error"
    ]["fields"].keys() >= {"provider", "region"}
    dc = op.post(
        "/api/v1/datacenters/",
        {
            "name": "aws-east",
            "kind": "public_cloud",
            "provider": "aws",
            "region": "us-east-1",
            "instance_types": ["p4d.24xlarge"],
            "credentials": "arn:aws:iam::1:role/paas",
        },
        format="json",
    )
    assert dc.status_code == 201 and dc.json()["has_credentials"] and "arn:aws" not in dc.content.decode()
    assert Storage.objects.count() == 0


def test_matchmaker_places_on_synced_capacity_and_explains(registered, world, kubeconfig):
    from inventory.matchmaker import PlacementRequest, ResourceGroup
    from inventory.selectors import Reservation, cluster_capacities, placement_for

    # A second cluster, unreachable: never chosen, always explained.
    dead = yaml.safe_load(kubeconfig)
    dead["clusters"][0]["cluster"]["server"] = "https://127.0.0.1:1"
    gone = services.cluster_register(actor=world.operator, name="gone", kubeconfig=yaml.safe_dump(dead))
    tasks.cluster_refresh(gone.pk)

    eight = PlacementRequest(
        groups=(
            ResourceGroup(
                gpu_model="A100-SXM4-40GB", gpu_count=8, cpu_millis=64_000, memory_bytes=512 * 2**30
            ),
        )
    )
    placement = placement_for(eight)
    assert placement.cluster == "local"
    assert "gone" in placement.explain() and "unreachable" in placement.explain()
    too_many = PlacementRequest(groups=(ResourceGroup(gpu_model="A100-SXM4-40GB", gpu_count=64),))
    refused = placement_for(too_many)
    assert refused.cluster is None
    assert "needs 64 nvidia.com/gpu of A100-SXM4-40GB, 16 free" in refused.explain()
    mig = PlacementRequest(groups=(ResourceGroup(mig_profile="1g.10gb", mig_count=60),))
    assert placement_for(mig).cluster == "local"  # 56 + 16 slices of 1g.10gb over the two MIG nodes
    # What the platform already placed is not free any more.
    reserved = {registered.pk: Reservation(gpus={"A100-SXM4-40GB": 12})}
    assert (
        "needs 8 nvidia.com/gpu of A100-SXM4-40GB, 4 free"
        in placement_for(eight, reserved=reserved).explain()
    )
    assert {c.name for c in cluster_capacities()} == {"local", "gone"}
    pinned = PlacementRequest(groups=eight.groups, datacenter="elsewhere")
    assert placement_for(pinned).cluster is None


def test_studio_registers_clusters_and_shows_errors_on_the_form(world, client, kubeconfig):
    client.force_login(world.operator)
    form = {
        "name": "studio-made",
        "display_name": "Studio made",
        "datacenter": "",
        "labels": "{}",
        "tenancy": "shared",
        "dedicated_org": "",
        "new_kubeconfig": "not: [a kubeconfig",
    }
    bad = client.post("/studio/inventory/cluster/add/", form)
    page = bad.content.decode()
    assert bad.status_code == 200 and "Not valid YAML" in page and "Studio made" in page
    assert "not: [a kubeconfig" not in page  # a secret field is never rendered back, even on error
    good = client.post("/studio/inventory/cluster/add/", form | {"new_kubeconfig": kubeconfig})
    assert good.status_code == 302
    cluster = Cluster.objects.get(name="studio-made")
    assert cluster.kubeconfig.reveal() == kubeconfig
    tasks.cluster_refresh(cluster.pk)
    mig_form = {
        "cluster": cluster.pk,
        "node_names": "gpu-h100-0",
        "node_selector": "",
        "config": "all-1g.5gb",
    }
    refused = client.post("/studio/inventory/migchange/add/", mig_form)
    assert refused.status_code == 200 and "is not valid for gpu-h100-0" in refused.content.decode()
    # An org admin reads the cluster card but cannot change it.
    client.force_login(world.a.users["org_admin"])
    assert client.get(f"/studio/inventory/cluster/{cluster.pk}/change/").status_code == 200
    assert client.post(f"/studio/inventory/cluster/{cluster.pk}/change/", form).status_code == 403
    assert client.get("/studio/inventory/agent/").status_code == 403
