"""Benchmark: launching compute instances on the local control plane.

Run on purpose:  .venv/bin/python -m tests.benchmarks.bench_instances

Prints the launch API latency at 50 concurrent clients (p50, p95: real HTTP against Django's threaded
WSGI server, personal API tokens), launch-to-ready time (p50, p95; target p50 under 3 s) with two
real `manage.py qcluster` worker processes, and how many instances those two workers deploy per
minute. The profile's template has a Deployment, so "ready" waits for a (KWOK) pod.
"""

import json
import statistics
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ instance.name }}-agent
spec:
  replicas: 1
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      runtimeClassName: kata
      securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}
      containers:
        - name: agent
          image: registry.example/agent:1
          resources: {limits: {cpu: "1", memory: 1Gi, nvidia.com/gpu: "1"}}
          securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
"""


def pct(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    from tests.benchmarks._db import fresh_database
    from tests.benchmarks._workers import start_workers, stop_workers

    db_url = fresh_database()
    from django.core.servers.basehttp import (
        ThreadedWSGIServer,
        WSGIRequestHandler,
        get_internal_wsgi_application,
    )

    from instances.models import ComputeInstance
    from inventory import services as inventory_services
    from inventory import tasks as inventory_tasks
    from paas.services import api_token_create
    from tenancy import services as tenancy_services
    from tenancy.roles import Role
    from tests.factories import UserFactory, add_member, make_operator, make_org, make_profile
    from tests.localkube import LocalCluster
    from tests.localkube.inventory import A100_40GB, NodeSpec

    nodes = [NodeSpec(f"a100-{i}", cpu=96, memory_gib=1152, gpu=A100_40GB) for i in range(20)]
    with LocalCluster(name="bench-instances", nodes=nodes, kata=True) as cluster:
        operator = make_operator(username="bench-op")
        org, admin = make_org(operator=operator, name="bench")
        project = tenancy_services.project_create(actor=admin, org=org, name="lab")
        owner = UserFactory(username="bench-owner")
        add_member(admin=admin, user=owner, role=Role.WORKSPACE_ADMIN, project=project)
        registered = inventory_services.cluster_register(
            actor=operator, name="local", kubeconfig=Path(cluster.kubeconfig_path).read_text()
        )
        inventory_tasks.cluster_refresh(registered.pk)
        profile = make_profile(
            actor=admin,
            project=project,
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
        _, token = api_token_create(actor=owner, name="bench", expires_in_days=1)

        class Quiet(WSGIRequestHandler):
            def log_message(self, *args):
                pass

        class Server(ThreadedWSGIServer):
            request_queue_size = 128  # socketserver's default backlog of 5 resets a burst of 50 connections

        httpd = Server(("127.0.0.1", 0), Quiet)
        httpd.set_app(get_internal_wsgi_application())
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{httpd.server_port}/api/v1/instances/"

        def launch(name: str) -> tuple[float, int, dict]:
            body = json.dumps({"project": project.pk, "name": name, "profile": profile.pk}).encode()
            request = urllib.request.Request(
                url,
                data=body,
                method="POST",
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
            time.sleep(3)  # workers up

            def wait_ready(ids, timeout=300) -> dict[int, float]:
                done, deadline = {}, time.monotonic() + timeout
                while len(done) < len(ids) and time.monotonic() < deadline:
                    for pk, state in ComputeInstance.objects.filter(pk__in=ids).values_list("pk", "state"):
                        if pk not in done and state in ("ready", "failed"):
                            done[pk] = time.perf_counter()
                            if state == "failed":
                                raise RuntimeError(
                                    f"instance {pk} failed: {ComputeInstance.objects.get(pk=pk).state_reason}"
                                )
                    time.sleep(0.05)
                return done

            to_ready, single = [], []
            for index in range(15):
                start = time.perf_counter()
                elapsed, status, body = launch(f"seq-{index}")
                assert status == 201, body
                single.append(elapsed)
                to_ready.append(wait_ready([body["id"]])[body["id"]] - start)
            print(
                f"launch API, one client: p50 {statistics.median(single) * 1000:.0f} ms, "
                f"p95 {pct(single, 0.95) * 1000:.0f} ms"
            )
            print(
                f"launch-to-ready, one at a time, 2 workers: p50 {statistics.median(to_ready):.2f} s, "
                f"p95 {pct(to_ready, 0.95):.2f} s ({'PASS' if statistics.median(to_ready) < 3 else 'FAIL'}: "
                f"target p50 < 3 s)"
            )

            latencies, ids, barrier = [], [], threading.Barrier(50)

            def client(index: int):
                barrier.wait()
                elapsed, status, body = launch(f"burst-{index}")
                latencies.append(elapsed)
                if status == 201:
                    ids.append(body["id"])

            started = time.perf_counter()
            threads = [threading.Thread(target=client, args=(i,)) for i in range(50)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            print(
                f"launch API at 50 concurrent clients: {len(ids)}/50 accepted; latency p50 "
                f"{statistics.median(latencies) * 1000:.0f} ms, p95 {pct(latencies, 0.95) * 1000:.0f} ms"
            )
            done = wait_ready(ids)
            elapsed = max(done.values()) - started
            print(
                f"deploy throughput, 2 workers: {len(done)} instances ready {elapsed:.1f} s after the burst "
                f"began = {len(done) / elapsed * 60:.0f} instances per minute"
            )
        finally:
            stop_workers(workers)
            httpd.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
