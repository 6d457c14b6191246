"""The isolation baseline of an instance namespace, as plain Kubernetes manifests (dicts).

Per instance namespace: tenant labels; Pod Security Admission ``restricted`` (enforce, audit, warn);
a ResourceQuota (CPU, memory, GPUs or MIG slices, storage, object counts, no NodePorts and no load
balancers); LimitRange defaults; NetworkPolicy default-deny with same-namespace traffic and DNS
allowed; a ServiceAccount per user (the identity behind their TokenRequest kubeconfigs), one Role
and one RoleBinding for them. The cluster-wide admission rules (sandbox runtime, token Secrets,
Service types, Ingress hosts, the namespace and platform objects themselves, pod defaults) are
``inventory.guardrails``, bound to every namespace carrying :data:`LABEL_INSTANCE_ID`.

Pure functions: no ``kubernetes`` client and no Django here (``inventory.kube`` applies the
objects). Every object carries the tenant labels and ``app.kubernetes.io/managed-by: gpu-paas``.

One object is cluster-scoped: the Namespace itself (:func:`cluster_scoped_objects` lists what else a
namespace deletion would leave behind: nothing today).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from paas.platform_owned import (  # noqa: F401  (re-exported: the baseline's vocabulary)
    ALL_VERBS,
    LABEL_INSTANCE,
    LABEL_INSTANCE_ID,
    LABEL_MANAGED_BY,
    LABEL_ORG,
    LABEL_PREFIX,
    LABEL_PROJECT,
    LABEL_STANDBY,
    MANAGED_BY,
    READ_VERBS,
    RESERVED_NAME_PREFIX,
    TENANT_RULES,
)
from paas.units import GIB
from paas.validation import is_dns_label

#: The field manager of every baseline object (server-side apply, conflicts forced): applied after
#: the template's objects (manager ``inventory.kube.FIELD_MANAGER``), so the baseline always wins.
FIELD_MANAGER = "gpu-paas-baseline"

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"  # set by the API server on every namespace

PSA_LEVEL = "restricted"
PSA_VERSION = "latest"

# Every name below starts with RESERVED_NAME_PREFIX: templates may not take them (catalog.template_policy).
QUOTA_NAME = "paas-quota"
LIMIT_RANGE_NAME = "paas-defaults"
DEFAULT_DENY = "paas-default-deny"
ALLOW_SAME_NAMESPACE = "paas-allow-same-namespace"
ALLOW_DNS = "paas-allow-dns"
TENANT_ROLE = "paas-tenant"

GPU_RESOURCE = "nvidia.com/gpu"
MIG_PREFIX = "nvidia.com/mig-"

#: MIG profiles NVIDIA documents (A30, A100 40/80 GB, H100 80/94/96 GB, H200, B200, RTX PRO 6000).
#: A ResourceQuota only limits the resources it lists, so every profile the instance was not granted
#: is quota'd at 0; otherwise a tenant could request slices it never paid for. Profiles a cluster
#: offers beyond this list are passed as ``also_deny``.
KNOWN_MIG_PROFILES: tuple[str, ...] = (
    "1g.5gb",
    "1g.6gb",
    "1g.10gb",
    "1g.12gb",
    "1g.18gb",
    "1g.20gb",
    "1g.23gb",
    "1g.24gb",
    "1g.35gb",
    "1g.45gb",
    "2g.10gb",
    "2g.12gb",
    "2g.20gb",
    "2g.24gb",
    "2g.35gb",
    "2g.45gb",
    "2g.48gb",
    "3g.20gb",
    "3g.40gb",
    "3g.47gb",
    "3g.48gb",
    "3g.71gb",
    "3g.90gb",
    "4g.20gb",
    "4g.24gb",
    "4g.40gb",
    "4g.47gb",
    "4g.48gb",
    "4g.71gb",
    "4g.90gb",
    "4g.96gb",
    "7g.40gb",
    "7g.80gb",
    "7g.94gb",
    "7g.96gb",
    "7g.141gb",
    "7g.180gb",
)

#: LimitRange defaults for containers that set no requests/limits (clamped to the quota).
DEFAULT_REQUEST_CPU_MILLIS = 100
DEFAULT_REQUEST_MEMORY = 256 * 2**20
DEFAULT_LIMIT_CPU_MILLIS = 1000
DEFAULT_LIMIT_MEMORY = GIB

_MIG_PROFILE = re.compile(r"^[0-9]+g\.[0-9]+gb(\.[a-z0-9]+)?$")
_DNS_SUBDOMAIN = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_RESOURCE_NAME = re.compile(rf"^{_DNS_SUBDOMAIN}/[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
_HASH_LENGTH = 6


@dataclass(frozen=True)
class Resources:
    """Totals of the instance's compute profile (what its namespace may consume at most)."""

    cpu_millis: int
    memory_bytes: int
    storage_bytes: int
    gpus: int = 0
    mig: Mapping[str, int] = field(default_factory=dict)  # {"1g.10gb": 2}
    max_pods: int = 50
    max_services: int = 20
    max_pvcs: int = 20
    max_configmaps: int = 100
    max_secrets: int = 100

    def __post_init__(self) -> None:
        numbers = {
            "cpu_millis": self.cpu_millis,
            "memory_bytes": self.memory_bytes,
            "storage_bytes": self.storage_bytes,
            "gpus": self.gpus,
            "max_pods": self.max_pods,
            "max_services": self.max_services,
            "max_pvcs": self.max_pvcs,
            "max_configmaps": self.max_configmaps,
            "max_secrets": self.max_secrets,
        }
        for name, value in numbers.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, not {value!r}")
        for profile, count in self.mig.items():
            if not _MIG_PROFILE.match(str(profile)):
                raise ValueError(f"{profile!r} is not a MIG profile name (e.g. '1g.10gb')")
            if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                raise ValueError(f"MIG count for {profile} must be a non-negative integer")
        object.__setattr__(self, "mig", dict(self.mig))  # a private copy: frozen means frozen


