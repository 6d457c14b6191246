"""Benchmark: a workspace's catalog (API and portal page) on the production server, beside a trivial
endpoint of the same run.

Run on purpose:  .venv/bin/python -m tests.benchmarks.bench_catalog [--workers N] [--rounds N]

A realistic catalog is bulk-inserted into a fresh ``gpupaas_bench_catalog`` database: 10 orgs of 20
workspaces, 50 compute and 10 service profiles per org (shared with all, selected or no workspaces,
most published), 50 system compute and 20 system service profiles (markdown readmes), 20 clusters of 4
nodes. ``manage.py serve`` (uvicorn, ``--no-worker``) serves it with ``/bench/trivial/`` added
(tests/benchmarks/_trivial_urls.py: an authenticated DRF view answering ``{"ok": true}``); requests go
over one keep-alive HTTP connection, interleaved endpoint by endpoint so that drift hits them alike.

Measured (medians; target: as served at most 2x, computed fresh at most 3x the trivial endpoint with
the same authentication, in the same round):
- the API catalogs (``/api/v1/projects/<id>/catalog/{compute,service}-profiles/``, API token);
- the portal's service catalog page (``/w/<id>/services/``, a signed-in session);
- "as served": the catalog unchanged since the last request; "computed fresh": before each such
  request the bench edits one profile's readme (one character) and bumps the catalog generation, as a
  catalog write does, so no page or row can come from a cache (readme renders are memoised by their
  text's digest: the edited one is rendered again); printed beside it, not held to a target: every
  readme changed (every fifth round), i.e. nothing rendered before.
Also printed: the SQL queries of each request (from PostgreSQL's statement counter of the server's
connections), which must not differ between workspaces seeing small and large catalogs.
"""

import argparse
import random
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

README = """# {name}

{name} gives you a ready-to-use **{kind}** environment with the drivers and libraries preinstalled.

## What you get
- CUDA 12 runtime, cuDNN and NCCL
- Python 3.12 with `numpy`, `pandas`, `torch` and `transformers`
- A persistent volume mounted at `/data` ({n} GiB)

## Getting started
```bash
pip install -r requirements.txt
python train.py --epochs {n}
```

| Resource | Amount |
|----------|--------|
| GPUs     | {n}    |
| Memory   | {m} GiB |

See [the documentation](https://docs.example.com/{name}) for details.
"""


