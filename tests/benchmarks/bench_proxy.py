"""Benchmark: the kubectl proxy's cost over a direct call to the cluster's API server.

Run on purpose:  .venv/bin/python -m tests.benchmarks.bench_proxy [requests] [clients]

One web process: ``manage.py serve 127.0.0.1:<port> --no-worker`` (uvicorn, as production runs it)
on the benchmark's database, the suite's settings, and an instance deployed to ready on the local
control plane. Prints, measured in the same run:

- the added latency of a proxied ``get`` (the instance's ``instance-info`` ConfigMap, with the token
  of the downloaded kubeconfig, through the platform) over the same request made directly to the API
  server with the platform's credential impersonating the same ServiceAccount: p50 and p95 over
  ``requests`` sequential requests of each, interleaved (target: under 10 ms added at p50);
- requests per second through that one web process at ``clients`` concurrent keep-alive clients:
  the proxied ``get``, beside a static file and ``/healthz`` served by the same process, and the
  direct ``get`` (the API server's own rate, the ceiling);
- the web process's CPU time per request of each kind (from /proc: a figure that holds when the
  machine is busy and wall-clock latencies do not).

Every client is an aiohttp session in this process (the proxy's upstream code builds the direct one,
so both sides speak the same TLS and HTTP stack to the API server).
"""

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
TARGET_ADDED_P50_MS = 10.0
STATIC_PATH = "/static/portal/portal.css"


def pct(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc): what one request costs the web
    process, a figure that holds on a busy machine where wall-clock latencies do not."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(db_url: str, port: int, log) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": db_url, "DJANGO_SETTINGS_MODULE": "paas.settings.test"}
    return subprocess.Popen(
        [sys.executable, "manage.py", "serve", f"127.0.0.1:{port}", "--no-worker"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )


def wait_serving(server: subprocess.Popen, port: int, log) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if server.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"manage.py serve exited: {log.read().decode()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{STATIC_PATH}", timeout=20):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("manage.py serve did not answer within 300 s")


def setup_instance(cluster):
    """An operator, an org with a workspace admin, the local cluster registered, and the small system
    profile launched as an instance deployed to ready."""
    from catalog import system
    from catalog.models import ComputeProfile
    from instances import deployer
    from instances import services as instance_services
    from inventory import services as inventory_services
    from inventory import tasks as inventory_tasks
    from tenancy import services as tenancy_services
    from tenancy.roles import Role
    from tests.factories import UserFactory, add_member, make_operator, make_org
    from tests.support.guardrails import ensure_runtime_class

    operator = make_operator(username="bench-op")
    org, _admin = make_org(operator=operator, name="bench")
    project = tenancy_services.project_create(actor=_admin, org=org, name="lab")
    owner = UserFactory(username="bench-owner")
    add_member(admin=_admin, user=owner, role=Role.WORKSPACE_ADMIN, project=project)
    registered = inventory_services.cluster_register(
        actor=operator, name="local", kubeconfig=Path(cluster.kubeconfig_path).read_text()
    )
    inventory_tasks.cluster_refresh(registered.pk)
    admin_api = cluster.api_client()
    try:
        ensure_runtime_class(admin_api)
    finally:
        admin_api.close()
    system.load(actor=operator)
    small = ComputeProfile.objects.get(org__isnull=True, name="small")
    instance = instance_services.instance_launch(actor=owner, project=project, name="bench", profile=small)
    run = instance.runs.get()
    outcome = deployer.execute(run.pk)
    if outcome != "ready":
        raise RuntimeError(f"the instance did not deploy: {outcome}")
    instance.refresh_from_db()
    return owner, instance


async def measure(
    *,
    proxy_base: str,
    token: str,
    direct,
    impersonate: str,
    namespace: str,
    requests: int,
    clients: int,
    seconds: float,
    server_pid: int,
) -> dict:
    import aiohttp

    path = f"/api/v1/namespaces/{namespace}/configmaps/instance-info"
    proxy_headers = {
        "Authorization": f"Bearer {token}",
        "Accept": "application/json",
        "Kubectl-Command": "kubectl get",
    }
    direct_headers = {**direct.auth_headers, "Impersonate-User": impersonate, "Accept": "application/json"}
    web_base = proxy_base.split("/k8s/", 1)[0]
    connector = aiohttp.TCPConnector(limit=clients * 2, limit_per_host=clients * 2)
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as web:

        async def proxied() -> int:
            async with web.get(proxy_base + path, headers=proxy_headers) as response:
                await response.read()
                return response.status

        async def direct_get() -> int:
            async with direct.session.get(
                direct.url(path, ""), headers=direct_headers, server_hostname=direct.server_hostname
            ) as response:
                await response.read()
                return response.status

        async def static() -> int:
            async with web.get(web_base + STATIC_PATH) as response:
                await response.read()
                return response.status

        async def healthz() -> int:
            async with web.get(web_base + "/healthz") as response:
                await response.read()
                return response.status

        for call in (proxied, direct_get):
            status = await call()
            if status != 200:
                raise RuntimeError(f"{call.__name__}: HTTP {status}")
        for _ in range(30):  # warm both paths (connections, sessions, caches)
            await proxied()
            await direct_get()

        lat = {"proxied": [], "direct": []}
        cpu_before = cpu_seconds(server_pid)
        for index in range(requests):
            order = ((proxied, "proxied"), (direct_get, "direct"))
            for call, name in order if index % 2 else reversed(order):
                start = time.perf_counter()
                status = await call()
                lat[name].append(time.perf_counter() - start)
                assert status == 200, (name, status)
        sequential_cpu = (cpu_seconds(server_pid) - cpu_before) / requests

        async def rate(call, seconds: float) -> tuple[float, dict, float]:
            codes: dict[int, int] = {}
            stop = time.perf_counter() + seconds
            cpu_before = cpu_seconds(server_pid)

            async def client() -> int:
                count = 0
                while time.perf_counter() < stop:
                    status = await call()
                    codes[status] = codes.get(status, 0) + 1
                    count += 1
                return count

            started = time.perf_counter()
            total = sum(await asyncio.gather(*(client() for _ in range(clients))))
            elapsed = time.perf_counter() - started
            return total / elapsed, codes, (cpu_seconds(server_pid) - cpu_before) / max(1, total)

        rates = {}
        for name, call in (
            ("static file", static),
            ("/healthz", healthz),
            ("proxied get", proxied),
            ("direct get", direct_get),
        ):
            await rate(call, 1.0)  # warm-up at this concurrency
            rates[name] = await rate(call, seconds)
        return {"latency": lat, "rates": rates, "sequential_cpu": sequential_cpu}


