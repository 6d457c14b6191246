"""Benchmark: deploying services onto a compute instance on the local control plane.

Run on purpose:  .venv/bin/python -m tests.benchmarks.bench_services

Prints service launch-to-ready (p50, p95; target p50 under 1.5 s) with two real `manage.py qcluster`
worker processes, one service at a time, for a notebook-shaped service (a Deployment of one pod, its
Service, an Ingress on the assigned host and a token Secret: tests/support/services.py), and the launch
API's latency (p50, p95) at 20 concurrent launches on one instance (real HTTP against Django's threaded
WSGI server, a personal API token), with how many of the 20 the instance's capacity let in. Uses its
own database, gpupaas_bench_services.
"""

import json
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COMPUTE_MANIFESTS = (
    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ instance.name }}-info\ndata:\n  a: b\n"
)


def pct(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def fresh_database() -> str:
    import psycopg

    from tests.support import postgres

    base = postgres.ensure().rsplit("/", 1)[0]
    url = f"{base}/gpupaas_bench_services"
    os.environ.update(DATABASE_URL=url, DJANGO_SETTINGS_MODULE="paas.settings.test")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS gpupaas_bench_services")
        conn.execute("CREATE DATABASE gpupaas_bench_services")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return url


def main() -> int:
    db_url = fresh_database()
    from django.core.servers.basehttp import (
        ThreadedWSGIServer,
        WSGIRequestHandler,
        get_internal_wsgi_application,
    )

    from instances import deployer
    from instances.models import ServiceInstance
    from instances.services import instance_launch
    from inventory import services as inventory_services
    from inventory import tasks as inventory_tasks
    from paas.services import api_token_create
    from tenancy import services as tenancy_services
    from tenancy.roles import Role
    from tests.factories import UserFactory, make_operator, make_org, make_profile
    from tests.localkube import LocalCluster
    from tests.localkube.inventory import A100_40GB, NodeSpec
    from tests.support.services import make_service_profile

    nodes = [NodeSpec(f"a100-{i}", cpu=96, memory_gib=1152, gpu=A100_40GB) for i in range(2)]
    with LocalCluster(name="bench-services", nodes=nodes, kata=True) as cluster:
        operator = make_operator(username="bench-op")
        org, admin = make_org(operator=operator, name="bench")
        project = tenancy_services.project_create(actor=admin, org=org, name="team")
        owner = UserFactory(username="bench-owner")
        tenancy_services.role_assign(actor=operator, user=owner, role=Role.WORKSPACE_ADMIN, project=project)
        registered = inventory_services.cluster_register(
            actor=operator, name="local", kubeconfig=Path(cluster.kubeconfig_path).read_text()
        )
        inventory_tasks.cluster_refresh(registered.pk)
        compute = make_profile(
            actor=admin,
            project=project,
            manifests=COMPUTE_MANIFESTS,
            name="box",
            template="box",
            resource_groups=[
                {
                    "gpu_model": "A100-SXM4-40GB",
                    "gpu_count": 1,
                    "cpu_cores": "8",
                    "memory_gib": 32,
                    "storage_gib": 10,
                }
            ],
        )
        instance = instance_launch(actor=owner, project=project, name="dev", profile=compute)
        assert deployer.execute(instance.runs.get().pk) == "ready"

        class World:  # what make_service_profile reads
            class a:
                users = {"paas_admin_org": admin}

        World.a.project = project
        profile = make_service_profile(World, name="notebook", service_type="notebook")
        _, token = api_token_create(actor=owner, name="bench", expires_in_days=1)

        class Quiet(WSGIRequestHandler):
            def log_message(self, *args):
                pass

        class Server(ThreadedWSGIServer):
            request_queue_size = 128

        httpd = Server(("127.0.0.1", 0), Quiet)
        httpd.set_app(get_internal_wsgi_application())
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        base = f"http://127.0.0.1:{httpd.server_port}/api/v1/service-instances/"

        def call(method: str, url: str, body: dict | None = None) -> tuple[float, int, dict]:
            request = urllib.request.Request(  # noqa: S310 - http://127.0.0.1 only
                url,
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
                    return time.perf_counter() - start, response.status, json.loads(response.read() or b"{}")
            except urllib.error.HTTPError as exc:
                return time.perf_counter() - start, exc.code, json.loads(exc.read() or b"{}")

        def launch(name: str) -> tuple[float, int, dict]:
            return call("POST", base, {"compute_instance": instance.pk, "profile": profile.pk, "name": name})

        def wait(ids, states=("ready",), timeout=120) -> dict[int, float]:
            done, deadline = {}, time.monotonic() + timeout
            while len(done) < len(ids) and time.monotonic() < deadline:
                for pk, state, reason in ServiceInstance.objects.filter(pk__in=ids).values_list(
                    "pk", "state", "state_reason"
                ):
                    if pk not in done and state in (*states, "failed"):
                        if state == "failed":
                            raise RuntimeError(f"service {pk} failed: {reason}")
                        done[pk] = time.perf_counter()
                time.sleep(0.02)
            return done

        env = {**os.environ, "DATABASE_URL": db_url, "PAAS_WORKERS": "1"}
        workers = [
            subprocess.Popen(
                [sys.executable, "manage.py", "qcluster"],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for _ in range(2)
        ]
        try:
            time.sleep(3)  # workers up
            to_ready, single = [], []
            for index in range(15):
                start = time.perf_counter()
                elapsed, status, body = launch(f"nb-{index}")
                assert status == 201, body
                single.append(elapsed)
                to_ready.append(wait([body["id"]])[body["id"]] - start)
                _, status, _ = call("DELETE", f"{base}{body['id']}/")
                assert status == 202
            p50 = statistics.median(to_ready)
            print(
                f"service launch API, one client: p50 {statistics.median(single) * 1000:.0f} ms, "
                f"p95 {pct(single, 0.95) * 1000:.0f} ms"
            )
            print(
                f"service launch-to-ready, one at a time, 2 workers: p50 {p50:.2f} s, "
                f"p95 {pct(to_ready, 0.95):.2f} s "
                f"({'PASS' if p50 < 1.5 else 'FAIL'}: target p50 < 1.5 s)"
            )
            wait(list(ServiceInstance.objects.values_list("pk", flat=True)), states=("deleted",))

            latencies, ids, refused, barrier = [], [], [], threading.Barrier(20)

            def client(index: int):
                barrier.wait()
                elapsed, status, body = launch(f"burst-{index}")
                latencies.append(elapsed)
                (ids if status == 201 else refused).append(body.get("id") or status)

            threads = [threading.Thread(target=client, args=(i,)) for i in range(20)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            print(
                f"service launch API at 20 concurrent launches on one instance: {len(ids)}/20 accepted "
                f"(refused: {sorted(set(refused))}); "
                f"latency p50 {statistics.median(latencies) * 1000:.0f} ms, "
                f"p95 {pct(latencies, 0.95) * 1000:.0f} ms"
            )
            started = time.perf_counter()
            done = wait(ids, timeout=300)
            print(
                f"those {len(done)} services ready {max(done.values()) - started:.1f} s after the burst ended"
            )
        finally:
            for worker in workers:
                worker.terminate()
            for worker in workers:
                worker.wait(timeout=30)
            httpd.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
