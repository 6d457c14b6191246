"""An operator sets a cluster's Prometheus URL in the studio and through the API: checked (http/https
only, no credentials in it, the outbound-address policy's answer) with field errors, audited, and
testable ("test connection": what the real Prometheus answered). Org admins cannot change it."""

import html
import re

import pytest

from inventory.models import Cluster
from paas.audit import AuditEvent
from tests.factories import make_synced_cluster
from tests.support.canary import CANARY
from tests.support.html_forms import form_data
from tests.support.prometheus import free_port

BAD_URLS = [
    ("ftp", "ftp://prometheus.example.com/", "scheme ftp:// is not allowed"),
    ("file", "file:///etc/passwd", None),  # the form's URL check or the policy: a field error either way
    ("credentials", f"http://reader:{CANARY}@127.0.0.1:9090/", "user name or password"),
    ("metadata", "http://169.254.169.254/", "cloud metadata address"),
    ("query", "http://127.0.0.1:9090/?x=1", "without a query"),
]


@pytest.mark.parametrize(("case", "url", "expected"), BAD_URLS, ids=[b[0] for b in BAD_URLS])
def test_the_api_refuses_bad_addresses_with_a_field_error(world, api, case, url, expected):
    cluster = make_synced_cluster(name=f"api-{case}")
    before = AuditEvent.objects.count()
    response = api.as_user(world.operator).patch(
        f"/api/v1/clusters/{cluster.pk}/", {"prometheus_url": url}, format="json"
    )
    assert response.status_code == 400, response.content
    messages = " ".join(response.json()["error"]["fields"]["prometheus_url"])
    assert expected is None or expected in messages, messages
    cluster.refresh_from_db()
    assert cluster.prometheus_url == "" and AuditEvent.objects.count() == before


def test_an_operator_sets_tests_and_clears_it_through_the_api(world, api, prometheus):
    prometheus.exporter.set_gpu(namespace="settings-api", pod="p-0", percent=40, gpu=6)
    prometheus.wait_for_samples("settings-api", 1)
    cluster = make_synced_cluster(name="api-good")
    url = f"/api/v1/clusters/{cluster.pk}/"
    op = api.as_user(world.operator)

    # Tested before saving it: what Prometheus answered.
    check = op.post(f"{url}prometheus-check/", {"prometheus_url": prometheus.url}, format="json")
    assert check.status_code == 200, check.content
    assert check.json()["works"] is True
    assert re.search(
        r"Prometheus 2\.42\.0\+ds answered: \d+ DCGM_FI_DEV_GPU_UTIL series", check.json()["message"]
    )
    assert AuditEvent.objects.filter(action="cluster.prometheus_check", target_id=str(cluster.pk)).exists()

    response = op.patch(url, {"prometheus_url": prometheus.url}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["prometheus_url"] == prometheus.url
    event = AuditEvent.objects.filter(action="cluster.update").latest("pk")
    assert event.details["changes"] == {"prometheus_url": ["", prometheus.url]}
    assert op.get(url).json()["prometheus_url"] == prometheus.url
    assert op.post(f"{url}prometheus-check/", {}, format="json").json()["works"] is True

    # Something that is not answering: the check says so (no error status: the check itself worked).
    down = f"http://127.0.0.1:{free_port()}/"
    failed = op.post(f"{url}prometheus-check/", {"prometheus_url": down}, format="json")
    assert failed.status_code == 200 and failed.json()["works"] is False
    assert "refused the connection" in failed.json()["message"]
    # An address the policy refuses is a field error, as for an edit, and nothing connects.
    refused = op.post(f"{url}prometheus-check/", {"prometheus_url": "http://169.254.169.254/"}, format="json")
    assert refused.status_code == 400 and "prometheus_url" in refused.json()["error"]["fields"]

    cleared = op.patch(url, {"prometheus_url": ""}, format="json")
    assert cleared.status_code == 200 and cleared.json()["prometheus_url"] == ""
    not_configured = op.post(f"{url}prometheus-check/", {}, format="json")
    assert not_configured.status_code == 400
    assert "prometheus_url" in not_configured.json()["error"]["fields"]


def test_registration_through_the_api_checks_it_too(world, api):
    response = api.as_user(world.operator).post(
        "/api/v1/clusters/",
        {"name": "reg-bad", "kubeconfig": "apiVersion: v1", "prometheus_url": "http://169.254.169.254/"},
        format="json",
    )
    assert response.status_code == 400 and "prometheus_url" in response.json()["error"]["fields"]
    assert not Cluster.objects.filter(name="reg-bad").exists()


def test_org_admins_can_neither_set_nor_test_it(world, api, prometheus):
    cluster = make_synced_cluster(name="api-tenant")
    url = f"/api/v1/clusters/{cluster.pk}/"
    for user in (world.a.users["org_admin"], world.outsider):
        client = api.as_user(user)
        assert client.patch(url, {"prometheus_url": prometheus.url}, format="json").status_code in (403, 404)
        check = client.post(f"{url}prometheus-check/", {"prometheus_url": prometheus.url}, format="json")
        assert check.status_code in (403, 404)
    cluster.refresh_from_db()
    assert cluster.prometheus_url == ""
    assert not AuditEvent.objects.filter(action="cluster.prometheus_check").exists()


def _errors(page) -> str:
    return " ".join(
        re.findall(r'<ul class="errorlist[^>]*>.*?</ul>', html.unescape(page.content.decode()), re.S)
    )


def test_the_studio_cluster_page_sets_it_with_field_errors_and_tests_it(world, client, prometheus):
    prometheus.exporter.set_gpu(namespace="settings-studio", pod="p-0", percent=40, gpu=7)
    prometheus.wait_for_samples("settings-studio", 1)
    cluster = make_synced_cluster(name="studio-prom")
    client.force_login(world.operator)
    change = f"/studio/inventory/cluster/{cluster.pk}/change/"
    page = client.get(change)
    assert page.status_code == 200 and 'name="prometheus_url"' in page.content.decode()
    form = form_data(page.content.decode())

    for _case, url, expected in BAD_URLS:
        refused = client.post(change, form | {"prometheus_url": url})
        assert refused.status_code == 200, url
        field_errors = " ".join(refused.context["adminform"].form.errors.get("prometheus_url", []))
        assert field_errors, (url, _errors(refused))
        assert expected is None or expected in field_errors, field_errors
    cluster.refresh_from_db()
    assert cluster.prometheus_url == ""

    saved = client.post(change, form | {"prometheus_url": prometheus.url})
    assert saved.status_code == 302, _errors(saved)
    cluster.refresh_from_db()
    assert cluster.prometheus_url == prometheus.url
    event = AuditEvent.objects.filter(action="cluster.update", target_id=str(cluster.pk)).latest("pk")
    assert event.details["changes"]["prometheus_url"] == ["", prometheus.url]

    tested = client.post(
        "/studio/inventory/cluster/",
        {"action": "prometheus_test", "_selected_action": [cluster.pk]},
        follow=True,
    )
    shown = [str(m) for m in tested.context["messages"]]
    assert any(m.startswith("studio-prom: Prometheus 2.42.0+ds answered") for m in shown), shown

    # An org admin reads the cluster card (the address included) but cannot change it.
    client.force_login(world.a.users["org_admin"])
    assert client.post(change, form | {"prometheus_url": ""}).status_code == 403
    cluster.refresh_from_db()
    assert cluster.prometheus_url == prometheus.url
