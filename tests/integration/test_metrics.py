"""Metrics (paas/metrics.py, paas/metrics_views.py): ``/metrics`` behind its bearer token, requests by
route, the database's gauges, and after a real launch on the local control plane the figures scraped
through the test client, from a worker's own port (``manage.py qcluster`` deploying a second launch)
and from ``manage.py serve --workers 2`` in multi-process mode. Every scrape is parsed with
prometheus-client's own parser."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.test.utils import CaptureQueriesContext, override_settings
from django_q.tasks import async_task
from prometheus_client.parser import text_string_to_metric_families

from instances import pools
from instances.models import Run, StandbyInstance
from inventory.models import Agent
from paas import metrics
from paas.audit import audit_log, audit_seal_pending
from paas.audit_sinks import audit_sink_create
from paas.errors import ValidationFailed
from paas.models import AuditEvent
from tenancy.models import Quota
from tests.factories import make_profile, make_synced_cluster
from tests.support import processes
from tests.support.instances import launch, launch_instance
from tests.support.pools import make_standby
from tests.support.processes import database_url, free_port
from tests.support.wait import wait_for

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "metrics-token-0123456789abcdef"
MANIFESTS = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ instance.name }}-info\ndata:\n  a: b\n"
CPU = [{"cpu_cores": "1", "memory_gib": 1, "storage_gib": 1}]


# --- reading a scrape ----------------------------------------------------------------------------------


def parse(text: str) -> list[tuple[str, dict, float]]:
    return [
        (sample.name, sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def value(samples, name: str, **labels) -> float:
    """The sum of ``name``'s samples whose labels include ``labels`` (0 when there is none)."""
    return sum(v for n, ls, v in samples if n == name and labels.items() <= ls.items())


def series(samples, name: str, **labels) -> list[dict]:
    return [ls for n, ls, _ in samples if n == name and labels.items() <= ls.items()]


def scrape(client) -> list[tuple[str, dict, float]]:
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200, response.content[:500]
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    return parse(response.content.decode())


@pytest.fixture
def token(settings):
    settings.PAAS_METRICS_TOKEN = TOKEN
    return TOKEN


# --- the endpoint --------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_token_guards_metrics_and_nothing_else_sees_a_scrape(client, settings, world):
    settings.PAAS_METRICS_TOKEN = ""
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 404, "off: no endpoint"
    settings.PAAS_METRICS_TOKEN = TOKEN
    events = AuditEvent.objects.count()
    for authorization in ("", "Bearer", "Bearer wrong-token", f"Basic {TOKEN}", f"Bearer {TOKEN}x", TOKEN):
        response = client.get("/metrics", HTTP_AUTHORIZATION=authorization)
        assert response.status_code == 401, authorization
        assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'
        assert TOKEN not in response.content.decode()
    assert client.post("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 405
    # A signed-in user the account gate holds back (unverified email) is not redirected; nor is a scrape
    # by a pod's address (not an allowed host), nor over plain HTTP; nothing is audited.
    held = world.a.users["collaborator_ro"]
    held.email_verified = False
    held.save(update_fields=["email_verified"])
    client.force_login(held)
    assert client.get("/").status_code == 302, "the gate holds this user back elsewhere"
    assert client.get("/metrics").status_code == 401
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}", HTTP_HOST="10.42.0.7:8000")
    assert response.status_code == 200
    assert AuditEvent.objects.count() == events


@pytest.mark.django_db
def test_requests_are_counted_by_route_never_by_path(client, token, world):
    before = scrape(client)
    for brand, digest in ((12345, "aaa111"), (67890, "bbb222"), (13579, "ccc333")):
        client.get(f"/branding/{brand}/logo/{digest}/")
    client.get("/no-such-page-24680/")
    client.generic("BREW", "/login/")
    api = client
    api.force_login(world.a.users["org_admin"])
    api.get("/api/v1/tokens/987654/")
    after = scrape(client)
    route = "/branding/<int:brand_id>/<str:kind>/<str:digest>/"
    got = value(after, "paas_http_requests_total", route=route, method="GET")
    assert got - value(before, "paas_http_requests_total", route=route, method="GET") == 3
    duration = "paas_http_request_duration_seconds_count"
    assert value(after, duration, route=route) - value(before, duration, route=route) == 3
    assert value(after, "paas_http_requests_total", route="<unmatched>", status="404") >= 1
    assert value(after, "paas_http_requests_total", route="/login/", method="other") >= 1
    assert value(after, "paas_http_requests_total", route="/api/v1/tokens/<pk>/", status="404") >= 1
    labels = {v for _, ls, _ in after for v in ls.values()}
    assert not any(any(id_ in v for id_ in ("12345", "aaa111", "24680", "987654")) for v in labels), labels
    assert not any(n.startswith("paas_http") and ls.get("route") == "/metrics" for n, ls, _ in after)


