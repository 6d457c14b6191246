"""The cluster guardrails as manifests: valid Kubernetes 1.37 objects, versioned, bound by label."""

from types import SimpleNamespace

import kubernetes_validate
import pytest

from inventory import guardrails as g

ADMIN = "kubernetes-admin"


def every(**kw):
    defaults = {"platform_identity": ADMIN, "ingress_domain": "apps.gpu.example.com"}
    return g.manifests(**{**defaults, **kw})


@pytest.mark.parametrize("sandbox", [None, "kata"])
@pytest.mark.parametrize("mutating", [True, False])
def test_every_object_validates_strictly_against_kubernetes_1_37(sandbox, mutating):
    objects = every(sandbox_runtime_class=sandbox, mutating_defaults=mutating)
    for obj in objects:
        kubernetes_validate.validate(obj, "1.37.0", strict=True)
        labels = obj["metadata"]["labels"]
        assert labels[g.LABEL_MANAGED_BY] == g.MANAGED_BY
        assert labels[g.LABEL_GUARDRAILS_VERSION] == g.GUARDRAILS_VERSION
        assert obj["metadata"]["name"].startswith(g.PREFIX)
    kinds = [o["kind"] for o in objects]
    assert ("MutatingAdmissionPolicy" in kinds) is mutating
    # policies first, then their bindings; every policy has exactly one binding of the same name
    first_binding = next(i for i, k in enumerate(kinds) if k.endswith("Binding"))
    assert all(k.endswith("Binding") for k in kinds[first_binding:])
    policies = {o["metadata"]["name"] for o in objects if not o["kind"].endswith("Binding")}
    bindings = {o["spec"]["policyName"] for o in objects if o["kind"].endswith("Binding")}
    assert policies == bindings
    for binding in (o for o in objects if o["kind"].endswith("Binding")):
        if binding["metadata"]["name"] == g.PREFIX + "namespace":
            assert binding["spec"]["matchResources"] == {}, "the stored labels decide (matchConditions)"
            continue
        assert binding["spec"]["matchResources"]["namespaceSelector"] == {
            "matchExpressions": [{"key": "paas.gpu/instance-id", "operator": "Exists"}]
        }


def test_rules_listed_match_what_is_installed():
    assert g.enforced_rules(sandbox=False, mutating=False) == [
        "token-secrets",
        "services",
        "ingress-hosts",
        "namespace",
        "platform-objects",
    ]
    assert g.enforced_rules(sandbox=True, mutating=True)[-2:] == ["sandbox", "pod-defaults"]
    objects = every(sandbox_runtime_class="kata", mutating_defaults=True)
    installed = {o["metadata"]["labels"]["paas.gpu/guardrail"] for o in objects}
    assert installed == set(g.enforced_rules(sandbox=True, mutating=True))


def test_exemptions_are_the_platform_and_for_lifecycle_rules_the_cluster_controllers():
    objects = every(sandbox_runtime_class="kata", mutating_defaults=True)
    by_name = {o["metadata"]["name"]: o for o in objects if not o["kind"].endswith("Binding")}
    for rule in ("token-secrets", "services", "sandbox", "ingress-hosts"):
        assert "matchConditions" not in by_name[g.PREFIX + rule]["spec"], "nobody is exempt"
    tenant, _ = by_name[g.PREFIX + "namespace"]["spec"]["matchConditions"]
    assert tenant["expression"] == (
        "oldObject != null && has(oldObject.metadata.labels) && "
        '"paas.gpu/instance-id" in oldObject.metadata.labels'
    )
    for rule in ("namespace", "platform-objects"):
        condition = by_name[g.PREFIX + rule]["spec"]["matchConditions"][-1]
        assert '"kubernetes-admin"' in condition["expression"]
        assert 'startsWith("system:serviceaccount:kube-system:")' in condition["expression"]
    # an identity with quotes cannot break out of the CEL string
    sneaky = g.manifests(platform_identity='x"] || true || ["', ingress_domain="a.b")
    expression = next(
        o
        for o in sneaky
        if o["kind"] == "ValidatingAdmissionPolicy" and o["metadata"]["name"] == g.PREFIX + "namespace"
    )["spec"]["matchConditions"][-1]["expression"]
    assert '"x\\"] || true || [\\""' in expression
    with pytest.raises(ValueError):
        g.manifests(platform_identity="", ingress_domain="a.b")
    with pytest.raises(ValueError):
        g.manifests(platform_identity=ADMIN, ingress_domain="a.b", sandbox_runtime_class="kata' || true")


