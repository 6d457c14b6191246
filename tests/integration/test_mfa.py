"""Issue 18, part 1: MFA for local accounts (django-otp: TOTP and recovery codes).

Codes are computed here from the device's key (django_otp.oath.totp), never mocked; time moves with
time_machine so a code is not the one used just before (django-otp accepts each time step once).
"""

import re
from datetime import UTC, datetime

import pytest
import time_machine
from django_otp.oath import totp
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from paas.errors import Forbidden
from paas.models import ApiToken, AuditEvent
from paas.services import api_token_create
from tenancy import mfa
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db

START = datetime(2026, 3, 2, 9, 0, 0, tzinfo=UTC)


def code(device: TOTPDevice) -> str:
    device.refresh_from_db()
    return str(totp(device.bin_key, device.step, device.t0, device.digits, device.drift)).zfill(device.digits)


def sign_in(client, user, url="/login/"):
    response = client.post(url, {"username": user.username, "password": PASSWORD})
    assert response.status_code == 302, response.content[:500]
    return response


def enrol_on_page(client) -> tuple[TOTPDevice, list[str]]:
    """Add and confirm an authenticator app on /account/security/ as the signed-in user."""
    page = client.post("/account/security/", {"action": "begin", "name": "Phone"})
    assert page.status_code == 200
    device = TOTPDevice.objects.get(pk=re.search(rb'name="device" value="(\d+)"', page.content).group(1))
    assert not device.confirmed and mfa.secret_of(device).encode() in page.content
    assert b"<svg" in page.content  # the QR code, inline
    done = client.post(
        "/account/security/", {"action": "confirm", "device": device.pk, "token": code(device)}
    )
    assert done.status_code == 200, done.content[:500]
    codes = re.findall(rb"<li><code>([a-z2-7]+)</code></li>", done.content)
    return device, [c.decode() for c in codes]


def api_code(response) -> str:
    return response.json()["error"]["code"]


def test_totp_enrolment_then_sign_in_asks_for_a_code_on_the_portal(world, client):
    user = world.a.users["collaborator_rw"]
    with time_machine.travel(START, tick=False) as clock:
        sign_in(client, user)
        assert client.get("/").status_code == 302 and "/account/" not in client.get("/")["Location"]
        bad = client.post("/account/security/", {"action": "begin"})
        device_id = re.search(rb'name="device" value="(\d+)"', bad.content).group(1).decode()
        wrong = client.post(
            "/account/security/", {"action": "confirm", "device": device_id, "token": "000000"}
        )
        assert wrong.status_code == 400 and b"does not match" in wrong.content
        assert not TOTPDevice.objects.get(pk=device_id).confirmed
        clock.shift(2)  # past the throttle of the wrong try
        device, codes = enrol_on_page(client)
        assert device.pk != int(device_id)  # a new begin replaced the unconfirmed one
        assert len(codes) == 10 and len(set(codes)) == 10
        assert AuditEvent.objects.filter(action="mfa.enrol", actor=user).exists()
        client.post("/logout/")

        clock.shift(60)
        sign_in(client, user)
        held = client.get("/")
        assert held.status_code == 302 and held["Location"].startswith("/account/mfa/verify/?next=")
        assert api_code(client.get("/api/v1/me/")) == "mfa_required"
        assert client.get("/account/security/")["Location"].startswith(
            "/account/mfa/verify/"
        )  # no new device
        refused = client.post("/account/mfa/verify/", {"token": "123456", "next": "/"})
        assert refused.status_code == 400
        clock.shift(2)
        ok = client.post("/account/mfa/verify/", {"token": code(device), "next": "/instances/"})
        assert ok.status_code == 302 and ok["Location"] == "/instances/"
        assert client.get("/api/v1/me/").status_code == 200
        # The same code again (same time step) is refused: each step counts once.
        client.post("/logout/")
        sign_in(client, user)
        assert client.post("/account/mfa/verify/", {"token": code(device)}).status_code == 400