# ------------------------------------------------------------------------------------------ names
def _digest(*parts: object) -> str:
    text = "\x1f".join(str(part) for part in parts)
    return hashlib.sha256(text.encode()).hexdigest()[:_HASH_LENGTH]


def _slug(text: str) -> str:
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9]+", "-", text.lower())).strip("-")


def _label(base: str, digest: str, limit: int = 63) -> str:
    """``<base>-<digest>``, with ``base`` cut so the whole is a DNS-1123 label of at most ``limit``."""
    base = base[: limit - len(digest) - 1].rstrip("-")
    return f"{base}-{digest}"


def namespace_name(*, org: str, project: str, instance: str, instance_id: int | None = None) -> str:
    """The instance's namespace: ``i-<org>-<project>-<instance>-<hash>``, a DNS-1123 label (<= 63).

    The 6-character hash covers the exact inputs, so it always has a suffix: org, project and
    instance names may contain hyphens, and ``a-b``/``c`` must not share a namespace with ``a``/``b-c``.
    Long names are shortened before the hash. Pass ``instance_id`` so that an instance relaunched
    under the name of a deleted one (whose namespace may still be terminating) gets a namespace
    of its own.
    """
    for what, value in (("org", org), ("project", project), ("instance", instance)):
        if not value:
            raise ValueError(f"{what} must not be empty")
    parts = (org, project, instance) if instance_id is None else (org, project, instance, instance_id)
    base = "-".join(part for part in ("i", _slug(org), _slug(project), _slug(instance)) if part)
    return _label(base, _digest(*parts))


def service_account_name(user: str) -> str:
    """The ServiceAccount that is ``user`` (email or username) inside an instance namespace.

    ``u-<slug>-<hash>``: readable, deterministic, a DNS-1123 label of at most 63 characters; the
    hash of the exact identifier keeps ``a.b@x`` and ``a-b@x`` apart.
    """
    if not user:
        raise ValueError("user must not be empty")
    return _label(f"u-{_slug(user)}".rstrip("-"), _digest(user))


def _label_value(value: object) -> str:
    """A valid label value (<= 63, alphanumeric ends); long or odd values keep a hash for uniqueness."""
    text = str(value)
    if len(text) <= 63 and _LABEL_VALUE.match(text):
        return text
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-_.")
    return _label(cleaned, _digest(text)).lstrip("-_.")


def tenant_labels(*, org: str, project: str, instance: str, instance_id: int) -> dict[str, str]:
    return {
        LABEL_ORG: _label_value(org),
        LABEL_PROJECT: _label_value(project),
        LABEL_INSTANCE: _label_value(instance),
        LABEL_INSTANCE_ID: str(int(instance_id)),
        LABEL_MANAGED_BY: MANAGED_BY,
    }


