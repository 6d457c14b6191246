"""The instances API: launch, see, collaborate and refuse, per role and across tenants."""

import pytest

from instances.models import ComputeInstance
from paas.models import AuditEvent
from tenancy import services as tenancy_services
from tenancy.roles import Role
from tests.factories import ONE_A100, make_profile, make_synced_cluster

MANIFESTS = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  a: b\n"


@pytest.fixture
def launchable(world):
    profile = make_profile(
        actor=world.a.users["org_admin"],
        project=world.a.project,
        name="one-gpu",
        template="ns",
        manifests=MANIFESTS,
        resource_groups=ONE_A100,
    )
    make_synced_cluster(name="api-c")
    return profile


def test_launch_and_see_through_the_api(world, api, launchable):
    owner = world.a.users["workspace_admin"]
    client = api.as_user(owner)
    made = client.post(
        "/api/v1/instances/", {"project": world.a.project.pk, "name": "dev", "profile": launchable.pk}
    )
    assert made.status_code == 201, made.content
    body = made.json()
    assert body["state"] == "pending" and body["cluster"] == "api-c" and body["profile_name"] == "one-gpu"
    assert "Placed on cluster api-c" in body["placement_explanation"]
    assert body["latest_run"]["kind"] == "deploy"
    assert AuditEvent.objects.filter(action="instance.launch", target_id=str(body["id"])).exists()
    again = client.post(
        "/api/v1/instances/", {"project": world.a.project.pk, "name": "dev", "profile": launchable.pk}
    )
    assert again.status_code == 400 and "exists" in again.json()["error"]["fields"]["name"][0]
    # Read-only collaborators see it but cannot launch, delete or get a kubeconfig.
    reader = api.as_user(world.a.users["collaborator_ro"])
    assert reader.get(f"/api/v1/instances/{body['id']}/").status_code == 200
    assert (
        reader.post(
            "/api/v1/instances/", {"project": world.a.project.pk, "name": "x", "profile": launchable.pk}
        ).status_code
        == 403
    )
    assert reader.delete(f"/api/v1/instances/{body['id']}/").status_code == 403
    assert reader.post(f"/api/v1/instances/{body['id']}/kubeconfig/").status_code == 403
    # Another tenant sees nothing, and every id is a 404.
    outsider = api.as_user(world.b.users["org_admin"])
    assert outsider.get("/api/v1/instances/").json()["count"] == 0
    for method in ("get", "delete"):
        assert getattr(outsider, method)(f"/api/v1/instances/{body['id']}/").status_code == 404
    assert outsider.post(f"/api/v1/instances/{body['id']}/retry/").status_code == 404
    # The org admin sees every instance of the org (the studio too).
    assert api.as_user(world.a.users["org_admin"]).get("/api/v1/instances/").json()["count"] == 1
    summary = client.get(f"/api/v1/projects/{world.a.project.pk}/summary/").json()
    assert summary["instances"]["pending"] == 1 and summary["in_use"]["gpus"] == 1


def test_quota_refusal_names_the_limit(world, api, launchable):
    tenancy_services.quota_update(actor=world.operator, quota=world.a.org.quota, gpus=0)
    refused = api.as_user(world.a.users["workspace_admin"]).post(
        "/api/v1/instances/", {"project": world.a.project.pk, "name": "big", "profile": launchable.pk}
    )
    assert refused.status_code == 409
    error = refused.json()["error"]
    assert error["code"] == "quota_exceeded" and "Organization quota of 0 GPUs" in error["message"]
    assert not ComputeInstance.objects.filter(name="big").exists()


def test_collaborators_gain_and_lose_access(world, api, launchable):
    owner = world.a.users["workspace_admin"]
    client = api.as_user(owner)
    instance = client.post(
        "/api/v1/instances/", {"project": world.a.project.pk, "name": "shared", "profile": launchable.pk}
    ).json()
    friend = world.a.users["paas_admin_org"]  # an org member without access to the project's instances
    assert api.as_user(friend).get(f"/api/v1/instances/{instance['id']}/").status_code == 404
    added = api.as_user(owner).post(
        f"/api/v1/instances/{instance['id']}/collaborators/", {"email": friend.email}
    )
    assert added.status_code == 200 and added.json()[0]["email"] == friend.email
    assert api.as_user(friend).get(f"/api/v1/instances/{instance['id']}/").status_code == 200
    removed = api.as_user(owner).delete(f"/api/v1/instances/{instance['id']}/collaborators/{friend.pk}/")
    assert removed.status_code == 204
    assert api.as_user(friend).get(f"/api/v1/instances/{instance['id']}/").status_code == 404
    refused = api.as_user(owner).post(  # a workspace admin may not invite outsiders
        f"/api/v1/instances/{instance['id']}/collaborators/", {"email": "new@example.com"}
    )
    assert refused.status_code == 403 and not world.a.org.invitations.filter(email="new@example.com").exists()
    tenancy_services.role_assign(
        actor=world.a.users["org_admin"], user=owner, role=Role.ORG_ADMIN, org=world.a.org
    )  # now they may invite
    stranger = api.as_user(owner).post(
        f"/api/v1/instances/{instance['id']}/collaborators/", {"email": "new@example.com"}
    )
    assert stranger.status_code == 200 and stranger.json() == []  # invited to the workspace first
    assert world.a.org.invitations.filter(email="new@example.com").exists()
