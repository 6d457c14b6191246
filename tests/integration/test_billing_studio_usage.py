"""The studio's *Instance usage* page (billing/admin_usage.py): the billing API's figures as a page, for
org admins (theirs only) and operators (the orgs they hold a support access to: per-instance rows are a
tenant's insides), with the API's filters, errors and CSV."""

import re

import pytest
from django.test import Client

from billing.models import Meter
from tests.support.billing import dashboard_history
from tests.support.support import grant_support

URL = "/studio/billing/meter/"
OCTOBER = {"start": "2026-10-01", "end": "2026-10-31"}


@pytest.fixture
def history(db):
    return dashboard_history()


def _page(user, **params):
    client = Client()
    client.force_login(user)
    return client.get(URL, params)


def _supported(op):
    """The operator with read support access to every org of the history (what "every org" needs now)."""
    for org_id in sorted(set(Meter.objects.values_list("org_id", flat=True))):
        grant_support(operator=op, org=Meter.objects.filter(org_id=org_id).first().org, level="read")
    return op


def _names(html: str, name: str) -> bool:
    """Whether ``name`` appears as a word of the page (a CSRF token may hold "b1" among its letters)."""
    return re.search(rf"(?<![A-Za-z0-9]){re.escape(name)}(?![A-Za-z0-9])", html) is not None


def _api(user, **params):
    client = Client()
    client.force_login(user)
    return client.get("/api/v1/billing/usage/", params).json()


def test_the_page_shows_the_api_figures_operators_every_org(history):
    op = history["operator"]
    assert _api(op, **OCTOBER)["results"] == []  # no support access: no tenant's instance rows
    assert _page(op, **OCTOBER).context["rows"] == []
    op = _supported(op)
    response = _page(op, **OCTOBER)
    assert response.status_code == 200
    api = _api(op, **OCTOBER)
    assert {r["instance"]["name"] for r in api["results"]} == {"a1", "a2", "b1"}
    page = response.context["rows"]
    assert [(r["instance"]["name"], r["cost"], r["billable_hours"]) for r in page] == [
        (r["instance"]["name"], r["cost"], r["billable_hours"]) for r in api["results"]
    ]
    assert response.context["totals"] == api["totals"]
    html = response.content.decode()
    for row in api["results"]:
        assert row["cost"] in html and row["billable_hours"] in html
        assert _names(html, row["instance"]["name"])
    assert "/api/v1/billing/usage/?start=2026-10-01&amp;end=2026-10-31&amp;format=csv" in html
    assert "2.50 USD per hour, on demand" in html and "reserved, 1.20 USD per hour" in html


def test_an_org_admin_sees_only_their_org_and_cannot_ask_for_another(history):
    admin_a, b_org = history["a"]["admin"], Meter.objects.filter(name="b1").get().org
    response = _page(admin_a, **OCTOBER)
    assert {r["instance"]["name"] for r in response.context["rows"]} == {"a1", "a2"}
    assert not _names(response.content.decode(), "b1") and "Dashb" not in response.content.decode()
    forged = _page(admin_a, org=str(b_org.pk), **OCTOBER)
    assert forged.status_code == 400 and forged.context["errors"] == {"org": "No such organization."}
    assert not _names(forged.content.decode(), "b1")


def test_members_without_an_org_to_administer_are_refused(history):
    assert _page(history["a"]["owner"], **OCTOBER).status_code in (302, 403)


def test_bad_input_is_a_form_error_not_a_500(history):
    op = history["operator"]
    for params in (
        {"start": "2026-13-01"},
        {"end": "\u0662\u0660\u0662\u0666-10-01"},
        {"start": "2026-10-05", "end": "2026-10-01"},
        {"kind": "gpu"},
        {"project": "x"},
    ):
        response = _page(op, **params)
        assert response.status_code == 400, params
        assert response.context["errors"], params


def test_pages_follow_the_meter_ids(history):
    op = _supported(history["operator"])
    first = _page(op, **OCTOBER)
    assert first.context["next_url"] == ""  # three rows: one page of 100
    client = Client()
    client.force_login(op)
    second = client.get(URL, {**OCTOBER, "after": str(Meter.objects.order_by("pk").first().pk)})
    assert [r["meter"] for r in second.context["rows"]] == list(
        Meter.objects.order_by("pk").values_list("pk", flat=True)[1:]
    )
    assert second.context["totals"] is None and second.context["first_url"]


def test_the_workspace_cost_page_lists_its_instances_with_the_api_figures(history):
    owner, project = history["a"]["owner"], Meter.objects.get(name="a1").project
    client = Client()
    client.force_login(owner)
    response = client.get(f"/w/{project.pk}/costs/", OCTOBER)
    assert response.status_code == 200
    api = _api(owner, project=str(project.pk), **OCTOBER)
    assert [(r["instance"]["name"], r["cost"]) for r in response.context["usage_rows"]] == [
        (r["instance"]["name"], r["cost"]) for r in api["results"]
    ]
    html = response.content.decode()
    assert not _names(html, "b1") and f"/api/v1/billing/usage/?project={project.pk}" in html


def test_the_operators_organization_filter_lists_the_orgs_and_keeps_the_chosen_one(history):
    """The options are written in Python (a thousand orgs made the template's loop the page's cost):
    the same choices, the chosen one selected, names escaped."""
    from tenancy.models import Organization

    op = _supported(history["operator"])
    org = Organization.objects.get(pk=Meter.objects.order_by("org_id").values_list("org_id", flat=True)[0])
    Organization.objects.filter(pk=org.pk).update(display_name="<b>Acme</b> & co")
    html = _page(op, org=str(org.pk), **OCTOBER).content.decode()
    options = re.findall(r'<option value="(\d+)"( selected)?>([^<]*)</option>', html)
    assert {int(pk) for pk, _, _ in options} == set(Organization.objects.values_list("pk", flat=True))
    chosen = [(pk, label) for pk, selected, label in options if selected]
    assert chosen == [(str(org.pk), "&lt;b&gt;Acme&lt;/b&gt; &amp; co")]
    assert "<b>Acme</b>" not in html
