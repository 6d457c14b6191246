"""The billing API's figures against an independent computation from the audit trail, for a generated
history, and cross-tenant: an org admin never sees another org's rows or totals through any door.

The independent computation reads only the ``usage.interval`` audit events (previous state, new state,
instant), the instances' launch times and their launch snapshots' prices, and applies the billing rules
as the product documentation states them, with exact fractions: provisioning and ready bill running time,
stopped and deleting bill storage time, pending, failed and deleted nothing; on demand charges running
time at the price and storage time at the stopped price; reserved charges the price for the whole time
the instance exists (launch to deletion). Nothing of ``billing`` is called to compute it.
"""

import csv
import datetime as dt
import io
import random
from collections import defaultdict
from fractions import Fraction

import pytest

from instances.models import ComputeInstance
from paas.models import AuditEvent
from tests.support.billing import launch_at, move, priced_setup

URL = "/api/v1/billing/usage/"
UTC = dt.UTC
KIND = {"provisioning": "running", "ready": "running", "stopped": "stopped", "deleting": "deleting"}
UNIT = {"hour": 3600, "day": 86400, "month": 730 * 3600}
NEXT = {  # the lifecycle a deployer walks (weights), as instances.states allows it
    "pending": [("provisioning", 8), ("deleting", 1), ("failed", 1)],
    "provisioning": [("ready", 6), ("stopped", 2), ("failed", 1), ("deleting", 1), ("provisioning", 1)],
    "ready": [("provisioning", 1)],  # a stop or a restart goes through provisioning
    "stopped": [("provisioning", 3), ("deleting", 1)],
    "failed": [("provisioning", 1), ("deleting", 1)],
    "deleting": [("deleted", 5), ("deleting", 1)],
}
PERIODS = [
    ("2026-10-01", "2026-10-31"),  # October, a closed month
    ("2026-11-01T00:00:00Z", "2026-11-09T00:00:00Z"),
    ("2026-10-31T12:34:56Z", "2026-11-02T01:02:03+01:00"),  # odd bounds across the month boundary
]


def six(value: Fraction) -> str:
    """``value`` (>= 0) rounded half up to 6 places, as a decimal string."""
    units = (value * 10**6 + Fraction(1, 2)).__floor__()
    return f"{units // 10**6}.{units % 10**6:06d}"


def bound(text: str, *, end: bool) -> dt.datetime:
    if "T" in text:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
    day = dt.datetime.fromisoformat(text).replace(tzinfo=UTC)
    return day + dt.timedelta(days=1) if end else day


def overlap(a: dt.datetime, b: dt.datetime, start: dt.datetime, end: dt.datetime) -> int:
    return max(0, int((min(b, end) - max(a, start)).total_seconds()))


@pytest.fixture
def history(db):
    """Three orgs (on demand per hour, reserved per month, on demand per day), five instances each,
    launched and moved at random whole-second instants from Oct 29 to about Nov 8 (seeded)."""
    rng = random.Random(1616)
    operator = None
    orgs = {}
    for name, price in (
        ("north", {"amount": "2.5", "period": "hour", "stopped_amount": "0.1"}),
        ("south", {"amount": "730", "period": "month", "billing_model": "reserved"}),
        ("west", {"amount": "31.7", "period": "day", "stopped_amount": "1.3"}),
    ):
        operator, admin, project, owner, profile, cluster = priced_setup(name, operator=operator, **price)
        orgs[name] = {"admin": admin, "project": project, "owner": owner, "cluster": cluster}
        for index in range(5):
            moment = dt.datetime(2026, 10, 29, tzinfo=UTC) + dt.timedelta(seconds=rng.randrange(5 * 86400))
            instance = launch_at(owner=owner, project=project, profile=profile, name=f"i{index}", at=moment)
            state = "pending"
            for _ in range(rng.randrange(0, 14)):
                if state == "deleted":
                    break
                choices, weights = zip(*NEXT[state], strict=True)
                state = rng.choices(choices, weights)[0]
                moment += dt.timedelta(seconds=rng.randrange(1, 30_000))
                instance = move(instance, state, at=moment)
    return {"operator": operator, "orgs": orgs}


