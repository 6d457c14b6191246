"""The workspace catalog costs the same number of SQL queries whatever the size of the catalog (system
and org profiles, shares with selected workspaces) and of the inventory (clusters and their nodes): the
API's compute and service catalogs and the portal's service catalog page, computed fresh (caches
cleared) and as served (the page cached under the catalog generation)."""

import re

from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext

from catalog.models import (
    CatalogGeneration,
    ComputeProfile,
    EnvironmentTemplate,
    ResourceGroup,
    ServiceProfile,
    TemplateVersion,
)
from tests.factories import make_synced_cluster


def _grow(world, n: int, tag: str) -> None:
    """``n`` more of everything the catalog reads or could read: system and org compute and service
    profiles (shared with all, with the workspace, or with nobody), resource groups, clusters, nodes."""
    org, team, spare = world.a.org, world.a.project, world.a.spare_project
    system_tpl, org_tpl = EnvironmentTemplate.objects.bulk_create(
        [
            EnvironmentTemplate(name=f"sys-{tag}", display_name="sys", system_sharing="all"),
            EnvironmentTemplate(org=org, project=spare, name=f"tpl-{tag}", display_name="tpl"),
        ]
    )
    system_v, org_v = TemplateVersion.objects.bulk_create(
        [
            TemplateVersion(template=t, version="v1", manifests="", state="published")
            for t in (system_tpl, org_tpl)
        ]
    )
    readme = "# Readme\n\nSome **markdown** with a [link](https://example.com).\n"
    for model, extra in (
        (ComputeProfile, {}),
        (ServiceProfile, {"service_type": "notebook", "readme": readme}),
    ):
        items = []
        for i in range(n):
            sharing = ("all", "selected", "none")[i % 3]
            items += [
                model(
                    name=f"s-{tag}-{i}",
                    display_name=f"S {tag} {i}",
                    template_version=system_v,
                    system_sharing="all",
                    published=True,
                    **extra,
                ),
                model(
                    org=org,
                    project=spare,
                    name=f"o-{tag}-{i}",
                    display_name=f"O {tag} {i}",
                    template_version=org_v,
                    sharing=sharing,
                    published=True,
                    **extra,
                ),
            ]
        items = model.objects.bulk_create(items)
        through = model.shared_projects.through
        column = f"{model._meta.model_name}_id"
        through.objects.bulk_create(
            [through(**{column: p.pk, "project_id": team.pk}) for p in items if p.sharing == "selected"]
        )
        if model is ComputeProfile:
            ResourceGroup.objects.bulk_create(
                [
                    ResourceGroup(
                        profile=p,
                        position=k,
                        gpu_model="A100-SXM4-40GB",
                        gpu_count=1,
                        cpu_cores=4,
                        memory_gib=16,
                    )
                    for p in items
                    for k in range(2)
                ]
            )
    for i in range(n):
        make_synced_cluster(name=f"c-{tag}-{i}", nodes=2)
    generation, _ = CatalogGeneration.objects.get_or_create(pk=1)  # (as a catalog write bumps it)
    CatalogGeneration.objects.filter(pk=1).update(value=generation.value + 1)


def _counts(c, urls) -> list[int]:
    counts = []
    for url in urls:
        for fresh in (True, False):
            if fresh:
                cache.clear()  # nothing cached: no page, no readme render
            with CaptureQueriesContext(connection) as captured:
                response = c.get(url)
            assert response.status_code == 200, (url, response.status_code)
            counts.append(len(captured))
    return counts


def test_catalog_query_count_does_not_grow_with_profiles_and_clusters(world, client):
    user = world.a.users["collaborator_rw"]
    client.force_login(user)
    project = world.a.project.pk
    urls = [
        f"/api/v1/projects/{project}/catalog/compute-profiles/",
        f"/api/v1/projects/{project}/catalog/service-profiles/",
        f"/w/{project}/services/",
    ]
    client.get(urls[-1])  # the session remembers the workspace on the first visit: measure steady pages
    _grow(world, 2, "small")
    small = _counts(client, urls)
    sizes = [client.get(url).json()["count"] for url in urls[:2]]
    _grow(world, 40, "large")  # past a page of 50 profiles
    large = _counts(client, urls)
    grown = [client.get(url).json()["count"] for url in urls[:2]]
    assert all(after > 50 and after > before for before, after in zip(sizes, grown, strict=True)), (
        sizes,
        grown,
    )
    page = client.get(urls[-1]).content.decode()
    titles = set(re.findall(r"<h2>([^<]*)</h2>", page))
    # shared with the workspace (all, selected): seen; with nobody: not
    assert {"O large 0", "O large 1"} <= titles and "O large 2" not in titles, sorted(titles)
    assert small == large, f"queries (fresh, served) per URL {urls}: {small} with few rows, {large} with many"
