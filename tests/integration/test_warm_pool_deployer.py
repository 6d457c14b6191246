"""Warm pools, worker side, on the real local control plane: a standby instance built without tenant
identity and holding its GPUs with bound placeholder pods, the cluster guardrails bound to it, the
hand-over to the instance that claims it (and again after a killed worker, and a retry after a failed
one), the deletion of a retired standby, and a MIG profile's placeholder."""

import time
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from django.utils import timezone
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from catalog.models import ComputeProfile
from instances import baseline, deployer, placeholders, pool_deployer, pool_quota, services
from instances.models import ComputeInstance, Run, StandbyInstance, WarmPool
from inventory.models import Cluster
from paas.models import AuditEvent
from tests.support.guardrails import OTHER_RUNTIME
from tests.support.pools import make_standby, ready_standby
from tests.support.wait import wait_for

pytestmark = pytest.mark.kube

PLACEHOLDERS = placeholders.LABEL_PLACEHOLDER


def _claim(live, name: str) -> tuple[ComputeInstance, Run]:
    world = live["world"]
    instance = services.instance_launch(
        actor=world.a.users["workspace_admin"], project=world.a.project, name=name, profile=live["profile"]
    )
    return instance, instance.runs.get()


def _placeholder_pods(core, namespace: str) -> list:
    return core.list_namespaced_pod(namespace, label_selector=PLACEHOLDERS).items


def _placeholders_gone(live, namespace: str) -> bool:
    apps = k8s.AppsV1Api(live["core"].api_client)
    deployments = apps.list_namespaced_deployment(namespace, label_selector=PLACEHOLDERS).items
    return not deployments and not _placeholder_pods(live["core"], namespace)


def _gpu_product(core, node_name: str) -> str:
    return core.read_node(node_name).metadata.labels.get("nvidia.com/gpu.product", "")


