"""What the platform owns inside an instance namespace: object names, labels, and what the tenant's
own role may do there. One source of truth at the lowest layer, for the code that creates these
objects (``instances.baseline``), the checks that keep templates off them
(``catalog.template_policy``) and anything else that must recognise them (in-cluster guardrails).

Pure data and small predicates: no Django, no Kubernetes client.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

MANAGED_BY = "gpu-paas"
LABEL_PREFIX = "paas.gpu/"
LABEL_DOMAIN = LABEL_PREFIX.rstrip("/")
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
# The tenant labels of every instance namespace (and of the baseline objects in it); the cluster-wide
# guardrails (inventory/guardrails.py) select tenant namespaces by LABEL_INSTANCE_ID.
LABEL_ORG = f"{LABEL_PREFIX}org"
LABEL_PROJECT = f"{LABEL_PREFIX}project"
LABEL_INSTANCE = f"{LABEL_PREFIX}instance"
LABEL_INSTANCE_ID = f"{LABEL_PREFIX}instance-id"
#: A warm pool's standby namespace (and its baseline objects): the StandbyInstance id. A standby carries
#: no tenant labels; its LABEL_INSTANCE_ID is ``standby-<id>`` (the guardrails select on the key only,
#: so they bind there too) until a hand-over gives it the claiming instance's tenant labels.
LABEL_STANDBY = f"{LABEL_PREFIX}standby"
#: On every object a service instance creates (and its pod templates): the service's name. Not a
#: platform-owned label (the tenant may change the objects of its services): it scopes the service's
#: readiness wait (``instances.service_deployer``) and lets tools select a service's pods.
LABEL_SERVICE = "gpu-paas.io/service"
#: On every object an application creates (and its pod templates): the application's name (also its Helm
#: release name). Like LABEL_SERVICE, not platform-owned: it scopes the application's readiness wait and
#: status (``instances.application_deployer``); the deployer sets it over whatever the YAML said.
LABEL_APPLICATION = "gpu-paas.io/application"

#: Every object name starting with this is the platform's, in every kind (the baseline's quota,
#: limit range, network policies, tenant role and binding, sandbox binding all use it).
RESERVED_NAME_PREFIX = "paas-"

#: The per-user ServiceAccounts of ``instances.baseline.service_account_name``: ``u-<slug>-<hash6>``
#: (``u-<hash6>`` when the slug is empty). A template may not declare, bind or run pods as one.
USER_ACCOUNT = re.compile(r"^u-([a-z0-9-]*-)?[0-9a-f]{6}$")

ALL_VERBS = ["get", "list", "watch", "create", "update", "patch", "delete"]
READ_VERBS = ["get", "list", "watch"]

#: What a tenant may do in its own namespace. Nothing on RBAC objects, quotas, limit ranges or
#: network policies beyond reading them; nothing cluster-scoped (a Role cannot grant that anyway).
#: A template's own Role may grant at most this (``catalog.template_policy``).
TENANT_RULES: list[dict] = [
    {
        "apiGroups": [""],
        "resources": ["pods", "services", "configmaps", "secrets", "persistentvolumeclaims"],
        "verbs": ALL_VERBS,
    },
    {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get", "list", "watch"]},
    {
        "apiGroups": [""],
        "resources": ["pods/exec", "pods/portforward", "pods/attach"],
        "verbs": ["get", "create"],
    },
    {
        "apiGroups": [""],
        "resources": ["events", "serviceaccounts", "resourcequotas", "limitranges", "endpoints"],
        "verbs": READ_VERBS,
    },
    {
        "apiGroups": ["apps"],
        "resources": ["deployments", "statefulsets", "replicasets", "daemonsets"],
        "verbs": ALL_VERBS,
    },
    {
        "apiGroups": ["apps"],
        "resources": ["deployments/scale", "statefulsets/scale", "replicasets/scale"],
        "verbs": ["get", "update", "patch"],
    },
    {"apiGroups": ["batch"], "resources": ["jobs", "cronjobs"], "verbs": ALL_VERBS},
    {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses"], "verbs": ALL_VERBS},
    {"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"], "verbs": READ_VERBS},
    {"apiGroups": ["autoscaling"], "resources": ["horizontalpodautoscalers"], "verbs": ALL_VERBS},
    {"apiGroups": ["policy"], "resources": ["poddisruptionbudgets"], "verbs": ALL_VERBS},
    {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": READ_VERBS},
]


def reserved_name(kind: str, name: str) -> str | None:
    """Why ``kind/name`` is a name the platform reserves in an instance namespace, or None."""
    if name.startswith(RESERVED_NAME_PREFIX):
        return f"names starting with '{RESERVED_NAME_PREFIX}' are reserved for the platform's own objects"
    if kind == "ServiceAccount" and USER_ACCOUNT.match(name):
        return (
            "the name has the form of a user's ServiceAccount (u-<name>-<hash>), which the platform reserves"
        )
    return None


def is_platform_label(key: str, value: object = None) -> bool:
    """A label (or annotation) key the platform sets on its objects: ``paas.gpu/*`` (and subdomains of
    ``paas.gpu``) or ``app.kubernetes.io/managed-by: gpu-paas``."""
    prefix, _, _ = key.rpartition("/")
    if prefix == LABEL_DOMAIN or prefix.endswith("." + LABEL_DOMAIN):
        return True
    return key == LABEL_MANAGED_BY and value == MANAGED_BY


def platform_labels(labels: Mapping) -> list[str]:
    """The platform's label keys among ``labels`` (as ``key`` or ``key=value``)."""
    found = []
    for key, value in labels.items():
        if isinstance(key, str) and is_platform_label(key, value):
            found.append(f"{key}={value}" if key == LABEL_MANAGED_BY else key)
    return found
