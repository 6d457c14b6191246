"""A cluster's ingress class and TLS are platform settings an operator sets (studio and API), checked and
audited, and injected into every service render (never template inputs a user or admin can change)."""

from instances.service_render import ingress_settings
from paas.audit import AuditEvent
from tests.factories import make_synced_cluster


def test_operator_sets_ingress_class_and_tls_through_the_api(world, api):
    cluster = make_synced_cluster(name="edge")
    url = f"/api/v1/clusters/{cluster.pk}/"
    op = api.as_user(world.operator)
    response = op.patch(url, {"ingress_class": "nginx-internal", "ingress_tls": True}, format="json")
    assert response.status_code == 200, response.json()
    assert (response.json()["ingress_class"], response.json()["ingress_tls"]) == ("nginx-internal", True)
    cluster.refresh_from_db()
    assert (cluster.ingress_class, cluster.ingress_tls) == ("nginx-internal", True)
    event = AuditEvent.objects.filter(action="cluster.update").latest("pk")
    assert set(event.details["changes"]) == {"ingress_class", "ingress_tls"}

    bad = op.patch(url, {"ingress_class": "Not A Class!"}, format="json")
    assert bad.status_code == 400
    assert "ingress_class" in bad.json()["error"]["fields"]
    cluster.refresh_from_db()
    assert cluster.ingress_class == "nginx-internal"  # nothing changed on bad input

    org_admin = api.as_user(world.a.users["org_admin"])
    assert org_admin.patch(url, {"ingress_class": "x"}, format="json").status_code in (403, 404)


def test_the_settings_reach_the_service_render(world):
    """What service templates get as ``ingress`` (the whole render is tested in test_services_deploy)."""
    cluster = make_synced_cluster(name="edge")
    host = "nb.i-dev-ns.apps.example.com"
    assert ingress_settings(cluster, host) == {
        "host": host,
        "class_name": "",
        "tls": False,
        "scheme": "http",
        "url": f"http://{host}",
    }
    cluster.ingress_class, cluster.ingress_tls = "public", True
    assert ingress_settings(cluster, host) == {
        "host": host,
        "class_name": "public",
        "tls": True,
        "scheme": "https",
        "url": f"https://{host}",
    }
