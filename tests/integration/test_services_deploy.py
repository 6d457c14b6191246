"""Service instances deployed onto compute instances on the real local control plane, end to end."""

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from instances import service_instances
from instances import services as instance_services
from instances.models import Run, ServiceInstance
from inventory.models import Cluster, Datacenter, Storage
from inventory.selectors import storage_for_datacenter
from paas.audit import AuditEvent
from paas.errors import ValidationFailed
from paas.platform_owned import LABEL_SERVICE
from tests.support.instances import launch_instance
from tests.support.services import WEB_MANIFESTS, deploy_service, make_service_profile, run_to_end

pytestmark = pytest.mark.kube


def test_launch_deploy_ready_outputs_and_delete(live):
    world, core = live["world"], live["core"]
    instance = launch_instance(live)
    profile = make_service_profile(
        world,
        labels={"team": "ml"},
        annotations={"example.com/owner": "ml"},
        extra_config={"LOG_LEVEL": "debug"},
    )
    service = deploy_service(live, instance, profile, "web")
    assert service.state == "ready" and service.host == f"web.{instance.namespace}.apps.local.paas.internal"
    apps = k8s.AppsV1Api(core.api_client)
    deployment = apps.read_namespaced_deployment("web", instance.namespace)
    assert deployment.metadata.labels[LABEL_SERVICE] == "web" and deployment.metadata.labels["team"] == "ml"
    assert deployment.metadata.annotations["example.com/owner"] == "ml"
    env = {e.name: e.value for e in deployment.spec.template.spec.containers[0].env}
    assert env["LOG_LEVEL"] == "debug" and env["MODE"] == "dev"
    assert deployment.spec.template.metadata.labels[LABEL_SERVICE] == "web"
    ingress = k8s.NetworkingV1Api(core.api_client).read_namespaced_ingress("web", instance.namespace)
    assert ingress.spec.rules[0].host == service.host
    assert service.outputs["host"] == service.host
    shown = service_instances.shown_outputs(service)
    assert [(o["name"], o["label"], o["secret"]) for o in shown] == [
        ("url", "Web URL", False),
        ("token", "Access token", True),
    ]
    run = service_instances.service_delete(actor=instance.owner, service=service)
    assert run_to_end(run) == "deleted"
    service.refresh_from_db()
    assert service.state == "deleted"
    with pytest.raises(ApiException) as gone:
        apps.read_namespaced_deployment("web", instance.namespace)
    assert gone.value.status == 404
    assert ServiceInstance.objects.filter(pk=service.pk).exists()


def test_secret_reveal_audited_not_stored_and_several_services(live, api):
    world = live["world"]
    instance = launch_instance(live)
    profile = make_service_profile(world)
    first = deploy_service(live, instance, profile, "one", inputs={"replicas": 2})
    second = deploy_service(live, instance, profile, "two", actor=world.a.users["collaborator_rw"])
    apps = k8s.AppsV1Api(live["core"].api_client)
    assert {d.metadata.name for d in apps.list_namespaced_deployment(instance.namespace).items} == {
        "one",
        "two",
    }
    assert first.cpu_millis == 200 and second.owner == world.a.users["collaborator_rw"]
    # The token is read from the Secret on request: audited, never stored.
    client = api.as_user(world.a.users["collaborator_rw"])
    response = client.post(f"/api/v1/service-instances/{first.pk}/outputs/token/reveal/")
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    token = response.json()["value"]
    assert len(token) >= 20 and token not in str(ServiceInstance.objects.get(pk=first.pk).outputs)
    assert token not in str(list(AuditEvent.objects.values_list("details", flat=True)))
    assert AuditEvent.objects.filter(action="service.output_reveal", target_id=str(first.pk)).count() == 1
    reader = api.as_user(world.a.users["collaborator_ro"])
    assert reader.post(f"/api/v1/service-instances/{first.pk}/outputs/token/reveal/").status_code == 403
    client = api.as_user(world.a.users["collaborator_rw"])  # (one client: as_user switches it)
    hidden = client.post(f"/api/v1/service-instances/{first.pk}/outputs/host/reveal/")
    assert hidden.status_code == 404  # an output the profile does not show is not revealed either
    outsider = api.as_user(world.b.users["org_admin"])
    assert outsider.post(f"/api/v1/service-instances/{first.pk}/outputs/token/reveal/").status_code == 404
    client = api.as_user(world.a.users["collaborator_rw"])
    shown = client.get(f"/api/v1/service-instances/{first.pk}/").json()["outputs"]
    assert shown[0] == {"name": "url", "label": "Web URL", "value": f"http://{first.host}", "secret": False}
    assert shown[1] == {"name": "token", "label": "Access token", "value": None, "secret": True}
    # Deleting one leaves the other alone.
    response = client.delete(f"/api/v1/service-instances/{first.pk}/")
    assert response.status_code == 202 and response.json()["kind"] == "delete"
    assert run_to_end(Run.objects.get(pk=response.json()["id"])) == "deleted"
    assert {d.metadata.name for d in apps.list_namespaced_deployment(instance.namespace).items} == {"two"}


