"""White-label branding (issue 18 part 5): the platform's brand and an org's own on every page and in
every email, checked colours (contrast refused with the measured ratio), hostile images refused, the
images served safely, the studio page and the API."""

import base64

import pytest
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile
from django.template import loader
from django.test import RequestFactory
from rest_framework.test import APIClient

from paas import authz
from paas.brand_assets import server_error
from paas.brand_checks import contrast
from paas.branding import brand_update
from paas.errors import Forbidden, ValidationFailed
from paas.models import AuditEvent, Brand
from tenancy import services
from tenancy.roles import Role
from tests.factories import UserFactory, add_member
from tests.support.images import png

RESELLER = {
    "product_name": "Reseller Cloud",
    "portal_name": "Reseller hub",
    "studio_name": "Reseller Console",
    "color_background": "#10141c",
    "color_text": "#e8ecf2",
    "color_primary": "#7cd1ff",
    "color_primary_text": "#0b1b2b",
    "support_email": "help@reseller.example",
    "email_from_name": "Reseller Cloud",
    "email_from_address": "no-reply@reseller.example",
    "email_footer": "Reseller Cloud Ltd, 1 Cloud Street",
}


def page(client, user, url: str) -> str:
    client.force_login(user)
    response = client.get(url)
    assert response.status_code in (200, 404), (url, response.status_code)
    return response.content.decode()


# --- pages ------------------------------------------------------------------------------------------


def test_defaults_are_todays_look(world, client):
    html = page(client, world.a.users["collaborator_ro"], f"/w/{world.a.project.pk}/")
    assert "<strong>GPU PaaS</strong>" in html and "Developer hub" in html
    assert "--pico-background-color" not in html  # no colours of a brand: the stylesheet's own look
    studio = page(client, world.a.users["org_admin"], "/studio/")
    assert "PaaS Studio" in studio and 'class="studio-mark"' in studio


def test_platform_brand_on_every_page(world, client):
    brand_update(
        actor=world.operator,
        product_name="Acme GPU",
        studio_name="Acme Console",
        support_email="support@acme.example",
        color_primary="#5a1e8c",
    )
    # Sign-in pages (portal, studio) and a page of nobody: the platform's brand.
    for url in ("/login/", "/studio/login/"):
        html = client.get(url).content.decode()
        assert "Acme" in html and "GPU PaaS" not in html, url
    assert "--pico-primary: #5a1e8c;" in client.get("/login/").content.decode()
    assert "Acme Console" in client.get("/studio/login/").content.decode()
    # The portal, a 404 and a 403 page of someone signed in; the studio's header and title.
    member = world.a.users["collaborator_ro"]
    assert "<strong>Acme GPU</strong>" in page(client, member, f"/w/{world.a.project.pk}/")
    missing = page(client, member, "/w/999999/")
    assert "Not found" in missing and "Acme GPU" in missing and "support@acme.example" in missing
    studio = page(client, world.a.users["org_admin"], "/studio/")
    assert "<title>" in studio and "Acme Console" in studio and 'class="studio-mark"' not in studio


def test_org_brand_reaches_that_orgs_people_only(world, client):
    brand_update(actor=world.operator, org=world.a.org, **RESELLER)
    for role in ("collaborator_ro", "workspace_admin"):
        html = page(client, world.a.users[role], f"/w/{world.a.project.pk}/")
        assert "Reseller Cloud" in html and 'data-theme="dark"' in html, role
        assert "--pico-background-color: #10141c;" in html
    # The org's admin in the studio (they administer exactly one org).
    studio = page(client, world.a.users["org_admin"], "/studio/")
    assert "Reseller Console" in studio and "--body-bg: #10141c;" in studio
    # The other org's people and the operator: the platform's.
    for user in (world.b.users["collaborator_ro"], world.b.users["org_admin"]):
        html = page(client, user, f"/w/{world.b.project.pk}/")
        assert "Reseller" not in html and "GPU PaaS" in html
    assert "Reseller" not in page(client, world.b.users["org_admin"], "/studio/")
    assert "Reseller" not in page(client, world.operator, "/studio/")
    # Sign-in pages know no one: the platform's.
    client.logout()
    assert "Reseller" not in client.get("/login/").content.decode()


