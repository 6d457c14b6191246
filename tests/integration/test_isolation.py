"""Cross-tenant isolation: users of org A reach org B's objects by id through every endpoint.

Nothing may leak: list responses never contain B's objects, and every retrieve, update and delete
by id is a 404, exactly like an id that does not exist. B's rows are unchanged afterwards.
"""

import pytest

from paas.models import AuditEvent
from tenancy.models import Invitation, Organization, Project, Quota, RoleAssignment
from tenancy.roles import Role
from tenancy.services import invitation_create
from tests.support.roles import TENANT_ROLES


def _b_objects(world) -> dict[str, int]:
    b = world.b
    invitation, _ = invitation_create(
        actor=b.users["org_admin"],
        org=b.org,
        email="x@b.example.com",
        role=Role.COLLABORATOR_RO,
        project=b.project,
    )
    return {
        "orgs": b.org.pk,
        "projects": b.project.pk,
        "role-assignments": RoleAssignment.objects.filter(org=b.org).first().pk,
        "invitations": invitation.pk,
        "quotas": b.project.quota.pk,
        "users": b.users["workspace_admin"].pk,
        "audit-events": AuditEvent.objects.filter(org=b.org).first().pk,
    }


WRITES = {
    "orgs": {"display_name": "pwned"},
    "projects": {"display_name": "pwned"},
    "quotas": {"gpus": 999},
    "users": {"first_name": "pwned"},
    "role-assignments": {"role": "org_admin"},
    "invitations": {"email": "pwned@example.com"},
    "audit-events": {"action": "pwned"},
}


def _snapshot(world):
    b = world.b
    return (
        list(Organization.objects.filter(pk=b.org.pk).values()),
        list(Project.objects.filter(org=b.org).values()),
        list(Quota.objects.filter(project__org=b.org).values()),
        list(RoleAssignment.objects.filter(org=b.org).values()),
        list(Invitation.objects.filter(org=b.org).values()),
        list(b.users["workspace_admin"].__class__.objects.filter(pk=b.users["workspace_admin"].pk).values()),
        AuditEvent.objects.filter(org=b.org).count(),
    )


@pytest.mark.parametrize("who", TENANT_ROLES)
def test_org_a_cannot_reach_org_b(world, api, who):
    targets = _b_objects(world)
    before = _snapshot(world)
    client = api.as_user(world.a.users[who])
    for endpoint, pk in targets.items():
        listing = client.get(f"/api/v1/{endpoint}/?page_size=500")
        assert listing.status_code == 200, endpoint
        assert pk not in {row["id"] for row in listing.json()["results"]}, f"{endpoint} list leaks B's object"
        missing = client.get(f"/api/v1/{endpoint}/999999999/")
        for method, kwargs in (
            ("get", {}),
            ("patch", {"data": WRITES[endpoint]}),
            ("put", {"data": WRITES[endpoint]}),
            ("delete", {}),
        ):
            response = getattr(client, method)(f"/api/v1/{endpoint}/{pk}/", **kwargs)
            if response.status_code == 405:
                # The endpoint has no such verb for anyone: it answers the same for a missing id.
                assert getattr(client, method)(f"/api/v1/{endpoint}/999999999/", **kwargs).status_code == 405
                continue
            assert response.status_code == 404, (endpoint, method, response.status_code, response.content)
            assert response.json()["error"]["code"] == "not_found"
            if method == "get":
                assert response.json()["error"]["message"] == missing.json()["error"]["message"]
    # Filters by B's ids return nothing either.
    assert client.get(f"/api/v1/audit-events/?org={world.b.org.pk}").json()["count"] == 0
    assert client.get(f"/api/v1/projects/?org={world.b.org.pk}").json()["count"] == 0
    assert _snapshot(world) == before


def test_org_a_admin_cannot_write_into_org_b_by_reference(world, api):
    """Create calls naming B's org, project or users are refused like unknown ids, and change nothing."""
    client = api.as_user(world.a.users["org_admin"])
    b = world.b
    before = _snapshot(world)
    attempts = [
        ("projects", {"org": b.org.pk, "name": "evil"}),
        ("invitations", {"org": b.org.pk, "email": "e@example.com", "role": "collaborator_ro"}),
        (
            "role-assignments",
            {"user": world.a.users["collaborator_ro"].pk, "role": "collaborator_ro", "project": b.project.pk},
        ),
        (
            "role-assignments",
            {"user": b.users["workspace_admin"].pk, "role": "collaborator_ro", "project": world.a.project.pk},
        ),
    ]
    for endpoint, body in attempts:
        response = client.post(f"/api/v1/{endpoint}/", body)
        assert response.status_code == 400, (endpoint, response.content)
        messages = [m for ms in response.json()["error"]["fields"].values() for m in ms]
        assert any("does not exist" in m for m in messages), response.content
    assert _snapshot(world) == before


def test_studio_isolation(world, client):
    """In the studio an org admin of A sees none of B's rows, and B's change pages act as missing."""
    client.force_login(world.a.users["org_admin"])
    b = world.b
    pages = {
        "organization": b.org.pk,
        "project": b.project.pk,
        "quota": b.project.quota.pk,
        "roleassignment": RoleAssignment.objects.filter(org=b.org).first().pk,
        "user": b.users["workspace_admin"].pk,
    }
    for model, pk in pages.items():
        listing = client.get(f"/studio/{'paas' if model == 'auditevent' else 'tenancy'}/{model}/")
        assert listing.status_code == 200, model
        change = client.get(f"/studio/tenancy/{model}/{pk}/change/")
        missing = client.get(f"/studio/tenancy/{model}/999999999/change/")
        assert change.status_code == missing.status_code == 302, model  # "doesn't exist" redirect, alike
        assert change.url == missing.url
    listing = client.get("/studio/tenancy/organization/").content.decode()
    assert world.a.org.name in listing and b.org.name not in listing
    audit = client.get("/studio/paas/auditevent/").content.decode()
    assert b.org.display_name not in audit
    event = AuditEvent.objects.filter(org=b.org).first()
    assert client.get(f"/studio/paas/auditevent/{event.pk}/change/").status_code == 302
