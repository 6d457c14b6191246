"""Installing the cluster guardrails on a local control plane from tests that do not go through
the Django services (the deploy primitives); the platform does it in ``cluster_guardrails_sync``."""

from __future__ import annotations

from kubernetes import client
from kubernetes.client.rest import ApiException

from inventory import guardrails, kube

OTHER_RUNTIME = "runc"  # an existing RuntimeClass that is not the sandbox


def install(admin_kc: str, *, sandbox: bool = True) -> list[dict]:
    """Apply the current guardrails as the platform would (its identity exempt); returns them."""
    objects = guardrails.manifests(
        platform_identity=kube.whoami(admin_kc),
        ingress_domain="apps.local.paas.internal",
        sandbox_runtime_class=guardrails.SANDBOX_RUNTIME_CLASS if sandbox else None,
        mutating_defaults=kube.serves(admin_kc, guardrails.API_VERSION, "MutatingAdmissionPolicy"),
    )
    kube.ensure_objects(admin_kc, objects)
    return objects


def ensure_runtime_class(admin: client.ApiClient, name: str = OTHER_RUNTIME) -> str:
    """A RuntimeClass other than the sandbox (pods naming an unknown class are refused before policies)."""
    try:
        client.NodeV1Api(admin).create_runtime_class({"metadata": {"name": name}, "handler": name})
    except ApiException as error:
        if error.status != 409:
            raise
    return name
