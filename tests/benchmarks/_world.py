"""The tenant a benchmark on the local control plane starts from: an operator (with the system catalog
when asked), an org with its admin, a workspace "lab" with a workspace admin "bench-owner", and the
benchmark's cluster registered as "local" and refreshed (nodes synced, guardrails installed)."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class BenchWorld:
    operator: Any
    org: Any
    admin: Any
    project: Any
    owner: Any
    cluster: Any  # the registered inventory.models.Cluster


def bench_world(local_cluster, *, system_catalog: bool = False) -> BenchWorld:
    from catalog import system
    from inventory import services as inventory_services
    from inventory import tasks as inventory_tasks
    from tenancy import services as tenancy_services
    from tenancy.roles import Role
    from tests.factories import UserFactory, add_member, make_operator, make_org

    operator = make_operator(username="bench-op")
    if system_catalog:
        system.load(actor=operator)
    org, admin = make_org(operator=operator, name="bench")
    project = tenancy_services.project_create(actor=admin, org=org, name="lab")
    owner = UserFactory(username="bench-owner")
    add_member(admin=admin, user=owner, role=Role.WORKSPACE_ADMIN, project=project)
    registered = inventory_services.cluster_register(
        actor=operator, name="local", kubeconfig=Path(local_cluster.kubeconfig_path).read_text()
    )
    inventory_tasks.cluster_refresh(registered.pk)
    return BenchWorld(operator, org, admin, project, owner, registered)