def build(rng: random.Random):
    """The data set (bulk inserts); returns (reader, the reader's workspaces, operator)."""

    from catalog.models import (
        CatalogGeneration,
        ComputeProfile,
        EnvironmentTemplate,
        ResourceGroup,
        ServiceProfile,
        TemplateVersion,
    )
    from tenancy.models import Organization, Project, Quota
    from tenancy.roles import Role
    from tests.factories import UserFactory, add_member, make_operator, make_synced_cluster
    from tests.support.support import grant_support

    operator = make_operator(username="bench")
    orgs = Organization.objects.bulk_create(
        [Organization(name=f"org-{i}", display_name=f"Org {i}") for i in range(10)]
    )
    projects = Project.objects.bulk_create(
        [Project(org=org, name=f"w-{j}", display_name=f"W {j}") for org in orgs for j in range(20)]
    )
    Quota.objects.bulk_create([Quota(org=o) for o in orgs] + [Quota(project=p) for p in projects])
    templates = EnvironmentTemplate.objects.bulk_create(
        [
            EnvironmentTemplate(org=o, project=p, name="tpl", display_name="tpl")
            for o, p in ((org, next(p for p in projects if p.org_id == org.pk)) for org in orgs)
        ]
        + [EnvironmentTemplate(name="system-tpl", display_name="system", system_sharing="all")]
    )
    versions = TemplateVersion.objects.bulk_create(
        [TemplateVersion(template=t, version="v1", manifests="", state="published") for t in templates]
    )
    version_of = {t.org_id: v for t, v in zip(templates, versions, strict=True)}
    by_org: dict[int, list] = {}
    for project in projects:
        by_org.setdefault(project.org_id, []).append(project)
    gpu_models = ["A100-SXM4-40GB", "A100-SXM4-80GB", "H100-SXM5-80GB", "L40S", ""]

    def sharing() -> str:
        roll = rng.random()
        return "all" if roll < 0.6 else "selected" if roll < 0.8 else "none"

    def common(i: int, kind: str) -> dict:
        return {
            "display_name": f"{kind} {i:03d}",
            "description": f"A {kind} profile for the benchmark, number {i}.",
            "labels": {"tier": rng.choice(["small", "large"]), "team": f"t{i % 7}"},
            "cost_amount": f"{rng.randint(1, 400) / 100:.2f}",
            "cost_stopped_amount": f"{rng.randint(0, 40) / 100:.2f}",
        }

    compute, service = [], []
    for org in orgs:
        for k in range(50):
            project = rng.choice(by_org[org.pk])
            compute.append(
                ComputeProfile(
                    org_id=org.pk,
                    project=project,
                    name=f"cp-{k}",
                    template_version=version_of[org.pk],
                    sharing=sharing(),
                    published=rng.random() < 0.9,
                    **common(k, "Compute"),
                )
            )
        for k in range(10):
            project = rng.choice(by_org[org.pk])
            service.append(
                ServiceProfile(
                    org_id=org.pk,
                    project=project,
                    name=f"sp-{k}",
                    template_version=version_of[org.pk],
                    sharing=sharing(),
                    published=rng.random() < 0.9,
                    service_type=rng.choice(["notebook", "inference", "jobs"]),
                    readme=README.format(name=f"sp-{k}", kind="service", n=k, m=8 * k),
                    **common(k, "Service"),
                )
            )
    compute += [
        ComputeProfile(
            name=f"sys-cp-{k}",
            template_version=versions[-1],
            system_sharing="all",
            published=True,
            **common(k, "System compute"),
        )
        for k in range(50)
    ]
    service += [
        ServiceProfile(
            name=f"sys-sp-{k}",
            template_version=versions[-1],
            system_sharing="all",
            published=True,
            service_type=rng.choice(["notebook", "inference", "jobs"]),
            readme=README.format(name=f"sys-sp-{k}", kind="notebook", n=k, m=16 * k),
            **common(k, "System service"),
        )
        for k in range(20)
    ]
    compute = ComputeProfile.objects.bulk_create(compute)
    service = ServiceProfile.objects.bulk_create(service)
    groups = []
    for p in compute:
        for position in range(rng.choice([1, 1, 2])):
            model = rng.choice(gpu_models)
            groups.append(
                ResourceGroup(
                    profile=p,
                    position=position,
                    gpu_model=model,
                    gpu_count=rng.choice([1, 2, 4, 8]) if model else 0,
                    cpu_cores=rng.choice([4, 8, 16]),
                    memory_gib=rng.choice([16, 64, 256]),
                    storage_gib=rng.choice([0, 50, 200]),
                )
            )
    ResourceGroup.objects.bulk_create(groups)
    for model, items in ((ComputeProfile, compute), (ServiceProfile, service)):
        through = model.shared_projects.through
        column = f"{model._meta.model_name}_id"
        through.objects.bulk_create(
            [
                through(**{column: p.pk, "project_id": target.pk})
                for p in items
                if p.sharing == "selected"
                for target in rng.sample(by_org[p.org_id], 3)
            ]
        )
    CatalogGeneration.objects.update_or_create(pk=1, defaults={"value": 1})
    for i in range(20):
        make_synced_cluster(name=f"c-{i}", nodes=4)
    reader = UserFactory(username="reader")
    for org in orgs:  # the orgs have no admin: the operator acts as one through a support access
        grant_support(operator=operator, org=org, level="admin")
    readable = by_org[orgs[0].pk][:4]
    for project in readable:
        add_member(admin=operator, user=reader, role=Role.COLLABORATOR_RW, project=project)
    return reader, readable


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=150)
    args = parser.parse_args()
    from tests.benchmarks._db import fresh_database

    fresh_database("gpupaas_bench_catalog")
    import logging

    import httpx

    logging.getLogger("httpx").setLevel(logging.WARNING)
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from catalog.models import ComputeProfile, ServiceProfile
    from paas.services import api_token_create
    from tests.support import processes

    started = time.perf_counter()
    reader, readable = build(random.Random(7))
    _, token = api_token_create(actor=reader, name="bench", expires_in_days=1)
    browser = Client(HTTP_HOST="127.0.0.1")
    browser.force_login(reader)
    session = browser.cookies["sessionid"].value
    print(
        f"data: {ComputeProfile.objects.count()} compute and {ServiceProfile.objects.count()} service "
        f"profiles, 20 clusters of 4 nodes; built in {time.perf_counter() - started:.1f} s"
    )

    def bump(readmes: str) -> None:
        """A catalog write as far as caches go: a new generation, and a readme edited ("one": a system
        service profile's, which every workspace sees; "all": every service profile's)."""
        with connection.cursor() as cursor:
            where = "" if readmes == "all" else " WHERE id = (SELECT min(id) FROM catalog_serviceprofile "
            where += "" if readmes == "all" else "WHERE org_id IS NULL)"
            cursor.execute(f"UPDATE catalog_serviceprofile SET readme = readme || ' '{where}")
            cursor.execute("UPDATE catalog_cataloggeneration SET value = value + 1 WHERE id = 1")

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # (the finally below stops the server)
    logs = Path(tempfile.mkdtemp(prefix="bench-catalog-"))
    server = processes.start(
        "bench-catalog",
        [
            "serve",
            f"127.0.0.1:{(port := processes.free_port())}",
            "--no-worker",
            "--workers",
            str(args.workers),
        ],
        logs,
        port=port,
        DJANGO_SETTINGS_MODULE="tests.benchmarks._trivial_settings",
    )
    try:
        deadline = time.monotonic() + 60
        while not server.accepting():
            if not server.alive() or time.monotonic() > deadline:
                print(server.output())
                return 1
            time.sleep(0.2)
        api = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        portal = httpx.Client(base_url=server.url, cookies={"sessionid": session}, timeout=30)
        workspace = readable[0].pk
        endpoints = {
            "trivial (token)": (api, "/bench/trivial/"),
            "API compute catalog": (api, f"/api/v1/projects/{workspace}/catalog/compute-profiles/"),
            "API service catalog": (api, f"/api/v1/projects/{workspace}/catalog/service-profiles/"),
            "trivial (session)": (portal, "/bench/trivial/"),
            "portal service catalog": (portal, f"/w/{workspace}/services/"),
        }
        baseline_of = {
            name: "trivial (session)" if client is portal else "trivial (token)"
            for name, (client, _) in endpoints.items()
        }

        def get(client, url) -> float:
            start = time.perf_counter()
            response = client.get(url)
            elapsed = time.perf_counter() - start
            assert response.status_code == 200, (url, response.status_code, response.text[:300])
            return elapsed

        def statements() -> int:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements WHERE dbid = "
                    "(SELECT oid FROM pg_database WHERE datname = current_database())"
                )
                return int(cursor.fetchone()[0])

        for client, url in endpoints.values():  # warm up (imports, templates, connections)
            for _ in range(10):
                get(client, url)
        served: dict[str, list[float]] = {name: [] for name in endpoints}
        catalogs = [name for name in endpoints if not name.startswith("trivial")]
        fresh: dict[str, list[float]] = {name: [] for name in catalogs}
        cold: dict[str, list[float]] = {name: [] for name in catalogs}
        for number in range(args.rounds):
            for name, (client, url) in endpoints.items():
                if name in fresh:  # computed after a catalog change, then served as computed
                    if number % 5 == 0:  # (every fifth round: every readme changed too)
                        bump(readmes="all")
                        cold[name].append(get(client, url))
                    bump(readmes="one")
                    fresh[name].append(get(client, url))
                served[name].append(get(client, url))
        # Queries per request (counted in this process with Django's test client: same code, same
        # database), for workspaces seeing catalogs of different sizes (selected shares differ).
        counts: dict[tuple[str, bool], set[int]] = {}
        for project in readable:
            for name in ("API compute catalog", "API service catalog", "portal service catalog"):
                url = endpoints[name][1].replace(f"/{workspace}/", f"/{project.pk}/")
                headers = {} if endpoints[name][0] is portal else {"HTTP_AUTHORIZATION": f"Bearer {token}"}
                browser.get(url, **headers)  # once first (a session's or token's first use writes)
                for fresh_read in (True, False):  # fresh first: "served" reads the page it cached
                    if fresh_read:
                        bump(readmes="one")
                    with CaptureQueriesContext(connection) as captured:
                        assert browser.get(url, **headers).status_code == 200
                    counts.setdefault((name, fresh_read), set()).add(len(captured))
        sizes = [
            api.get(f"/api/v1/projects/{p.pk}/catalog/compute-profiles/?page_size=500").json()["count"]
            for p in readable
        ]
    finally:
        processes.stop(server.process)
    median = {name: statistics.median(values) * 1000 for name, values in served.items()}
    fresh_median = {name: statistics.median(values) * 1000 for name, values in fresh.items()}
    cold_median = {name: statistics.median(values) * 1000 for name, values in cold.items()}
    print(f"compute profiles seen by the reader's workspaces: {sorted(sizes)} (pages of 50)")
    print(f"{args.rounds} rounds, {args.workers} web worker(s); medians in ms:")
    passed = True
    for name in endpoints:
        if name.startswith("trivial"):
            print(f"  {name:<24} {median[name]:7.2f}")
            continue
        base = median[baseline_of[name]]
        ratio, ratio_fresh = median[name] / base, fresh_median[name] / base
        ok = ratio <= 2 and ratio_fresh <= 3
        passed &= ok
        print(
            f"  {name:<24} served {median[name]:7.2f} = {ratio:4.2f}x (target 2x), fresh "
            f"{fresh_median[name]:7.2f} = {ratio_fresh:4.2f}x (target 3x) of {baseline_of[name]} "
            f"{'PASS' if ok else 'FAIL'}; every readme changed: {cold_median[name]:7.2f} = "
            f"{cold_median[name] / base:4.2f}x"
        )
    for (name, fresh_read), seen in sorted(counts.items()):
        constant = len(seen) == 1
        passed &= constant
        print(
            f"  SQL queries, {name}, {'fresh' if fresh_read else 'served'}: {sorted(seen)} "
            f"({'constant' if constant else 'NOT constant'} over the reader's workspaces)"
        )
    print("PASS" if passed else "FAIL")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
