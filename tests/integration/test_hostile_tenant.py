"""The hostile tenant suite: a tenant with its OWN downloaded kubeconfig attacks the cluster directly.

Every rule of the cluster guardrails (``inventory.guardrails``) is refused by the API server itself,
whatever our own code does; each refusal names the rule. Positive controls: a plain Pod and a plain
Deployment (no security context at all, as ``kubectl run`` / ``kubectl create deployment`` make
them) are admitted with the restricted-compliant fields defaulted, while an explicit request for more
is refused by Pod Security with a short message. The platform's own identity is not blocked: it
redeploys and deletes the instance (and the cluster's controllers empty the namespace).
"""

from __future__ import annotations

import json

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from instances import baseline, deployer, services
from inventory import guardrails, kube
from inventory import services as inventory_services
from inventory.models import Cluster
from paas.models import AuditEvent
from tests.support.guardrails import OTHER_RUNTIME
from tests.support.instances import launch_instance
from tests.support.wait import WaitTimedOut, wait_for

pytestmark = pytest.mark.kube

PLAIN_IMAGE = "registry.example/app:1"


def _message(error: ApiException) -> str:
    return json.loads(error.body)["message"]


#: A tenant's change of its own namespace is refused by two guardrails at once: the namespace rule
#: (Pod Security level, the tenant labels, deletion) and the platform-objects rule (the namespace is
#: platform-labelled). The API server reports the first denying policy in an order of its own, which
#: changes whenever policies are re-read, so either refusal counts (and each message is checked).
NAMESPACE_RULES = ("namespace", "platform-objects")


def refused(
    call, *, rule: str | tuple[str, ...] | None = None, undo=None, timeout: float = 20
) -> ApiException:
    """The API server's refusal of ``call``, allowing for admission policies to reach its caches.

    A call that succeeds before a just-installed policy is active is undone and tried again. With
    ``rule`` (or several), only a refusal by that guardrail counts (not RBAC, not another plugin).
    """
    rules = (rule,) if isinstance(rule, str) else rule
    last: list[ApiException | None] = [None]

    def refusal() -> ApiException | None:
        try:
            call()
        except ApiException as error:
            if rules is None or any(
                f"ValidatingAdmissionPolicy '{guardrails.PREFIX}{r}'" in error.body for r in rules
            ):
                return error
            last[0] = error
        else:
            last[0] = None
            if undo:
                undo()
        return None

    try:
        return wait_for(refusal, timeout, 0.3)
    except WaitTimedOut:
        pytest.fail(f"not refused by {rule or 'the API server'}: {last[0] and _message(last[0])}")


def _namespace_refusal(error: ApiException, namespace_says: str) -> bool:
    """The refusal's message is the one of the guardrail that answered (see NAMESPACE_RULES)."""
    message = _message(error)
    if f"'{guardrails.PREFIX}namespace'" in error.body:
        return namespace_says in message
    return "managed by the platform" in message


def _ignore_missing(call) -> None:
    try:
        call()
    except ApiException as error:
        if error.status != 404:
            raise


@pytest.fixture
def target(live, kube_cluster):
    """A launched instance and its owner's own kubeconfig (as downloaded: instances.kubeconfig_issue)."""
    instance = launch_instance(live, "target")
    owner = live["world"].a.users["workspace_admin"]
    kubeconfig = services.kubeconfig_issue(actor=owner, instance=instance)
    tenant = k8s_config.new_client_from_config_dict(yaml.safe_load(kubeconfig))
    cluster = Cluster.objects.get(pk=instance.cluster_id)  # as refreshed: with its guardrails
    admin = kube_cluster.api_client()
    yield {
        **live,
        "instance": instance,
        "ns": instance.namespace,
        "tenant": tenant,
        "admin": admin,
        "suffix": guardrails.instance_host_suffix(cluster, instance.namespace),
        "cluster": cluster,
    }
    tenant.close()
    admin.close()


