"""The applications API on the local control plane: deploy from an upload, PATCH to a new revision
that drops an object (deleted), roll back (a new revision, the dropped object back), retry refused on a
ready application, refresh, delete; what the API shows at each step (revisions, object status)."""

import pytest

from instances.models import Application
from tests.support.applications import bundle, config_map, last_run, run_app
from tests.support.instances import launch_instance

pytestmark = pytest.mark.kube

URL = "/api/v1/applications/"


def _config_maps(live, namespace: str) -> set[str]:
    return {
        item.metadata.name
        for item in live["core"].list_namespaced_config_map(namespace).items
        if item.metadata.name.startswith("web-")
    }


def test_api_round_trip_on_a_cluster(live, api):
    instance = launch_instance(live)
    owner = instance.owner
    client = api.as_user(owner)
    created = client.post(
        URL,
        {
            "compute_instance": instance.pk,
            "name": "web",
            "package_type": "yaml",
            "files": {"app.yaml": bundle(config_map("web-a"), config_map("web-b"))},
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    application = Application.objects.get(pk=created.json()["id"])
    assert run_app(application) == "ready", last_run(application).log
    body = client.get(f"{URL}{application.pk}/").json()
    assert body["state"] == "ready" and body["revisions"][0]["outcome"] == "deployed"
    assert {(s["kind"], s["name"], s["ready"]) for s in body["object_status"]} == {
        ("ConfigMap", "web-a", True),
        ("ConfigMap", "web-b", True),
    }
    assert _config_maps(live, instance.namespace) == {"web-a", "web-b"}

    updated = client.patch(
        f"{URL}{application.pk}/", {"files": {"app.yaml": config_map("web-a", "two")}}, format="json"
    )
    assert updated.status_code == 200 and updated.json()["revision"] == 2, updated.content
    assert run_app(application) == "ready", last_run(application).log
    assert _config_maps(live, instance.namespace) == {"web-a"}  # the object the update dropped is gone
    body = client.get(f"{URL}{application.pk}/").json()
    assert [(r["number"], r["outcome"]) for r in body["revisions"]] == [(2, "deployed"), (1, "superseded")]

    rolled = client.post(f"{URL}{application.pk}/rollback/", {}, format="json")
    assert rolled.status_code == 202 and rolled.json()["revision"] == 3, rolled.content
    assert rolled.json()["revisions"][0]["rollback_of"] == 1
    assert run_app(application) == "ready", last_run(application).log
    assert _config_maps(live, instance.namespace) == {"web-a", "web-b"}
    assert client.post(f"{URL}{application.pk}/retry/").status_code == 409  # nothing failed
    assert client.post(f"{URL}{application.pk}/refresh/").status_code == 202
    bad = client.post(f"{URL}{application.pk}/rollback/", {"revision": 99}, format="json")
    assert bad.status_code == 400 and "revision" in bad.json()["error"]["fields"]

    deleted = client.delete(f"{URL}{application.pk}/")
    assert deleted.status_code == 202
    assert run_app(application) == "deleted", last_run(application).log
    assert _config_maps(live, instance.namespace) == set()
    assert client.get(f"{URL}{application.pk}/").json()["state"] == "deleted"
    assert client.get(URL).json()["count"] == 0 and client.get(f"{URL}?state=deleted").json()["count"] == 1