def test_a_wrong_code_throttles_the_device_and_an_open_redirect_is_refused(world, client):
    user = world.a.users["collaborator_ro"]
    with time_machine.travel(START, tick=False) as clock:
        sign_in(client, user)
        device, _ = enrol_on_page(client)
        client.post("/logout/")
        clock.shift(30)
        sign_in(client, user)
        for _ in range(3):
            assert client.post("/account/mfa/verify/", {"token": "111111"}).status_code == 400
        # Throttled (django-otp doubles the wait per failure): even the right code waits.
        assert client.post("/account/mfa/verify/", {"token": code(device)}).status_code == 400
        clock.shift(30)
        ok = client.post("/account/mfa/verify/", {"token": code(device), "next": "https://evil.example/"})
        assert ok.status_code == 302 and ok["Location"] == "/"


def test_a_recovery_code_signs_in_once_and_new_codes_replace_the_old(world, client):
    user = world.a.users["workspace_admin"]
    with time_machine.travel(START, tick=False) as clock:
        sign_in(client, user)
        _device, codes = enrol_on_page(client)
        client.post("/logout/")
        clock.shift(30)
        sign_in(client, user)
        ok = client.post("/account/mfa/verify/", {"token": codes[0].upper()})
        assert ok.status_code == 302
        assert AuditEvent.objects.filter(action="mfa.recovery_code_used", actor=user).exists()
        assert StaticDevice.objects.get(user=user).token_set.count() == 9
        fresh = client.post("/account/security/", {"action": "recovery"})
        new_codes = [c.decode() for c in re.findall(rb"<li><code>([a-z2-7]+)</code></li>", fresh.content)]
        assert len(new_codes) == 10
        client.post("/logout/")
        sign_in(client, user)
        assert client.post("/account/mfa/verify/", {"token": codes[0]}).status_code == 400  # used
        clock.shift(5)
        assert client.post("/account/mfa/verify/", {"token": codes[1]}).status_code == 400  # replaced
        clock.shift(5)
        assert client.post("/account/mfa/verify/", {"token": new_codes[1]}).status_code == 302


def test_an_org_requiring_mfa_makes_its_local_members_enrol_at_next_sign_in(world, api, client):
    a, b = world.a, world.b
    member = a.users["collaborator_rw"]
    refused = api.as_user(a.users["paas_admin_org"]).patch(
        f"/api/v1/orgs/{a.org.pk}/", {"mfa_required": True}
    )
    assert refused.status_code in (403, 404)
    answer = api.as_user(a.users["org_admin"]).patch(f"/api/v1/orgs/{a.org.pk}/", {"mfa_required": True})
    assert answer.status_code == 200 and answer.json()["mfa_required"] is True
    event = AuditEvent.objects.filter(action="org.update", org=a.org).latest("pk")
    assert event.details["changes"]["mfa_required"] == [False, True]

    with time_machine.travel(START, tick=False) as clock:
        client.force_login(member)
        held = client.get("/")
        assert held.status_code == 302 and held["Location"].startswith("/account/security/")
        assert api_code(client.get("/api/v1/projects/")) == "mfa_required"
        assert api_code(client.post("/api/v1/tokens/", {"name": "x"})) == "mfa_required"
        # Enrol through the API, from the session.
        started = client.post("/api/v1/mfa/totp/", {"name": "Laptop"})
        assert started.status_code == 201 and started.json()["qr_svg"].startswith("<svg")
        device = TOTPDevice.objects.get(pk=started.json()["id"])
        assert started.json()["secret"] == mfa.secret_of(device)
        confirmed = client.post(f"/api/v1/mfa/totp/{device.pk}/confirm/", {"token": code(device)})
        assert confirmed.status_code == 200 and len(confirmed.json()["recovery_codes"]) == 10
        assert client.get("/api/v1/projects/").status_code == 200
        status = client.get("/api/v1/mfa/").json()
        assert status["required"] and status["session_verified"] and status["recovery_codes_left"] == 10
        created = client.post("/api/v1/tokens/", {"name": "ci"})
        assert created.status_code == 201
        # The token works (it was made from a verified session); it cannot touch the devices.
        bearer = {"HTTP_AUTHORIZATION": f"Bearer {created.json()['token']}"}
        api.logout()
        assert api.get("/api/v1/projects/", **bearer).status_code == 200
        assert api.delete(f"/api/v1/mfa/totp/{device.pk}/", **bearer).status_code == 403
        clock.shift(60)

    # Members of another org, and the provider's users, are not asked.
    client.force_login(b.users["collaborator_rw"])
    assert client.get("/api/v1/projects/").status_code == 200
    sso_user = a.users["collaborator_ro"]
    sso_user.source = "idp"
    sso_user.save()
    client.force_login(sso_user)
    assert client.get("/api/v1/projects/").status_code == 200


