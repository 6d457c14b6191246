"""The role matrix through the API: every role of DESIGN against every tenancy action.

Each row says which roles may do the action on tenant A; everyone else must be refused with 403
(they can see the object but not act) or 404 (they cannot see it). The operator runs organizations
(create, rename, set their quotas, invite their admins, the system catalog) and sees nothing inside
one, like any non-member, unless they hold a support access to it: read-only (``operator_read``: they
see what members see, change nothing) or administrative (``operator_admin``: as an org admin).
"""

import pytest

from paas.models import AuditEvent
from tests.support.roles import OPERATORS, WITH_SUPPORT, user_for
from tests.support.support import grant_support

ALL = set(WITH_SUPPORT)
# Who sees inside org A: its members and an operator holding a support access to it.
MEMBERS = ALL - {"outsider", "operator"}
# Who administers org A: its admins and an operator holding an administrative support access.
ADMINS = {"org_admin", "operator_admin"}
# Who works in workspace A (issue 11 part 7): a PaaS admin, org- or project-scoped, manages its
# profiles and templates but no longer sees its activity or usage (before, viewing the project did).
WORKERS = {
    "org_admin",
    "workspace_admin",
    "collaborator_rw",
    "collaborator_ro",
    "operator_read",
    "operator_admin",
}


def _org_view(api, w):
    return api.get(f"/api/v1/orgs/{w.a.org.pk}/")


def _org_update(api, w):
    return api.patch(f"/api/v1/orgs/{w.a.org.pk}/", {"display_name": "Renamed"})


def _org_create(api, w):
    return api.post(
        "/api/v1/orgs/",
        {"name": "neworg", "admin_first_name": "N", "admin_last_name": "O", "admin_email": "n@o.example.com"},
    )


def _project_view(api, w):
    return api.get(f"/api/v1/projects/{w.a.project.pk}/")


def _project_create(api, w):
    return api.post("/api/v1/projects/", {"org": w.a.org.pk, "name": "created", "display_name": "Created"})


def _project_update(api, w):
    return api.patch(f"/api/v1/projects/{w.a.project.pk}/", {"description": "changed"})


def _project_delete(api, w):
    return api.delete(f"/api/v1/projects/{w.a.spare_project.pk}/")


def _role_assign(api, w):
    member = w.a.users["collaborator_ro"]
    return api.post(
        "/api/v1/role-assignments/", {"user": member.pk, "role": "collaborator_rw", "project": w.a.project.pk}
    )


def _role_revoke(api, w):
    assignment = w.a.users["collaborator_ro"].role_assignments.get(project=w.a.project)
    return api.delete(f"/api/v1/role-assignments/{assignment.pk}/")


def _invite(api, w):
    return api.post(
        "/api/v1/invitations/",
        {
            "org": w.a.org.pk,
            "email": "newbie@example.com",
            "role": "collaborator_ro",
            "project": w.a.project.pk,
        },
    )


def _quota_view_project(api, w):
    return api.get(f"/api/v1/quotas/{w.a.project.quota.pk}/")


def _quota_update_project(api, w):
    return api.patch(f"/api/v1/quotas/{w.a.project.quota.pk}/", {"gpus": 4})


def _quota_view_org(api, w):
    return api.get(f"/api/v1/quotas/{w.a.org.quota.pk}/")


def _quota_update_org(api, w):
    return api.patch(f"/api/v1/quotas/{w.a.org.quota.pk}/", {"gpus": 32})


def _project_activity(api, w):
    return api.get(f"/api/v1/projects/{w.a.project.pk}/activity/")


def _project_summary(api, w):
    return api.get(f"/api/v1/projects/{w.a.project.pk}/summary/")


def _audit_view(api, w):
    event = AuditEvent.objects.filter(org=w.a.org).first()
    return api.get(f"/api/v1/audit-events/{event.pk}/")


CATALOG_MANAGERS = {"org_admin", "paas_admin_org", "paas_admin_project", "operator_admin"}
CONFIGMAP_FILES = {"cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\n"}


def _app_catalog_create(api, w, **scope):
    body = {"name": "hello", "package_type": "yaml", "files": CONFIGMAP_FILES, **scope}
    return api.post("/api/v1/application-catalog/", body, format="json")


def _app_catalog_item(w):
    from catalog.models import CatalogApplication

    return CatalogApplication.objects.create(
        org=w.a.org,
        project=w.a.project,
        name="listed",
        display_name="Listed",
        package_type="yaml",
        sync="upload",
        files=CONFIGMAP_FILES,
        published=True,
    )


def _app_catalog_view(api, w):
    return api.get(f"/api/v1/application-catalog/{_app_catalog_item(w).pk}/")


def _app_catalog_update(api, w):
    return api.patch(
        f"/api/v1/application-catalog/{_app_catalog_item(w).pk}/", {"description": "new"}, format="json"
    )


def _registry_create(api, w):
    body = {
        "project": w.a.project.pk,
        "name": "harbor",
        "provider": "generic",
        "endpoint": "127.0.0.1:5000",
        "username": "robot",
        "credential": "pull-only",
    }
    return api.post("/api/v1/registries/", body, format="json")


def _repository_create(api, w):
    body = {"project": w.a.project.pk, "name": "app", "kind": "git", "url": "https://127.0.0.1:9/app.git"}
    return api.post("/api/v1/repositories/", body, format="json")


