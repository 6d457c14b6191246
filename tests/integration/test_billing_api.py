"""The billing API (GET /api/v1/billing/usage/): rows, totals, keyset pages, closed periods, CSV, bad
input, the schema and the billing:read token scope."""

import csv
import datetime as dt
import io

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from paas.models import TokenScope
from paas.services import api_token_create
from tenancy.models import Organization, Project
from tests.support.billing import frozen_at, launch_at, move, priced_setup
from tests.support.support import grant_support

URL = "/api/v1/billing/usage/"
NOV = {"start": "2026-11-01", "end": "2026-11-30"}  # the end date is inclusive: [Nov 1, Dec 1)
OCT = {"start": "2026-10-01T00:00:00Z", "end": "2026-11-01T00:00:00Z"}


def at(day: int, hour: int = 0, minute: int = 0, second: int = 0, month: int = 11) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, minute, second, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def _open_november():
    """These tests read November 2026 as the open month (a running instance still accrues; the walk's
    totals come with its first page): the clock stands on its last day, ticking, whatever today is."""
    with time_machine.travel(dt.datetime(2026, 11, 30, 12, tzinfo=dt.UTC), tick=True):
        yield


def csv_rows(response) -> list[dict]:
    body = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(body)))


@pytest.fixture
def billed(db):
    """Two orgs: 'acme' on demand at $2.5/h ($0.1/h stopped), 'zeta' reserved at $730/month."""
    operator, acme_admin, acme_lab, acme_owner, acme_profile, acme_cluster = priced_setup("acme")
    _, zeta_admin, zeta_lab, zeta_owner, zeta_profile, _ = priced_setup(
        "zeta", operator=operator, amount="730", period="month", billing_model="reserved"
    )
    # acme/dev: launched Oct 31 23:00, running from 23:00:10, stopped Nov 1 02:00, deleted Nov 1 03:00
    dev = launch_at(
        owner=acme_owner, project=acme_lab, profile=acme_profile, name="dev", at=at(31, 23, month=10)
    )
    move(dev, "provisioning", at=at(31, 23, 0, 10, month=10))
    move(dev, "ready", at=at(31, 23, 1, month=10))
    move(dev, "provisioning", "stopped", at=at(1, 2))  # stopping, then stopped
    move(dev, "deleting", at=at(1, 3))
    move(dev, "deleted", at=at(1, 3, 0, 30))
    # acme/train: launched Nov 2 00:00, running from 00:00:05, still running
    train = launch_at(owner=acme_owner, project=acme_lab, profile=acme_profile, name="train", at=at(2))
    move(train, "provisioning", "ready", at=at(2, 0, 0, 5))
    # zeta/res: reserved, launched Nov 10 12:00, stopped Nov 11, still there
    res = launch_at(owner=zeta_owner, project=zeta_lab, profile=zeta_profile, name="res", at=at(10, 12))
    move(res, "provisioning", "ready", at=at(10, 12, 0, 20))
    move(res, "provisioning", "stopped", at=at(11))
    # The operator reads both orgs' rows through a read support access (without one: totals only, see
    # test_operators_see_every_orgs_totals_and_rows_only_with_a_support_access).
    for org in (acme_lab.org, zeta_lab.org):
        grant_support(operator=operator, org=org, level="read")
    return {
        "operator": operator,
        "acme_admin": acme_admin,
        "zeta_admin": zeta_admin,
        "acme": acme_lab.org,
        "zeta": zeta_lab.org,
        "acme_lab": acme_lab,
        "zeta_lab": zeta_lab,
        "acme_owner": acme_owner,
        "acme_profile": acme_profile,
        "acme_cluster": acme_cluster,
        "instances": {"dev": dev, "train": train, "res": res},
    }


