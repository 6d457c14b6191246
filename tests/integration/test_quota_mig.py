"""GPU quotas count MIG slices (a slice Ng.* is N/7 of a GPU, summed exactly in 28ths): a MIG launch
counts against the org's and the workspace's GPU quota and per-model limits and is refused over them
naming the unit; full GPUs and slices sum; the portal and the studio show the unit. And a PaaS admin
manages profiles and templates but sees no workspace activity, usage, instances or audit."""

import importlib
from decimal import Decimal

import pytest
from django.apps import apps
from django.utils import timezone

from instances.models import ComputeInstance
from instances.selectors import workspace_summary
from inventory.models import Node
from paas.errors import Conflict
from paas.models import AuditEvent
from tenancy import services as tenancy_services
from tenancy.gpu_units import UNIT_NOTE
from tests.factories import ONE_A100, make_profile, make_synced_cluster
from tests.support.instances import force_state, launch

MANIFESTS = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ instance.name }}-info\ndata:\n  a: b\n"
A100_80 = "NVIDIA-A100-SXM4-80GB"


def _mig(profile: str, count: int) -> list[dict]:
    return [{"mig_profile": profile, "mig_count": count, "cpu_cores": "2", "memory_gib": 8}]


@pytest.fixture
def sizes(world):
    """Tenant A's team workspace with a whole-GPU size and two MIG sizes, and a cluster with A100-40GB
    nodes (whole GPUs) and one A100-80GB node partitioned into slices."""
    admin = world.a.users["org_admin"]
    cluster = make_synced_cluster(name="mig-c", nodes=2)
    Node.objects.create(
        cluster=cluster,
        name="mig-node",
        gpu_product=A100_80,
        gpu_count=8,
        mig_capable=True,
        allocatable_mig={"mig-1g.10gb": 28, "mig-3g.40gb": 8},
        allocatable_cpu_millis=96_000,
        allocatable_memory_bytes=1024 * 2**30,
        ready=True,
        schedulable=True,
        synced_at=timezone.now(),
    )
    made = {}
    for name, groups in (
        ("full", ONE_A100),
        ("one-slice", _mig("1g.10gb", 1)),
        ("big-slices", _mig("3g.40gb", 2)),
    ):
        made[name] = make_profile(
            actor=admin,
            project=world.a.project,
            manifests=MANIFESTS,
            name=name,
            template=f"t-{name}",
            resource_groups=groups,
        )
    return made


def test_the_unit_is_exact_and_counts_every_slice_type():
    from inventory.mig import gpu_units, slice_units
    from tenancy.gpu_units import format_gpus_exact

    assert [slice_units(p) for p in ("1g.10gb", "3g.40gb", "7g.80gb", "nvidia.com/mig-2g.20gb")] == [
        4,
        12,
        28,
        8,
    ]
    assert slice_units("4g.24gb") == 28 and slice_units("1g.6gb") == 7  # A30: four compute slices
    assert slice_units("1g.24gb") == 7  # H100 96GB (1/7) or RTX PRO 6000 (1/4): the larger fraction
    assert slice_units("not-a-slice") == 28  # an odd name never counts for less than a GPU
    assert gpu_units(gpus=2, mig_slices={"1g.10gb": 3}) == 68
    assert format_gpus_exact(68) == "2.43 (17/7)" and format_gpus_exact(56) == "2"


def test_mig_launch_counts_against_the_org_gpu_quota_and_is_refused_over_it(world, sizes):
    tenancy_services.quota_update(actor=world.operator, quota=world.a.org.quota, gpus=1)
    six = launch(world, sizes["big-slices"], "six")  # 2 x 3g.40gb = 6/7 GPU
    assert (six.gpus, six.gpu_units, six.mig_parents) == (0, 24, {"3g.40gb": [A100_80]})
    launch(world, sizes["one-slice"], "seventh")  # 1/7: the quota of 1 GPU is now full
    with pytest.raises(Conflict) as over:
        launch(world, sizes["one-slice"], "eighth")
    assert over.value.code == "quota_exceeded"
    assert "Organization quota of 1 GPUs: 1 in use, this launch needs 0.14 (1/7)." in over.value.message
    assert "1g.10gb = 1/7 GPU" in over.value.message  # the unit is named
    with pytest.raises(Conflict, match="needs 1\\."):
        launch(world, sizes["full"], "whole")  # and a whole GPU does not fit either
    assert not ComputeInstance.objects.filter(name__in=["eighth", "whole"]).exists()
    # Deleting frees the slices' share.
    force_state(ComputeInstance.objects.get(name="six"), "deleted")
    assert launch(world, sizes["big-slices"], "again").gpu_units == 24


