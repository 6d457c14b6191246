"""High availability without containers: two web processes (``manage.py serve --no-worker``) and two
worker clusters (``manage.py qcluster``) on one PostgreSQL, behind the test's load balancer
(tests/support/loadbalancer.py), launching instances on the real local control plane.

Under steady launches (the API, through the balancer) and page reads, one web process and one worker
cluster are killed (SIGKILL to their process groups: a node lost) while each cluster runs a deploy.
Then: no request is lost beyond those in flight at the kill; every launch the API accepted reaches
"ready" exactly once (one deploy run, one "instance.ready" event, one namespace with one set of
objects), the killed cluster's deploy re-delivered to the survivor (``PAAS_TASK_RETRY`` is a few
seconds here, so that happens within the test); each due time of a schedule ran once.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta

import httpx
import pytest
from django.utils import timezone
from django_q.models import Schedule, Task
from kubernetes import client as k8s

from instances.models import ComputeInstance, Run
from instances.states import State
from paas import services as paas_services
from paas.models import AuditEvent
from paas.platform_owned import LABEL_INSTANCE_ID
from tests.support import processes
from tests.support.loadbalancer import LoadBalancer
from tests.support.wait import wait_for

pytestmark = pytest.mark.kube

LAUNCHES, BURST, PAUSE = 9, 3, 3.0
READERS = 3
# Small on purpose: a task taken by the killed cluster is delivered again RETRY seconds after it was
# taken; a run whose worker died is re-driven by the reconcile after STALE seconds without a step.
# (TIMEOUT < RETRY, as in production: a task is never delivered twice while it may still run.)
WORKER_ENV = {
    "PAAS_WORKERS": "1",
    "PAAS_TASK_TIMEOUT": "25",
    "PAAS_TASK_RETRY": "30",
    "INSTANCE_RUN_STALE_SECONDS": "30",
    "PAAS_DB_POOL_MAX": "4",
}


@dataclass
class Outcome:
    what: str
    started: float
    ended: float
    status: int = 0
    error: str = ""
    name: str = ""


@dataclass
class Traffic:
    outcomes: list[Outcome] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, outcome: Outcome) -> None:
        with self.lock:
            self.outcomes.append(outcome)

    def timed(self, what: str, call, name: str = "") -> Outcome:
        started = time.monotonic()
        try:
            response = call()
            outcome = Outcome(what, started, time.monotonic(), status=response.status_code, name=name)
        except httpx.HTTPError as exc:
            outcome = Outcome(
                what, started, time.monotonic(), error=f"{type(exc).__name__}: {exc}", name=name
            )
        self.record(outcome)
        return outcome


def _client(base_url: str, token: str) -> httpx.Client:
    # A new connection per request: the balancer spreads them over both web processes.
    return httpx.Client(
        base_url=base_url,
        timeout=60,
        headers={"Authorization": f"Bearer {token}"},
        limits=httpx.Limits(max_keepalive_connections=0),
    )


def _read_pages(url: str, token: str, traffic: Traffic) -> None:
    paths = ["/api/v1/instances/", "/login/", "/healthz", "/api/v1/me/"]
    with _client(url, token) as http:
        for n in range(10**6):
            if traffic.stop.is_set():
                return
            path = paths[n % len(paths)]
            traffic.timed(f"GET {path}", lambda path=path: http.get(path))


def _launch(url: str, token: str, traffic: Traffic, project: int, profile: int) -> None:
    """Launches in bursts of three: a cluster of one worker holds at most two tasks (one running, one
    taken ahead), so each burst gives both clusters a deploy at once."""
    with _client(url, token) as http:
        for n in range(LAUNCHES):
            if traffic.stop.is_set():
                return
            name = f"ha-{n}"
            body = {"project": project, "name": name, "profile": profile}
            traffic.timed(
                "POST /api/v1/instances/", lambda body=body: http.post("/api/v1/instances/", json=body), name
            )
            if n % BURST == BURST - 1:
                traffic.stop.wait(PAUSE)


def _schedules(runs_file: str) -> None:
    """Exactly the schedules this test needs: the heartbeat (readiness), the reconcile (re-drives a run
    whose worker died) and a recorder whose every run says which due time it was."""
    Schedule.objects.all().delete()
    due = timezone.now() - timedelta(seconds=1)
    for name, func, args, kwarg in (
        ("ha heartbeat", "paas.tasks.worker_heartbeat", None, None),
        ("ha reconcile", "instances.tasks.reconcile", None, None),
        ("ha recorder", "tests.support.tasks.record_run", repr((runs_file, "recorder")), "intended"),
    ):
        Schedule.objects.create(
            name=name,
            func=func,
            args=args,
            schedule_type=Schedule.MINUTES,
            minutes=1,
            repeats=-1,
            next_run=due,
            intended_date_kwarg=kwarg,
        )


def test_two_web_processes_and_two_workers_survive_losing_one_of_each(
    transactional_db, live, kube_cluster, tmp_path
):
    world = live["world"]
    admin = world.a.users["workspace_admin"]
    _row, token = paas_services.api_token_create(actor=admin, name="ha")
    runs_file = tmp_path / "schedule-runs.txt"
    _schedules(str(runs_file))
    began = timezone.now()

    webs = [processes.serve(f"ha-web-{n}", tmp_path, PAAS_DB_POOL_MAX="4") for n in (1, 2)]
    workers = [processes.qcluster(f"ha-worker-{n}", tmp_path, **WORKER_ENV) for n in (1, 2)]
    everyone = webs + workers
    traffic = Traffic()
    threads: list[threading.Thread] = []

    def all_alive() -> None:
        for process in everyone:
            if process not in (doomed_web, doomed_worker) and not process.alive():
                pytest.fail(f"{process.name} exited:\n{process.output()}")

    doomed_web, doomed_worker = webs[0], workers[0]
    try:
        wait_for(lambda: all(w.accepting() for w in webs), 120, 0.2, "both web processes", check=all_alive)
        with LoadBalancer(("127.0.0.1", w.port) for w in webs) as balancer:
            for _ in range(READERS):
                threads.append(threading.Thread(target=_read_pages, args=(balancer.url, token, traffic)))
            threads.append(
                threading.Thread(
                    target=_launch,
                    args=(balancer.url, token, traffic, world.a.project.pk, live["profile"].pk),
                )
            )
            for thread in threads:
                thread.start()

            # Each cluster runs one worker: two runs running at once means each cluster runs a deploy.
            wait_for(
                lambda: Run.objects.filter(outcome=Run.Outcome.RUNNING).count() >= 2,
                timeout=120,
                interval=0.05,
                what="both clusters deploying at once",
                check=all_alive,
            )
            killed_at = time.monotonic()
            doomed_worker.kill()
            doomed_web.kill()  # (reaped: its sockets are closed from here on)
            dead_at = time.monotonic()

            # Traffic goes on until every launch was sent and for a while after the kill.
            wait_for(
                lambda: (
                    sum(o.what.startswith("POST") for o in traffic.outcomes) >= LAUNCHES
                    and time.monotonic() - dead_at > 5
                ),
                timeout=60,
                interval=0.2,
                what="the launches sent",
                check=all_alive,
            )
            traffic.stop.set()
            for thread in threads:
                thread.join(timeout=90)

            # Every launch accepted reaches "ready" (the killed cluster's deploy re-delivered).
            launched = [o.name for o in traffic.outcomes if o.what.startswith("POST") and o.status == 201]

            def settled():
                states = dict(
                    ComputeInstance.objects.filter(name__startswith="ha-").values_list("name", "state")
                )
                if any(state == State.FAILED for state in states.values()):
                    pytest.fail(f"a launch failed: {states}")
                return all(states.get(name) == State.READY for name in launched) and states

            states = wait_for(settled, timeout=120, interval=0.5, what="every launch ready", check=all_alive)
            refused = sum(balancer.refused.values())
            forwarded = dict(balancer.forwarded)
    finally:
        traffic.stop.set()
        for process in everyone:
            process.kill()

    # Requests: the only failures are those in flight at the kill, on the killed web process.
    failures = [o for o in traffic.outcomes if o.error or o.status >= 500]
    report = [
        (o.what, round(o.started - killed_at, 2), round(o.ended - killed_at, 2), o.error) for o in failures
    ]
    assert all(o.started <= dead_at and o.ended >= killed_at for o in failures), report
    assert len(failures) <= READERS + 1, report
    after = [o for o in traffic.outcomes if o.started > dead_at]
    assert len(after) >= 10 and all(o.status < 500 and not o.error for o in after)
    assert refused >= 1 and len(forwarded) == 2, (refused, forwarded)  # both served; the dead one skipped
    expected = {"GET": 200, "POST": 201}
    odd = [
        o
        for o in traffic.outcomes
        if not (o.error or o.status >= 500) and o.status != expected[o.what[:4].strip()]
    ]
    assert odd == [], odd

    # Launches: none lost (each accepted one is ready; one whose answer was lost is ready or absent),
    # none duplicated (one run, one ready event, one namespace with the same objects as the others).
    assert len(launched) >= LAUNCHES - len(failures) and set(launched) <= set(states)
    assert all(state == State.READY for state in states.values()), states
    core = live["core"]
    apps = k8s.AppsV1Api(core.api_client)
    object_sets = set()
    redelivered = 0
    for instance in ComputeInstance.objects.filter(name__startswith="ha-"):
        runs = list(instance.runs.all())
        assert [(r.kind, r.outcome) for r in runs] == [(Run.Kind.DEPLOY, Run.Outcome.SUCCEEDED)], (
            instance.name
        )
        redelivered += runs[0].attempt > 1
        ready_events = AuditEvent.objects.filter(
            action="instance.ready", target_type=ComputeInstance._meta.label_lower, target_id=str(instance.pk)
        )
        assert ready_events.count() == 1, instance.name
        namespaces = core.list_namespace(label_selector=f"{LABEL_INSTANCE_ID}={instance.pk}").items
        assert [ns.metadata.name for ns in namespaces] == [instance.namespace]
        deployments = apps.list_namespaced_deployment(instance.namespace).items
        object_sets.add(tuple(sorted(d.metadata.name for d in deployments)))
        assert all((d.status.ready_replicas or 0) == d.spec.replicas for d in deployments), instance.name
    assert len(object_sets) == 1, object_sets
    assert redelivered >= 1, "the killed cluster's deploy was run again by the survivor"

    # Schedules: each due time ran once, however many clusters looked at it (one of them killed).
    recorded = Counter(runs_file.read_text().splitlines())
    assert recorded and max(recorded.values()) == 1, recorded
    minutes = (timezone.now() - began).total_seconds() / 60
    for group, count in Counter(Task.objects.values_list("group", flat=True)).items():
        if group and group.startswith("ha "):
            assert count <= int(minutes) + 1, (group, count, minutes)
