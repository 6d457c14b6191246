"""Benchmark: the launch API on the production server, against the issue's targets.

Run on purpose:  .venv/bin/python -m tests.benchmarks.bench_instances

Serves the platform with ``manage.py serve --workers 2 --no-worker`` (uvicorn, as in production) on a
fresh database, then measures over real HTTP with a personal API token:

- one client launching one instance after another (target: p50 under 40 ms);
- 50 concurrent launches spread over 10 workspaces of one org (target: p95 under 1 s);
- 50 concurrent launches in one workspace (target: p95 under 2 s);

each beside the trivial endpoint ``GET /api/v1/me/`` measured the same way in the same run (one client,
then 50 concurrent), with where the machine's CPU went in each window (tests/benchmarks/_cpu.py: the
web server, PostgreSQL, the benchmark's client threads; per launch; and the least wall time the window's
CPU needs on this machine's cores). It also counts the SQL queries of one launch (the service called
in this process).
Launches only enqueue their deploy (no worker runs here: deploy throughput is
``tests/benchmarks/bench_deploy.py``'s), so the cluster is an inventory record with synced nodes.
"""

import json
import os
import statistics
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

MANIFESTS = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ instance.name }}-info\ndata:\n  a: b\n"
TARGETS = {"one": 0.040, "spread": 1.0, "one_workspace": 2.0}
WORKSPACES, BURST, SEQUENTIAL = 10, 50, 40


