"""Benchmark: every API list, portal page and studio changelist at the full data set (issue 20), on the
production server (``manage.py serve``, uvicorn, two web processes, no worker).

Run on purpose:  .venv/bin/python -m tests.benchmarks.bench_pages [--orgs N] [--runs N] [--reuse]

Builds the data set of tests/support/dataset.py (default: 1,000 orgs, 10,000 workspaces, 100,000
instances of which 90,000 deleted, 100,000 services, their runs and audit chains) in a fresh database
``gpupaas_bench_pages``, verifies the audit chains, then requests each endpoint of
tests/support/endpoints.py ``--runs`` times (after warm-up requests), one request at a time, as a
signed-in user (an org admin for the API, a workspace admin for the portal, the operator for the
studio; where the first answers 403, the next), and prints p50/p95 per endpoint beside a trivial
endpoint measured in the same run (``/api/v1/me/``, the signed-in user: one authenticated DRF
request). Target: p95 < 150 ms for each.
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

TARGET_P95_MS = 150.0


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def found(size):
    """The data set a previous run left (its orgs, each org's admin and workspace admin), if it has
    ``size``'s orgs, workspaces and instances; else None."""
    from types import SimpleNamespace

    from instances.models import ComputeInstance
    from tenancy.models import Organization, Project, User

    counts = {
        "orgs": Organization.objects.count(),
        "workspaces": Project.objects.count(),  # (personal and team, as the data set counts them)
        "instances": ComputeInstance.objects.count(),
    }
    first = User.objects.filter(username__endswith="-o0-u0").first()
    if first is None or not User.objects.filter(username="bench-operator").exists():
        return None
    if (counts["orgs"], counts["workspaces"], counts["instances"]) != (
        size.orgs,
        size.workspaces,
        size.instances,
    ):
        return None
    prefix = first.username.removesuffix("-o0-u0")
    orgs = list(Organization.objects.filter(name__startswith=f"{prefix}-o").order_by("pk"))
    users = {u.username: u.pk for u in User.objects.filter(username__startswith=f"{prefix}-o")}
    index = {org.pk: int(org.name.rsplit("-o", 1)[1]) for org in orgs}
    return SimpleNamespace(
        counts=counts,
        org_ids=[org.pk for org in orgs],
        admin_ids=[users[f"{prefix}-o{index[org.pk]}-u0"] for org in orgs],
        workspace_admin_ids=[users[f"{prefix}-o{index[org.pk]}-u{1 % size.members}"] for org in orgs],
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orgs", type=int, default=1000, help="orgs of the data set (1,000: the full set)")
    parser.add_argument("--runs", type=int, default=30, help="timed requests per endpoint")
    parser.add_argument("--workers", type=int, default=2, help="web processes of manage.py serve")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="measure the data set a previous run left in gpupaas_bench_pages (migrated, not rebuilt) "
        "when it has the size asked for; built anew otherwise",
    )
    args = parser.parse_args(argv)

    from tests.benchmarks._db import existing_database, fresh_database

    reused = args.reuse and existing_database("gpupaas_bench_pages")
    if not reused:
        fresh_database("gpupaas_bench_pages")
    import httpx
    from django.test import Client

    from paas.audit import audit_verify
    from tenancy.models import Project, User
    from tests.factories import make_operator
    from tests.support import processes
    from tests.support.dataset import Size, generate
    from tests.support.endpoints import ENDPOINTS, EXPECTED_STATUS, SERVICE_KINDS, url_of
    from tests.support.wait import wait_for

    size = Size(orgs=args.orgs)
    started = time.perf_counter()
    data = found(size) if reused else None
    if data is None:
        if reused:
            print("the data set left in gpupaas_bench_pages is not of that size: built anew")
            from django.db import connections

            connections.close_all()
            fresh_database("gpupaas_bench_pages")
        make_operator(username="bench-operator", email="bench-operator@example.com")
        data = generate(
            size=size, progress=lambda what: print(f"  {time.perf_counter() - started:6.1f} s  {what}")
        )
        print(f"data set: {data.counts}; built in {time.perf_counter() - started:.1f} s")
    else:
        print(f"data set: reused from the previous run ({data.counts})")
    started = time.perf_counter()
    verified = audit_verify(checkpoints=True)
    print(
        f"audit_verify: {'ok' if verified.ok else 'BROKEN'}: {verified.chains} chains, {verified.events} "
        f"events, {verified.checkpoints} checkpoints matched, {len(verified.broken)} broken "
        f"({time.perf_counter() - started:.1f} s)"
    )

    org_admin = User.objects.get(pk=data.admin_ids[0])
    workspace_admin = User.objects.get(pk=data.workspace_admin_ids[0])
    operator = User.objects.get(username="bench-operator")
    project = Project.objects.filter(org_id=data.org_ids[0], kind=Project.Kind.TEAM).order_by("pk").first()

    def cookie(user) -> dict:
        client = Client()
        client.force_login(user)
        return {"sessionid": client.cookies["sessionid"].value}

    cookies = {u.pk: cookie(u) for u in (org_admin, workspace_admin, operator)}
    who = {
        "api": [org_admin, operator],
        "portal": [workspace_admin],
        "studio": [operator, org_admin],
    }
    log_dir = Path(tempfile.mkdtemp(prefix="bench-pages-"))
    port = processes.free_port()
    server = processes.start(
        "bench-pages-web",
        ["serve", f"127.0.0.1:{port}", "--workers", str(args.workers), "--no-worker"],
        log_dir,
        port=port,
    )
    try:
        wait_for(server.accepting, 120, 0.2, "the web server", check=server.alive)
        with httpx.Client(base_url=server.url, timeout=60) as http:

            def timed(url: str, user, runs: int) -> tuple[int, list[float]]:
                durations, status = [], 0
                for _ in range(runs):
                    start = time.perf_counter()
                    response = http.get(url, cookies=cookies[user.pk], follow_redirects=False)
                    durations.append((time.perf_counter() - start) * 1000)
                    status = response.status_code
                return status, durations

            # the baseline: the signed-in user, one authenticated DRF request (warmed up first)
            timed("/api/v1/me/", org_admin, 10)
            _, trivial = timed("/api/v1/me/", org_admin, args.runs * 2)
            t50, t95 = statistics.median(trivial), _percentile(trivial, 0.95)
            rows, failures = [], []
            for endpoint in ENDPOINTS:
                for kind in SERVICE_KINDS if "{kind}" in endpoint.route else ("",):
                    url = url_of(endpoint, project_id=project.pk, kind=kind)
                    if endpoint.area == "api":
                        url += "?page_size=50"
                    for user in who[endpoint.area]:
                        status, _ = timed(url, user, 3)  # warm-up (each web process)
                        if status != 403:
                            break
                    status, durations = timed(url, user, args.runs)
                    p50, p95 = statistics.median(durations), _percentile(durations, 0.95)
                    ok = status == EXPECTED_STATUS.get(endpoint.id, 200) and p95 < TARGET_P95_MS
                    shown = endpoint.route.replace("{kind}", kind)
                    rows.append((endpoint.area, shown, status, p50, p95, ok))
                    if not ok:
                        failures.append(url)
    finally:
        processes.stop(server.process)

    print(
        f"\nmanage.py serve --workers {args.workers}; {args.runs} requests each, one at a time; "
        f"target p95 < {TARGET_P95_MS:.0f} ms"
    )
    print(f"trivial endpoint /api/v1/me/: p50 {t50:.1f} ms, p95 {t95:.1f} ms")
    print(f"{'area':7} {'endpoint':62} {'status':>6} {'p50 ms':>8} {'p95 ms':>8} {'p95/trivial':>11}")
    for area, url, status, p50, p95, ok in rows:
        print(
            f"{area:7} {url[:62]:62} {status:>6} {p50:8.1f} {p95:8.1f} {p95 / t95:10.1f}x "
            + ("" if ok else "FAIL")
        )
    slowest = max(rows, key=lambda r: r[4])
    passed = not failures and verified.ok
    print(
        f"\n{len(rows)} endpoints; {len(rows) - len(failures)} within target; "
        f"slowest p95 {slowest[4]:.1f} ms ({slowest[1]}); {'PASS' if passed else 'FAIL'}"
    )
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
