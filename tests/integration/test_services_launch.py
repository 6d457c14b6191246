"""Launching service instances (no cluster needed: the launch renders locally): the admin's input
rules, datacenter and storage rules, fitting within the instance, snapshots, audit, the role matrix."""

import pytest

from catalog import services as catalog_services
from catalog.service_inputs import input_fields
from instances import service_instances
from instances.models import ComputeInstance, Run, ServiceInstance
from instances.states import State, transition
from inventory.models import Datacenter, Storage
from paas import secrets
from paas.audit import AuditEvent
from paas.errors import Conflict, Forbidden, NotFound, ValidationFailed
from tests.factories import make_profile, make_synced_cluster
from tests.support.instances import launch
from tests.support.roles import user_for
from tests.support.services import make_service_profile

CONFIGMAP = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ instance.name }}-info\ndata:\n  a: b\n"
GROUPS = [
    {"gpu_model": "A100-SXM4-40GB", "gpu_count": 1, "cpu_cores": "4", "memory_gib": 16, "storage_gib": 10}
]


def _ready(instance: ComputeInstance) -> ComputeInstance:
    """The instance as its deploy leaves it (ready, in its namespace): the launch needs nothing more."""
    from django.db import transaction

    with transaction.atomic():
        instance = ComputeInstance.objects.select_for_update().get(pk=instance.pk)
        instance.namespace = f"i-{instance.name}-ns"
        instance.save(update_fields=["namespace"])
        transition(instance, State.PROVISIONING)
        transition(instance, State.READY)
    return ComputeInstance.objects.select_related("cluster", "project__org", "owner").get(pk=instance.pk)


@pytest.fixture
def setup(world):
    """A ready 1-GPU, 4-CPU, 16 GiB, 10 GiB instance (its own template uses none of it) owned by the
    workspace admin, and the web service profile."""
    compute = make_profile(
        actor=world.a.users["paas_admin_org"],
        project=world.a.project,
        manifests=CONFIGMAP,
        resource_groups=GROUPS,
        name="box",
        template="box-tpl",
    )
    cluster = make_synced_cluster(name="c1")
    instance = _ready(launch(world, compute, "dev"))
    return {"world": world, "instance": instance, "profile": make_service_profile(world), "cluster": cluster}


def _launch(setup, name="web", actor=None, **kwargs):
    return service_instances.service_launch(
        actor=actor or setup["instance"].owner,
        compute_instance=setup["instance"],
        profile=kwargs.pop("profile", setup["profile"]),
        name=name,
        **kwargs,
    )


def _refused(setup, inputs, **kwargs) -> dict:
    with pytest.raises(ValidationFailed) as refused:
        _launch(setup, inputs=inputs, **kwargs)
    return refused.value.fields


def test_launch_records_service_run_usage_and_audit(setup):
    service = _launch(setup, inputs={"replicas": 2, "cpu_millis": 250, "memory_mib": 512, "note": "hi"})
    assert service.state == State.PENDING and service.host == "web.i-dev-ns.apps.c1.paas.internal"
    assert (service.cpu_millis, service.memory_gib, service.gpus, service.storage_gib) == (500, 1, 0, 0)
    run = Run.objects.get(service=service)
    assert run.kind == Run.Kind.DEPLOY and run.instance_id == setup["instance"].pk
    assert run.requested_by == setup["instance"].owner
    values = service.input_values
    assert values["mode"] == "dev" and values["admin_only"] == "fixed" and values["note"] == "hi"
    assert set(values["token"]) == {"encrypted"}  # generated, sealed
    event = AuditEvent.objects.get(action="service.launch", target_id=str(service.pk))
    assert "token" not in event.details["inputs"] and "admin_only" not in event.details["inputs"]
    assert event.details["inputs"]["note"] == "hi"
    # The snapshot keeps the profile as it was: later edits only affect new services.
    catalog_services.profile_update(
        actor=setup["world"].a.users["paas_admin_org"], profile=setup["profile"], labels={"x": "y"}
    )
    service.refresh_from_db()
    assert service.snapshot["labels"] == {} and service.snapshot["template"]["manifests"].startswith(
        "apiVersion"
    )