def test_tokens_are_created_only_from_an_mfa_verified_session_where_mfa_applies(world, client):
    a = world.a
    member = a.users["collaborator_rw"]
    api_token_create(actor=member, name="before")  # not required: as before
    a.org.mfa_required = True
    a.org.save()
    member = type(member).objects.get(pk=member.pk)
    with pytest.raises(Forbidden) as refused:
        api_token_create(actor=member, name="after")
    assert refused.value.code == "mfa_required"
    api_token_create(actor=member, name="after", mfa_verified=True)
    assert set(ApiToken.objects.filter(user=member).values_list("name", flat=True)) == {"before", "after"}


def test_a_held_back_session_never_stands_in_for_a_bad_bearer_token(world, client):
    a = world.a
    a.org.mfa_required = True
    a.org.save()
    client.force_login(a.users["collaborator_rw"])
    assert client.get("/api/v1/projects/", HTTP_AUTHORIZATION="Bearer nonsense").status_code == 401
    assert client.get("/api/v1/projects/", HTTP_AUTHORIZATION="Basic eDp5").status_code in (401, 403)


def test_the_studio_is_guarded_like_the_otp_admin_site(world, client):
    admin = world.a.users["org_admin"]
    with time_machine.travel(START, tick=False) as clock:
        sign_in(client, admin, url="/studio/login/")
        device, _ = enrol_on_page(client)
        assert client.get("/studio/").status_code == 200  # enrolled in this session: verified
        client.post("/logout/")
        clock.shift(30)
        response = sign_in(client, admin, url="/studio/login/?next=/studio/")
        assert response["Location"] == "/studio/"
        held = client.get("/studio/tenancy/user/")
        assert held.status_code == 302 and held["Location"].startswith("/account/mfa/verify/")
        ok = client.post("/account/mfa/verify/", {"token": code(device), "next": "/studio/tenancy/user/"})
        assert ok["Location"] == "/studio/tenancy/user/"
        assert client.get("/studio/tenancy/user/").status_code == 200

    from django.test import RequestFactory

    from paas.sites import StudioSite

    request = RequestFactory().get("/studio/")
    request.user = admin
    admin.is_verified = lambda: False
    assert StudioSite().has_permission(request) is False
    admin.is_verified = lambda: True
    assert StudioSite().has_permission(request) is True


def test_operators_must_enrol_under_production_settings(world, client, settings):
    client.force_login(world.operator)
    assert client.get("/studio/").status_code == 200  # dev and test: not required
    settings.PAAS_MFA_REQUIRED_FOR_OPERATORS = True
    held = client.get("/studio/")
    assert held.status_code == 302 and held["Location"].startswith("/account/security/")
    assert api_code(client.get("/api/v1/orgs/")) == "mfa_required"


