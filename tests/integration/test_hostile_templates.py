"""The hostile template suite (issue 11, part 1): the baseline is the engine's, never the template's.

For every attack class in tests/support/hostile_templates.py: publishing a template that tries it is
refused with the object named; the same objects written straight into a version row are refused at
apply (the deploy against the real local cluster fails with the reason, once, and nothing reaches the
cluster). A template with a ServiceAccount and a narrow Role bound to it deploys. A live instance
whose baseline was tampered with through the cluster admin's client is repaired by the reconcile's
baseline check, and the audit trail names what was repaired.
"""

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from catalog import services as catalog_services
from catalog.models import ComputeProfile, TemplateVersion
from instances import deployer, drift, tasks
from instances.models import ComputeInstance, Run
from paas.errors import ValidationFailed
from paas.models import AuditEvent
from tests.factories import make_profile
from tests.support.hostile_templates import CASES, NARROW_RBAC, manifests
from tests.support.instances import launch

pytestmark = pytest.mark.kube

CPU_ONLY = [{"cpu_cores": "1", "memory_gib": 1, "storage_gib": 1}]
IDS = [case[0] for case in CASES]


def _publish(world, text: str, name: str = "hostile"):
    admin = world.a.users["org_admin"]
    template = catalog_services.template_create(actor=admin, project=world.a.project, name=name)
    version = catalog_services.template_version_create(
        actor=admin, template=template, version="v1", manifests=text
    )
    return catalog_services.template_version_publish(actor=admin, version=version)


@pytest.mark.parametrize(("objects", "expected"), [case[1:] for case in CASES], ids=IDS)
def test_a_hostile_template_is_refused_at_publish_naming_the_object(world, objects, expected):
    with pytest.raises(ValidationFailed) as refused:
        _publish(world, manifests(objects))
    assert expected in "\n".join(refused.value.fields["manifests"])
    assert not TemplateVersion.objects.filter(state=TemplateVersion.State.PUBLISHED, template__name="hostile")


@pytest.fixture
def benign_profile(world, registered_cluster):
    """A published profile whose template version is harmless (what the hostile rows start from)."""
    return make_profile(
        actor=world.a.users["org_admin"],
        project=world.a.project,
        manifests=manifests([]),
        name="cpu",
        template="benign",
        resource_groups=CPU_ONLY,
    )


def test_hostile_objects_slipped_into_a_version_row_are_refused_at_apply(world, kube_cluster, benign_profile):
    """Every case, written straight into the published row (past publish): the deploy fails with the
    reason on its first attempt, is not retried, and the namespace was never created."""
    core = k8s.CoreV1Api(kube_cluster.api_client())
    version = benign_profile.template_version
    for index, (case, objects, expected) in enumerate(CASES):
        TemplateVersion.objects.filter(pk=version.pk).update(manifests=manifests(objects))
        profile = ComputeProfile.objects.get(pk=benign_profile.pk)  # as a request would load it
        assert manifests(objects) in profile.template_version.manifests
        instance = launch(world, profile, f"h{index}")
        run = instance.runs.get()
        assert deployer.execute(run.pk) == "failed", case
        run.refresh_from_db()
        instance.refresh_from_db()
        assert run.outcome == Run.Outcome.FAILED and run.attempt == 1, case
        assert expected in run.message and expected in instance.state_reason, (case, run.message)
        with pytest.raises(ApiException) as missing:
            core.read_namespace(instance.namespace)
        assert missing.value.status == 404, case  # nothing was applied
        ComputeInstance.objects.filter(pk=instance.pk).update(state="deleted")  # frees its quota