@pytest.mark.parametrize(
    ("inputs", "field", "words"),
    [
        ({"admin_only": "mine"}, "admin_only", "cannot be given"),  # not exposed
        ({"token": "chosen"}, "token", "cannot be given"),  # a secret the platform sets
        ({"mode": "prod"}, "mode", "cannot be changed"),  # exposed, not overridable
        ({"nope": 1}, "nope", "not an input"),  # unknown
        ({"replicas": "many"}, "replicas", "must be a number"),
        ({"cpu_millis": True}, "cpu_millis", "must be a number"),
        ({"note": "two\nlines"}, "note", "single line"),
    ],
)
def test_input_rules_each_name_the_field(setup, inputs, field, words):
    fields = _refused(setup, inputs)
    assert list(fields) == [field] and words in fields[field][0]
    assert not ServiceInstance.objects.exists()


def test_required_missing_and_fixed_value_given_unchanged(setup):
    settings = dict(setup["profile"].input_settings)
    settings["note"] = {"default": None, "required": True, "exposed": True, "overridable": True}
    strict = make_service_profile(setup["world"], name="strict", input_settings=settings)
    fields = _refused(setup, {}, profile=strict)
    assert fields == {"note": ["This input is required."]}
    # Sending a non-overridable input with its default is no change: accepted.
    service = _launch(setup, inputs={"note": "x", "mode": "dev"}, profile=strict)
    assert service.input_values["mode"] == "dev"


def test_input_fields_show_exposed_inputs_read_only_when_fixed(setup):
    fields = {f.name: f for f in input_fields(setup["profile"])}
    assert "admin_only" not in fields and "token" not in fields
    assert fields["mode"].overridable is False and fields["mode"].default == "dev"
    assert fields["replicas"].overridable and fields["replicas"].type == "number"


def test_does_not_fit_within_the_instance_with_numbers(setup):
    with pytest.raises(Conflict) as refused:
        _launch(setup, inputs={"cpu_millis": 5000, "gpus": 2})
    message = refused.value.message
    assert refused.value.code == "instance_capacity"
    assert "GPUs: needs 2, 1 left of 1" in message and "CPU: needs 5 CPU, 4 CPU left of 4 CPU" in message
    with pytest.raises(Conflict) as refused:
        _launch(setup, inputs={"volume_gib": 11})
    assert "Storage: needs 11 GiB, 10 GiB left of 10 GiB" in refused.value.message
    # Two services share the instance: the second finds what the first left.
    _launch(setup, "one", inputs={"cpu_millis": 3000, "gpus": 1})
    with pytest.raises(Conflict) as refused:
        _launch(setup, "two", inputs={"cpu_millis": 1500})
    assert (
        "CPU: needs 1.5 CPU, 1 CPU left of 4 CPU (the instance's own objects use 0 CPU, its services and "
        "applications 3 CPU)" in (refused.value.message)
    )
    _launch(setup, "two", inputs={"cpu_millis": 1000})
    usage = service_instances.instance_service_usage(setup["instance"])
    assert (
        usage["services"]["cpu_millis"] == 4000 and usage["left"]["cpu_millis"] == 0 and usage["count"] == 2
    )
    assert usage["left"]["gpus"] == 0


def test_stopped_services_keep_only_storage(setup):
    first = _launch(setup, "one", inputs={"cpu_millis": 4000, "volume_gib": 4})
    ServiceInstance.objects.filter(pk=first.pk).update(state=State.STOPPED)
    with pytest.raises(Conflict) as refused:
        _launch(setup, "two", inputs={"volume_gib": 7})
    assert "Storage: needs 7 GiB, 6 GiB left" in refused.value.message
    assert _launch(setup, "two", inputs={"cpu_millis": 4000, "volume_gib": 6}).cpu_millis == 4000


def test_name_catalog_and_readiness_rules(setup):
    _launch(setup)
    assert "exists on dev already" in _refused(setup, {})["name"][0]
    assert "DNS" in _refused(setup, {}, name="Not_A_Label")["name"][0] or _refused(
        setup, {}, name="Not_A_Label"
    )
    other = make_service_profile(setup["world"], name="elsewhere", project=setup["world"].a.spare_project)
    assert "catalog" in _refused(setup, {}, name="x", profile=other)["profile"][0]
    ComputeInstance.objects.filter(pk=setup["instance"].pk).update(state=State.FAILED)
    with pytest.raises(Conflict) as refused:
        _launch(setup, "late")
    assert refused.value.code == "instance_not_ready"


