"""Losing a role loses the access, the edges (issue 11, part 3 follow-ups), without a cluster:

- "remove from the organization" in the studio: a confirm page, then ``member_remove`` (audited); the
  last org admin is refused with a message; who cannot administer the org cannot do it;
- the pending invitations addressed to someone removed from an org (or deactivated) are revoked, with
  the instance-collaborator invitations riding on them, so an old link brings no one back;
- a deactivated org: its members are told so (portal landing page, a 403 ``org_deactivated`` from the
  API naming their org), while anyone else still gets the 404 that reveals nothing.

The cluster side (the drift repair deleting the ServiceAccounts a lost access task left) is in
test_revocation.py, with the other kube tests.
"""

import pytest

from instances import services as instance_services
from instances.models import CollaboratorInvitation, ComputeInstance
from paas.errors import ValidationFailed
from paas.models import AuditEvent
from tenancy import services
from tenancy.models import Invitation, RoleAssignment
from tenancy.roles import Role
from tests.factories import UserFactory, add_member

pytestmark = pytest.mark.django_db

CHANGELIST = "/studio/tenancy/roleassignment/"


def _member(world, username: str, role=Role.COLLABORATOR_RW, project=None):
    user = UserFactory(username=username)
    add_member(admin=world.a.users["org_admin"], user=user, role=role, project=project or world.a.project)
    return user


def _remove_action(client, assignments, **extra):
    return client.post(
        CHANGELIST,
        {"action": "remove_from_org", "_selected_action": [a.pk for a in assignments], "index": 0, **extra},
    )


# --- the studio action ---------------------------------------------------------------------------------


def test_studio_remove_from_org_asks_first_then_removes_every_role(world, client):
    leaver = _member(world, "edge-leaver")
    services.role_assign(
        actor=world.a.users["org_admin"],
        user=leaver,
        role=Role.WORKSPACE_ADMIN,
        project=world.a.spare_project,
    )
    selected = RoleAssignment.objects.filter(user=leaver, project=world.a.project)
    before = RoleAssignment.objects.filter(user=leaver, org=world.a.org).count()
    assert before >= 3  # two workspace roles and the personal workspace's
    client.force_login(world.a.users["org_admin"])

    page = _remove_action(client, selected)  # no confirmation yet: the page says what will go
    assert page.status_code == 200
    text = page.content.decode()
    assert "Remove from the organization?" in text and leaver.email in text
    assert "Workspace admin in Spare" in text  # every role there, not only the selected one
    assert 'name="confirm" value="yes"' in text
    assert RoleAssignment.objects.filter(user=leaver, org=world.a.org).count() == before

    done = _remove_action(client, selected, confirm="yes")
    assert done.status_code == 302
    assert not RoleAssignment.objects.filter(user=leaver, org=world.a.org).exists()
    event = AuditEvent.objects.get(action="org.member_remove", details__user=leaver.email)
    assert event.actor_id == world.a.users["org_admin"].pk and event.client == "studio"


def test_studio_remove_from_org_refuses_the_last_org_admin_and_non_admins(world, client):
    admin = world.a.users["org_admin"]
    client.force_login(admin)
    own = RoleAssignment.objects.filter(user=admin, org=world.a.org, role=Role.ORG_ADMIN)
    response = _remove_action(client, own, confirm="yes")
    assert response.status_code == 302
    messages = [m.message for m in response.wsgi_request._messages]
    assert any("last org admin" in m for m in messages), messages
    assert own.exists()

    # A workspace admin does not administer the org: the studio's role pages are not theirs.
    victim = RoleAssignment.objects.filter(user=world.a.users["collaborator_ro"], org=world.a.org)
    client.force_login(world.a.users["workspace_admin"])
    response = _remove_action(client, victim, confirm="yes")
    assert response.status_code in (302, 403)
    assert victim.exists()
    # Org B's admin cannot reach org A's assignments at all.
    client.force_login(world.b.users["org_admin"])
    _remove_action(client, victim, confirm="yes")
    assert victim.exists()


# --- pending invitations ---------------------------------------------------------------------------------


def test_removal_revokes_the_invitations_addressed_to_them_in_that_org(world):
    org_admin = world.a.users["org_admin"]
    person = UserFactory(username="edge-invitee")
    # While an outsider, they were invited to an instance (a pending collaborator invitation) by an org
    # admin who also works in the workspace...
    services.role_assign(
        actor=world.a.users["org_admin"], user=org_admin, role=Role.WORKSPACE_ADMIN, project=world.a.project
    )
    instance = ComputeInstance.objects.create(
        org=world.a.org, project=world.a.project, name="edge-inst", owner=world.a.users["workspace_admin"]
    )
    assert instance_services.collaborator_add(actor=org_admin, instance=instance, email=person.email) is None
    riding = Invitation.objects.get(email=person.email, org=world.a.org)
    assert CollaboratorInvitation.objects.filter(invitation=riding, instance=instance).exists()
    # ...and then joined by another way (an invitation to the workspace, accepted); another workspace
    # invitation is still pending, and so is one from org B (which their removal from org A must not
    # touch).
    joined = add_member(admin=org_admin, user=person, role=Role.COLLABORATOR_RW, project=world.a.project)
    _other, token = services.invitation_create(
        actor=org_admin,
        org=world.a.org,
        email=person.email,
        role=Role.WORKSPACE_ADMIN,
        project=world.a.spare_project,
    )
    elsewhere, b_token = services.invitation_create(
        actor=world.b.users["org_admin"],
        org=world.b.org,
        email=person.email,
        role=Role.COLLABORATOR_RO,
        project=world.b.project,
    )

    services.member_remove(actor=org_admin, org=world.a.org, user=person)

    for invitation in Invitation.objects.filter(email=person.email, org=world.a.org).exclude(pk=joined.pk):
        assert invitation.status == "revoked", invitation
    assert not CollaboratorInvitation.objects.filter(invitation=riding).exists()
    elsewhere.refresh_from_db()
    assert elsewhere.status == "pending"
    # The old link brings no one back.
    with pytest.raises(ValidationFailed) as refused:
        services.invitation_accept(token=token, user=person)
    assert refused.value.code == "invitation_revoked"
    assert not RoleAssignment.objects.filter(user=person, org=world.a.org).exists()
    # Audited: each invitation, and the instance's.
    revoked = AuditEvent.objects.filter(action="invitation.revoke", details__email=person.email)
    assert revoked.count() == 2
    assert {e.details["via"] for e in revoked} == {"removed from organization"}
    assert all(e.actor_id == org_admin.pk for e in revoked)
    assert AuditEvent.objects.filter(
        action="instance.collaborator_invite_revoke", target_id=str(instance.pk), details__email=person.email
    ).exists()
    services.invitation_accept(token=b_token, user=person)  # org B's invitation still works


