"""Guardrails in the cluster: admission policies that hold whoever sends the request.

Our own code checks what templates render and what the API accepts, but a tenant also holds a
kubeconfig of its own (a ServiceAccount token in its instance namespace) and talks to the API server
directly. So on registration and on every refresh the platform installs cluster-wide
ValidatingAdmissionPolicies (Kubernetes 1.30 and later) and, where served, MutatingAdmissionPolicies
(``admissionregistration.k8s.io/v1``, Kubernetes 1.36 and later), bound by label to every tenant
namespace (those carrying :data:`LABEL_INSTANCE_ID`). Pure functions: manifests as dicts, applied by
``inventory.services.cluster_guardrails_sync`` through ``inventory.kube``.

=====================  ==========================================================  =================
rule                   threat it answers                                           exempt
=====================  ==========================================================  =================
``token-secrets``      a Secret of type ``kubernetes.io/service-account-token``     nobody
                       makes the API server mint a credential that never expires
                       (it outlives the instance's access rules and revocation)
``services``           ``spec.externalIPs`` claims addresses of other tenants or    nobody
                       of the cluster (traffic interception, CVE-2020-8554);
                       ``ExternalName`` turns cluster DNS into a pointer anywhere;
                       ``LoadBalancer`` exposes the instance outside the platform
``ingress-hosts``      an Ingress taking another instance's (or the studio's)       nobody
                       host name, or every host (no host / ``defaultBackend``):
                       hosts must end in ``<namespace>.<cluster ingress domain>``
                       (:func:`instance_host_suffix`)
``namespace``          changing the instance Namespace itself: relabelling its      platform, cluster
                       Pod Security level to ``privileged``, dropping the tenant    controllers
                       labels that bind these very rules, deleting it
``platform-objects``   changing or deleting what the platform labelled              platform, cluster
                       (``app.kubernetes.io/managed-by: gpu-paas``, ``paas.gpu/*``:  controllers
                       ResourceQuota, LimitRange, NetworkPolicies, RBAC, ...) even
                       when RBAC would allow it, and putting platform labels on a
                       tenant's own objects (passing them off as the platform's)
``sandbox``            (clusters offering the sandbox runtime) a pod running on     nobody (pods are
                       the shared host kernel instead of the ``kata`` VM runtime    made by
                                                                                    controllers)
``pod-defaults``       (mutating, 1.36+) not a threat but a usability fix: the     -
                       restricted-compliant fields a pod leaves unset
                       (``runAsNonRoot``, ``allowPrivilegeEscalation: false``,
                       ``capabilities.drop: [ALL]``, ``seccompProfile:
                       RuntimeDefault``, the sandbox ``runtimeClassName``: on bare
                       Pods only if the class has no overhead/scheduling) are
                       filled in for Pods and the pod templates of Deployments,
                       StatefulSets, ReplicaSets, DaemonSets, Jobs and CronJobs, so
                       a plain ``kubectl run`` is admitted; an explicit choice is
                       never overridden, and Pod Security refuses what asks for more
=====================  ==========================================================  =================

"Cluster controllers" are ``system:serviceaccount:kube-system:*``, the control plane's own users and
the kubelets (``system:node:*``): the namespace controller deletes a namespace's contents, the garbage
collector removes dependents, a kubelet makes the final deletion of a pod.
The platform's identity is learnt with a SelfSubjectReview at each refresh and is the only other
exemption, from the namespace and platform-object rules only (it owns those objects); never from the
rules about content nobody needs (token Secrets, Service types, unsandboxed pods) nor from the Ingress
host rule (the deployer renders templates with :func:`instance_host_suffix` as ``instance.host_suffix``
and refuses other hosts itself; this rule holds should a template slip past it).

Every object is labelled :data:`LABEL_MANAGED_BY` and :data:`LABEL_GUARDRAILS_VERSION`; a sync
applies the current set and deletes every platform-managed admission object not in it (older
versions, the former per-namespace sandbox bindings, rules a cluster no longer needs).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

from paas.platform_owned import (  # noqa: F401  (re-exported: the labels the guardrails select on)
    LABEL_INSTANCE,
    LABEL_INSTANCE_ID,
    LABEL_MANAGED_BY,
    LABEL_ORG,
    LABEL_PREFIX,
    LABEL_PROJECT,
    MANAGED_BY,
)
from paas.validation import is_dns_label

#: Bump when any manifest below changes: a sync replaces objects of other versions.
GUARDRAILS_VERSION = "2"

LABEL_GUARDRAILS_VERSION = f"{LABEL_PREFIX}guardrails-version"

SANDBOX_RUNTIME_CLASS = "kata"
DEFAULT_INGRESS_DOMAIN = "apps.{cluster}.paas.internal"

MIN_VALIDATING = (1, 30)  # ValidatingAdmissionPolicy GA
MIN_MUTATING = (1, 36)  # MutatingAdmissionPolicy at admissionregistration.k8s.io/v1

API_VERSION = "admissionregistration.k8s.io/v1"
POLICY_KINDS = (
    (API_VERSION, "ValidatingAdmissionPolicy"),
    (API_VERSION, "ValidatingAdmissionPolicyBinding"),
    (API_VERSION, "MutatingAdmissionPolicy"),
    (API_VERSION, "MutatingAdmissionPolicyBinding"),
)

PREFIX = "paas-guardrails-"
RULE_TOKEN_SECRETS = "token-secrets"  # noqa: S105 (a rule name, not a secret)
RULE_SERVICES = "services"
RULE_INGRESS_HOSTS = "ingress-hosts"
RULE_NAMESPACE = "namespace"
RULE_PLATFORM_OBJECTS = "platform-objects"
RULE_SANDBOX = "sandbox"
RULE_POD_DEFAULTS = "pod-defaults"

#: The control plane's own users that must never be blocked by the namespace/platform-object rules.
SYSTEM_USERS = ("system:kube-controller-manager", "system:kube-scheduler", "system:apiserver")
SYSTEM_SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:kube-system:"
NODE_PREFIX = "system:node:"  # kubelets: the final deletion of a (possibly platform-labelled) pod

_VERSION = re.compile(r"^v?(\d+)\.(\d+)")
_DNS_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


# ------------------------------------------------------------------------------------- versions
def parse_version(text: str) -> tuple[int, int] | None:
    """``v1.37.2`` (or ``1.30.0-eks-1``) as ``(1, 37)``; None when it is not a version."""
    match = _VERSION.match(str(text or "").strip())
    return (int(match.group(1)), int(match.group(2))) if match else None


def unsupported_reason(version: str) -> str:
    """Why a cluster of ``version`` cannot enforce the guardrails; empty when it can."""
    parsed = parse_version(version)
    if parsed is None:
        return f"Cannot tell the Kubernetes version from {version!r}."
    if parsed < MIN_VALIDATING:
        return (
            f"Kubernetes {parsed[0]}.{parsed[1]} cannot enforce the platform's admission policies "
            f"(ValidatingAdmissionPolicy needs {MIN_VALIDATING[0]}.{MIN_VALIDATING[1]} or later); "
            "upgrade the cluster before registering it."
        )
    return ""


def mutating_supported(version: str) -> bool:
    parsed = parse_version(version)
    return parsed is not None and parsed >= MIN_MUTATING


# ---------------------------------------------------------------------------------- host names
def ingress_domain(cluster) -> str:
    """The cluster's ingress domain: its own setting, else ``apps.<cluster name>.paas.internal``."""
    domain = (getattr(cluster, "ingress_domain", "") or "").strip().lower().rstrip(".")
    return domain or DEFAULT_INGRESS_DOMAIN.format(cluster=cluster.name)


