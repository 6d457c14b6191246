"""Instance outputs on the detail page and in the API: plain values shown, secret ones read from the
namespace on request (owner and collaborators only, audited, never stored). Real control plane."""

from pathlib import Path

import pytest

from catalog import services as catalog_services
from catalog.models import ComputeProfile
from instances import deployer
from instances.models import ComputeInstance, Run
from inventory import services as inventory_services
from inventory import tasks as inventory_tasks
from paas.models import AuditEvent
from tests.factories import ONE_A100
from tests.support.instances import launch

pytestmark = pytest.mark.kube

MANIFESTS = """apiVersion: v1
kind: Secret
metadata:
  name: "{{ instance.name }}-creds"
stringData:
  token: s3cr3t-{{ instance.name }}
"""
OUTPUTS = [
    {
        "name": "where",
        "description": "The namespace.",
        "source": {"type": "template", "value": "{{ instance.namespace }}"},
    },
    {
        "name": "token",
        "description": "The access token.",
        "source": {"type": "secret", "name": "{{ instance.name }}-creds", "key": "token"},
    },
]


@pytest.fixture
def ready(world, kube_cluster):
    cluster = inventory_services.cluster_register(
        actor=world.operator, name="local", kubeconfig=Path(kube_cluster.kubeconfig_path).read_text()
    )
    inventory_tasks.cluster_refresh(cluster.pk)
    admin = world.a.users["org_admin"]
    template = catalog_services.template_create(actor=admin, project=world.a.project, name="with-secret")
    version = catalog_services.template_version_create(
        actor=admin, template=template, version="v1", manifests=MANIFESTS, outputs=OUTPUTS
    )
    version = catalog_services.template_version_publish(actor=admin, version=version)
    profile = catalog_services.profile_create(
        actor=admin,
        model=ComputeProfile,
        project=world.a.project,
        name="secretive",
        template_version=version,
        published=True,
        resource_groups=ONE_A100,
    )
    instance = launch(world, profile, "box")
    run = instance.runs.get()
    assert deployer.execute(run.pk) == "ready", Run.objects.get(pk=run.pk).log
    return world, ComputeInstance.objects.get(pk=instance.pk)


def test_outputs_shown_and_secrets_revealed_on_request(ready, client, api):
    world, instance = ready
    assert instance.outputs["token"] == {
        "secret": True,
        "name": "box-creds",
        "key": "token",
    }  # no value stored
    client.force_login(world.a.users["workspace_admin"])
    page = client.get(f"/instances/{instance.pk}/").content.decode()
    assert f"<code>{instance.namespace}</code>" in page and "The access token." in page
    assert "s3cr3t" not in page and 'aria-label="Reveal token"' in page
    url = f"/instances/{instance.pk}/outputs/token/reveal/"
    partial = client.post(url, HTTP_HX_REQUEST="true")
    assert partial.status_code == 200 and "s3cr3t-box" in partial.content.decode()
    assert partial["Cache-Control"] == "no-store" and "<html" not in partial.content.decode()
    assert "s3cr3t-box" in client.post(url).content.decode()  # without JavaScript: a page
    assert client.post(f"/instances/{instance.pk}/outputs/where/reveal/").status_code == 404  # not secret
    assert AuditEvent.objects.filter(action="instance.output_reveal", target_id=str(instance.pk)).count() == 2

    client.force_login(world.a.users["collaborator_ro"])
    ro_page = client.get(f"/instances/{instance.pk}/").content.decode()
    assert "Reveal" not in ro_page and "secret" in ro_page
    assert client.post(url).status_code == 403

    revealed = api.as_user(world.a.users["workspace_admin"]).post(
        f"/api/v1/instances/{instance.pk}/outputs/token/reveal/"
    )
    assert revealed.status_code == 200 and revealed.json() == {"name": "token", "value": "s3cr3t-box"}
    refused = api.as_user(world.a.users["collaborator_ro"]).post(
        f"/api/v1/instances/{instance.pk}/outputs/token/reveal/"
    )
    assert refused.status_code == 403
    other = api.as_user(world.b.users["workspace_admin"]).post(
        f"/api/v1/instances/{instance.pk}/outputs/token/reveal/"
    )
    assert other.status_code == 404
