"""The service profile wizard in a real browser: htmx (vendored, no CDN) rebuilds the settings tables
when the template version changes and the storage list when the datacenter changes, without a page
load; the profile is then saved and listed. Also the studio home's cards."""

import re

from playwright.sync_api import expect

from catalog import services
from catalog.models import ServiceProfile
from inventory.models import Datacenter, Storage
from tests.browser.helpers import login

MANIFESTS = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  a: b\n"
INPUTS_V1 = [
    {"name": "flavor", "type": "select", "options": ["small", "large"], "default": "small", "required": True},
    {"name": "gpus", "type": "number", "default": 1, "required": True},
]
INPUTS_V2 = [INPUTS_V1[0], {"name": "replicas", "type": "number", "default": 2}]
ACTIONS = [
    {
        "name": "stop",
        "description": "Stop it",
        "variables": [
            {"name": "run_strategy", "type": "select", "options": ["started", "halted"], "default": "halted"}
        ],
    }
]


def _publish(admin, template, version, inputs):
    draft = services.template_version_create(
        actor=admin, template=template, version=version, manifests=MANIFESTS, inputs=inputs, actions=ACTIONS
    )
    return services.template_version_publish(actor=admin, version=draft)


def test_the_wizard_follows_template_version_and_datacenter_without_reloading(accounts, page, shot):
    admin = accounts.org_admin
    template = services.template_create(actor=admin, project=accounts.project, name="nb")
    _publish(admin, template, "v1", INPUTS_V1)
    _publish(admin, template, "v2", INPUTS_V2)
    dc1 = Datacenter.objects.create(
        name="dc1", display_name="DC 1", kind="data_center", infrastructure_type="bare_metal"
    )
    dc2 = Datacenter.objects.create(
        name="dc2", display_name="DC 2", kind="data_center", infrastructure_type="bare_metal"
    )
    Storage.objects.create(name="open-a", kind="high-speed-storage", storage_class="std")
    Storage.objects.create(name="dc1-fast", kind="high-speed-storage", datacenter=dc1, storage_class="f")
    Storage.objects.create(name="dc2-fast", kind="high-speed-storage", datacenter=dc2, storage_class="f")

    login(page, admin.username, accounts.password)
    page.goto("/studio/catalog/serviceprofile/add/")
    page.evaluate("window.__sameDocument = true")  # gone if the page reloads
    page.select_option("#id_project", label=str(accounts.project))
    page.fill("#id_name", "nb-browser")
    page.fill("#id_display_name", "Notebook (browser)")
    page.select_option("#id_template", label="nb")
    # the newest version is chosen and its tables appear
    expect(page.locator("#id_template_version")).to_have_value(re.compile(r"\d+"))
    expect(page.locator("#inputs code", has_text="replicas")).to_be_visible()
    page.select_option("#id_template_version", label="v1")
    expect(page.locator("#inputs code", has_text="gpus")).to_be_visible()
    expect(page.locator("#inputs code", has_text="replicas")).to_have_count(0)
    gpus_default = page.locator("#inputs tr", has=page.locator("code", has_text="gpus")).locator(
        "input[type=text]"
    )
    gpus_default.fill("3")
    expect(page.locator("#actions code", has_text="run_strategy")).to_be_visible()

    storage = page.locator("#storage-choices")
    expect(storage).to_contain_text("open-a")
    expect(storage).not_to_contain_text("dc1-fast")
    page.select_option("#id_datacenter", label="DC 1")
    expect(storage).to_contain_text("dc1-fast")
    expect(storage).not_to_contain_text("dc2-fast")
    page.check(f"#storage-choices input[value='{Storage.objects.get(name='dc1-fast').pk}']")
    assert page.evaluate("window.__sameDocument") is True, "htmx swapped parts; the page never reloaded"
    shot("wizard-filled", page)

    with page.expect_navigation():
        page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator(".messagelist")).to_contain_text("Service profile nb-browser created")
    profile = ServiceProfile.objects.get(name="nb-browser")
    assert profile.template_version.version == "v1"
    assert profile.input_settings["gpus"]["default"] == 3
    assert [s.name for s in profile.storages.all()] == ["dc1-fast"] and profile.datacenter == dc1
    shot("service-profile-list", page)

    page.goto("/studio/")
    expect(page.get_by_role("heading", name="Custom Profiles")).to_be_visible()
    expect(page.locator('[data-profile="nb-browser"]')).to_contain_text("Launch into projects")
    shot("studio-home", page)
