"""Launching compute instances: quota-safe under concurrency, placed, snapshotted, audited."""

import threading

import pytest
from django.db import connection

from catalog import services as catalog_services
from instances.models import ComputeInstance, Run
from instances.services import instance_launch
from inventory.models import Node
from paas.audit import audit_verify
from paas.errors import Conflict, ValidationFailed
from tenancy import services as tenancy_services
from tenancy.roles import Role
from tests.factories import (
    ONE_A100,
    UserFactory,
    add_member,
    make_operator,
    make_org,
    make_profile,
    make_synced_cluster,
)

MANIFESTS = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ instance.name }}-info\ndata:\n  a: b\n"


def _setup(name: str):
    operator = make_operator(username=f"op-{name}")
    org, admin = make_org(operator=operator, name=name)
    project = tenancy_services.project_create(actor=admin, org=org, name="lab")
    owner = UserFactory(username=f"{name}-owner")
    add_member(admin=admin, user=owner, role=Role.WORKSPACE_ADMIN, project=project)
    profile = make_profile(
        actor=admin,
        project=project,
        manifests=MANIFESTS,
        name="one-gpu",
        template="ns",
        resource_groups=ONE_A100,
    )
    cluster = make_synced_cluster(name=f"{name}-c", nodes=10)
    return operator, admin, project, owner, profile, cluster


@pytest.mark.django_db(transaction=True)
def test_quota_race_exactly_six_of_fifty_succeed():
    _operator, admin, project, owner, profile, _cluster = _setup("race")
    tenancy_services.quota_update(actor=admin, quota=project.quota, gpus=6)
    results, barrier = [], threading.Barrier(50)

    def launch(index: int):
        try:
            barrier.wait()
            instance_launch(actor=owner, project=project, name=f"i-{index}", profile=profile)
            results.append("ok")
        except Conflict as exc:
            results.append(exc.code)
        except Exception as exc:  # any other failure fails the test below
            results.append(repr(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=launch, args=(i,)) for i in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count("ok") == 6, results
    assert results.count("quota_exceeded") == 44, results
    assert ComputeInstance.objects.filter(project=project).count() == 6
    assert sum(ComputeInstance.objects.filter(project=project).values_list("gpus", flat=True)) == 6
    assert Run.objects.filter(instance__project=project, kind="deploy").count() == 6
    assert audit_verify().ok


@pytest.mark.django_db(transaction=True)
def test_launch_snapshots_places_and_explains_refusals():
    operator, admin, project, owner, profile, cluster = _setup("launch")
    instance = instance_launch(actor=owner, project=project, name="first", profile=profile, description="d")
    assert (instance.state, instance.cluster, instance.gpus, instance.gpus_by_model) == (
        "pending",
        cluster,
        1,
        {"A100-SXM4-40GB": 1},
    )
    assert (
        instance.snapshot["template"]["manifests"] == MANIFESTS
        and instance.snapshot["price"]["currency"] == "USD"
    )
    assert instance.placement["cluster"] == cluster.name
    with pytest.raises(ValidationFailed, match="Invalid name"):
        instance_launch(actor=owner, project=project, name="first", profile=profile)
    with pytest.raises(ValidationFailed):
        instance_launch(actor=owner, project=project, name="Not_A_Label", profile=profile)
    tenancy_services.quota_update(actor=operator, quota=project.org.quota, gpus=1)
    with pytest.raises(Conflict) as over:
        instance_launch(actor=owner, project=project, name="second", profile=profile)
    assert over.value.code == "quota_exceeded"
    assert "Organization quota of 1 GPUs: 1 in use, this launch needs 1." in over.value.message
    tenancy_services.quota_update(actor=operator, quota=project.org.quota, gpus=None)
    Node.objects.filter(cluster=cluster).update(schedulable=False)
    with pytest.raises(Conflict) as full:
        instance_launch(actor=owner, project=project, name="third", profile=profile)
    assert (
        full.value.code == "no_capacity"
        and "needs 1 nvidia.com/gpu of A100-SXM4-40GB, 0 free" in full.value.message
    )
    reader = UserFactory(username="launch-reader")
    add_member(admin=admin, user=reader, role=Role.COLLABORATOR_RO, project=project)
    from paas.errors import Forbidden

    with pytest.raises(Forbidden):
        instance_launch(actor=reader, project=project, name="nope", profile=profile)
    # Deleting the profile does not touch the launched instance's snapshot.
    catalog_services.profile_delete(actor=admin, profile=profile)
    instance.refresh_from_db()
    assert instance.profile is None and instance.snapshot["name"] == "one-gpu"
