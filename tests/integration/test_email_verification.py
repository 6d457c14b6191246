"""Issue 18, part 2: every local user verifies their address before access; a change re-verifies."""

import re
from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from paas.models import AuditEvent
from tenancy import email_verification, services
from tenancy.models import User
from tenancy.roles import Role
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db


def link_in(message) -> str:
    return re.search(r"https?://\S+/account/email/verify/(\S+)/", message.body).group(1)


def api_code(response) -> str:
    return response.json()["error"]["code"]


def test_an_unverified_user_is_held_until_the_emailed_link_is_opened(world, client, mailoutbox):
    user = world.a.users["collaborator_rw"]
    email_verification.email_verification_require(actor=world.operator, user=user)
    assert len(mailoutbox) == 1 and mailoutbox[0].to == [user.email]
    assert AuditEvent.objects.filter(action="email.verification_required", actor=world.operator).exists()
    token = link_in(mailoutbox[0])

    client.post("/login/", {"username": user.username, "password": PASSWORD})
    held = client.get("/")
    assert held.status_code == 302 and held["Location"].startswith("/account/email/")
    assert client.get("/studio/").status_code == 302
    answer = client.get("/api/v1/projects/")
    assert answer.status_code == 403 and api_code(answer) == "email_unverified"
    assert client.get("/account/email/").status_code == 200
    assert client.get("/account/security/")["Location"].startswith("/account/email/")

    page = client.get(f"/account/email/verify/{token}/")  # a link scanner's GET changes nothing
    assert page.status_code == 200 and b"Verify my address" in page.content
    assert not User.objects.get(pk=user.pk).email_verified
    done = client.post(f"/account/email/verify/{token}/")
    assert done.status_code == 302
    assert User.objects.get(pk=user.pk).email_verified
    assert AuditEvent.objects.filter(action="email.verify", actor=user).exists()
    assert client.get("/api/v1/projects/").status_code == 200


def test_links_expire_and_a_tampered_link_verifies_nothing(world, client, mailoutbox):
    user = world.a.users["collaborator_ro"]
    email_verification.email_verification_require(actor=world.operator, user=user)
    token = link_in(mailoutbox[-1])
    with time_machine.travel(timezone.now() + timedelta(hours=49)):
        expired = client.post(f"/account/email/verify/{token}/")
    assert expired.status_code == 400 and b"expired" in expired.content
    tampered = client.post(f"/account/email/verify/{token[:-2]}xx/")
    assert tampered.status_code == 400 and b"not valid" in tampered.content
    assert not User.objects.get(pk=user.pk).email_verified
    # A link is for one user and one address: another user's token does not verify this one.
    other = world.a.users["workspace_admin"]
    forged = email_verification.verification_token(other, user.email)
    assert client.post(f"/account/email/verify/{forged}/").status_code == 400
    assert not User.objects.get(pk=user.pk).email_verified


def test_changing_the_address_keeps_the_old_one_until_the_new_one_is_verified(world, client, mailoutbox):
    user = world.a.users["workspace_admin"]
    old = user.email
    client.force_login(user)
    taken = client.post("/account/email/", {"action": "change", "email": world.b.users["org_admin"].email})
    assert taken.status_code == 400 and b"another account" in taken.content
    bad = client.post("/account/email/", {"action": "change", "email": "not-an-address"})
    assert bad.status_code == 400 and b'aria-invalid="true"' in bad.content
    assert (
        client.post("/account/email/", {"action": "change", "email": "new@corp.example"}).status_code == 302
    )
    user.refresh_from_db()
    assert user.email == old and user.email_verified and user.pending_email == "new@corp.example"
    assert mailoutbox[-1].to == ["new@corp.example"]
    first = link_in(mailoutbox[-1])
    assert client.get("/api/v1/projects/").status_code == 200  # the old, verified address still counts

    # A second change makes the first link stale.
    client.post("/account/email/", {"action": "change", "email": "newer@corp.example"})
    second = link_in(mailoutbox[-1])
    stale = client.post(f"/account/email/verify/{first}/")
    assert stale.status_code == 400 and b"no longer waiting" in stale.content
    assert client.post(f"/account/email/verify/{second}/").status_code == 302
    user.refresh_from_db()
    assert (user.email, user.pending_email, user.email_verified) == ("newer@corp.example", "", True)
    event = AuditEvent.objects.filter(action="email.change", actor=user).latest("pk")
    assert event.details == {"old": old, "new": "newer@corp.example"}
    assert AuditEvent.objects.filter(action="email.change_request", actor=user).count() == 2


