"""What a hostile template author tries, one case per attack class (part 1 of issue 11).

Each case is ``(id, objects, expected)``: the objects a template renders (besides a harmless
ConfigMap) and a fragment of the refusal, which names the offending object. Shared by the unit
tests of the policy (tests/unit/test_template_policy.py) and the hostile template suite against the
real control plane (tests/integration/test_hostile_templates.py).
"""

from __future__ import annotations

import json

RBAC = "rbac.authorization.k8s.io"


def obj(api_version: str, kind: str, name: str, **fields) -> dict:
    return {"apiVersion": api_version, "kind": kind, "metadata": {"name": name}, **fields}


def manifests(objects: list[dict], *, suffix: str = "{{ instance.host_suffix }}") -> str:
    """YAML (JSON documents) of ``objects`` after a harmless ConfigMap; ``{suffix}`` in a value becomes
    ``suffix`` (by default the template expression of the instance's own Ingress host suffix)."""
    text = "---\n".join(
        json.dumps(o) + "\n" for o in [obj("v1", "ConfigMap", "app-config", data={"a": "b"}), *objects]
    )
    return text.replace("{suffix}", suffix)


def service_account(name: str = "runner") -> dict:
    return obj("v1", "ServiceAccount", name)


def role(name: str = "runner", rules: list[dict] | None = None) -> dict:
    rules = (
        rules
        if rules is not None
        else [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "create", "delete"]}]
    )
    return obj(f"{RBAC}/v1", "Role", name, rules=rules)


def binding(
    name: str = "runner",
    *,
    role_kind: str = "Role",
    role_name: str = "runner",
    subjects: list[dict] | None = None,
) -> dict:
    return obj(
        f"{RBAC}/v1",
        "RoleBinding",
        name,
        roleRef={"apiGroup": RBAC, "kind": role_kind, "name": role_name},
        subjects=subjects if subjects is not None else [{"kind": "ServiceAccount", "name": "runner"}],
    )