def test_someone_in_two_orgs_sees_each_workspaces_brand(world, client):
    brand_update(actor=world.operator, org=world.a.org, **RESELLER)
    both = UserFactory(username="both")
    add_member(
        admin=world.a.users["org_admin"], user=both, role=Role.COLLABORATOR_RO, project=world.a.project
    )
    add_member(
        admin=world.b.users["org_admin"], user=both, role=Role.COLLABORATOR_RO, project=world.b.project
    )
    assert "Reseller Cloud" in page(client, both, f"/w/{world.a.project.pk}/")
    assert "Reseller" not in page(client, both, f"/w/{world.b.project.pk}/")


def test_the_500_page_stands_alone_in_the_brand(world, rf: RequestFactory):
    assert "GPU PaaS" in loader.get_template("500.html").render({})  # no context at all
    brand_update(actor=world.operator, product_name="Acme GPU", support_url="https://help.acme.example/")
    response = server_error(rf.get("/"))
    body = response.content.decode()
    assert response.status_code == 500 and "Acme GPU" in body and "https://help.acme.example/" in body


# --- emails -----------------------------------------------------------------------------------------


def test_emails_carry_the_brand_of_their_org(world, django_capture_on_commit_callbacks, settings):
    brand_update(actor=world.operator, org=world.a.org, **RESELLER)
    brand_update(actor=world.operator, support_url="https://help.gpu.example/")
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        services.invitation_create(
            actor=world.a.users["org_admin"], org=world.a.org, email="new@a.example", role=Role.PAAS_ADMIN
        )
        services.invitation_create(
            actor=world.b.users["org_admin"], org=world.b.org, email="new@b.example", role=Role.PAAS_ADMIN
        )
    to_a, to_b = sorted(mail.outbox, key=lambda m: m.to)
    assert to_a.from_email == "Reseller Cloud <no-reply@reseller.example>"
    assert to_a.subject.startswith("Reseller Cloud: ") and "on Reseller Cloud as" in to_a.body
    assert "Reseller Cloud Ltd, 1 Cloud Street" in to_a.body and "help@reseller.example" in to_a.body
    assert "GPU PaaS" not in to_a.body
    assert to_b.from_email == settings.DEFAULT_FROM_EMAIL and to_b.subject.startswith("GPU PaaS: ")
    assert "Support: https://help.gpu.example/" in to_b.body and "Reseller" not in to_b.body


def test_budget_alert_email_in_the_orgs_brand(world):
    import datetime as dt
    from decimal import Decimal

    from billing.budgets import email_alerts
    from billing.models import Budget, BudgetAlert

    brand_update(actor=world.operator, org=world.a.org, **RESELLER)
    budget = Budget.objects.create(org=world.a.org, amount=Decimal("100.00"), currency="EUR", hard_stop=True)
    alert = BudgetAlert.objects.create(
        budget=budget,
        period=dt.date(2026, 11, 1),
        threshold=90,
        spend=Decimal("91.50"),
        projected=Decimal("120"),
    )
    mail.outbox.clear()
    email_alerts([alert.pk])
    [message] = mail.outbox
    assert message.to == [world.a.users["org_admin"].email]
    assert message.from_email == "Reseller Cloud <no-reply@reseller.example>"
    assert (
        message.subject
        == "Reseller Cloud: Budget alert: Orga organization at 90% of its November 2026 budget"
    )
    assert "has reached 90% for November 2026" in message.body and "Thresholds reached: 90%" in message.body
    assert "hard stop" in message.body and "See it in the Reseller Console:" in message.body
    assert message.body.rstrip().endswith("Support: help@reseller.example")
    assert "&amp;" not in message.body and "&#x27;" not in message.body  # plain text, not HTML-escaped


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("email_from_address", "x@example.com\nBcc: victim@example.com"),
        ("email_from_address", "not an address"),
        ("email_from_name", "Evil\r\nBcc: victim@example.com"),
        ("product_name", "Name\nX-Header: 1"),
    ],
)
def test_email_header_injection_refused(world, field, value):
    with pytest.raises(ValidationFailed) as refused:
        brand_update(actor=world.operator, **{"email_from_address": "ok@example.com", field: value})
    assert field in refused.value.fields
    assert not Brand.objects.exists()


# --- colours ----------------------------------------------------------------------------------------


