"""What a template may create in an instance namespace: the baseline is the engine's, never the template's.

:func:`catalog.templating.validate_objects` asks this module about every object that passed the kind
and scope checks, at publish (sample render) and again at apply (the real render, so objects slipped
straight into a version row are refused before anything is sent to the cluster). Pure library code.

Kinds
    Only the built-in kinds in :data:`ALLOWED_KINDS`, and namespaced custom resources that the version
    declares (``custom_resources``: version and scope, how the object is checked) *and* that an
    operator has allowed (:class:`catalog.models.AllowedCustomResource`, passed in by the caller as
    ``(group, kind)`` pairs): a custom resource is acted on by a controller in the cluster, often with
    wide rights, so a template author may not pick which one tenants drive. Refused with their
    reason: the namespace's controls (ResourceQuota, LimitRange, NetworkPolicy), hand-made
    Endpoints/EndpointSlices (they point a Service at any address, past the network policies),
    DaemonSets (a pod on every node of a shared cluster, tolerating node conditions: infrastructure,
    not an application), DRA claims (devices outside the GPU quota), and everything else that is not
    an application object.

Objects
    No name the platform reserves (``paas-*`` in every kind, the per-user ServiceAccounts), no
    platform label or annotation (``paas.gpu/*``, ``app.kubernetes.io/managed-by: gpu-paas``) on the
    object or on any pod/claim template inside it, no pod running as a user's ServiceAccount, no
    service-account token Secrets (type ``kubernetes.io/service-account-token`` or the
    ``kubernetes.io/service-account.name`` annotation: a credential that never expires), no Service
    claiming external IPs or pointing outside the cluster (``externalIPs``, ``ExternalName``).

RBAC, the one narrow exception
    A template may declare ServiceAccounts, Roles whose every rule is within what the tenant's own
    role may do in the namespace (:data:`paas.platform_owned.TENANT_RULES`; ``*`` only where the
    tenant has ``*``, no ``nonResourceURLs``, no ``escalate``/``bind``/``impersonate``;
    ``resourceNames`` narrow and are allowed), and RoleBindings of such a Role (declared by the same
    template) to ServiceAccounts the same template declares, in the instance's namespace. A binding
    of a ClusterRole is refused, even ``view`` or ``edit``: ``cluster-admin`` bound in the namespace
    lets its holder patch the Namespace object itself.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any

from paas.platform_owned import TENANT_RULES, USER_ACCOUNT, platform_labels, reserved_name

RBAC_GROUP = "rbac.authorization.k8s.io"
TOKEN_SECRET_TYPE = "kubernetes.io/service-account-token"  # noqa: S105 (a type name, no secret)
TOKEN_ANNOTATIONS = ("kubernetes.io/service-account.name", "kubernetes.io/service-account.uid")
FORBIDDEN_VERBS = ("escalate", "bind", "impersonate")

#: The built-in kinds a template may create, keyed by (API group, kind).
ALLOWED_KINDS: frozenset[tuple[str, str]] = frozenset(
    {
        ("", "Pod"),
        ("", "Service"),
        ("", "ConfigMap"),
        ("", "Secret"),
        ("", "PersistentVolumeClaim"),
        ("", "ServiceAccount"),
        ("apps", "Deployment"),
        ("apps", "StatefulSet"),
        ("apps", "ReplicaSet"),
        ("batch", "Job"),
        ("batch", "CronJob"),
        ("networking.k8s.io", "Ingress"),
        ("autoscaling", "HorizontalPodAutoscaler"),
        ("policy", "PodDisruptionBudget"),
        (RBAC_GROUP, "Role"),
        (RBAC_GROUP, "RoleBinding"),
    }
)

#: Why a notable namespaced built-in kind is refused (the rest get a generic message).
REFUSED_KINDS: Mapping[tuple[str, str], str] = {
    ("", "ResourceQuota"): "the namespace's quota belongs to the platform",
    ("", "LimitRange"): "the namespace's container defaults belong to the platform",
    ("networking.k8s.io", "NetworkPolicy"): "the namespace's network policies belong to the platform",
    ("", "Endpoints"): "hand-made Endpoints can point a Service at any address",
    ("discovery.k8s.io", "EndpointSlice"): "hand-made EndpointSlices can point a Service at any address",
    ("apps", "DaemonSet"): (
        "a DaemonSet puts a pod on every node of the shared cluster; use a Deployment or StatefulSet"
    ),
    (
        "resource.k8s.io",
        "ResourceClaim",
    ): "device claims would allocate hardware outside the instance's quota",
    ("resource.k8s.io", "ResourceClaimTemplate"): (
        "device claims would allocate hardware outside the instance's quota"
    ),
}

# (group, resource, verb) triples the tenant may use, by rule (kept per rule for resourceNames).
_TENANT = [
    (frozenset(r["apiGroups"]), frozenset(r["resources"]), frozenset(r["verbs"]), r.get("resourceNames"))
    for r in TENANT_RULES
]


def kind_problem(
    group: str, kind: str, builtin: bool, allowed_custom: Collection[tuple[str, str]] = frozenset()
) -> str | None:
    """Why a template may not create this (otherwise valid, namespaced) kind, or None.

    ``allowed_custom``: the ``(group, kind)`` pairs of the custom resources operators have allowed
    (empty by default: a caller that forgets to pass them refuses every custom resource).
    """
    if not builtin:
        if (group, kind) in allowed_custom:
            return None
        return (
            f"the custom resource {kind} ({group}) is not on the platform's list of allowed custom "
            "resources; an operator must allow the kind (studio: Allowed custom resources) before a "
            "template may create it"
        )
    if (group, kind) in ALLOWED_KINDS:
        return None
    reason = REFUSED_KINDS.get((group, kind), "it is not an application object")
    allowed = ", ".join(sorted(k for _g, k in ALLOWED_KINDS))
    return (
        f"templates may not create {kind}: {reason} "
        f"(allowed kinds: {allowed}, and the custom resources operators have allowed)"
    )


def problems(
    objects: Iterable[tuple[str, dict, bool]], *, namespace: str, host_suffix: str | None = None
) -> list[str]:
    """Every policy problem of ``objects`` (``(label, object, builtin)``, kinds already accepted).

    With ``host_suffix`` (the one the platform assigns to the instance: ``instance.host_suffix`` in
    the render context) every Ingress host must be it or end in ``.<host_suffix>``.
    """
    objects = list(objects)
    accounts = {o["metadata"]["name"] for _l, o, b in objects if b and _gk(o) == ("", "ServiceAccount")}
    roles = {o["metadata"]["name"] for _l, o, b in objects if b and _gk(o) == (RBAC_GROUP, "Role")}
    found: list[str] = []
    for label, obj, builtin in objects:
        found += [f"{label}: {problem}" for problem in _object_problems(obj, builtin)]
        if not builtin:
            continue
        group_kind = _gk(obj)
        if group_kind == (RBAC_GROUP, "Role"):
            found += [f"{label}: {problem}" for problem in role_problems(obj.get("rules"))]
        elif group_kind == ("networking.k8s.io", "Ingress") and host_suffix:
            found += [f"{label}: {problem}" for problem in ingress_problems(obj, host_suffix=host_suffix)]
        elif group_kind == (RBAC_GROUP, "RoleBinding"):
            found += [
                f"{label}: {problem}"
                for problem in binding_problems(obj, namespace=namespace, accounts=accounts, roles=roles)
            ]
    return found


def ingress_problems(obj: dict, *, host_suffix: str) -> list[str]:
    """An Ingress may only serve hosts under the instance's suffix (another instance's host, or the
    platform's own, would be taken over); a rule without a host or a default backend would catch every
    host the ingress controller does not know."""
    spec = obj.get("spec") or {}
    hint = f"use a host under the instance's suffix ({{{{ instance.host_suffix }}}}: {host_suffix!r})"
    found = []
    if spec.get("defaultBackend"):
        found.append(f"a default backend is not allowed (it would catch every host); {hint}")
    hosts = []
    for index, rule in enumerate(spec.get("rules") or []):
        host = (rule or {}).get("host")
        if not host:
            found.append(f"rule {index + 1} has no host (it would catch every host); {hint}")
        else:
            hosts.append(host)
    for tls in spec.get("tls") or []:
        hosts += [h for h in (tls or {}).get("hosts") or [] if isinstance(h, str)]
    for host in dict.fromkeys(hosts):
        name = str(host).lower().rstrip(".")
        if name != host_suffix and not name.endswith("." + host_suffix):
            found.append(f"host {host!r} is not allowed; {hint}")
    return found


def _gk(obj: Mapping) -> tuple[str, str]:
    api_version = obj.get("apiVersion") or ""
    return (api_version.rpartition("/")[0], obj.get("kind") or "")


def _object_problems(obj: dict, builtin: bool) -> list[str]:
    metadata = obj["metadata"]
    found = []
    reason = reserved_name(obj["kind"] if builtin else "", metadata["name"])
    if reason:
        found.append(f"the name {metadata['name']!r} is reserved: {reason}")
    for where, labels in _metadata_maps(obj):
        platform = platform_labels(labels)
        if platform:
            found.append(
                f"{where} carries platform labels ({', '.join(sorted(platform))}); templates may not set them"
            )
    if not builtin:
        return found
    group_kind = _gk(obj)
    if group_kind == ("", "Secret"):
        if obj.get("type") == TOKEN_SECRET_TYPE:
            found.append(
                f"a Secret of type {TOKEN_SECRET_TYPE} is a ServiceAccount credential that never expires"
            )
        annotations = metadata.get("annotations") or {}
        for key in TOKEN_ANNOTATIONS:
            if isinstance(annotations, dict) and key in annotations:
                found.append(f"the annotation {key} would make the Secret a ServiceAccount token")
    if group_kind == ("", "Service"):
        spec = obj.get("spec") or {}
        if spec.get("externalIPs"):
            found.append("spec.externalIPs claims addresses outside the cluster; templates may not set it")
        if spec.get("type") == "ExternalName":
            found.append(
                "a Service of type ExternalName points outside the cluster; templates may not create one"
            )
    for path, account in _service_account_refs(obj):
        if isinstance(account, str) and (USER_ACCOUNT.match(account) or reserved_name("", account)):
            found.append(f"{path} {account!r} is a platform ServiceAccount; pods may not run as it")
    return found


def _walk(value: Any, path: str) -> Iterable[tuple[str, Any, Any]]:
    """(path, key, value) of every mapping entry, depth first."""
    if isinstance(value, dict):
        for key, item in value.items():
            child = f"{path}.{key}" if path else str(key)
            yield child, key, item
            yield from _walk(item, child)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk(item, f"{path}[{index}]")


def _metadata_maps(obj: dict) -> Iterable[tuple[str, dict]]:
    """Labels and annotations of the object and of every template inside it (pods, claims, jobs)."""
    for path, key, value in _walk(obj, ""):
        if key == "metadata" and isinstance(value, dict):
            for field in ("labels", "annotations"):
                if isinstance(value.get(field), dict):
                    yield f"{path}.{field}", value[field]


def _service_account_refs(obj: dict) -> Iterable[tuple[str, Any]]:
    for path, key, value in _walk(obj.get("spec"), "spec"):
        if key in ("serviceAccountName", "serviceAccount"):
            yield path, value


# ------------------------------------------------------------------------------------------ RBAC
def _strings(value: Any) -> list[str] | None:
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return value
    return None


def _covered(group: str, resource: str, verb: str, names: list[str] | None) -> bool:
    """Whether one tenant rule grants ``verb`` on ``group``/``resource`` (``*`` only by ``*``)."""
    for groups, resources, verbs, tenant_names in _TENANT:
        if not (
            ("*" in groups or group in groups)
            and ("*" in resources or resource in resources)
            and ("*" in verbs or verb in verbs)
        ):
            continue
        if tenant_names is None or (names and set(names) <= set(tenant_names)):
            return True
    return False


def role_problems(rules: Any) -> list[str]:
    """Why a Role with ``rules`` would grant more than the tenant's own role may do (empty: it does not)."""
    if rules is None:
        return []
    if not isinstance(rules, list):
        return ["rules must be a list"]
    found = []
    for index, rule in enumerate(rules, start=1):
        where = f"rule {index}"
        if not isinstance(rule, dict):
            found.append(f"{where} must be a mapping")
            continue
        if rule.get("nonResourceURLs"):
            found.append(f"{where}: nonResourceURLs are cluster-level and cannot be granted by a template")
            continue
        groups, resources, verbs = (_strings(rule.get(key)) for key in ("apiGroups", "resources", "verbs"))
        names = rule.get("resourceNames")
        if (
            groups is None
            or resources is None
            or verbs is None
            or (names is not None and not _strings(names))
        ):
            found.append(f"{where}: apiGroups, resources, verbs (and resourceNames) must be lists of names")
            continue
        bad_verbs = sorted(set(verbs) & set(FORBIDDEN_VERBS))
        if bad_verbs:
            found.append(f"{where}: the verbs {', '.join(bad_verbs)} are never granted by a template")
        wider = [
            f"{verb} {resource}" + (f" ({group})" if group else "")
            for group in groups
            for resource in resources
            for verb in verbs
            if verb not in FORBIDDEN_VERBS and not _covered(group, resource, verb, names)
        ]
        if wider:
            shown = ", ".join(wider[:6]) + (f" and {len(wider) - 6} more" if len(wider) > 6 else "")
            wildcard = (
                " ('*' is granted only where the tenant's own role has '*')"
                if any("*" in part for part in (*groups, *resources, *verbs))
                else ""
            )
            found.append(
                f"{where} grants {shown}, which the tenant's own role may not do in the namespace{wildcard}; "
                "a template's Role may grant only what the tenant may"
            )
    return found


