"""Fixtures shared by the integration tests that deploy onto the real local control plane."""

from pathlib import Path

import pytest

from inventory import services as inventory_services
from inventory import tasks as inventory_tasks


@pytest.fixture
def registered_cluster(world, kube_cluster):
    """The shared local cluster registered by the operator as "local", its nodes synced."""
    cluster = inventory_services.cluster_register(
        actor=world.operator, name="local", kubeconfig=Path(kube_cluster.kubeconfig_path).read_text()
    )
    inventory_tasks.cluster_refresh(cluster.pk)
    cluster.refresh_from_db()
    return cluster
