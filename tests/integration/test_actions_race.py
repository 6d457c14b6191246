"""Start takes a stopped instance's GPUs under the same quota-row locks as a launch: racing launches
for the last free GPU, exactly one of them or the start wins."""

import threading

import pytest
from django.db import connection

from catalog import services as catalog_services
from catalog.models import ComputeProfile
from instances import actions
from instances.models import ComputeInstance, Run
from instances.services import instance_launch
from instances.states import State
from paas.audit import audit_verify
from paas.errors import Conflict
from tenancy import services as tenancy_services
from tenancy.roles import Role
from tests.factories import ONE_A100, UserFactory, add_member, make_operator, make_org, make_synced_cluster
from tests.support.instances import force_state

MANIFESTS = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: info\ndata:\n  a: b\n"
ACTIONS = [
    {"name": "start", "description": "Start.", "variables": []},
    {"name": "stop", "description": "Stop.", "variables": []},
]


@pytest.mark.django_db(transaction=True)
def test_start_and_launches_race_for_the_last_gpu():
    operator = make_operator(username="op-startrace")
    org, admin = make_org(operator=operator, name="startrace")
    project = tenancy_services.project_create(actor=admin, org=org, name="lab")
    owner = UserFactory(username="startrace-owner")
    add_member(admin=admin, user=owner, role=Role.WORKSPACE_ADMIN, project=project)
    template = catalog_services.template_create(actor=admin, project=project, name="ns")
    version = catalog_services.template_version_create(
        actor=admin, template=template, version="v1", manifests=MANIFESTS, actions=ACTIONS
    )
    version = catalog_services.template_version_publish(actor=admin, version=version)
    profile = catalog_services.profile_create(
        actor=admin,
        model=ComputeProfile,
        project=project,
        name="one-gpu",
        template_version=version,
        published=True,
        resource_groups=ONE_A100,
    )
    make_synced_cluster(name="startrace-c", nodes=4)
    tenancy_services.quota_update(actor=admin, quota=project.quota, gpus=2)
    running = instance_launch(actor=owner, project=project, name="running", profile=profile)
    stopped = instance_launch(actor=owner, project=project, name="stopped", profile=profile)
    ComputeInstance.objects.filter(pk__in=[running.pk, stopped.pk]).update(state=State.READY)
    Run.objects.filter(instance__project=project).update(outcome=Run.Outcome.SUCCEEDED)
    force_state(stopped, State.STOPPED)  # as a stop run leaves it (the counters re-summed)
    # The stopped one holds no GPU: one is free, and eleven requests race for it.
    results, barrier = {}, threading.Barrier(11)

    def attempt(key: str, call):
        try:
            barrier.wait()
            call()
            results[key] = "ok"
        except Conflict as exc:
            results[key] = exc.code
        except Exception as exc:  # any other failure fails the test below
            results[key] = repr(exc)
        finally:
            connection.close()

    calls = {
        f"launch-{i}": (
            lambda i=i: instance_launch(actor=owner, project=project, name=f"n-{i}", profile=profile)
        )
        for i in range(10)
    }
    calls["start"] = lambda: actions.action_run(
        actor=owner, target=ComputeInstance.objects.get(pk=stopped.pk), action="start"
    )
    threads = [threading.Thread(target=attempt, args=(key, call)) for key, call in calls.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert list(results.values()).count("ok") == 1, results
    assert set(results.values()) == {"ok", "quota_exceeded"}, results
    holding = ComputeInstance.objects.filter(project=project).exclude(state=State.STOPPED)
    assert sum(holding.values_list("gpus", flat=True)) == 2
    started = results["start"] == "ok"
    assert ComputeInstance.objects.get(pk=stopped.pk).state == (
        State.PROVISIONING if started else State.STOPPED
    )
    assert audit_verify().ok
