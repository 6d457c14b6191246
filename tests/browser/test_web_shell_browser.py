"""The web shell in the browser: the instance page's "kubectl" button opens xterm.js (vendored), typing
``kubectl get pods`` shows the answer from the local cluster through the platform's proxy, and
``kubectl proxy`` is refused by name. Served by the real ASGI server (WebSockets)."""

import re

import pytest
from playwright.sync_api import expect

from instances import deployer, services
from instances.models import Run
from paas.models import AuditEvent
from tests.browser import helpers
from tests.support.wait import wait_for


@pytest.mark.kube
def test_kubectl_in_the_browser(platform, kube_proxy, kubectl_binary, bwrap_binary, settings, new_page, shot):
    settings.PAAS_KUBECTL_BINARY = str(kubectl_binary)
    settings.PAAS_BWRAP_BINARY = str(bwrap_binary)
    instance = services.instance_launch(
        actor=platform.owner, project=platform.project, name="shelly", profile=platform.profile
    )
    run = instance.runs.get()
    assert deployer.execute(run.pk) == "ready", Run.objects.get(pk=run.pk).log

    page = new_page()
    base = kube_proxy.url  # the ASGI server: pages and the shell's WebSocket
    helpers.login(page, platform.owner.username, platform.password, url=f"{base}/login/")
    page.goto(f"{base}/instances/{instance.pk}/")
    page.get_by_role("button", name="kubectl", exact=True).click()
    expect(page).to_have_url(f"{base}/instances/{instance.pk}/shell/")
    expect(page.locator("#shell-status")).to_have_text("Connected.")
    screen = page.locator("#shell-terminal .xterm-rows")
    expect(screen).to_contain_text("Every command is audited", timeout=20_000)

    page.locator("#shell-terminal").click()
    page.keyboard.type("kubectl get pods")
    page.keyboard.press("Enter")
    # the instance's pods, in its namespace, as the user's ServiceAccount
    expect(screen).to_contain_text(
        re.compile(r"NAME +READY +STATUS|No resources found in i-"), timeout=30_000
    )
    shot("get-pods", page)

    page.keyboard.type("kubectl proxy")
    page.keyboard.press("Enter")
    expect(screen).to_contain_text("refused (proxy)", timeout=10_000)
    page.keyboard.type("cat /etc/passwd")
    page.keyboard.press("Enter")
    expect(screen).to_contain_text("refused (not_allowed)", timeout=10_000)
    shot("refused", page)

    lines = [
        e.details["line"] for e in AuditEvent.objects.filter(action="instance.shell_command").order_by("pk")
    ]
    assert lines == ["kubectl get pods", "kubectl proxy", "cat /etc/passwd"]
    page.close()  # closing the page ends the session
    wait_for(
        lambda: AuditEvent.objects.filter(action="instance.shell_close").exists(),
        timeout=15,
        what="the session closed with the page",
    )
