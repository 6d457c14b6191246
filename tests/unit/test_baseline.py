"""The isolation baseline of an instance namespace (``instances.baseline``), without a cluster.

Every object must pass strict schema validation for Kubernetes 1.37; the content checks pin what
the isolation rests on (PSA levels, quota keys, NodePorts at 0, default deny, the Role's limits).
"""

import ast
import copy
import re
from pathlib import Path

import kubernetes_validate
import pytest

from instances import baseline as b
from paas.units import GIB

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

LABELS = b.tenant_labels(org="acme", project="team", instance="notebook", instance_id=42)
NS = b.namespace_name(org="acme", project="team", instance="notebook")
GPU = b.Resources(cpu_millis=8000, memory_bytes=64 * GIB, storage_bytes=200 * GIB, gpus=2)
MIG = b.Resources(cpu_millis=2500, memory_bytes=12 * GIB, storage_bytes=20 * GIB, mig={"1g.10gb": 2})
CPU_ONLY = b.Resources(cpu_millis=500, memory_bytes=512 * 2**20, storage_bytes=GIB)
USERS = ["alice@example.com", "bob", "Carol.Smith+gpu@Example.org"]


def full(resources=GPU, users=USERS):
    return b.baseline(namespace_name=NS, labels=LABELS, resources=resources, users=users)


def by_kind(objects, kind):
    return [obj for obj in objects if obj["kind"] == kind]


def one(objects, kind):
    (obj,) = by_kind(objects, kind)
    return obj


# ----------------------------------------------------------------------------------- validation
@pytest.mark.parametrize("resources", [GPU, MIG, CPU_ONLY], ids=["gpu", "mig", "cpu"])
def test_every_object_validates_strictly_against_kubernetes_1_37(resources):
    objects = full(resources)
    assert len(objects) >= 9
    for obj in objects:
        kubernetes_validate.validate(obj, "1.37.0", strict=True)


def test_the_validator_is_strict_enough_to_catch_mistakes():
    quota = copy.deepcopy(one(full(), "ResourceQuota"))
    quota["spec"]["hardd"] = quota["spec"].pop("hard")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(quota, "1.37.0", strict=True)
    binding = copy.deepcopy(one(full(), "RoleBinding"))
    del binding["roleRef"]
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(binding, "1.37.0", strict=True)


def test_apply_order_and_labels_on_every_object():
    objects = full()
    kinds = [obj["kind"] for obj in objects]
    assert kinds[0] == "Namespace"
    assert kinds.index("ResourceQuota") < kinds.index("RoleBinding")
    assert kinds.index("LimitRange") < kinds.index("RoleBinding")
    assert kinds.index("Role") < kinds.index("RoleBinding")
    for obj in objects:
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "gpu-paas", obj["kind"]
        for key, value in LABELS.items():
            assert labels[key] == value, (obj["kind"], key)
        if obj["kind"] == "Namespace":
            assert "namespace" not in obj["metadata"]
        else:
            assert obj["metadata"]["namespace"] == NS, obj["kind"]
    assert not by_kind(objects, "ValidatingAdmissionPolicy"), "admission rules are per cluster (guardrails)"
    assert not by_kind(objects, "ValidatingAdmissionPolicyBinding"), "bound by label, not per instance"


def test_tenant_labels():
    assert LABELS == {
        "paas.gpu/org": "acme",
        "paas.gpu/project": "team",
        "paas.gpu/instance": "notebook",
        "paas.gpu/instance-id": "42",
        "app.kubernetes.io/managed-by": "gpu-paas",
    }
    long_name = b.tenant_labels(org="o" * 80, project="p", instance="i", instance_id=1)["paas.gpu/org"]
    assert len(long_name) <= 63 and re.match(r"^[a-z0-9]([-a-z0-9_.]*[a-z0-9])?$", long_name)


