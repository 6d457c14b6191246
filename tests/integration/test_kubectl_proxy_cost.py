"""The kubectl proxy's per-request check (``credentials.grant_for``) stays cheap and uncached: two
queries a request, and a change of access refuses the very next request (no permission cached between
requests). The benchmark (tests/benchmarks/bench_proxy.py) measures what it costs; this keeps it so."""

import hashlib

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from guardian.shortcuts import assign_perm, remove_perm

from instances import baseline, services
from instances.kubeproxy import credentials
from instances.models import ComputeInstance
from instances.states import State
from tenancy.models import Organization
from tests.factories import ONE_A100, make_profile, make_synced_cluster

MANIFESTS = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: info\n"


@pytest.fixture
def ready(world):
    """A ready instance of tenant A's workspace with a collaborator holding a proxy credential."""
    make_synced_cluster(name="cost-c")
    admin = world.a.users["workspace_admin"]
    profile = make_profile(
        actor=world.a.users["paas_admin_project"],
        project=world.a.project,
        manifests=MANIFESTS,
        resource_groups=ONE_A100,
        name="cost",
        template="cost",
    )
    instance = services.instance_launch(actor=admin, project=world.a.project, name="cost", profile=profile)
    ComputeInstance.objects.filter(pk=instance.pk).update(state=State.READY, namespace="cost-ns")
    instance.refresh_from_db()
    friend = world.a.users["collaborator_rw"]
    services.collaborator_add(actor=admin, instance=instance, email=friend.email)
    _credential, token = credentials.credential_issue(actor=friend, instance=instance)
    return instance, friend, token


def test_a_request_costs_two_queries_and_the_grant_is_complete(ready):
    instance, friend, token = ready
    first = credentials.grant_for(token=token, instance_id=instance.pk)  # (also stamps last_used_at)
    assert first is not None
    with CaptureQueriesContext(connection) as queries:
        grant = credentials.grant_for(token=token, instance_id=instance.pk)
    assert len(queries) == 2, [q["sql"] for q in queries]
    assert grant == first
    assert (grant.user_id, grant.instance_id, grant.instance_name) == (friend.pk, instance.pk, "cost")
    assert grant.org_id == instance.project.org_id and grant.project_id == instance.project_id
    assert grant.cluster_id == instance.cluster_id and grant.cluster_name == "cost-c"
    with connection.cursor() as cursor:  # the key digests the stored ciphertext: nothing decrypted
        cursor.execute("SELECT kubeconfig FROM inventory_cluster WHERE id = %s", [instance.cluster_id])
        sealed = cursor.fetchone()[0]
    assert sealed != instance.cluster.kubeconfig.reveal()
    assert grant.cluster_key == hashlib.sha256(sealed.encode()).hexdigest()[:32]
    assert grant.impersonate_user == (
        f"system:serviceaccount:cost-ns:{baseline.service_account_name(friend.username)}"
    )
    assert grant.user_repr == friend.email and grant.via == "kubeconfig"


def test_losing_the_permission_refuses_the_very_next_request(ready):
    instance, friend, token = ready
    assert credentials.grant_for(token=token, instance_id=instance.pk) is not None
    remove_perm("use_instance", friend, instance)  # (the credential itself stays unrevoked)
    assert credentials.grant_for(token=token, instance_id=instance.pk) is None
    assign_perm("use_instance", friend, instance)
    assert credentials.grant_for(token=token, instance_id=instance.pk) is not None
    Organization.objects.filter(pk=instance.org_id).update(is_active=False)
    assert credentials.grant_for(token=token, instance_id=instance.pk) is None


def test_another_instance_a_wrong_secret_or_a_stopped_instance_are_refused(ready):
    instance, _friend, token = ready
    assert credentials.grant_for(token=token, instance_id=instance.pk + 1) is None
    assert (
        credentials.grant_for(
            token=token[:-2] + ("aa" if token[-2:] != "aa" else "bb"), instance_id=instance.pk
        )
        is None
    )
    ComputeInstance.objects.filter(pk=instance.pk).update(state=State.STOPPED)
    assert credentials.grant_for(token=token, instance_id=instance.pk) is None