def expected_rows(start: dt.datetime, end: dt.datetime, org=None) -> dict[int, dict]:
    """Per instance id: its figures in [start, end), from the audit trail and the launch snapshots."""
    events = defaultdict(list)
    for event in AuditEvent.objects.filter(action="usage.interval").order_by("pk"):
        events[int(event.target_id)].append(event.details)
    # Every instance launched (its launch event), with or without a state change since: it exists in a
    # period from its launch on, and a reserved price bills that.
    launched_ids = AuditEvent.objects.filter(action="instance.launch").values_list("target_id", flat=True)
    rows = {}
    for instance in ComputeInstance.objects.filter(pk__in=[int(i) for i in launched_ids]).select_related(
        "org"
    ):
        if org is not None and instance.org_id != org.pk:
            continue
        launched = instance.created_at.replace(microsecond=0)
        price = instance.snapshot["price"]
        seconds = dict.fromkeys(("running", "stopped", "deleting"), 0)
        deleted, open_kind, opened = None, None, None
        for details in sorted(events[instance.pk], key=lambda d: d["at"]):
            moment = dt.datetime.fromisoformat(details["at"])
            kind = KIND.get(details["state"])
            if kind == open_kind and details["state"] != "deleted":
                continue
            if open_kind is not None:
                seconds[open_kind] += overlap(opened, moment, start, end)
            open_kind, opened = kind, moment
            if details["state"] == "deleted":
                deleted = moment
        assert open_kind is None or deleted is None
        if open_kind is not None:  # still open: all periods here end before today
            seconds[open_kind] += overlap(opened, end, start, end)
        existing = overlap(launched, deleted or end, start, end)
        if launched >= end or (deleted is not None and deleted <= start):
            continue  # did not exist in the period
        per = UNIT[price["period"]]
        if price["billing_model"] == "reserved":
            cost = Fraction(price["amount"]) * existing / per
            billable = existing
        else:
            storage = seconds["stopped"] + seconds["deleting"]
            cost = (
                Fraction(price["amount"]) * seconds["running"] + Fraction(price["stopped_amount"]) * storage
            ) / per
            billable = seconds["running"]
        rows[instance.pk] = {
            "org": instance.org_id,
            "currency": price["currency"],
            "billing_model": price["billing_model"],
            "running_seconds": seconds["running"],
            "stopped_seconds": seconds["stopped"],
            "deleting_seconds": seconds["deleting"],
            "existing_seconds": existing,
            "billable_seconds": billable,
            "exact": cost,
        }
    return rows


def expected_totals(rows: dict[int, dict]) -> list[dict]:
    out = {}
    for row in rows.values():
        entry = out.setdefault(
            row["currency"],
            {
                m: dict.fromkeys(
                    (
                        "instances",
                        "running_seconds",
                        "stopped_seconds",
                        "deleting_seconds",
                        "existing_seconds",
                    ),
                    0,
                )
                | {"exact": Fraction(0)}
                for m in ("on_demand", "reserved")
            },
        )
        part = entry[row["billing_model"]]
        part["instances"] += 1
        for name in ("running_seconds", "stopped_seconds", "deleting_seconds", "existing_seconds"):
            part[name] += row[name]
        part["exact"] += row["exact"]
    totals = []
    for currency, entry in sorted(out.items()):
        item = {"currency": currency, "cost": six(entry["on_demand"]["exact"] + entry["reserved"]["exact"])}
        for model, part in entry.items():
            billable = part["existing_seconds"] if model == "reserved" else part["running_seconds"]
            exact = part.pop("exact")
            item[model] = part | {
                "billable_seconds": billable,
                "billable_hours": six(Fraction(billable, 3600)),
                "cost": six(exact),
            }
        totals.append(item)
    return totals


def api_rows(client, params) -> tuple[dict[int, dict], list[dict], list[dict]]:
    """Every page (3 a page, following ``next``): rows by instance id, the totals, the CSV rows."""
    by_id, url, totals = {}, None, None
    while True:
        response = client.get(url) if url else client.get(URL, {**params, "page_size": 3})
        assert response.status_code == 200, response.content
        body = response.json()
        if url is None:
            totals = body["totals"]
        else:
            assert body["totals"] is None  # the totals come with the first page
        for row in body["results"]:
            assert row["instance"]["id"] not in by_id
            by_id[row["instance"]["id"]] = row
        url = body["next"]
        if not url:
            break
    exported = client.get(URL, {**params, "format": "csv"})
    assert exported.status_code == 200
    rows = list(csv.DictReader(io.StringIO(b"".join(exported.streaming_content).decode())))
    return by_id, totals, rows