def test_deactivation_revokes_every_invitation_addressed_to_them(world):
    person = _member(world, "edge-deact")
    pending = [
        services.invitation_create(
            actor=tenant.users["org_admin"], org=tenant.org, email=person.email, role=role
        )[0]
        for tenant, role in ((world.a, Role.PAAS_ADMIN), (world.b, Role.ORG_ADMIN))
    ]
    services.user_update(actor=world.operator, user=person, is_active=False)
    for invitation in pending:
        invitation.refresh_from_db()
        assert invitation.status == "revoked"
    assert set(
        AuditEvent.objects.filter(action="invitation.revoke", details__via="account deactivated").values_list(
            "target_id", flat=True
        )
    ) == {str(i.pk) for i in pending}
    # Reactivating restores the roles (they were dormant), not the revoked invitations.
    services.user_update(actor=world.operator, user=person, is_active=True)
    assert all(Invitation.objects.get(pk=i.pk).status == "revoked" for i in pending)


# --- a deactivated org ---------------------------------------------------------------------------------


def test_a_deactivated_orgs_members_are_told_and_no_one_else_learns_anything(world, api, client):
    services.org_update(actor=world.operator, org=world.a.org, is_active=False)
    name = str(world.a.org)
    member, outsider = world.a.users["workspace_admin"], world.b.users["org_admin"]
    instance = ComputeInstance.objects.create(
        org=world.a.org, project=world.a.project, name="edge-off", owner=member, state="ready"
    )

    # The portal's landing page says why, for someone whose only org it is.
    client.force_login(member)
    page = client.get("/")
    assert page.status_code == 200
    assert f"Your organization <strong>{name}</strong> is deactivated; contact your provider." in (
        page.content.decode()
    )
    page = client.get(f"/w/{world.a.project.pk}/")
    assert page.status_code == 403 and f"{name} is deactivated" in page.content.decode()

    # The API: 403 org_deactivated, naming the org, for any of its objects reached by id.
    rest = api.as_user(member)
    for response in (
        rest.get(f"/api/v1/orgs/{world.a.org.pk}/"),
        rest.get(f"/api/v1/projects/{world.a.project.pk}/"),
        rest.get(f"/api/v1/instances/{instance.pk}/"),
        rest.post(
            "/api/v1/instances/", {"project": world.a.project.pk, "name": "x", "profile": 1}, format="json"
        ),
    ):
        assert response.status_code == 403, response.content
        error = response.json()["error"]
        assert error["code"] == "org_deactivated" and name in error["message"]
    assert rest.get("/api/v1/projects/").json()["count"] == 0

    # Someone of another org asking for the same ids learns nothing: the same 404 as for a missing id.
    other = api.as_user(outsider)
    for path in (
        f"/api/v1/orgs/{world.a.org.pk}/",
        f"/api/v1/projects/{world.a.project.pk}/",
        f"/api/v1/instances/{instance.pk}/",
        "/api/v1/projects/999999/",
    ):
        response = other.get(path)
        assert response.status_code == 404 and name not in response.content.decode(), path
    client.force_login(outsider)
    assert client.get(f"/w/{world.a.project.pk}/").status_code == 404
    # Someone removed from the org before it was deactivated is no member: 404 too.
    services.org_update(actor=world.operator, org=world.a.org, is_active=True)
    gone = world.a.users["collaborator_rw"]
    services.member_remove(actor=world.a.users["org_admin"], org=world.a.org, user=gone)
    services.org_update(actor=world.operator, org=world.a.org, is_active=False)
    assert api.as_user(gone).get(f"/api/v1/projects/{world.a.project.pk}/").status_code == 404


def test_a_member_of_another_active_org_lands_there(world, client):
    both = world.a.users["collaborator_ro"]
    add_member(
        admin=world.b.users["org_admin"], user=both, role=Role.COLLABORATOR_RO, project=world.b.project
    )
    services.org_update(actor=world.operator, org=world.a.org, is_active=False)
    client.force_login(both)
    response = client.get("/")
    assert response.status_code == 302
    project = response["Location"].rstrip("/").rsplit("/", 1)[-1]
    assert int(project) in set(world.b.org.projects.values_list("pk", flat=True))
