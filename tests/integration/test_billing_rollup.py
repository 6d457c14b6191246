"""The hourly usage roll-up: exact hourly seconds from the intervals, re-runs that change nothing, stale
records deleted, chargeback at the rates in force at each hour, services at list price only,
utilisation unknown (never zero) without an answering Prometheus, and the pending hours' bookkeeping."""

import datetime as dt
import itertools
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing import rollup
from billing.costs import list_cost
from billing.models import Interval, Meter, RollupState, UsageRecord
from billing.rates import rates_at
from billing.selectors import existing_seconds, seconds_by_meter
from catalog import services as catalog_services
from catalog.models import ComputeProfile
from instances import pool_claims
from instances.models import StandbyInstance, WarmPool
from instances.quota import profile_totals
from inventory.models import Cluster
from tests.factories import ONE_A100, make_operator, make_profile
from tests.support.billing import add_cost_profile, launch_at, move, priced_setup, usage_rows

UTC = dt.UTC
T0 = dt.datetime(2026, 10, 31, 22, 0, 0, 250_000, tzinfo=UTC)
NOW = dt.datetime(2026, 11, 1, 6, 20, 34, tzinfo=UTC)  # the roll-ups' "now": 06:00 is partial
HOURS = [dt.datetime(2026, 10, 31, 21, tzinfo=UTC) + dt.timedelta(hours=n) for n in range(11)]
A100 = "A100-SXM4-40GB"


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def meter_of(instance) -> Meter:
    return Meter.objects.get(instance_key=f"compute:{instance.pk}")


def history():
    """Three instances over the month boundary: one started, stopped, restarted and deleted on round
    instants, one on ragged ones, one reserved and still running at NOW."""
    _op, _admin, project, owner, profile, _c = priced_setup("roll")
    a = launch_at(owner=owner, project=project, profile=profile, name="a", at=at(0))
    move(a, "provisioning", at=at(60))
    move(a, "ready", at=at(120))
    move(a, "provisioning", at=at(7100))  # stopping: running still
    move(a, "stopped", at=at(7200))  # 2026-11-01 00:00:00
    move(a, "provisioning", at=at(10800))
    move(a, "ready", at=at(10830))
    move(a, "deleting", at=at(14400))
    move(a, "deleted", at=at(14460))
    b = launch_at(owner=owner, project=project, profile=profile, name="b", at=at(1234.7))
    move(b, "provisioning", at=at(1300.2))
    move(b, "ready", at=at(1400))
    move(b, "provisioning", at=at(5000))
    move(b, "stopped", at=at(5000.9))
    move(b, "provisioning", at=at(9999))
    move(b, "deleting", at=at(20000.5))
    move(b, "deleted", at=at(20001))
    _op, _admin, rproject, rowner, rprofile, _c = priced_setup(
        "rsvd", amount="730", period="month", billing_model="reserved"
    )
    c = launch_at(owner=rowner, project=rproject, profile=rprofile, name="c", at=at(3000))
    move(c, "provisioning", at=at(3100))
    move(c, "ready", at=at(3200))
    return meter_of(a), meter_of(b), meter_of(c)


