"""Budgets through every door (API, studio, portal): who sees and sets which budgets, cross-tenant
attempts (404), a workspace member cannot set budgets, bad input gives field errors, the schema, the
landing-page banner."""

import datetime as dt

import pytest

from billing import budgets
from billing.models import Budget, BudgetAlert
from paas.models import AuditEvent
from tests.support.billing import frozen_at, launch_at, move, priced_setup
from tests.support.support import grant_support

URL = "/api/v1/billing/budgets/"
NOV = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


@pytest.fixture
def a_budgets(world):
    """Tenant A: an org-wide budget, one on its 'team' workspace and one on its 'spare' workspace."""
    admin = world.a.users["org_admin"]
    return {
        "org": budgets.budget_set(actor=admin, org=world.a.org, amount="1000", currency="USD"),
        "team": budgets.budget_set(actor=admin, org=world.a.org, project=world.a.project, amount="300"),
        "spare": budgets.budget_set(actor=admin, org=world.a.org, project=world.a.spare_project, amount="50"),
    }


def ids(answer) -> set[int]:
    assert answer.status_code == 200, answer.content
    return {row["id"] for row in answer.json()["results"]}


# --- who sees what --------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_who_sees_which_budgets(world, api, a_budgets):
    every = {b.pk for b in a_budgets.values()}
    # The operator: a budget is the org's own rule, seen through a support access only (and then
    # that org's alone), set only with an administrative one.
    assert ids(api.as_user(world.operator).get(URL)) == set()
    assert api.as_user(world.operator).get(f"{URL}{a_budgets['org'].pk}/").status_code == 404
    grant_support(operator=world.operator, org=world.a.org, level="read")
    assert ids(api.as_user(world.operator).get(URL)) == every
    refused = api.as_user(world.operator).patch(f"{URL}{a_budgets['org'].pk}/", {"amount": "1"})
    assert refused.status_code == 403
    assert ids(api.as_user(world.a.users["org_admin"]).get(URL)) == every
    # workspace members: their workspace's budget and the org's, not another workspace's
    for role in ("workspace_admin", "collaborator_rw", "collaborator_ro"):
        assert ids(api.as_user(world.a.users[role]).get(URL)) == {
            a_budgets["org"].pk,
            a_budgets["team"].pk,
        }, role
    # PaaS admins: the org's budget only (it applies to their personal workspaces in the org)
    for role in ("paas_admin_org", "paas_admin_project"):
        assert ids(api.as_user(world.a.users[role]).get(URL)) == {a_budgets["org"].pk}, role
    assert ids(api.as_user(world.outsider).get(URL)) == set()
    # another org's admin and members: nothing of A's, every door a 404
    for user in (world.b.users["org_admin"], world.b.users["workspace_admin"]):
        client = api.as_user(user)
        assert ids(client.get(URL)) == set()
        assert ids(client.get(URL, {"org": world.a.org.pk})) == set()
        for budget in a_budgets.values():
            assert client.get(f"{URL}{budget.pk}/").status_code == 404
            assert client.patch(f"{URL}{budget.pk}/", {"amount": "1"}).status_code == 404
            assert client.delete(f"{URL}{budget.pk}/").status_code == 404
        answer = client.post(URL, {"org": world.a.org.pk, "amount": "10"})
        assert answer.status_code == 404, answer.content
    assert Budget.objects.get(pk=a_budgets["org"].pk).amount == 1000
    assert Budget.objects.filter(org=world.a.org).count() == 3


@pytest.mark.django_db
def test_a_list_row_has_its_status(world, api, a_budgets):
    answer = api.as_user(world.a.users["org_admin"]).get(URL, {"project": world.a.project.pk})
    [row] = answer.json()["results"]
    assert row["amount"] == "300.00" and row["currency"] == "USD" and row["project_name"] == "team"
    status = row["status"]
    assert status["spend"] == "0.000000" and status["percent"] == "0.00" and status["projected"] == "0.000000"
    assert status["thresholds_crossed"] == [] and status["alerts"] == [] and status["exceeded"] is False
    assert api.as_user(world.a.users["org_admin"]).get(URL, {"org": "x"}).status_code == 400


