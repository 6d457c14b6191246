"""Applications through the API (``/api/v1/applications/``) with no cluster: create (upload, repository,
catalog), list and filters, retrieve with revisions, bad input as 400 with field messages, other orgs as
missing, readers refused, a deploy in flight as 409, delete, refresh. The deploy itself (update, roll
back on a real cluster) is in test_applications_api_deploy.py."""

import pytest
from django.db import transaction

from catalog.models import CatalogApplication, Repository
from instances.models import Application, ComputeInstance, Run
from instances.states import State, transition
from paas.models import AuditEvent
from tests.factories import make_profile, make_synced_cluster
from tests.support.instances import launch

URL = "/api/v1/applications/"
CONFIGMAP = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  a: b\n"
GROUPS = [
    {"gpu_model": "A100-SXM4-40GB", "gpu_count": 1, "cpu_cores": "4", "memory_gib": 16, "storage_gib": 10}
]


def _ready(instance: ComputeInstance) -> ComputeInstance:
    """The instance as its deploy leaves it (ready, in its namespace)."""
    with transaction.atomic():
        instance = ComputeInstance.objects.select_for_update().get(pk=instance.pk)
        instance.namespace = f"i-{instance.name}-ns"
        instance.save(update_fields=["namespace"])
        transition(instance, State.PROVISIONING)
        transition(instance, State.READY)
    return ComputeInstance.objects.select_related("cluster", "project__org", "owner").get(pk=instance.pk)


@pytest.fixture
def compute(world):
    profile = make_profile(
        actor=world.a.users["paas_admin_org"],
        project=world.a.project,
        manifests=CONFIGMAP.format(name="{{ instance.name }}-info"),
        resource_groups=GROUPS,
        name="box",
        template="box-tpl",
    )
    make_synced_cluster(name="c1")
    return _ready(launch(world, profile, "dev"))


def _upload(api, user, compute, name="web", **extra):
    body = {
        "compute_instance": compute.pk,
        "name": name,
        "package_type": "yaml",
        "sync": "upload",
        "files": {"web.yaml": CONFIGMAP.format(name=f"{name}-cm")},
        **extra,
    }
    return api.as_user(user).post(URL, body, format="json")


def test_create_list_retrieve_and_filters(world, api, compute):
    admin = world.a.users["workspace_admin"]
    created = _upload(api, admin, compute, description="the web")
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["state"] == "pending" and body["revision"] == 1 and body["may_manage"] is True
    assert body["package_type"] == "yaml" and body["compute_instance_name"] == "dev"
    [revision] = body["revisions"]
    assert (
        revision["number"] == 1
        and revision["outcome"] == "pending"
        and revision["file_names"] == ["web.yaml"]
    )
    assert body["latest_run"]["kind"] == "deploy" and body["object_status"] == []
    assert AuditEvent.objects.filter(action="application.create", target_id=str(body["id"])).exists()

    reader = api.as_user(world.a.users["collaborator_ro"])
    assert reader.get(f"{URL}{body['id']}/").json()["may_manage"] is False
    listed = reader.get(f"{URL}?project={world.a.project.pk}&compute_instance={compute.pk}").json()
    assert [a["name"] for a in listed["results"]] == ["web"] and "revisions" not in listed["results"][0]
    assert reader.get(f"{URL}?state=ready").json()["count"] == 0
    assert reader.get(f"{URL}?q=the%20we").json()["count"] == 1
    assert reader.get(f"{URL}?project={world.b.project.pk}").json()["count"] == 0
    for bad in ("state=nope", "project=x", "compute_instance=%D9%A3"):
        response = reader.get(f"{URL}?{bad}")
        assert response.status_code == 400 and bad.split("=")[0] in response.json()["error"]["fields"]

    # Another org: missing, whatever the method; it lists nothing of A.
    outsider = api.as_user(world.b.users["org_admin"])
    assert outsider.get(URL).json()["count"] == 0
    for method, path in (
        ("get", ""),
        ("patch", ""),
        ("delete", ""),
        ("post", "rollback/"),
        ("post", "retry/"),
        ("post", "refresh/"),
    ):
        response = getattr(outsider, method)(f"{URL}{body['id']}/{path}", {}, format="json")
        assert response.status_code == 404, (method, path, response.content)
    # Another org's compute instance reads like a missing one.
    refused = _upload(api, world.b.users["org_admin"], compute, name="x")
    assert refused.status_code == 400 and "does not exist" in str(refused.json()["error"]["fields"])


