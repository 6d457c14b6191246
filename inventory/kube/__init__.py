"""The Kubernetes client layer: the only module of the platform that imports ``kubernetes``.

Every function takes a kubeconfig (the decrypted text, never logged) and talks to the cluster with
short timeouts. Failures to reach or authenticate raise :class:`KubeUnreachable` with a message fit
for the studio; nothing here knows about Django models.

Modules (this package re-exports their public names; import it as ``from inventory import kube``):
``clients`` kubeconfigs, API clients, :func:`probe` and token kubeconfigs; ``objects`` writes (apply,
delete, prune); ``reads`` nodes, readiness, fields, events and what the server says about itself.
"""

from inventory.kube.clients import (
    MAX_KUBECONFIG_CHARS,
    MIN_TOKEN_SECONDS,
    TIMEOUT,
    KubeconfigInvalid,
    KubeUnreachable,
    ProbeResult,
    api_client,
    issue_token,
    kubeconfig_for_token,
    kubeconfig_from_token,
    kubeconfig_server,
    parse_kubeconfig,
    probe,
)
from inventory.kube.objects import (
    FIELD_MANAGER,
    ApplyError,
    apply,
    delete_namespace,
    delete_objects,
    ensure_objects,
    existing,
    list_objects,
    prune,
    quantity,
    serves,
)
from inventory.kube.reads import (
    GFD,
    NodeFacts,
    custom_resource_note,
    events,
    label_nodes,
    list_nodes,
    list_service_accounts,
    namespace_exists,
    node_facts,
    read_field,
    read_secret_key,
    runtime_class,
    server_version,
    wait_ready,
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
    "api_client",
    "apply",
    "custom_resource_note",
    "delete_namespace",
    "delete_objects",
    "ensure_objects",
    "events",
    "existing",
    "issue_token",
    "kubeconfig_for_token",
    "kubeconfig_from_token",
    "kubeconfig_server",
    "label_nodes",
    "list_nodes",
    "list_objects",
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
    "wait_ready",
    "whoami",
]
