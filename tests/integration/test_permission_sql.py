"""The hand-written permission SQL (``paas.authz.permission_q`` / ``filter_for``) agrees with the Python
``has_perm`` for every user of the world, every model with object permissions and each of its
permission codenames: the same objects, no more, no fewer.

Objects of each kind exist in both tenants and in a third, deactivated organization on whose projects
tenant A's people hold their roles too (so the deactivation rule is compared as well); an instance has
a collaborator (a direct grant on the instance). Operators: one without a support access, one with a
read access to A, one with an admin access to B and to the deactivated org; compared again once every
access has expired (time frozen past them)."""

import datetime as dt

import pytest
import time_machine
from django.apps import apps
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.utils import timezone
from guardian.models import UserObjectPermission, UserObjectPermissionBase

from instances import applications, service_instances
from instances import services as instance_services
from instances.models import ComputeInstance
from instances.states import State, transition
from paas import authz
from tenancy import services as tenancy_services
from tenancy.models import IdpGroupMapping, Organization, Project, User
from tenancy.roles import Role
from tests.factories import ONE_A100, add_member, make_operator, make_org, make_profile, make_synced_cluster
from tests.support.services import make_service_profile
from tests.support.support import grant_support

MANIFESTS = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ instance.name }}-info\ndata:\n  a: b\n"


def _object_permission_models() -> list[type]:
    """Every model whose permissions are granted per object: it has its own guardian table or derives
    permissions from a parent (``authz_parents``)."""
    direct = {
        model._meta.get_field("content_object").related_model
        for model in apps.get_models()
        if issubclass(model, UserObjectPermissionBase) and model is not UserObjectPermission
    }
    found = [model for model in apps.get_models() if "authz_parents" in model.__dict__ or model in direct]
    return sorted(found, key=lambda model: model._meta.label)


MODELS = _object_permission_models()


def test_the_compared_models_are_the_ones_with_object_permissions():
    # The list is discovered; this keeps a broken discovery from silently comparing nothing.
    assert {Organization, Project, ComputeInstance, IdpGroupMapping} <= set(MODELS)


def _objects_in(org: Organization, project: Project, admin: User, owner: User, name: str) -> ComputeInstance:
    """One of each kind in ``org``: an IdP mapping, instance limits (the org's and the workspace's), an
    audit sink (a row: delivery is not compared here), a profile, a launched instance in ``project`` and a
    service and an application on it."""
    from paas.models import AuditSink

    tenancy_services.idp_mapping_create(actor=admin, org=org, group=f"{name}-staff", role=Role.PAAS_ADMIN)
    tenancy_services.instance_limit_set(actor=admin, org=org, max_active_instances_per_user=5)
    tenancy_services.instance_limit_set(actor=admin, project=project, max_active_instances_per_user=3)
    AuditSink.objects.create(org=org, name=f"{name}-sink", kind="https", url="https://siem.example.com/in")
    tenancy_services.idp_mapping_create(
        actor=admin, org=org, group=f"{name}-ops", role=Role.WORKSPACE_ADMIN, project=project
    )
    profile = make_profile(
        actor=admin, project=project, manifests=MANIFESTS, resource_groups=ONE_A100, name=f"{name}-p"
    )
    instance = instance_services.instance_launch(
        actor=owner, project=project, name=f"{name}-i", profile=profile
    )
    with transaction.atomic():  # as its deploy leaves it, so that a service can be deployed onto it
        instance = ComputeInstance.objects.select_for_update().get(pk=instance.pk)
        instance.namespace = f"{name}-ns"
        instance.save(update_fields=["namespace"])
        transition(instance, State.PROVISIONING)
        transition(instance, State.READY)
    service_profile = make_service_profile(None, actor=admin, project=project, name=f"{name}-web")
    service_instances.service_launch(
        actor=owner, compute_instance=instance, profile=service_profile, name=f"{name}-web"
    )
    applications.application_create(
        actor=owner,
        compute_instance=instance,
        name=f"{name}-app",
        package_type="yaml",
        sync="upload",
        files={"cm.yaml": MANIFESTS.replace("{{ instance.name }}", f"{name}-app")},
    )
    return instance


