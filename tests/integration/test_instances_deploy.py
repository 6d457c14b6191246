"""Deploying compute instances onto the real local control plane, end to end."""

import contextlib
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from django.utils import timezone
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from instances import deployer, services
from instances.models import ComputeInstance, Run
from inventory import services as inventory_services
from inventory import tasks as inventory_tasks
from tests.support.guardrails import OTHER_RUNTIME
from tests.support.instances import launch_instance
from tests.support.wait import WaitTimedOut, wait_for

pytestmark = pytest.mark.kube


def _tenant_api(kubeconfig_text: str):
    return k8s_config.new_client_from_config_dict(yaml.safe_load(kubeconfig_text))


def test_deploy_baseline_idempotence_access_and_delete(live, api):
    world, core = live["world"], live["core"]
    instance = launch_instance(live)
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
    _multi_tenancy_checks(tenant, instance.namespace)

    # A collaborator gains access (and a kubeconfig), then loses it.
    friend = world.a.users["collaborator_rw"]
    services.collaborator_add(actor=world.a.users["workspace_admin"], instance=instance, email=friend.email)
    deployer.access_apply(instance_id=instance.pk)
    friend_kubeconfig = (
        api.as_user(friend).post(f"/api/v1/instances/{instance.pk}/kubeconfig/").content.decode()
    )
    friend_core = k8s.CoreV1Api(_tenant_api(friend_kubeconfig))
    assert [pod.metadata.name for pod in friend_core.list_namespaced_pod(instance.namespace).items] == [
        "fine"
    ]
    services.collaborator_remove(actor=world.a.users["workspace_admin"], instance=instance, user=friend)
    deployer.access_apply(instance_id=instance.pk)
    deployer.identity_remove(
        instance_id=instance.pk, username=friend.username
    )  # as the worker does on commit
    assert _eventually_refused(lambda: friend_core.list_namespaced_pod(instance.namespace)) in (401, 403)
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


