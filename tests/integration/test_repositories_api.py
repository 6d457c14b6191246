"""Repositories through the API (``/api/v1/repositories/``): a round trip against a real Git server with
credentials (the check asked for, run as the agent would, its outcome read back), the credential
write-only (the canary watch fails the test if it ever comes back), bad input (file://, local paths,
credentials in the URL) as 400 with field messages, other orgs as missing, readers refused."""

from catalog import tasks
from catalog.models import Repository
from paas.models import AuditEvent
from tests.support.canary import CANARY
from tests.support.integration_servers import GIT_PASSWORD, GIT_USER

URL = "/api/v1/repositories/"


def _create(api, user, **extra):
    body = {"name": "app", "kind": "git", "url": "https://127.0.0.1:9/app.git", **extra}
    return api.as_user(user).post(URL, body, format="json")


def test_round_trip_with_a_real_git_server(world, api, git_server_auth):
    repo = git_server_auth.create_repository("app")
    head = repo.commit({"deploy/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n"}, "c")
    member = world.a.users["collaborator_rw"]  # workspace members add their workspace's repositories
    created = _create(
        api,
        member,
        project=world.a.project.pk,
        url=repo.url,
        default_ref="main",
        path="deploy",
        auth="basic",
        username=GIT_USER,
        credential=GIT_PASSWORD,
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert "credential" not in body and body["has_credential"] is True and body["check_ok"] is None
    assert body["may_manage"] is True and body["scope"] == str(world.a.project)

    checked = api.as_user(member).post(f"{URL}{body['id']}/check/", {}, format="json")
    assert checked.status_code == 202, checked.content
    tasks.repository_check(body["id"])  # what the agent's worker runs
    read = api.as_user(member).get(f"{URL}{body['id']}/").json()
    assert read["check_ok"] is True and head[:12] in read["check_message"]

    # An empty credential keeps it; a wrong one fails the next check with the reason, not the secret.
    kept = api.as_user(member).patch(
        f"{URL}{body['id']}/", {"credential": "", "description": "d"}, format="json"
    )
    assert kept.status_code == 200 and kept.json()["has_credential"] is True
    api.as_user(member).patch(f"{URL}{body['id']}/", {"credential": f"{CANARY}-wrong"}, format="json")
    tasks.repository_check(body["id"])
    failed = api.as_user(member).get(f"{URL}{body['id']}/")
    assert failed.json()["check_ok"] is False and "401" in failed.json()["check_message"]
    assert CANARY not in failed.content.decode()
    assert Repository.objects.get(pk=body["id"]).credential.reveal() == f"{CANARY}-wrong"

    # Readers of the workspace see it, may not change it; another org does not find it.
    reader = api.as_user(world.a.users["collaborator_ro"])
    assert reader.get(f"{URL}{body['id']}/").json()["may_manage"] is False
    assert reader.patch(f"{URL}{body['id']}/", {"description": "x"}, format="json").status_code == 403
    assert reader.delete(f"{URL}{body['id']}/").status_code == 403
    outsider = api.as_user(world.b.users["org_admin"])
    assert outsider.get(URL).json()["count"] == 0
    for method, path in (("get", ""), ("patch", ""), ("delete", ""), ("post", "check/"), ("post", "share/")):
        response = getattr(outsider, method)(f"{URL}{body['id']}/{path}", {"sharing": "all"}, format="json")
        assert response.status_code == 404, (method, path, response.content)
    # Sharing a workspace's repository with other workspaces is the PaaS or org admins' decision.
    refused = api.as_user(member).post(f"{URL}{body['id']}/share/", {"sharing": "all"}, format="json")
    assert refused.status_code == 403
    shared = api.as_user(world.a.users["org_admin"]).post(
        f"{URL}{body['id']}/share/",
        {"sharing": "selected", "projects": [world.a.spare_project.pk]},
        format="json",
    )
    assert shared.status_code == 200 and shared.json()["shared_projects"] == [world.a.spare_project.pk]
    assert api.as_user(member).delete(f"{URL}{body['id']}/").status_code == 204
    assert AuditEvent.objects.filter(action="repository.delete", target_id=str(body["id"])).exists()


def test_bad_input_is_400_with_field_messages(world, api):
    admin = world.a.users["org_admin"]
    cases = [
        ({"url": "file:///etc/passwd"}, "url"),
        ({"url": "/srv/git/app.git"}, "url"),
        ({"url": f"https://user:{CANARY}@127.0.0.1:9/app.git"}, "url"),
        ({"url": "https://169.254.169.254/latest"}, "url"),
        ({"url": "not a url"}, "url"),
        ({"kind": "svn"}, "kind"),
        ({"auth": "basic", "credential": "x"}, "username"),
        ({"auth": "token"}, "credential"),
        ({"kind": "helm", "url": "https://127.0.0.1:9/charts", "default_ref": "main"}, "default_ref"),
        ({"name": "Not A Name"}, "name"),
        ({"project": world.b.project.pk}, "project"),
    ]
    for extra, field in cases:
        response = _create(api, admin, **({"project": world.a.project.pk} | extra))
        assert response.status_code == 400, (extra, response.content)
        assert field in response.json()["error"]["fields"], (extra, response.content)
        assert CANARY not in response.content.decode()
    # Read-only members do not add repositories; the system scope is the operators'.
    assert _create(api, world.a.users["collaborator_ro"], project=world.a.project.pk).status_code == 403
    assert _create(api, admin).status_code == 403
    assert not Repository.objects.exists()
    system = _create(api, world.operator, system_sharing="all")
    assert system.status_code == 201, system.content
    assert system.json()["scope"] == "system" and system.json()["system_sharing"] == "all"
    seen = api.as_user(world.b.users["collaborator_ro"]).get(f"{URL}{system.json()['id']}/")
    assert seen.status_code == 200 and seen.json()["may_manage"] is False
