"""Support access in the studio (the "Support access" page: request, decide, end, settings) and the
banner the support person and the org's admins see on every page (portal and studio) while it lasts."""

from datetime import timedelta

import time_machine
from django.utils import timezone

from paas.models import AuditEvent
from tenancy.models import SupportAccess
from tests.support.support import grant_support

PAGE = "/studio/tenancy/supportaccess/"


def _request_body(world, **data):
    body = {"org": world.a.org.pk, "reason": "Ticket 99", "level": "admin", "duration_minutes": 60}
    body.update(data)
    return body


def test_operator_requests_in_the_studio_with_form_errors(world, client):
    client.force_login(world.operator)
    page = client.get(f"{PAGE}add/")
    assert page.status_code == 200
    assert 'for="id_reason"' in page.content.decode() and 'for="id_duration_minutes"' in page.content.decode()
    bad = client.post(f"{PAGE}add/", _request_body(world, duration_minutes=5, reason=""))
    assert bad.status_code == 200 and not SupportAccess.objects.exists()
    assert "errorlist" in bad.content.decode()
    bad = client.post(f"{PAGE}add/", _request_body(world, duration_minutes=20000))
    assert bad.status_code == 200 and "7 days" in bad.content.decode()
    assert not SupportAccess.objects.exists()

    done = client.post(f"{PAGE}add/", _request_body(world))
    access = SupportAccess.objects.get()
    assert done.status_code == 302 and done.url == f"{PAGE}{access.pk}/change/"
    assert access.state == "pending" and access.user == world.operator
    detail = client.get(done.url).content.decode()
    assert (
        "Waiting for approval" in detail and 'value="withdraw"' in detail and 'value="approve"' not in detail
    )
    assert "Ticket 99" in client.get(PAGE).content.decode()
    # End users and other orgs' admins: no page, no row.
    client.force_login(world.b.users["org_admin"])
    assert client.get(done.url).status_code == 404
    assert "Ticket 99" not in client.get(PAGE).content.decode()
    client.force_login(world.a.users["paas_admin_org"])
    assert client.get(PAGE).status_code == 403


def test_org_admin_approves_ends_and_sets_preapproval_in_the_studio(world, client):
    a, operator, admin = world.a, world.operator, world.a.users["org_admin"]
    client.force_login(operator)
    client.post(f"{PAGE}add/", _request_body(world))
    access = SupportAccess.objects.get()
    # The operator cannot approve their own request, even by posting the action.
    assert (
        client.post(f"{PAGE}{access.pk}/change/", {"action": "approve", "level": "admin"}).status_code == 403
    )

    client.force_login(admin)
    listing = client.get(PAGE).content.decode()
    assert "Ticket 99" in listing and f"{PAGE}settings/{a.org.pk}/" in listing
    detail = client.get(f"{PAGE}{access.pk}/change/").content.decode()
    assert 'value="approve"' in detail and 'value="deny"' in detail and 'for="id_level"' in detail
    done = client.post(f"{PAGE}{access.pk}/change/", {"action": "approve", "level": "read", "note": "ok"})
    assert done.status_code == 302
    access.refresh_from_db()
    assert access.state == "approved" and access.level == "read" and access.decided_by == admin
    assert 'value="end"' in client.get(f"{PAGE}{access.pk}/change/").content.decode()
    client.post(f"{PAGE}{access.pk}/change/", {"action": "end"})
    access.refresh_from_db()
    assert access.state == "revoked"
    assert AuditEvent.objects.filter(org=a.org, action="support.end", actor_id=admin.pk).exists()

    settings_page = f"{PAGE}settings/{a.org.pk}/"
    assert 'for="id_support_preapproval"' in client.get(settings_page).content.decode()
    bad = client.post(settings_page, {"support_preapproval": "read", "support_max_minutes": 3})
    assert bad.status_code == 200 and "errorlist" in bad.content.decode()
    assert (
        client.post(settings_page, {"support_preapproval": "read", "support_max_minutes": 90}).status_code
        == 302
    )
    a.org.refresh_from_db()
    assert (a.org.support_preapproval, a.org.support_max_minutes) == ("read", 90)
    # The operator (even with administrative support access) cannot change the org's consent.
    grant_support(operator=operator, org=a.org, level="admin")
    client.force_login(operator)
    assert client.get(settings_page).status_code == 404


def test_banner_on_every_page_while_it_lasts(world, client):
    a, operator, admin = world.a, world.operator, world.a.users["org_admin"]
    with time_machine.travel(timezone.now(), tick=False) as clock:
        client.force_login(operator)
        assert "Support access to" not in client.get("/studio/").content.decode()
        assert client.get(f"/w/{a.project.pk}/instances/").status_code == 404  # no access, no workspace
        grant_support(operator=operator, org=a.org, level="read", minutes=30)
        for url in ("/studio/", f"/w/{a.project.pk}/instances/"):
            page = client.get(url)
            assert page.status_code == 200, url
            text = page.content.decode()
            assert "Support access to <strong>" in text and "read-only, ends" in text, url
            assert a.org.display_name in text
        client.force_login(admin)
        text = client.get("/studio/").content.decode()
        assert "has read-only support access to" in text and "platform support" in text
        assert "has read-only support access" not in (
            client.force_login(world.b.users["org_admin"]) or client.get("/studio/").content.decode()
        )
        client.force_login(a.users["workspace_admin"])  # not an org admin: no banner
        assert "support access" not in client.get(f"/w/{a.project.pk}/instances/").content.decode()

        clock.shift(timedelta(minutes=30))
        client.force_login(operator)
        assert "Support access to" not in client.get("/studio/").content.decode()
        assert client.get(f"/w/{a.project.pk}/instances/").status_code == 404
        client.force_login(admin)
        assert "support access to" not in client.get("/studio/").content.decode()