def instance_host_suffix(cluster, namespace: str) -> str:
    """The host suffix an instance's Ingresses must use: ``<namespace>.<ingress domain>``.

    Hosts equal to it or ending in ``.<suffix>`` are admitted (e.g. ``notebook.<suffix>``).
    """
    return f"{namespace}.{ingress_domain(cluster)}"


def check_ingress_domain(domain: str) -> str:
    """The domain, normalised; ValueError when it is not a DNS name (empty means the default)."""
    domain = (domain or "").strip().lower().rstrip(".")
    if domain and (len(domain) > 200 or not _DNS_NAME.match(domain)):
        raise ValueError("A DNS name such as apps.example.com.")
    return domain


# ------------------------------------------------------------------------------------ manifests
def _cel(text: str) -> str:
    """A CEL string literal (JSON escapes are CEL escapes)."""
    return json.dumps(text)


def _labels(rule: str) -> dict[str, str]:
    return {
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_GUARDRAILS_VERSION: GUARDRAILS_VERSION,
        f"{LABEL_PREFIX}guardrail": rule,
    }


def _tenant_namespaces() -> dict:
    return {"namespaceSelector": {"matchExpressions": [{"key": LABEL_INSTANCE_ID, "operator": "Exists"}]}}


def _exempt(platform: str, *, controllers: bool) -> list[dict]:
    users = [platform, *(SYSTEM_USERS if controllers else ())]
    expression = f"!(request.userInfo.username in [{', '.join(_cel(u) for u in users)}])"
    if controllers:
        for prefix in (SYSTEM_SERVICE_ACCOUNT_PREFIX, NODE_PREFIX):
            expression += f" && !request.userInfo.username.startsWith({_cel(prefix)})"
    return [{"name": "not-exempt", "expression": expression}]