def test_the_cluster_records_its_guardrails(target, client, api):
    cluster, world = target["cluster"], target["world"]
    record = cluster.guardrails
    assert record["version"] == guardrails.GUARDRAILS_VERSION and record["error"] == ""
    assert record["rules"] == guardrails.enforced_rules(sandbox=True, mutating=True)
    assert record["mutating_defaults"] is True, "the local control plane serves MutatingAdmissionPolicy v1"
    assert record["sandbox_default_for_pods"] is True, "the local kata class has no overhead/scheduling"
    assert record["platform_identity"] == kube.whoami(cluster.kubeconfig.reveal())
    registration = k8s.AdmissionregistrationV1Api(target["admin"])
    installed = {
        p.metadata.name
        for p in registration.list_validating_admission_policy(
            label_selector=f"{guardrails.LABEL_GUARDRAILS_VERSION}={guardrails.GUARDRAILS_VERSION}"
        ).items
    }
    assert {guardrails.PREFIX + r for r in record["rules"] if r != "pod-defaults"} <= installed
    # the studio and the API show them
    client.force_login(world.operator)
    page = client.get(f"/studio/inventory/cluster/{cluster.pk}/change/").content.decode()
    assert "token-secrets, services, ingress-hosts, namespace, platform-objects, sandbox" in page
    assert "pod defaults active" in page
    assert "pod defaults active" in client.get("/studio/inventory/cluster/").content.decode()
    body = api.as_user(world.operator).get(f"/api/v1/clusters/{cluster.pk}/").json()
    assert body["guardrails"]["version"] == guardrails.GUARDRAILS_VERSION
    assert body["guardrails"]["rules"] == record["rules"]


def test_each_guardrail_is_refused_with_the_tenants_own_kubeconfig(target):
    ns, tenant, suffix = target["ns"], target["tenant"], target["suffix"]
    core, net = k8s.CoreV1Api(tenant), k8s.NetworkingV1Api(tenant)

    # A credential that never expires: a service-account token Secret.
    token_secret = {
        "metadata": {"name": "forever", "annotations": {"kubernetes.io/service-account.name": "default"}},
        "type": "kubernetes.io/service-account-token",
    }
    error = refused(
        lambda: core.create_namespaced_secret(ns, token_secret),
        rule="token-secrets",
        undo=lambda: core.delete_namespaced_secret("forever", ns),
    )
    assert error.status == 403 and "never expires" in _message(error)

    # Services that claim addresses or leave the platform.
    def service(name: str, **spec) -> dict:
        return {
            "metadata": {"name": name},
            "spec": {"selector": {"app": "x"}, "ports": [{"port": 80}], **spec},
        }

    for name, spec, says in (
        ("claims", {"externalIPs": ["10.96.0.1"]}, "spec.externalIPs"),
        (
            "alias",
            {"type": "ExternalName", "externalName": "kubernetes.default.svc", "selector": None},
            "ExternalName",
        ),
        ("public", {"type": "LoadBalancer"}, "LoadBalancer"),
    ):
        error = refused(
            lambda name=name, spec=spec: core.create_namespaced_service(ns, service(name, **spec)),
            rule="services",
            undo=lambda name=name: core.delete_namespaced_service(name, ns),
        )
        assert error.status == 403 and says in _message(error), name

    # Ingress hosts: only under the instance's own suffix; every rule has one.
    def ingress(name: str, *, hosts=(), tls_hosts=(), default=False) -> dict:
        backend = {"service": {"name": "web", "port": {"number": 80}}}
        path = {"path": "/", "pathType": "Prefix", "backend": backend}
        spec: dict = {
            "rules": [
                {"host": h, "http": {"paths": [path]}} if h else {"http": {"paths": [path]}} for h in hosts
            ]
        }
        if tls_hosts:
            spec["tls"] = [{"hosts": list(tls_hosts), "secretName": "tls"}]
        if default:
            spec = {"defaultBackend": backend}
        return {"metadata": {"name": name}, "spec": spec}

    neighbour = f"web.i-someone-else-abc123.{guardrails.ingress_domain(target['cluster'])}"
    for name, body, says in (
        ("foreign", ingress("foreign", hosts=["studio.example.com"]), "Ingress hosts must be under"),
        ("neighbour", ingress("neighbour", hosts=[neighbour]), "Ingress hosts must be under"),
        ("lookalike", ingress("lookalike", hosts=[f"evil{suffix}"]), "Ingress hosts must be under"),
        ("hostless", ingress("hostless", hosts=[None]), "needs a host"),
        ("tls", ingress("tls", hosts=[f"web.{suffix}"], tls_hosts=["studio.example.com"]), "TLS hosts"),
        ("catchall", ingress("catchall", default=True), "defaultBackend"),
    ):
        error = refused(
            lambda body=body: net.create_namespaced_ingress(ns, body),
            rule="ingress-hosts",
            undo=lambda name=name: net.delete_namespaced_ingress(name, ns),
        )
        assert error.status == 403 and says in _message(error) and suffix in _message(error), name

    # A pod asking for another runtime than the sandbox.
    pod = {
        "metadata": {"name": "escape"},
        "spec": {"runtimeClassName": OTHER_RUNTIME, "containers": [{"name": "c", "image": PLAIN_IMAGE}]},
    }
    error = refused(
        lambda: core.create_namespaced_pod(ns, pod),
        rule="sandbox",
        undo=lambda: core.delete_namespaced_pod("escape", ns, grace_period_seconds=0),
    )
    assert error.status == 403 and "spec.runtimeClassName to 'kata'" in _message(error)

    # Platform labels on the tenant's own objects: at creation and added later.
    for labels in ({"paas.gpu/org": "someone-else"}, {"app.kubernetes.io/managed-by": "gpu-paas"}):
        body = {"metadata": {"name": "disguised", "labels": labels}, "data": {"a": "b"}}
        error = refused(
            lambda body=body: core.create_namespaced_config_map(ns, body),
            rule="platform-objects",
            undo=lambda: core.delete_namespaced_config_map("disguised", ns),
        )
        assert error.status == 403 and "are the platform's" in _message(error)
    core.create_namespaced_config_map(ns, {"metadata": {"name": "mine", "labels": {"team": "a"}}})
    error = refused(
        lambda: core.patch_namespaced_config_map(
            "mine", ns, {"metadata": {"labels": {"paas.gpu/instance-id": "1"}}}
        ),
        rule="platform-objects",
    )
    assert error.status == 403
    # positive controls: safe objects of every kind above are admitted
    core.patch_namespaced_config_map("mine", ns, {"metadata": {"labels": {"team": "b"}}})
    core.create_namespaced_secret(ns, {"metadata": {"name": "plain"}, "stringData": {"k": "v"}})
    core.create_namespaced_service(ns, service("web"))
    net.create_namespaced_ingress(
        ns, ingress("mine", hosts=[f"web.{suffix}", suffix], tls_hosts=[f"web.{suffix}"])
    )


