"""Deploying compute instances onto the real local control plane, end to end."""

from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from django.utils import timezone
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from catalog import system
from catalog.models import ComputeProfile
from instances import deployer, services
from instances.models import ComputeInstance, Run
from inventory import services as inventory_services
from inventory import tasks as inventory_tasks

pytestmark = pytest.mark.kube


@pytest.fixture
def live(world, kube_cluster):
    inventory_services_cluster = inventory_services.cluster_register(
        actor=world.operator, name="local", kubeconfig=Path(kube_cluster.kubeconfig_path).read_text()
    )
    inventory_tasks.cluster_refresh(inventory_services_cluster.pk)
    system.load(actor=world.operator)
    small = ComputeProfile.objects.get(org__isnull=True, name="small")
    return {"world": world, "profile": small, "core": k8s.CoreV1Api(kube_cluster.api_client())}


def _launch(live, name="dev"):
    world = live["world"]
    instance = services.instance_launch(
        actor=world.a.users["workspace_admin"], project=world.a.project, name=name, profile=live["profile"]
    )
    run = instance.runs.get()
    assert deployer.execute(run.pk) == "ready", Run.objects.get(pk=run.pk).log
    instance.refresh_from_db()
    return instance


def _tenant_api(kubeconfig_text: str):
    return k8s_config.new_client_from_config_dict(yaml.safe_load(kubeconfig_text))


def test_deploy_baseline_idempotence_access_and_delete(live, api):
    world, core = live["world"], live["core"]
    instance = _launch(live)
    ns = core.read_namespace(instance.namespace)
    assert ns.metadata.labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert ns.metadata.labels["paas.gpu/org"] == world.a.org.name
    quota = core.read_namespaced_resource_quota("paas-quota", instance.namespace).spec.hard
    assert quota["requests.nvidia.com/gpu"] == "1" and quota["services.nodeports"] == "0"
    assert {"instance-info"} <= {
        c.metadata.name for c in core.list_namespaced_config_map(instance.namespace).items
    }
    log = Run.objects.get(instance=instance).log
    assert any("isolation baseline" in step["message"] for step in log)
    # Running the same run again changes nothing; a redeploy converges on the same objects.
    versions = {
        c.metadata.name: c.metadata.resource_version
        for c in core.list_namespaced_config_map(instance.namespace).items
    }
    assert deployer.execute(instance.runs.get().pk) == "finished already"
    retry = services.instance_retry(actor=world.a.users["workspace_admin"], instance=instance)
    assert deployer.execute(retry.pk) == "ready"
    assert versions == {
        c.metadata.name: c.metadata.resource_version
        for c in core.list_namespaced_config_map(instance.namespace).items
    }

    # The owner's kubeconfig: a short-lived token bound to the namespace only.
    owner_api = api.as_user(world.a.users["workspace_admin"])
    response = owner_api.post(f"/api/v1/instances/{instance.pk}/kubeconfig/")
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    tenant = _tenant_api(response.content.decode())
    tenant_core = k8s.CoreV1Api(tenant)
    assert tenant_core.list_namespaced_pod(instance.namespace).items == []
    for forbidden in (
        lambda: tenant_core.list_node(),
        lambda: tenant_core.list_namespace(),
        lambda: tenant_core.list_namespaced_pod("kube-system"),
        lambda: tenant_core.patch_namespaced_resource_quota(
            "paas-quota", instance.namespace, {"spec": {"hard": {"requests.nvidia.com/gpu": "64"}}}
        ),
    ):
        with pytest.raises(ApiException) as refused:
            forbidden()
        assert refused.value.status == 403
    nodeport = {"metadata": {"name": "np"}, "spec": {"type": "NodePort", "ports": [{"port": 80}]}}
    with pytest.raises(ApiException) as refused:
        tenant_core.create_namespaced_service(instance.namespace, nodeport)
    assert refused.value.status == 403

    # A collaborator gains access (and a kubeconfig), then loses it.
    friend = world.a.users["collaborator_rw"]
    services.collaborator_add(actor=world.a.users["workspace_admin"], instance=instance, email=friend.email)
    services.access_apply(instance_id=instance.pk)
    friend_kubeconfig = (
        api.as_user(friend).post(f"/api/v1/instances/{instance.pk}/kubeconfig/").content.decode()
    )
    friend_core = k8s.CoreV1Api(_tenant_api(friend_kubeconfig))
    assert friend_core.list_namespaced_pod(instance.namespace).items == []
    services.collaborator_remove(actor=world.a.users["workspace_admin"], instance=instance, user=friend)
    services.access_apply(instance_id=instance.pk)
    services.identity_remove(
        instance_id=instance.pk, username=friend.username
    )  # as the worker does on commit
    with pytest.raises(ApiException) as refused:
        friend_core.list_namespaced_pod(instance.namespace)
    assert refused.value.status == 403
    assert api.as_user(friend).post(f"/api/v1/instances/{instance.pk}/kubeconfig/").status_code in (403, 404)

    # Delete: the namespace goes, the quota is released, the history stays.
    run = services.instance_delete(actor=world.a.users["workspace_admin"], instance=instance)
    assert deployer.execute(run.pk) == "deleted"
    instance.refresh_from_db()
    assert instance.state == "deleted" and instance.deleted_at
    with pytest.raises(ApiException) as gone:
        core.read_namespace(instance.namespace)
    assert gone.value.status == 404
    bindings = (
        k8s.AdmissionregistrationV1Api(core.api_client).list_validating_admission_policy_binding().items
    )
    assert not [b for b in bindings if instance.namespace in b.metadata.name]  # no cluster-scoped leftovers
    summary = owner_api.get(f"/api/v1/projects/{world.a.project.pk}/summary/").json()
    assert summary["in_use"]["gpus"] == 0 and summary["instances"]["deleted"] == 1
    assert instance.runs.count() == 3


def test_a_run_whose_worker_died_is_redriven_to_ready(live):
    world = live["world"]
    instance = services.instance_launch(
        actor=world.a.users["workspace_admin"],
        project=world.a.project,
        name="crashy",
        profile=live["profile"],
    )
    run = instance.runs.get()
    # A worker took the run and died half-way: running, no heartbeat for a while, nothing applied yet.
    Run.objects.filter(pk=run.pk).update(
        outcome=Run.Outcome.RUNNING, attempt=1, heartbeat_at=timezone.now() - timedelta(minutes=10)
    )
    ComputeInstance.objects.filter(pk=instance.pk).update(state="provisioning")
    assert services.reconcile() == 1
    assert Run.objects.get(pk=run.pk).outcome == Run.Outcome.QUEUED
    assert deployer.execute(run.pk) == "ready"
    instance.refresh_from_db()
    assert instance.state == "ready" and Run.objects.get(pk=run.pk).attempt == 2
