"""Every page of the developer hub, at desktop and phone width: axe-core's WCAG 2.1 A/AA rules
(labels, names, contrast, landmarks...) find nothing, nothing is wider than the screen, and a
screenshot of each is kept. axe-core is vendored from the npm registry (tests/browser/vendor/)."""

from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from catalog.models import CatalogApplication, ContainerRegistry, Repository, ServiceProfile
from instances import pool_claims
from instances.models import (
    Application,
    ApplicationRevision,
    ComputeInstance,
    ServiceInstance,
    StandbyInstance,
)
from instances.services import instance_launch
from tests.browser.helpers import login

AXE = Path(__file__).resolve().parent / "vendor" / "axe.min.js"
WCAG = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


def axe_violations(page: Page) -> list[dict]:
    page.add_script_tag(path=str(AXE))
    return page.evaluate(
        """async (tags) => {
            const result = await axe.run(document, {runOnly: {type: "tag", values: tags}});
            return result.violations.map(v => ({
                rule: v.id, impact: v.impact, help: v.help,
                where: v.nodes.slice(0, 3).map(n => n.target.join(" ") + " :: " + n.failureSummary),
            }));
        }""",
        WCAG,
    )


def check(page: Page, shot, name: str) -> None:
    expect(page.locator("h1")).to_have_count(1)
    assert axe_violations(page) == [], name
    width = page.evaluate("window.innerWidth")
    assert page.evaluate("document.documentElement.scrollWidth") <= width, f"{name} is wider than {width}px"
    shot(name, page)


@pytest.mark.parametrize("phone", [False, True], ids=["desktop", "phone"])
def test_every_page_passes_axe_and_fits_the_screen(platform, new_page, shot, phone):
    team = platform.project
    instance = instance_launch(
        actor=platform.owner, project=team, name="sweep", profile=platform.profile, description="A test box."
    )
    ComputeInstance.objects.filter(pk=instance.pk).update(
        state="ready",
        namespace="i-sweep",
        from_warm_pool=True,  # its pages say so (issue 15)
        outputs={"where": "i-sweep", "token": {"secret": True, "name": "s", "key": "k"}},
    )
    jupyter = ServiceProfile.objects.get(org__isnull=True, name="jupyter-notebook")
    notebook = ServiceInstance.objects.create(
        org=team.org,
        project=team,
        compute_instance=instance,
        name="nb",
        owner=platform.owner,
        profile=jupyter,
        service_type=jupyter.service_type,
        snapshot={"name": jupyter.name, "display_name": jupyter.display_name},
        state="ready",
        host="nb.sweep.apps.example.test",
    )
    # A ready standby instance of the Small size: its size card says "Ready now".
    StandbyInstance.objects.create(
        profile=platform.profile,
        snapshot_digest=pool_claims.snapshot_digest(pool_claims.launch_snapshot(platform.profile)),
        cluster=platform.cluster,
        namespace="w-sweep",
        state="ready",
        ready_at=timezone.now(),
    )
    # An application whose Deployment fails (its debug view has events), from the catalog, and the
    # workspace's integrations.
    repository = Repository.objects.create(
        org=team.org,
        project=team,
        name="charts",
        display_name="Charts",
        kind="helm",
        url="http://127.0.0.1:9/charts/",
        checked_at=timezone.now(),
        check_ok=False,
        check_message="Connection refused by 127.0.0.1:9.",
    )
    item = CatalogApplication.objects.create(
        name="hello",
        display_name="Hello",
        description="Says hello.",
        readme="# Hello\n\nA *friendly* app.",
        package_type="helm",
        sync="repository",
        repository=repository,
        chart="hello",
        values="replicas: 1\n",
        published=True,
        system_sharing="all",
    )
    ContainerRegistry.objects.create(
        name="hub", display_name="Hub", provider="jfrog", endpoint="hub.example.test", system_sharing="all"
    )
    app = Application.objects.create(
        org=team.org,
        project=team,
        compute_instance=instance,
        name="web",
        owner=platform.owner,
        package_type="helm",
        catalog_item=item,
        state="failed",
        revision=1,
        state_reason="Deployment web is not ready.",
        object_status=[
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": "web",
                "ready": False,
                "message": "0/1 replicas ready",
                "events": [
                    {
                        "object": "Pod/web-5d9c7-abcde",
                        "type": "Warning",
                        "reason": "BackOff",
                        "message": "Back-off pulling image",
                        "count": 3,
                        "last": "2026-01-01T00:00:00Z",
                    }
                ],
            }
        ],
    )
    ApplicationRevision.objects.create(
        application=app,
        number=1,
        package_type="helm",
        sync="repository",
        repository=repository,
        chart="hello",
        chart_version="1.0.0",
        resolved_chart_version="1.0.0",
        outcome="failed",
    )
    page = new_page(phone=phone)
    page.goto("/login/")
    check(page, shot, "login")
    login(page, platform.owner.username, platform.password, url="/login/")
    for path, name in (
        (f"/w/{team.pk}/", "landing"),
        (f"/w/{team.pk}/instances/", "instances"),
        (f"/w/{team.pk}/services/", "services"),
        (f"/instances/{instance.pk}/", "detail"),
        (f"/instances/{instance.pk}/delete/", "delete"),
        (f"/w/{team.pk}/deployments/notebooks/", "notebooks"),
        (f"/w/{team.pk}/deployments/notebooks/new/?instance={instance.pk}", "new-notebook"),
        (f"/services/{notebook.pk}/", "notebook"),
        (f"/services/{notebook.pk}/delete/", "notebook-delete"),
        (f"/w/{team.pk}/applications/", "applications"),
        (f"/w/{team.pk}/applications/new/", "new-application"),
        (f"/w/{team.pk}/applications/catalog/", "application-catalog"),
        (f"/applications/{app.pk}/", "application"),
        (f"/w/{team.pk}/integrations/repositories/", "repositories"),
        (f"/w/{team.pk}/integrations/repositories/new/", "new-repository"),
        (f"/w/{team.pk}/integrations/registries/", "registries"),
    ):
        page.goto(path)
        check(page, shot, name)
    page.goto(f"/w/{team.pk}/")
    page.locator("details.workspace-switcher summary").click()
    check(page, shot, "switcher-open")
    page.goto(f"/w/{team.pk}/")
    page.locator("details.deployments-menu summary").click()
    check(page, shot, "deployments-menu-open")
    page.goto(f"/w/{team.pk}/instances/new/")
    check(page, shot, "new-1")
    page.get_by_label("Name", exact=True).fill("second")
    page.get_by_role("button", name="Next: choose a size").click()
    expect(page.locator(".size-card", has_text="Small").get_by_text("Ready now")).to_be_visible()
    check(page, shot, "new-2")
    page.locator(".size-card", has_text="Small").click()
    page.get_by_role("button", name="Next: review").click()
    check(page, shot, "new-3")
