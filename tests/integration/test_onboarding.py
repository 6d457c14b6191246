"""Onboarding as the reference describes it, and invitations by email with an expiring token."""

import re
from datetime import timedelta

from django.core import mail
from django.utils import timezone
from rest_framework.test import APIClient

from paas.models import AuditEvent
from tenancy.models import Invitation, Organization, Project, RoleAssignment, User


def _token_from_mail() -> str:
    body = mail.outbox[-1].body
    return re.search(r"/invitations/([A-Za-z0-9_-]+)/", body).group(1)


def test_operator_onboards_org_and_admin_signs_up_from_the_email(
    world, api, client, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = api.as_user(world.operator).post(
            "/api/v1/orgs/",
            {
                "name": "globex",
                "display_name": "Globex",
                "admin_first_name": "Hank",
                "admin_last_name": "Scorpio",
                "admin_email": "Hank@Globex.example.com",
            },
        )
    assert response.status_code == 201, response.content
    org = Organization.objects.get(name="globex")
    assert org.quota is not None
    assert mail.outbox[-1].to == ["Hank@globex.example.com"]
    assert "Globex" in mail.outbox[-1].subject and "Org admin" in mail.outbox[-1].body
    token = _token_from_mail()
    assert token not in str(list(Invitation.objects.values()))

    page = client.get(f"/invitations/{token}/")
    assert page.status_code == 200 and "Join Globex" in page.content.decode()
    # Bad input keeps what was typed and explains itself.
    bad = client.post(
        f"/invitations/{token}/",
        {
            "username": "hank",
            "first_name": "Hank",
            "last_name": "S",
            "password": "short",
            "password_again": "short",
        },
    )
    assert (
        bad.status_code == 200
        and "too short" in bad.content.decode()
        and 'value="hank"' in bad.content.decode()
    )
    good = client.post(
        f"/invitations/{token}/",
        {
            "username": "hank",
            "first_name": "Hank",
            "last_name": "S",
            "password": "a-Long-passw0rd!",
            "password_again": "a-Long-passw0rd!",
        },
    )
    assert good.status_code == 302
    hank = User.objects.get(username="hank")
    assert hank.is_staff and not hank.is_superuser and hank.email == "Hank@globex.example.com"
    assert RoleAssignment.objects.filter(user=hank, org=org, role="org_admin").exists()
    assert Project.objects.filter(org=org, owner=hank, kind="personal").exists()
    assert Invitation.objects.get(org=org).status == "accepted"
    # The link cannot be used twice.
    again = client.post(
        f"/invitations/{token}/",
        {
            "username": "hank2",
            "first_name": "H",
            "last_name": "S",
            "password": "a-Long-passw0rd!",
            "password_again": "a-Long-passw0rd!",
        },
    )
    assert again.status_code == 200 and "accepted" in again.content.decode()
    actions = set(AuditEvent.objects.filter(org=org).values_list("action", flat=True))
    assert {
        "org.create",
        "invitation.create",
        "user.create",
        "role.assign",
        "invitation.accept",
        "project.create",
    } <= actions
    # The new admin can now administer their org through the API.
    made = api.as_user(hank).post("/api/v1/projects/", {"org": org.pk, "name": "ml"})
    assert made.status_code == 201, made.content


def test_onboarding_validation(world, api):
    response = api.as_user(world.operator).post(
        "/api/v1/orgs/",
        {"name": "Bad Name!", "admin_first_name": "", "admin_last_name": "x", "admin_email": "nope"},
    )
    assert response.status_code == 400
    assert {"name", "admin_first_name", "admin_email"} <= set(response.json()["error"]["fields"])
    dup = api.as_user(world.operator).post(
        "/api/v1/orgs/",
        {"name": "orga", "admin_first_name": "a", "admin_last_name": "b", "admin_email": "a@b.co"},
    )
    assert dup.status_code == 400 and "already exists" in dup.json()["error"]["fields"]["name"][0]


def test_expired_and_revoked_invitations_cannot_be_accepted(world, api, django_capture_on_commit_callbacks):
    admin = world.a.users["org_admin"]
    for email, spoil in (("late@example.com", "expire"), ("gone@example.com", "revoke")):
        with django_capture_on_commit_callbacks(execute=True):
            created = api.as_user(admin).post(
                "/api/v1/invitations/",
                {
                    "org": world.a.org.pk,
                    "email": email,
                    "role": "collaborator_ro",
                    "project": world.a.project.pk,
                },
            )
        assert created.status_code == 201
        token = _token_from_mail()
        if spoil == "expire":
            Invitation.objects.filter(pk=created.json()["id"]).update(
                expires_at=timezone.now() - timedelta(minutes=1)
            )
        else:
            assert (
                api.as_user(admin).delete(f"/api/v1/invitations/{created.json()['id']}/").status_code == 204
            )
        response = APIClient().post(
            "/api/v1/invitations/accept/",
            {"token": token, "username": "x" + spoil, "password": "a-Long-passw0rd!"},
            format="json",
        )
        assert response.status_code == 400, response.content
        assert response.json()["error"]["message"] == f"This invitation is {spoil}d."
        assert not User.objects.filter(username="x" + spoil).exists()
    unknown = APIClient().post("/api/v1/invitations/accept/", {"token": "nope"}, format="json")
    assert unknown.status_code == 404


def test_existing_user_accepts_when_signed_in_as_that_user(world, api, django_capture_on_commit_callbacks):
    bob = world.b.users["workspace_admin"]  # a member of B, invited into A
    with django_capture_on_commit_callbacks(execute=True):
        api.as_user(world.a.users["org_admin"]).post(
            "/api/v1/invitations/",
            {
                "org": world.a.org.pk,
                "email": bob.email.upper(),
                "role": "collaborator_ro",
                "project": world.a.project.pk,
            },
        )
    token = _token_from_mail()
    anonymous = APIClient().post(
        "/api/v1/invitations/accept/",
        {"token": token, "username": "bob2", "password": "a-Long-passw0rd!"},
        format="json",
    )
    assert anonymous.status_code == 400 and anonymous.json()["error"]["code"] == "sign_in_required"
    wrong = api.as_user(world.a.users["collaborator_rw"]).post(
        "/api/v1/invitations/accept/", {"token": token}
    )
    assert wrong.status_code == 403
    ok = api.as_user(bob).post("/api/v1/invitations/accept/", {"token": token})
    assert ok.status_code == 200
    assert {"org": world.a.org.pk, "project": world.a.project.pk, "role": "collaborator_ro"} in ok.json()[
        "roles"
    ]
    assert api.as_user(bob).get(f"/api/v1/projects/{world.a.project.pk}/").status_code == 200


def test_org_admin_assigns_roles_only_to_members(world, api):
    admin = world.a.users["org_admin"]
    stranger = world.b.users["collaborator_rw"]
    response = api.as_user(world.operator).get(f"/api/v1/users/{stranger.pk}/")
    assert response.status_code == 200
    refused = api.as_user(admin).post(
        "/api/v1/role-assignments/",
        {"user": stranger.pk, "role": "collaborator_ro", "project": world.a.project.pk},
    )
    assert refused.status_code == 400
    last_admin = RoleAssignment.objects.get(org=world.a.org, role="org_admin")
    conflict = api.as_user(admin).delete(f"/api/v1/role-assignments/{last_admin.pk}/")
    assert conflict.status_code == 409 and "last org admin" in conflict.json()["error"]["message"]
