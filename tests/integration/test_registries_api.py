"""Container registries through the API (``/api/v1/registries/``): the credential is write-only (never
answered, only ``has_credential``; the canary watch fails the test if it ever comes back), the check
against the real registry's token flow, bad input as 400 with field messages, other orgs as missing,
readers refused."""

import pytest

from catalog.models import ContainerRegistry
from paas.models import AuditEvent
from tests.support.canary import CANARY
from tests.support.integration_servers import REGISTRY_PULLER, REGISTRY_PULLER_PASSWORD

URL = "/api/v1/registries/"


def _create(api, user, **extra):
    body = {
        "name": "harbor",
        "provider": "generic",
        "scheme": "https",
        "endpoint": "127.0.0.1:5000",  # names must resolve; loopback is allowed in the test profile
        "username": "robot",
        "credential": f"{CANARY}-api",
        **extra,
    }
    return api.as_user(user).post(URL, body, format="json")


def test_round_trip_credential_write_only(world, api):
    admin = world.a.users["org_admin"]
    created = _create(api, admin, org=world.a.org.pk, sharing="all")
    assert created.status_code == 201, created.content
    body = created.json()
    assert "credential" not in body and body["has_credential"] is True and body["credential_version"] == 1
    assert body["scope"] == f"{world.a.org.name} (organization)" and body["may_manage"] is True
    registry = ContainerRegistry.objects.get(pk=body["id"])
    assert registry.credential.reveal() == f"{CANARY}-api"  # stored (encrypted), never answered

    # An empty credential keeps it; a new one replaces it and bumps the version; clear removes it.
    client = api.as_user(admin)
    kept = client.patch(f"{URL}{body['id']}/", {"credential": "", "description": "d"}, format="json")
    assert (
        kept.status_code == 200 and kept.json()["credential_version"] == 1 and kept.json()["has_credential"]
    )
    replaced = client.patch(f"{URL}{body['id']}/", {"credential": f"{CANARY}-new"}, format="json")
    assert replaced.json()["credential_version"] == 2
    cleared = client.patch(f"{URL}{body['id']}/", {"clear_credential": True, "username": ""}, format="json")
    assert cleared.status_code == 200, cleared.content
    assert cleared.json()["has_credential"] is False and cleared.json()["credential_version"] == 3
    assert (
        AuditEvent.objects.filter(action="containerregistry.update", target_id=str(body["id"])).count() >= 2
    )
    for response in (created, kept, replaced, cleared, client.get(URL), client.get(f"{URL}{body['id']}/")):
        assert CANARY not in response.content.decode()

    # Workspace members see the org's registry shared with all projects, read-only.
    reader = api.as_user(world.a.users["collaborator_ro"])
    seen = reader.get(f"{URL}{body['id']}/")
    assert seen.status_code == 200 and seen.json()["may_manage"] is False
    assert reader.patch(f"{URL}{body['id']}/", {"description": "x"}, format="json").status_code == 403
    assert reader.delete(f"{URL}{body['id']}/").status_code == 403
    # Another org: missing.
    outsider = api.as_user(world.b.users["org_admin"])
    assert outsider.get(URL).json()["count"] == 0
    for method, path in (("get", ""), ("patch", ""), ("delete", ""), ("post", "check/"), ("post", "share/")):
        response = getattr(outsider, method)(f"{URL}{body['id']}/{path}", {"sharing": "all"}, format="json")
        assert response.status_code == 404, (method, path, response.content)
    assert api.as_user(admin).delete(f"{URL}{body['id']}/").status_code == 204
    assert not ContainerRegistry.objects.filter(pk=body["id"]).exists()


def test_bad_input_is_400_with_field_messages(world, api):
    admin = world.a.users["org_admin"]
    cases = [
        ({"endpoint": "file:///etc/passwd"}, "endpoint"),
        ({"endpoint": "https://user@registry.example.com"}, "endpoint"),
        ({"endpoint": "not a host"}, "endpoint"),
        ({"endpoint": "169.254.169.254"}, "endpoint"),
        ({"provider": "quay"}, "provider"),
        ({"scheme": "ftp"}, "scheme"),
        ({"name": "Not A Name"}, "name"),
        ({"username": ""}, "username"),  # a credential needs the user name it goes with
        ({"project": world.b.project.pk}, "project"),
    ]
    for extra, field in cases:
        response = _create(api, admin, **({"project": world.a.project.pk} | extra))
        assert response.status_code == 400, (extra, response.content)
        assert field in response.json()["error"]["fields"], (extra, response.content)
        assert CANARY not in response.content.decode()
    # Members of a workspace never manage registries (what is delivered, tenants can read).
    refused = _create(api, world.a.users["workspace_admin"], project=world.a.project.pk)
    assert refused.status_code == 400 and "does not exist" in str(
        refused.json()["error"]["fields"]["project"]
    )
    assert _create(api, admin).status_code == 403  # the system scope is the operators'
    assert not ContainerRegistry.objects.exists()


@pytest.mark.toolchain
def test_check_against_the_real_registry(world, api, registry_token):
    admin = world.a.users["paas_admin_project"]
    created = _create(
        api,
        admin,
        project=world.a.project.pk,
        scheme="http",
        endpoint=registry_token.host,
        username=REGISTRY_PULLER,
        credential=REGISTRY_PULLER_PASSWORD,
    )
    assert created.status_code == 201, created.content
    checked = api.as_user(admin).post(f"{URL}{created.json()['id']}/check/")
    assert checked.status_code == 200, checked.content
    assert checked.json()["check_ok"] is True, checked.json()["check_message"]
    assert "credential" not in checked.json()
    wrong = api.as_user(admin).patch(
        f"{URL}{created.json()['id']}/", {"credential": f"{CANARY}-wrong"}, format="json"
    )
    assert wrong.status_code == 200
    failed = api.as_user(admin).post(f"{URL}{created.json()['id']}/check/").json()
    assert failed["check_ok"] is False and failed["check_message"]
    # Readers may not run the check (it uses the credential).
    assert api.as_user(world.a.users["collaborator_rw"]).post(
        f"{URL}{created.json()['id']}/check/"
    ).status_code in (
        403,
        404,
    )