def test_a_service_account_with_a_narrow_role_bound_to_it_deploys(world, kube_cluster, registered_cluster):
    profile = make_profile(
        actor=world.a.users["org_admin"],
        project=world.a.project,
        manifests=manifests(NARROW_RBAC),
        name="spark",
        template="spark",
        resource_groups=CPU_ONLY,
    )
    instance = launch(world, profile, "spark")
    run = instance.runs.get()
    assert deployer.execute(run.pk) == "ready", Run.objects.get(pk=run.pk).log
    instance.refresh_from_db()
    rbac = k8s.RbacAuthorizationV1Api(kube_cluster.api_client())
    role = rbac.read_namespaced_role("spark-driver", instance.namespace)
    assert {r for rule in role.rules for r in rule.resources} == {
        "pods",
        "services",
        "configmaps",
        "pods/log",
    }
    binding = rbac.read_namespaced_role_binding("spark-driver", instance.namespace)
    assert [(s.kind, s.name) for s in binding.subjects] == [("ServiceAccount", "spark-driver")]
    core = k8s.CoreV1Api(kube_cluster.api_client())
    assert core.read_namespaced_service_account("spark-driver", instance.namespace)
    # The baseline stands after the template, under its own field manager alone (the template named
    # none of its objects, so it was not applied again: instances.deployer.overlaps_baseline).
    quota = core.read_namespaced_resource_quota("paas-quota", instance.namespace)
    assert {e.manager for e in quota.metadata.managed_fields if not e.subresource} == {"gpu-paas-baseline"}
    assert any("stands over the template" in step["message"] for step in Run.objects.get(pk=run.pk).log)