def _rule(groups: list[str], resources: list[str], operations: list[str]) -> dict:
    return {"apiGroups": groups, "apiVersions": ["*"], "operations": operations, "resources": resources}


def _validating(
    rule: str, rules: list[dict], validations: list[dict], *, conditions=(), variables=(), match=None
) -> list[dict]:
    name = PREFIX + rule
    spec: dict = {"failurePolicy": "Fail", "matchConstraints": {"resourceRules": rules}}
    if conditions:
        spec["matchConditions"] = list(conditions)
    if variables:
        spec["variables"] = list(variables)
    spec["validations"] = [{"reason": "Forbidden", **v} for v in validations]
    return [
        {
            "apiVersion": API_VERSION,
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": name, "labels": _labels(rule)},
            "spec": spec,
        },
        {
            "apiVersion": API_VERSION,
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": name, "labels": _labels(rule)},
            "spec": {
                "policyName": name,
                "validationActions": ["Deny"],
                "matchResources": _tenant_namespaces() if match is None else match,
            },
        },
    ]


def _token_secrets() -> list[dict]:
    return _validating(
        RULE_TOKEN_SECRETS,
        [_rule([""], ["secrets"], ["CREATE", "UPDATE"])],
        [
            {
                "expression": "!has(object.type) || object.type != 'kubernetes.io/service-account-token'",
                "message": (
                    "Secrets of type kubernetes.io/service-account-token are not allowed here: they hold "
                    "a token that never expires. Use a short-lived token (kubectl create token) instead."
                ),
            }
        ],
    )


def _services() -> list[dict]:
    return _validating(
        RULE_SERVICES,
        [_rule([""], ["services"], ["CREATE", "UPDATE"])],
        [
            {
                "expression": "!has(object.spec.externalIPs) || size(object.spec.externalIPs) == 0",
                "message": "Services may not set spec.externalIPs: remove them (use an Ingress to publish).",
            },
            {
                "expression": "!has(object.spec.type) || object.spec.type != 'ExternalName'",
                "message": "Services of type ExternalName are not allowed here: use ClusterIP.",
            },
            {
                "expression": "!has(object.spec.type) || object.spec.type != 'LoadBalancer'",
                "message": "Services of type LoadBalancer are not allowed here: use ClusterIP and an "
                "Ingress.",
            },
        ],
    )


def _ingress_hosts(platform: str, domain: str) -> list[dict]:
    under = "(h == variables.suffix || h.endsWith('.' + variables.suffix))"
    hint = "' under ' + variables.suffix + ' (e.g. app.' + variables.suffix + ')'"
    return _validating(
        RULE_INGRESS_HOSTS,
        [_rule(["networking.k8s.io"], ["ingresses"], ["CREATE", "UPDATE"])],
        [
            {
                "expression": "!has(object.spec.defaultBackend)",
                "messageExpression": "'An Ingress may not set spec.defaultBackend (it catches every host); "
                "use rules with hosts' + " + hint,
            },
            {
                "expression": "!has(object.spec.rules) || "
                "object.spec.rules.all(r, has(r.host) && r.host != '')",
                "messageExpression": "'Every Ingress rule needs a host' + " + hint,
            },
            {
                "expression": "!has(object.spec.rules) || object.spec.rules.all(r, !has(r.host) || "
                + under.replace("h ", "r.host ").replace("h.", "r.host.")
                + ")",
                "messageExpression": "'Ingress hosts must be' + " + hint,
            },
            {
                "expression": "!has(object.spec.tls) || "
                f"object.spec.tls.all(t, !has(t.hosts) || t.hosts.all(h, {under}))",
                "messageExpression": "'Ingress TLS hosts must be' + " + hint,
            },
        ],
        # Nobody is exempt: the deployer renders templates with ``instance.host_suffix`` and refuses
        # other hosts itself, and this rule holds should a template slip past it.
        variables=[{"name": "suffix", "expression": f"request.namespace + '.' + {_cel(domain)}"}],
    )