def test_an_org_admin_resets_a_members_devices_audited_and_nobody_else_can(world, api, client):
    a, b = world.a, world.b
    member = a.users["collaborator_rw"]
    device = mfa.mfa_totp_begin(actor=member)
    mfa.mfa_totp_confirm(actor=member, device=device, token=code(device))
    assert StaticDevice.objects.filter(user=member).exists()

    for outsider in (b.users["org_admin"], a.users["workspace_admin"]):
        answer = api.as_user(outsider).post("/api/v1/mfa/reset/", {"user": member.pk})
        assert answer.status_code == 400 and "user" in answer.json()["error"]["fields"]  # not visible
    assert TOTPDevice.objects.filter(user=member).exists()
    # An operator (without support access) cannot reset a tenant's member either.
    answer = api.as_user(world.operator).post("/api/v1/mfa/reset/", {"user": member.pk})
    assert answer.status_code == 403
    assert TOTPDevice.objects.filter(user=member).exists()

    answer = api.as_user(a.users["org_admin"]).post("/api/v1/mfa/reset/", {"user": member.pk})
    assert answer.status_code == 200 and answer.json() == {"devices": 1}
    assert not TOTPDevice.objects.filter(user=member).exists()
    assert not StaticDevice.objects.filter(user=member).exists()
    event = AuditEvent.objects.get(action="mfa.reset", org=a.org)
    assert event.actor == a.users["org_admin"] and event.details["user"] == member.email

    # The studio's action does the same.
    device = mfa.mfa_totp_begin(actor=member)
    mfa.mfa_totp_confirm(actor=member, device=device, token=code(device))
    client.force_login(a.users["org_admin"])
    response = client.post(
        "/studio/tenancy/user/", {"action": "reset_mfa", "_selected_action": [member.pk]}, follow=True
    )
    assert response.status_code == 200 and b"MFA reset" in response.content
    assert not TOTPDevice.objects.filter(user=member).exists()
    assert AuditEvent.objects.filter(action="mfa.reset", org=a.org).count() == 2


def test_removing_the_last_app_takes_the_recovery_codes_and_devices_are_private(world, client, api):
    a = world.a
    user = a.users["collaborator_rw"]
    other = a.users["collaborator_ro"]
    with time_machine.travel(START, tick=False):
        sign_in(client, user)
        device, _ = enrol_on_page(client)
        mine = mfa.mfa_totp_begin(actor=other)
        # Someone else's device is a 404, on the page and in the API.
        assert client.post("/account/security/", {"action": "delete", "device": mine.pk}).status_code == 404
        assert TOTPDevice.objects.filter(pk=mine.pk).exists()
        assert client.delete(f"/api/v1/mfa/totp/{mine.pk}/").status_code == 404
        assert client.post(f"/api/v1/mfa/totp/{mine.pk}/confirm/", {"token": "123456"}).status_code == 404
        assert client.delete(f"/api/v1/mfa/totp/{device.pk}/").status_code == 204
    assert not StaticDevice.objects.filter(user=user).exists()
    assert AuditEvent.objects.filter(action="mfa.device_delete", actor=user).exists()
    # The studio shows no django-otp device pages (they would show keys).
    client.force_login(a.users["org_admin"])
    assert client.get("/studio/otp_totp/totpdevice/").status_code == 404


def test_sso_users_have_nothing_to_enrol(world, client):
    user = world.a.users["collaborator_rw"]
    user.source = "idp"
    user.save()
    client.force_login(user)
    assert b"identity provider" in client.get("/account/security/").content
    answer = client.post("/api/v1/mfa/totp/", {})
    assert answer.status_code == 400


def test_a_password_only_session_cannot_open_the_web_shell(world):
    from django.contrib.sessions.backends.db import SessionStore

    from tenancy.account_gate import hold_for_session

    user = world.a.users["workspace_admin"]
    device = mfa.mfa_totp_begin(actor=user)
    mfa.mfa_totp_confirm(actor=user, device=device, token=code(device))
    session = SessionStore()
    assert hold_for_session(type(user).objects.get(pk=user.pk), session).code == "mfa_required"
    session["otp_device_id"] = device.persistent_id
    assert hold_for_session(type(user).objects.get(pk=user.pk), session) is None


