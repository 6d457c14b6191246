"""Chargeback dashboards (billing/dashboards.py): the API ``/api/v1/billing/costs/`` (JSON and CSV), the
studio dashboard and the portal's workspace cost page and spend card.

A generated history (launches, stops, restarts and deletes at chosen instants in October 2026, on
demand and reserved, in two orgs) is rolled up hour by hour; every figure the dashboards give for a
period (in every grouping and bucket) must equal ``billing.selectors.period_figures`` summed over the
same meters and period. Cross-tenant: an org admin and a workspace member never see another org's
figures through any door (API, CSV, studio page, portal page, spend card).
"""

import csv
import datetime as dt
import io
from decimal import Decimal

import pytest
from django.urls import reverse

from billing.costs import chargeback_cost
from billing.models import CostProfile, Meter, UsageRecord
from billing.selectors import period_figures
from instances.models import StandbyInstance
from tests.support.billing import NOVEMBER as NOV
from tests.support.billing import OCTOBER as OCT
from tests.support.billing import dashboard_history
from tests.support.billing import october as t
from tests.support.pools import make_standby
from tests.support.support import grant_support

UTC = dt.UTC
URL = "/api/v1/billing/costs/"


@pytest.fixture
def history(db):
    """The generated history; the operator reads both orgs' detail through read support accesses
    (without them: test_operators_see_every_orgs_totals_and_the_detail_only_with_a_support_access)."""
    made = dashboard_history()
    for side in ("a", "b"):
        grant_support(operator=made["operator"], org=made[side]["org"], level="read")
    return made


def expected(meters, start=OCT, end=NOV) -> dict:
    rows = period_figures(list(meters), start=start, end=end)
    return {
        "cost": sum((r["cost"] for r in rows), Decimal(0)).quantize(Decimal("0.000001")),
        "running_seconds": sum(r["running_seconds"] for r in rows),
        "gpu_seconds": sum(r["running_seconds"] * r["meter"].gpus for r in rows),
    }


def get(api, user, **params):
    return api.as_user(user).get(URL, {"start": "2026-10-01", "end": "2026-10-31", **params})


def csv_rows(response) -> list[dict]:
    body = b"".join(response.streaming_content) if response.streaming else response.content
    return list(csv.DictReader(io.StringIO(body.decode())))


@pytest.mark.django_db
def test_the_figures_equal_the_period_figures_in_every_grouping_and_bucket(history, api):
    op = history["operator"]
    everything = expected(Meter.objects.all())
    assert everything["cost"] > 0 and everything["running_seconds"] > 0
    for group_by in ("org", "project", "user", "profile", "cluster", "gpu_model"):
        for bucket in ("day", "month"):
            data = get(api, op, group_by=group_by, bucket=bucket).json()
            assert Decimal(data["totals"]["costs"]["USD"]) == everything["cost"], (group_by, bucket)
            assert data["totals"]["running_seconds"] == everything["running_seconds"]
            assert data["totals"]["gpu_seconds"] == everything["gpu_seconds"]
            by_groups = sum(Decimal(g["costs"].get("USD", "0")) for g in data["groups"])
            by_series = sum(Decimal(s["costs"].get("USD", "0")) for s in data["series"])
            assert by_groups == by_series == everything["cost"], (group_by, bucket)
            assert sum(s["running_seconds"] for s in data["series"]) == everything["running_seconds"]
    # per org, equal to each org's own meters
    data = get(api, op, group_by="org", bucket="month").json()
    for side in ("a", "b"):
        org = history[side]["org"]
        [group] = [g for g in data["groups"] if g["key"] == str(org.pk)]
        want = expected(Meter.objects.filter(org=org))
        assert Decimal(group["costs"]["USD"]) == want["cost"]
        assert group["running_seconds"] == want["running_seconds"]
    # a shorter period, hour by hour
    start, end = t(28, 0), t(30, 0)
    data = (
        api.as_user(op)
        .get(URL, {"start": "2026-10-28T00:00:00Z", "end": "2026-10-30T00:00:00Z", "bucket": "hour"})
        .json()
    )
    want = expected(Meter.objects.all(), start=start, end=end)
    assert Decimal(data["totals"]["costs"]["USD"]) == want["cost"]
    assert data["totals"]["running_seconds"] == want["running_seconds"]
    assert {s["bucket"] for s in data["series"]} <= {
        (start + dt.timedelta(hours=h)).isoformat().replace("+00:00", "Z") for h in range(48)
    }
    # one day's bucket equals that day's figures
    data = get(api, op, group_by="org", bucket="day").json()
    day = [s for s in data["series"] if s["bucket"] == "2026-10-28T00:00:00Z"]
    want = expected(Meter.objects.all(), start=t(28), end=t(29))
    assert sum(Decimal(s["costs"]["USD"]) for s in day) == want["cost"]
    assert sum(s["running_seconds"] for s in day) == want["running_seconds"]