def test_pod_defaults_only_fill_unset_fields():
    objects = every(sandbox_runtime_class="kata", mutating_defaults=True)
    policies = [o for o in objects if o["kind"] == "MutatingAdmissionPolicy"]
    assert {p["metadata"]["name"].removeprefix(g.PREFIX + "pod-defaults-") for p in policies} == {
        "pods",
        "workloads",
        "jobs",
        "cronjobs",
    }
    for policy in policies:
        apply, patch = policy["spec"]["mutations"]
        expression = apply["applyConfiguration"]["expression"]
        for field in ("runAsNonRoot", "seccompProfile", "allowPrivilegeEscalation"):
            assert f"?{field}: (has(" in expression, (policy["metadata"]["name"], field)
        drop = patch["jsonPatch"]["expression"]
        assert "has(object." in drop and ".capabilities.drop)))" in drop and 'drop: ["ALL"]' in drop
        assert drop.count("(") == drop.count(")")
        assert "?runtimeClassName: (has(" in expression and 'optional.of("kata")' in expression
        assert expression.count("{") == expression.count("}")
    without_sandbox = every(mutating_defaults=True)
    assert all("runtimeClassName" not in str(o) for o in without_sandbox)


def test_versions():
    assert g.parse_version("v1.37.2") == (1, 37)
    assert g.parse_version("1.30.0-eks-1") == (1, 30)
    assert g.parse_version("nonsense") is None
    assert g.unsupported_reason("v1.30.0") == ""
    assert g.unsupported_reason("v1.37.2") == ""
    reason = g.unsupported_reason("v1.29.9")
    assert "1.29" in reason and "1.30" in reason and "upgrade" in reason
    assert g.unsupported_reason("") != ""
    assert not g.mutating_supported("v1.35.4") and g.mutating_supported("v1.36.0")


def test_instance_host_suffix():
    cluster = SimpleNamespace(name="east", ingress_domain="")
    assert g.ingress_domain(cluster) == "apps.east.paas.internal"
    assert g.instance_host_suffix(cluster, "i-acme-x-1") == "i-acme-x-1.apps.east.paas.internal"
    cluster.ingress_domain = "Apps.Example.COM."
    assert g.instance_host_suffix(cluster, "ns") == "ns.apps.example.com"
    assert g.check_ingress_domain(" Apps.Example.com ") == "apps.example.com"
    assert g.check_ingress_domain("") == ""
    for bad in ("*.example.com", "exa mple.com", "-x.com", "a" * 250):
        with pytest.raises(ValueError):
            g.check_ingress_domain(bad)


def test_the_sandbox_class_is_defaulted_on_bare_pods_only_without_overhead_or_scheduling():
    assert g.runtime_class_defaultable({"handler": "kata"})
    assert not g.runtime_class_defaultable(None)
    assert not g.runtime_class_defaultable({"handler": "kata", "overhead": {"podFixed": {"cpu": "250m"}}})
    assert not g.runtime_class_defaultable({"handler": "kata", "scheduling": {"nodeSelector": {"k": "v"}}})
    objects = every(sandbox_runtime_class="kata", mutating_defaults=True, sandbox_default_for_pods=False)
    mutating = {o["metadata"]["name"]: o for o in objects if o["kind"] == "MutatingAdmissionPolicy"}
    pods = mutating[g.PREFIX + "pod-defaults-pods"]["spec"]["mutations"][0]["applyConfiguration"]
    assert "runtimeClassName" not in pods["expression"]
    workloads = mutating[g.PREFIX + "pod-defaults-workloads"]["spec"]["mutations"][0]["applyConfiguration"]
    assert 'optional.of("kata")' in workloads["expression"]
