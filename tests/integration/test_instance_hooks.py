"""The two hooks by which a higher layer (billing) takes part in an instances transaction: launch checks
run inside the launch's lock, and ``instance_state_changed`` sent inside the state change's transaction."""

import threading

import pytest
from django.db import DatabaseError, connection, transaction

from instances import services
from instances.launch_checks import launch_check_register, launch_check_unregister
from instances.models import ComputeInstance
from instances.signals import instance_state_changed
from paas.errors import Conflict
from tenancy.models import Quota
from tests.integration.test_instances_launch import _setup


def _quota_row_locked(pk: int) -> bool:
    """From another connection: is the quota row locked (FOR UPDATE NOWAIT fails)?"""
    answer = {}

    def probe():
        try:
            with transaction.atomic():
                list(Quota.objects.select_for_update(nowait=True).filter(pk=pk))
            answer["locked"] = False
        except DatabaseError:
            answer["locked"] = True
        finally:
            connection.close()

    thread = threading.Thread(target=probe)
    thread.start()
    thread.join()
    return answer["locked"]


@pytest.mark.django_db(transaction=True)
def test_a_launch_check_runs_in_the_launch_transaction_before_any_lock_and_can_refuse():
    """Launch checks (budgets) do not depend on concurrent launches: they run inside the launch's
    transaction, before its decision on the usage counters, and no quota row is locked by a launch."""
    _operator, _admin, project, owner, profile, cluster = _setup("hook-launch")
    seen = []

    def budget(*, actor, project, profile, cluster, totals, **kwargs):
        seen.append(
            {
                "atomic": connection.in_atomic_block,
                "locked": _quota_row_locked(project.quota.pk),
                "actor": actor,
                "cluster": cluster,
                "gpus": totals["gpus"],
            }
        )
        if len(seen) > 1:
            raise Conflict("Over budget: the org's monthly budget is spent.", code="budget_exceeded")

    launch_check_register(budget)
    launch_check_register(budget)  # registering twice changes nothing: it runs once per launch
    try:
        first = services.instance_launch(actor=owner, project=project, name="allowed", profile=profile)
        with pytest.raises(Conflict) as refused:
            services.instance_launch(actor=owner, project=project, name="refused", profile=profile)
    finally:
        launch_check_unregister(budget)
    assert refused.value.code == "budget_exceeded"
    assert seen[0] == {"atomic": True, "locked": False, "actor": owner, "cluster": cluster, "gpus": 1}
    assert len(seen) == 2
    assert list(ComputeInstance.objects.filter(project=project).values_list("name", flat=True)) == [
        first.name
    ]
    # Unregistered: launches no longer call it.
    services.instance_launch(actor=owner, project=project, name="after", profile=profile)
    assert len(seen) == 2


@pytest.mark.django_db(transaction=True)
def test_state_changes_are_published_inside_the_transaction_and_a_receiver_can_undo_them():
    _operator, _admin, project, owner, profile, _cluster = _setup("hook-state")
    instance = services.instance_launch(actor=owner, project=project, name="metered", profile=profile)
    seen = []

    def meter(*, sender, instance, previous, state, reason, **kwargs):
        stored = ComputeInstance.objects.filter(pk=instance.pk).values_list("state", flat=True).get()
        seen.append((sender, previous, state, stored, connection.in_atomic_block))
        if len(seen) == 1:
            raise RuntimeError("the meter refuses")

    instance_state_changed.connect(meter)
    try:
        with pytest.raises(RuntimeError):
            services.instance_delete(actor=owner, instance=instance)
        instance.refresh_from_db()
        assert instance.state == "pending"  # the receiver's failure rolled the change back
        services.instance_delete(actor=owner, instance=instance)
    finally:
        instance_state_changed.disconnect(meter)
    instance.refresh_from_db()
    assert instance.state == "deleting"
    assert seen == [
        (ComputeInstance, "pending", "deleting", "deleting", True),
        (ComputeInstance, "pending", "deleting", "deleting", True),
    ]