def _namespace(platform: str) -> list[dict]:
    return _validating(
        RULE_NAMESPACE,
        [_rule([""], ["namespaces"], ["UPDATE", "DELETE"])],
        [
            {
                "expression": "false",
                "message": (
                    "This instance namespace belongs to the platform: its labels (the Pod Security level "
                    "included) and its lifecycle are not yours to change. Delete the instance instead."
                ),
            }
        ],
        # Not bound by namespaceSelector: for an UPDATE of a Namespace that selector reads the NEW
        # labels, so a patch dropping the tenant label would escape it. The stored labels decide.
        conditions=[
            {
                "name": "tenant-namespace",
                "expression": f"oldObject != null && has(oldObject.metadata.labels) && "
                f"{_cel(LABEL_INSTANCE_ID)} in oldObject.metadata.labels",
            },
            *_exempt(platform, controllers=True),
        ],
        match={},
    )


_PLATFORM_LABELLED = (
    "{o} != null && has({o}.metadata.labels) && ("
    f"({_cel(LABEL_MANAGED_BY)} in {{o}}.metadata.labels && "
    f"{{o}}.metadata.labels[{_cel(LABEL_MANAGED_BY)}] == {_cel(MANAGED_BY)}) || "
    f"{{o}}.metadata.labels.exists(k, k.startsWith({_cel(LABEL_PREFIX)})))"
)


def _platform_objects(platform: str) -> list[dict]:
    return _validating(
        RULE_PLATFORM_OBJECTS,
        [_rule(["*"], ["*"], ["CREATE", "UPDATE", "DELETE"])],
        [
            {
                "expression": "request.operation == 'CREATE' || !variables.oldOwned",
                "message": (
                    "This object is managed by the platform (labelled app.kubernetes.io/managed-by: "
                    "gpu-paas) and cannot be changed or deleted from inside the instance."
                ),
            },
            {
                "expression": "request.operation == 'DELETE' || !variables.newOwned",
                "message": (
                    "The labels paas.gpu/* and app.kubernetes.io/managed-by=gpu-paas are the platform's: "
                    "remove them from your object."
                ),
            },
        ],
        conditions=_exempt(platform, controllers=True),
        variables=[
            {"name": "oldOwned", "expression": _PLATFORM_LABELLED.format(o="oldObject")},
            {"name": "newOwned", "expression": _PLATFORM_LABELLED.format(o="object")},
        ],
    )


def _sandbox(runtime_class: str) -> list[dict]:
    return _validating(
        RULE_SANDBOX,
        [_rule([""], ["pods"], ["CREATE", "UPDATE"])],
        [
            {
                "expression": f"has(object.spec.runtimeClassName) && "
                f"object.spec.runtimeClassName == {_cel(runtime_class)}",
                "message": (
                    f"Pods here run in the sandbox runtime: set spec.runtimeClassName to "
                    f"'{runtime_class}' (or leave it unset)."
                ),
            }
        ],
    )


def _optional(condition: str, value: str) -> str:
    """A CEL optional: nothing when ``condition`` holds (the field is set), else ``value``."""
    return f"({condition}) ? optional.none() : optional.of({value})"


