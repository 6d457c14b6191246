"""The metering hook: intervals open and close with the state changes, in whole seconds."""

import datetime as dt

import pytest

from billing.models import Interval, Meter
from billing.selectors import period_figures, seconds_by_meter
from paas.models import AuditEvent
from tests.support.billing import launch_at, move, priced_setup

T0 = dt.datetime(2026, 10, 31, 22, 0, 0, 250_000, tzinfo=dt.UTC)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


@pytest.mark.django_db
def test_running_stopped_deleting_across_a_month_boundary():
    _op, _admin, project, owner, profile, _cluster = priced_setup("meter1")
    instance = launch_at(owner=owner, project=project, profile=profile, name="dev", at=at(0))
    move(instance, "provisioning", at=at(60))
    move(instance, "ready", at=at(120))
    move(instance, "provisioning", at=at(7100))  # stopping: running still
    move(instance, "stopped", at=at(7200))  # 2026-11-01 00:00:00.25 -> stopped
    move(instance, "provisioning", at=at(10800))
    move(instance, "ready", at=at(10830))
    move(instance, "deleting", at=at(14400))
    move(instance, "deleted", at=at(14460))
    meter = Meter.objects.get(instance_key=f"compute:{instance.pk}")
    assert meter.created_at == T0.replace(microsecond=0) and meter.ended_at == at(14460).replace(
        microsecond=0
    )
    kinds = list(
        Interval.objects.filter(meter=meter).order_by("started_at", "pk").values_list("kind", flat=True)
    )
    assert kinds == ["running", "stopped", "running", "deleting"]
    october = seconds_by_meter(
        [meter.pk], start=dt.datetime(2026, 10, 1, tzinfo=dt.UTC), end=dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    )[meter.pk]
    november = seconds_by_meter(
        [meter.pk], start=dt.datetime(2026, 11, 1, tzinfo=dt.UTC), end=dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    )[meter.pk]
    assert october == {"running": 7200 - 60, "stopped": 0, "deleting": 0}
    assert november == {"running": 3600, "stopped": 10800 - 7200, "deleting": 60}
    [row] = period_figures(
        [meter], start=dt.datetime(2026, 11, 1, tzinfo=dt.UTC), end=dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    )
    # $2.5 an hour running, $0.1 an hour stopped or deleting
    assert abs(float(row["cost"]) - (2.5 * 3600 + 0.1 * 3660) / 3600) < 1e-9
    assert AuditEvent.objects.filter(action="usage.interval", target_id=str(instance.pk)).count() == 5


@pytest.mark.django_db
def test_instances_running_before_billing_are_metered_from_then_on():
    from billing.metering import meter_untracked

    _op, _admin, project, owner, profile, _cluster = priced_setup("meter2")
    instance = launch_at(owner=owner, project=project, profile=profile, name="old", at=at(0))
    move(instance, "provisioning", "ready", at=at(60))
    Meter.objects.all().delete()  # as if billing was installed now
    assert meter_untracked() == 1
    assert meter_untracked() == 0  # once
    meter = Meter.objects.get(instance_key=f"compute:{instance.pk}")
    [interval] = meter.intervals.all()
    assert interval.kind == "running" and interval.ended_at is None
    assert AuditEvent.objects.filter(action="usage.interval", details__reason="metering started").count() == 1
