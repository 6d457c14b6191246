"""Agent routing with real worker processes: each agent's worker takes only its datacenter's work."""

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django_q.models import OrmQ

from inventory import routing, services
from tests.factories import DEAD_KUBECONFIG, make_operator
from tests.support.wait import WaitTimedOut, wait_for

ROOT = Path(__file__).resolve().parents[2]


def _worker(queue: str) -> subprocess.Popen:
    db = settings.DATABASES["default"]
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "DJANGO_SETTINGS_MODULE": "paas.settings.test",
        "Q_CLUSTER_NAME": queue,
    }
    return subprocess.Popen(
        [sys.executable, "manage.py", "qcluster"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _ran(record: Path) -> int:
    """How many tasks the workers have recorded so far."""
    return len(record.read_text().splitlines()) if record.exists() else 0


@pytest.mark.django_db(transaction=True)
def test_tasks_reach_only_the_agent_of_the_clusters_datacenter(tmp_path):
    op = make_operator(username="router")
    dc_a = services.datacenter_create(
        actor=op, name="dc-a", kind="data_center", infrastructure_type="bare_metal"
    )
    dc_b = services.datacenter_create(
        actor=op, name="dc-b", kind="data_center", infrastructure_type="vsphere"
    )
    agent_a = services.agent_create(actor=op, name="dc-a", datacenter=dc_a)
    services.agent_create(actor=op, name="everywhere")
    services.datacenter_agent_set(actor=op, datacenter=dc_a, agent=agent_a)
    in_a = services.cluster_register(actor=op, name="in-a", datacenter=dc_a, kubeconfig=DEAD_KUBECONFIG)
    in_b = services.cluster_register(actor=op, name="in-b", datacenter=dc_b, kubeconfig=DEAD_KUBECONFIG)
    assert routing.queue_for_cluster(in_a) == "agent-dc-a"
    assert routing.queue_for_cluster(in_b) == "agent-everywhere"  # dc-b is not mapped: a global agent
    OrmQ.objects.all().delete()  # the registrations' own refresh tasks are not this test's business

    record = tmp_path / "ran.txt"
    for index in range(3):
        routing.enqueue_for_cluster(in_a, "tests.support.tasks.record_worker", str(record), f"a{index}")
        routing.enqueue_for_cluster(in_b, "tests.support.tasks.record_worker", str(record), f"b{index}")
    assert OrmQ.objects.filter(key="agent-dc-a").count() == 3
    assert OrmQ.objects.filter(key="agent-everywhere").count() == 3

    worker_a = _worker("agent-dc-a")
    try:
        wait_for(lambda: _ran(record) >= 3, 60, 0.3, what="agent-dc-a to run its three tasks")
        time.sleep(2)  # give a wrongly routed task the chance to run too
        ran = sorted(record.read_text().splitlines())
        assert ran == ["a0 agent-dc-a", "a1 agent-dc-a", "a2 agent-dc-a"]  # b's work waits for its agent
        assert OrmQ.objects.filter(key="agent-everywhere").count() == 3
        worker_b = _worker("agent-everywhere")
        try:
            with contextlib.suppress(WaitTimedOut):  # the assertion below names what ran
                wait_for(lambda: _ran(record) >= 6, 60, 0.3)
        finally:
            worker_b.terminate()
            worker_b.wait(timeout=30)
    finally:
        worker_a.terminate()
        worker_a.wait(timeout=30)
    ran = sorted(record.read_text().splitlines())
    assert ran[3:] == ["b0 agent-everywhere", "b1 agent-everywhere", "b2 agent-everywhere"]
    # Each agent has its heartbeat schedule pinned to its own queue.
    from django_q.models import Schedule

    assert set(
        Schedule.objects.filter(func="paas.tasks.worker_heartbeat").values_list("cluster", flat=True)
    ) >= {"agent-dc-a", "agent-everywhere"}