def test_datacenter_and_storage_rules(setup):
    world = setup["world"]
    east = Datacenter.objects.create(name="east", display_name="East", kind="data_center")
    west = Datacenter.objects.create(name="west", display_name="West", kind="data_center")
    setup["cluster"].datacenter = east
    setup["cluster"].save(update_fields=["datacenter"])
    setup["instance"].refresh_from_db()
    Storage.objects.create(name="hss-open", kind="high-speed-storage", storage_class="fast")
    west_hss = Storage.objects.create(
        name="hss-west", kind="high-speed-storage", storage_class="w", datacenter=west
    )
    profile = make_service_profile(
        world,
        name="dc",
        datacenter=east,
        datacenter_exposed=True,
        datacenter_overridable=True,
        storage_exposed=True,
        storage_overridable=True,
    )
    assert (
        "runs on cluster c1 in datacenter east"
        in _refused(setup, {}, profile=profile, datacenter=west)["datacenter"][0]
    )
    assert (
        "Not available with datacenter east: hss-west"
        in _refused(setup, {}, profile=profile, storage=["hss-west"])["storage"][0]
    )
    service = _launch(setup, profile=profile, storage=["hss-open"])
    assert service.datacenter == east and service.storage == ["hss-open"]
    assert service.snapshot["storage_details"][0] == {
        "name": "hss-open",
        "kind": "high-speed-storage",
        "storage_class": "fast",
        "bucket_endpoint": "",
        "bucket_name": "",
        "datacenter": None,
    }
    assert "credentials" not in str(service.snapshot)
    fixed = make_service_profile(world, name="fixed", datacenter=east)
    assert (
        "sets the datacenter"
        in _refused(setup, {}, name="f", profile=fixed, datacenter=west)["datacenter"][0]
    )
    assert (
        "sets the storage" in _refused(setup, {}, name="f", profile=fixed, storage=["hss-open"])["storage"][0]
    )
    assert west_hss.datacenter == west


WHO_DEPLOYS = {
    "workspace_admin": True,  # the instance's owner here
    "collaborator_rw": True,
    "collaborator_ro": False,
    "org_admin": False,  # administers the org, not its workspaces' instances
    "outsider": None,  # another org: 404
}


@pytest.mark.parametrize("who", list(WHO_DEPLOYS))
def test_role_matrix_launch_and_delete(setup, who, api):
    world = setup["world"]
    user = user_for(world, who)
    allowed = WHO_DEPLOYS[who]
    body = {"compute_instance": setup["instance"].pk, "profile": setup["profile"].pk, "name": "web"}
    response = api.as_user(user).post("/api/v1/service-instances/", body, format="json")
    if allowed is None:
        assert response.status_code == 400 and "compute_instance" in response.json()["error"]["fields"]
        with pytest.raises(NotFound):
            _launch(setup, actor=user)
    elif allowed:
        assert response.status_code == 201, response.json()
    else:
        assert response.status_code == 403
        with pytest.raises(Forbidden):
            _launch(setup, actor=user)
    service = _launch(setup, "owned") if allowed is not True else ServiceInstance.objects.get(name="web")
    response = api.as_user(user).delete(f"/api/v1/service-instances/{service.pk}/")
    expected = {True: 202, False: 403, None: 404}[allowed]
    assert response.status_code == expected


def test_instance_collaborator_may_deploy_and_manage(setup, world, api):
    from instances import services as instance_services
    from tenancy.roles import Role
    from tests.factories import UserFactory, add_member

    friend = UserFactory(username="friend")
    add_member(
        admin=world.a.users["org_admin"], user=friend, role=Role.COLLABORATOR_RO, project=world.a.project
    )
    body = {"compute_instance": setup["instance"].pk, "profile": setup["profile"].pk, "name": "web"}
    assert api.as_user(friend).post("/api/v1/service-instances/", body, format="json").status_code == 403
    instance_services.collaborator_add(
        actor=setup["instance"].owner, instance=setup["instance"], email=friend.email
    )
    response = api.as_user(friend).post("/api/v1/service-instances/", body, format="json")
    assert response.status_code == 201, response.json()
    assert (
        api.as_user(friend).delete(f"/api/v1/service-instances/{response.json()['id']}/").status_code == 202
    )


