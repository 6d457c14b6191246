"""Support access (issue 18 part 3): an operator asks for access to one org, its admins approve or deny
it (or the org pre-approves it), the support person uses the ordinary API and pages with what the level
gives, every action lands in the tenant's audit trail under their name, and it ends by the clock.

Operators no longer see inside orgs: here the operator acts in org A only through a grant, and org A's
admin is the one who decides.
"""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django_q.models import Schedule

from paas import authz
from paas.models import AuditEvent
from tenancy import support
from tenancy.models import RoleAssignment, SupportAccess
from tenancy.roles import Role
from tests.factories import UserFactory, add_member, make_operator
from tests.support.support import grant_support

URL = "/api/v1/support-access/"


def _ask(api, world, **data):
    body = {"org": world.a.org.pk, "reason": "Ticket 4711: notebook will not start", "level": "read"}
    body.setdefault("duration_minutes", 60)
    body.update(data)
    return api.as_user(world.operator).post(URL, body, format="json")


def _events(org, action):
    return AuditEvent.objects.filter(org=org, action=action).order_by("pk")


def _sees_project(api, user, project) -> bool:
    response = api.as_user(user).get(f"/api/v1/projects/{project.pk}/")
    assert response.status_code in (200, 404), response.content
    return response.status_code == 200


def test_requested_approved_used_and_in_the_tenants_audit(
    world, api, mailoutbox, django_capture_on_commit_callbacks
):
    a, operator, admin = world.a, world.operator, world.a.users["org_admin"]
    assert not _sees_project(api, operator, a.project)  # an operator without support access: nothing

    with django_capture_on_commit_callbacks(execute=True):
        response = _ask(api, world, level="admin")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["state"] == "pending" and body["user"] == operator.pk and body["expires_at"] is None
    access = SupportAccess.objects.get(pk=body["id"])
    # The org's admins are emailed, and the request is in the tenant's chain, not the platform's.
    assert [m.to for m in mailoutbox] == [[admin.email]]
    assert "approval is needed" in mailoutbox[0].subject and "Ticket 4711" in mailoutbox[0].body
    request_event = _events(a.org, "support.request").get()
    assert request_event.chain == a.org.pk and request_event.actor_id == operator.pk
    assert not _sees_project(api, operator, a.project)  # pending gives nothing

    # Org B's admin does not even see it; org A's admin approves it.
    other = api.as_user(world.b.users["org_admin"]).post(f"{URL}{access.pk}/approve/", {}, format="json")
    assert other.status_code == 404
    assert access.pk not in [row["id"] for row in api.get(URL).json()["results"]]
    approved = api.as_user(admin).post(f"{URL}{access.pk}/approve/", {"note": "go ahead"}, format="json")
    assert approved.status_code == 200, approved.content
    assert approved.json()["status"] == "active" and approved.json()["decided_by"] == admin.pk
    assert _events(a.org, "support.approve").get().actor_id == admin.pk

    # Used: the operator now reads org A (not org B) and manages its members through the ordinary API.
    assert _sees_project(api, operator, a.project)
    assert not _sees_project(api, operator, world.b.project)
    newcomer = UserFactory(username="newcomer")
    invited = api.as_user(operator).post(
        "/api/v1/invitations/",
        {"org": a.org.pk, "email": newcomer.email, "role": "collaborator_ro", "project": a.project.pk},
        format="json",
    )
    assert invited.status_code == 201, invited.content
    # The tenant's trail shows it under the support person's name, tagged with the access.
    event = _events(a.org, "invitation.create").last()
    assert event.actor_id == operator.pk and event.actor_repr == operator.email
    assert event.details["support_access"] == access.pk
    seen = api.as_user(admin).get("/api/v1/audit-events/", {"org": a.org.pk, "action": "invitation.create"})
    assert seen.status_code == 200
    assert any(row["details"].get("support_access") == access.pk for row in seen.json()["results"])
    # The org's own people's events carry no tag.
    api.as_user(admin).post(
        "/api/v1/invitations/",
        {"org": a.org.pk, "email": "x@a.example.com", "role": "org_admin"},
        format="json",
    )
    assert "support_access" not in _events(a.org, "invitation.create").last().details