@pytest.mark.django_db
def test_the_csv_totals_equal_the_period_figures(history, api):
    response = get(api, history["operator"], group_by="project", bucket="day", format="csv")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = csv_rows(response)
    everything = expected(Meter.objects.all())
    assert sum(Decimal(r["cost_USD"]) for r in rows) == everything["cost"]
    running = sum(Decimal(r["running_hours"]) for r in rows)
    assert abs(running - Decimal(everything["running_seconds"]) / 3600) < Decimal("0.00001") * len(rows)
    assert {r["utilisation"] for r in rows} <= {"not_configured", "no_gpu"}
    assert all(r["idle_gpu_hours"] == "not configured" for r in rows if r["utilisation"] == "not_configured")


@pytest.mark.django_db
def test_an_org_admin_never_sees_another_orgs_costs(history, api, client):
    a, b = history["a"], history["b"]
    mine = expected(Meter.objects.filter(org=a["org"]))
    for user in (a["admin"], a["owner"]):
        data = get(api, user, group_by="org", bucket="day").json()
        assert [g["key"] for g in data["groups"]] == [str(a["org"].pk)]
        assert Decimal(data["totals"]["costs"]["USD"]) == mine["cost"]
        assert data["standby"] is None  # the provider's figures are the operators'
        # every filter on the other org's objects gives nothing
        for params in (
            {"org": b["org"].pk},
            {"project": b["project"].pk},
            {"cluster": b["cluster"].pk},
        ):
            data = get(api, user, **params).json()
            assert data["groups"] == [] and data["series"] == [] and data["totals"]["costs"] == {}, params
        body = get(api, user, group_by="project", format="csv").content.decode()
        assert "dashb" not in body.lower() and "dasha" in body.lower(), body
        assert get(api, user, org=b["org"].pk, format="csv").content.decode().count("\n") == 1  # header only

    # the studio dashboard of A's admin
    client.force_login(a["admin"])
    page = client.get(
        reverse("admin:billing_usagerecord_changelist"), {"start": "2026-10-01", "end": "2026-10-31"}
    )
    assert page.status_code == 200
    html = page.content.decode()
    assert (
        "Dasha/lab" in html and "Dashb" not in html
    )  # the org's display names (clusters are the platform's)
    assert "standby" not in html.lower()
    page = client.get(
        reverse("admin:billing_usagerecord_changelist"), {"org": b["org"].pk, "start": "2026-10-01"}
    )
    assert "Dashb" not in page.content.decode()
    # the portal's cost page and landing page of the other org's workspace: not found
    assert client.get(reverse("billing-workspace-costs", args=[b["project"].pk])).status_code == 404
    assert client.get(reverse("instances:workspace", args=[b["project"].pk])).status_code == 404
    # a filter slipped into the portal page's address does not widen it
    page = client.get(
        reverse("billing-workspace-costs", args=[a["project"].pk]),
        {"start": "2026-10-01", "end": "2026-10-31", "org": b["org"].pk, "project": b["project"].pk},
    )
    assert page.status_code == 200 and "Dashb" not in page.content.decode()
    # B's workspace member: A's workspace is not theirs
    client.force_login(b["owner"])
    assert client.get(reverse("billing-workspace-costs", args=[a["project"].pk])).status_code == 404
    assert client.get(reverse("admin:billing_usagerecord_changelist")).status_code in (302, 403)