def pct(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _request(url: str, token: str, body: dict | None = None) -> tuple[float, int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(  # noqa: S310 - http://127.0.0.1 only
        url,
        data=data,
        method="POST" if body is not None else "GET",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json", "Host": "localhost"},
    )
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310 - http://127.0.0.1
            return time.perf_counter() - start, response.status, _body(response.read())
    except urllib.error.HTTPError as exc:
        return time.perf_counter() - start, exc.code, _body(exc.read())
    except (urllib.error.URLError, ConnectionError) as exc:
        return time.perf_counter() - start, 0, {"error": repr(exc)}


def _body(payload: bytes) -> dict:
    try:
        return json.loads(payload or b"{}")
    except ValueError:  # (a 500 page, say: shown as it is)
        return {"body": payload[:300].decode(errors="replace")}


def _up(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 - http://127.0.0.1
            return response.status == 200
    except (urllib.error.URLError, ConnectionError):
        return False


def _burst(count: int, work) -> list[tuple[float, int, dict]]:
    results, barrier = [None] * count, threading.Barrier(count)

    def run(index: int):
        barrier.wait()
        results[index] = work(index)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def _line(label: str, times: list[float], baseline: list[float], target: float | None, q: float) -> str:
    value = pct(times, q) if q != 0.5 else statistics.median(times)
    base = pct(baseline, q) if q != 0.5 else statistics.median(baseline)
    name = "p50" if q == 0.5 else "p95"
    verdict = (
        ""
        if target is None
        else f" [{'PASS' if value < target else 'FAIL'}: target {name} < {target * 1000:.0f} ms]"
    )
    return (
        f"{label}: p50 {statistics.median(times) * 1000:.1f} ms, p95 {pct(times, 0.95) * 1000:.1f} ms; "
        f"/api/v1/me/ same run p50 {statistics.median(baseline) * 1000:.1f} ms, "
        f"p95 {pct(baseline, 0.95) * 1000:.1f} ms "
        f"({name} {value / base:.1f}x the trivial endpoint){verdict}"
    )


def main() -> int:
    from tests.benchmarks._cpu import CpuWindow, settle
    from tests.benchmarks._db import fresh_database

    db_url = fresh_database("gpupaas_bench_instances")
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from catalog import services as catalog_services
    from catalog.models import ComputeProfile
    from instances.services import instance_launch
    from paas.services import api_token_create
    from tenancy import services as tenancy_services
    from tenancy.roles import Role
    from tests.factories import (
        UserFactory,
        add_member,
        make_operator,
        make_org,
        make_profile,
        make_synced_cluster,
    )
    from tests.support import processes

    operator = make_operator(username="bench-op")
    org, admin = make_org(operator=operator, name="bench")
    projects = [
        tenancy_services.project_create(actor=admin, org=org, name=f"ws{i}") for i in range(WORKSPACES + 1)
    ]
    owner = UserFactory(username="bench-owner")
    for project in projects:
        add_member(admin=admin, user=owner, role=Role.WORKSPACE_ADMIN, project=project)
    profile = make_profile(
        actor=admin,
        project=projects[0],
        manifests=MANIFESTS,
        name="one-gpu",
        template="agent",
        resource_groups=[
            {
                "gpu_model": "A100-SXM4-40GB",
                "gpu_count": 1,
                "cpu_cores": "2",
                "memory_gib": 4,
                "storage_gib": 1,
            }
        ],
    )
    catalog_services.item_share(actor=admin, item=profile, sharing="all")
    profile = ComputeProfile.objects.get(pk=profile.pk)
    make_synced_cluster(name="bench-c", nodes=50)  # 400 GPUs: room for every launch below (260)
    _, token = api_token_create(actor=owner, name="bench", expires_in_days=1)

    # Queries of one launch (the service, in this process; warm: a first launch primes the caches).
    instance_launch(actor=owner, project=projects[0], name="warm", profile=profile)
    with CaptureQueriesContext(connection) as queries:
        instance_launch(actor=owner, project=projects[0], name="counted", profile=profile)
    print(f"queries per launch (service call): {len(queries)}")
    # How long a launch holds the rows other launches wait for: from its decision (the cluster's
    # reservation, then the counters) to its commit, against the whole service call (in process).
    from django.db import transaction

    from instances import capacity, services

    held, calls, place_and_reserve = [], [], capacity.capacity_place_and_reserve

    def timed(**kwargs):
        started = time.perf_counter()
        transaction.on_commit(lambda: held.append(time.perf_counter() - started))
        return place_and_reserve(**kwargs)

    services.capacity_place_and_reserve = timed
    try:
        for index in range(20):
            started = time.perf_counter()
            instance_launch(actor=owner, project=projects[0], name=f"held-{index}", profile=profile)
            calls.append(time.perf_counter() - started)
    finally:
        services.capacity_place_and_reserve = place_and_reserve
    print(
        f"in process, 20 launches: service call p50 {statistics.median(calls) * 1000:.1f} ms; critical "
        f"section (reservation and decision to commit) p50 {statistics.median(held) * 1000:.1f} ms, "
        f"p95 {pct(held, 0.95) * 1000:.1f} ms"
    )
    if os.environ.get("BENCH_SHOW_QUERIES"):
        for query in queries.captured_queries:
            print("   ", query["sql"][:160])
    connection.close()

    log_dir = Path(tempfile.mkdtemp(prefix="bench-instances-"))
    os.environ["DATABASE_URL"] = db_url
    port = processes.free_port()
    server = processes.start(
        "bench-serve",
        ["serve", f"127.0.0.1:{port}", "--no-worker", "--workers", "2"],
        log_dir,
        port=port,
        DATABASE_URL=db_url,
    )
    try:
        deadline = time.monotonic() + 600  # (a loaded machine boots two web processes slowly)
        while not (server.accepting() and _up(f"{server.url}/healthz")):
            if not server.alive() or time.monotonic() > deadline:
                print("the server did not come up:", server.output()[-3000:])
                return 1
            time.sleep(0.2)
        base = server.url
        me, launches = f"{base}/api/v1/me/", f"{base}/api/v1/instances/"

        def launch(project, name):
            return _request(launches, token, {"project": project.pk, "name": name, "profile": profile.pk})

        # Warm both processes (a burst reaches both): imports, and the pooled connections' prepared
        # statements, which a server that has run a while holds on each of them. Bursts as wide as the
        # measured ones open as many connections, and two of them run a launch's statements on each
        # twice (PAAS_DB_PREPARE_THRESHOLD); fewer left the bursts below on connections still cold.
        for round_ in range(2):
            _burst(BURST, lambda i: _request(me, token))
            _burst(BURST, lambda i, r=round_: launch(projects[i % WORKSPACES], f"warm-{r}-{i}"))
        settle(server=server.pid)
        print(f"production server: manage.py serve --workers 2 --no-worker ({base}), fresh database")

        # One client.
        with CpuWindow(named={server.pid: "web server"}) as me_cpu:
            baseline = [_request(me, token)[0] for _ in range(SEQUENTIAL)]
        single = []
        with CpuWindow(named={server.pid: "web server"}) as launch_cpu:
            for index in range(SEQUENTIAL):
                elapsed, status, body = launch(projects[0], f"seq-{index}")
                assert status == 201, body
                single.append(elapsed)
        print(_line(f"launch API, one client ({SEQUENTIAL} launches)", single, baseline, TARGETS["one"], 0.5))
        print(launch_cpu.summary(per=SEQUENTIAL, what="launch"))
        print(me_cpu.summary(per=SEQUENTIAL, what="/api/v1/me/"))

        # 50 concurrent, each burst beside the trivial endpoint at the same concurrency just before.
        def concurrent(label: str, project_of, prefix: str, target: float) -> list:
            with CpuWindow(named={server.pid: "web server"}) as me_cpu:
                me_burst = [r[0] for r in _burst(BURST, lambda i: _request(me, token))]
            with CpuWindow(named={server.pid: "web server"}) as launch_cpu:
                results = _burst(BURST, lambda i: launch(project_of(i), f"{prefix}-{i}"))
            accepted = sum(1 for _, status, _ in results if status == 201)
            statuses = sorted({status for _, status, _ in results})
            label = f"{label} ({accepted}/{BURST} accepted, statuses {statuses})"
            print(_line(label, [r[0] for r in results], me_burst, target, 0.95))
            print(launch_cpu.summary(per=BURST, what="launch"))
            print(me_cpu.summary(per=BURST, what="/api/v1/me/"))
            return [body for _, status, body in results if status != 201]

        errors = concurrent(
            f"{BURST} concurrent launches over {WORKSPACES} workspaces of one org",
            lambda i: projects[i % WORKSPACES],
            "spread",
            TARGETS["spread"],
        )
        errors += concurrent(
            f"{BURST} concurrent launches in one workspace",
            lambda i: projects[WORKSPACES],
            "one",
            TARGETS["one_workspace"],
        )
        if errors:
            print("refusals:", errors[:3])
    finally:
        processes.stop(server.process)
    return 0


if __name__ == "__main__":
    sys.exit(main())
