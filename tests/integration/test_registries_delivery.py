"""Container registries' imagePullSecrets on the local control plane: delivered into the namespace of
an instance whose workspace sees the registry (the real token-auth registry's pull-only robot), in the
pods' spec of the compute template and of a service, rotated when the credential changes, removed when
the sharing ends and with the instance; a workspace that does not see a registry never gets it; and a
tenant with its own kubeconfig cannot change, delete, forge or take over what is delivered."""

from __future__ import annotations

import base64
import json

import pytest
import yaml
from django_q.models import OrmQ
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from catalog import registries
from instances import deployer, pull_secrets, services, tasks
from inventory.routing import queue_for_cluster
from tests.factories import ONE_A100, make_profile
from tests.integration.test_hostile_tenant import refused
from tests.support.canary import CANARY
from tests.support.instances import launch
from tests.support.integration_servers import REGISTRY_PULLER, REGISTRY_PULLER_PASSWORD
from tests.support.services import deploy_service, make_service_profile

pytestmark = [pytest.mark.kube, pytest.mark.toolchain]

#: A compute template with a workload of its own (the system catalog's namespace template has none).
TEMPLATE = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: tools}
spec:
  replicas: 1
  selector: {matchLabels: {app: tools}}
  template:
    metadata: {labels: {app: tools}}
    spec:
      runtimeClassName: kata
      imagePullSecrets: [{name: the-templates-own}]
      containers:
        - name: tools
          image: registry.example/tools:1
          securityContext:
            runAsNonRoot: true
            allowPrivilegeEscalation: false
            capabilities: {drop: [ALL]}
            seccompProfile: {type: RuntimeDefault}
          resources:
            requests: {cpu: 100m, memory: 64Mi}
            limits: {cpu: 100m, memory: 64Mi}