def test_standby_has_no_tenant_identity_holds_its_gpu_and_is_handed_over(live):
    core, world = live["core"], live["world"]
    rbac = k8s.RbacAuthorizationV1Api(core.api_client)
    standby = ready_standby(live)
    namespace = standby.namespace
    assert namespace.startswith("w-small-") and len(namespace) <= 63

    # No tenant identity, read from the API server: labels, ServiceAccounts, RoleBindings.
    labels = core.read_namespace(namespace).metadata.labels
    assert labels[baseline.LABEL_INSTANCE_ID] == f"standby-{standby.pk}"
    assert labels[baseline.LABEL_STANDBY] == str(standby.pk)
    assert not {baseline.LABEL_ORG, baseline.LABEL_PROJECT, baseline.LABEL_INSTANCE} & set(labels)
    assert [a.metadata.name for a in core.list_namespaced_service_account(namespace).items] == ["default"]
    assert all(not b.subjects for b in rbac.list_namespaced_role_binding(namespace).items)
    info = core.read_namespaced_config_map("instance-info", namespace).data
    assert info["INSTANCE_NAME"] == "standby" and info["OWNER"] == "" and info["ORGANIZATION"] == ""
    assert (
        core.read_namespaced_resource_quota("paas-quota", namespace).spec.hard["requests.nvidia.com/gpu"]
        == "1"
    )

    # The placeholder holds the profile's GPU for real: bound to an A100 node by the scheduler.
    (pod,) = _placeholder_pods(core, namespace)
    assert pod.metadata.name.startswith("paas-standby-0-")
    assert pod.spec.priority_class_name == placeholders.PRIORITY_CLASS and pod.spec.priority == -10
    assert pod.spec.node_name and _gpu_product(core, pod.spec.node_name) == "A100-SXM4-40GB"
    assert {c.type: c.status for c in pod.status.conditions}["PodScheduled"] == "True"
    requests = pod.spec.containers[0].resources.requests
    assert requests["nvidia.com/gpu"] == "1" and pod.spec.containers[0].resources.limits == requests
    assert StandbyInstance.objects.get(pk=standby.pk).objects_applied == [
        {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "name": "workspace"},
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "instance-info"},
    ]
    # Building it again changes nothing and stays ready (idempotent); a ready one is left as it is.
    assert pool_deployer.standby_deploy(standby_id=standby.pk) == "ready"

    # The cluster guardrails bind the standby namespace: a pod outside the sandbox runtime is refused.
    forbidden = {
        "metadata": {"name": "nokata"},
        "spec": {"runtimeClassName": OTHER_RUNTIME, "containers": [{"name": "c", "image": "busybox"}]},
    }
    with pytest.raises(ApiException) as refused:
        core.create_namespaced_pod(namespace, forbidden)
    assert refused.value.status in (403, 422) and "sandbox" in refused.value.body

    # An object only the standby's render had: the hand-over deletes it.
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "standby-only"}})
    StandbyInstance.objects.filter(pk=standby.pk).update(
        objects_applied=[
            *standby.objects_applied,
            {"apiVersion": "v1", "kind": "ConfigMap", "name": "standby-only"},
        ]
    )

    # A launch of the small profile claims it; the CLAIM run hands it over.
    instance, run = _claim(live, "warm")
    assert instance.from_warm_pool and instance.namespace == namespace and run.kind == Run.Kind.CLAIM
    started = time.monotonic()
    assert deployer.execute(run.pk) == "ready", Run.objects.get(pk=run.pk).log
    took = time.monotonic() - started
    instance.refresh_from_db()
    assert instance.state == "ready" and instance.outputs["namespace"] == namespace
    assert instance.outputs["workspace_pvc"] == "workspace"

    labels = core.read_namespace(namespace).metadata.labels
    assert labels[baseline.LABEL_ORG] == world.a.org.name and labels[baseline.LABEL_INSTANCE] == "warm"
    assert labels[baseline.LABEL_INSTANCE_ID] == str(instance.pk) and baseline.LABEL_STANDBY not in labels
    owner = baseline.service_account_name(world.a.users["workspace_admin"].username)
    assert owner in {a.metadata.name for a in core.list_namespaced_service_account(namespace).items}
    binding = rbac.read_namespaced_role_binding(baseline.TENANT_ROLE, namespace)
    assert [s.name for s in binding.subjects] == [owner]
    info = core.read_namespaced_config_map("instance-info", namespace).data
    assert info["INSTANCE_NAME"] == "warm" and info["OWNER"] == world.a.users["workspace_admin"].username
    assert "standby-only" not in {c.metadata.name for c in core.list_namespaced_config_map(namespace).items}
    assert _placeholders_gone(live, namespace)
    log = " ".join(entry["message"] for entry in Run.objects.get(pk=run.pk).log)
    assert "placeholder pods removed" in log and "ConfigMap/standby-only" in log
    event = AuditEvent.objects.get(action="instance.ready", target_id=str(instance.pk))
    assert event.details["warm_pool"] == {"handover": True, "standby": namespace}
    print(f"hand-over took {took * 1000:.0f} ms")

    # The rest of the baseline (same rules as the standby's) is relabelled by the task the hand-over
    # enqueues (on commit: this test's transaction never commits, so it is run here).
    quota = core.read_namespaced_resource_quota(baseline.QUOTA_NAME, namespace)
    assert quota.metadata.labels[baseline.LABEL_INSTANCE_ID] == f"standby-{standby.pk}"
    deployer.baseline_apply(instance_id=instance.pk)
    reads = {
        baseline.QUOTA_NAME: core.read_namespaced_resource_quota,
        baseline.LIMIT_RANGE_NAME: core.read_namespaced_limit_range,
    }
    for name, read in reads.items():
        labels = read(name, namespace).metadata.labels
        assert labels[baseline.LABEL_INSTANCE_ID] == str(instance.pk) and baseline.LABEL_STANDBY not in labels
        assert labels[baseline.LABEL_ORG] == world.a.org.name


def test_a_claiming_launch_is_ready_when_it_answers(live, django_capture_on_commit_callbacks):
    standby = ready_standby(live)
    with django_capture_on_commit_callbacks(execute=True):  # as when the launch's transaction commits
        instance, run = _claim(live, "instant")
    instance.refresh_from_db()
    assert instance.state == "ready" and instance.from_warm_pool and instance.namespace == standby.namespace
    assert Run.objects.get(pk=run.pk).outcome == Run.Outcome.SUCCEEDED
    assert _placeholders_gone(live, standby.namespace)


def test_a_handover_whose_worker_died_is_redriven_to_ready(live):
    standby = ready_standby(live)
    instance, run = _claim(live, "crashy")
    # A worker took the claim run, removed the placeholders and died: running, no heartbeat for a while.
    pool_deployer.remove_placeholders(instance.cluster.kubeconfig.reveal(), standby.namespace)
    Run.objects.filter(pk=run.pk).update(
        outcome=Run.Outcome.RUNNING, attempt=1, heartbeat_at=timezone.now() - timedelta(minutes=10)
    )
    ComputeInstance.objects.filter(pk=instance.pk).update(state="provisioning")
    assert deployer.reconcile() == 1
    assert deployer.execute(run.pk) == "ready"
    instance.refresh_from_db()
    assert instance.state == "ready" and Run.objects.get(pk=run.pk).attempt == 2
    owner = baseline.service_account_name(live["world"].a.users["workspace_admin"].username)
    accounts = {
        a.metadata.name for a in live["core"].list_namespaced_service_account(standby.namespace).items
    }
    assert owner in accounts and _placeholders_gone(live, standby.namespace)


