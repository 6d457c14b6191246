"""Issue 18, part 1, in a real browser: an org requiring MFA sends its admin to enrol at sign-in; the
next sign-in asks for a code (computed here from the key the page shows), then the studio opens. The
account pages pass axe-core's WCAG checks."""

from base64 import b32decode

from django_otp.oath import totp
from playwright.sync_api import expect

from paas.models import AuditEvent
from tests.browser.helpers import login
from tests.browser.test_portal_pages import axe_violations
from tests.factories import PASSWORD, make_operator, make_org


def code_for(secret: str, *, ahead: int = 0) -> str:
    # t0 = -ahead * 30: the code of a later time step (django-otp accepts one step ahead, and each step
    # once: the sign-in after the enrolment uses the next one, without waiting for the clock).
    return str(totp(b32decode(secret), t0=-ahead * 30)).zfill(6)


def test_totp_enrolment_and_sign_in_through_the_pages(transactional_db, live_server, page):
    operator = make_operator(username="mfa-op", email="mfa-op@example.com")
    org, admin = make_org(operator=operator, name="mfaco")
    org.mfa_required = True
    org.save()

    login(page, admin.username, PASSWORD, url="/login/")
    expect(page).to_have_url(f"{live_server.url}/account/security/?next=%2F")
    expect(page.get_by_role("alert")).to_contain_text("required")
    assert axe_violations(page) == []
    page.get_by_label("Name of the app or phone").fill("My phone")
    page.get_by_role("button", name="Add an authenticator app").click()
    secret = page.get_by_test_id("totp-secret").inner_text()
    expect(page.locator("figure svg")).to_be_visible()
    assert axe_violations(page) == []
    page.get_by_label("Code from the app").fill(code_for(secret))
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_test_id("recovery-codes").locator("li")).to_have_count(10)
    page.goto("/account/email/")
    expect(page.get_by_label("New email address")).to_be_visible()
    assert axe_violations(page) == []

    page.context.clear_cookies()  # a new sign-in
    login(page, admin.username, PASSWORD, url="/studio/login/?next=/studio/")
    expect(page.get_by_role("heading", name="Verify it is you")).to_be_visible()
    assert axe_violations(page) == []
    page.get_by_label("Code").fill(code_for(secret, ahead=1))
    page.get_by_role("button", name="Verify").click()
    expect(page).to_have_url(f"{live_server.url}/studio/")


def test_a_passkey_is_enrolled_then_asked_for_at_the_next_sign_in(
    transactional_db, live_server, page, settings
):
    # Browsers refuse an IP address as a passkey's domain: the same server, named localhost.
    origin = f"http://localhost:{live_server.port}"
    settings.OTP_WEBAUTHN_RP_ID = "localhost"
    settings.OTP_WEBAUTHN_ALLOWED_ORIGINS = [origin]
    operator = make_operator(username="pk-op", email="pk-op@example.com")
    org, admin = make_org(operator=operator, name="passkeyco")
    org.mfa_required = True
    org.save()
    # Chromium's virtual authenticator (DevTools protocol): a platform passkey that verifies the user.
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    authenticator = cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )["authenticatorId"]

    login(page, admin.username, PASSWORD, url=f"{origin}/login/")
    expect(page).to_have_url(f"{origin}/account/security/?next=%2F")
    page.get_by_role("button", name="Add a passkey").click()
    expect(page.get_by_test_id("passkeys").locator("li")).to_have_count(1)
    assert len(cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})["credentials"]) == 1
    assert AuditEvent.objects.filter(action="mfa.enrol", actor=admin, details__kind="passkey").exists()
    assert axe_violations(page) == []

    page.context.clear_cookies()  # a new sign-in: password, then the passkey
    login(page, admin.username, PASSWORD, url=f"{origin}/studio/login/?next=/studio/")
    expect(page.get_by_role("heading", name="Verify it is you")).to_be_visible()
    page.get_by_role("button", name="Use a passkey").click()
    expect(page).to_have_url(f"{origin}/studio/")
