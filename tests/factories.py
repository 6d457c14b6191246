"""Test data. Users come from factory_boy; orgs, projects and roles are built through the services
so that tests see exactly what the platform produces (quota rows, permissions, audit events)."""

import factory
from factory.django import DjangoModelFactory

from tenancy import services
from tenancy.models import User
from tenancy.roles import Role

PASSWORD = "correct-horse-battery-staple"


class UserFactory(DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):
        if create:
            obj.save()


def make_operator(**kwargs) -> User:
    user = UserFactory(**kwargs)
    services.operator_bootstrap(user=user) if not User.objects.filter(is_superuser=True).exists() else None
    if not user.is_superuser:
        existing = User.objects.filter(is_superuser=True).exclude(pk=user.pk).first()
        services.role_assign(actor=existing, user=user, role=Role.OPERATOR)
    user.refresh_from_db()
    return user


def make_org(*, operator: User, name: str, admin: User | None = None):
    """An org onboarded by the operator, its first admin accepted; returns (org, admin)."""
    admin = admin or UserFactory(username=f"{name}-admin", email=f"admin@{name}.example.com")
    org, _invitation, token = services.org_onboard(
        actor=operator,
        name=name,
        display_name=name.title(),
        admin_email=admin.email,
        admin_first_name="First",
        admin_last_name="Admin",
    )
    services.invitation_accept(token=token, user=admin)
    return org, admin


def add_member(*, admin: User, user: User, role: str, org=None, project=None):
    """Make ``user`` a member holding ``role`` the way the platform does: ``admin`` (an org admin of the
    org) invites them by email and they accept. Operators no longer reach inside an org to assign roles."""
    org = org or project.org
    invitation, token = services.invitation_create(
        actor=admin, org=org, email=user.email, role=role, project=project
    )
    services.invitation_accept(token=token, user=user)
    return invitation


def make_profile(
    *,
    actor,
    project,
    manifests: str,
    resource_groups: list[dict],
    name: str = "profile",
    template: str = "tpl",
    custom_resources: list[dict] | None = None,
    inputs: list[dict] | None = None,
    **data,
):
    """A published compute profile in ``project`` (None: the system catalog) backed by a freshly
    published template version; ``data``: more profile fields (e.g. the warm-pool strategy)."""
    from catalog import services as catalog_services
    from catalog.models import ComputeProfile

    created = catalog_services.template_create(actor=actor, project=project, name=template)
    version = catalog_services.template_version_create(
        actor=actor,
        template=created,
        version="v1",
        manifests=manifests,
        custom_resources=custom_resources,
        **({"inputs": inputs} if inputs is not None else {}),
    )
    version = catalog_services.template_version_publish(actor=actor, version=version)
    return catalog_services.profile_create(
        actor=actor,
        model=ComputeProfile,
        project=project,
        name=name,
        template_version=version,
        published=True,
        resource_groups=resource_groups,
        **data,
    )


# A kubeconfig whose API server does not exist: for tests that place but never deploy.
DEAD_KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
"""
ONE_A100 = [
    {"gpu_model": "A100-SXM4-40GB", "gpu_count": 1, "cpu_cores": "4", "memory_gib": 16, "storage_gib": 10}
]


def make_synced_cluster(*, name: str, nodes: int = 1):
    """A reachable cluster as the inventory sync would leave it: ``nodes`` schedulable 8x A100 nodes."""
    from django.utils import timezone

    from inventory.models import Cluster, Node

    cluster = Cluster.objects.create(
        name=name,
        display_name=name,
        kubeconfig=DEAD_KUBECONFIG,
        server="https://127.0.0.1:1",
        status="reachable",
    )
    Node.objects.bulk_create(
        [
            Node(
                cluster=cluster,
                name=f"n{i}",
                gpu_product="A100-SXM4-40GB",
                gpu_count=8,
                allocatable_gpus=8,
                allocatable_cpu_millis=96_000,
                allocatable_memory_bytes=1024 * 2**30,
                ready=True,
                schedulable=True,
                synced_at=timezone.now(),
            )
            for i in range(nodes)
        ]
    )
    return cluster
