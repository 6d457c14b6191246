"""Benchmark: the project catalog endpoint over 10,000 profiles in 1,000 projects with mixed sharing.

Run on purpose:  .venv/bin/python -m tests.benchmarks.bench_catalog

Prints the SQL queries per catalog request (for small and large projects: it must not grow) and the
median time of the catalog endpoint against a trivial authenticated DRF endpoint measured in the same
run (target: at most 3x). Data is bulk-inserted into a fresh ``gpupaas_bench`` database.
"""

import random
import statistics
import sys
import time


def main() -> int:
    from tests.benchmarks._db import fresh_database

    fresh_database()
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext, override_settings
    from django.urls import path
    from rest_framework.response import Response
    from rest_framework.views import APIView

    from catalog.models import ComputeProfile, EnvironmentTemplate, ResourceGroup, TemplateVersion
    from tenancy.models import Organization, Project, Quota
    from tenancy.roles import Role
    from tests.factories import UserFactory, add_member, make_operator
    from tests.support.support import grant_support

    rng = random.Random(7)
    started = time.perf_counter()
    operator = make_operator(username="bench")
    orgs = Organization.objects.bulk_create(
        [Organization(name=f"org-{i}", display_name=f"Org {i}") for i in range(10)]
    )
    projects = Project.objects.bulk_create(
        [Project(org=org, name=f"p-{j}", display_name=f"P {j}") for org in orgs for j in range(100)]
    )
    Quota.objects.bulk_create([Quota(org=o) for o in orgs] + [Quota(project=p) for p in projects])
    templates = EnvironmentTemplate.objects.bulk_create(
        [EnvironmentTemplate(org=p.org, project=p, name="tpl", display_name="tpl") for p in projects[::100]]
        + [EnvironmentTemplate(name="system-tpl", display_name="system", system_sharing="all")]
    )
    versions = TemplateVersion.objects.bulk_create(
        [TemplateVersion(template=t, version="v1", manifests="", state="published") for t in templates]
    )
    version_of_org = {t.org_id: v for t, v in zip(templates, versions, strict=True)}
    profiles = []
    for project in projects:
        for k in range(10):
            roll = rng.random()
            sharing = "all" if roll < 0.2 else "selected" if roll < 0.3 else "none"
            profiles.append(
                ComputeProfile(
                    org_id=project.org_id,
                    project=project,
                    name=f"cp-{k}",
                    display_name=f"Profile {k}",
                    template_version=version_of_org[project.org_id],
                    sharing=sharing,
                    published=rng.random() < 0.9,
                )
            )
    profiles += [
        ComputeProfile(
            name=f"sys-{k}",
            display_name=f"System {k}",
            template_version=versions[-1],
            system_sharing="all",
            published=True,
        )
        for k in range(50)
    ]
    profiles = ComputeProfile.objects.bulk_create(profiles, batch_size=2000)
    ResourceGroup.objects.bulk_create(
        [
            ResourceGroup(profile=p, gpu_model="A100-SXM4-40GB", gpu_count=1, cpu_cores=8, memory_gib=64)
            for p in profiles
        ],
        batch_size=2000,
    )
    through = ComputeProfile.shared_projects.through
    by_org = {}
    for project in projects:
        by_org.setdefault(project.org_id, []).append(project)
    through.objects.bulk_create(
        [
            through(computeprofile_id=p.pk, project_id=target.pk)
            for p in profiles
            if p.sharing == "selected"
            for target in rng.sample(by_org[p.org_id], 3)
        ],
        batch_size=5000,
    )
    user = UserFactory(username="reader")
    for org in orgs:  # the orgs have no admin: the operator acts as one through a support access
        grant_support(operator=operator, org=org, level="admin")
    for project in projects[::50]:
        add_member(admin=operator, user=user, role=Role.COLLABORATOR_RO, project=project)
    print(
        f"data: {len(projects)} projects, {len(profiles)} compute profiles, "
        f"{through.objects.count()} selected shares; built in {time.perf_counter() - started:.1f} s"
    )

    class Trivial(APIView):
        def get(self, request):
            return Response({"ok": True})

    from paas import urls as root

    urlpatterns = [path("bench/trivial/", Trivial.as_view()), *root.urlpatterns]
    module = type(sys)("bench_urls")
    module.urlpatterns = urlpatterns
    sys.modules["bench_urls"] = module
    client = Client()
    client.force_login(user)
    readable = list(projects[::50])

    from django.core.cache import cache

    def timed(url: str, runs: int, cold: bool = False) -> tuple[list[float], int]:
        durations, queries = [], 0
        for _ in range(runs):
            if cold:
                cache.clear()  # every request computes its page (no cached page)
            with CaptureQueriesContext(connection) as captured:
                start = time.perf_counter()
                response = client.get(url)
                durations.append(time.perf_counter() - start)
            assert response.status_code == 200, (url, response.status_code, response.content[:300])
            queries = len(captured)
        return durations, queries

    with override_settings(ROOT_URLCONF="bench_urls", DEBUG=False, ALLOWED_HOSTS=["testserver"]):
        for url in ("/bench/trivial/", f"/api/v1/projects/{readable[0].pk}/catalog/compute-profiles/"):
            timed(url, 5)  # warm up
        trivial, trivial_queries = timed("/bench/trivial/", 200)
        catalog_times, query_counts, cold_times, cold_counts = [], set(), [], set()
        for project in readable:
            url = f"/api/v1/projects/{project.pk}/catalog/compute-profiles/"
            durations, queries = timed(url, 10, cold=True)
            cold_times += durations
            cold_counts.add(queries)
            durations, queries = timed(url, 10)
            catalog_times += durations
            query_counts.add(queries)
        sizes = [
            client.get(f"/api/v1/projects/{p.pk}/catalog/compute-profiles/").json()["count"] for p in readable
        ]
    t_med, c_med = statistics.median(trivial) * 1000, statistics.median(catalog_times) * 1000
    cold_med = statistics.median(cold_times) * 1000
    ratio = c_med / t_med
    print(f"catalog sizes seen by the sampled projects: {min(sizes)}..{max(sizes)} profiles (page size 50)")
    passed = ratio <= 3 and len(query_counts) == 1 and len(cold_counts) == 1
    print(
        f"SQL queries per request: trivial {trivial_queries}; catalog page computed {sorted(cold_counts)}, "
        f"served from the cache {sorted(query_counts)} "
        f"({'constant' if len(cold_counts) == len(query_counts) == 1 else 'NOT constant'})"
    )
    print(
        f"median, page computed (cache cleared before every request): {cold_med:.2f} ms "
        f"= {cold_med / t_med:.2f}x the trivial endpoint"
    )
    print(
        f"median as served (pages cached under the catalog generation): trivial endpoint {t_med:.2f} ms, "
        f"catalog endpoint {c_med:.2f} ms, ratio {ratio:.2f}x ({'PASS' if passed else 'FAIL'} against 3x)"
    )
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
