"""``paas.authz.holds`` (the kubectl proxy's per-request permission check, one SQL query) answers what
``paas.authz.has_perm`` answers, for every user of both tenants, direct grants and grants through a
parent alike, and follows a deactivated org, a deactivated user and a removed grant at once."""

import datetime as dt

import pytest
import time_machine
from django.utils import timezone
from guardian.shortcuts import remove_perm

from instances import services
from instances.models import ComputeInstance
from paas import authz
from tenancy.models import Organization
from tenancy.support_models import SupportAccess
from tests.factories import ONE_A100, make_profile, make_synced_cluster
from tests.support.support import grant_support

PERMS = ("use_instance", "view_computeinstance", "change_computeinstance", "delete_computeinstance")


@pytest.fixture
def instance(world):
    make_synced_cluster(name="holds-c")
    profile = make_profile(
        actor=world.a.users["paas_admin_project"],
        project=world.a.project,
        manifests="apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: info\n",
        resource_groups=ONE_A100,
        name="holds",
        template="holds",
    )
    admin = world.a.users["workspace_admin"]
    launched = services.instance_launch(actor=admin, project=world.a.project, name="holds", profile=profile)
    services.collaborator_add(actor=admin, instance=launched, email=world.a.users["collaborator_rw"].email)
    return ComputeInstance.objects.get(pk=launched.pk)


def _everyone(world):
    return [world.operator, world.outsider, *world.a.users.values(), *world.b.users.values()]


def _agree(world, instance) -> set[tuple[str, str]]:
    """(user, perm) pairs where both say yes; fails where they disagree."""
    yes = set()
    for user in _everyone(world):
        user.refresh_from_db()
        authz.forget(user)
        for perm in PERMS:
            expected = authz.has_perm(user, perm, instance)
            assert authz.holds(user, perm, ComputeInstance, instance.pk) == expected, (user.username, perm)
            if expected:
                yes.add((user.username, perm))
    return yes


def test_holds_agrees_with_has_perm_and_follows_changes_at_once(world, instance):
    granted = _agree(world, instance)
    friend = world.a.users["collaborator_rw"]
    assert (friend.username, "use_instance") in granted  # a direct grant
    assert (world.a.users["workspace_admin"].username, "change_computeinstance") in granted  # via the project
    assert not {name for name, _ in granted} & {u.username for u in world.b.users.values()}

    remove_perm("use_instance", friend, instance)
    assert (friend.username, "use_instance") not in _agree(world, instance)

    friend.is_active = False
    friend.save(update_fields=["is_active"])
    assert not any(name == friend.username for name, _ in _agree(world, instance))

    Organization.objects.filter(pk=instance.org_id).update(is_active=False)
    instance = ComputeInstance.objects.get(pk=instance.pk)
    # Nobody inside a deactivated org, the operator neither (they still see the org itself, to reactivate
    # it), even with a support grant.
    grant_support(operator=world.operator, org=world.a.org, level="admin")
    assert _agree(world, instance) == set()
    assert authz.holds(world.operator, "view_organization", Organization, instance.org_id)


def test_holds_follows_support_access_read_admin_expiry_and_other_org(world, instance):
    operator = world.operator
    yes = _agree(world, instance)
    assert not any(name == operator.username for name, _ in yes)  # no support: nothing inside the org

    grant_support(operator=operator, org=world.a.org, level="read", minutes=30)
    operator_yes = {perm for name, perm in _agree(world, instance) if name == operator.username}
    assert operator_yes == {"view_computeinstance"}

    SupportAccess.objects.filter(user=operator).delete()
    grant_support(operator=operator, org=world.a.org, level="admin", minutes=30)
    operator_yes = {perm for name, perm in _agree(world, instance) if name == operator.username}
    # Exactly an org admin's permissions (derived through the org and the workspace).
    assert "view_computeinstance" in operator_yes
    assert operator_yes == {
        perm for perm in PERMS if authz.has_perm(world.a.users["org_admin"], perm, instance)
    }

    with time_machine.travel(timezone.now() + dt.timedelta(minutes=31), tick=False):
        assert not any(name == operator.username for name, _ in _agree(world, instance))


def test_support_access_to_another_org_gives_nothing_here(world, instance):
    grant_support(operator=world.operator, org=world.b.org, level="admin")
    assert not any(name == world.operator.username for name, _ in _agree(world, instance))
    grant_support(operator=world.operator, org=world.a.org, level="admin")
    SupportAccess.objects.filter(user=world.operator, org=world.a.org).update(state="revoked")
    assert not any(name == world.operator.username for name, _ in _agree(world, instance))
