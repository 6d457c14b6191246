"""What the once-a-minute reconcile costs: one baseline check per cluster waiting at a time (a slow or
stopped agent does not find a pile of them), and building the desired baselines does not cost a
query per instance. Real PostgreSQL and django-q2's ORM broker; the clusters' API servers refuse
connections (nothing here needs one)."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_q.models import OrmQ

from instances import deployer, drift
from instances.models import Collaborator, ComputeInstance
from tests.factories import make_profile, make_synced_cluster
from tests.support.hostile_templates import manifests
from tests.support.instances import launch

pytestmark = pytest.mark.django_db

CPU_ONLY = [{"cpu_cores": "1", "memory_gib": 1, "storage_gib": 1}]


def _ready_instances(world, cluster, count: int, prefix: str) -> list[ComputeInstance]:
    profile = make_profile(
        actor=world.a.users["org_admin"],
        project=world.a.project,
        manifests=manifests([]),
        resource_groups=CPU_ONLY,
        name=f"{prefix}-profile",
        template=f"{prefix}-template",
    )
    made = []
    for index in range(count):
        instance = launch(world, profile, f"{prefix}{index}")
        ComputeInstance.objects.filter(pk=instance.pk).update(
            state="ready", cluster=cluster, namespace=f"i-{prefix}{index}-abc123"
        )
        made.append(ComputeInstance.objects.get(pk=instance.pk))
    return made


def _checks_waiting() -> list[tuple]:
    return sorted(
        tuple(row.task["args"])
        for row in OrmQ.objects.all()
        if row.task.get("func") == deployer.BASELINE_REPAIR
    )


def _reconcile(capture) -> None:
    with capture(execute=True):
        deployer.reconcile()


def test_one_baseline_check_per_cluster_waits_at_a_time(world, django_capture_on_commit_callbacks):
    near, far = make_synced_cluster(name="near"), make_synced_cluster(name="near2")
    _ready_instances(world, near, 1, "n")
    _ready_instances(world, far, 1, "f")
    _reconcile(django_capture_on_commit_callbacks)
    assert _checks_waiting() == sorted([(near.pk,), (far.pk,)])
    for _minute in range(3):  # the agent is slow: nothing piles up
        _reconcile(django_capture_on_commit_callbacks)
    assert _checks_waiting() == sorted([(near.pk,), (far.pk,)])

    # A worker takes the near cluster's check (the ORM broker moves its lock into the future): the
    # next minute queues a new one behind it, since the running one may have started before a drift.
    taken = next(row for row in OrmQ.objects.all() if row.task.get("args") == (near.pk,))
    OrmQ.objects.filter(pk=taken.pk).update(
        lock=timezone.now() + timedelta(seconds=settings.Q_CLUSTER["retry"])
    )
    _reconcile(django_capture_on_commit_callbacks)
    assert _checks_waiting() == sorted([(near.pk,), (near.pk,), (far.pk,)])
    _reconcile(django_capture_on_commit_callbacks)
    assert len(_checks_waiting()) == 3

    # A check whose worker died (its lock passed again) is waiting to be delivered again: no new one.
    OrmQ.objects.filter(pk=taken.pk).update(lock=timezone.now() - timedelta(seconds=1))
    _reconcile(django_capture_on_commit_callbacks)
    assert len(_checks_waiting()) == 3


def test_waiting_tasks_reads_only_the_given_queues_and_function(world, django_capture_on_commit_callbacks):
    near = make_synced_cluster(name="near")
    _ready_instances(world, near, 1, "n")
    _reconcile(django_capture_on_commit_callbacks)
    queue = settings.Q_CLUSTER["name"]
    assert deployer.waiting_tasks(deployer.BASELINE_REPAIR, queues={queue}) == {(near.pk,)}
    assert deployer.waiting_tasks(deployer.BASELINE_REPAIR, queues={"agent-elsewhere"}) == set()
    assert deployer.waiting_tasks("instances.tasks.run_execute", queues={queue}) == set()


def _repair_queries(cluster_pk: int) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert drift.baseline_repair(cluster_id=cluster_pk) == {}  # unreachable in fact: skipped
    return len(queries)


def test_building_the_baselines_costs_no_query_per_instance_or_collaborator(world):
    one, many = make_synced_cluster(name="one"), make_synced_cluster(name="many")
    _ready_instances(world, one, 1, "o")
    instances = _ready_instances(world, many, 4, "m")
    users = [world.a.users["collaborator_rw"], world.a.users["collaborator_ro"]]
    for instance in instances:
        for user in users:
            Collaborator.objects.create(instance=instance, user=user, added_by=instance.owner)
    assert _repair_queries(many.pk) == _repair_queries(one.pk)