def test_read_support_reads_but_cannot_write(world, api):
    a, operator = world.a, world.operator
    grant_support(operator=operator, org=a.org, level="read")
    assert _sees_project(api, operator, a.project)
    names = {row["name"] for row in api.as_user(operator).get("/api/v1/projects/").json()["results"]}
    assert {"team", "spare"} <= names
    assert api.as_user(operator).delete(f"/api/v1/projects/{a.spare_project.pk}/").status_code == 403
    assert (
        api.as_user(operator)
        .patch(f"/api/v1/projects/{a.project.pk}/", {"description": "x"}, format="json")
        .status_code
        == 403
    )
    invited = api.as_user(operator).post(
        "/api/v1/invitations/",
        {
            "org": a.org.pk,
            "email": "someone@x.example.com",
            "role": "collaborator_ro",
            "project": a.project.pk,
        },
        format="json",
    )
    assert invited.status_code == 403
    assert a.spare_project.__class__.objects.filter(pk=a.spare_project.pk).exists()
    # The portal's workspace pages open read-only for them; org B's stay closed.
    assert api.as_user(operator).get(f"/w/{a.project.pk}/instances/").status_code in (200, 302)


def test_expires_by_the_clock_and_the_schedule_records_it(world, api):
    a, operator, admin = world.a, world.operator, world.a.users["org_admin"]
    start = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    with time_machine.travel(start, tick=False) as clock:
        access = support.support_request(
            actor=operator, org=a.org, reason="ticket", level="read", duration_minutes=15
        )
        support.support_approve(actor=admin, access=access)
        access.refresh_from_db()
        assert access.starts_at == start and access.expires_at == start + timedelta(minutes=15)
        assert _sees_project(api, operator, a.project)
        assert support.support_expire_due() == 0

        clock.shift(timedelta(minutes=14, seconds=59))
        assert _sees_project(api, operator, a.project)
        clock.shift(timedelta(seconds=1))  # exactly at expires_at: over
        assert not _sees_project(api, operator, a.project)
        assert api.as_user(operator).get("/api/v1/projects/").json()["results"] == []
        assert authz.support_orgs(operator) == {}
        assert api.as_user(operator).get(f"{URL}{access.pk}/").json()["status"] == "expired"

        # The worker runs it every minute (tenancy/migrations/0006_support_settings.py).
        assert Schedule.objects.filter(func="tenancy.support.support_expire_due", minutes=1).exists()
        assert support.support_expire_due() == 1
        assert support.support_expire_due() == 0  # recorded once
        event = _events(a.org, "support.expire").get()
        assert event.actor_id is None and event.target_id == str(access.pk)
        # Ending an expired access is a conflict, not a new event.
        assert api.as_user(admin).post(f"{URL}{access.pk}/end/").status_code == 409


def test_denied_gives_nothing_and_cannot_be_approved_after(world, api):
    a, operator, admin = world.a, world.operator, world.a.users["org_admin"]
    access_id = _ask(api, world).json()["id"]
    denied = api.as_user(admin).post(f"{URL}{access_id}/deny/", {"note": "not now"}, format="json")
    assert denied.status_code == 200 and denied.json()["state"] == "denied"
    assert not _sees_project(api, operator, a.project)
    assert api.as_user(admin).post(f"{URL}{access_id}/approve/", {}, format="json").status_code == 409
    assert _events(a.org, "support.deny").get().details["note"] == "not now"


def test_ended_early_by_either_side_and_withdrawn(world, api):
    a, operator, admin = world.a, world.operator, world.a.users["org_admin"]
    access = grant_support(operator=operator, org=a.org, level="admin")
    assert _sees_project(api, operator, a.project)
    assert api.as_user(admin).post(f"{URL}{access.pk}/end/").status_code == 200
    assert not _sees_project(api, operator, a.project)
    assert _events(a.org, "support.end").get().actor_id == admin.pk

    access = grant_support(operator=operator, org=a.org, level="read")
    assert api.as_user(operator).post(f"{URL}{access.pk}/end/").status_code == 200
    assert not _sees_project(api, operator, a.project)

    pending = _ask(api, world).json()["id"]
    assert api.as_user(admin).post(f"{URL}{pending}/withdraw/").status_code == 403  # the operator's own
    assert api.as_user(operator).post(f"{URL}{pending}/withdraw/").status_code == 200
    assert api.as_user(admin).post(f"{URL}{pending}/approve/", {}, format="json").status_code == 409
    assert not _sees_project(api, operator, a.project)
    assert _events(a.org, "support.withdraw").count() == 1