def test_readers_are_refused_and_a_deploy_in_flight_waits(world, api, compute):
    assert _upload(api, world.a.users["collaborator_ro"], compute).status_code == 403
    created = _upload(api, world.a.users["collaborator_rw"], compute)
    assert created.status_code == 201, created.content
    pk = created.json()["id"]
    reader = api.as_user(world.a.users["collaborator_ro"])
    for method, path in (("patch", ""), ("delete", ""), ("post", "rollback/"), ("post", "retry/")):
        response = getattr(reader, method)(f"{URL}{pk}/{path}", {"ref": "x"}, format="json")
        assert response.status_code == 403, (method, path, response.content)
    # Anyone who sees it may ask for its status again.
    assert reader.post(f"{URL}{pk}/refresh/").status_code == 202
    writer = api.as_user(world.a.users["collaborator_rw"])
    # The first deploy is still queued: an update waits; nothing failed, so nothing to retry or roll back to.
    busy = writer.patch(f"{URL}{pk}/", {"files": {"web.yaml": CONFIGMAP.format(name="other")}}, format="json")
    assert busy.status_code == 409, busy.content
    assert api.as_user(world.a.users["collaborator_rw"]).post(f"{URL}{pk}/retry/").status_code == 409
    deleted = api.as_user(world.a.users["collaborator_rw"]).delete(f"{URL}{pk}/")
    assert deleted.status_code == 202 and deleted.json()["kind"] == "delete"
    assert Application.objects.get(pk=pk).state == State.DELETING
    assert Run.objects.filter(application_id=pk, kind=Run.Kind.DELETE).count() == 1


def test_bad_input_is_400_with_field_messages(world, api, compute):
    admin = world.a.users["workspace_admin"]
    foreign = Repository.objects.create(
        org=world.b.org,
        project=world.b.project,
        name="theirs",
        kind="git",
        url="https://git.example.com/t.git",
    )
    own_helm = Repository.objects.create(
        org=world.a.org, project=world.a.project, name="charts", kind="helm", url="https://charts.example.com"
    )
    cases = [
        ({"files": {"web.yaml": "a: [unclosed"}}, "files"),
        ({"files": {"ns.yaml": "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: mine\n"}}, "files"),
        ({"files": {}}, "files"),
        ({"values": "- a list"}, "values"),
        ({"name": "Not_A_Name"}, "name"),
        ({"package_type": "zip"}, "package_type"),
        ({"package_type": None}, "package_type"),
        ({"sync": "repository", "files": {}, "repository": 999999}, "repository"),
        ({"sync": "repository", "files": {}, "repository": foreign.pk}, "repository"),
        ({"sync": "repository", "files": {}, "repository": own_helm.pk}, "repository"),
        ({"sync": "repository", "files": {}, "repository": "x"}, "repository"),
        ({"catalog_item": 999999}, "catalog_item"),
        ({"compute_instance": 999999}, "compute_instance"),
    ]
    messages = {}
    for extra, field in cases:
        response = _upload(api, admin, compute, **extra)
        assert response.status_code == 400, (extra, response.content)
        fields = response.json()["error"]["fields"]
        assert field in fields, (extra, fields)
        messages[str(extra.get("repository"))] = fields.get("repository")
    assert "Namespace" in str(_upload(api, admin, compute, **cases[1][0]).json()["error"]["fields"])
    # Another org's repository reads exactly like one that does not exist.
    assert messages["999999"] == messages[str(foreign.pk)]
    assert not Application.objects.exists()


def test_from_the_catalog_with_value_overrides(world, api, compute):
    item = CatalogApplication.objects.create(
        org=world.a.org,
        name="hello",
        display_name="Hello",
        package_type="yaml",
        sync="upload",
        files={"cm.yaml": CONFIGMAP.format(name="hello-cm")},
        values="replicas: 1\nimage:\n  tag: v1\n",
        sharing="all",
        published=True,
    )
    created = api.as_user(world.a.users["collaborator_rw"]).post(
        URL,
        {
            "compute_instance": compute.pk,
            "name": "hello",
            "catalog_item": item.pk,
            "values": "image:\n  tag: v2\n",
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["catalog_item"] == item.pk and body["catalog_item_name"] == "hello"
    [revision] = body["revisions"]
    assert "tag: v2" in revision["values"] and "replicas: 1" in revision["values"]
    assert revision["file_names"] == ["cm.yaml"]
    # From the catalog, only values; an unpublished item is not in the workspace's catalog.
    mixed = api.as_user(world.a.users["collaborator_rw"]).post(
        URL,
        {"compute_instance": compute.pk, "name": "h2", "catalog_item": item.pk, "ref": "main"},
        format="json",
    )
    assert mixed.status_code == 400 and "catalog_item" in mixed.json()["error"]["fields"]
    CatalogApplication.objects.filter(pk=item.pk).update(published=False)
    hidden = api.as_user(world.a.users["collaborator_rw"]).post(
        URL, {"compute_instance": compute.pk, "name": "h3", "catalog_item": item.pk}, format="json"
    )
    assert hidden.status_code == 400 and "catalog_item" in hidden.json()["error"]["fields"]