@pytest.fixture
def populated(world):
    make_synced_cluster(name="perm-sql", nodes=2)
    for tenant, name in ((world.a, "a"), (world.b, "b")):
        instance = _objects_in(
            tenant.org, tenant.project, tenant.users["org_admin"], tenant.users["workspace_admin"], name
        )
        collaborator = tenant.users["collaborator_rw"]
        User.objects.filter(pk=collaborator.pk).update(email_verified=True)
        instance_services.collaborator_add(
            actor=tenant.users["workspace_admin"], instance=instance, email=collaborator.email
        )
    # A third org, deactivated at the end, in which tenant A's people hold their roles on its project.
    org_c, admin_c = make_org(operator=world.operator, name="orgc")
    project_c = tenancy_services.project_create(actor=admin_c, org=org_c, name="team", display_name="Team")
    for role_name, user in world.a.users.items():
        if role_name in {"org_admin", "paas_admin_org"}:
            continue
        role = Role.PAAS_ADMIN if role_name == "paas_admin_project" else Role(role_name)
        add_member(admin=admin_c, user=user, role=role, project=project_c)
    add_member(admin=admin_c, user=world.a.users["paas_admin_org"], role=Role.PAAS_ADMIN, org=org_c)
    _objects_in(org_c, project_c, admin_c, world.a.users["workspace_admin"], "c")
    tenancy_services.org_update(actor=world.operator, org=org_c, is_active=False)
    # Operators: world.operator without any support access; one reading A; one administering B (and
    # the deactivated org C, which gives nothing there).
    reader, administrator = make_operator(username="op-read"), make_operator(username="op-admin")
    grant_support(operator=reader, org=world.a.org, level="read", minutes=60)
    grant_support(operator=administrator, org=world.b.org, level="admin", minutes=60)
    grant_support(operator=administrator, org=org_c, level="admin", minutes=60)
    users = [
        world.operator,
        reader,
        administrator,
        world.outsider,
        admin_c,
        *world.a.users.values(),
        *world.b.users.values(),
    ]
    return [User.objects.get(pk=user.pk) for user in users]


def _compare(users, model) -> bool:
    """Every user, every codename of ``model``: the SQL's objects are Python's. Whether a tenant user
    holds anything there."""
    objects = list(model.objects.all())
    assert len(objects) >= 3, f"too few {model._meta.verbose_name_plural} to compare"
    codenames = Permission.objects.filter(content_type=ContentType.objects.get_for_model(model)).values_list(
        "codename", flat=True
    )
    granted_somewhere = False
    for user in users:
        authz.forget(user)
        for codename in codenames:
            by_sql = set(authz.filter_for(user, codename, model.objects.all()))
            by_python = {obj for obj in objects if authz.has_perm(user, codename, obj)}
            assert by_sql == by_python, (user.username, codename)
            granted_somewhere |= bool(by_python) and not user.is_superuser
    return granted_somewhere


@pytest.mark.parametrize("model", MODELS, ids=lambda model: model._meta.label)
def test_permission_sql_agrees_with_has_perm(populated, model):
    granted_somewhere = _compare(populated, model)
    assert granted_somewhere, f"no tenant user holds any permission on a {model._meta.verbose_name}"


@pytest.mark.parametrize("model", MODELS, ids=lambda model: model._meta.label)
def test_permission_sql_agrees_once_support_accesses_expired(populated, model):
    with time_machine.travel(timezone.now() + dt.timedelta(minutes=61), tick=False):
        _compare(populated, model)


def _ids(user, perm, model, **filters) -> set:
    authz.forget(user)
    return set(authz.filter_for(user, perm, model.objects.filter(**filters)).values_list("pk", flat=True))


def test_support_access_gives_what_its_level_says_in_its_org_only(world, populated):
    by_name = {user.username: user for user in populated}
    operator, reader, administrator = by_name["op"], by_name["op-read"], by_name["op-admin"]
    a_instances = set(ComputeInstance.objects.filter(project__org=world.a.org).values_list("pk", flat=True))
    b_instances = set(ComputeInstance.objects.filter(project__org=world.b.org).values_list("pk", flat=True))
    assert a_instances and b_instances
    # Without a support access the operator holds nothing inside an org (the orgs themselves: yes).
    assert _ids(operator, "view_computeinstance", ComputeInstance) == set()
    assert _ids(operator, "view_project", Project) == set()
    assert _ids(operator, "view_organization", Organization) == set(
        Organization.objects.values_list("pk", flat=True)
    )
    # Read: every view_* in A, nothing to change, nothing in B.
    assert _ids(reader, "view_computeinstance", ComputeInstance) == a_instances
    assert _ids(reader, "view_project", Project) == set(world.a.org.projects.values_list("pk", flat=True))
    assert _ids(reader, "view_audit", Organization) == {world.a.org.pk}
    assert _ids(reader, "change_project", Project) == set()
    assert _ids(reader, "administer_organization", Organization) == set()
    # Admin: an org admin's permissions in B, and nothing in the deactivated org C.
    admin_b = world.b.users["org_admin"]
    for perm, model in (
        ("administer_organization", Organization),
        ("change_project", Project),
        ("view_computeinstance", ComputeInstance),
        ("manage_catalog", Project),
        ("view_audit", Organization),
    ):
        assert _ids(administrator, perm, model) == _ids(admin_b, perm, model), perm
    assert world.b.org.pk in _ids(administrator, "administer_organization", Organization)
    assert not _ids(administrator, "view_computeinstance", ComputeInstance) & a_instances
    # Expired: nothing but the orgs themselves.
    with time_machine.travel(timezone.now() + dt.timedelta(minutes=61), tick=False):
        assert _ids(reader, "view_computeinstance", ComputeInstance) == set()
        assert _ids(administrator, "administer_organization", Organization) == set()