@pytest.mark.django_db
def test_hourly_seconds_are_exact_and_add_up_to_any_period_of_whole_hours():
    a, b, c = history()
    summary = rollup.rollup_range(HOURS[0], HOURS[-1], now=NOW)
    assert summary == {"busy": False, "hours": 10, "records": summary["records"]}
    by = {(r["meter_id"], r["hour"]): r for r in usage_rows()}
    h = {n: dt.datetime(2026, 10, 31, 22, tzinfo=UTC) + dt.timedelta(hours=n) for n in range(9)}
    seconds = {
        n: (by[(a.pk, h[n])]["running_seconds"], by[(a.pk, h[n])]["stopped_seconds"]) for n in range(4)
    }
    assert seconds == {0: (3540, 0), 1: (3600, 0), 2: (0, 3600), 3: (3600, 0)}
    last = by[(a.pk, h[4])]
    assert (last["running_seconds"], last["deleting_seconds"], last["existing_seconds"]) == (0, 60, 60)
    assert (a.pk, h[5]) not in by and (a.pk, HOURS[0]) not in by  # nothing outside its life
    assert by[(a.pk, h[0])]["gpu_seconds"] == 3540
    assert by[(a.pk, h[0])]["gpu_seconds_by_model"] == {A100: 3540}
    assert by[(a.pk, h[2])]["gpu_seconds_by_model"] == {}  # stopped: holds no GPU
    # $2.5 an hour running, $0.1 stopped: the hour's own seconds at the launch price
    assert by[(a.pk, h[2])]["cost"] == Decimal("0.100000")
    assert by[(a.pk, h[0])]["cost"] == Decimal("2.458333")
    # reserved: $730 a month (730 h) for every second it exists, whatever runs; open until NOW
    assert by[(c.pk, h[0])]["existing_seconds"] == 3600 - 3000
    assert by[(c.pk, h[1])]["cost"] == Decimal("1.000000")
    assert by[(c.pk, h[8])]["existing_seconds"] == 20 * 60 + 34  # the partial hour, until NOW
    # Any period of whole hours: the records add up to the intervals' own figures, exactly.
    meters = [a, b, c]
    for start, end in itertools.combinations(HOURS, 2):
        figures = seconds_by_meter([m.pk for m in meters], start=start, end=end, now=NOW)
        for meter in meters:
            rows = [r for (mid, hour), r in by.items() if mid == meter.pk and start <= hour < end]
            for kind in ("running", "stopped", "deleting"):
                assert sum(r[f"{kind}_seconds"] for r in rows) == figures[meter.pk][kind], (meter, start, end)
            assert sum(r["existing_seconds"] for r in rows) == existing_seconds(
                meter, start=start, end=end, now=NOW
            )
            exact = list_cost(
                amount=meter.amount,
                stopped_amount=meter.stopped_amount,
                unit=meter.unit,
                billing_model=meter.billing_model,
                running=figures[meter.pk]["running"],
                stopped=figures[meter.pk]["stopped"],
                deleting=figures[meter.pk]["deleting"],
                existing=existing_seconds(meter, start=start, end=end, now=NOW),
            )
            assert abs(sum(r["cost"] for r in rows) - exact) <= Decimal("0.000001") * len(rows)


@pytest.mark.django_db
def test_a_rerun_of_an_hour_or_a_range_changes_nothing():
    history()
    rollup.rollup_range(HOURS[0], HOURS[-1], now=NOW)
    before = usage_rows()
    full = list(UsageRecord.objects.order_by("hour", "meter_id").values())
    assert len(before) > 15
    rollup.rollup_hour(HOURS[3], now=NOW)
    rollup.rollup_range(HOURS[0], HOURS[-1], now=NOW)
    rollup.rollup_range(HOURS[2] + dt.timedelta(minutes=30), HOURS[5], now=NOW)
    assert usage_rows() == before
    # the work is set-based: as many queries for an hour of three meters as for one of one meter
    with CaptureQueriesContext(connection) as busy:
        assert rollup.rollup_hour(HOURS[3], now=NOW) == 3
    with CaptureQueriesContext(connection) as quiet:
        assert rollup.rollup_hour(HOURS[9], now=NOW) == 1
    assert len(busy.captured_queries) == len(quiet.captured_queries)
    # the very same rows, not even rewritten (same ids, same rolled_up_at)
    assert list(UsageRecord.objects.order_by("hour", "meter_id").values()) == full


@pytest.mark.django_db
def test_a_record_whose_meter_left_the_hour_is_deleted_on_a_rerun():
    _op, _admin, project, owner, profile, _c = priced_setup("moved")
    x = launch_at(owner=owner, project=project, profile=profile, name="x", at=at(300))
    move(x, "provisioning", at=at(600))
    move(x, "deleting", at=at(1800))
    move(x, "deleted", at=at(1800))
    meter = meter_of(x)
    rollup.rollup_range(HOURS[0], HOURS[-1], now=NOW)
    assert [(r["hour"], r["running_seconds"]) for r in usage_rows()] == [(HOURS[1], 1200)]
    # An operator corrects the history: the instance really ran three hours later.
    shift = dt.timedelta(hours=3)
    Meter.objects.filter(pk=meter.pk).update(
        created_at=meter.created_at + shift, ended_at=meter.ended_at + shift
    )
    for interval in Interval.objects.filter(meter=meter):
        Interval.objects.filter(pk=interval.pk).update(
            started_at=interval.started_at + shift, ended_at=interval.ended_at + shift
        )
    rollup.rollup_range(HOURS[0], HOURS[-1], now=NOW)
    assert [(r["hour"], r["running_seconds"]) for r in usage_rows()] == [(HOURS[4], 1200)]