@pytest.mark.django_db
def test_the_request_middleware_adds_no_query(client, world):
    """The same pages, with and without the metrics middleware: the same queries."""
    client.force_login(world.a.users["org_admin"])
    pages = ["/", "/api/v1/tokens/", "/no-such-page/"]
    without = [m for m in django_settings.MIDDLEWARE if m != "paas.metrics_views.RequestMetricsMiddleware"]
    counts = {}
    for name, middleware in (("with", django_settings.MIDDLEWARE), ("without", without)):
        with override_settings(MIDDLEWARE=middleware):
            for page in pages:
                client.get(page)  # warm (caches, sessions)
            with CaptureQueriesContext(connection) as queries:
                for page in pages:
                    assert client.get(page).status_code in (200, 302, 404), page
            counts[name] = len(queries)
    assert counts["with"] == counts["without"] > 0


@pytest.mark.django_db
def test_the_database_gauges_at_scrape_time(client, token, world, django_assert_max_num_queries):
    """Clusters, warm pools, quota limits and the audit stream's lag, read when scraped: a fixed number
    of queries, however many rows."""
    org = world.a.org
    Quota.objects.filter(org=org).update(gpus=4, instances=10)
    cluster = make_synced_cluster(name="gpu-east")
    make_synced_cluster(name="gpu-west").__class__.objects.filter(name="gpu-west").update(
        status="unreachable"
    )
    profile = make_profile(
        actor=world.operator,
        project=None,
        name="pooled",
        template="t-pooled",
        manifests=MANIFESTS,
        resource_groups=CPU,
        allocation_strategy="warm_pool",
        warm_pool_size=2,
    )
    pool = pools.pool_create(actor=world.operator, profile=profile, cluster=cluster, desired=3)
    live = {"profile": profile, "cluster": cluster}
    make_standby(live, pool=pool, state=StandbyInstance.State.READY)
    make_standby(live, pool=pool, state=StandbyInstance.State.PROVISIONING)
    sink = audit_sink_create(
        actor=world.a.users["org_admin"],
        org=org,
        name="siem",
        kind="https",
        url="https://127.0.0.1:9/events",
        secret="s" * 32,
        from_beginning=True,
    )
    async_task("math.floor", 1.5)  # a task on the default queue; an agent's queue with none
    Agent.objects.create(name="edge")
    for n in range(3):
        audit_log(actor=None, action="test.event", target=org, org=org, details={"n": n})
    audit_seal_pending()  # (chained as their transactions commit, which a test's never does)
    with CaptureQueriesContext(connection) as queries:
        samples = scrape(client)
    assert value(samples, "paas_cluster_reachable", cluster="gpu-east") == 1
    assert value(samples, "paas_cluster_reachable", cluster="gpu-west") == 0
    assert value(samples, "paas_cluster_status", cluster="gpu-west", status="unreachable") == 1
    assert value(samples, "paas_cluster_status", cluster="gpu-west", status="reachable") == 0
    scoped = {"pool": str(pool.pk), "profile": "pooled", "scope": "gpu-east"}
    assert value(samples, "paas_warm_pool_ready", **scoped) == 1
    assert value(samples, "paas_warm_pool_provisioning", **scoped) == 1
    assert value(samples, "paas_warm_pool_target", **scoped) == 3
    assert value(samples, "paas_quota_limit", org=org.name, resource="gpus") == 4
    assert value(samples, "paas_quota_limit", org=org.name, resource="instances") == 10
    assert not series(samples, "paas_quota_limit", org=org.name, resource="memory_gib"), "unlimited: none"
    assert value(samples, "paas_quota_used", org=org.name, resource="instances") == 0
    sink.refresh_from_db()
    head = AuditEvent.objects.filter(chain=org.pk).count()
    lag = value(samples, "paas_audit_sink_lag_events", sink="siem", org=org.name)
    assert lag == head - sink.cursor >= 3
    assert value(samples, "paas_audit_sink_lag_seconds", sink="siem", org=org.name) > 0
    assert value(samples, "paas_queue_tasks", queue="default", state="waiting") == 1
    assert value(samples, "paas_queue_tasks", queue="agent-edge", state="waiting") == 0
    assert value(samples, "paas_queue_oldest_task_age_seconds", queue="default") >= 0
    for collector in ("audit_sinks", "clusters", "queues", "warm_pools", "quotas", "usage_counter_drift"):
        assert value(samples, "paas_metrics_collector_up", collector=collector) == 1, collector
    database = [q["sql"] for q in queries.captured_queries]
    # More rows of each kind: not one query more.
    make_synced_cluster(name="gpu-north")
    pools.pool_create(actor=world.operator, profile=profile, desired=1)
    with django_assert_max_num_queries(len(database)):
        scrape(client)
    assert len(database) == 10, database  # docs/operations.md "Metrics and logs" says so