FIELDS = ("running_seconds", "stopped_seconds", "deleting_seconds", "existing_seconds", "billable_seconds")


def check(client, params, expected: dict[int, dict]) -> None:
    rows, totals, csv_rows = api_rows(client, params)
    assert set(rows) == set(expected)
    for pk, want in expected.items():
        got = rows[pk]
        assert {f: got[f] for f in FIELDS} == {f: want[f] for f in FIELDS}, pk
        assert got["cost"] == six(want["exact"]), pk
        assert got["billable_hours"] == six(Fraction(want["billable_seconds"], 3600))
        assert (got["price"]["currency"], got["price"]["billing_model"], got["org"]["id"]) == (
            want["currency"],
            want["billing_model"],
            want["org"],
        )
    assert totals == expected_totals(expected)
    assert {int(r["instance_id"]) for r in csv_rows} == set(expected)
    for row in csv_rows:
        want = expected[int(row["instance_id"])]
        assert {f: int(row[f]) for f in FIELDS} == {f: want[f] for f in FIELDS}
        assert row["cost"] == six(want["exact"]) and int(row["org_id"]) == want["org"]


def test_the_api_equals_the_audit_trail(api, history):
    from tests.support.support import grant_support

    for org in history["orgs"].values():  # the operator reads every org's rows through support
        grant_support(operator=history["operator"], org=org["project"].org, level="read")
    client = api.as_user(history["operator"])
    kinds_seen = set()
    for start_text, end_text in PERIODS:
        start, end = bound(start_text, end=False), bound(end_text, end=True)
        expected = expected_rows(start, end)
        assert expected, "the generated history bills something in every period"
        kinds_seen |= {
            (r["billing_model"], r["stopped_seconds"] > 0, r["deleting_seconds"] > 0)
            for r in expected.values()
        }
        check(client, {"start": start_text, "end": end_text}, expected)
        for org in history["orgs"].values():  # the org filter, as an operator
            org_rows = expected_rows(start, end, org=org["project"].org)
            check(client, {"start": start_text, "end": end_text, "org": org["project"].org_id}, org_rows)
    # the history exercised stopped and deleting time, both billing models
    assert {m for m, _, _ in kinds_seen} == {"on_demand", "reserved"}
    assert any(s for _, s, _ in kinds_seen) and any(d for _, _, d in kinds_seen)


def test_an_org_admin_never_sees_another_orgs_costs(api, history):
    north, south = history["orgs"]["north"], history["orgs"]["south"]
    start_text, end_text = PERIODS[1]
    start, end = bound(start_text, end=False), bound(end_text, end=True)
    client = api.as_user(north["admin"])
    mine = expected_rows(start, end, org=north["project"].org)
    period = {"start": start_text, "end": end_text}
    check(client, period, mine)  # JSON rows and totals, CSV: north's only
    # Another org's id reads exactly as an org that does not exist.
    other = client.get(URL, {**period, "org": south["project"].org_id})
    missing = client.get(URL, {**period, "org": 987654})
    assert other.status_code == missing.status_code == 400
    assert (
        other.json()["error"]["fields"]
        == missing.json()["error"]["fields"]
        == {"org": ["No such organization."]}
    )
    for extra in ({"format": "csv"},):
        assert client.get(URL, {**period, "org": south["project"].org_id, **extra}).status_code == 400
    other_project = client.get(URL, {**period, "project": south["project"].pk})
    assert other_project.status_code == 400 and "project" in other_project.json()["error"]["fields"]
    # A cluster where the other orgs ran too: still only north's rows.
    for cluster in {o["cluster"].name for o in history["orgs"].values()}:
        response = client.get(URL, {**period, "cluster": cluster, "page_size": 500})
        if response.status_code == 200:
            assert {r["org"]["id"] for r in response.json()["results"]} <= {north["project"].org_id}
    # A workspace member (the owner holds view_instances on north/lab) sees that workspace only.
    owner_rows, _, owner_csv = api_rows(api.as_user(north["owner"]), period)
    assert set(owner_rows) == set(mine) and {int(r["instance_id"]) for r in owner_csv} == set(mine)
    # South's admin sees south's, none of north's.
    south_rows, _, _ = api_rows(api.as_user(south["admin"]), period)
    assert set(south_rows) == set(expected_rows(start, end, org=south["project"].org))
    assert not set(south_rows) & set(mine)