@pytest.mark.django_db
def test_chargeback_uses_the_rates_in_force_at_each_hour(django_assert_num_queries):
    a, b, c = history()
    cluster = a.cluster
    assert cluster is not None and b.cluster_id == cluster.pk
    add_cost_profile(
        cluster,
        dt.datetime(2026, 1, 1, tzinfo=UTC),
        gpu_hour={A100: "2.0"},
        cpu_hour="0.01",
        memory_gib_hour="0.005",
        storage_gib_hour="0.0001",
        currency="EUR",
    )
    change = dt.datetime(2026, 11, 1, 1, tzinfo=UTC)
    add_cost_profile(cluster, change, gpu_hour={A100: "3.0"}, currency="EUR")
    with django_assert_num_queries(1):
        assert rates_at([cluster.pk, c.cluster_id], change - dt.timedelta(seconds=1))[
            cluster.pk
        ].gpu_hour == {A100: "2.0"}
    assert rates_at([cluster.pk], change)[cluster.pk].gpu_hour == {A100: "3.0"}
    elsewhere = Cluster.objects.get(name="rsvd-c")  # a cluster without a cost profile
    Meter.objects.filter(pk=c.pk).update(cluster=elsewhere)
    assert rates_at([elsewhere.pk], NOW) == {}
    rollup.rollup_range(HOURS[0], HOURS[-1], now=NOW)
    rows = {r["hour"]: r for r in usage_rows(meter=a)}
    # before the change: GPU 2.0 + 4 CPUs x 0.01 + 16 GiB x 0.005 an hour running, 10 GiB x 0.0001 stored
    old_running = Decimal("2.0") + 4 * Decimal("0.01") + 16 * Decimal("0.005") + 10 * Decimal("0.0001")
    hour22 = rows[dt.datetime(2026, 10, 31, 22, tzinfo=UTC)]
    assert hour22["chargeback_cost"] == (old_running * 3540 / 3600).quantize(Decimal("0.000001"))
    assert hour22["chargeback_currency"] == "EUR"
    stopped = rows[dt.datetime(2026, 11, 1, 0, tzinfo=UTC)]
    assert stopped["chargeback_cost"] == 10 * Decimal("0.0001")  # storage only
    # from the change on: GPU 3.0 an hour and nothing else
    assert rows[change]["chargeback_cost"] == Decimal("3.000000")
    assert rows[change + dt.timedelta(hours=1)]["chargeback_cost"] == Decimal(0)
    # a cluster without a cost profile: no chargeback figure (not zero)
    assert {r["chargeback_cost"] for r in usage_rows(meter=c)} == {None}
    # a back-dated change re-run for the past: only the hours from it on change
    before = {(r["meter_id"], r["hour"]): r for r in usage_rows()}
    backdated = dt.datetime(2026, 11, 1, 3, tzinfo=UTC)
    add_cost_profile(cluster, backdated, gpu_hour={A100: "9.0"}, currency="EUR")
    rollup.rollup_range(HOURS[0], HOURS[-1], now=NOW)
    after = {(r["meter_id"], r["hour"]): r for r in usage_rows()}
    assert after.keys() == before.keys()
    changed = {key for key in after if after[key] != before[key]}
    assert changed and all(hour >= backdated for _m, hour in changed)
    assert after[(b.pk, backdated)]["running_seconds"] == 2000
    assert after[(b.pk, backdated)]["chargeback_cost"] == Decimal("5.000000")  # 9.0 an hour for 2000 s


