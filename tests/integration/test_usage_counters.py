"""Usage counters (instances.counters): moved with every state change that moves resources, taken by
the launch as its one conditional decision (no lock before it), never passed by racing launches,
checked against a re-sum (drift reported, ``usage_recount --fix`` repairs it, audited)."""

import threading
import time

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from catalog import services as catalog_services
from catalog.models import ComputeProfile
from instances import actions, launch_checks
from instances.counters import counters_check, counters_drift, counters_rebuild, scope_rows
from instances.models import ComputeInstance, Run, UsageCounterCheck
from instances.services import instance_delete, instance_launch
from instances.states import State, transition
from paas.errors import Conflict
from paas.models import AuditEvent
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
A100 = "A100-SXM4-40GB"
# (gpu_units, cpu_millis, memory_gib, storage_gib, instances) of one ONE_A100 instance
FULL, STORAGE = (28, 4000, 16, 10, 1), (0, 0, 0, 10, 1)


def _profile(admin, project, name="one-gpu") -> ComputeProfile:
    profile = make_profile(
        actor=admin, project=project, manifests=MANIFESTS, name=name, template=name, resource_groups=ONE_A100
    )
    catalog_services.item_share(actor=admin, item=profile, sharing="all")
    profile = ComputeProfile.objects.get(pk=profile.pk)
    return profile


def _with_start_action(instance) -> None:
    snapshot = instance.snapshot | {
        "template": instance.snapshot["template"]
        | {"actions": [{"name": "start", "description": "", "variables": []}]}
    }
    ComputeInstance.objects.filter(pk=instance.pk).update(snapshot=snapshot)


def _totals(org, project=None, user=None) -> tuple:
    return scope_rows(
        org_id=org.pk, project_id=getattr(project, "pk", None), user_id=getattr(user, "pk", None)
    ).get("", (0, 0, 0, 0, 0))


def _moved(instance, state):
    instance = ComputeInstance.objects.select_for_update().get(pk=instance.pk)
    transition(instance, state, "test")
    return instance


def test_counters_move_with_launch_stop_start_failure_and_delete(world):
    admin, owner, team = world.a.users["org_admin"], world.a.users["workspace_admin"], world.a.project
    org = world.a.org
    profile = _profile(admin, team)
    make_synced_cluster(name="counters-c", nodes=1)
    instance = instance_launch(actor=owner, project=team, name="c1", profile=profile)
    for scope in ((org,), (org, team), (org, None, owner), (org, team, owner)):
        assert _totals(*scope) == FULL, scope
    assert scope_rows(org_id=org.pk)[A100][0] == 28  # per-model units, org and workspace scopes
    assert scope_rows(org_id=org.pk, project_id=team.pk)[A100][0] == 28
    assert counters_drift() == []
    # The deploy: nothing moves; the stop releases the compute once STOPPED, storage stays counted.
    _moved(instance, State.PROVISIONING)
    _moved(instance, State.READY)
    _moved(instance, State.PROVISIONING)
    assert _totals(org, team) == FULL
    instance = _moved(instance, State.STOPPED)
    assert _totals(org, team) == STORAGE and _totals(org, None, owner) == STORAGE
    assert scope_rows(org_id=org.pk)[A100][0] == 0
    assert counters_drift() == []
    # A start takes it back in its decision (the transition moves nothing more).
    _with_start_action(instance)
    Run.objects.filter(instance_id=instance.pk).update(outcome=Run.Outcome.SUCCEEDED)  # (deployed, stopped)
    actions.action_run(actor=owner, target=ComputeInstance.objects.get(pk=instance.pk), action="start")
    assert _totals(org, team) == FULL and scope_rows(org_id=org.pk)[A100][0] == 28
    assert counters_drift() == []
    # A failure holds everything (as the quotas count it); the delete gives it back once DELETED.
    _moved(instance, State.FAILED)
    assert _totals(org, team) == FULL
    instance_delete(actor=owner, instance=ComputeInstance.objects.get(pk=instance.pk))
    assert _totals(org, team) == FULL  # held while deleting
    _moved(instance, State.DELETED)
    for scope in ((org,), (org, team), (org, None, owner), (org, team, owner)):
        assert _totals(*scope) == (0, 0, 0, 0, 0), scope
    assert scope_rows(org_id=org.pk)[A100][0] == 0
    assert counters_drift() == []


def test_a_refused_launch_moves_nothing_and_keeps_its_message(world):
    admin, owner, team = world.a.users["org_admin"], world.a.users["workspace_admin"], world.a.project
    profile = _profile(admin, team)
    make_synced_cluster(name="counters-q", nodes=1)
    tenancy_services.quota_update(actor=admin, quota=team.quota, gpus=1)
    instance_launch(actor=owner, project=team, name="first", profile=profile)
    with pytest.raises(Conflict) as refused:
        instance_launch(actor=owner, project=team, name="second", profile=profile)
    assert refused.value.message.startswith(
        "Over quota: Workspace quota of 1 GPUs: 1 in use, this launch needs 1."
    )
    assert _totals(world.a.org, team) == FULL  # the refused launch took nothing, anywhere
    assert _totals(world.a.org) == FULL and _totals(world.a.org, None, owner) == FULL
    assert counters_drift() == []