def test_a_closed_month_rows_and_totals(api, billed):
    body = api.as_user(billed["operator"]).get(URL, NOV).json()
    period = body["period"]
    assert (period["start"], period["end"], period["closed"]) == (
        "2026-11-01T00:00:00Z",
        "2026-12-01T00:00:00Z",
        False,
    )
    assert dt.datetime.fromisoformat(period["as_of"].replace("Z", "+00:00")) <= dt.datetime.now(dt.UTC)
    rows = {r["instance"]["name"]: r for r in body["results"]}
    dev = rows["dev"]
    assert dev["instance"]["kind"] == "compute" and dev["instance"]["id"] == billed["instances"]["dev"].pk
    assert dev["org"] == {"id": billed["acme"].pk, "name": "Acme"}
    assert dev["profile"]["name"] == "one-gpu" and dev["cluster"]["name"].endswith("-c")
    assert dev["price"] == {
        "currency": "USD",
        "amount": "2.5000",
        "unit": "hour",
        "billing_model": "on_demand",
        "stopped_amount": "0.1000",
    }
    assert (dev["running_seconds"], dev["stopped_seconds"], dev["deleting_seconds"]) == (7200, 3600, 30)
    assert dev["existing_seconds"] == 3 * 3600 + 30 and dev["billable_seconds"] == 7200
    assert dev["billable_hours"] == "2.000000"
    assert dev["cost"] == "5.100833"  # 2 h at 2.5 + 1 h 30 s at 0.1 = 5 + 0.1008333…
    assert dev["instance"]["deleted_at"] == "2026-11-01T03:00:30Z"

    # October: the same instance, its first hour (running from 23:00:10)
    october = api.get(URL, OCT).json()
    [dev_oct] = october["results"]
    assert dev_oct["running_seconds"] == 3600 - 10 and dev_oct["cost"] == "2.493056"
    assert october["period"]["closed"] is True
    assert october["totals"][0]["on_demand"]["running_seconds"] == 3590

    res = rows["res"]  # reserved: $730 a month = $1 an hour for its whole existence
    assert res["price"]["billing_model"] == "reserved" and res["running_seconds"] == 11 * 3600 + 3600 - 20
    until_now = int((dt.datetime.now(dt.UTC).replace(microsecond=0) - at(10, 12)).total_seconds())
    assert (
        abs(res["existing_seconds"] - until_now) <= 5 and res["billable_seconds"] == res["existing_seconds"]
    )
    [usd] = body["totals"]
    assert usd["currency"] == "USD"
    assert usd["reserved"]["instances"] == 1 and usd["on_demand"]["instances"] == 2
    assert usd["on_demand"]["running_seconds"] == 7200 + rows["train"]["running_seconds"]


def test_keyset_pages_constant_queries_and_concurrent_launches(api, billed):
    client = api.as_user(billed["operator"])
    for index in range(6):
        extra = launch_at(
            owner=billed["acme_owner"],
            project=billed["acme_lab"],
            profile=billed["acme_profile"],
            name=f"extra-{index}",
            at=at(3, index),
        )
        move(extra, "provisioning", at=at(3, index, 0, 1))
    counts = []
    seen = []
    params = {**NOV, "page_size": 2}
    next_url = None
    launched_meanwhile = False
    while True:
        with CaptureQueriesContext(connection) as queries:
            response = client.get(next_url) if next_url else client.get(URL, params)
        assert response.status_code == 200, response.content
        counts.append(len(queries))
        body = response.json()
        seen += [r["meter"] for r in body["results"]]
        if not launched_meanwhile:  # a launch between two pages neither shifts nor repeats a row
            assert body["totals"] is not None and "as_of=" in body["next"]
            late = launch_at(
                owner=billed["acme_owner"],
                project=billed["acme_lab"],
                profile=billed["acme_profile"],
                name="late",
                at=dt.datetime.fromisoformat(body["period"]["as_of"].replace("Z", "+00:00")),
            )
            move(late, "provisioning")
            launched_meanwhile = True
        else:
            assert body["totals"] is None  # the totals come with the first page
        next_url = body["next"]
        if not next_url:
            break
    # The walk is one snapshot (as_of): the instance launched during it is in the next walk.
    assert len(seen) == len(set(seen)) == 3 + 6 and seen == sorted(seen)
    assert len(set(counts[1:])) == 1 and counts[0] == counts[1] + 1, counts  # + the totals on the first
    with CaptureQueriesContext(connection) as big:
        assert client.get(URL, {**NOV, "page_size": 500}).status_code == 200
    assert len(big) == counts[0]
    with frozen_at(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2)):  # a later walk has it
        assert len(client.get(URL, {**NOV, "page_size": 500}).json()["results"]) == 3 + 6 + 1


