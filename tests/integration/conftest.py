"""Fixtures shared by the integration tests that deploy onto the real local control plane."""

from pathlib import Path

import pytest
from kubernetes import client as k8s

from catalog import system
from catalog.models import ComputeProfile
from inventory import services as inventory_services
from inventory import tasks as inventory_tasks
from tests.support.guardrails import ensure_runtime_class


@pytest.fixture
def registered_cluster(world, kube_cluster):
    """The shared local cluster registered by the operator as "local" and refreshed: nodes synced,
    guardrails installed."""
    cluster = inventory_services.cluster_register(
        actor=world.operator, name="local", kubeconfig=Path(kube_cluster.kubeconfig_path).read_text()
    )
    inventory_tasks.cluster_refresh(cluster.pk)
    cluster.refresh_from_db()
    return cluster


@pytest.fixture
def live(world, kube_cluster, registered_cluster, kube_proxy):
    """The registered local cluster with the system catalog loaded; ``profile`` is the small system
    profile, ``core`` an admin CoreV1Api."""
    admin = kube_cluster.api_client()
    ensure_runtime_class(admin)  # a second RuntimeClass, to ask for something other than the sandbox
    system.load(actor=world.operator)
    small = ComputeProfile.objects.get(org__isnull=True, name="small")
    return {
        "world": world,
        "profile": small,
        "core": k8s.CoreV1Api(admin),
        "cluster": registered_cluster,
    }
