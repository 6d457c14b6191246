"""The Kubernetes client layer: the only module of the platform that imports ``kubernetes``.

Every function takes a kubeconfig (the decrypted text, never logged) and talks to the cluster with
short timeouts. Failures to reach or authenticate raise :class:`KubeUnreachable` with a message fit
for the studio; nothing here knows about Django models.

Modules (this package re-exports their public names; import it as ``from inventory import kube``):
``clients`` kubeconfigs, API clients (and the process's shared session per cluster), :func:`probe` and
token kubeconfigs; ``objects`` writes (apply, delete, prune); ``reads`` nodes, fields, events and what the
server says about itself; ``readiness`` waiting (by watching) for workloads to be ready and for a
namespace to be gone.
"""

from inventory.kube.clients import (
    MAX_KUBECONFIG_CHARS,
    MIN_TOKEN_SECONDS,
    TIMEOUT,
    KubeconfigInvalid,
    KubeUnreachable,
    ProbeResult,
    Session,
    api_client,
    issue_token,
    kubeconfig_for_token,
    kubeconfig_from_token,
    kubeconfig_server,
    parse_kubeconfig,
    probe,
    shared_session,
    shared_sessions_clear,
)
from inventory.kube.objects import (
    FIELD_MANAGER,
    ApplyError,
    apply,
    delete_namespace,
    delete_objects,
    delete_workloads,
    ensure_objects,
    existing,
    list_objects,
    prune,
    quantity,
    serves,
)
from inventory.kube.readiness import wait_namespace_gone, wait_ready
from inventory.kube.reads import (
    GFD,
    NodeFacts,
    can_i,
    custom_resource_note,
    events,
    field_at,
    label_nodes,
    list_nodes,
    list_secret_names,
    list_service_accounts,
    namespace_exists,
    node_facts,
    read_field,
    read_secret_key,
    runtime_class,
    server_version,
    whoami,
)

__all__ = [
    "FIELD_MANAGER",
    "GFD",
    "MAX_KUBECONFIG_CHARS",
    "MIN_TOKEN_SECONDS",
    "TIMEOUT",
    "ApplyError",
    "KubeUnreachable",
    "KubeconfigInvalid",
    "NodeFacts",
    "ProbeResult",
    "Session",
    "api_client",
    "apply",
    "can_i",
    "custom_resource_note",
    "delete_namespace",
    "delete_objects",
    "delete_workloads",
    "ensure_objects",
    "events",
    "existing",
    "field_at",
    "issue_token",
    "kubeconfig_for_token",
    "kubeconfig_from_token",
    "kubeconfig_server",
    "label_nodes",
    "list_nodes",
    "list_objects",
    "list_secret_names",
    "list_service_accounts",
    "namespace_exists",
    "node_facts",
    "parse_kubeconfig",
    "probe",
    "prune",
    "quantity",
    "read_field",
    "read_secret_key",
    "runtime_class",
    "server_version",
    "serves",
    "shared_session",
    "shared_sessions_clear",
    "wait_namespace_gone",
    "wait_ready",
    "whoami",
]