def test_platform_objects_and_the_namespace_hold_even_when_rbac_would_allow(target):
    """The reported exploit: a tenant whom RBAC lets edit namespaces, quotas and network policies (as a
    template binding a role once did) still cannot relabel the namespace or touch the baseline."""
    ns, admin, tenant = target["ns"], target["admin"], target["tenant"]
    owner = target["world"].a.users["workspace_admin"]
    account = baseline.service_account_name(owner.username)
    core, net = k8s.CoreV1Api(tenant), k8s.NetworkingV1Api(tenant)
    # the platform-object rule is in force before RBAC is widened (so nothing slips through meanwhile)
    disguised = {"metadata": {"name": "probe", "labels": {"paas.gpu/org": "x"}}}
    refused(
        lambda: core.create_namespaced_config_map(ns, disguised),
        rule="platform-objects",
        undo=lambda: core.delete_namespaced_config_map("probe", ns),
    )
    refused(lambda: core.patch_namespace(ns, {"metadata": {"labels": {"x": "y"}}}))  # RBAC, for now
    rbac = k8s.RbacAuthorizationV1Api(admin)
    grant = f"hostile-grant-{ns}"[:63]
    everything = [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]
    subjects = [{"kind": "ServiceAccount", "name": account, "namespace": ns}]
    ref = {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": grant}
    rbac.create_cluster_role({"metadata": {"name": grant}, "rules": everything})
    rbac.create_cluster_role_binding({"metadata": {"name": grant}, "roleRef": ref, "subjects": subjects})
    try:
        privileged = {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "privileged"}}}
        error = refused(lambda: core.patch_namespace(ns, privileged), rule=NAMESPACE_RULES)
        assert error.status == 403 and _namespace_refusal(error, "Pod Security level")
        unlabel = [{"op": "remove", "path": "/metadata/labels/paas.gpu~1instance-id"}]
        error = refused(lambda: core.patch_namespace(ns, unlabel), rule=NAMESPACE_RULES)
        assert error.status == 403, "dropping the label that binds the guardrails"
        assert refused(lambda: core.delete_namespace(ns), rule=NAMESPACE_RULES).status == 403
        quota = {"spec": {"hard": {"requests.nvidia.com/gpu": "64"}}}
        error = refused(
            lambda: core.patch_namespaced_resource_quota("paas-quota", ns, quota), rule="platform-objects"
        )
        assert error.status == 403 and "managed by the platform" in _message(error)
        for call in (
            lambda: core.delete_namespaced_resource_quota("paas-quota", ns),
            lambda: core.delete_namespaced_limit_range("paas-defaults", ns),
            lambda: net.delete_namespaced_network_policy("paas-default-deny", ns),
            lambda: net.patch_namespaced_network_policy(
                "paas-default-deny", ns, {"spec": {"policyTypes": ["Ingress"]}}
            ),
            lambda: k8s.RbacAuthorizationV1Api(tenant).delete_namespaced_role_binding("paas-tenant", ns),
        ):
            assert refused(call, rule="platform-objects").status == 403
        # the wide grant is real (positive control): the tenant may now do what the guardrails allow
        assert core.read_namespace(ns).metadata.labels["pod-security.kubernetes.io/enforce"] == "restricted"
        core.create_namespaced_config_map(ns, {"metadata": {"name": "granted"}})
    finally:
        _ignore_missing(lambda: rbac.delete_cluster_role_binding(grant))
        _ignore_missing(lambda: rbac.delete_cluster_role(grant))
    quota_now = k8s.CoreV1Api(admin).read_namespaced_resource_quota("paas-quota", ns).spec.hard
    assert quota_now["requests.nvidia.com/gpu"] == "1"