def make_passkey(user, name="Security key"):
    import hashlib

    from django_otp_webauthn.models import WebAuthnCredential

    credential_id = f"credential-of-{user.pk}-{name}".encode()
    return WebAuthnCredential.objects.create(
        user=user,
        name=name,
        confirmed=True,
        credential_id=credential_id,
        credential_id_sha256=hashlib.sha256(credential_id).hexdigest(),
        public_key=b"not-used-here",
        sign_count=0,
    )


def test_passkeys_count_as_a_second_factor_and_a_reset_removes_them(world, api, client):
    a = world.a
    member = a.users["collaborator_rw"]
    passkey = make_passkey(member)
    assert AuditEvent.objects.filter(action="mfa.enrol", actor=member, details__kind="passkey").exists()
    client.force_login(member)
    held = client.get("/")
    assert held["Location"].startswith("/account/mfa/verify/")
    assert b"Use a passkey" in client.get("/account/mfa/verify/").content
    # A password-only session registers no new passkey (nor app) to get past the step.
    assert client.post("/webauthn/registration/begin/").status_code == 302
    assert api_code(client.post("/api/v1/mfa/totp/", {})) == "mfa_required"
    assert client.post("/webauthn/authentication/begin/").status_code == 200  # the ceremony of the step

    other = a.users["collaborator_ro"]
    client.force_login(other)
    assert client.delete(f"/api/v1/mfa/passkeys/{passkey.pk}/").status_code == 404
    answer = api.as_user(a.users["org_admin"]).post("/api/v1/mfa/reset/", {"user": member.pk})
    assert answer.json() == {"devices": 1}
    client.force_login(member)
    assert client.get("/api/v1/mfa/").json()["passkeys"] == []


def test_a_passkey_is_removed_by_its_owner_with_the_recovery_codes_when_last(world, client):
    user = world.a.users["workspace_admin"]
    passkey = make_passkey(user)
    with time_machine.travel(START, tick=False):
        client.force_login(user)
        session = client.session
        session["otp_device_id"] = passkey.persistent_id  # as the passkey step leaves it
        session.save()
        codes = client.post("/api/v1/mfa/recovery-codes/")
        assert codes.status_code == 201 and len(codes.json()["recovery_codes"]) == 10
        listed = client.get("/api/v1/mfa/").json()
        assert [p["name"] for p in listed["passkeys"]] == ["Security key"] and listed["session_verified"]
        page = client.post("/account/security/", {"action": "delete_passkey", "device": passkey.pk})
        assert page.status_code == 302
    assert not StaticDevice.objects.filter(user=user).exists()
    event = AuditEvent.objects.filter(action="mfa.device_delete", actor=user).latest("pk")
    assert event.details["kind"] == "passkey"


def test_the_api_verifies_a_session_with_a_code_and_is_throttled_like_the_page(world, client):
    user = world.a.users["collaborator_ro"]
    device = mfa.mfa_totp_begin(actor=user)
    with time_machine.travel(START, tick=False) as clock:
        mfa.mfa_totp_confirm(actor=user, device=device, token=code(device))
        clock.shift(30)
        client.force_login(user)
        assert api_code(client.get("/api/v1/projects/")) == "mfa_required"
        wrong = client.post("/api/v1/mfa/verify/", {"token": "999999"})
        assert wrong.status_code == 403 and api_code(wrong) == "mfa_invalid"
        assert (
            api_code(client.post("/api/v1/mfa/verify/", {"token": code(device)})) == "mfa_invalid"
        )  # throttled
        clock.shift(2)
        ok = client.post("/api/v1/mfa/verify/", {"token": code(device)})
        assert ok.status_code == 200 and ok.json()["session_verified"] is True
        assert client.get("/api/v1/projects/").status_code == 200