@pytest.mark.django_db
def test_bad_input_is_a_400_with_field_messages(history, api):
    op = history["operator"]
    cases = {
        "start": {"start": "yesterday"},
        "end": {"start": "2026-10-05", "end": "2026-10-01"},
        "group_by": {"group_by": "planet"},
        "bucket": {"bucket": "week"},
        "org": {"org": "x1"},
        "project": {"project": "-3"},
    }
    for field, params in cases.items():
        response = api.as_user(op).get(URL, params)
        assert response.status_code == 400, params
        assert field in response.json()["error"]["fields"], (params, response.json())
    response = api.as_user(op).get(URL, {"start": "2026-10-28T10:30:00Z", "format": "csv"})
    assert response.status_code == 400 and "start" in response.json()["error"]["fields"]
    response = api.as_user(op).get(URL, {"start": "2026-01-01", "end": "2026-12-31", "bucket": "hour"})
    assert response.status_code == 400 and "bucket" in response.json()["error"]["fields"]
    # the pages: the form again with the message beside the field, no 500
    api.force_authenticate(None)
    from django.test import Client

    client = Client()
    client.force_login(op)
    page = client.get(reverse("admin:billing_usagerecord_changelist"), {"bucket": "week", "start": "nope"})
    assert page.status_code == 400
    assert "One of: hour, day, month." in page.content.decode()
    client.force_login(history["a"]["owner"])
    page = client.get(
        reverse("billing-workspace-costs", args=[history["a"]["project"].pk]), {"group_by": "org"}
    )
    assert page.status_code == 400 and "One of: user, profile, cluster, gpu_model." in page.content.decode()


@pytest.mark.django_db
def test_utilisation_not_configured_is_said_never_zero_and_measured_idle_is_shown(history, api, client):
    op, a = history["operator"], history["a"]
    clusters = set(Meter.objects.values_list("cluster_name", flat=True))
    data = get(api, op, group_by="cluster").json()
    assert data["totals"]["idle_gpu_seconds"] is None and data["totals"]["utilisation"] == "not_configured"
    assert all(g["idle_gpu_seconds"] is None for g in data["groups"])
    assert data["utilisation_notes"] == [
        f"GPU utilisation not configured for cluster {c}" for c in sorted(clusters)
    ]
    client.force_login(op)
    html = client.get(
        reverse("admin:billing_usagerecord_changelist"), {"start": "2026-10-01", "group_by": "cluster"}
    ).content.decode()
    assert f"not configured for cluster {sorted(clusters)[0]}" in html
    assert ">not configured</td>" in html

    # Prometheus on a1's cluster, which answered for a1's hours (as the roll-up writes them)
    a1 = Meter.objects.get(name="a1")
    a1.cluster.prometheus_url = "http://127.0.0.1:9/"
    a1.cluster.save(update_fields=["prometheus_url"])
    records = UsageRecord.objects.filter(meter=a1, gpu_seconds__gt=0)
    assert records.exists()
    for record in records:
        record.gpu_utilisation = 0.25
        record.idle_gpu_seconds = record.gpu_seconds * 3 // 4
        record.save(update_fields=["gpu_utilisation", "idle_gpu_seconds"])
    data = get(api, op, group_by="user").json()
    groups = {g["label"]: g for g in data["groups"]}
    owner = groups[a["owner"].email] if a["owner"].email in groups else groups[str(a["owner"])]
    assert owner["utilisation"] == "measured"
    assert owner["idle_gpu_seconds"] == sum(r.idle_gpu_seconds for r in records) > 0
    others = [g for g in data["groups"] if g is not owner and g["gpu_seconds"]]
    assert others and all(
        g["utilisation"] == "not_configured" and g["idle_gpu_seconds"] is None for g in others
    )
    assert data["totals"]["utilisation"] == "partial"
    assert data["totals"]["measured_gpu_seconds"] == sum(r.gpu_seconds for r in records)
    assert f"GPU utilisation not configured for cluster {a1.cluster_name}" not in data["utilisation_notes"]
    rows = csv_rows(get(api, op, group_by="user", bucket="month", format="csv"))
    assert {r["idle_gpu_hours"] for r in rows if r["key"] != str(a["owner"].pk)} == {"not configured"}
    [mine] = [r for r in rows if r["key"] == str(a["owner"].pk)]
    assert Decimal(mine["idle_gpu_hours"]) == (Decimal(owner["idle_gpu_seconds"]) / 3600).quantize(
        Decimal("0.000001")
    )


