"""Benchmark: deploying services onto a compute instance on the local control plane.

Run on purpose:  .venv/bin/python -m tests.benchmarks.bench_services

Prints, from the shipped system catalog (the Jupyter notebook service profile, "Minimal", on the
"small" compute profile: one A100, the gpu-namespace template with its workspace volume bound by the
local cluster's provisioner):

* service launch-to-ready, one at a time, with two real ``manage.py qcluster`` worker processes
  (p50, p95; target p50 under 1.5 s), beside the compute instance launch-to-ready measured in the
  same run (the baseline: the same workers, API and cluster);
* the service launch API at 20 concurrent clients on one instance (p50, p95; real HTTP against
  Django's threaded WSGI server, personal API tokens), beside a GET of that instance by the same 20
  clients (the baseline: what the server costs without a launch).
"""

import json
import statistics
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TARGET_P50 = 1.5  # seconds, notebook launch-to-ready


def pct(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    from tests.benchmarks._db import fresh_database
    from tests.benchmarks._workers import start_workers, stop_workers
    from tests.benchmarks._world import bench_world

    db_url = fresh_database()
    from django.core.servers.basehttp import (
        ThreadedWSGIServer,
        WSGIRequestHandler,
        get_internal_wsgi_application,
    )

    from catalog.models import ComputeProfile, ServiceProfile
    from instances.models import ComputeInstance, ServiceInstance
    from paas.services import api_token_create
    from tests.localkube import LocalCluster
    from tests.localkube.inventory import A100_40GB, NodeSpec

    nodes = [NodeSpec(f"a100-{i}", cpu=96, memory_gib=1152, gpu=A100_40GB) for i in range(4)]
    with LocalCluster(name="bench-services", nodes=nodes, kata=True) as cluster:
        world = bench_world(cluster, system_catalog=True)
        project = world.project
        owner = world.owner
        small = ComputeProfile.objects.get(org__isnull=True, name="small")
        notebook = ServiceProfile.objects.get(org__isnull=True, name="jupyter-notebook")
        _, token = api_token_create(actor=owner, name="bench", expires_in_days=1)

        class Quiet(WSGIRequestHandler):
            def log_message(self, *args):
                pass

        class Server(ThreadedWSGIServer):
            request_queue_size = 128  # socketserver's default backlog of 5 resets a burst of connections

        httpd = Server(("127.0.0.1", 0), Quiet)
        httpd.set_app(get_internal_wsgi_application())
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        base = f"http://127.0.0.1:{httpd.server_port}/api/v1"

        def call(method: str, path: str, body: dict | None = None) -> tuple[float, int, dict]:
            request = urllib.request.Request(  # noqa: S310 - http://127.0.0.1 only
                f"{base}{path}",
                data=json.dumps(body).encode() if body is not None else None,
                method=method,
                headers={
                    "Authorization": f"Bearer {token}",
                    "Content-Type": "application/json",
                    "Host": "localhost",
                },
            )
            start = time.perf_counter()
            try:
                with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 - http://127.0.0.1
                    return time.perf_counter() - start, response.status, json.loads(response.read())
            except urllib.error.HTTPError as exc:
                return time.perf_counter() - start, exc.code, json.loads(exc.read() or b"{}")

        workers = start_workers(db_url)
        try:

            def settled(model, ids, timeout=300) -> dict[int, float]:
                """When each row reached ready (polled every 20 ms); a failure stops the benchmark."""
                done, deadline = {}, time.monotonic() + timeout
                while len(done) < len(ids) and time.monotonic() < deadline:
                    rows = model.objects.filter(pk__in=ids).values_list("pk", "state", "state_reason")
                    for pk, state, reason in rows:
                        if pk not in done and state == "ready":
                            done[pk] = time.perf_counter()
                        elif state == "failed":
                            raise RuntimeError(f"{model.__name__} {pk} failed: {reason}")
                    time.sleep(0.02)
                if len(done) < len(ids):
                    raise RuntimeError(f"{len(ids) - len(done)} of {len(ids)} not ready in {timeout} s")
                return done

            # Baseline: compute instances (launch-to-ready), the first one also warms the workers up.
            instance_times, instance_ids = [], []
            for index in range(4):
                start = time.perf_counter()
                _, status, body = call(
                    "POST", "/instances/", {"project": project.pk, "name": f"ci-{index}", "profile": small.pk}
                )
                assert status == 201, body
                instance_ids.append(body["id"])
                instance_times.append(settled(ComputeInstance, [body["id"]])[body["id"]] - start)
            instance_times = instance_times[1:]  # the first waited for the workers to start
            target = instance_ids[0]

            def launch(name: str, on: int, inputs: dict) -> tuple[float, int, dict]:
                return call(
                    "POST",
                    "/service-instances/",
                    {"compute_instance": on, "profile": notebook.pk, "name": name, "inputs": inputs},
                )

            small_notebook = {"notebook_profile": "Minimal", "cpu": 1, "memory_gib": 4}
            service_times = []
            for index in range(12):
                start = time.perf_counter()
                _, status, body = launch(f"nb-{index}", instance_ids[1 + index % 3], small_notebook)
                assert status == 201, body
                service_times.append(settled(ServiceInstance, [body["id"]])[body["id"]] - start)
            p50 = statistics.median(service_times)
            print(
                f"compute instance launch-to-ready (baseline), 2 workers: p50 "
                f"{statistics.median(instance_times):.2f} s, p95 {pct(instance_times, 0.95):.2f} s"
            )
            print(
                f"notebook service launch-to-ready, one at a time, 2 workers: p50 {p50:.2f} s, p95 "
                f"{pct(service_times, 0.95):.2f} s ({'PASS' if p50 < TARGET_P50 else 'FAIL'}: target p50 < "
                f"{TARGET_P50} s)"
            )

            def burst(request) -> tuple[list[float], list[int]]:
                latencies, statuses, barrier = [], [], threading.Barrier(20)

                def client(index: int):
                    barrier.wait()
                    elapsed, status, _ = request(index)
                    latencies.append(elapsed)
                    statuses.append(status)

                threads = [threading.Thread(target=client, args=(i,)) for i in range(20)]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
                return latencies, statuses

            baseline, _ = burst(lambda index: call("GET", f"/instances/{target}/"))
            # 20 notebooks of 1 CPU and 4 GiB fit the small instance (26 CPU, 200 GiB) together.
            latencies, statuses = burst(lambda index: launch(f"burst-{index}", target, small_notebook))
            accepted = statuses.count(201)
            print(
                f"GET of the instance at 20 concurrent clients (baseline): p50 "
                f"{statistics.median(baseline) * 1000:.0f} ms, p95 {pct(baseline, 0.95) * 1000:.0f} ms"
            )
            print(
                f"service launch API at 20 concurrent clients on one instance: {accepted}/20 accepted; "
                f"p50 {statistics.median(latencies) * 1000:.0f} ms, p95 {pct(latencies, 0.95) * 1000:.0f} ms"
            )
            ids = list(ServiceInstance.objects.filter(name__startswith="burst-").values_list("pk", flat=True))
            started = time.perf_counter()
            settled(ServiceInstance, ids)
            elapsed = time.perf_counter() - started
            print(f"the {len(ids)} burst services ready {elapsed:.1f} s after the burst")
        finally:
            stop_workers(workers)
            httpd.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