@pytest.mark.django_db
def test_a_failing_collector_is_reported_not_raised(client, token):
    def broken():
        raise RuntimeError("no such table")

    metrics.register_database_collector("broken", broken)
    try:
        samples = scrape(client)
    finally:
        metrics._database_collectors.pop("broken")
    assert value(samples, "paas_metrics_collector_up", collector="broken") == 0
    assert value(samples, "paas_metrics_collector_up", collector="clusters") == 1


# --- after a real launch: the test client, a worker's port, `serve --workers 2` ----------------------------


@contextmanager
def _process(args: list[str], log: Path, **extra_env: str) -> Iterator[subprocess.Popen]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "paas.settings.test",
        "DATABASE_URL": database_url(),
        "PAAS_METRICS_TOKEN": TOKEN,
        "PYTHONUNBUFFERED": "1",
        **extra_env,
    }
    for name in ("DJANGO_ALLOW_ASYNC_UNSAFE", "PROMETHEUS_MULTIPROC_DIR", metrics.PREPARED_ENV):
        if name not in extra_env:
            env.pop(name, None)
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=env,
            start_new_session=True,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process
    finally:
        processes.stop(process)


def _get(url: str, token: str | None = TOKEN, **headers) -> httpx.Response:
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.get(url, headers=headers, timeout=30)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code > 0
    except httpx.HTTPError:
        return False