MATRIX = [
    # The org itself and its quota are the operators' (with or without a support access).
    ("org.view", _org_view, MEMBERS | OPERATORS),
    ("org.update", _org_update, OPERATORS | {"org_admin"}),
    ("org.create", _org_create, OPERATORS),
    ("project.view", _project_view, MEMBERS),
    ("project.create", _project_create, ADMINS),
    ("project.update", _project_update, ADMINS),
    ("project.delete", _project_delete, ADMINS),
    ("role.assign", _role_assign, ADMINS),
    ("role.revoke", _role_revoke, ADMINS),
    ("invitation.create", _invite, ADMINS),
    ("quota.view_project", _quota_view_project, MEMBERS),
    ("quota.update_project", _quota_update_project, ADMINS),
    ("quota.view_org", _quota_view_org, OPERATORS | {"org_admin", "paas_admin_org"}),
    ("quota.update_org", _quota_update_org, OPERATORS),
    ("audit.view", _audit_view, {"org_admin", "operator_read", "operator_admin"}),
    ("project.activity", _project_activity, WORKERS),
    ("project.summary", _project_summary, WORKERS),
    (
        "app_catalog.create_project",
        lambda api, w: _app_catalog_create(api, w, project=w.a.project.pk),
        CATALOG_MANAGERS,
    ),
    (
        "app_catalog.create_org",
        lambda api, w: _app_catalog_create(api, w, org=w.a.org.pk),
        {"org_admin", "paas_admin_org", "operator_admin"},
    ),
    ("app_catalog.create_system", _app_catalog_create, OPERATORS),
    ("app_catalog.view", _app_catalog_view, MEMBERS),
    ("app_catalog.update", _app_catalog_update, CATALOG_MANAGERS),
    # Registries: admins only (what is delivered, tenants can read). Repositories: also the workspace's
    # admins and read-write members.
    ("registry.create", _registry_create, CATALOG_MANAGERS),
    ("repository.create", _repository_create, CATALOG_MANAGERS | {"workspace_admin", "collaborator_rw"}),
]


@pytest.mark.parametrize("who", sorted(ALL))
@pytest.mark.parametrize(("action", "call", "allowed"), MATRIX, ids=[row[0] for row in MATRIX])
def test_role_matrix(world, api, who, action, call, allowed):
    before = AuditEvent.objects.count()
    response = call(api.as_user(user_for(world, who)), world)
    if who in allowed:
        assert response.status_code in (200, 201, 204), (action, who, response.status_code, response.content)
        if action.split(".")[1].startswith(("update", "create", "delete", "assign", "revoke")):
            assert AuditEvent.objects.count() > before, f"{action} by {who} wrote no audit event"
    elif response.status_code == 400:
        # An object referenced in the body that the user may not see is "does not exist", like a missing one.
        fields = response.json()["error"]["fields"]
        assert any("does not exist" in m for messages in fields.values() for m in messages), response.content
        assert AuditEvent.objects.count() == before
    else:
        assert response.status_code in (403, 404), (action, who, response.status_code, response.content)
        assert AuditEvent.objects.count() == before, f"refused {action} by {who} still wrote an audit event"
        assert "error" in response.json()


def test_project_list_shows_exactly_what_each_role_may_see(world, api):
    a_team = world.a.project
    every_project_of_a = set(world.a.org.projects.all())
    expectations = {
        "org_admin": every_project_of_a,
        "paas_admin_org": every_project_of_a,
        "paas_admin_project": {a_team},
        "workspace_admin": {a_team},
        "collaborator_rw": {a_team},
        "collaborator_ro": {a_team},
    }
    for who, expected in expectations.items():
        user = world.a.users[who]
        names = {
            (p["org"], p["name"])
            for p in api.as_user(user).get("/api/v1/projects/?page_size=500").json()["results"]
        }
        expected_names = {(p.org_id, p.name) for p in expected}
        personal = {(world.a.org.pk, p.name) for p in user.personal_projects.all()}
        assert names == expected_names | personal, who


def _audit_orgs(api, user) -> set:
    return {e["org"] for e in api.as_user(user).get("/api/v1/audit-events/?page_size=500").json()["results"]}


def test_audit_list_is_org_scoped(world, api):
    admin_a = world.a.users["org_admin"]
    events = api.as_user(admin_a).get("/api/v1/audit-events/?page_size=500").json()["results"]
    assert events and {e["org"] for e in events} == {world.a.org.pk}
    assert api.as_user(world.a.users["workspace_admin"]).get("/api/v1/audit-events/").json()["count"] == 0
    # The operator: the platform's events (in no org: the orgs' creation, the operator appointed), not
    # a tenant's trail; with a support access, that org's too, and no other's.
    assert _audit_orgs(api, world.operator) == {None}
    grant_support(operator=world.operator, org=world.a.org, level="read")
    assert _audit_orgs(api, world.operator) == {None, world.a.org.pk}


def test_lists_show_the_operator_nothing_inside_an_org_without_support(world, api):
    """Not only one object by id: the lists of org A's insides are empty for the operator until a
    support access opens them, and then show A's rows and none of B's."""
    lists = {
        "/api/v1/projects/": "org",
        "/api/v1/role-assignments/": "org",
        "/api/v1/invitations/": "org",
    }
    operator = world.operator
    for url, org_field in lists.items():
        rows = api.as_user(operator).get(url + "?page_size=500").json()["results"]
        assert not [r for r in rows if r.get(org_field) is not None and r.get("role") != "org_admin"], url
    grant_support(operator=operator, org=world.a.org, level="read")
    for url, org_field in lists.items():
        rows = api.as_user(operator).get(url + "?page_size=500").json()["results"]
        orgs = {r.get(org_field) for r in rows if r.get("role") != "org_admin"} - {None}
        assert orgs <= {world.a.org.pk}, url
    projects = api.as_user(operator).get("/api/v1/projects/?page_size=500").json()["results"]
    assert {p["org"] for p in projects} == {world.a.org.pk}
