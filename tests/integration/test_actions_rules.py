"""The rules of actions and day-2 without a cluster: who may run actions on a compute instance and on a
service (the role matrix through the API), which variables a service's profile lets users set, and
when a redeploy is refused. (Runs are only queued here; tests/integration/test_actions.py runs them.)"""

import pytest

from instances import actions, services
from instances.models import ComputeInstance, Run, ServiceInstance
from instances.states import State
from paas.errors import Conflict, ValidationFailed
from tenancy import services as tenancy_services
from tenancy.roles import Role
from tests.factories import ONE_A100, UserFactory, add_member, make_synced_cluster
from tests.support.instances import force_state
from tests.support.roles import WITH_SUPPORT, user_for

MANIFESTS = """apiVersion: v1
kind: ConfigMap
metadata:
  name: info
data:
  mode: {{ ((action.variables or {}).get("mode") or "none") if (action is defined and action) else "none" }}
"""
ACTIONS = [
    {
        "name": "restart",
        "description": "Restart the workloads.",
        "variables": [
            {
                "name": "mode",
                "type": "select",
                "options": ["soft", "hard"],
                "default": "soft",
                "description": "How to restart.",
            },
            {"name": "note", "type": "text", "default": "routine", "description": "Why."},
        ],
    },
    {"name": "stop", "description": "Stop.", "variables": []},
    {"name": "start", "description": "Start.", "variables": []},
]
ACTION_SETTINGS = {
    "restart": {
        "mode": {
            "alias": "Restart mode",
            "tooltip": "Soft waits for the pods.",
            "allow_override": True,
            "default": "hard",
        },
        "note": {"alias": "Note", "tooltip": "", "allow_override": False, "default": "fixed"},
    }
}


@pytest.fixture
def setup(world):
    """A ready compute instance of tenant A launched by its then workspace admin ``owner`` (now only a
    read-write collaborator there), with an instance ``collaborator``, and a ready service on it."""
    from catalog import services as catalog_services

    org_admin, project = world.a.users["org_admin"], world.a.project
    make_synced_cluster(name="rules-c")
    admin, paas_admin = world.a.users["workspace_admin"], world.a.users["paas_admin_project"]
    template = catalog_services.template_create(actor=paas_admin, project=project, name="acts")
    version = catalog_services.template_version_create(
        actor=paas_admin, template=template, version="v1", manifests=MANIFESTS, actions=ACTIONS
    )
    version = catalog_services.template_version_publish(actor=paas_admin, version=version)
    from catalog.models import ComputeProfile

    profile = catalog_services.profile_create(
        actor=paas_admin,
        model=ComputeProfile,
        project=project,
        name="acts",
        template_version=version,
        published=True,
        resource_groups=ONE_A100,
    )
    owner = UserFactory(username="rules-owner")
    add_member(admin=org_admin, user=owner, role=Role.WORKSPACE_ADMIN, project=project)
    instance = services.instance_launch(actor=owner, project=project, name="acts", profile=profile)
    tenancy_services.role_assign(actor=org_admin, user=owner, role=Role.COLLABORATOR_RW, project=project)
    assignment = owner.role_assignments.get(project=project, role=Role.WORKSPACE_ADMIN)
    tenancy_services.role_revoke(actor=org_admin, assignment=assignment)
    collaborator = UserFactory(username="rules-collab")
    add_member(admin=org_admin, user=collaborator, role=Role.COLLABORATOR_RO, project=project)
    services.collaborator_add(actor=admin, instance=instance, email=collaborator.email)
    ComputeInstance.objects.filter(pk=instance.pk).update(state=State.READY)  # as if deployed
    instance.runs.update(outcome=Run.Outcome.SUCCEEDED)
    instance.refresh_from_db()
    # A service of a profile whose template declares the same actions (launched, as if deployed).
    from catalog.models import ServiceProfile
    from instances.service_instances import service_launch

    stemplate = catalog_services.template_create(actor=paas_admin, project=project, name="sacts")
    sversion = catalog_services.template_version_create(
        actor=paas_admin,
        template=stemplate,
        version="v1",
        # the service's own ConfigMap: the instance's "info" is not the service's to take over
        manifests=MANIFESTS.replace("name: info", "name: {{ instance.name }}-info"),
        actions=ACTIONS,
    )
    sversion = catalog_services.template_version_publish(actor=paas_admin, version=sversion)
    service_profile = catalog_services.profile_create(
        actor=paas_admin,
        model=ServiceProfile,
        project=project,
        name="sacts",
        template_version=sversion,
        published=True,
        service_type=ServiceProfile.ServiceType.CUSTOM,
        action_settings=ACTION_SETTINGS,
    )
    service = service_launch(actor=admin, compute_instance=instance, profile=service_profile, name="svc")
    ServiceInstance.objects.filter(pk=service.pk).update(state=State.READY)
    service.runs.update(outcome=Run.Outcome.SUCCEEDED)
    service.refresh_from_db()
    return {"instance": instance, "service": service, "owner": owner, "collaborator": collaborator}