@pytest.mark.kube
@pytest.mark.django_db(transaction=True)
def test_metrics_after_a_real_launch(live, client, token, tmp_path):
    world = live["world"]
    org = world.a.org.name
    before = scrape(client)

    instance = launch_instance(live)  # the launch service, then the deployer to ready (this process)
    samples = scrape(client)

    def delta(name, **labels):
        return value(samples, name, **labels) - value(before, name, **labels)

    assert delta("paas_launches_total", kind="compute", outcome="launched") == 1
    assert delta("paas_launch_duration_seconds_count", kind="compute", outcome="launched") == 1
    deployed = {"target": "instance", "kind": "deploy", "outcome": "succeeded"}
    assert delta("paas_deploys_total", **deployed) == 1
    assert delta("paas_deploy_duration_seconds_count", **deployed) == 1
    assert delta("paas_deploy_duration_seconds_sum", **deployed) > 0
    assert value(samples, "paas_quota_used", org=org, resource="instances") == 1
    assert value(samples, "paas_quota_used", org=org, resource="memory_gib") == instance.memory_gib
    assert value(samples, "paas_quota_used", org=org, resource="cpu_cores") == instance.cpu_millis / 1000
    assert value(samples, "paas_cluster_reachable", cluster="local") == 1
    # The deploy the launch queued on commit waits on the default queue (this test ran it itself).
    assert value(samples, "paas_queue_tasks", queue="default", state="waiting") >= 1
    assert value(samples, "paas_queue_oldest_task_age_seconds", queue="default") > 0
    # A refused launch is counted by its code.
    with pytest.raises(ValidationFailed, match="Invalid name"):
        launch(world, live["profile"], instance.name)
    assert (
        value(scrape(client), "paas_launches_total", kind="compute", outcome="invalid")
        - value(before, "paas_launches_total", kind="compute", outcome="invalid")
        == 1
    )

    # A worker deploys a second launch and serves its processes' counters on its own port; meanwhile
    # `serve --workers 2` starts in multi-process mode (both started at once: each takes seconds).
    second = launch(world, live["profile"], "second")
    directory = tmp_path / "metrics"
    directory.mkdir()
    (directory / "counter_424242.db").write_bytes(b"left by an earlier run, unreadable")
    port, web_port = free_port(), free_port()
    url, base = f"http://127.0.0.1:{port}/metrics", f"http://127.0.0.1:{web_port}"
    with ExitStack() as running:
        running.enter_context(
            _process(
                ["qcluster"],
                tmp_path / "worker.log",
                PAAS_WORKERS="1",
                PAAS_WORKER_METRICS_PORT=f"127.0.0.1:{port}",
            )
        )
        running.enter_context(
            _process(
                ["serve", f"127.0.0.1:{web_port}", "--no-worker", "--workers", "2"],
                tmp_path / "serve.log",
                PROMETHEUS_MULTIPROC_DIR=str(directory),
                PAAS_DB_POOL_MAX="2",
            )
        )
        wait_for(lambda: _answers(url), timeout=120, interval=0.2, what="the worker's metrics port")
        assert _get(url, token=None).status_code == 401
        assert _get(url, token="wrong").status_code == 401
        assert _get(f"http://127.0.0.1:{port}/other").status_code == 404
        run = second.runs.get()
        wait_for(
            lambda: Run.objects.get(pk=run.pk).outcome in (Run.Outcome.SUCCEEDED, Run.Outcome.FAILED),
            timeout=240,
            interval=0.5,
            what="the worker's deploy of the second launch",
        )
        assert Run.objects.get(pk=run.pk).outcome == Run.Outcome.SUCCEEDED, (
            tmp_path / "worker.log"
        ).read_text()
        wait_for(
            lambda: value(parse(_get(url).text), "paas_deploys_total", **deployed) == 1,
            timeout=30,
            interval=0.2,
            what="the deploy counted on the worker's port",
        )
        from_worker = parse(_get(url).text)
        assert value(from_worker, "paas_deploy_duration_seconds_count", **deployed) == 1
        assert not series(from_worker, "paas_quota_used"), "the database's gauges are the web port's"

        # The web processes: requests answered by both, summed at a scrape of either.
        wait_for(lambda: _answers(base + "/login/"), timeout=120, interval=0.2, what="serve --workers 2")
        assert not (directory / "counter_424242.db").exists(), "cleaned at the server's start"
        login = {"route": "/login/", "method": "GET", "status": "200"}
        counted = value(parse(_get(base + "/metrics").text), "paas_http_requests_total", **login)
        with ThreadPoolExecutor(max_workers=8) as pool:
            statuses = list(pool.map(lambda _: _get(base + "/login/", token=None).status_code, range(40)))
        assert statuses == [200] * 40
        assert _get(base + "/metrics", token=None).status_code == 401
        assert _get(base + "/metrics", token="wrong").status_code == 401
        response = _get(base + "/metrics", Host="10.42.0.7:8000")  # a pod's address: no host check
        assert response.status_code == 200, (tmp_path / "serve.log").read_text()[-3000:]
        served = parse(response.text)
        assert value(served, "paas_http_requests_total", **login) - counted == 40
        writers = {name.rsplit("_", 1)[1] for name in os.listdir(directory) if name.startswith("counter_")}
        assert len(writers) >= 2, f"one process answered every request: {sorted(os.listdir(directory))}"
        assert value(served, "paas_quota_used", org=org, resource="instances") == 2
        assert value(served, "paas_cluster_reachable", cluster="local") == 1
        assert value(served, "paas_http_requests_in_progress") >= 0