@pytest.mark.django_db
def test_standby_gpu_time_is_the_providers_and_only_operators_see_it(history, api):
    a = history["a"]
    profile = Meter.objects.filter(org=a["org"]).first()
    from catalog.models import ComputeProfile

    standby = make_standby(
        {"profile": ComputeProfile.objects.get(pk=profile.profile_id), "cluster": a["cluster"]},
        state=StandbyInstance.State.READY,
    )
    StandbyInstance.objects.filter(pk=standby.pk).update(created_at=t(10, 4, 30), claimed_at=t(10, 6, 0))
    data = get(api, history["operator"], bucket="day").json()
    assert data["standby"]["gpu_seconds"] == 5400 * standby.gpus
    assert data["standby"]["series"] == [
        {"bucket": "2026-10-10T00:00:00Z", "cluster": "dasha-c", "gpu_seconds": 5400 * standby.gpus}
    ]
    # never in a tenant's figures: the totals are still the meters' own
    assert data["totals"]["gpu_seconds"] == expected(Meter.objects.all())["gpu_seconds"]
    assert get(api, a["admin"]).json()["standby"] is None


@pytest.mark.django_db
def test_the_workspace_landing_page_has_a_spend_card(history, client):
    a = history["a"]
    client.force_login(a["owner"])
    html = client.get(reverse("instances:workspace", args=[a["project"].pk])).content.decode()
    assert "Spend this month" in html
    assert reverse("billing-workspace-costs", args=[a["project"].pk]) in html
    assert 'id="spend-card-data"' in html and "chart.umd.min.js" in html
    page = client.get(reverse("billing-workspace-costs", args=[a["project"].pk]), {"start": "2026-10-01"})
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="ws-chart-data"' in html and "format=csv" in html and "project=" in html


@pytest.mark.django_db
def test_the_costs_endpoint_is_in_the_schema(api, world):
    schema = api.as_user(world.operator).get("/api/schema/", {"format": "json"})
    paths = schema.json()["paths"]
    params = {p["name"] for p in paths["/api/v1/billing/costs/"]["get"]["parameters"]}
    assert {"start", "end", "group_by", "bucket", "org", "project", "cluster", "profile", "format"} <= params


@pytest.mark.django_db
def test_the_chargeback_equals_the_cost_profiles_rates_over_the_running_and_storage_time(history, api):
    meters = list(Meter.objects.all())
    want = Decimal(0)
    for row in period_figures(meters, start=OCT, end=NOV):
        meter = row["meter"]
        rates = CostProfile.objects.get(cluster_id=meter.cluster_id)
        storage = row["running_seconds"] + row["stopped_seconds"] + row["deleting_seconds"]
        want += chargeback_cost(rates=rates, meter=meter, running=row["running_seconds"], storage=storage)
    assert want > 0
    data = get(api, history["operator"], group_by="cluster", bucket="month").json()
    got = Decimal(data["totals"]["chargeback_costs"]["USD"])
    records = UsageRecord.objects.filter(hour__gte=OCT, hour__lt=NOV).count()
    assert abs(got - want) <= Decimal("0.000001") * records, (got, want)
    assert data["totals"]["chargeback_complete"] is True
    assert sum(Decimal(g["chargeback_costs"]["USD"]) for g in data["groups"]) == got


