"""Small helpers for tests that talk to a localkube (or any) cluster."""

from __future__ import annotations

import uuid
from typing import Any

from tests.support.wait import wait_for


def unique_name(prefix: str) -> str:
    """A DNS-1123 name unlikely to collide with other tests (or earlier runs on a reused cluster)."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def create_namespace(api_client: Any, name: str, labels: dict[str, str] | None = None) -> Any:
    """Create a namespace and wait until its ``default`` ServiceAccount exists.

    Pods are only admitted once the service-account controller has created that account, so
    tests that create pods right away must wait for it.
    """
    from kubernetes import client

    core = client.CoreV1Api(api_client)
    namespace = core.create_namespace({"metadata": {"name": name, "labels": labels or {}}})
    wait_for(
        lambda: core.list_namespaced_service_account(name, field_selector="metadata.name=default").items,
        what=f"default ServiceAccount in {name}",
    )
    return namespace


def bearer_token_client(kubeconfig_path: str, token: str) -> Any:
    """An ``ApiClient`` for the kubeconfig's server and CA, authenticated only by ``token``."""
    from kubernetes import client, config

    configuration = client.Configuration()
    config.load_kube_config(config_file=kubeconfig_path, client_configuration=configuration)
    configuration.cert_file = None
    configuration.key_file = None
    configuration.username = None
    configuration.password = None
    configuration.api_key = {"authorization": f"Bearer {token}"}
    return client.ApiClient(configuration)