def test_pre_approved_by_the_orgs_settings(world, api, mailoutbox, django_capture_on_commit_callbacks):
    a, operator, admin = world.a, world.operator, world.a.users["org_admin"]
    settings_url = f"{URL}settings/{a.org.pk}/"
    # Only the org's admins set it: not the operator, not another org's admin, not a member.
    assert (
        api.as_user(operator).patch(settings_url, {"support_preapproval": "admin"}, format="json").status_code
        == 404
    )
    assert api.as_user(world.b.users["org_admin"]).get(settings_url).status_code == 404
    assert api.as_user(a.users["workspace_admin"]).get(settings_url).status_code == 404
    bad = api.as_user(admin).patch(settings_url, {"support_max_minutes": 5}, format="json")
    assert bad.status_code == 400 and "support_max_minutes" in bad.json()["error"]["fields"]
    response = api.as_user(admin).patch(
        settings_url, {"support_preapproval": "read", "support_max_minutes": 60}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["support_preapproval"] == "read"
    assert _events(a.org, "support.settings").get().details["changes"]["support_preapproval"] == [
        "none",
        "read",
    ]

    with django_capture_on_commit_callbacks(execute=True):
        granted = _ask(api, world, duration_minutes=30)
    assert granted.json()["status"] == "active" and granted.json()["decided_by"] is None
    assert "pre-approval" in mailoutbox[-1].subject
    assert _sees_project(api, operator, a.project)
    assert _events(a.org, "support.approve").get().details["preapproved"] is True
    # One open access at a time; beyond the level or the duration pre-approved: waits for an admin.
    assert _ask(api, world).status_code == 409
    api.as_user(operator).post(f"{URL}{granted.json()['id']}/end/")
    assert _ask(api, world, level="admin").json()["state"] == "pending"
    other = make_operator(username="op2")
    assert (
        api.as_user(other)
        .post(URL, {"org": a.org.pk, "reason": "r", "level": "read", "duration_minutes": 120}, format="json")
        .json()["state"]
        == "pending"
    )


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"reason": "  "}, "reason"),
        ({"level": "root"}, "level"),
        ({"duration_minutes": 14}, "duration_minutes"),
        ({"duration_minutes": 7 * 24 * 60 + 1}, "duration_minutes"),
        ({"duration_minutes": "soon"}, "duration_minutes"),
        ({"org": 999999}, "org"),
    ],
)
def test_bad_requests_are_field_errors(world, api, data, field):
    response = _ask(api, world, **data)
    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["fields"]
    assert not SupportAccess.objects.exists()


def test_only_operators_request_and_only_the_orgs_admins_decide(world, api):
    a, admin = world.a, world.a.users["org_admin"]
    body = {"org": a.org.pk, "reason": "r", "level": "read", "duration_minutes": 60}
    for user in (admin, a.users["workspace_admin"], world.outsider):
        assert api.as_user(user).post(URL, body, format="json").status_code in (400, 403)
    assert not SupportAccess.objects.exists()

    # An operator who is also an org admin of A cannot approve their own request.
    both = make_operator(username="op-admin")
    add_member(admin=admin, user=both, role=Role.ORG_ADMIN, org=a.org)
    assert RoleAssignment.objects.filter(user=both, org=a.org, role=Role.ORG_ADMIN).exists()
    own = api.as_user(both).post(URL, body, format="json").json()["id"]
    assert api.as_user(both).post(f"{URL}{own}/approve/", {}, format="json").status_code == 403
    # Nor can another operator holding administrative support access to A approve anyone's.
    helper = make_operator(username="op-helper")
    grant_support(operator=helper, org=a.org, level="admin")
    assert api.as_user(helper).post(f"{URL}{own}/approve/", {}, format="json").status_code == 404
    # Members who are not org admins cannot see it.
    assert api.as_user(a.users["workspace_admin"]).get(f"{URL}{own}/").status_code == 404
    # The org's admin may lower the level, never raise it.
    raised = api.as_user(admin).post(f"{URL}{own}/approve/", {"level": "admin"}, format="json")
    assert raised.status_code == 400 and "level" in raised.json()["error"]["fields"]
    assert api.as_user(admin).post(f"{URL}{own}/approve/", {}, format="json").status_code == 200


def test_approval_may_lower_the_level(world, api):
    a, operator, admin = world.a, world.operator, world.a.users["org_admin"]
    access_id = _ask(api, world, level="admin").json()["id"]
    approved = api.as_user(admin).post(f"{URL}{access_id}/approve/", {"level": "read"}, format="json")
    assert approved.status_code == 200 and approved.json()["level"] == "read"
    assert _events(a.org, "support.approve").get().details["requested_level"] == "admin"
    assert _sees_project(api, operator, a.project)
    assert api.as_user(operator).delete(f"/api/v1/projects/{a.spare_project.pk}/").status_code == 403