def _container_defaults(c: str, ct: str) -> str:
    sc = f"{c}.securityContext"
    # Not with privileged or CAP_SYS_ADMIN: the API would refuse the pair (422) before Pod Security
    # could refuse the privilege itself with its short message.
    sys_admin = f"{sc}.capabilities.add.exists(a, a == 'SYS_ADMIN' || a == 'CAP_SYS_ADMIN')"
    asks = (
        f"has({sc}) && (has({sc}.allowPrivilegeEscalation) || (has({sc}.privileged) && {sc}.privileged) || "
        f"(has({sc}.capabilities) && has({sc}.capabilities.add) && {sys_admin}))"
    )
    escalation = _optional(asks, "false")
    security = f"{ct}.securityContext{{?allowPrivilegeEscalation: {escalation}}}"
    return f"{ct}{{name: {c}.name, securityContext: {security}}}"


def _drop_all_patches(o: str, pointer: str, t: str) -> str:
    """A CEL list of JSON patches adding ``capabilities.drop: [ALL]`` to every container without a drop
    list (an apply configuration may not set an atomic list such as ``drop``)."""

    def for_list(field: str) -> str:
        containers, ct = f"{o}.{field}", f"{t}.{field}.securityContext"
        sc = f"{containers}[i].securityContext"
        path = f'"{pointer}/{field}/" + string(i) + "/securityContext"'
        drop = "[" + _cel("ALL") + "]"
        capabilities = f"{ct}.capabilities{{drop: {drop}}}"
        return (
            f"lists.range(size({containers}))"
            f".filter(i, !(has({sc}) && has({sc}.capabilities) && has({sc}.capabilities.drop)))"
            f".map(i, !has({sc}) ? "
            f'JSONPatch{{op: "add", path: {path}, value: {ct}{{capabilities: {capabilities}}}}} : '
            f"!has({sc}.capabilities) ? "
            f'JSONPatch{{op: "add", path: {path} + "/capabilities", value: {capabilities}}} : '
            f'JSONPatch{{op: "add", path: {path} + "/capabilities/drop", value: {drop}}})'
        )

    return f"{for_list('containers')} + (has({o}.initContainers) ? {for_list('initContainers')} : [])"


def _pod_spec_defaults(o: str, t: str, runtime_class: str | None) -> str:
    """A CEL apply configuration of the pod spec at object path ``o`` (type path ``t``): unset fields only."""
    psc = f"{o}.securityContext"
    seccomp = t + ".securityContext.seccompProfile{type: " + _cel("RuntimeDefault") + "}"
    fields = []
    if runtime_class:
        fields.append(f"?runtimeClassName: {_optional(f'has({o}.runtimeClassName)', _cel(runtime_class))}")
    fields.append(
        f"securityContext: {t}.securityContext{{"
        f"?runAsNonRoot: {_optional(f'has({psc}) && has({psc}.runAsNonRoot)', 'true')}, "
        f"?seccompProfile: {_optional(f'has({psc}) && has({psc}.seccompProfile)', seccomp)}}}"
    )
    fields.append(f"containers: {o}.containers.map(c, {_container_defaults('c', f'{t}.containers')})")
    init = f"{o}.initContainers.map(c, {_container_defaults('c', f'{t}.initContainers')})"
    fields.append(f"?initContainers: has({o}.initContainers) ? optional.of({init}) : optional.none()")
    return f"{t}{{{', '.join(fields)}}}"


def _wrap(path: list[str], inner: str) -> str:
    """``Object{spec: Object.spec{template: ... inner}}``: ``inner`` is the value of the last field."""
    expression = inner
    for depth in range(len(path), 0, -1):
        type_path = ".".join(["Object", *path[: depth - 1]])
        expression = f"{type_path}{{{path[depth - 1]}: {expression}}}"
    return expression


#: (name suffix, resource rules, path of the pod spec inside the object)
_DEFAULT_TARGETS: tuple[tuple[str, list[dict], list[str]], ...] = (
    ("pods", [_rule([""], ["pods"], ["CREATE"])], ["spec"]),
    (
        "workloads",
        [_rule(["apps"], ["deployments", "statefulsets", "replicasets", "daemonsets"], ["CREATE", "UPDATE"])],
        ["spec", "template", "spec"],
    ),
    ("jobs", [_rule(["batch"], ["jobs"], ["CREATE"])], ["spec", "template", "spec"]),
    (
        "cronjobs",
        [_rule(["batch"], ["cronjobs"], ["CREATE", "UPDATE"])],
        ["spec", "jobTemplate", "spec", "template", "spec"],
    ),
)