# --- writes ---------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_org_admin_sets_changes_and_deletes_with_audit(world, api):
    client = api.as_user(world.a.users["org_admin"])
    created = client.post(URL, {"org": world.a.org.pk, "amount": "500", "currency": "eur", "hard_stop": True})
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["amount"] == "500.00" and body["currency"] == "EUR" and body["hard_stop"] is True
    again = client.post(URL, {"org": world.a.org.pk, "amount": "600.50"})  # set again: changed
    assert (
        again.status_code == 200 and again.json()["id"] == body["id"] and again.json()["amount"] == "600.50"
    )
    patched = client.patch(f"{URL}{body['id']}/", {"hard_stop": True})
    assert patched.status_code == 200 and patched.json()["hard_stop"] is True
    assert patched.json()["amount"] == "600.50"
    assert client.delete(f"{URL}{body['id']}/").status_code == 204
    assert not Budget.objects.filter(pk=body["id"]).exists()
    actions = list(
        AuditEvent.objects.filter(target_id=str(body["id"]), action__startswith="budget.")
        .order_by("pk")
        .values_list("action", flat=True)
    )
    assert actions == ["budget.set", "budget.set", "budget.set", "budget.delete"]


@pytest.mark.django_db
def test_a_workspace_member_cannot_set_budgets(world, api, a_budgets):
    for role in ("workspace_admin", "collaborator_rw", "collaborator_ro", "paas_admin_org"):
        client = api.as_user(world.a.users[role])
        answer = client.post(URL, {"org": world.a.org.pk, "project": world.a.project.pk, "amount": "1"})
        assert answer.status_code == 403, (role, answer.content)
    client = api.as_user(world.a.users["workspace_admin"])
    assert client.patch(f"{URL}{a_budgets['team'].pk}/", {"amount": "1"}).status_code == 403
    assert client.delete(f"{URL}{a_budgets['org'].pk}/").status_code == 403
    assert Budget.objects.get(pk=a_budgets["team"].pk).amount == 300


BAD = [
    ({"amount": "0"}, "amount", "More than zero."),
    ({"amount": "-1"}, "amount", "More than zero."),
    ({"amount": "NaN"}, "amount", "A number, e.g. 500.00."),
    ({"amount": "Infinity"}, "amount", "A number, e.g. 500.00."),
    ({"amount": "1e20"}, "amount", "Less than 1,000,000,000,000."),
    ({"amount": "99999999999999999999999"}, "amount", "Less than 1,000,000,000,000."),
    ({"amount": "12.345"}, "amount", "At most 2 decimal places."),
    ({"amount": "ten"}, "amount", "A number, e.g. 500.00."),
    ({"amount": "10", "currency": "usd1"}, "currency", "A three-letter ISO 4217 code, e.g. USD."),
    ({"amount": "10", "currency": "$"}, "currency", "A three-letter ISO 4217 code, e.g. USD."),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("data", "field", "message"), BAD)
def test_bad_input_gives_field_errors(world, api, data, field, message):
    answer = api.as_user(world.a.users["org_admin"]).post(URL, {"org": world.a.org.pk, **data})
    assert answer.status_code == 400, answer.content
    assert answer.json()["error"]["fields"][field] == [message]
    assert not Budget.objects.filter(org=world.a.org).exists()


@pytest.mark.django_db
def test_a_workspace_of_another_org_is_a_field_error(world, api, a_budgets):
    client = api.as_user(world.a.users["org_admin"])
    answer = client.post(URL, {"org": world.a.org.pk, "project": world.b.project.pk, "amount": "10"})
    assert answer.status_code == 400
    assert answer.json()["error"]["fields"]["project"] == ["A workspace of this organization."]
    answer = client.patch(f"{URL}{a_budgets['org'].pk}/", {"amount": "0"})
    assert answer.status_code == 400 and answer.json()["error"]["fields"]["amount"] == ["More than zero."]
    # the operator too (an administrative support access to both orgs): a workspace must be of the
    # budget's org
    grant_support(operator=world.operator, org=world.a.org, level="admin")
    grant_support(operator=world.operator, org=world.b.org, level="admin")
    answer = api.as_user(world.operator).post(
        URL, {"org": world.b.org.pk, "project": world.a.project.pk, "amount": "10"}
    )
    assert answer.status_code == 400 and "project" in answer.json()["error"]["fields"]