@pytest.mark.django_db
def test_a_service_is_billed_at_its_list_price_only():
    a, _b, _c = history()
    add_cost_profile(a.cluster, dt.datetime(2026, 1, 1, tzinfo=UTC), gpu_hour={A100: "2.0"})
    fields = {f.attname: getattr(a, f.attname) for f in Meter._meta.concrete_fields if f.attname != "id"}
    service = Meter.objects.create(
        **(fields | {"kind": "service", "instance_key": "service:999001", "amount": Decimal("0.5")})
    )
    for interval in Interval.objects.filter(meter=a):
        Interval.objects.create(
            meter=service, kind=interval.kind, started_at=interval.started_at, ended_at=interval.ended_at
        )
    rollup.rollup_range(HOURS[0], HOURS[-1], now=NOW)
    rows = usage_rows(meter=service)
    assert [r["running_seconds"] for r in rows] == [r["running_seconds"] for r in usage_rows(meter=a)]
    assert {(r["gpu_seconds"], r["chargeback_cost"], r["idle_gpu_seconds"]) for r in rows} == {
        (0, None, None)
    }
    assert rows[0]["cost"] == (Decimal("0.5") * 3540 / 3600).quantize(Decimal("0.000001"))


@pytest.mark.django_db
def test_utilisation_is_unknown_without_an_answering_prometheus(caplog):
    a, _b, _c = history()
    # nothing listens on that port: the roll-up goes on, utilisation stays unknown (NULL, never 0)
    a.cluster.prometheus_url = "http://127.0.0.1:9/"
    a.cluster.save(update_fields=["prometheus_url"])
    rollup.rollup_range(HOURS[0], HOURS[-1], now=NOW)
    rows = usage_rows(meter=a)
    assert rows and {(r["gpu_utilisation"], r["idle_gpu_seconds"]) for r in rows} == {(None, None)}


def test_idle_gpu_seconds_follow_the_namespace_utilisation():
    meter = Meter(
        kind="compute",
        namespace="ns-a",
        amount=Decimal(1),
        stopped_amount=Decimal(0),
        unit="hour",
        billing_model="on_demand",
        currency="USD",
        gpus=2,
        gpus_by_model={A100: 2},
        mig_slices={"1g.5gb": 3},  # slices are not GPUs
        created_at=HOURS[0],
    )
    meter.id = 1
    seconds = {"running": 1800, "stopped": 0, "deleting": 0}
    record = rollup._record(
        meter, start=HOURS[0], end=HOURS[1], now=NOW, seconds=seconds, rates=None, util={"ns-a": 0.25}
    )
    assert (record["gpu_seconds"], record["gpu_utilisation"], record["idle_gpu_seconds"]) == (
        3600,
        0.25,
        2700,
    )
    other = rollup._record(
        meter, start=HOURS[0], end=HOURS[1], now=NOW, seconds=seconds, rates=None, util={"ns-b": 0.9}
    )
    assert (other["gpu_utilisation"], other["idle_gpu_seconds"]) == (None, None)
    assert rollup._fraction("nan") is None and rollup._fraction(1.7) == 1.0


@pytest.mark.django_db
def test_pending_rolls_settled_hours_once_bounded_per_run_then_the_current_hour():
    assert rollup.rollup_pending(now=NOW)["hours"] == 0  # nothing metered yet
    _a, _b, c = history()
    first = rollup.rollup_pending(now=NOW, max_hours=3)
    # the first run starts at the earliest metered hour (22:00) and goes at most 3 hours
    assert (first["hours"], first["partial_hours"]) == (3, 0)
    state = RollupState.objects.get(name="hourly")
    assert state.complete_until == dt.datetime(2026, 11, 1, 1, tzinfo=UTC)
    assert {r["hour"] for r in usage_rows()} == {HOURS[1], HOURS[2], HOURS[3]}
    second = rollup.rollup_pending(now=NOW)
    assert (second["hours"], second["partial_hours"]) == (5, 1)
    state.refresh_from_db()
    assert state.complete_until == dt.datetime(2026, 11, 1, 6, tzinfo=UTC)  # 06:00 not over yet
    partial = usage_rows(meter=c, hour=HOURS[9])
    assert partial[0]["existing_seconds"] == 20 * 60 + 34
    # a later run finishes the hour (after it has settled) and moves on
    later = NOW.replace(hour=7, minute=6)
    third = rollup.rollup_pending(now=later)
    assert (third["hours"], third["partial_hours"]) == (1, 1)
    assert usage_rows(meter=c, hour=HOURS[9])[0]["existing_seconds"] == 3600
    snapshot = usage_rows()
    rollup.rollup_pending(now=later)
    assert usage_rows() == snapshot
    # just after 08:00 the 07:00 hour is not settled yet: it and 08:00 so far are rewritten
    fourth = rollup.rollup_pending(now=NOW.replace(hour=8, minute=2))
    assert (fourth["hours"], fourth["partial_hours"]) == (0, 2)