def main() -> int:
    requests = int(sys.argv[1]) if len(sys.argv) > 1 else 400
    clients = int(sys.argv[2]) if len(sys.argv) > 2 else 16
    from tests.benchmarks._db import fresh_database

    db_url = fresh_database(os.environ.get("BENCH_DB", "gpupaas_bench_proxy"))
    from django.conf import settings

    from instances import baseline
    from instances.kubeproxy import upstream
    from instances.models import ProxyRequestLog
    from instances.services import kubeconfig_issue
    from tests.localkube import LocalCluster

    port = free_port()
    log = tempfile.TemporaryFile()  # noqa: SIM115 - the server's stderr, closed after it stops
    server = start_server(db_url, port, log)  # (it starts while the instance deploys)
    try:
        with LocalCluster(name=os.environ.get("BENCH_CLUSTER", "bench-proxy"), kata=True) as cluster:
            owner, instance = setup_instance(cluster)
            settings.PAAS_KUBE_PROXY_URL = f"http://127.0.0.1:{port}"
            kubeconfig = yaml.safe_load(kubeconfig_issue(actor=owner, instance=instance))
            proxy_base = kubeconfig["clusters"][0]["cluster"]["server"]
            token = kubeconfig["users"][0]["user"]["token"]
            account = baseline.service_account_name(owner.username)
            impersonate = f"system:serviceaccount:{instance.namespace}:{account}"
            wait_serving(server, port, log)

            async def run() -> dict:
                direct = upstream.build(("bench",), Path(cluster.kubeconfig_path).read_text())
                try:
                    return await measure(
                        proxy_base=proxy_base,
                        token=token,
                        direct=direct,
                        impersonate=impersonate,
                        namespace=instance.namespace,
                        requests=requests,
                        clients=clients,
                        seconds=5.0,
                        server_pid=server.pid,
                    )
                finally:
                    await direct.session.close()

            figures = asyncio.run(run())
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
    from instances.kubeproxy import auditing
    from paas.models import AuditEvent

    auditing.flush(limit=100_000)  # what the server's shutdown left pending
    pending = ProxyRequestLog.objects.count()
    audited = AuditEvent.objects.filter(action=auditing.ACTION).count()

    lat = figures["latency"]
    direct_ms = [v * 1000 for v in lat["direct"]]
    proxied_ms = [v * 1000 for v in lat["proxied"]]
    added_p50 = statistics.median(proxied_ms) - statistics.median(direct_ms)
    added_p95 = pct(proxied_ms, 0.95) - pct(direct_ms, 0.95)
    print(f"get, {requests} sequential requests each, one keep-alive client (ConfigMap instance-info):")
    print(
        f"  direct to the API server (impersonating):  p50 {statistics.median(direct_ms):6.2f} ms  "
        f"p95 {pct(direct_ms, 0.95):6.2f} ms"
    )
    print(
        f"  through the proxy (downloaded kubeconfig): p50 {statistics.median(proxied_ms):6.2f} ms  "
        f"p95 {pct(proxied_ms, 0.95):6.2f} ms"
    )
    verdict = "PASS" if added_p50 < TARGET_ADDED_P50_MS else "FAIL"
    print(
        f"  added by the proxy: p50 {added_p50:+.2f} ms, p95 {added_p95:+.2f} ms "
        f"({verdict}: target p50 < {TARGET_ADDED_P50_MS:.0f} ms)"
    )
    print(f"  web process CPU per proxied get (sequential): {figures['sequential_cpu'] * 1000:.2f} ms")
    print(f"requests per second through one web process, {clients} concurrent keep-alive clients, 5 s each:")
    for name, (per_second, codes, cpu) in figures["rates"].items():
        shown = ", ".join(f"HTTP {code} x{count}" for code, count in sorted(codes.items()))
        cost = f"web process CPU {cpu * 1000:5.2f} ms/request" if name != "direct get" else "(not via it)"
        print(f"  {name:12s} {per_second:8.0f} req/s  {cost}  ({shown})")
    print(f"proxied requests in the tenant's audit trail: {audited} ({pending} still pending)")
    return 0 if added_p50 < TARGET_ADDED_P50_MS else 1


if __name__ == "__main__":
    sys.exit(main())
