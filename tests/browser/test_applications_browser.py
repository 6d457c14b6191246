"""New Application in Debian's Chromium: the reference's form (name, package type, artifact sync,
compute instance), its fields following the choices (CSS only: the Helm fields for Helm charts, the
repository fields for a pull), a YAML file uploaded from the page, then the list shows the application.
No cluster: the compute instance is a row as a deploy leaves it, and the application's deploy run stays
queued (deploys of applications are tested in tests/integration)."""

from playwright.sync_api import expect

from instances.models import Application, ComputeInstance
from instances.services import instance_launch
from tests.browser.helpers import login
from tests.browser.test_portal_pages import axe_violations
from tests.factories import ONE_A100, make_profile, make_synced_cluster

MANIFESTS = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ instance.name }}-info\ndata:\n  a: b\n"
CONFIGMAP = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web-config\ndata:\n  mode: dev\n"


def test_new_application_uploaded_from_the_page_then_listed(accounts, new_page, shot):
    team = accounts.project
    make_synced_cluster(name="browser-apps")
    size = make_profile(
        actor=accounts.org_admin,
        project=team,
        manifests=MANIFESTS,
        name="one-gpu",
        template="ns",
        resource_groups=ONE_A100,
    )
    box = instance_launch(actor=accounts.owner, project=team, name="box", profile=size)
    ComputeInstance.objects.filter(pk=box.pk).update(state="ready", namespace="i-box")

    page = new_page()
    login(page, accounts.owner.username, accounts.password, url="/login/")
    page.goto(f"/w/{team.pk}/")
    page.locator("details.deployments-menu summary").click()
    page.get_by_role("link", name="Applications").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Applications")
    expect(page.get_by_role("button", name="+ New Application From Catalog")).to_be_visible()
    page.get_by_role("button", name="+ New Application", exact=True).click()

    expect(page.get_by_role("heading", level=1)).to_have_text("New Application")
    page.get_by_label("Name", exact=True).fill("web")
    expect(page.get_by_label("K8s YAML")).to_be_checked()
    expect(page.get_by_label("Upload files")).to_be_checked()
    expect(page.get_by_label("Chart version")).to_be_hidden()  # Helm's fields: for Helm charts only
    expect(page.get_by_label("Repository", exact=True)).to_be_hidden()
    page.get_by_label("Helm chart").check()
    page.get_by_label("Pull files from repository").check()
    expect(page.get_by_label("Chart version")).to_be_visible()
    expect(page.get_by_label("Repository", exact=True)).to_be_visible()
    expect(page.locator("input[name=files]")).to_be_hidden()
    page.get_by_label("K8s YAML").check()
    page.get_by_label("Upload files").check()
    page.locator("input[name=files]").set_input_files(
        files=[{"name": "web.yaml", "mimeType": "application/yaml", "buffer": CONFIGMAP}]
    )
    page.get_by_label("Compute instance").select_option(label="box")
    assert axe_violations(page) == []
    shot("new-application", page)
    page.get_by_role("button", name="Deploy").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("web")
    expect(page.get_by_text("Deploying web on box.")).to_be_visible()
    expect(page.locator("#revisions")).to_contain_text("upload: web.yaml")
    application = Application.objects.get(compute_instance=box, name="web")
    assert application.revisions.get().files == {"web.yaml": CONFIGMAP.decode()}
    expect(page.locator("#application-status")).to_contain_text("Deployment status")
    assert axe_violations(page) == []
    shot("application-page", page)

    page.get_by_role("navigation", name="breadcrumb").get_by_role("link", name="Applications").click()
    row = page.locator("tbody tr", has=page.get_by_role("link", name="web", exact=True))
    expect(row).to_contain_text("K8s YAML")
    expect(row).to_contain_text("box")
    expect(row.locator("[data-state]")).to_have_attribute("data-state", application.state)
    expect(row.get_by_role("button", name="Debug web")).to_have_attribute(
        "href", f"/applications/{application.pk}/#debug"
    )
    assert axe_violations(page) == []
    shot("applications-list", page)