def test_api_input_rules_list_filters_and_secrets(setup, api):
    owner = setup["instance"].owner
    client = api.as_user(owner)
    body = {"compute_instance": setup["instance"].pk, "profile": setup["profile"].pk, "name": "web"}
    for inputs, field in (
        ({"admin_only": "x"}, "admin_only"),
        ({"mode": "prod"}, "mode"),
        ({"nope": 1}, "nope"),
        ({"replicas": "many"}, "replicas"),
    ):
        response = client.post("/api/v1/service-instances/", {**body, "inputs": inputs}, format="json")
        assert response.status_code == 400, response.json()
        assert list(response.json()["error"]["fields"]) == [field]
    response = client.post("/api/v1/service-instances/", {**body, "inputs": {"note": "n"}}, format="json")
    assert response.status_code == 201
    data = response.json()
    assert data["state"] == "pending" and data["url"] == f"http://{data['host']}"
    assert data["input_values"]["note"] == "n" and "token" not in data["input_values"]
    assert "encrypted" not in response.content.decode() and secrets.MASK not in response.content.decode()
    assert data["latest_run"]["kind"] == "deploy"
    listed = client.get(
        "/api/v1/service-instances/", {"instance": setup["instance"].pk, "type": "custom"}
    ).json()
    assert [s["name"] for s in listed["results"]] == ["web"]
    assert client.get("/api/v1/service-instances/", {"type": "notebook"}).json()["results"] == []
    assert client.get("/api/v1/service-instances/", {"state": "ready"}).json()["results"] == []
    assert client.get(f"/api/v1/service-instances/{data['id']}/").json()["name"] == "web"
    outsider = api.as_user(setup["world"].b.users["org_admin"])
    assert outsider.get(f"/api/v1/service-instances/{data['id']}/").status_code == 404
    assert outsider.get("/api/v1/service-instances/").json()["results"] == []


def test_schema_lists_the_service_instance_operations(api, world):
    schema = api.as_user(world.a.users["org_admin"]).get("/api/schema/", {"format": "json"}).json()
    paths = schema["paths"]
    assert {"get", "post"} <= set(paths["/api/v1/service-instances/"])
    assert {"get", "delete"} <= set(paths["/api/v1/service-instances/{id}/"])
    assert "post" in paths["/api/v1/service-instances/{id}/outputs/{name}/reveal/"]


@pytest.mark.django_db(transaction=True)
def test_concurrent_launches_never_oversubscribe_the_instance(setup):
    """Twelve launches of 1 CPU at once on a 4-CPU instance: its row lock serialises them, four fit."""
    import threading

    from django.db import connection

    results, barrier = [], threading.Barrier(12)

    def one(index: int):
        try:
            barrier.wait()
            _launch(setup, f"s-{index}", inputs={"cpu_millis": 1000})
            results.append("ok")
        except Conflict as exc:
            results.append(exc.code)
        except Exception as exc:  # any other failure fails the test below
            results.append(repr(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["instance_capacity"] * 8 + ["ok"] * 4
    assert ServiceInstance.objects.filter(compute_instance=setup["instance"]).count() == 4


def test_a_service_deleted_before_its_deploy_ran_is_never_deployed(setup):
    from instances import deployer

    service = _launch(setup)
    deploy_run = service.runs.get()
    delete_run = service_instances.service_delete(actor=setup["instance"].owner, service=service)
    assert deployer.execute(deploy_run.pk) == "finished already"
    deploy_run.refresh_from_db()
    assert deploy_run.outcome == "failed" and deploy_run.message == "Not run: the service is deleting."
    assert deployer.execute(delete_run.pk) == "deleted"  # nothing was applied: nothing to remove
    service.refresh_from_db()
    assert service.state == State.DELETED
    with pytest.raises(Conflict):
        service_instances.service_delete(actor=setup["instance"].owner, service=service)