def standby_namespace_name(profile_name: str, standby_id: int) -> str:
    """A warm pool's standby namespace: ``w-<profile>-<hash>``, a DNS-1123 label (<= 63).

    ``w-`` keeps it apart from every instance namespace (``i-``); the hash covers the standby's id, so
    two standbys of one profile never share a namespace. A claiming instance keeps this name."""
    if not profile_name:
        raise ValueError("profile_name must not be empty")
    return _label(f"w-{_slug(profile_name)}".rstrip("-"), _digest("standby", profile_name, int(standby_id)))


def standby_labels(standby_id: int) -> dict[str, str]:
    """The labels of a standby namespace and its baseline objects: no org, workspace or instance.

    :data:`LABEL_INSTANCE_ID` is ``standby-<id>``: the cluster guardrails select tenant namespaces by
    that key's presence (never its value), so they bind a standby namespace as any instance's; the
    hand-over's baseline replaces it with the claiming instance's id."""
    return {
        LABEL_INSTANCE_ID: f"standby-{int(standby_id)}",
        LABEL_STANDBY: str(int(standby_id)),
        LABEL_MANAGED_BY: MANAGED_BY,
    }


def _check_namespace(name: str) -> str:
    if not is_dns_label(name):
        raise ValueError(f"{name!r} is not a valid namespace name (DNS-1123 label)")
    return name


def _metadata(name: str, labels: Mapping[str, str], namespace: str | None = None) -> dict:
    metadata: dict = {"name": name}
    if namespace is not None:
        metadata["namespace"] = namespace
    metadata["labels"] = {**labels, LABEL_MANAGED_BY: MANAGED_BY}
    return metadata


# -------------------------------------------------------------------------------------- quantities
def _cpu(millis: int) -> str:
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def _bytes(count: int) -> str:
    for suffix, factor in (("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if count and count % factor == 0:
            return f"{count // factor}{suffix}"
    return str(count)


# ------------------------------------------------------------------------------------------ objects
def namespace(*, name: str, labels: Mapping[str, str]) -> dict:
    """The Namespace with Pod Security Admission ``restricted`` enforced, audited and warned."""
    psa = {}
    for mode in ("enforce", "audit", "warn"):
        psa[f"pod-security.kubernetes.io/{mode}"] = PSA_LEVEL
        psa[f"pod-security.kubernetes.io/{mode}-version"] = PSA_VERSION
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": _metadata(_check_namespace(name), {**labels, **psa}),
    }


def resource_quota(
    *,
    namespace: str,
    resources: Resources,
    labels: Mapping[str, str] | None = None,
    also_deny: Iterable[str] = (),
) -> dict:
    """``paas-quota``: the profile's totals; GPUs and every MIG profile not granted are quota'd at 0.

    ``also_deny`` names further extended resources the cluster offers (e.g. a MIG profile missing
    from :data:`KNOWN_MIG_PROFILES`, or a time-sliced ``nvidia.com/gpu.shared``) to forbid as well.
    """
    hard = {
        "requests.cpu": _cpu(resources.cpu_millis),
        "limits.cpu": _cpu(resources.cpu_millis),
        "requests.memory": _bytes(resources.memory_bytes),
        "limits.memory": _bytes(resources.memory_bytes),
        f"requests.{GPU_RESOURCE}": str(resources.gpus),
    }
    for profile in KNOWN_MIG_PROFILES:
        hard[f"requests.{MIG_PREFIX}{profile}"] = "0"
    for resource in also_deny:
        if not _RESOURCE_NAME.match(resource):
            raise ValueError(f"{resource!r} is not an extended resource name")
        hard[f"requests.{resource}"] = "0"
    for profile, count in resources.mig.items():
        hard[f"requests.{MIG_PREFIX}{profile}"] = str(count)
    hard.update(
        {
            "requests.storage": _bytes(resources.storage_bytes),
            "persistentvolumeclaims": str(resources.max_pvcs),
            "pods": str(resources.max_pods),
            "services": str(resources.max_services),
            "services.nodeports": "0",
            "services.loadbalancers": "0",
            "configmaps": str(resources.max_configmaps),
            "secrets": str(resources.max_secrets),
        }
    )
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": _metadata(QUOTA_NAME, labels or {}, _check_namespace(namespace)),
        "spec": {"hard": hard},
    }