#: The narrow RBAC a real stack needs (a Spark driver creating executor pods): allowed.
NARROW_RBAC = [
    service_account("spark-driver"),
    role(
        "spark-driver",
        [
            {
                "apiGroups": [""],
                "resources": ["pods", "services", "configmaps"],
                "verbs": ["get", "list", "watch", "create", "delete"],
            },
            {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
            {
                "apiGroups": [""],
                "resources": ["configmaps"],
                "verbs": ["get", "update"],
                "resourceNames": ["spark-conf"],
            },
        ],
    ),
    binding(
        "spark-driver",
        role_name="spark-driver",
        subjects=[{"kind": "ServiceAccount", "name": "spark-driver"}],
    ),
]

_QUOTA = {"hard": {"requests.nvidia.com/gpu": "64"}}
_POD_SPEC = {
    "containers": [
        {
            "name": "c",
            "image": "registry.example/app:1",
            "securityContext": {
                "allowPrivilegeEscalation": False,
                "runAsNonRoot": True,
                "capabilities": {"drop": ["ALL"]},
                "seccompProfile": {"type": "RuntimeDefault"},
            },
        }
    ]
}

_HTTP = {
    "paths": [
        {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}
    ]
}


def _ingress(name: str, rules: list[dict], **spec) -> dict:
    """An Ingress; ``{suffix}`` in a host stands for the instance's own suffix (rendered by the template)."""
    return obj("networking.k8s.io/v1", "Ingress", name, spec={"rules": rules, **spec} if rules else spec)


CASES: list[tuple[str, list[dict], str]] = [
    # The namespace's own controls, under the platform's names or any other.
    (
        "quota-takeover",
        [obj("v1", "ResourceQuota", "paas-quota", spec=_QUOTA)],
        "ResourceQuota/paas-quota: templates may not create ResourceQuota",
    ),
    (
        "extra-quota",
        [obj("v1", "ResourceQuota", "more", spec=_QUOTA)],
        "ResourceQuota/more: templates may not create ResourceQuota",
    ),
    (
        "limitrange",
        [obj("v1", "LimitRange", "defaults", spec={"limits": []})],
        "LimitRange/defaults: templates may not create LimitRange",
    ),
    (
        "networkpolicy",
        [
            obj(
                "networking.k8s.io/v1",
                "NetworkPolicy",
                "allow-all",
                spec={"podSelector": {}, "ingress": [{}], "egress": [{}]},
            )
        ],
        "NetworkPolicy/allow-all: templates may not create NetworkPolicy",
    ),
    (
        "endpoints",
        [
            obj(
                "v1",
                "Endpoints",
                "db",
                subsets=[{"addresses": [{"ip": "169.254.169.254"}], "ports": [{"port": 80}]}],
            )
        ],
        "Endpoints/db: templates may not create Endpoints",
    ),
    (
        "endpointslice",
        [
            obj(
                "discovery.k8s.io/v1",
                "EndpointSlice",
                "db",
                addressType="IPv4",
                endpoints=[{"addresses": ["10.0.0.1"]}],
            )
        ],
        "EndpointSlice/db: templates may not create EndpointSlice",
    ),
    (
        "daemonset",
        [
            obj(
                "apps/v1",
                "DaemonSet",
                "agent",
                spec={
                    "selector": {"matchLabels": {"a": "b"}},
                    "template": {"metadata": {"labels": {"a": "b"}}, "spec": _POD_SPEC},
                },
            )
        ],
        "DaemonSet/agent: templates may not create DaemonSet",
    ),
    # Credentials that never expire.
    (
        "token-secret",
        [
            obj(
                "v1",
                "Secret",
                "forever",
                type="kubernetes.io/service-account-token",
                metadata={
                    "name": "forever",
                    "annotations": {"kubernetes.io/service-account.name": "default"},
                },
            )
        ],
        "Secret/forever: a Secret of type kubernetes.io/service-account-token",
    ),
    (
        "token-annotation",
        [
            obj(
                "v1",
                "Secret",
                "sneaky",
                metadata={"name": "sneaky", "annotations": {"kubernetes.io/service-account.name": "default"}},
            )
        ],
        "Secret/sneaky: the annotation kubernetes.io/service-account.name",
    ),
    # The platform's names and labels.
    (
        "reserved-name",
        [obj("v1", "ConfigMap", "paas-defaults", data={})],
        "ConfigMap/paas-defaults: the name 'paas-defaults' is reserved",
    ),
    ("reserved-role-name", [role("paas-tenant")], "Role/paas-tenant: the name 'paas-tenant' is reserved"),
    (
        "user-service-account",
        [service_account("u-alice-example-com-3f2a1b")],
        "ServiceAccount/u-alice-example-com-3f2a1b: the name 'u-alice-example-com-3f2a1b' is reserved",
    ),
    (
        "platform-label",
        [
            obj(
                "v1",
                "ConfigMap",
                "labelled",
                metadata={"name": "labelled", "labels": {"paas.gpu/instance-id": "1"}},
                data={},
            )
        ],
        "ConfigMap/labelled: metadata.labels carries platform labels (paas.gpu/instance-id)",
    ),
    (
        "managed-by-label",
        [
            obj(
                "v1",
                "ConfigMap",
                "managed",
                metadata={"name": "managed", "labels": {"app.kubernetes.io/managed-by": "gpu-paas"}},
                data={},
            )
        ],
        "ConfigMap/managed: metadata.labels carries platform labels (app.kubernetes.io/managed-by=gpu-paas)",
    ),
    (
        "platform-label-in-pod-template",
        [
            obj(
                "apps/v1",
                "Deployment",
                "web",
                spec={
                    "selector": {"matchLabels": {"a": "b"}},
                    "template": {
                        "metadata": {"labels": {"a": "b", "paas.gpu/org": "other"}},
                        "spec": _POD_SPEC,
                    },
                },
            )
        ],
        "Deployment/web: spec.template.metadata.labels carries platform labels (paas.gpu/org)",
    ),
    # Cluster-scoped kinds.
    (
        "cluster-scoped",
        [
            obj(
                f"{RBAC}/v1",
                "ClusterRoleBinding",
                "own-the-cluster",
                roleRef={"apiGroup": RBAC, "kind": "ClusterRole", "name": "cluster-admin"},
                subjects=[{"kind": "ServiceAccount", "name": "default", "namespace": "x"}],
            )
        ],
        "ClusterRoleBinding/own-the-cluster: ClusterRoleBinding is a cluster-scoped kind",
    ),
    (
        "namespace-object",
        [obj("v1", "Namespace", "mine")],
        "Namespace/mine: Namespace is a cluster-scoped kind",
    ),
    # RBAC: the reported exploit, wider roles, foreign subjects, wildcards.
    (
        "clusterrole-binding-admin",
        [service_account(), binding(role_kind="ClusterRole", role_name="cluster-admin")],
        "RoleBinding/runner: roleRef ClusterRole/cluster-admin: a template may bind only a Role it declares",
    ),
    (
        "clusterrole-binding-view",
        [service_account(), binding(role_kind="ClusterRole", role_name="view")],
        "RoleBinding/runner: roleRef ClusterRole/view",
    ),
    (
        "role-wider-than-tenant",
        [
            service_account(),
            role(rules=[{"apiGroups": [RBAC], "resources": ["roles", "rolebindings"], "verbs": ["create"]}]),
            binding(),
        ],
        "Role/runner: rule 1 grants create roles (rbac.authorization.k8s.io)",
    ),
    (
        "role-patches-quota",
        [
            service_account(),
            role(rules=[{"apiGroups": [""], "resources": ["resourcequotas"], "verbs": ["patch"]}]),
            binding(),
        ],
        "Role/runner: rule 1 grants patch resourcequotas, which the tenant's own role may not do",
    ),
    (
        "role-mints-tokens",
        [
            service_account(),
            role(rules=[{"apiGroups": [""], "resources": ["serviceaccounts/token"], "verbs": ["create"]}]),
            binding(),
        ],
        "Role/runner: rule 1 grants create serviceaccounts/token",
    ),
    (
        "role-escalate",
        [
            service_account(),
            role(rules=[{"apiGroups": [RBAC], "resources": ["roles"], "verbs": ["escalate", "bind"]}]),
            binding(),
        ],
        "Role/runner: rule 1: the verbs bind, escalate are never granted by a template",
    ),
    (
        "wildcard-verbs",
        [
            service_account(),
            role(rules=[{"apiGroups": [""], "resources": ["pods"], "verbs": ["*"]}]),
            binding(),
        ],
        "Role/runner: rule 1 grants * pods, which the tenant's own role may not do in the namespace ('*' is",
    ),
    (
        "wildcard-resources",
        [
            service_account(),
            role(rules=[{"apiGroups": [""], "resources": ["*"], "verbs": ["get"]}]),
            binding(),
        ],
        "Role/runner: rule 1 grants get *",
    ),
    (
        "wildcard-groups",
        [
            service_account(),
            role(rules=[{"apiGroups": ["*"], "resources": ["pods"], "verbs": ["get"]}]),
            binding(),
        ],
        "Role/runner: rule 1 grants get pods (*)",
    ),
    (
        "subject-foreign-user",
        [
            service_account(),
            role(),
            binding(subjects=[{"kind": "User", "name": "mallory@example.com", "apiGroup": RBAC}]),
        ],
        "RoleBinding/runner: subject User/mallory@example.com: only ServiceAccounts the template declares",
    ),
    (
        "subject-other-namespace",
        [
            service_account(),
            role(),
            binding(subjects=[{"kind": "ServiceAccount", "name": "runner", "namespace": "kube-system"}]),
        ],
        "RoleBinding/runner: subject ServiceAccount/runner in namespace 'kube-system'",
    ),
    (
        "subject-undeclared-account",
        [service_account(), role(), binding(subjects=[{"kind": "ServiceAccount", "name": "default"}])],
        "RoleBinding/runner: subject ServiceAccount/default is not declared by this template",
    ),
    (
        "binding-undeclared-role",
        [service_account(), binding(role_name="someone-elses")],
        "RoleBinding/runner: roleRef Role/someone-elses is not declared by this template",
    ),
    # Addresses outside the cluster; pods running as a person.
    (
        "external-ips",
        [obj("v1", "Service", "grab", spec={"ports": [{"port": 80}], "externalIPs": ["203.0.113.7"]})],
        "Service/grab: spec.externalIPs",
    ),
    (
        "external-name",
        [obj("v1", "Service", "out", spec={"type": "ExternalName", "externalName": "example.com"})],
        "Service/out: a Service of type ExternalName",
    ),
    # Host names the instance was not given: another instance's, the platform's, or every host.
    (
        "ingress-foreign-host",
        [_ingress("grab", [{"host": "studio.example.com", "http": _HTTP}])],
        "Ingress/grab: host 'studio.example.com' is not allowed",
    ),
    (
        "ingress-foreign-tls-host",
        [
            _ingress(
                "grab-tls",
                [{"host": "app.{suffix}", "http": _HTTP}],
                tls=[{"hosts": ["app.{suffix}", "login.example.com"], "secretName": "cert"}],
            )
        ],
        "Ingress/grab-tls: host 'login.example.com' is not allowed",
    ),
    (
        "ingress-no-host",
        [_ingress("catch-all", [{"http": _HTTP}])],
        "Ingress/catch-all: rule 1 has no host",
    ),
    (
        "ingress-default-backend",
        [_ingress("fallback", [], defaultBackend=_HTTP["paths"][0]["backend"])],
        "Ingress/fallback: a default backend is not allowed",
    ),
    (
        "pod-as-user",
        [obj("v1", "Pod", "me", spec={**_POD_SPEC, "serviceAccountName": "u-alice-example-com-3f2a1b"})],
        "Pod/me: spec.serviceAccountName 'u-alice-example-com-3f2a1b' is a platform ServiceAccount",
    ),
]