def test_plain_workloads_are_admitted_with_restricted_defaults(target):
    ns, tenant = target["ns"], target["tenant"]
    core, apps, batch = k8s.CoreV1Api(tenant), k8s.AppsV1Api(tenant), k8s.BatchV1Api(tenant)

    plain_pod = {
        "metadata": {"name": "plain"},
        "spec": {"containers": [{"name": "plain", "image": PLAIN_IMAGE}]},
    }
    errors: list[ApiException] = []

    def create_plain_pod():
        try:
            return core.create_namespaced_pod(ns, plain_pod)
        except ApiException as error:
            errors.append(error)
            return None

    # The mutating policy reaches the API server's cache a moment after it is installed.
    try:
        created = wait_for(create_plain_pod, 20, 0.3)
    except WaitTimedOut:
        pytest.fail(_message(errors[-1]))
    for pod in (created, core.read_namespaced_pod("plain", ns)):
        assert pod.spec.runtime_class_name == "kata"
        assert pod.spec.security_context.run_as_non_root is True
        assert pod.spec.security_context.seccomp_profile.type == "RuntimeDefault"
        (container,) = pod.spec.containers
        assert container.security_context.allow_privilege_escalation is False
        assert container.security_context.capabilities.drop == ["ALL"]
        assert container.image == PLAIN_IMAGE

    # A plain Deployment (kubectl create deployment): admitted, its template defaulted, its pods too.
    deployment = {
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "initContainers": [{"name": "setup", "image": PLAIN_IMAGE}],
                    "containers": [{"name": "web", "image": PLAIN_IMAGE}],
                },
            },
        },
    }
    apps.create_namespaced_deployment(ns, deployment)
    template = apps.read_namespaced_deployment("web", ns).spec.template.spec
    assert template.runtime_class_name == "kata" and template.security_context.run_as_non_root is True
    for container in (*template.init_containers, *template.containers):
        assert container.security_context.allow_privilege_escalation is False
        assert container.security_context.capabilities.drop == ["ALL"]
    notes = kube.wait_ready(target["cluster"].kubeconfig.reveal(), ns, timeout=60)
    assert "Deployment web: 1/1 ready" in notes
    (pod,) = core.list_namespaced_pod(ns, label_selector="app=web").items
    assert pod.spec.security_context.seccomp_profile.type == "RuntimeDefault"

    # Jobs and CronJobs get the same defaults in their pod templates.
    job_template = {"spec": {"restartPolicy": "Never", "containers": [{"name": "run", "image": PLAIN_IMAGE}]}}
    batch.create_namespaced_job(ns, {"metadata": {"name": "once"}, "spec": {"template": job_template}})
    cron = {"schedule": "0 0 * * *", "jobTemplate": {"spec": {"template": job_template}}}
    batch.create_namespaced_cron_job(ns, {"metadata": {"name": "nightly"}, "spec": cron})
    for spec in (
        batch.read_namespaced_job("once", ns).spec.template.spec,
        batch.read_namespaced_cron_job("nightly", ns).spec.job_template.spec.template.spec,
    ):
        assert spec.security_context.run_as_non_root is True and spec.runtime_class_name == "kata"
        assert spec.containers[0].security_context.capabilities.drop == ["ALL"]

    # An explicit choice is never overridden: asking for more is refused, with a short message.
    greedy = {
        "metadata": {"name": "greedy"},
        "spec": {
            "containers": [
                {"name": "c", "image": PLAIN_IMAGE, "securityContext": {"allowPrivilegeEscalation": True}}
            ]
        },
    }
    error = refused(lambda: core.create_namespaced_pod(ns, greedy))
    text = _message(error)
    assert error.status == 403 and "allowPrivilegeEscalation != false" in text
    for defaulted in ("runAsNonRoot", "seccompProfile", "capabilities"):
        assert defaulted not in text, f"only what the pod asked for is named, not {defaulted}"
    privileged = {
        "metadata": {"name": "privileged"},
        "spec": {
            "containers": [{"name": "c", "image": PLAIN_IMAGE, "securityContext": {"privileged": True}}]
        },
    }
    error = refused(lambda: core.create_namespaced_pod(ns, privileged))
    assert error.status == 403 and "privileged" in _message(error), (
        "Pod Security, not a 422 from the defaults"
    )
    as_root = {
        "metadata": {"name": "root"},
        "spec": {
            "securityContext": {"runAsNonRoot": False},
            "containers": [{"name": "c", "image": PLAIN_IMAGE}],
        },
    }
    error = refused(lambda: core.create_namespaced_pod(ns, as_root))
    assert error.status == 403 and "runAsNonRoot" in _message(error)


