"""Benchmark: warm pools on the local control plane.

Run on purpose:  .venv/bin/python -m tests.benchmarks.bench_warm_pools

The shipped "small" system profile (one A100, the gpu-namespace template with its workspace volume,
the warm-pool strategy), two real ``manage.py qcluster`` worker processes on the default queue (the
cluster has no agent, so a claim's hand-over runs in the launch request) and launches through the API
(real HTTP against Django's threaded WSGI server, a personal API token). Prints:

* on-demand launch-to-ready (the baseline: launches of the same profile with its pool empty, each a
  miss deployed by the workers; p50, p95);
* the time the loop (``instances.pool_loop.converge`` and the workers' standby deploys) takes to fill
  a pool of 10 from empty;
* claim-to-ready, one launch at a time against the full pool of 10 with the workers idle (the launch
  POST to the instance READY; p50, p95; target p50 under 0.3 s, beside the on-demand p50 of the same
  run), with the API's answer and the hand-over run's own time;
* 10 concurrent claims (the pool emptied at once): their claim-to-ready, and the time the loop takes
  to refill the pool to 10 ready after them (the converge each claim enqueues, run by the workers,
  plus one called here at once, as the schedule's tick would).

The "warm pools" schedule (every minute) is removed at the start so that nothing but the claims and
this script runs the loop: the baseline's misses would otherwise find standbys.
"""

import json
import statistics
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TARGET_P50 = 0.3  # seconds, claim-to-ready
POOL = 10
DATABASE = "gpupaas_bench_pools"