def _pod(name: str, **spec) -> dict:
    container = {
        "name": "c",
        "image": "registry.example/app:1",
        "securityContext": {
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "resources": {"limits": {"cpu": "1", "memory": "1Gi"}},
    }
    container.update(spec.pop("container", {}))
    return {
        "metadata": {"name": name},
        "spec": {"runtimeClassName": "kata", "containers": [container], **spec},
    }


def _eventually_refused(call, *, cleanup=None, timeout: float = 15) -> int:
    """The status with which the API server refuses ``call``, allowing for its caches to catch up:
    RBAC changes and admission-policy bindings take effect a moment after they are written."""

    def refusal() -> int | None:
        try:
            call()
        except ApiException as exc:
            return exc.status
        if cleanup:
            cleanup()
        return None

    return wait_for(refusal, timeout, 0.3, what=f"the API server to refuse {call}")


def _delete_test_pods(core, namespace: str) -> None:
    for pod in core.list_namespaced_pod(namespace).items:
        core.delete_namespaced_pod(pod.metadata.name, namespace, grace_period_seconds=0)


def _multi_tenancy_checks(tenant, namespace: str) -> None:
    """Checks from the Kubernetes Multi-Tenancy Benchmarks, with the tenant's own kubeconfig."""
    core, rbac = k8s.CoreV1Api(tenant), k8s.RbacAuthorizationV1Api(tenant)
    networking = k8s.NetworkingV1Api(tenant)
    refused_calls = {
        "list cluster roles": lambda: rbac.list_cluster_role(),
        "list persistent volumes": lambda: core.list_persistent_volume(),
        "modify its RoleBinding": lambda: rbac.patch_namespaced_role_binding(
            "paas-tenant", namespace, {"metadata": {"labels": {"x": "y"}}}
        ),
        "create a RoleBinding": lambda: rbac.create_namespaced_role_binding(
            namespace,
            {
                "metadata": {"name": "escalate"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin"},
                "subjects": [{"kind": "Group", "name": "system:authenticated"}],
            },
        ),
        "delete its NetworkPolicy": lambda: networking.delete_namespaced_network_policy(
            "paas-default-deny", namespace
        ),
        "privileged pod": lambda: core.create_namespaced_pod(
            namespace, _pod("priv", container={"securityContext": {"privileged": True}})
        ),
        "hostPath volume": lambda: core.create_namespaced_pod(
            namespace, _pod("hostpath", volumes=[{"name": "h", "hostPath": {"path": "/etc"}}])
        ),
        "hostNetwork": lambda: core.create_namespaced_pod(namespace, _pod("hostnet", hostNetwork=True)),
        "pod asking for another runtime than the sandbox": lambda: core.create_namespaced_pod(
            namespace, _pod("nokata", runtimeClassName=OTHER_RUNTIME)
        ),
        "pod over the GPU quota": lambda: core.create_namespaced_pod(
            namespace,
            _pod(
                "greedy",
                container={"resources": {"limits": {"cpu": "1", "memory": "1Gi", "nvidia.com/gpu": "2"}}},
            ),
        ),
    }
    for what, call in refused_calls.items():
        status = _eventually_refused(call, cleanup=lambda: _delete_test_pods(core, namespace))
        assert status in (403, 422), (what, status)
    # ... while a well-formed pod within quota is admitted (the checks above are not refusing everything).
    core.create_namespaced_pod(
        namespace,
        _pod(
            "fine", container={"resources": {"limits": {"cpu": "1", "memory": "1Gi", "nvidia.com/gpu": "1"}}}
        ),
    )


def test_failures_retry_with_backoff_then_fail_with_the_reason(live, kube_cluster):
    world = live["world"]
    instance = services.instance_launch(
        actor=world.a.users["workspace_admin"],
        project=world.a.project,
        name="doomed",
        profile=live["profile"],
    )
    dead = yaml.safe_load(Path(kube_cluster.kubeconfig_path).read_text())
    dead["clusters"][0]["cluster"]["server"] = "https://127.0.0.1:1"
    from inventory.models import Cluster

    cluster = Cluster.objects.get(pk=instance.cluster_id)
    cluster.kubeconfig = yaml.safe_dump(dead)
    cluster.save()
    run = instance.runs.get()
    assert [deployer.execute(run.pk) for _ in range(3)] == ["retrying", "retrying", "failed"]
    instance.refresh_from_db()
    assert instance.state == "failed" and "Cannot reach the API server" in instance.state_reason
    assert Run.objects.get(pk=run.pk).attempt == 3
    from django_q.models import Schedule

    assert (
        Schedule.objects.filter(
            func="instances.tasks.run_execute", name__startswith=f"retry run {run.pk}"
        ).count()
        == 2
    )


def test_a_deleted_profile_does_not_break_its_instances(live):
    world = live["world"]
    instance = launch_instance(live, name="keeper")
    from catalog.services import profile_delete

    profile_delete(actor=world.operator, profile=live["profile"])
    retry = services.instance_retry(actor=world.a.users["workspace_admin"], instance=instance)
    assert deployer.execute(retry.pk) == "ready"  # the snapshot still deploys
    instance.refresh_from_db()
    assert instance.profile is None and instance.state == "ready"


def test_the_studio_shows_instances_with_placement_and_runs(live, client):
    world = live["world"]
    instance = launch_instance(live, name="visible")
    client.force_login(world.a.users["org_admin"])
    page = client.get(f"/studio/instances/computeinstance/{instance.pk}/change/").content.decode()
    assert "Placed on cluster local" in page and "isolation baseline" in page
    client.force_login(world.b.users["org_admin"])
    assert (
        client.get(f"/studio/instances/computeinstance/{instance.pk}/change/").status_code == 302
    )  # not found


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
    assert deployer.reconcile() == 1
    assert Run.objects.get(pk=run.pk).outcome == Run.Outcome.QUEUED
    assert deployer.execute(run.pk) == "ready"
    instance.refresh_from_db()
    assert instance.state == "ready" and Run.objects.get(pk=run.pk).attempt == 2


@pytest.mark.django_db(transaction=True)
def test_killing_the_worker_mid_deploy_then_restarting_ends_ready(kube_cluster, settings):
    """A real `manage.py qcluster` is SIGKILLed while it deploys; the reconcile re-drives the run and a
    new worker brings the instance to ready."""
    import os
    import signal
    import subprocess
    import sys

    from django.conf import settings as django_settings

    from tenancy import services as tenancy_services
    from tenancy.roles import Role
    from tests.factories import UserFactory, add_member, make_operator, make_org, make_profile

    operator = make_operator(username="killer-op")
    org, admin = make_org(operator=operator, name="killers")
    project = tenancy_services.project_create(actor=admin, org=org, name="lab")
    owner = UserFactory(username="killer-owner")
    add_member(admin=admin, user=owner, role=Role.WORKSPACE_ADMIN, project=project)
    registered = inventory_services.cluster_register(
        actor=operator, name="local-kill", kubeconfig=Path(kube_cluster.kubeconfig_path).read_text()
    )
    inventory_tasks.cluster_refresh(registered.pk)
    # Forty ConfigMaps: enough work for the kill to land while the worker is still applying.
    manifests = "\n---\n".join(
        f'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: part-{i}\ndata:\n  n: "{i}"' for i in range(40)
    )
    profile = make_profile(
        actor=admin,
        project=project,
        manifests=manifests,
        name="cpu",
        template="slow",
        resource_groups=[{"cpu_cores": "1", "memory_gib": 1, "storage_gib": 1}],
    )
    db = django_settings.DATABASES["default"]
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "paas.settings.test",
        "PAAS_WORKERS": "1",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
    }
    root = Path(__file__).resolve().parents[2]

    def worker():
        return subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"],
            cwd=root,
            env=env,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    caught = None
    for attempt in range(5):  # a deploy can finish before the kill lands; try again then
        first = worker()
        instance = services.instance_launch(
            actor=owner, project=project, name=f"victim-{attempt}", profile=profile
        )
        run = instance.runs.get()
        with contextlib.suppress(WaitTimedOut):  # not taken at all: killed and tried again below
            wait_for(lambda run=run: Run.objects.get(pk=run.pk).outcome != Run.Outcome.QUEUED, 60, 0.02)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
        if Run.objects.get(pk=run.pk).outcome == Run.Outcome.RUNNING:
            caught = (instance, run)
            break
    assert caught, "the worker always finished before it could be killed"
    instance, run = caught
    assert ComputeInstance.objects.get(pk=instance.pk).state == "provisioning"
    settings.INSTANCE_RUN_STALE_SECONDS = 0  # the dead worker wrote its last heartbeat in the past
    wait_for(lambda: deployer.stale_runs().filter(pk=run.pk).exists(), 5, 0.02, what="the run to be stale")
    assert deployer.reconcile() >= 1
    second = worker()
    try:
        with contextlib.suppress(WaitTimedOut):  # the assertion below says why, with the run's log
            wait_for(lambda: ComputeInstance.objects.get(pk=instance.pk).state == "ready", 90)
    finally:
        second.terminate()  # the cluster's sentinel stops its own workers
        try:
            second.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(second.pid, signal.SIGKILL)
            second.wait(timeout=30)
    instance.refresh_from_db()
    assert instance.state == "ready", Run.objects.get(pk=run.pk).log
    assert Run.objects.get(pk=run.pk).attempt >= 2