def test_low_contrast_refused_with_the_ratio(world):
    assert 4.47 < contrast("#777777", "#ffffff") < 4.48  # shown rounded down: never "4.5"
    with pytest.raises(ValidationFailed) as refused:
        brand_update(actor=world.operator, color_text="#777777")
    assert "4.47:1" in refused.value.fields["color_text"][0]
    with pytest.raises(ValidationFailed) as refused:
        brand_update(actor=world.operator, color_primary="#0b5cad", color_primary_text="#3a7bd5")
    assert (
        "color_primary_text" in refused.value.fields and ":1" in refused.value.fields["color_primary_text"][0]
    )
    with pytest.raises(ValidationFailed) as refused:  # links: the primary colour on the background
        brand_update(actor=world.operator, color_background="#10141c", color_text="#e8ecf2")
    assert "color_primary" in refused.value.fields
    assert not Brand.objects.exists()


@pytest.mark.parametrize(
    "value", ["red", "#fff", "#12345g", "#123456;}</style><script>alert(1)</script>", ""]
)
def test_colours_are_only_rrggbb(world, value):
    with pytest.raises(ValidationFailed) as refused:
        brand_update(actor=world.operator, color_primary=value)
    assert "#rrggbb" in refused.value.fields["color_primary"][0]


def test_a_tampered_colour_never_reaches_a_page(world, client):
    row = brand_update(actor=world.operator, color_primary="#5a1e8c")
    Brand.objects.filter(pk=row.pk).update(color_primary="red;}</")  # written around the service
    html = page(client, world.a.users["collaborator_ro"], f"/w/{world.a.project.pk}/")
    assert "red;}" not in html and "--pico-primary: #0b5cad;" not in html  # back to the default


# --- images -----------------------------------------------------------------------------------------

SVG = b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (SVG, "SVG"),
        (b"\xef\xbb\xbf  <svg onload='alert(1)'/>", "SVG"),
        (b"<html><script>alert(1)</script></html>", "SVG"),
        (b"GIF89a" + b"\x00" * 20, "Not a PNG"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "Not a PNG"),  # no IHDR
        (png(width=100000, height=1), "Not a PNG"),  # a decompression bomb's dimensions
        (png(trailer=b"\x00" * 300 * 1024), "At most 256 KiB"),
    ],
    ids=["svg-script", "svg-bom", "html", "gif", "png-magic-only", "png-huge", "too-large"],
)
def test_hostile_logos_refused(world, data, why):
    with pytest.raises(ValidationFailed) as refused:
        brand_update(actor=world.operator, logo=data)
    assert why in refused.value.fields["logo"][0]


def test_images_served_with_their_type_nosniff_and_a_closed_csp(world, client):
    row = brand_update(actor=world.operator, logo=png(), favicon=b"\x00\x00\x01\x00\x01\x00" + b"\x00" * 30)
    url = f"/branding/{row.pk}/logo/{row.logo_digest}/"
    html = client.get("/login/").content.decode()
    assert f'src="{url}"' in html and f"/branding/{row.pk}/favicon/{row.favicon_digest}/" in html
    response = client.get(url)  # no sign-in: the sign-in pages show it
    assert response.status_code == 200 and response.content == png()
    assert response["Content-Type"] == "image/png"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert (
        "default-src 'none'" in response["Content-Security-Policy"]
        and "sandbox" in response["Content-Security-Policy"]
    )
    assert "immutable" in response["Cache-Control"] and row.logo_digest in response["ETag"]
    favicon = client.get(f"/branding/{row.pk}/favicon/{row.favicon_digest}/")
    assert favicon["Content-Type"] == "image/vnd.microsoft.icon"
    # Another digest (an old logo, a guess) or kind: not found.
    assert client.get(f"/branding/{row.pk}/logo/{'0' * 64}/").status_code == 404
    assert client.get(f"/branding/{row.pk}/email_footer/{row.logo_digest}/").status_code == 404
    assert client.post(url).status_code == 405
    # A new logo has a new address; removing it removes the image.
    row = brand_update(actor=world.operator, logo=png(3, 3))
    assert client.get(url).status_code == 404
    row = brand_update(actor=world.operator, logo=None)
    assert row.logo_digest == "" and 'class="brand-logo"' not in client.get("/login/").content.decode()


# --- who may set it, the API, the studio ------------------------------------------------------------


def test_only_operators_set_the_brand(world):
    for user in (world.a.users["org_admin"], world.a.users["workspace_admin"]):
        with pytest.raises(Forbidden):
            brand_update(actor=user, org=world.a.org, product_name="Mine")
    assert not Brand.objects.exists()