@pytest.mark.django_db
def test_gpu_hours_beside_idle_gpu_hours_from_a_real_prometheus(prometheus, api):
    """End to end: the cluster's real Prometheus scrapes an exporter reporting 25% for one instance's
    namespace; after the roll-up the dashboard shows its idle GPU-seconds (75% of its GPU-seconds) beside
    its GPU-seconds, the other instance (unknown to Prometheus) as not measured (null, never 0), and no
    "not configured" note for the cluster."""
    from billing.rollup import hour_start, rollup_hour
    from billing.selectors import now_second
    from instances.models import ComputeInstance
    from instances.namespace import namespace_for
    from tests.support.billing import launch_at, move, priced_setup
    from tests.support.wait import wait_for

    op, admin, project, owner, profile, cluster = priced_setup("dashidle")
    cluster.prometheus_url = prometheus.url
    cluster.save(update_fields=["prometheus_url"])
    launched = now_second() - dt.timedelta(hours=2)
    instances = {}
    for name in ("busy", "quiet"):
        row = launch_at(owner=owner, project=project, profile=profile, name=name, at=launched)
        ComputeInstance.objects.filter(pk=row.pk).update(namespace=namespace_for(row))
        row.refresh_from_db()
        instances[name] = row
    prometheus.exporter.set_gpu(namespace=instances["busy"].namespace, pod="busy-0", percent=25, gpu=8)
    prometheus.wait_for_samples(instances["busy"].namespace, 3)
    wait_for(lambda: (now_second() - hour_start(now_second())).total_seconds() >= 5, timeout=10)
    now = now_second()
    hour = hour_start(now)
    for row in instances.values():
        move(row, "provisioning", at=hour - dt.timedelta(minutes=5))
        move(row, "ready", at=hour - dt.timedelta(minutes=4))
    rollup_hour(hour, now=now)
    running = int((now - hour).total_seconds())

    start = hour.isoformat().replace("+00:00", "Z")
    end = (hour + dt.timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    data = (
        api.as_user(admin)  # a workspace filter: the org's insides (the operator: through a support access)
        .get(
            URL, {"start": start, "end": end, "bucket": "hour", "group_by": "cluster", "project": project.pk}
        )
        .json()
    )
    [group] = data["groups"]
    assert group["gpu_seconds"] == 2 * running
    assert group["idle_gpu_seconds"] == round(running * 0.75)  # the busy one's; the quiet one's unknown
    assert group["measured_gpu_seconds"] == running and group["utilisation"] == "partial"
    assert f"GPU utilisation not configured for cluster {cluster.name}" not in data["utilisation_notes"]
    rows = csv_rows(
        api.as_user(op).get(
            URL, {"start": start, "end": end, "bucket": "hour", "group_by": "cluster", "format": "csv"}
        )
    )
    [line] = [r for r in rows if r["group"] == cluster.name]
    assert Decimal(line["idle_gpu_hours"]) == (Decimal(round(running * 0.75)) / 3600).quantize(
        Decimal("0.000001")
    )


@pytest.mark.django_db
def test_operators_see_every_orgs_totals_and_the_detail_only_with_a_support_access(history, api):
    """The provider bills orgs: grouped by org, cluster or GPU model an operator's figures count every
    org; by workspace, user or profile (or filtered by workspace or profile) only the orgs a support
    access opens."""
    from tenancy.support_models import SupportAccess

    op, a = history["operator"], history["a"]
    everything = expected(Meter.objects.all())
    SupportAccess.objects.filter(user=op).delete()
    for group_by in ("org", "cluster", "gpu_model"):
        data = get(api, op, group_by=group_by, bucket="month").json()
        assert Decimal(data["totals"]["costs"]["USD"]) == everything["cost"], group_by
    for group_by in ("project", "user", "profile"):
        data = get(api, op, group_by=group_by, bucket="month").json()
        assert data["groups"] == [] and data["totals"]["costs"] == {}, group_by
    filtered = get(api, op, group_by="org", project=a["project"].pk).json()
    assert filtered["groups"] == []

    grant_support(operator=op, org=a["org"], level="read")
    data = get(api, op, group_by="project", bucket="month").json()
    assert [g["key"] for g in data["groups"]] == [str(a["project"].pk)]
    assert Decimal(data["totals"]["costs"]["USD"]) == expected(Meter.objects.filter(org=a["org"]))["cost"]
    assert Decimal(get(api, op, group_by="org").json()["totals"]["costs"]["USD"]) == everything["cost"]