def test_read_support_lists_the_orgs_instances_and_audit_but_cannot_delete(world, api):
    from tests.factories import ONE_A100, make_profile, make_synced_cluster

    a, operator = world.a, world.operator
    profile = make_profile(
        actor=a.users["org_admin"],
        project=a.project,
        name="one-gpu",
        template="ns",
        manifests="apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  a: b\n",
        resource_groups=ONE_A100,
    )
    make_synced_cluster(name="support-c")
    made = api.as_user(a.users["workspace_admin"]).post(
        "/api/v1/instances/", {"project": a.project.pk, "name": "dev", "profile": profile.pk}
    )
    assert made.status_code == 201, made.content
    instance = made.json()["id"]
    # Without support access the operator sees no instance of the org.
    assert api.as_user(operator).get("/api/v1/instances/").json()["count"] == 0
    assert api.as_user(operator).get(f"/api/v1/instances/{instance}/").status_code == 404
    assert api.as_user(operator).get("/api/v1/audit-events/", {"org": a.org.pk}).json()["count"] == 0

    access = grant_support(operator=operator, org=a.org, level="read")
    reader = api.as_user(operator)
    assert [row["id"] for row in reader.get("/api/v1/instances/").json()["results"]] == [instance]
    assert reader.get(f"/api/v1/instances/{instance}/").status_code == 200
    assert reader.delete(f"/api/v1/instances/{instance}/").status_code == 403
    assert reader.post(f"/api/v1/instances/{instance}/kubeconfig/").status_code == 403
    events = reader.get("/api/v1/audit-events/", {"org": a.org.pk, "action": "instance.launch"}).json()
    assert [row["target_id"] for row in events["results"]] == [str(instance)]
    # Reads write nothing to the trail; the instance is still there.
    assert not AuditEvent.objects.filter(org=a.org, details__support_access=access.pk).exists()
    assert api.as_user(a.users["workspace_admin"]).get(f"/api/v1/instances/{instance}/").status_code == 200


def test_admin_support_cannot_outlast_itself_or_pull_in_strangers(world, api):
    """Administrative support access manages members as an org admin does, but cannot turn itself into
    a lasting role (by assigning or inviting themselves) nor pull another org's people in."""
    a, operator = world.a, world.operator
    grant_support(operator=operator, org=a.org, level="admin")
    client = api.as_user(operator)
    member = a.users["collaborator_ro"]
    moved = client.post(
        "/api/v1/role-assignments/", {"user": member.pk, "role": "collaborator_rw", "project": a.project.pk}
    )
    assert moved.status_code == 201, moved.content
    assert AuditEvent.objects.get(org=a.org, action="role.assign", actor_id=operator.pk).details.get(
        "support_access"
    )
    for body in (
        {"user": operator.pk, "role": "org_admin", "org": a.org.pk},
        {"user": world.b.users["collaborator_ro"].pk, "role": "collaborator_ro", "project": a.project.pk},
    ):
        assert client.post("/api/v1/role-assignments/", body, format="json").status_code in (400, 403)
    for role in ("org_admin", "collaborator_ro"):
        invited = client.post(
            "/api/v1/invitations/",
            {"org": a.org.pk, "email": operator.email.upper(), "role": role}
            | ({"project": a.project.pk} if role != "org_admin" else {}),
            format="json",
        )
        assert invited.status_code == 403, invited.content
    assert not RoleAssignment.objects.filter(user=operator, org=a.org).exists()


def test_without_support_an_operator_invites_only_an_orgs_first_admin(world, api):
    """Operators onboard: they invite the admin of an org that has none. Into an org with an admin they
    invite no one, not even "another admin" (an account of their own would be inside with no support
    access): the org's admins do that."""
    operator, a = world.operator, world.a
    client = api.as_user(operator)
    body = {"org": a.org.pk, "email": "second-admin@example.com", "role": "org_admin"}
    refused = client.post("/api/v1/invitations/", body, format="json")
    assert refused.status_code in (403, 404), refused.content
    assert not a.org.invitations.filter(email="second-admin@example.com").exists()

    RoleAssignment.objects.filter(org=a.org, role=Role.ORG_ADMIN).delete()  # its admins all left
    invited = client.post("/api/v1/invitations/", body, format="json")
    assert invited.status_code == 201, invited.content
    member = client.post(
        "/api/v1/invitations/",
        {"org": a.org.pk, "email": "member@example.com", "role": "collaborator_ro", "project": a.project.pk},
        format="json",
    )
    assert member.status_code in (400, 403, 404), member.content  # (its workspace: "no such object")
    assert not a.org.invitations.filter(email="member@example.com").exists()