def test_full_gpus_and_slices_sum_exactly_against_the_workspace_quota(world, sizes):
    for name, size in (("a", "full"), ("b", "big-slices"), ("c", "one-slice"), ("d", "one-slice")):
        launch(world, sizes[size], name)  # 7 + 6 + 1 + 1 = 15 sevenths of a GPU
    summary = workspace_summary(world.a.users["workspace_admin"], world.a.project.pk)
    assert summary["in_use"]["gpu_units"] == 15 * 4 and summary["in_use"]["gpus"] == Decimal("2.14")
    assert UNIT_NOTE in summary["gpu_unit"]
    tenancy_services.quota_update(actor=world.operator, quota=world.a.org.quota, gpus=3)
    tenancy_services.quota_update(actor=world.a.users["org_admin"], quota=world.a.project.quota, gpus=3)
    launch(world, sizes["big-slices"], "e")  # 21/7: exactly 3 GPUs, allowed
    with pytest.raises(Conflict) as over:
        launch(world, sizes["one-slice"], "f")
    assert "Workspace quota of 3 GPUs: 3 in use, this launch needs 0.14 (1/7)." in over.value.message


def test_per_model_limits_count_the_slices_of_that_model(world, sizes):
    tenancy_services.quota_update(
        actor=world.operator, quota=world.a.org.quota, gpu_models={A100_80: 1, "A100-SXM4-40GB": 1}
    )
    launch(world, sizes["big-slices"], "six")
    with pytest.raises(Conflict) as over:
        launch(world, sizes["big-slices"], "twelve")
    assert f"Organization quota of 1 {A100_80} GPUs: 0.86 (6/7) in use, this launch needs 0.86 (6/7)." in (
        over.value.message
    )
    launch(world, sizes["one-slice"], "seventh")  # 7/7 of the A100-80GB limit
    launch(world, sizes["full"], "whole")  # another model's limit is untouched by the slices
    with pytest.raises(Conflict, match="A100-SXM4-40GB GPUs: 1 in use"):
        launch(world, sizes["full"], "whole-2")


def test_existing_instances_get_their_units_from_the_data_migration(world, sizes):
    six = launch(world, sizes["big-slices"], "six")
    whole = launch(world, sizes["full"], "whole")
    ComputeInstance.objects.update(gpu_units=0, mig_parents={})  # as they were before the migration
    migration = importlib.import_module("instances.migrations.0004_gpu_quota_units")
    migration.fill(apps, None)
    six.refresh_from_db()
    whole.refresh_from_db()
    assert (six.gpu_units, six.mig_parents, whole.gpu_units) == (24, {"3g.40gb": [A100_80]}, 28)


def test_portal_shows_the_unit_on_the_landing_and_the_size_cards(world, sizes, client):
    launch(world, sizes["big-slices"], "six")
    tenancy_services.quota_update(actor=world.a.users["org_admin"], quota=world.a.project.quota, gpus=1)
    client.force_login(world.a.users["workspace_admin"])
    landing = client.get(f"/w/{world.a.project.pk}/").content.decode()
    assert '0.86 <small class="muted">/ 1</small>' in landing
    assert "MIG slices count as fractions of a GPU: 1g.10gb = 1/7 GPU" in landing
    cards = client.post(
        f"/w/{world.a.project.pk}/instances/new/", {"name": "next", "step": "2"}
    ).content.decode()
    assert "1 × MIG 1g.10gb slice (counts 1/7 GPU of quota)" in cards
    assert "2 × MIG 3g.40gb slices (counts 6/7 GPU of quota)" in cards
    assert "In use in this workspace: GPUs 0.86 of 1" in cards and "1g.10gb = 1/7 GPU" in cards
    assert "Workspace quota of 1 GPUs: 0.86 (6/7) in use, this launch needs 0.86 (6/7)." in cards
    assert "Workspace quota of 1 GPUs: 0.86 (6/7) in use, this launch needs 0.14 (1/7)." not in cards  # fits


