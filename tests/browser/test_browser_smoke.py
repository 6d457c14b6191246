"""The browser-test set-up, proven on the studio: Chromium, the live server, the error checks, the
screenshots, and a worker that deploys onto the local control plane what a browser session launched."""

import re

import pytest
from playwright.sync_api import expect

from tests.browser.helpers import login, wait_until
from tests.support.support import grant_support


def test_an_operator_logs_into_the_studio_on_desktop_and_phone(accounts, page, phone_page, shot):
    page.goto("/studio/")
    expect(page).to_have_url(re.compile(r"/studio/login/\?next=/studio/$"))
    with pytest.raises(AssertionError, match="Please enter the correct username and password"):
        login(page, accounts.operator.username, "not-the-password")

    login(page, accounts.operator.username, accounts.password)
    expect(page).to_have_title(re.compile(r"PaaS Studio"))
    expect(page.locator("#site-name")).to_have_text("GPUPaaS Studio")
    expect(page.get_by_role("heading", name="Platform administration")).to_be_visible()
    expect(page.get_by_role("link", name="Compute instances")).to_be_visible()
    assert shot("studio-index", page).stat().st_size > 10_000

    login(phone_page, accounts.operator.username, accounts.password)
    expect(phone_page.get_by_role("heading", name="Platform administration")).to_be_visible()
    assert phone_page.evaluate("window.innerWidth") == 390
    shot("studio-index-phone", phone_page)


def test_missing_static_files_and_script_errors_are_caught(accounts, page, browser_errors):
    login(page, accounts.operator.username, accounts.password)
    # Static files come from the apps' static/ directories (the admin's here; the portal's in paas/static/).
    assert page.request.get("/static/admin/css/base.css").ok
    assert browser_errors.unexpected() == []
    page.evaluate(
        """() => {
            const link = document.createElement("link");
            link.rel = "stylesheet";
            link.href = "/static/paas/missing.css";
            document.head.append(link);
            setTimeout(() => { throw new Error("boom from a script"); }, 0);
        }"""
    )
    expect(page.locator("link[href='/static/paas/missing.css']")).to_have_count(1)
    wait_until(
        lambda: len(browser_errors.errors) >= 3,
        what="the browser to report three errors",
        timeout=10,
        page=page,
    )
    with pytest.raises(pytest.fail.Exception) as failed:
        browser_errors.check()
    message = str(failed.value)
    assert re.search(r"404 GET http://[^ ]+/static/paas/missing\.css", message), message
    assert re.search(r"uncaught exception: Error: boom from a script \(at .+:\d+:\d+\)", message), message
    browser_errors.allow(r"/static/paas/missing\.css", "boom from a script")
    browser_errors.check()


@pytest.mark.kube
def test_an_instance_launched_in_a_browser_session_is_deployed_by_the_worker(worker, platform, page, shot):
    # A member launches (operators see no workspace).
    login(page, platform.owner.username, platform.password, url="/login/")
    csrf = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    made = page.request.post(
        "/api/v1/instances/",
        data={"project": platform.project.pk, "name": "smoke", "profile": platform.profile.pk},
        headers={"X-CSRFToken": csrf},
    )
    assert made.status == 201, made.text()
    instance = made.json()
    assert instance["state"] == "pending" and instance["cluster"] == "browser-local"

    def settled():
        state = page.request.get(f"/api/v1/instances/{instance['id']}/").json()["state"]
        return state if state in ("ready", "failed") else None

    assert wait_until(settled, what="the instance to be deployed", timeout=90, worker=worker) == "ready"
    # The operator looks at it in the studio through a read support access to the org.
    grant_support(operator=platform.operator, org=platform.org, level="read")
    login(page, platform.operator.username, platform.password)
    page.goto(f"/studio/instances/computeinstance/{instance['id']}/change/")
    expect(page.locator(".field-state .readonly")).to_have_text("Ready")
    expect(page.locator(".field-namespace .readonly")).not_to_be_empty()
    expect(page.get_by_text("isolation baseline").first).to_be_visible()
    shot("instance-ready")