def _pod_defaults(runtime_class: str | None, *, bare_pods: bool) -> list[dict]:
    objects = []
    for suffix, rules, path in _DEFAULT_TARGETS:
        name = f"{PREFIX}{RULE_POD_DEFAULTS}-{suffix}"
        o = ".".join(["object", *path])
        t = ".".join(["Object", *path])
        runtime = runtime_class if (bare_pods or suffix != "pods") else None
        expression = _wrap(path, _pod_spec_defaults(o, t, runtime))
        drop_all = _drop_all_patches(o, "/" + "/".join(path), t)
        objects += [
            {
                "apiVersion": API_VERSION,
                "kind": "MutatingAdmissionPolicy",
                "metadata": {"name": name, "labels": _labels(RULE_POD_DEFAULTS)},
                "spec": {
                    "failurePolicy": "Fail",
                    "reinvocationPolicy": "IfNeeded",
                    "matchConstraints": {"resourceRules": rules},
                    "mutations": [
                        {"patchType": "ApplyConfiguration", "applyConfiguration": {"expression": expression}},
                        {"patchType": "JSONPatch", "jsonPatch": {"expression": drop_all}},
                    ],
                },
            },
            {
                "apiVersion": API_VERSION,
                "kind": "MutatingAdmissionPolicyBinding",
                "metadata": {"name": name, "labels": _labels(RULE_POD_DEFAULTS)},
                "spec": {"policyName": name, "matchResources": _tenant_namespaces()},
            },
        ]
    return objects


def runtime_class_defaultable(runtime_class: dict | None) -> bool:
    """Whether a RuntimeClass (as read from the API) may be defaulted on a bare Pod by a mutating
    policy: only without pod overhead and node scheduling, which the RuntimeClass plugin adds earlier."""
    return bool(runtime_class) and not runtime_class.get("overhead") and not runtime_class.get("scheduling")


def enforced_rules(*, sandbox: bool, mutating: bool) -> list[str]:
    """The names of the rules a cluster gets (what the studio shows)."""
    rules = [RULE_TOKEN_SECRETS, RULE_SERVICES, RULE_INGRESS_HOSTS, RULE_NAMESPACE, RULE_PLATFORM_OBJECTS]
    if sandbox:
        rules.append(RULE_SANDBOX)
    if mutating:
        rules.append(RULE_POD_DEFAULTS)
    return rules


def manifests(
    *,
    platform_identity: str,
    ingress_domain: str,
    sandbox_runtime_class: str | None = None,
    mutating_defaults: bool = False,
    sandbox_default_for_pods: bool = True,
) -> list[dict]:
    """Every admission object of the current version for one cluster, policies before bindings.

    ``sandbox_default_for_pods`` False: the sandbox runtime class is defaulted in workload templates
    only, not on bare Pods. Mutating admission policies run after the RuntimeClass admission plugin,
    which adds a class's pod overhead and node scheduling; a class that has either (see
    :func:`runtime_class_defaultable`) cannot be defaulted on a Pod itself, only on templates (the
    controllers' pods then name it from the start). Such bare Pods are refused with the sandbox rule's
    message saying what to set.
    """
    if not platform_identity:
        raise ValueError("The platform's identity is needed: it is the one exempt from the rules.")
    if sandbox_runtime_class is not None and not is_dns_label(sandbox_runtime_class):
        raise ValueError(f"{sandbox_runtime_class!r} is not a RuntimeClass name")
    objects = [
        *_token_secrets(),
        *_services(),
        *_ingress_hosts(platform_identity, check_ingress_domain(ingress_domain) or "invalid"),
        *_namespace(platform_identity),
        *_platform_objects(platform_identity),
    ]
    if sandbox_runtime_class:
        objects += _sandbox(sandbox_runtime_class)
    if mutating_defaults:
        objects += _pod_defaults(sandbox_runtime_class, bare_pods=sandbox_default_for_pods)
    policies = [o for o in objects if not o["kind"].endswith("Binding")]
    return policies + [o for o in objects if o["kind"].endswith("Binding")]


def names(objects: Iterable[dict]) -> set[tuple[str, str]]:
    return {(o["kind"], o["metadata"]["name"]) for o in objects}
