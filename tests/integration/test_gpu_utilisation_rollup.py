"""End to end: the hourly roll-up (billing/rollup.py) stores the GPU utilisation the cluster's real
Prometheus reports for a metered instance's namespace, and the idle-but-allocated GPU-seconds that
follow from it; an instance whose namespace Prometheus knows nothing of stays unknown (NULL, not 0)."""

import datetime as dt

import pytest

from billing.models import Meter, UsageRecord
from billing.rollup import hour_start, rollup_hour
from billing.selectors import now_second
from instances.models import ComputeInstance
from instances.namespace import namespace_for
from tests.support.billing import launch_at, move, priced_setup, usage_rows
from tests.support.wait import wait_for

pytestmark = pytest.mark.django_db


def _placed(instance: ComputeInstance) -> ComputeInstance:
    """Its namespace, as the deployer names it before the first pod (instances/deployer.py)."""
    ComputeInstance.objects.filter(pk=instance.pk).update(namespace=namespace_for(instance))
    instance.refresh_from_db()
    return instance


def test_the_rollup_stores_utilisation_and_idle_gpu_seconds_from_prometheus(prometheus):
    _op, _admin, project, owner, profile, cluster = priced_setup("idle")
    cluster.prometheus_url = prometheus.url
    cluster.save(update_fields=["prometheus_url"])
    launched = now_second() - dt.timedelta(hours=2)
    busy = _placed(launch_at(owner=owner, project=project, profile=profile, name="busy", at=launched))
    quiet = _placed(launch_at(owner=owner, project=project, profile=profile, name="quiet", at=launched))
    prometheus.exporter.set_gpu(namespace=busy.namespace, pod="busy-0", percent=25, gpu=8)
    prometheus.wait_for_samples(busy.namespace, 3)
    # The hour so far must hold a few scrapes: just after the hour turns, wait until it does.
    wait_for(lambda: (now_second() - hour_start(now_second())).total_seconds() >= 5, timeout=10)
    now = now_second()
    hour = hour_start(now)
    for instance in (busy, quiet):  # running since before the hour
        move(instance, "provisioning", at=hour - dt.timedelta(minutes=5))
        move(instance, "ready", at=hour - dt.timedelta(minutes=4))
    meter = Meter.objects.get(instance_key=f"compute:{busy.pk}")
    assert (meter.namespace, meter.gpus) == (busy.namespace, 1)

    rollup_hour(hour, now=now)

    record = UsageRecord.objects.get(meter=meter, hour=hour)
    running = int((now - hour).total_seconds())
    assert (record.running_seconds, record.gpu_seconds) == (running, running)
    assert record.gpu_utilisation == pytest.approx(0.25)
    assert record.idle_gpu_seconds == round(running * 0.75)
    other = UsageRecord.objects.get(meter__instance_key=f"compute:{quiet.pk}", hour=hour)
    assert other.gpu_seconds == running
    assert (other.gpu_utilisation, other.idle_gpu_seconds) == (None, None)  # unknown, not idle

    before = usage_rows(hour=hour)
    rollup_hour(hour, now=now)  # a re-run asks Prometheus again and changes nothing
    assert usage_rows(hour=hour) == before