def as_user(user) -> APIClient:
    authz.forget(user)
    client = APIClient()
    client.force_authenticate(user=user)
    return client


def test_api_reads_the_brand_in_effect_and_operators_write(world):
    member_a, member_b = world.a.users["collaborator_ro"], world.b.users["collaborator_ro"]
    operator = as_user(world.operator)
    response = operator.patch(
        f"/api/v1/branding/orgs/{world.a.org.pk}/",
        {**RESELLER, "logo": base64.b64encode(png()).decode()},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert response.json()["logo_url"].startswith(f"/branding/{response.json()['id']}/logo/")
    assert as_user(member_a).get("/api/v1/branding/").json()["product_name"] == "Reseller Cloud"
    assert as_user(member_b).get("/api/v1/branding/").json()["product_name"] == "GPU PaaS"
    assert as_user(member_b).get(f"/api/v1/branding/?org={world.a.org.pk}").status_code == 404
    # Writes: operators only; contrast refused with the ratio; an SVG refused.
    assert as_user(member_a).patch("/api/v1/branding/", {"product_name": "X"}).status_code == 403
    assert as_user(world.a.users["org_admin"]).patch(
        f"/api/v1/branding/orgs/{world.a.org.pk}/", {"product_name": "X"}
    ).status_code in (403, 404)
    bad = operator.patch("/api/v1/branding/", {"color_text": "#777777"}, format="json")
    assert bad.status_code == 400 and "4.47:1" in bad.json()["error"]["fields"]["color_text"][0]
    svg = operator.patch("/api/v1/branding/", {"logo": base64.b64encode(SVG).decode()}, format="json")
    assert svg.status_code == 400 and "SVG" in svg.json()["error"]["fields"]["logo"][0]
    assert operator.patch("/api/v1/branding/", {"logo": "not base64!"}, format="json").status_code == 400
    ok = operator.patch("/api/v1/branding/", {"product_name": "Acme GPU"}, format="json")
    assert ok.status_code == 200 and ok.json()["org_id"] is None
    assert [b["product_name"] for b in operator.get("/api/v1/branding/brands/").json()] == [
        "Acme GPU",
        "Reseller Cloud",
    ]
    assert as_user(member_a).get("/api/v1/branding/brands/").json() == []
    # Removing the org's brand: its people see the platform's again. Every write is audited.
    assert operator.delete(f"/api/v1/branding/orgs/{world.a.org.pk}/").status_code == 204
    assert as_user(member_a).get("/api/v1/branding/").json()["product_name"] == "Acme GPU"
    actions = list(AuditEvent.objects.filter(action__startswith="brand.").values_list("action", flat=True))
    assert sorted(actions) == ["brand.create", "brand.create", "brand.delete"]


def test_studio_page_for_operators(world, client):
    client.force_login(world.a.users["org_admin"])
    assert client.get("/studio/paas/brand/").status_code == 403
    client.force_login(world.operator)
    assert client.get("/studio/paas/brand/add/").status_code == 200
    form = {
        "product_name": "Acme GPU",
        "portal_name": "Hub",
        "studio_name": "Acme Console",
        "color_background": "#ffffff",
        "color_text": "#777777",
        "color_primary": "#0b5cad",
        "color_primary_text": "#ffffff",
    }
    refused = client.post("/studio/paas/brand/add/", form)
    assert refused.status_code == 200 and "4.47:1" in refused.content.decode()
    assert not Brand.objects.exists()
    logo = SimpleUploadedFile("logo.png", png(), content_type="image/png")
    saved = client.post("/studio/paas/brand/add/", {**form, "color_text": "#222222", "logo_file": logo})
    assert saved.status_code == 302, saved.content.decode()[-2000:]
    row = Brand.objects.get(org__isnull=True)
    assert row.product_name == "Acme GPU" and row.logo_type == "image/png"
    assert "Acme Console" in client.get(f"/studio/paas/brand/{row.pk}/change/").content.decode()
    svg = SimpleUploadedFile("logo.png", SVG, content_type="image/png")  # the name and type lie
    bad = client.post(
        f"/studio/paas/brand/{row.pk}/change/", {**form, "color_text": "#222222", "logo_file": svg}
    )
    assert bad.status_code == 200 and "SVG" in bad.content.decode()
    assert AuditEvent.objects.filter(action="brand.create", actor=world.operator).count() == 1