def _who(world, setup, who):
    return setup[who] if who in ("owner", "collaborator") else user_for(world, who)


# Compute instances: the owner, its collaborators, workspace admins; read-write and read-only members
# see it and are refused (403), as are org admins and an operator with a support access (read: sees;
# admin: as an org admin); PaaS admins do not see workspace activity, nor does another org or an
# operator without a support access (404).
INSTANCE_ALLOWED = {"workspace_admin", "owner", "collaborator"}
# Services: also the workspace's read-write collaborators.
SERVICE_ALLOWED = INSTANCE_ALLOWED | {"collaborator_rw"}
HIDDEN = {"paas_admin_org", "paas_admin_project", "outsider", "operator"}


@pytest.mark.parametrize("target", ["instance", "service"])
@pytest.mark.parametrize("who", [*WITH_SUPPORT, "owner", "collaborator"])
def test_role_matrix_for_actions(world, api, setup, who, target):
    obj = setup[target]
    path = "instances" if target == "instance" else "service-instances"
    client = api.as_user(_who(world, setup, who))
    response = client.post(f"/api/v1/{path}/{obj.pk}/actions/restart/", {}, format="json")
    allowed = INSTANCE_ALLOWED if target == "instance" else SERVICE_ALLOWED
    expected = 202 if who in allowed else 404 if who in HIDDEN else 403
    assert response.status_code == expected, (who, response.content)
    listing = client.get(f"/api/v1/{path}/{obj.pk}/actions/")
    assert listing.status_code == (404 if who in HIDDEN else 200)
    if expected == 202:
        run = Run.objects.get(pk=response.json()["id"])
        assert (
            run.kind == Run.Kind.ACTION
            and run.action == "restart"
            and run.requested_by == _who(world, setup, who)
        )
        assert (run.service_id == obj.pk) if target == "service" else run.service_id is None
        assert type(obj).objects.get(pk=obj.pk).state == State.PROVISIONING
    if who not in ("org_admin", "operator_admin"):
        assert listing.status_code != 200 or listing.json()["may_run"] == (who in allowed)


def test_service_action_variables(world, setup):
    service, owner = setup["service"], setup["owner"]
    (restart, stop, start) = actions.actions_for(service)
    assert (stop.name, start.name) == ("stop", "start")
    # Only the overridable variable is shown, under its alias, tooltip and the profile's default.
    assert restart.variables == [
        actions.ActionVariable(
            name="mode",
            alias="Restart mode",
            tooltip="Soft waits for the pods.",
            type="select",
            options=["soft", "hard"],
            default="hard",
        )
    ]
    run = actions.action_run(actor=owner, target=service, action="restart")
    assert run.variables == {"mode": "hard", "note": "fixed"}  # the fixed one at its configured default
    ServiceInstance.objects.filter(pk=service.pk).update(state=State.READY)
    Run.objects.filter(pk=run.pk).update(outcome=Run.Outcome.SUCCEEDED)
    run = actions.action_run(actor=owner, target=service, action="restart", variables={"mode": "soft"})
    assert run.variables == {"mode": "soft", "note": "fixed"}
    ServiceInstance.objects.filter(pk=service.pk).update(state=State.READY)
    Run.objects.filter(pk=run.pk).update(outcome=Run.Outcome.SUCCEEDED)
    for given, field in (({"note": "mine"}, "note"), ({"mode": "rough"}, "mode"), ({"other": 1}, "other")):
        with pytest.raises(ValidationFailed) as refused:
            actions.action_run(actor=owner, target=service, action="restart", variables=given)
        assert field in refused.value.fields, (given, refused.value.fields)
    # A compute instance has no action settings: every variable is fixed at the template's default.
    instance = setup["instance"]
    assert [a.variables for a in actions.actions_for(instance)] == [[], [], []]
    with pytest.raises(ValidationFailed) as refused:
        actions.action_run(actor=owner, target=instance, action="restart", variables={"mode": "hard"})
    assert "mode" in refused.value.fields
    run = actions.action_run(actor=owner, target=instance, action="restart")
    assert run.variables == {"mode": "soft", "note": "routine"}