def test_the_platform_identity_redeploys_and_deletes(target):
    """The guardrails exempt the platform (it relabels and re-applies the baseline) and the cluster's
    controllers (they empty a deleted namespace), so redeploy and delete work."""
    world, instance, core = target["world"], target["instance"], target["core"]
    owner = world.a.users["workspace_admin"]
    retry = services.instance_retry(actor=owner, instance=instance)
    assert deployer.execute(retry.pk) == "ready"
    run = services.instance_delete(actor=owner, instance=instance)
    assert deployer.execute(run.pk) == "deleted"
    with pytest.raises(ApiException) as gone:
        core.read_namespace(instance.namespace)
    assert gone.value.status == 404


def test_refresh_replaces_older_versions_and_records_it(target, kube_cluster):
    cluster, admin = target["cluster"], target["admin"]
    kubeconfig = cluster.kubeconfig.reveal()
    stale = {
        "apiVersion": guardrails.API_VERSION,
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {
            "name": "paas-guardrails-retired-rule",
            "labels": {
                guardrails.LABEL_MANAGED_BY: guardrails.MANAGED_BY,
                guardrails.LABEL_GUARDRAILS_VERSION: "0",
            },
        },
        "spec": {
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE"],
                        "resources": ["configmaps"],
                    }
                ]
            },
            "validations": [{"expression": "true"}],
        },
    }
    foreign = {**stale, "metadata": {"name": "someone-elses-policy", "labels": {"team": "security"}}}
    kube.ensure_objects(kubeconfig, [stale, foreign])
    Cluster.objects.filter(pk=cluster.pk).update(guardrails={"version": "0", "rules": ["old"]})
    try:
        refreshed = inventory_services.cluster_check(cluster_id=cluster.pk)
        assert refreshed.guardrails["version"] == guardrails.GUARDRAILS_VERSION
        assert "ValidatingAdmissionPolicy/paas-guardrails-retired-rule" in refreshed.guardrails["removed"]
        names = {
            p.metadata.name
            for p in k8s.AdmissionregistrationV1Api(admin).list_validating_admission_policy().items
        }
        assert "paas-guardrails-retired-rule" not in names
        assert "someone-elses-policy" in names, "only the platform's own objects are pruned"
        event = AuditEvent.objects.filter(action="cluster.guardrails").latest("id")
        assert event.details["from"]["version"] == "0"
        assert event.details["to"]["version"] == guardrails.GUARDRAILS_VERSION
        events = AuditEvent.objects.filter(action="cluster.guardrails").count()
        again = inventory_services.cluster_check(cluster_id=cluster.pk)
        assert "removed" not in again.guardrails
        assert AuditEvent.objects.filter(action="cluster.guardrails").count() == events, "unchanged: no event"
    finally:
        kube.delete_objects(kubeconfig, [foreign])