def binding_problems(obj: dict, *, namespace: str, accounts: set[str], roles: set[str]) -> list[str]:
    """A RoleBinding may bind only a Role of the template to ServiceAccounts of the template."""
    found = []
    ref = obj.get("roleRef") if isinstance(obj.get("roleRef"), dict) else {}
    kind, name = ref.get("kind"), ref.get("name")
    if kind != "Role" or ref.get("apiGroup") != RBAC_GROUP:
        found.append(
            f"roleRef {kind}/{name}: a template may bind only a Role it declares, never a ClusterRole "
            "(even view or edit: a ClusterRole bound in the namespace reaches past the tenant's own rights)"
        )
    elif name not in roles:
        found.append(
            f"roleRef Role/{name} is not declared by this template; bind only Roles the template declares"
        )
    subjects = obj.get("subjects") or []
    if not isinstance(subjects, list):
        return [*found, "subjects must be a list"]
    for subject in subjects:
        if not isinstance(subject, dict):
            found.append("every subject must be a mapping")
            continue
        s_kind, s_name, s_namespace = subject.get("kind"), subject.get("name"), subject.get("namespace")
        if s_kind != "ServiceAccount" or subject.get("apiGroup") not in (None, ""):
            found.append(
                f"subject {s_kind}/{s_name}: only ServiceAccounts the template declares may be bound "
                "(no users or groups)"
            )
        elif s_namespace not in (None, namespace):
            found.append(
                f"subject ServiceAccount/{s_name} in namespace {s_namespace!r}: only the instance's "
                "own namespace"
            )
        elif s_name not in accounts:
            found.append(
                f"subject ServiceAccount/{s_name} is not declared by this template; bind only "
                "ServiceAccounts the template declares"
            )
    return found