def pct(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    from tests.benchmarks._db import fresh_database
    from tests.benchmarks._workers import start_workers, stop_workers
    from tests.benchmarks._world import bench_world

    db_url = fresh_database(DATABASE)
    from django.core.servers.basehttp import (
        ThreadedWSGIServer,
        WSGIRequestHandler,
        get_internal_wsgi_application,
    )
    from django_q.models import OrmQ, Schedule

    from catalog import services as catalog_services
    from catalog.models import ComputeProfile
    from instances import pool_loop
    from instances.models import ComputeInstance, Run, StandbyInstance, WarmPool
    from paas.services import api_token_create
    from tests.localkube import LocalCluster
    from tests.localkube.inventory import A100_40GB, NodeSpec

    # "small" holds 1 GPU, 26 CPU and 200 GiB: eight fit a node of this size. Room for the baseline,
    # the pool, the claimed instances and the refills together (about 45).
    nodes = [NodeSpec(f"a100-{i}", cpu=224, memory_gib=1800, gpu=A100_40GB) for i in range(6)]
    with LocalCluster(name="bench-pools", nodes=nodes, kata=True) as cluster:
        Schedule.objects.filter(func="instances.tasks.warm_pools_converge").delete()
        world = bench_world(cluster, system_catalog=True)
        operator = world.operator
        project = world.project
        owner = world.owner
        small = ComputeProfile.objects.get(org__isnull=True, name="small")
        assert small.allocation_strategy == ComputeProfile.Allocation.WARM_POOL
        _, token = api_token_create(actor=owner, name="bench", expires_in_days=1)

        class Quiet(WSGIRequestHandler):
            def log_message(self, *args):
                pass

        class Server(ThreadedWSGIServer):
            request_queue_size = 128

        httpd = Server(("127.0.0.1", 0), Quiet)
        httpd.set_app(get_internal_wsgi_application())
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{httpd.server_port}/api/v1/instances/"

        def launch(name: str) -> tuple[float, int, dict]:
            """POST a launch; returns when it was sent (wall clock, comparable with the database's
            timestamps: one host), the status and the body. The answer's own latency goes to ``answers``."""
            request = urllib.request.Request(
                url,
                data=json.dumps({"project": project.pk, "name": name, "profile": small.pk}).encode(),
                method="POST",
                headers={
                    "Authorization": f"Bearer {token}",
                    "Content-Type": "application/json",
                    "Host": "localhost",
                },
            )
            start, clock = time.time(), time.perf_counter()
            try:
                with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310 - http://127.0.0.1
                    result = start, response.status, json.loads(response.read())
            except urllib.error.HTTPError as exc:
                result = start, exc.code, json.loads(exc.read() or b"{}")
            answers[name] = time.perf_counter() - clock
            return result

        answers: dict[str, float] = {}

        def first_run(pk: int) -> Run:
            return Run.objects.filter(instance_id=pk).order_by("pk").first()

        def ready_at(pk: int, timeout=300) -> float:
            """When the instance became ready (its first run's end, written in the same transaction:
            exact, whenever it is looked at; waited for every 10 ms); a failure stops the benchmark."""
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                state, reason = ComputeInstance.objects.values_list("state", "state_reason").get(pk=pk)
                if state == "ready":
                    return first_run(pk).finished_at.timestamp()
                if state == "failed":
                    raise RuntimeError(f"instance {pk} failed: {reason}")
                time.sleep(0.01)
            raise RuntimeError(f"instance {pk} not ready in {timeout} s")

        def pool_ready(count: int, timeout=600) -> float:
            """When the profile's standbys ready reached ``count`` (waited for every 50 ms; the time is
            the database's: the newest ``ready_at`` of the ready ones)."""
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                standbys = StandbyInstance.objects.filter(profile=small)
                failed = standbys.filter(state="failed").values_list("namespace", "state_reason").first()
                if failed:
                    raise RuntimeError(f"standby {failed[0]} failed: {failed[1]}")
                ready = list(standbys.filter(state="ready").values_list("ready_at", flat=True))
                if len(ready) >= count:
                    return max(ready).timestamp()
                time.sleep(0.05)
            raise RuntimeError(f"the pool did not reach {count} ready in {timeout} s")

        def idle(timeout=300) -> None:
            """Until no task waits in the broker and the workers have been quiet for a moment."""
            deadline = time.monotonic() + timeout
            while OrmQ.objects.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.5)

        def from_pool(pk: int) -> bool:
            return ComputeInstance.objects.values_list("from_warm_pool", flat=True).get(pk=pk)

        workers = start_workers(db_url)
        try:
            # 1. Baseline: the pool is empty, every launch is a miss deployed on demand by the workers
            # (the first also waits for the workers to start: left out).
            on_demand = []
            for index in range(6):
                start, status, body = launch(f"od-{index}")
                assert status == 201, body
                on_demand.append(ready_at(body["id"]) - start)
                assert not from_pool(body["id"])
            on_demand = on_demand[1:]
            od_p50 = statistics.median(on_demand)
            print(
                f"on-demand launch-to-ready (baseline: misses of the same profile), 2 workers: "
                f"p50 {od_p50:.2f} s, p95 {pct(on_demand, 0.95):.2f} s"
            )

            # 2. Fill a pool of 10 from empty: the profile's pool size (the default pool follows it),
            # the loop run here, the standby deploys by the workers.
            catalog_services.profile_update(actor=operator, profile=small, warm_pool_size=POOL)
            started = time.time()
            pool_loop.converge()
            filled = pool_ready(POOL) - started
            pool = WarmPool.objects.get(profile=small, datacenter=None, cluster=None)
            print(f"pool of {POOL} filled from empty in {filled:.1f} s (loop + standby deploys, 2 workers)")

            # 3. Claims, one at a time, each against a full pool with the workers idle (the refill the
            # previous claim enqueued is done: on two shared cores a standby deploy running beside the
            # claim would be measured, not the claim).
            claims, handovers, misses = [], [], 0
            for index in range(POOL):
                pool_ready(POOL)
                idle()
                start, status, body = launch(f"claim-{index}")
                assert status == 201, body
                done = ready_at(body["id"])
                if from_pool(body["id"]):
                    claims.append(done - start)
                    run = first_run(body["id"])
                    handovers.append((run.finished_at - run.started_at).total_seconds())
                else:
                    misses += 1
            p50 = statistics.median(claims)
            print(
                f"claim-to-ready, one at a time ({len(claims)} claims, {misses} misses): p50 {p50:.3f} s, "
                f"p95 {pct(claims, 0.95):.3f} s ({'PASS' if p50 < TARGET_P50 else 'FAIL'}: target p50 < "
                f"{TARGET_P50} s; on-demand p50 {od_p50:.2f} s, {od_p50 / p50:.1f}x slower)"
            )
            answered = [answers[f"claim-{i}"] for i in range(POOL)]
            print(
                f"  of which: the launch API's answer p50 {statistics.median(answered):.3f} s (the hand-over "
                f"runs in the request), the hand-over run itself p50 {statistics.median(handovers):.3f} s"
            )

            # 4. Ten concurrent claims empty the pool at once; then the loop refills it.
            pool_ready(POOL)
            results, barrier = {}, threading.Barrier(POOL)

            def claim(index: int):
                barrier.wait()
                start, status, body = launch(f"burst-{index}")
                results[index] = (start, status, body)

            threads = [threading.Thread(target=claim, args=(i,)) for i in range(POOL)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            burst_end = time.time()
            pool_loop.converge(pool_id=pool.pk)  # as the schedule's tick would (the claims enqueued it too)
            assert all(status == 201 for _, status, _ in results.values()), results
            burst = [ready_at(body["id"]) - start for start, _, body in results.values()]
            hits = sum(from_pool(body["id"]) for _, _, body in results.values())
            refilled = pool_ready(POOL) - burst_end
            print(
                f"{POOL} concurrent claims ({hits} hits): claim-to-ready p50 "
                f"{statistics.median(burst):.3f} s, p95 {pct(burst, 0.95):.3f} s"
            )
            print(f"pool of {POOL} refilled {refilled:.1f} s after {POOL} concurrent claims (2 workers)")
            pool_loop.converge(pool_id=pool.pk)  # the status as the next tick writes it
            pool.refresh_from_db()
            print(f"pool status after the refill: {pool.status} {pool.status_reason}".rstrip())
        finally:
            stop_workers(workers)
            httpd.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