@pytest.mark.django_db
def test_the_command_rolls_up_and_reruns_a_period():
    history()
    call_command("billing_rollup", "--start", "2026-10-31T21:00:00Z", "--end", "2026-11-01T03:00:00Z")
    rows = usage_rows()
    assert {r["hour"] for r in rows} == set(HOURS[1:6])
    with pytest.raises(CommandError, match="--end"):
        call_command("billing_rollup", "--start", "2026-11-02", "--end", "2026-11-01")
    with pytest.raises(CommandError, match="--start"):
        call_command("billing_rollup", "--end", "2026-11-01")
    assert not RollupState.objects.exists()  # a re-run leaves the schedule's bookkeeping alone


@pytest.mark.django_db
def test_warm_pool_standby_time_is_the_providers():
    """A standby ready for hours before a claim bills nothing to the tenant: the claiming instance's
    meter, and its records, start at the claim."""
    operator = make_operator(username="op-warm")
    _op, _admin, project, owner, _profile, cluster = priced_setup("warm", operator=operator)
    profile = make_profile(
        actor=operator,
        project=None,
        name="pooled",
        template="t-pooled",
        manifests="apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ instance.name }}-x\ndata: {}\n",
        resource_groups=ONE_A100,
        allocation_strategy=ComputeProfile.Allocation.WARM_POOL,
        warm_pool_size=1,
        cost_amount="4",
        cost_period="hour",
        cost_billing_model="on_demand",
        cost_stopped_amount="0",
    )
    catalog_services.item_share(actor=operator, item=profile, sharing="all")
    profile = ComputeProfile.objects.get(pk=profile.pk)
    pool = WarmPool.objects.get_or_create(
        profile=profile, datacenter=None, cluster=None, defaults={"desired": 1}
    )[0]
    snapshot = pool_claims.launch_snapshot(profile)
    standby = StandbyInstance.objects.create(
        pool=pool,
        profile=profile,
        snapshot=snapshot,
        snapshot_digest=pool_claims.snapshot_digest(snapshot),
        cluster=cluster,
        namespace="w-pooled-0001",
        placement={"cluster": cluster.name, "explanation": "best fit"},
        state="ready",
        ready_at=HOURS[0],
        heartbeat_at=HOURS[0],
        **profile_totals(profile, cluster_id=cluster.pk),
    )
    claim = at(2 * 3600 + 17)  # 2026-11-01 00:00:17, the standby ready since 21:00 the day before
    instance = launch_at(owner=owner, project=project, profile=profile, name="warm", at=claim)
    standby.refresh_from_db()
    assert instance.from_warm_pool and standby.instance_id == instance.pk
    move(instance, "provisioning", at=claim + dt.timedelta(seconds=1))  # the hand-over task
    move(instance, "ready", at=claim + dt.timedelta(seconds=3))
    meter = meter_of(instance)
    assert meter.created_at == claim.replace(microsecond=0)
    rollup.rollup_range(HOURS[0], HOURS[-1], now=NOW)
    rows = usage_rows(meter=meter)
    assert rows[0]["hour"] == HOURS[3] and rows[0]["existing_seconds"] == 3600 - 17
    assert rows[0]["running_seconds"] == 3600 - 18
    assert (
        sum(r["running_seconds"] for r in rows)
        == seconds_by_meter([meter.pk], start=HOURS[0], end=HOURS[-1], now=NOW)[meter.pk]["running"]
    )
