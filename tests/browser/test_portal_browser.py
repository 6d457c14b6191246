"""The developer hub in Debian's Chromium: the whole life of a compute instance through the pages
(launch in three steps, watch it become ready, kubeconfig, collaborators, delete), role-aware pages,
phone width, basic accessibility, and single sign-on through a real OIDC provider's page."""

import re

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from playwright.sync_api import Page, expect

from instances.models import ComputeInstance
from tenancy import services as tenancy_services
from tenancy.roles import Role
from tests.browser.helpers import login, wait_until
from tests.factories import UserFactory, add_member

LOGIN = "/login/"


def assert_basic_accessibility(page: Page) -> None:
    """What a page must have for keyboard and screen-reader users: a language, one h1, a label for
    every form control, a name for every button and link, and a visible focus ring."""
    problems = page.evaluate(
        """() => {
          const out = [];
          if (!document.documentElement.lang) out.push("no lang on <html>");
          const h1 = document.querySelectorAll("h1").length;
          if (h1 !== 1) out.push(`${h1} h1 elements`);
          for (const el of document.querySelectorAll("input:not([type=hidden]), select, textarea")) {
            const named = el.labels?.length || el.getAttribute("aria-label")
              || el.getAttribute("aria-labelledby");
            if (!named) out.push(`unlabelled ${el.tagName.toLowerCase()} ${el.name || el.id}`);
          }
          for (const el of document.querySelectorAll("button, a[href], summary")) {
            const name = (el.textContent || el.getAttribute("aria-label") || el.title || "").trim();
            if (!name) out.push(`nameless ${el.tagName.toLowerCase()} ${el.outerHTML.slice(0, 80)}`);
          }
          return out;
        }"""
    )
    assert problems == [], problems
    # Keyboard: the skip link comes first; Tab moves a focus ring you can see (Pico animates it in).
    first = page.evaluate(
        "() => document.querySelector('a[href], button, input:not([type=hidden]), select, textarea,"
        " summary').className"
    )
    assert first == "skip-link", first
    page.keyboard.press("Tab")
    page.wait_for_timeout(400)
    ring = page.evaluate(
        "() => { const s = getComputedStyle(document.activeElement);"
        " return {outline: s.outlineStyle + ' ' + s.outlineWidth, shadow: s.boxShadow}; }"
    )
    outlined = not ring["outline"].startswith("none") and not ring["outline"].endswith(" 0px")
    ringed = re.search(r"rgba?\((?!0, 0, 0, 0\))[^)]*\) 0px 0px 0px [1-9]", ring["shadow"])
    assert outlined or ringed, ring


def _switch_to(page: Page, workspace: str) -> None:
    page.locator("details.workspace-switcher summary").click()
    page.locator("details.workspace-switcher").get_by_role("link", name=re.compile(workspace)).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(workspace)