def limit_range(
    *, namespace: str, labels: Mapping[str, str] | None = None, resources: Resources | None = None
) -> dict:
    """``paas-defaults``: requests and limits for containers that set none (the quota needs both).

    With ``resources`` the defaults never exceed the quota (a tiny profile must still run a pod).
    """
    request_cpu, request_memory = DEFAULT_REQUEST_CPU_MILLIS, DEFAULT_REQUEST_MEMORY
    limit_cpu, limit_memory = DEFAULT_LIMIT_CPU_MILLIS, DEFAULT_LIMIT_MEMORY
    if resources is not None:
        limit_cpu = max(1, min(limit_cpu, resources.cpu_millis))
        limit_memory = max(2**20, min(limit_memory, resources.memory_bytes))
        request_cpu, request_memory = min(request_cpu, limit_cpu), min(request_memory, limit_memory)
    return {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": _metadata(LIMIT_RANGE_NAME, labels or {}, _check_namespace(namespace)),
        "spec": {
            "limits": [
                {
                    "type": "Container",
                    "default": {"cpu": _cpu(limit_cpu), "memory": _bytes(limit_memory)},
                    "defaultRequest": {"cpu": _cpu(request_cpu), "memory": _bytes(request_memory)},
                }
            ]
        },
    }


def network_policies(*, namespace: str, labels: Mapping[str, str] | None = None) -> list[dict]:
    """Default-deny both ways, then allow traffic inside the namespace and DNS to kube-dns."""
    _check_namespace(namespace)

    def policy(name: str, spec: dict) -> dict:
        return {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": _metadata(name, labels or {}, namespace),
            "spec": {"podSelector": {}, **spec},
        }

    same_namespace = [{"podSelector": {}}]
    kube_dns = {
        "namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: "kube-system"}},
        "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
    }
    return [
        policy(DEFAULT_DENY, {"policyTypes": ["Ingress", "Egress"]}),
        policy(
            ALLOW_SAME_NAMESPACE,
            {
                "policyTypes": ["Ingress", "Egress"],
                "ingress": [{"from": same_namespace}],
                "egress": [{"to": same_namespace}],
            },
        ),
        policy(
            ALLOW_DNS,
            {
                "policyTypes": ["Egress"],
                "egress": [
                    {
                        "to": [kube_dns],
                        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
                    }
                ],
            },
        ),
    ]


def access(*, namespace: str, users: Iterable[str], labels: Mapping[str, str] | None = None) -> list[dict]:
    """A ServiceAccount per user, the ``paas-tenant`` Role and a RoleBinding of it to all of them."""
    _check_namespace(namespace)
    labels = labels or {}
    accounts = sorted({service_account_name(user) for user in users})
    objects: list[dict] = [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": _metadata(account, labels, namespace),
            # The account is a person's identity for kubeconfigs, not something for pods to mount.
            "automountServiceAccountToken": False,
        }
        for account in accounts
    ]
    objects.append(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": _metadata(TENANT_ROLE, labels, namespace),
            "rules": [{**rule, "verbs": list(rule["verbs"])} for rule in TENANT_RULES],
        }
    )
    objects.append(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": _metadata(TENANT_ROLE, labels, namespace),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": TENANT_ROLE},
            "subjects": [
                {"kind": "ServiceAccount", "name": account, "namespace": namespace} for account in accounts
            ],
        }
    )
    return objects


def baseline(
    *,
    namespace_name: str,
    labels: Mapping[str, str],
    resources: Resources,
    users: Iterable[str],
    also_deny: Iterable[str] = (),
) -> list[dict]:
    """Every baseline object of an instance namespace, in apply order.

    The Namespace first, then the quota before anything that lets the tenant in (ServiceAccounts,
    Role, RoleBinding). The sandbox runtime and the other cluster-wide rules are not per-instance
    objects: ``inventory.guardrails`` binds them to every namespace carrying the tenant labels.
    """
    name = _check_namespace(namespace_name)
    labels = dict(labels)
    objects = [namespace(name=name, labels=labels)]
    objects.append(resource_quota(namespace=name, resources=resources, labels=labels, also_deny=also_deny))
    objects.append(limit_range(namespace=name, labels=labels, resources=resources))
    objects.extend(network_policies(namespace=name, labels=labels))
    objects.extend(access(namespace=name, users=users, labels=labels))
    return objects


def cluster_scoped_objects(objects: Iterable[dict]) -> list[dict]:
    """The baseline objects a namespace deletion does not remove (the Namespace itself excluded)."""
    return [obj for obj in objects if obj["kind"] == "ValidatingAdmissionPolicyBinding"]