# ------------------------------------------------------------------------------- namespace + PSA
def test_namespace_enforces_audits_and_warns_restricted():
    labels = one(full(), "Namespace")["metadata"]["labels"]
    for mode in ("enforce", "audit", "warn"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"
        assert labels[f"pod-security.kubernetes.io/{mode}-version"] == "latest"
    assert one(full(), "Namespace")["metadata"]["name"] == NS


def test_namespace_name_rules():
    assert NS.startswith("i-acme-team-notebook-")
    assert DNS_LABEL.match(NS) and len(NS) <= 63
    assert b.namespace_name(org="acme", project="team", instance="notebook") == NS, "deterministic"
    # hyphens inside names must not make two tenants share a namespace
    assert b.namespace_name(org="a-b", project="c", instance="d") != b.namespace_name(
        org="a", project="b-c", instance="d"
    )
    long_ = {"org": "o" * 63, "project": "p" * 63, "instance": "x" * 63}
    name = b.namespace_name(**long_)
    assert len(name) <= 63 and DNS_LABEL.match(name)
    other = b.namespace_name(**{**long_, "instance": "x" * 62 + "y"})
    assert other != name and other[:-7] == name[:-7], "same visible prefix, told apart by the hash"
    assert b.namespace_name(**long_, instance_id=1) != b.namespace_name(**long_, instance_id=2)
    odd = b.namespace_name(org="ACME_Corp", project="Team 1", instance="nb--x-")
    assert DNS_LABEL.match(odd) and odd.startswith("i-acme-corp-team-1-nb-x-")
    with pytest.raises(ValueError):
        b.namespace_name(org="", project="p", instance="i")
    with pytest.raises(ValueError):
        b.namespace(name="Not_A_Label", labels={})


def test_service_account_names():
    names = [b.service_account_name(user) for user in USERS]
    assert names[0].startswith("u-alice-example-com-")
    assert names == [b.service_account_name(user) for user in USERS], "deterministic"
    assert len(set(names)) == len(names)
    assert b.service_account_name("a.b@x.org") != b.service_account_name("a-b@x.org")
    for name in [*names, b.service_account_name("z" * 300 + "@example.com"), b.service_account_name("@@@")]:
        assert DNS_LABEL.match(name) and len(name) <= 63, name


# -------------------------------------------------------------------------------------- quota
def test_gpu_quota_keys():
    hard = one(full(GPU), "ResourceQuota")["spec"]["hard"]
    assert one(full(GPU), "ResourceQuota")["metadata"]["name"] == "paas-quota"
    assert hard["requests.cpu"] == hard["limits.cpu"] == "8"
    assert hard["requests.memory"] == hard["limits.memory"] == "64Gi"
    assert hard["requests.storage"] == "200Gi"
    assert hard["requests.nvidia.com/gpu"] == "2"
    mig_keys = {key: value for key, value in hard.items() if key.startswith("requests.nvidia.com/mig-")}
    assert mig_keys and set(mig_keys.values()) == {"0"}, "no MIG slices for a whole-GPU profile"
    assert hard["services.nodeports"] == "0"
    assert hard["services.loadbalancers"] == "0"
    assert hard["pods"] == "50" and hard["services"] == "20" and hard["persistentvolumeclaims"] == "20"
    assert hard["configmaps"] == "100" and hard["secrets"] == "100"
    assert not any(key.startswith("limits.nvidia.com") for key in hard), "extended resources: requests only"


def test_mig_quota_keys():
    hard = one(full(MIG), "ResourceQuota")["spec"]["hard"]
    assert hard["requests.nvidia.com/gpu"] == "0", "always present, 0 without whole GPUs"
    assert hard["requests.nvidia.com/mig-1g.10gb"] == "2"
    assert hard["requests.nvidia.com/mig-3g.40gb"] == "0"
    assert hard["requests.nvidia.com/mig-7g.80gb"] == "0"
    assert hard["requests.cpu"] == "2500m" and hard["requests.memory"] == "12Gi"
    cpu_only = one(full(CPU_ONLY), "ResourceQuota")["spec"]["hard"]
    assert cpu_only["requests.nvidia.com/gpu"] == "0"
    assert cpu_only["requests.cpu"] == "500m" and cpu_only["requests.memory"] == "512Mi"
    for profile in ("1g.10gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb"):  # what tests/localkube offers
        assert cpu_only[f"requests.nvidia.com/mig-{profile}"] == "0"


def test_quota_also_denies_extra_resources_and_rejects_bad_input():
    quota = b.resource_quota(namespace=NS, resources=GPU, also_deny=["nvidia.com/gpu.shared"])
    assert quota["spec"]["hard"]["requests.nvidia.com/gpu.shared"] == "0"
    with pytest.raises(ValueError):
        b.resource_quota(namespace=NS, resources=GPU, also_deny=["no-domain"])
    with pytest.raises(ValueError):
        b.Resources(cpu_millis=-1, memory_bytes=1, storage_bytes=1)
    with pytest.raises(ValueError):
        b.Resources(cpu_millis=1, memory_bytes=1, storage_bytes=1, mig={"big-one": 1})
    with pytest.raises(ValueError):
        b.Resources(cpu_millis=1, memory_bytes=1, storage_bytes=1, mig={"1g.10gb": -2})


def test_limit_range_defaults_fit_the_quota():
    limits = one(full(GPU), "LimitRange")
    assert limits["metadata"]["name"] == "paas-defaults"
    (container,) = limits["spec"]["limits"]
    assert container["type"] == "Container"
    assert set(container["default"]) == set(container["defaultRequest"]) == {"cpu", "memory"}
    assert container["default"] == {"cpu": "1", "memory": "1Gi"}
    assert container["defaultRequest"] == {"cpu": "100m", "memory": "256Mi"}
    tiny = b.Resources(cpu_millis=50, memory_bytes=64 * 2**20, storage_bytes=0)
    (small,) = b.limit_range(namespace=NS, resources=tiny)["spec"]["limits"]
    assert small["default"] == {"cpu": "50m", "memory": "64Mi"}
    assert small["defaultRequest"] == {"cpu": "50m", "memory": "64Mi"}


# ---------------------------------------------------------------------------------- networking
def test_network_policies_default_deny_same_namespace_and_dns():
    policies = {p["metadata"]["name"]: p["spec"] for p in by_kind(full(), "NetworkPolicy")}
    assert set(policies) == {"paas-default-deny", "paas-allow-same-namespace", "paas-allow-dns"}
    deny = policies["paas-default-deny"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}, "no rules: deny all"
    same = policies["paas-allow-same-namespace"]
    assert same["podSelector"] == {}
    assert same["ingress"] == [{"from": [{"podSelector": {}}]}]
    assert same["egress"] == [{"to": [{"podSelector": {}}]}]
    assert "namespaceSelector" not in str(same), "only this namespace's pods"
    (dns,) = policies["paas-allow-dns"]["egress"]
    assert policies["paas-allow-dns"]["policyTypes"] == ["Egress"]
    assert "ingress" not in policies["paas-allow-dns"]
    (peer,) = dns["to"]
    assert peer["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}
    assert peer["podSelector"] == {"matchLabels": {"k8s-app": "kube-dns"}}
    assert sorted((p["protocol"], p["port"]) for p in dns["ports"]) == [("TCP", 53), ("UDP", 53)]


# ---------------------------------------------------------------------------------------- RBAC
WRITE_VERBS = {
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
    "*",
    "escalate",
    "bind",
    "impersonate",
}


def grants(role, group, resource):
    verbs = set()
    for rule in role["rules"]:
        if (group in rule["apiGroups"] or "*" in rule["apiGroups"]) and (
            resource in rule["resources"] or "*" in rule["resources"]
        ):
            verbs |= set(rule["verbs"])
    return verbs


def test_role_grants_tenant_work_and_nothing_that_breaks_isolation():
    role = one(full(), "Role")
    assert role["metadata"]["name"] == "paas-tenant"
    for rule in role["rules"]:
        assert "*" not in rule["apiGroups"] and "*" not in rule["resources"] and "*" not in rule["verbs"]
        assert "resourceNames" not in rule and "nonResourceURLs" not in rule
    everything = {"get", "list", "watch", "create", "update", "patch", "delete"}
    for group, resource in [
        ("", "pods"),
        ("", "services"),
        ("", "configmaps"),
        ("", "secrets"),
        ("", "persistentvolumeclaims"),
        ("apps", "deployments"),
        ("apps", "statefulsets"),
        ("apps", "replicasets"),
        ("apps", "daemonsets"),
        ("batch", "jobs"),
        ("batch", "cronjobs"),
        ("networking.k8s.io", "ingresses"),
        ("autoscaling", "horizontalpodautoscalers"),
        ("policy", "poddisruptionbudgets"),
    ]:
        assert grants(role, group, resource) >= everything, (group, resource)
    assert "get" in grants(role, "", "pods/log")
    assert "create" in grants(role, "", "pods/exec") and "create" in grants(role, "", "pods/portforward")
    for group, resource in [("", "events"), ("", "serviceaccounts")]:
        assert grants(role, group, resource) == {"get", "list", "watch"}, resource
    for group, resource in [
        ("", "resourcequotas"),
        ("", "limitranges"),
        ("networking.k8s.io", "networkpolicies"),
        ("", "serviceaccounts"),
        ("", "serviceaccounts/token"),
        ("", "namespaces"),
        ("", "nodes"),
        ("", "pods/ephemeralcontainers"),
    ]:
        assert not grants(role, group, resource) & WRITE_VERBS, (group, resource)
    for resource in ("roles", "rolebindings", "clusterroles", "clusterrolebindings"):
        assert not grants(role, "rbac.authorization.k8s.io", resource), resource
    assert not any("rbac.authorization.k8s.io" in rule["apiGroups"] for rule in role["rules"])
    assert not any("admissionregistration.k8s.io" in rule["apiGroups"] for rule in role["rules"])


def test_service_accounts_and_binding_cover_every_user_once():
    objects = full(users=[*USERS, "bob"])
    accounts = by_kind(objects, "ServiceAccount")
    expected = sorted({b.service_account_name(user) for user in USERS})
    assert [sa["metadata"]["name"] for sa in accounts] == expected
    assert all(sa["automountServiceAccountToken"] is False for sa in accounts)
    binding = one(objects, "RoleBinding")
    assert binding["metadata"]["name"] == "paas-tenant"
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "paas-tenant",
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": n, "namespace": NS} for n in expected]


# ------------------------------------------------------------------------------------- sandbox
def test_sandbox_is_cluster_wide_and_selected_by_the_tenant_labels():
    """The sandbox rule is a guardrail bound to every namespace with the instance-id label."""
    assert b.cluster_scoped_objects(full()) == []
    namespace = one(full(), "Namespace")
    assert namespace["metadata"]["labels"][b.LABEL_INSTANCE_ID] == "42"


def _imports(path) -> set[str]:
    imported = set()
    for node in ast.walk(ast.parse(Path(path).read_text())):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module or "")
    return imported


def test_module_imports_neither_kubernetes_nor_django():
    """Pure: only the shared vocabulary of platform-owned names, the DNS-label check and the size units
    (each itself pure) come from our code."""
    from paas import platform_owned, units, validation

    ours = {"kubernetes", "django", "inventory", "catalog", "tenancy", "paas"}
    baseline_imports = _imports(b.__file__) - {"paas.platform_owned", "paas.units", "paas.validation"}
    assert not {name.split(".")[0] for name in baseline_imports} & ours, baseline_imports
    for module in (platform_owned, units, validation):
        shared = _imports(module.__file__)
        assert not {name.split(".")[0] for name in shared} & ours, shared


def test_every_baseline_object_name_is_reserved_for_the_platform():
    """One source of truth: templates are refused exactly the names the baseline uses."""
    from paas import platform_owned

    objects = b.baseline(
        namespace_name="i-o-p-x-abcdef",
        labels=b.tenant_labels(org="o", project="p", instance="x", instance_id=1),
        resources=b.Resources(cpu_millis=1000, memory_bytes=2**30, storage_bytes=2**30),
        users=["alice@example.com", "b"],
    )
    for obj in objects:
        if obj["kind"] == "Namespace":
            continue
        assert platform_owned.reserved_name(obj["kind"], obj["metadata"]["name"]), obj["metadata"]["name"]
        labels = obj["metadata"]["labels"]
        assert platform_owned.platform_labels(labels), obj["kind"]
