"""A notebook's whole life through the developer hub in Debian's Chromium, deployed for real: from the
service catalog's card to ready on the local control plane with its URL and token shown, then stop,
start and delete, each run executed by a real worker (``manage.py qcluster``) as the portal queues it;
first, a new job's type switched in the page (htmx swaps in that profile's inputs, nothing typed is lost).
"""

import re

import pytest
from playwright.sync_api import expect

from catalog.models import ServiceProfile
from instances.models import ComputeInstance, ServiceInstance
from instances.services import instance_launch
from tests.browser.helpers import login, wait_until
from tests.browser.test_portal_browser import assert_basic_accessibility

LOGIN = "/login/"


@pytest.mark.kube
def test_a_notebook_from_the_catalog_card_to_ready_then_stop_start_and_delete(
    worker, platform, kube_cluster, new_page, shot
):
    team = platform.project
    box = instance_launch(actor=platform.owner, project=team, name="box", profile=platform.profile)
    wait_until(
        lambda: ComputeInstance.objects.get(pk=box.pk).state == "ready",
        what="the compute instance to be ready",
        timeout=120,
        worker=worker,
    )
    jupyter = ServiceProfile.objects.get(org__isnull=True, name="jupyter-notebook")

    page = new_page()
    login(page, platform.owner.username, platform.password, url=LOGIN)
    # Changing the type of a new job swaps in that profile's inputs (htmx), keeping what was typed.
    page.goto(f"/w/{team.pk}/deployments/jobs/new/")
    page.get_by_label("Name", exact=True).fill("my-job")
    expect(page.get_by_label("Base model")).to_be_visible()
    page.get_by_label("Type").select_option(label="Training Job")
    expect(page.locator("textarea[name=input_command]")).to_be_visible()  # multi-line: a text area
    expect(page.get_by_label("Base model")).to_have_count(0)
    expect(page.get_by_label("Name", exact=True)).to_have_value("my-job")

    page.goto(f"/w/{team.pk}/services/")
    page.get_by_role("button", name="Launch Jupyter Notebook").click()

    # The reference's "Create Notebook": name, description, type, compute instance, then the inputs
    # with the notebook profile selector.
    expect(page.get_by_role("heading", level=1)).to_have_text("New notebook")
    expect(page.get_by_label("Type")).to_have_value(str(jupyter.pk))
    page.get_by_label("Name", exact=True).fill("demo-notebook")
    page.get_by_label("Description (optional)").fill("exploring")
    page.get_by_label("Compute instance").select_option(label="box")
    selector = page.get_by_label("Notebook profile")
    expect(selector).to_have_value("Minimal")
    options = selector.locator("option").all_inner_texts()
    assert options == [
        "Minimal",
        "Data Science",
        "Spark",
        "TensorFlow",
        "TensorFlow with CUDA",
        "PyTorch",
        "PyTorch with CUDA",
    ], options
    selector.select_option("Data Science")
    shot("new-notebook", page)
    assert_basic_accessibility(page)
    page.get_by_role("button", name="Launch").click()

    # The service page follows the deploy live until the notebook is ready, then shows its URL.
    expect(page.get_by_role("heading", level=1)).to_have_text("demo-notebook")
    expect(page.get_by_text("Deploying demo-notebook on box.")).to_be_visible()
    status = page.locator("#service-status")
    expect(status.locator('[data-state="ready"]')).to_be_visible(timeout=120_000)
    service = ServiceInstance.objects.get(compute_instance=box, name="demo-notebook")
    assert service.input_values.get("notebook_profile") == "Data Science"
    assert service.host.startswith("demo-notebook.")
    url = status.locator(".service-url a")
    expect(url).to_have_attribute("href", re.compile(rf"^https?://{re.escape(service.host)}$"))
    expect(status).to_contain_text("Notebook URL")
    # The token is not in the page until asked for (a POST, audited), then shown in place.
    assert "Reveal" in status.inner_text()
    status.get_by_role("button", name="Reveal Token").click()
    expect(status.locator("#service-output-token code")).not_to_be_empty()
    shot("notebook-ready", page)

    # Stop: the run is queued, the page polls until the service is stopped, then offers Start.
    status.get_by_role("button", name="Stop").click()
    expect(page.get_by_text("Running stop on demo-notebook.")).to_be_visible()
    expect(status.locator('[data-state="stopped"]')).to_be_visible(timeout=90_000)
    expect(status.get_by_role("button", name="Start")).to_be_visible()
    expect(status.get_by_role("button", name="Stop")).to_have_count(0)
    shot("notebook-stopped", page)
    status.get_by_role("button", name="Start").click()
    expect(status.locator('[data-state="ready"]')).to_be_visible(timeout=90_000)
    expect(status.get_by_role("button", name="Stop")).to_be_visible()

    # The instance's page lists the notebook and what it uses of the instance.
    page.get_by_role("link", name="box").first.click()
    expect(page.locator("#services")).to_contain_text("demo-notebook")
    expect(page.locator("#services table.service-usage")).to_be_visible()
    page.locator("#services").get_by_role("link", name="demo-notebook").click()

    # Delete, after typing its name.
    page.locator("#service-status").get_by_role("button", name="Delete…").click()
    expect(page.get_by_role("heading", name="Delete demo-notebook?")).to_be_visible()
    page.get_by_label("Type demo-notebook to confirm").fill("demo-notebook")
    page.get_by_role("button", name="Delete service").click()
    expect(page.get_by_text("Deleting demo-notebook.")).to_be_visible()
    expect(page.locator('#service-status [data-state="deleted"]')).to_be_visible(timeout=90_000)
    shot("notebook-deleted", page)
    assert ComputeInstance.objects.get(pk=box.pk).state == "ready"  # the instance stays