def _both(client, params):
    json_body = client.get(URL, params).content
    csv_body = b"".join(client.get(URL, {**params, "format": "csv"}).streaming_content)
    return json_body, csv_body


def test_a_closed_period_never_changes(api, billed):
    client = api.as_user(billed["operator"])
    before = _both(client, OCT)
    before_filtered = _both(client, {**OCT, "org": billed["acme"].pk, "page_size": 1})
    # Later: more intervals of the October instance's successors, more launches, a new org
    train = billed["instances"]["train"]
    move(train, "provisioning", at=at(20))
    move(train, "stopped", at=at(20, 1))
    launch_at(
        owner=billed["acme_owner"],
        project=billed["acme_lab"],
        profile=billed["acme_profile"],
        name="n",
        at=at(21),
    )
    priced_setup("later", operator=billed["operator"])
    assert _both(client, OCT) == before
    assert _both(client, {**OCT, "org": billed["acme"].pk, "page_size": 1}) == before_filtered


def test_filters(api, billed):
    client = api.as_user(billed["operator"])

    def names(**params):
        response = client.get(URL, {**NOV, **params})
        assert response.status_code == 200, response.content
        return sorted(r["instance"]["name"] for r in response.json()["results"])

    assert names() == ["dev", "res", "train"]
    assert names(org=billed["zeta"].pk) == ["res"]
    assert names(project=billed["acme_lab"].pk) == ["dev", "train"]
    placed = {
        name: type(i).objects.select_related("cluster").get(pk=i.pk).cluster.name
        for name, i in billed["instances"].items()
    }
    for cluster in set(placed.values()):
        assert names(cluster=cluster) == sorted(n for n, c in placed.items() if c == cluster)
    assert names(billing_model="reserved") == ["res"]
    assert names(kind="service") == []
    assert names(profile="one-gpu", org=billed["acme"].pk) == ["dev", "train"]
    assert names(profile_id=billed["acme_profile"].pk, kind="compute") == ["dev", "train"]
    body = client.get(URL, {**NOV, "org": billed["zeta"].pk}).json()
    assert body["filters"] == {"org": billed["zeta"].pk}
    assert [t["on_demand"]["instances"] for t in body["totals"]] == [0]


BAD_INPUT = [
    ({"start": "2026-13-01"}, "start"),
    ({"start": "yesterday"}, "start"),
    ({"end": "2026-02-30"}, "end"),
    ({"start": "2026-11-10", "end": "2026-11-01"}, "end"),
    ({"start": "2020-01-01", "end": "2026-01-01"}, "end"),
    ({"start": "\u0662\u0660\u0662\u0666-\u0661\u0661-\u0660\u0661"}, "start"),  # Arabic-Indic digits
    ({"start": "\uff12\uff10\uff12\uff16-11-01"}, "start"),  # fullwidth
    ({"end": "9999-12-31"}, "end"),
    ({"start": "0001-01-01T00:00:00+05:00"}, "start"),
    ({"start": "2026-11-01\x00"}, "start"),
    ({"org": "\u0663"}, "org"),
    ({"org": "99999999"}, "org"),
    ({"org": "-1"}, "org"),
    ({"project": "1\x00"}, "project"),
    ({"project": "99999999"}, "project"),
    ({"cluster": "nope"}, "cluster"),
    ({"cluster": "a\x00b"}, "cluster"),
    ({"profile": "x" * 201}, "profile"),
    ({"kind": "gpu"}, "kind"),
    ({"billing_model": "spot"}, "billing_model"),
    ({"page_size": "0"}, "page_size"),
    ({"page_size": "100000"}, "page_size"),
    ({"page_size": "\uff11\uff10"}, "page_size"),
    ({"after": "abc"}, "after"),
    ({"as_of": "2999-01-01T00:00:00Z"}, "as_of"),
    ({"as_of": "2026-11-01T00:00:00"}, "as_of"),
    ({"as_of": "2026-10-01T00:00:00Z", "start": "2026-11-01"}, "as_of"),
    ({"as_of": "soon"}, "as_of"),
    ({"after": "9" * 30}, "after"),
]