@pytest.mark.kube
def test_an_instance_from_launch_to_delete_in_the_browser(
    worker, platform, kube_cluster, new_page, shot, browser_errors
):
    team = platform.project
    colleague = UserFactory(username="colleague", email="colleague@browserco.example.com")
    other = tenancy_services.project_create(actor=platform.org_admin, org=platform.org, name="other")
    add_member(admin=platform.org_admin, user=colleague, role=Role.WORKSPACE_ADMIN, project=other)
    reader = UserFactory(username="reader", email="reader@browserco.example.com")
    add_member(admin=platform.org_admin, user=reader, role=Role.COLLABORATOR_RO, project=team)

    # Sign in: "/" asks for it, then lands in the owner's private workspace; switch to the team's.
    page = new_page()
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login/\?next=/$"))
    shot("login", page)
    assert_basic_accessibility(page)
    login(page, platform.owner.username, platform.password, url=LOGIN)
    expect(page.get_by_role("heading", name="Resources in use")).to_be_visible()
    _switch_to(page, "Team")
    shot("landing-empty", page)
    assert_basic_accessibility(page)

    # The three steps, with a refused name first.
    page.get_by_role("button", name="New instance").first.click()
    expect(page.locator('.steps li[aria-current="step"]')).to_have_text("1. Name")
    page.get_by_label("Name", exact=True).fill("Not A Label")
    page.get_by_role("button", name="Next: choose a size").click()
    expect(page.get_by_label("Name", exact=True)).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#id_name-error")).to_contain_text("starting and ending with a letter or digit")
    expect(page.get_by_label("Name", exact=True)).to_have_attribute(
        "aria-describedby", "id_name-error id_name-help"
    )
    shot("new-step1-error", page)
    assert_basic_accessibility(page)
    page.get_by_label("Name", exact=True).fill("trainer")
    page.get_by_label("Description (optional)").fill("fine-tuning experiments")
    page.get_by_role("button", name="Next: choose a size").click()
    expect(page.locator('.steps li[aria-current="step"]')).to_have_text("2. Size")
    small = page.locator(".size-card", has_text="Small")
    expect(small).to_contain_text("1 × A100")
    expect(small).to_contain_text("USD per hour")
    small.click()
    shot("new-step2-sizes", page)
    assert_basic_accessibility(page)
    page.get_by_role("button", name="Next: review").click()
    expect(page.get_by_role("heading", name="Review")).to_be_visible()
    expect(page.locator("dl.meta")).to_contain_text("fine-tuning experiments")
    shot("new-step3-review", page)
    page.get_by_role("button", name="Launch").click()

    # The detail page follows the deploy live (htmx) until the instance is ready.
    expect(page.get_by_role("heading", level=1)).to_have_text("trainer")
    expect(page.get_by_text("Launching trainer")).to_be_visible()
    shot("detail-deploying", page)
    expect(page.locator('[data-state="ready"]')).to_be_visible(timeout=90_000)
    expect(page.get_by_text("running for")).to_be_visible()
    expect(page.locator("#instance-status summary")).to_contain_text("Succeeded")
    shot("detail-ready", page)
    assert_basic_accessibility(page)
    instance = ComputeInstance.objects.get(project=team, name="trainer")

    # The kubeconfig works against the cluster, inside the instance's namespace only.
    with page.expect_download() as download:
        page.get_by_role("button", name="Download kubeconfig").click()
    assert download.value.suggested_filename == "kubeconfig-trainer.yaml"
    kubeconfig = yaml.safe_load(download.value.path().read_text())
    tenant = k8s.CoreV1Api(k8s_config.new_client_from_config_dict(kubeconfig))
    assert tenant.list_namespaced_config_map(instance.namespace).items is not None
    with pytest.raises(k8s.exceptions.ApiException) as refused:
        tenant.list_namespace()
    assert refused.value.status == 403

    # A collaborator is added by email, then sees the instance and gets their own kubeconfig.
    page.get_by_label("Collaborator's email address").fill("not-an-email")
    browser_errors.allow(r"400.*/collaborators/")  # the refused form comes back as a 400 page
    page.get_by_role("button", name="Add collaborator").click()
    expect(page.get_by_text("Enter a valid email address.")).to_be_visible()
    page.get_by_label("Collaborator's email address").fill(colleague.email)
    page.get_by_role("button", name="Add collaborator").click()
    expect(page.get_by_text(f"{colleague.email} can now use trainer.")).to_be_visible()
    expect(page.locator("#collaborators")).to_contain_text(colleague.email)
    shot("detail-collaborator-added", page)

    guest = new_page()
    login(guest, colleague.username, platform.password, url=LOGIN)
    guest.get_by_role("link", name="Instances").click()
    shared = guest.get_by_role("region", name="Shared with you")
    expect(shared).to_contain_text("trainer")
    shot("collaborator-shared-list", guest)
    shared.get_by_role("link", name="trainer").click()
    expect(guest.get_by_role("button", name="Download kubeconfig")).to_be_visible()
    # (an instance's collaborators have its owner's access, as the reference says: the same buttons)
    expect(guest.get_by_role("button", name="Delete…")).to_be_visible()
    with guest.expect_download() as own:
        guest.get_by_role("button", name="Download kubeconfig").click()
    assert yaml.safe_load(own.value.path().read_text())["users"][0]["user"]["token"]
    shot("collaborator-detail", guest)

    # A read-only member of the workspace sees it and nothing to press; the server refuses anyway.
    ro = new_page(phone=True)
    login(ro, reader.username, platform.password, url=LOGIN)
    ro.goto(f"/w/{team.pk}/instances/")
    expect(ro.get_by_role("button", name="New instance")).to_have_count(0)
    ro.get_by_role("link", name="trainer").click()
    expect(ro.locator('[data-state="ready"]')).to_be_visible()
    for name in ("Download kubeconfig", "Add collaborator", "Remove"):
        expect(ro.get_by_role("button", name=name)).to_have_count(0)
    expect(ro.get_by_role("button", name="Delete…")).to_have_count(0)
    shot("read-only-detail-phone", ro)
    assert ro.evaluate("document.documentElement.scrollWidth") <= 390  # nothing wider than the phone
    csrf = next(c["value"] for c in ro.context.cookies() if c["name"] == "csrftoken")
    forced = ro.request.post(
        f"/instances/{instance.pk}/delete/",
        form={"confirm_name": "trainer"},
        headers={"X-CSRFToken": csrf, "Referer": ro.url},
    )
    assert forced.status == 403
    assert ComputeInstance.objects.get(pk=instance.pk).state == "ready"

    # The owner removes the collaborator, then deletes the instance after typing its name.
    page.get_by_role("button", name=f"Remove {colleague.email}").click()
    expect(page.get_by_text(f"{colleague.email} no longer has access to trainer.")).to_be_visible()
    page.get_by_role("button", name="Delete…").click()
    expect(page.get_by_role("heading", name="Delete trainer?")).to_be_visible()
    shot("delete-confirm", page)
    assert_basic_accessibility(page)
    page.get_by_label("Type trainer to confirm").fill("trainer")
    page.get_by_role("button", name="Delete instance").click()
    expect(page.get_by_text("Deleting trainer.")).to_be_visible()
    expect(page.locator('[data-state="deleted"]')).to_be_visible(timeout=90_000)
    shot("detail-deleted", page)
    admin = k8s.CoreV1Api(kube_cluster.api_client())
    assert not admin.list_namespace(field_selector=f"metadata.name={instance.namespace}").items
    page.get_by_role("link", name="Home").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Team")
    expect(page.get_by_text("instance.delete").first).to_be_visible()
    shot("landing-activity", page)