def test_an_address_taken_meanwhile_is_refused_and_resends_are_limited(world, api, mailoutbox):
    user = world.a.users["collaborator_rw"]
    api.force_login(user)
    answer = api.post("/api/v1/account/email/", {"email": "mine@corp.example"}, format="json")
    assert answer.status_code == 202 and answer.json()["pending_email"] == "mine@corp.example"
    token = link_in(mailoutbox[-1])
    resend = api.post("/api/v1/account/email/resend/")
    assert resend.status_code == 429  # one a minute
    UserFactory(username="squatter", email="mine@corp.example")
    taken = api.post("/api/v1/account/email/verify/", {"token": token}, format="json")
    assert taken.status_code == 400 and api_code(taken) == "email_taken"
    assert User.objects.get(pk=user.pk).email == f"{user.username}@example.com"
    # Cancelling: asking for the current address again.
    answer = api.post("/api/v1/account/email/", {"email": user.email}, format="json")
    assert answer.status_code == 202 and answer.json()["pending_email"] == ""


def test_the_api_verifies_with_the_links_token_and_tokens_cannot_change_the_address(world, api, mailoutbox):
    user = world.a.users["collaborator_ro"]
    email_verification.email_verification_require(actor=world.operator, user=user)
    token = link_in(mailoutbox[-1])
    for body in (rb'"W\ud8f0\uddf5"', b"[]", b'{"token": 1.5e999}'):  # not an object / not a string: a 400
        refused = api.post("/api/v1/account/email/verify/", body, content_type="application/json")
        assert refused.status_code == 400, (body, refused.content)
    answer = api.post("/api/v1/account/email/verify/", {"token": token}, format="json")
    assert answer.status_code == 200 and answer.json()["email_verified"] is True
    from paas.services import api_token_create

    _api_token, secret = api_token_create(actor=User.objects.get(pk=user.pk), name="t")
    changed = api.post(
        "/api/v1/account/email/",
        {"email": "x@corp.example"},
        format="json",
        HTTP_AUTHORIZATION=f"Bearer {secret}",
    )
    assert changed.status_code == 403


def test_the_invitation_link_is_the_proof_and_only_operators_require_verification(world, client):
    a = world.a
    invitation, token = services.invitation_create(
        actor=a.users["org_admin"],
        org=a.org,
        email="fresh@corp.example",
        role=Role.COLLABORATOR_RO,
        project=a.project,
    )
    user = services.invitation_accept(
        token=token, username="fresh", password="a-long-enough-password-1", first_name="F", last_name="R"
    )
    assert user.email_verified and user.pending_email == ""
    client.force_login(user)
    assert client.get("/api/v1/projects/").status_code == 200
    from paas.errors import Forbidden

    with pytest.raises(Forbidden):
        email_verification.email_verification_require(actor=a.users["org_admin"], user=user)
    assert invitation.email == user.email


def test_sso_users_are_verified_by_their_provider_not_held_here(world, client):
    user = world.a.users["collaborator_rw"]
    User.objects.filter(pk=user.pk).update(source="idp", email_verified=False)
    client.force_login(User.objects.get(pk=user.pk))
    assert client.get("/api/v1/me/").status_code == 200


def test_operators_ask_from_the_studio_and_org_admins_set_mfa_there(world, client, mailoutbox):
    user = world.a.users["collaborator_rw"]
    client.force_login(world.operator)
    answer = client.post(
        "/studio/tenancy/user/",
        {"action": "require_email_verification", "_selected_action": [user.pk]},
        follow=True,
    )
    assert answer.status_code == 200 and b"verification link sent" in answer.content
    assert not User.objects.get(pk=user.pk).email_verified and mailoutbox[-1].to == [user.email]

    org = world.a.org
    form = {"display_name": org.display_name, "mfa_required": "on"}
    client.force_login(world.a.users["org_admin"])
    assert client.post(f"/studio/tenancy/organization/{org.pk}/change/", form).status_code == 302
    org.refresh_from_db()
    assert org.mfa_required
    assert AuditEvent.objects.filter(action="org.update", org=org, actor=world.a.users["org_admin"]).exists()