def test_bad_input_is_a_400_naming_the_field(api, billed):
    client = api.as_user(billed["operator"])
    for params, field in BAD_INPUT:
        for extra in ({}, {"format": "csv"}):
            response = client.get(URL, {**params, **extra})
            assert response.status_code == 400, (params, response.content)
            assert response["Content-Type"].startswith("application/json")
            assert field in response.json()["error"]["fields"], (params, response.json())


def test_csv_has_the_json_figures_and_neutralises_formulas(api, billed):
    Organization.objects.filter(pk=billed["acme"].pk).update(display_name="=HYPERLINK(1)")
    client = api.as_user(billed["operator"])
    # Meters copy the org's name at the launch: a new one gets the hostile name (the workspace read
    # again, as the next request would: the fixture's object still holds the org it read before).
    evil = launch_at(
        owner=billed["acme_owner"],
        project=Project.objects.select_related("org").get(pk=billed["acme_lab"].pk),
        profile=billed["acme_profile"],
        name="e",
        at=at(5),
    )
    move(evil, "provisioning", at=at(5, 0, 0, 1))
    move(evil, "stopped", at=at(5, 1))
    # 'train' still runs and accrues between the two requests: the clock stands still while the JSON
    # and the CSV are read (the full run once crossed a second between them).
    with time_machine.travel(timezone.now(), tick=False):
        json_rows = client.get(URL, {**NOV, "page_size": 500}).json()["results"]
        response = client.get(URL, NOV, HTTP_ACCEPT="text/csv")
        rows = csv_rows(response)
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    assert len(rows) == len(json_rows) == 4
    for row, expected in zip(rows, json_rows, strict=True):
        assert int(row["meter"]) == expected["meter"]
        for name in ("running_seconds", "stopped_seconds", "deleting_seconds", "existing_seconds"):
            assert int(row[name]) == expected[name]
        assert (row["cost"], row["billable_hours"]) == (expected["cost"], expected["billable_hours"])
        assert (row["currency"], row["billing_model"]) == (
            expected["price"]["currency"],
            expected["price"]["billing_model"],
        )
    [hostile] = [r for r in rows if r["instance"] == "e"]
    assert hostile["org"] == "'=HYPERLINK(1)"
    assert hostile["running_seconds"] == "3599"


def test_schema_documents_the_usage_api(api, billed):
    schema = api.as_user(billed["operator"]).get("/api/schema/", {"format": "json"})
    assert schema.status_code == 200
    operation = schema.json()["paths"]["/api/v1/billing/usage/"]["get"]
    names = {p["name"] for p in operation["parameters"]}
    assert {"start", "end", "org", "project", "profile", "cluster", "page_size", "after", "format"} <= names
    assert {"application/json", "text/csv"} <= set(operation["responses"]["200"]["content"])


def _token(user, scope):
    return api_token_create(actor=user, name=f"t-{scope}", expires_in_days=1, scope=scope)[1]


def test_billing_read_tokens(billed):
    from rest_framework.test import APIClient

    def client(user):
        c = APIClient()
        c.credentials(HTTP_AUTHORIZATION=f"Bearer {_token(user, TokenScope.BILLING_READ)}")
        return c

    operator = client(billed["operator"])
    all_rows = operator.get(URL, NOV)
    assert all_rows.status_code == 200
    assert {r["org"]["name"] for r in all_rows.json()["results"]} == {"Acme", "Zeta"}
    csv_response = operator.get(URL, {**NOV, "format": "csv"})
    assert csv_response.status_code == 200 and len(csv_rows(csv_response)) == 3

    admin = client(billed["acme_admin"])
    mine = admin.get(URL, NOV).json()
    assert {r["org"]["name"] for r in mine["results"]} == {"Acme"}
    assert admin.get(URL, {**NOV, "org": billed["zeta"].pk}).status_code == 400

    for path in ("/api/v1/instances/", "/api/v1/tokens/", "/api/v1/orgs/", "/api/schema/"):
        refused = admin.get(path)
        assert refused.status_code == 403, (path, refused.status_code)
        assert b"billing:read" in refused.content
    for method in ("post", "put", "patch", "delete"):
        refused = getattr(admin, method)(URL, {})
        assert refused.status_code == 403 and "billing:read" in refused.json()["error"]["message"]

    # A read-only token reads the billing API too; a read-write one as well.
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Bearer {_token(billed['acme_admin'], TokenScope.READ_ONLY)}")
    assert other.get(URL, NOV).status_code == 200