def test_a_failed_handover_then_a_retry_deploys_it_fully(live, kube_cluster):
    standby = ready_standby(live)
    instance, run = _claim(live, "unlucky")
    cluster = Cluster.objects.get(pk=instance.cluster_id)
    good = cluster.kubeconfig
    dead = yaml.safe_load(Path(kube_cluster.kubeconfig_path).read_text())
    dead["clusters"][0]["cluster"]["server"] = "https://127.0.0.1:1"
    cluster.kubeconfig = yaml.safe_dump(dead)
    cluster.save()
    Run.objects.filter(pk=run.pk).update(attempt=deployer.MAX_ATTEMPTS - 1)  # its last attempt
    assert deployer.execute(run.pk) == "failed"
    instance.refresh_from_db()
    assert instance.state == "failed" and "Cannot reach the API server" in instance.state_reason
    assert _placeholder_pods(live["core"], standby.namespace)  # nothing was handed over

    cluster.kubeconfig = good
    cluster.save()
    retry = services.instance_retry(actor=live["world"].a.users["workspace_admin"], instance=instance)
    assert retry.kind == Run.Kind.RETRY
    assert deployer.execute(retry.pk) == "ready", Run.objects.get(pk=retry.pk).log
    assert wait_for(lambda: _placeholders_gone(live, standby.namespace), timeout=10, what="placeholders gone")
    labels = live["core"].read_namespace(standby.namespace).metadata.labels
    assert labels[baseline.LABEL_INSTANCE_ID] == str(instance.pk) and baseline.LABEL_STANDBY not in labels


def test_a_mig_standby_holds_its_slice_and_a_retired_one_is_deleted(live):
    core = live["core"]
    mig = ComputeProfile.objects.get(org__isnull=True, name="mig-small")
    pool = WarmPool.objects.create(profile=mig, cluster=live["cluster"], desired=0)
    standby = ready_standby(live, profile=mig, pool=pool)
    assert pool_quota.pool_held(pool.pk) == standby.gpu_units == 4  # one 1g.10gb slice: 1/7 of a GPU
    (pod,) = _placeholder_pods(core, standby.namespace)
    requests = pod.spec.containers[0].resources.requests
    assert requests["nvidia.com/mig-1g.10gb"] == "1" and "nvidia.com/gpu" not in requests
    node = core.read_node(pod.spec.node_name)
    assert int(node.status.allocatable.get("nvidia.com/mig-1g.10gb", "0")) > 0

    # Not retiring: standby_delete leaves it. Retiring: the namespace goes, the row says deleted.
    assert pool_deployer.standby_delete(standby_id=standby.pk) == "ready"
    StandbyInstance.objects.filter(pk=standby.pk).update(state=StandbyInstance.State.RETIRING)
    assert pool_deployer.standby_delete(standby_id=standby.pk) == "deleted"
    standby.refresh_from_db()
    assert standby.retired_at is not None
    assert pool_quota.pool_held(pool.pk) == 0  # given back to the pool quota with the move to deleted
    with pytest.raises(ApiException) as gone:
        core.read_namespace(standby.namespace)
    assert gone.value.status == 404


def test_a_standby_that_cannot_be_built_fails_with_a_platform_event(live):
    # One retired before its build started is left to the loop: nothing is made on the cluster.
    retired = make_standby(live, state=StandbyInstance.State.RETIRING)
    assert pool_deployer.standby_deploy(standby_id=retired.pk) == "retiring"
    assert StandbyInstance.objects.get(pk=retired.pk).attempts == 0
    with pytest.raises(ApiException) as missing:
        live["core"].read_namespace(retired.namespace)
    assert missing.value.status == 404

    standby = make_standby(live)
    # A template that no longer validates (a placeholder that cannot be scheduled would fail the same
    # way, after the wait).
    snapshot = standby.snapshot
    snapshot["template"]["manifests"] = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: paas-mine\n"
    StandbyInstance.objects.filter(pk=standby.pk).update(snapshot=snapshot)
    assert pool_deployer.standby_deploy(standby_id=standby.pk) == "failed"
    standby.refresh_from_db()
    assert standby.state == "failed" and "reserved" in standby.state_reason and standby.attempts == 1
    event = AuditEvent.objects.get(action="warm_pool.standby_failed")
    assert event.org is None and event.details["standby"] == standby.pk