def test_instance_delete_deletes_its_services_first(live):
    world = live["world"]
    instance = launch_instance(live)
    service = deploy_service(live, instance, make_service_profile(world), "web")
    run = instance_services.instance_delete(actor=instance.owner, instance=instance)
    service.refresh_from_db()
    assert service.state == "deleting"
    assert run_to_end(run) == "deleted"
    service.refresh_from_db()
    assert service.state == "deleted" and service.deleted_at
    log = " ".join(step["message"] for step in Run.objects.get(pk=run.pk).log)
    assert "Removed the objects of 1 services (web)" in log
    assert log.index("services (web)") < log.index("deletion requested")
    assert service.runs.count() == 1  # its history stays
    assert AuditEvent.objects.filter(action="service.deleted", target_id=str(service.pk)).exists()


def test_ingress_host_is_assigned_and_other_hosts_refused(live):
    world = live["world"]
    instance = launch_instance(live)
    registered = live["cluster"]
    registered.ingress_tls, registered.ingress_class = True, "nginx"
    registered.save(update_fields=["ingress_tls", "ingress_class"])
    instance.refresh_from_db()
    service = deploy_service(live, instance, make_service_profile(world), "nb")
    networking = k8s.NetworkingV1Api(live["core"].api_client)
    ingress = networking.read_namespaced_ingress("nb", instance.namespace)
    assert ingress.spec.rules[0].host == service.host == f"nb.{instance.namespace}.apps.local.paas.internal"
    assert ingress.spec.ingress_class_name == "nginx" and ingress.spec.tls[0].hosts == [service.host]
    assert ingress.spec.tls[0].secret_name is None
    assert service_instances.shown_outputs(service)[0]["value"] == f"https://{service.host}"
    # A template that takes another host is refused before anything is applied (a host from an input:
    # the publish check renders the default, the launch the user's value) ...
    rogue = make_service_profile(
        world,
        name="rogue",
        manifests=WEB_MANIFESTS.replace(
            "- host: {{ ingress.host", "- host: {{ (inputs.note or ingress.host)"
        ),
    )
    with pytest.raises(ValidationFailed) as refused:
        service_instances.service_launch(
            actor=instance.owner,
            compute_instance=instance,
            profile=rogue,
            name="r",
            inputs={"note": "grab.example.com"},
        )
    assert "host 'grab.example.com' is not allowed" in str(refused.value.fields["inputs"])
    # ... and the cluster's guardrails refuse it too, whoever sends it.
    with pytest.raises(ApiException) as denied:
        networking.patch_namespaced_ingress(
            "nb", instance.namespace, {"spec": {"rules": [{"host": "nb.other-ns.apps.local.paas.internal"}]}}
        )
    assert denied.value.status == 403 and "Ingress hosts must be" in denied.value.body


def test_open_storage_chosen_with_a_datacenter_is_mapped_after_deploy(live):
    world = live["world"]
    east = Datacenter.objects.create(name="east", display_name="East", kind="data_center")
    Cluster.objects.filter(pk=live["cluster"].pk).update(datacenter=east)
    instance = launch_instance(live)
    bucket = Storage.objects.create(
        name="obj-shared", kind="object-storage", bucket_name="shared", credentials="key:secret"
    )
    profile = make_service_profile(world, datacenter=east, storage_exposed=True, storage_overridable=True)
    service = service_instances.service_launch(
        actor=instance.owner, compute_instance=instance, profile=profile, name="web", storage=["obj-shared"]
    )
    bucket.refresh_from_db()
    assert bucket.datacenter is None  # not before the deploy succeeds
    assert run_to_end(service.runs.get()) == "ready"
    bucket.refresh_from_db()
    assert bucket.datacenter == east
    assert AuditEvent.objects.filter(action="storage.datacenter_mapped", target_id=str(bucket.pk)).exists()
    # From now on it is east's storage, no longer open storage.
    assert list(storage_for_datacenter(Storage.objects.all(), None)) == []
    assert list(storage_for_datacenter(Storage.objects.all(), east)) == [bucket]


def test_a_refused_apply_is_retried_then_fails_the_service_not_the_instance(live, api):
    world = live["world"]
    instance = launch_instance(live)
    # The schema allows it, the API server does not: the selector does not match the pod labels.
    broken = make_service_profile(
        world,
        name="broken",
        manifests=WEB_MANIFESTS.replace(
            "matchLabels: {app: {{ instance.name }}}", "matchLabels: {app: other}"
        ),
    )
    service = service_instances.service_launch(
        actor=instance.owner, compute_instance=instance, profile=broken, name="web"
    )
    run = service.runs.get()
    assert [run_to_end(run) for _ in range(3)] == ["retrying", "retrying", "failed"]
    service.refresh_from_db()
    instance.refresh_from_db()
    assert service.state == "failed" and "selector" in service.state_reason
    assert instance.state == "ready"
    assert AuditEvent.objects.filter(action="service.failed", target_id=str(service.pk)).exists()
    # The instance's own run list is its own; the service's runs are the service's.
    owner = api.as_user(instance.owner)
    assert [r["kind"] for r in owner.get(f"/api/v1/instances/{instance.pk}/runs/").json()] == ["deploy"]
    assert [r["outcome"] for r in owner.get(f"/api/v1/service-instances/{service.pk}/runs/").json()] == [
        "failed"
    ]
    # A failed service is deleted like any other (what it applied is removed by its inventory).
    run = service_instances.service_delete(actor=instance.owner, service=service)
    assert run_to_end(run) == "deleted"