def test_states_that_refuse_actions(world, setup):
    service, instance, owner = setup["service"], setup["instance"], setup["owner"]
    with pytest.raises(Conflict, match="only a stopped service can be started"):
        actions.action_run(actor=owner, target=service, action="start")
    ServiceInstance.objects.filter(pk=service.pk).update(state=State.STOPPED)
    service.refresh_from_db()
    with pytest.raises(Conflict, match="runs on a ready service"):
        actions.action_run(actor=owner, target=service, action="restart")
    ComputeInstance.objects.filter(pk=instance.pk).update(state=State.STOPPED)
    with pytest.raises(Conflict, match="compute instance acts is stopped"):
        actions.action_run(actor=owner, target=service, action="start")


def test_day2_refused_without_the_label(world, api, setup):
    service = setup["service"]
    refusal = actions.day2_refusal(service)
    assert "ALLOW_DAY2_OPERATIONS" in refusal
    client = api.as_user(setup["owner"])
    response = client.post(f"/api/v1/service-instances/{service.pk}/redeploy/", {"inputs": {}}, format="json")
    assert response.status_code == 409 and "ALLOW_DAY2_OPERATIONS" in response.json()["error"]["message"]
    assert (
        client.get(f"/api/v1/service-instances/{service.pk}/actions/").json()["redeploy_refusal"] == refusal
    )
    for value, allowed in (
        ("true", True),
        ("TRUE", True),
        (" True ", True),
        ("false", False),
        ("yes", False),
    ):
        service.snapshot["labels"] = {"ALLOW_DAY2_OPERATIONS": value}
        assert (actions.day2_refusal(service) is None) == allowed, value
    service.snapshot["labels"] = {"ALLOW_DAY2_OPERATIONS": "true"}
    service.state = State.STOPPED
    assert "Only a ready service" in actions.day2_refusal(service)
    # Read-only members are refused before anything is said about the service.
    response = api.as_user(world.a.users["collaborator_ro"]).post(
        f"/api/v1/service-instances/{service.pk}/redeploy/", {"inputs": {}}, format="json"
    )
    assert response.status_code == 403


def test_a_queued_action_of_an_instance_deleted_meanwhile_is_dropped(world, setup):
    from instances import deployer

    instance, admin = setup["instance"], world.a.users["workspace_admin"]
    run = actions.action_run(actor=admin, target=instance, action="stop")
    services.instance_delete(actor=admin, instance=instance)
    assert deployer.execute(run.pk) == "dropped"
    instance.refresh_from_db()
    run.refresh_from_db()
    assert instance.state == State.DELETING and run.outcome == Run.Outcome.FAILED
    assert "is deleting; the run is dropped" in run.message


def test_a_failed_instance_can_be_started_without_taking_its_quota_twice(world, setup):
    """A stop that failed half-way leaves the instance failed (holding its quota in full) with its
    workloads possibly scaled down: start is its way back, with no second quota check."""
    instance, admin = setup["instance"], world.a.users["workspace_admin"]
    tenancy_services.quota_update(actor=world.a.users["org_admin"], quota=instance.project.quota, gpus=1)
    force_state(instance, State.FAILED)
    run = actions.action_run(actor=admin, target=ComputeInstance.objects.get(pk=instance.pk), action="start")
    assert run.action == "start" and ComputeInstance.objects.get(pk=instance.pk).state == State.PROVISIONING
    # A stopped one over the quota is refused with the numbers.
    run.outcome = Run.Outcome.SUCCEEDED
    run.save()
    force_state(instance, State.STOPPED)
    tenancy_services.quota_update(actor=world.a.users["org_admin"], quota=instance.project.quota, gpus=0)
    with pytest.raises(Conflict, match="quota of 0 GPUs: 0 in use, this start needs 1"):
        actions.action_run(actor=admin, target=ComputeInstance.objects.get(pk=instance.pk), action="start")