def test_tokens_are_created_with_the_billing_scope_through_the_api_and_the_studio(client, billed):
    client.force_login(billed["acme_admin"])
    made = client.post(
        "/api/v1/tokens/", {"name": "billing", "scope": "billing:read"}, content_type="application/json"
    )
    assert made.status_code == 201 and made.json()["scope"] == "billing:read"
    page = client.get("/studio/paas/apitoken/add/")
    assert page.status_code == 200 and b'value="billing:read"' in page.content
    created = client.post(
        "/studio/paas/apitoken/add/", {"name": "from-studio", "scope": "billing:read", "expires_in_days": 5}
    )
    assert created.status_code == 302
    assert billed["acme_admin"].api_tokens.get(name="from-studio").scope == "billing:read"


def test_csv_streams_through_the_asgi_server(api, billed, kube_proxy):
    """Served by the real ASGI server (as `make run` and production serve it), the CSV streams from an
    asynchronous iterator (a synchronous one would be buffered whole) and holds the same rows."""
    import urllib3

    _, token = api_token_create(actor=billed["operator"], name="csv", scope=TokenScope.BILLING_READ)
    expected = csv_rows(api.as_user(billed["operator"]).get(URL, NOV, HTTP_ACCEPT="text/csv"))
    response = urllib3.request(
        "GET",
        f"{kube_proxy.url}{URL}?start={NOV['start']}&end={NOV['end']}",
        headers={"Authorization": f"Bearer {token}", "Accept": "text/csv"},
        preload_content=False,
    )
    assert response.status == 200 and response.headers["Content-Type"].startswith("text/csv")
    assert response.headers.get("Transfer-Encoding") == "chunked"  # streamed, no Content-Length
    body = b"".join(response.stream(1024)).decode()
    assert list(csv.DictReader(io.StringIO(body))) == expected


def test_operators_see_every_orgs_totals_and_rows_only_with_a_support_access(api, billed):
    """The provider bills orgs: an operator's totals count every org; its instances (rows), and any
    total finer than an org's (by workspace or profile), only where a support access opens the org."""
    # November is the open period: a running instance accrues between two requests a second apart, so
    # the clock stands still while the totals are compared (the full run once crossed a second).
    with time_machine.travel(timezone.now(), tick=False):
        from tenancy.support_models import SupportAccess

        operator = billed["operator"]
        client = api.as_user(operator)
        with_support = client.get(URL, NOV).json()
        SupportAccess.objects.filter(user=operator).delete()
        client = api.as_user(operator)
        body = client.get(URL, NOV).json()
        assert body["results"] == [] and body["totals"] == with_support["totals"]
        by_org = client.get(URL, {**NOV, "org": billed["zeta"].pk}).json()
        assert by_org["results"] == [] and by_org["totals"][0]["reserved"]["instances"] == 1
        assert by_org["totals"][0]["on_demand"]["instances"] == 0
        finer = client.get(URL, {**NOV, "profile": "one-gpu"}).json()
        assert finer["results"] == [] and finer["totals"] == []
        assert client.get(URL, {**NOV, "project": billed["acme_lab"].pk}).status_code == 400  # unseen

        grant_support(operator=operator, org=billed["acme"], level="read")
        client = api.as_user(operator)
        body = client.get(URL, NOV).json()
        assert sorted(r["instance"]["name"] for r in body["results"]) == ["dev", "train"]
        assert body["totals"] == with_support["totals"]  # every org's, still