def test_service_catalog_and_phone_layout(platform, new_page, shot):
    page = new_page(phone=True)
    login(page, platform.owner.username, platform.password, url=LOGIN)
    page.get_by_role("link", name="Services").click()
    expect(page.get_by_role("heading", name="Service catalog")).to_be_visible()
    card = page.locator("article", has=page.get_by_role("heading", name="Jupyter Notebook"))
    expect(card).to_contain_text("JupyterLab")
    card.get_by_text("Read more").click()
    expect(card.locator(".readme")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    shot("services-phone", page)
    assert_basic_accessibility(page)


def test_single_sign_on_in_the_browser_creates_the_user_with_a_workspace(
    accounts, oidc, new_page, shot, browser_errors
):
    tenancy_services.idp_mapping_create(
        actor=accounts.org_admin,
        org=accounts.org,
        group="ml-team",
        role=Role.COLLABORATOR_RW,
        project=accounts.project,
    )
    oidc.set_user("sso-dana", email="dana@browserco.example.com", name="Dana Scully", groups=["ml-team"])
    # The mock provider's own page links a stylesheet on a CDN (unreachable here); ours load none.
    browser_errors.allow(r"cdn\.jsdelivr\.net")
    page = new_page()
    page.goto("/")
    page.get_by_role("button", name="Sign in with Test IdP").click()
    page.locator("input[name=sub]").fill("sso-dana")
    shot("provider-form", page)
    page.locator("form").locator("[type=submit]").first.click()
    expect(page.get_by_role("heading", name="Resources in use")).to_be_visible()
    expect(page.get_by_role("heading", level=1)).to_contain_text("workspace")  # the private one
    page.locator("details.workspace-switcher summary").click()
    expect(page.locator("details.workspace-switcher")).to_contain_text("Team")
    shot("sso-landing", page)
    page.locator("details.workspace-switcher summary").click()  # closes it again
    page.locator("details.user-menu summary").click()
    page.get_by_role("button", name="Sign out").click()
    wait_until(lambda: "/login/" in page.url or oidc.url in page.url, what="the sign-out", page=page)