def test_reconcile_repairs_a_tampered_baseline_and_audits_it(
    world, kube_cluster, benign_profile, django_capture_on_commit_callbacks
):
    instance = launch(world, benign_profile, "tampered")
    assert deployer.execute(instance.runs.get().pk) == "ready"
    instance.refresh_from_db()
    namespace, cluster = instance.namespace, instance.cluster
    api = kube_cluster.api_client()
    core, networking = k8s.CoreV1Api(api), k8s.NetworkingV1Api(api)
    rbac = k8s.RbacAuthorizationV1Api(api)
    assert drift.baseline_repair(cluster_id=cluster.pk) == {}  # a fresh deploy has not drifted

    # The cluster admin's client (anyone but the platform) tampers with the baseline: the GPU limit
    # goes, the default-deny policy goes, an allow-all ingress rule is added to the DNS policy (a
    # field the platform never set) and the tenant role is widened.
    core.patch_namespaced_resource_quota(
        "paas-quota",
        namespace,
        [{"op": "remove", "path": "/spec/hard/requests.nvidia.com~1gpu"}],
    )
    assert (
        "requests.nvidia.com/gpu"
        not in core.read_namespaced_resource_quota("paas-quota", namespace).spec.hard
    )
    networking.delete_namespaced_network_policy("paas-default-deny", namespace)
    networking.patch_namespaced_network_policy(
        "paas-allow-dns", namespace, {"spec": {"policyTypes": ["Egress", "Ingress"], "ingress": [{}]}}
    )
    rbac.patch_namespaced_role(
        "paas-tenant",
        namespace,
        [
            {
                "op": "add",
                "path": "/rules/-",
                "value": {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
            }
        ],
    )

    # The periodic reconcile enqueues one baseline check for the cluster, on its agent's queue...
    from django_q.models import OrmQ

    before = OrmQ.objects.count()
    with django_capture_on_commit_callbacks(execute=True):
        deployer.reconcile()
    assert OrmQ.objects.count() == before + 1
    # ...which the worker runs:
    report = tasks.baseline_repair(cluster.pk)
    repaired = report[instance.pk]
    assert any(
        item.startswith("ResourceQuota/paas-quota: changed (spec.hard[requests.nvidia.com/gpu] removed")
        for item in repaired
    ), repaired
    assert "NetworkPolicy/paas-default-deny: missing" in repaired
    assert any(item.startswith("NetworkPolicy/paas-allow-dns: changed") for item in repaired), repaired
    assert any(item.startswith("Role/paas-tenant: changed (rules)") for item in repaired), repaired
    assert len(repaired) == 4, repaired

    # Read back: every object is as the platform wants it again.
    assert (
        core.read_namespaced_resource_quota("paas-quota", namespace).spec.hard["requests.nvidia.com/gpu"]
        == "0"
    )
    deny = networking.read_namespaced_network_policy("paas-default-deny", namespace)
    assert deny.spec.policy_types == ["Ingress", "Egress"] and not deny.spec.ingress
    dns = networking.read_namespaced_network_policy("paas-allow-dns", namespace)
    assert dns.spec.policy_types == ["Egress"] and not dns.spec.ingress
    rules = rbac.read_namespaced_role("paas-tenant", namespace).rules
    assert not [rule for rule in rules if "*" in rule.verbs]

    event = AuditEvent.objects.get(action="instance.baseline_repaired", target_id=str(instance.pk))
    assert event.actor_id is None and event.details["repaired"] == repaired
    assert event.details["namespace"] == namespace
    # Converged: the next check finds nothing.
    assert drift.baseline_repair(cluster_id=cluster.pk) == {}


def test_an_instance_deployed_before_the_baseline_had_its_own_manager_converges(
    world, kube_cluster, benign_profile
):
    """Baseline objects applied under the old shared field manager (before this change) are taken
    over on the next apply: the old manager lets go, so what it alone set (here an extra quota
    entry) disappears without a replace."""
    from inventory import kube

    instance = launch(world, benign_profile, "legacy")
    assert deployer.execute(instance.runs.get().pk) == "ready"
    instance.refresh_from_db()
    kubeconfig = instance.cluster.kubeconfig.reveal()
    base = deployer.baseline_objects(instance, instance.namespace)
    quota = next(o for o in base if o["kind"] == "ResourceQuota")
    legacy = {**quota, "spec": {"hard": {**quota["spec"]["hard"], "requests.example.com/thing": "5"}}}
    kube.apply(kubeconfig, [legacy])  # the old manager, as every deploy before used it
    assert drift.apply_baseline(kubeconfig, base) == []
    core = k8s.CoreV1Api(kube_cluster.api_client())
    live = core.read_namespaced_resource_quota("paas-quota", instance.namespace)
    assert "requests.example.com/thing" not in live.spec.hard
    assert {e.manager for e in live.metadata.managed_fields if not e.subresource} == {"gpu-paas-baseline"}


def test_the_baseline_check_skips_unreachable_clusters(world, django_capture_on_commit_callbacks):
    """No cluster call for a cluster marked unreachable, and none that hangs for one that is."""
    from django_q.models import OrmQ

    from tests.factories import ONE_A100, make_synced_cluster

    cluster = make_synced_cluster(name="far")  # its API server address refuses connections
    profile = make_profile(
        actor=world.a.users["org_admin"],
        project=world.a.project,
        manifests=manifests([]),
        resource_groups=ONE_A100,
    )
    instance = launch(world, profile, "far")
    ComputeInstance.objects.filter(pk=instance.pk).update(state="ready", namespace="i-far-abc123")
    assert drift.baseline_repair(cluster_id=cluster.pk) == {}  # unreachable in fact: skipped, logged
    cluster.status = "unreachable"
    cluster.save(update_fields=["status"])
    before = OrmQ.objects.count()
    with django_capture_on_commit_callbacks(execute=True):
        deployer.reconcile()
    assert OrmQ.objects.count() == before  # marked unreachable: not even enqueued
    assert drift.baseline_repair(cluster_id=cluster.pk) == {}


# --- custom resources: only the kinds an operator has allowed ------------------------------------------
CR_GROUP, CR_KIND, CR_PLURAL = "crtest.example.com", "Widget", "widgets"
WIDGET = {"apiVersion": f"{CR_GROUP}/v1", "kind": CR_KIND, "scope": "Namespaced"}


@pytest.fixture
def widget_crd(kube_cluster):
    """A namespaced CRD installed by the cluster admin for this test, removed after it."""
    from tests.support.wait import wait_for

    extensions = k8s.ApiextensionsV1Api(kube_cluster.api_client())
    name = f"{CR_PLURAL}.{CR_GROUP}"
    extensions.create_custom_resource_definition(
        {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": name},
            "spec": {
                "group": CR_GROUP,
                "scope": "Namespaced",
                "names": {"plural": CR_PLURAL, "singular": "widget", "kind": CR_KIND},
                "versions": [
                    {
                        "name": "v1",
                        "served": True,
                        "storage": True,
                        "schema": {
                            "openAPIV3Schema": {
                                "type": "object",
                                "x-kubernetes-preserve-unknown-fields": True,
                            }
                        },
                    }
                ],
            },
        }
    )

    def established():
        crd = extensions.read_custom_resource_definition(name)
        return any(c.type == "Established" and c.status == "True" for c in crd.status.conditions or [])

    wait_for(established, what=f"CRD {name} established")
    yield name

    extensions.delete_custom_resource_definition(name)

    def gone():
        try:
            extensions.read_custom_resource_definition(name)
        except ApiException as exc:
            return exc.status == 404
        return False

    wait_for(gone, timeout=60, what=f"CRD {name} removed")


def test_a_custom_resource_deploys_only_while_an_operator_allows_its_kind(
    world, kube_cluster, registered_cluster, widget_crd
):
    """Refused at publish while unlisted; allowed, it publishes and deploys (read back from the real
    cluster); once the operator takes the kind off the list, the same published version is refused at
    apply, before anything reaches the cluster."""
    from catalog import custom_resources

    admin = world.a.users["org_admin"]
    text = manifests(
        [{"apiVersion": f"{CR_GROUP}/v1", "kind": CR_KIND, "metadata": {"name": "w"}, "spec": {}}]
    )
    template = catalog_services.template_create(actor=admin, project=world.a.project, name="widgets")
    version = catalog_services.template_version_create(
        actor=admin, template=template, version="v1", manifests=text, custom_resources=[WIDGET]
    )
    with pytest.raises(ValidationFailed) as refused:
        catalog_services.template_version_publish(actor=admin, version=version)
    assert (
        f"{CR_KIND}/w: the custom resource {CR_KIND} ({CR_GROUP}) is not on the platform's list of allowed "
        "custom resources; an operator must allow the kind"
    ) in "\n".join(refused.value.fields["manifests"])

    entry = custom_resources.allowed_custom_resource_create(
        actor=world.operator, group=CR_GROUP, kind=CR_KIND
    )
    profile = make_profile(
        actor=admin,
        project=world.a.project,
        manifests=text,
        name="widget",
        template="widget",
        resource_groups=CPU_ONLY,
        custom_resources=[WIDGET],
    )
    instance = launch(world, profile, "widget")
    run = instance.runs.get()
    assert deployer.execute(run.pk) == "ready", Run.objects.get(pk=run.pk).log
    instance.refresh_from_db()
    custom = k8s.CustomObjectsApi(kube_cluster.api_client())
    live = custom.get_namespaced_custom_object(CR_GROUP, "v1", instance.namespace, CR_PLURAL, "w")
    assert live["kind"] == CR_KIND

    custom_resources.allowed_custom_resource_delete(actor=world.operator, entry=entry)
    later = launch(world, ComputeProfile.objects.get(pk=profile.pk), "widget2")
    run = later.runs.get()
    assert deployer.execute(run.pk) == "failed"
    run.refresh_from_db()
    assert f"the custom resource {CR_KIND} ({CR_GROUP}) is not on the platform's list" in run.message
    assert run.attempt == 1
    later.refresh_from_db()
    with pytest.raises(ApiException) as missing:
        k8s.CoreV1Api(kube_cluster.api_client()).read_namespace(later.namespace)
    assert missing.value.status == 404  # nothing was applied