@pytest.mark.django_db
def test_budgets_are_in_the_schema(world, api):
    schema = api.as_user(world.operator).get("/api/schema/", {"format": "json"}).json()
    assert "/api/v1/billing/budgets/" in schema["paths"]
    assert "/api/v1/billing/budgets/{id}/" in schema["paths"]
    assert {"post", "get"} <= set(schema["paths"]["/api/v1/billing/budgets/"])


# --- the studio -----------------------------------------------------------------------------------------


STUDIO = "/studio/billing/budget/"


@pytest.mark.django_db
def test_studio_lists_and_sets_budgets_for_org_admins(world, client, a_budgets):
    client.force_login(world.a.users["org_admin"])
    page = client.get(STUDIO)
    assert page.status_code == 200
    text = page.content.decode()
    assert "1,000.00 USD" in text and "300.00 USD" in text and "50.00 USD" in text
    # a bad amount and a workspace of another org: form errors, nothing written
    form = {"org": world.a.org.pk, "project": world.b.project.pk, "amount": "0", "currency": "usd1"}
    page = client.post(f"{STUDIO}add/", form)
    assert page.status_code == 200
    text = page.content.decode()
    assert "More than zero." in text and "A three-letter ISO 4217 code" in text
    assert "Select a valid choice" in text  # B's workspace is not offered to A's admin
    page = client.post(f"{STUDIO}{a_budgets['spare'].pk}/change/", {"amount": "75.5", "currency": "USD"})
    assert page.status_code == 302
    assert Budget.objects.get(pk=a_budgets["spare"].pk).amount == 75.5
    page = client.post(f"{STUDIO}{a_budgets['spare'].pk}/delete/", {"post": "yes"})
    assert page.status_code == 302 and not Budget.objects.filter(pk=a_budgets["spare"].pk).exists()


@pytest.mark.django_db
def test_studio_hides_other_orgs_budgets(world, client, a_budgets):
    client.force_login(world.b.users["org_admin"])
    assert "1,000.00 USD" not in client.get(STUDIO).content.decode()
    for budget in a_budgets.values():
        page = client.get(f"{STUDIO}{budget.pk}/change/")
        assert page.status_code in (302, 404)  # the admin's "does not exist" redirect
        client.post(f"{STUDIO}{budget.pk}/change/", {"amount": "1", "currency": "USD"})
        client.post(f"{STUDIO}{budget.pk}/delete/", {"post": "yes"})
    assert Budget.objects.get(pk=a_budgets["org"].pk).amount == 1000
    assert Budget.objects.filter(org=world.a.org).count() == 3
    page = client.post(f"{STUDIO}add/", {"org": world.a.org.pk, "amount": "5", "currency": "USD"})
    assert "Select a valid choice" in page.content.decode()
    # a PaaS admin (studio, no org administration) has no budgets page
    client.force_login(world.a.users["paas_admin_org"])
    assert client.get(STUDIO).status_code == 403


# --- the portal -----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_landing_page_banner_for_members_after_an_alert(django_capture_on_commit_callbacks, client):
    operator, admin, project, owner, profile, _cluster = priced_setup("land")
    _other_op, other_admin, other_project, *_ = priced_setup("land2", operator=operator)
    budget = budgets.budget_set(actor=admin, org=project.org, amount="10")
    instance = launch_at(owner=owner, project=project, profile=profile, name="dev", at=NOV)
    move(instance, "provisioning", at=NOV)
    client.force_login(owner)
    with frozen_at(NOV + 3 * 3600 * dt.timedelta(seconds=1)):
        page = client.get(f"/w/{project.pk}/").content.decode()
        assert "Budget alert" not in page  # nothing raised yet; the status is shown
        assert "7.50" in page and "75.00% used" in page
        with django_capture_on_commit_callbacks(execute=True):
            assert budgets.budgets_check() == 2
        page = client.get(f"/w/{project.pk}/").content.decode()
    assert "Budget alert:" in page and 'data-threshold="75"' in page
    assert "has used 75% of its November 2026 budget of 10.00 USD" in page
    assert "projected month-end spend 1800.00 USD" in page and "75.00% used" in page
    assert BudgetAlert.objects.filter(budget=budget).count() == 2
    # another org's admin: not this workspace (404), and their own landing page shows no banner of A's
    client.force_login(other_admin)
    assert client.get(f"/w/{project.pk}/").status_code == 404
    assert "Budget alert" not in client.get(f"/w/{other_project.pk}/").content.decode()