"""

SYNC = "instances.tasks.pull_secrets_sync"


def _delivered(core, namespace: str) -> dict[str, k8s.V1Secret]:
    found = core.list_namespaced_secret(namespace, label_selector=pull_secrets.LABEL_REGISTRY).items
    return {s.metadata.name: s for s in found}


def _auths(secret: k8s.V1Secret) -> dict:
    return json.loads(base64.b64decode(secret.data[".dockerconfigjson"]))["auths"]


def _pull_secret_names(pod_spec) -> list[str]:
    return [ref.name for ref in pod_spec.image_pull_secrets or []]


def _queued_syncs() -> list[tuple[int, str]]:
    return [(row.task["args"][0], row.key) for row in OrmQ.objects.all() if row.task.get("func") == SYNC]


def _change(capture, call):
    """Run a registry change as a request would (its on-commit work executed: the syncs are queued);
    return the syncs it queued."""
    OrmQ.objects.all().delete()
    with capture(execute=True):
        call()
    return _queued_syncs()


def test_pull_secrets_follow_the_registries(
    live, registry_token, kube_cluster, django_capture_on_commit_callbacks
):
    world, core = live["world"], live["core"]
    a, b = world.a, world.b
    admin, org_admin = a.users["paas_admin_project"], a.users["org_admin"]
    robot = registries.registry_create(
        actor=admin,
        project=a.project,
        name="robot",
        provider="generic",
        scheme="http",
        endpoint=registry_token.host,
        username=REGISTRY_PULLER,
        credential=REGISTRY_PULLER_PASSWORD,
    )
    shared = registries.registry_create(
        actor=org_admin,
        org=a.org,
        name="org-wide",
        provider="jfrog",
        endpoint="127.0.0.1:5443/artifactory",
        username="org-robot",
        credential=f"{CANARY}-org",
        sharing="selected",
        shared_projects=[a.spare_project],  # not 'team'
    )
    foreign = registries.registry_create(
        actor=b.users["org_admin"],
        org=b.org,
        name="b-only",
        provider="nexus",
        endpoint="127.0.0.1:5444",
        username="b-robot",
        credential=f"{CANARY}-b",
        sharing="all",
    )
    profile = make_profile(
        actor=a.users["paas_admin_org"],
        project=a.project,
        manifests=TEMPLATE,
        resource_groups=ONE_A100,
        name="with-tools",
        template="with-tools",
    )
    instance = launch(world, profile, "pulls")
    OrmQ.objects.all().delete()
    with django_capture_on_commit_callbacks(execute=True):
        assert deployer.execute(instance.runs.get().pk) == "ready", instance.runs.get().log
    instance.refresh_from_db()
    # ready (also after a warm-pool claim): a sync is queued on the cluster's agent
    assert _queued_syncs() == [(instance.pk, queue_for_cluster(instance.cluster))]
    namespace = instance.namespace
    own = f"paas-registry-{robot.pk}"

    # delivered at deploy: only what 'team' sees, with the robot's dockerconfigjson
    delivered = _delivered(core, namespace)
    assert set(delivered) == {own}
    secret = delivered[own]
    assert secret.type == "kubernetes.io/dockerconfigjson"
    assert secret.metadata.labels == {
        "paas.gpu/registry": str(robot.pk),
        "app.kubernetes.io/managed-by": "gpu-paas",
    }
    assert secret.metadata.annotations[pull_secrets.ANNOTATION_VERSION] == "1"
    entry = _auths(secret)[registry_token.host]
    assert (entry["username"], entry["password"]) == (REGISTRY_PULLER, REGISTRY_PULLER_PASSWORD)
    assert base64.b64decode(entry["auth"]).decode() == f"{REGISTRY_PULLER}:{REGISTRY_PULLER_PASSWORD}"
    assert any("pull secrets" in entry["message"] for entry in instance.runs.get().log)

    # referenced by the compute template's pods and by a service's, without anyone writing it
    apps = k8s.AppsV1Api(kube_cluster.api_client())
    tools = apps.read_namespaced_deployment("tools", namespace)
    assert _pull_secret_names(tools.spec.template.spec) == ["the-templates-own", own]
    deploy_service(live, instance, make_service_profile(world), "web")
    web = apps.read_namespaced_deployment("web", namespace)
    assert _pull_secret_names(web.spec.template.spec) == [own]

    # rotated: a new credential is re-synced on commit, on the cluster's agent queue
    queued = _change(
        django_capture_on_commit_callbacks,
        lambda: registries.registry_update(actor=admin, registry=robot, credential=f"{CANARY}-rotated"),
    )
    assert queued == [(instance.pk, queue_for_cluster(instance.cluster))]
    assert tasks.pull_secrets_sync(instance.pk) == [own]
    secret = _delivered(core, namespace)[own]
    assert secret.metadata.annotations[pull_secrets.ANNOTATION_VERSION] == "2"
    assert _auths(secret)[registry_token.host]["password"] == f"{CANARY}-rotated"

    # a tenant with its own kubeconfig cannot change, delete or forge the platform's pull secrets
    kubeconfig = services.kubeconfig_issue(actor=a.users["workspace_admin"], instance=instance)
    tenant = k8s_config.new_client_from_config_dict(yaml.safe_load(kubeconfig))
    tenant_core = k8s.CoreV1Api(tenant)
    assert tenant_core.read_namespaced_secret(own, namespace).data, (
        "tenants can read it: it must be pull-only"
    )
    patch = {"data": {".dockerconfigjson": base64.b64encode(b'{"auths":{}}').decode()}}
    error = refused(
        lambda: tenant_core.patch_namespaced_secret(own, namespace, patch), rule="platform-objects"
    )
    assert "managed by the platform" in json.loads(error.body)["message"]
    refused(lambda: tenant_core.delete_namespaced_secret(own, namespace), rule="platform-objects")
    forged = {
        "metadata": {"name": "mine", "labels": {"paas.gpu/registry": str(shared.pk)}},
        "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": base64.b64encode(b'{"auths":{}}').decode()},
    }
    refused(
        lambda: tenant_core.create_namespaced_secret(namespace, forged),
        rule="platform-objects",
        undo=lambda: tenant_core.delete_namespaced_secret("mine", namespace),
    )
    # ... and a Secret of its own squatting the name of one not delivered yet is taken over when it is
    squatted = f"paas-registry-{shared.pk}"
    tenant_core.create_namespaced_secret(
        namespace, {"metadata": {"name": squatted}, "type": "Opaque", "stringData": {"x": "mine"}}
    )
    queued = _change(
        django_capture_on_commit_callbacks,
        lambda: registries.registry_share(actor=org_admin, registry=shared, sharing="all"),
    )
    assert (instance.pk, queue_for_cluster(instance.cluster)) in queued
    assert tasks.pull_secrets_sync(instance.pk) == [own, squatted]
    taken = _delivered(core, namespace)[squatted]
    assert taken.type == "kubernetes.io/dockerconfigjson"
    assert _auths(taken)["127.0.0.1:5443/artifactory"]["username"] == "org-robot"
    tenant.close()

    # sharing ends: removed (a 'team' instance no longer gets it), the project's own stays
    _change(
        django_capture_on_commit_callbacks,
        lambda: registries.registry_share(
            actor=org_admin, registry=shared, sharing="selected", projects=[a.spare_project]
        ),
    )
    assert tasks.pull_secrets_sync(instance.pk) == [own]
    assert set(_delivered(core, namespace)) == {own}
    # deleted: removed
    _change(
        django_capture_on_commit_callbacks, lambda: registries.registry_delete(actor=admin, registry=robot)
    )
    assert tasks.pull_secrets_sync(instance.pk) == []
    assert _delivered(core, namespace) == {}
    assert f"paas-registry-{foreign.pk}" not in {
        s.metadata.name for s in core.list_namespaced_secret(namespace).items
    }

    # the instance goes: so does everything in its namespace, pull secrets included; a late sync is a no-op
    registries.registry_share(actor=org_admin, registry=shared, sharing="all")
    assert tasks.pull_secrets_sync(instance.pk) == [squatted]
    run = services.instance_delete(actor=a.users["workspace_admin"], instance=instance)
    assert deployer.execute(run.pk) == "deleted"
    with pytest.raises(ApiException) as gone:
        core.read_namespaced_secret(squatted, namespace)
    assert gone.value.status == 404
    assert tasks.pull_secrets_sync(instance.pk) is None