def test_studio_shows_quota_usage_in_the_unit(world, sizes, client):
    launch(world, sizes["big-slices"], "six")
    launch(world, sizes["full"], "whole")
    tenancy_services.quota_update(actor=world.operator, quota=world.a.org.quota, gpus=4)
    client.force_login(world.a.users["org_admin"])
    listing = client.get("/studio/tenancy/quota/").content.decode()
    assert "GPUs in use (MIG slices count N/7: 1g.10gb = 1/7 GPU)" in listing
    assert "1.86 of 4" in listing  # the org's quota: 13/7
    page = client.get(f"/studio/tenancy/quota/{world.a.org.quota.pk}/change/").content.decode()  # read-only
    assert "GPUs in use: 1.86 of 4." in page and "1g.10gb = 1/7 GPU" in page
    instances = client.get("/studio/instances/computeinstance/").content.decode()
    assert "GPUs of quota (MIG slice Ng.* = N/7 GPU)" in instances and "0.86" in instances


# --- a PaaS admin manages the catalog, not the workspace's work ------------------------------------------

PAAS_ADMINS = ["paas_admin_org", "paas_admin_project"]


@pytest.mark.parametrize("who", PAAS_ADMINS)
def test_paas_admin_api_sees_profiles_not_activity_usage_instances_or_audit(world, sizes, api, who):
    launch(world, sizes["full"], "busy")
    project = world.a.project
    client = api.as_user(world.a.users[who])
    assert client.get(f"/api/v1/projects/{project.pk}/").status_code == 200  # the workspace itself
    assert client.get(f"/api/v1/projects/{project.pk}/activity/").status_code == 404
    assert client.get(f"/api/v1/projects/{project.pk}/summary/").status_code == 404
    assert client.get("/api/v1/instances/").json()["count"] == 0
    assert client.get("/api/v1/audit-events/").json()["count"] == 0
    profiles = client.get("/api/v1/compute-profiles/").json()
    assert {"full", "one-slice", "big-slices"} <= {p["name"] for p in profiles["results"]}
    # ... and still manages them
    pk = sizes["one-slice"].pk
    changed = client.patch(
        f"/api/v1/compute-profiles/{pk}/", {"description": "by the PaaS admin"}, format="json"
    )
    assert changed.status_code == 200, changed.content
    member = api.as_user(world.a.users["collaborator_ro"])
    assert "instance.launch" in [
        e["action"] for e in member.get(f"/api/v1/projects/{project.pk}/activity/").json()
    ]


@pytest.mark.parametrize("who", PAAS_ADMINS)
def test_paas_admin_portal_and_studio_show_no_activity(world, sizes, client, who):
    launch(world, sizes["full"], "busy")
    project = world.a.project
    client.force_login(world.a.users[who])
    landing = client.get(f"/w/{project.pk}/")
    text = landing.content.decode()
    assert landing.status_code == 200 and "PaaS Studio" in text
    assert "busy" not in text and "instance.launch" not in text and "Recent activity" not in text
    assert "Resources in use" not in text
    assert "busy" not in client.get(f"/w/{project.pk}/instances/").content.decode()
    assert AuditEvent.objects.filter(project=project).exists()
    for page in ("/studio/paas/auditevent/", "/studio/instances/computeinstance/"):
        assert client.get(page).status_code == 403, page
    assert client.get("/studio/catalog/computeprofile/").status_code == 200