def test_drift_is_found_reported_and_repaired(world, caplog):
    admin, owner, team = world.a.users["org_admin"], world.a.users["workspace_admin"], world.a.project
    profile = _profile(admin, team)
    make_synced_cluster(name="counters-d", nodes=1)
    instance_launch(actor=owner, project=team, name="d1", profile=profile)
    with connection.cursor() as cursor:  # tampered: the workspace counter says 3 GPUs are in use
        cursor.execute(
            "UPDATE instances_usagecounter SET gpu_units = 84 WHERE project_id = %s AND user_id IS NULL "
            "AND gpu_model = ''",
            [team.pk],
        )
    line = f"org {world.a.org.pk}, workspace {team.pk}: gpu_units 84 (re-sum 28)"
    assert counters_drift() == [line]
    with pytest.raises(CommandError, match="1 drifting rows"):
        call_command("usage_recount")
    assert f"Usage counter drift: {line}" in caplog.text
    check = UsageCounterCheck.objects.order_by("-pk").first()
    assert (check.drift, check.fixed) == ([line], False)
    from instances.metrics import usage_counter_drift

    assert usage_counter_drift()[0].samples[0].value == 1
    call_command("usage_recount", "--fix")
    assert counters_drift() == [] and _totals(world.a.org, team) == FULL
    event = AuditEvent.objects.get(action="usage_counters.recount")
    assert event.org_id is None and event.details == {"drift": [line], "rows": 1}  # a platform event
    assert counters_check() == [] and usage_counter_drift()[0].samples[0].value == 0
    assert counters_rebuild() > 0 and counters_drift() == []


def test_the_studio_home_shows_the_newest_check_to_operators(world, client):
    counters_check()
    client.force_login(world.operator)
    page = client.get("/studio/")
    assert page.status_code == 200 and 'data-usage-check="ok"' in page.content.decode()


# --- concurrency (real threads, real PostgreSQL transactions) --------------------------------------------


def _race_world(name: str):
    operator = make_operator(username=f"op-{name}")
    org, admin = make_org(operator=operator, name=name)
    projects = [tenancy_services.project_create(actor=admin, org=org, name=f"ws{i}") for i in range(2)]
    owner = UserFactory(username=f"{name}-owner")
    for project in projects:
        add_member(admin=admin, user=owner, role=Role.WORKSPACE_ADMIN, project=project)
    profile = _profile(admin, projects[0])
    make_synced_cluster(name=f"{name}-c", nodes=4)
    return org, admin, projects, owner, profile


def _in_threads(count: int, work) -> list:
    results, barrier = [None] * count, threading.Barrier(count)

    def run(index: int):
        try:
            barrier.wait()
            results[index] = work(index)
        except Conflict as exc:
            results[index] = exc.code
        except Exception as exc:  # anything else fails the test below
            results[index] = repr(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


@pytest.mark.django_db(transaction=True)
def test_racing_launches_never_pass_the_last_quota():
    org, admin, projects, owner, profile = _race_world("race")
    tenancy_services.quota_update(actor=admin, quota=projects[0].quota, gpus=3)
    results = _in_threads(
        12, lambda i: instance_launch(actor=owner, project=projects[0], name=f"r{i}", profile=profile).state
    )
    assert sorted(results) == ["pending"] * 3 + ["quota_exceeded"] * 9, results
    assert ComputeInstance.objects.filter(project=projects[0]).count() == 3
    assert _totals(org, projects[0]) == tuple(3 * x for x in FULL)
    assert counters_drift() == []


@pytest.mark.django_db(transaction=True)
def test_a_launch_does_not_wait_for_another_workspace_launch_before_its_decision():
    """A launch paused in its launch checks (before its decision: placement, snapshot done) holds no
    lock another launch of the org needs: a launch in the other workspace completes meanwhile. (On the
    old code the paused launch held the org's quota row locked and this test timed out.)"""
    org, _admin, projects, owner, profile = _race_world("nowait")
    paused, release = threading.Event(), threading.Event()

    def pause_first(*, project, **kwargs):
        if project.pk == projects[0].pk:
            paused.set()
            assert release.wait(30)

    launch_checks.launch_check_register(pause_first)
    try:
        first: dict = {}

        def slow():
            try:
                first["state"] = instance_launch(
                    actor=owner, project=projects[0], name="slow", profile=profile
                ).state
            finally:
                connection.close()

        thread = threading.Thread(target=slow)
        thread.start()
        assert paused.wait(30)
        started = time.monotonic()
        other = instance_launch(actor=owner, project=projects[1], name="fast", profile=profile)
        waited = time.monotonic() - started
        assert other.state == State.PENDING and not release.is_set()
        release.set()
        thread.join(30)
    finally:
        release.set()
        launch_checks.launch_check_unregister(pause_first)
    assert first == {"state": "pending"}
    assert waited < 10, waited
    assert _totals(org) == tuple(2 * x for x in FULL) and counters_drift() == []
