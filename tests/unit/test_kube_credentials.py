"""The kubectl proxy's credentials (instances/kubeproxy/credentials.py and selectors.py): the token's
format, only its digest stored, expiry, revocation (by hand, and when access changes: a removed
collaborator, a deactivated account or organization, never revived by reactivation), who sees and
revokes which, and what the audit trail says. The proxy itself is attacked in
tests/integration/test_kubectl_proxy_security.py."""

import hashlib
import re
from datetime import timedelta

import pytest
import yaml
from django.db import transaction
from django.utils import timezone

from instances import services
from instances.kubeproxy import credentials
from instances.kubeproxy import selectors as credential_selectors
from instances.models import ComputeInstance, KubeCredential
from instances.states import State, transition
from paas.errors import Conflict, Forbidden, NotFound
from paas.models import AuditEvent
from tenancy.services import org_update, user_update
from tests.factories import ONE_A100, make_profile, make_synced_cluster
from tests.support.instances import launch

MANIFESTS = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ instance.name }}-info\ndata:\n  a: b\n"
TOKEN = re.compile(r"^gpk_(?P<prefix>[0-9a-f]{12})_[A-Za-z0-9_-]{43}$")


def _ready(world, name: str = "kc") -> ComputeInstance:
    """An instance as its deploy leaves it (ready, with a namespace), on a cluster nothing dials."""
    admin = world.a.users["org_admin"]
    profile = make_profile(
        actor=admin,
        project=world.a.project,
        manifests=MANIFESTS,
        resource_groups=ONE_A100,
        template=name,
        name=name,
    )
    make_synced_cluster(name=f"{name}-c")
    instance = launch(world, profile, name)
    with transaction.atomic():
        instance = ComputeInstance.objects.select_for_update().get(pk=instance.pk)
        instance.namespace = f"i-{name}-ns"
        instance.save(update_fields=["namespace"])
        transition(instance, State.PROVISIONING)
        transition(instance, State.READY)
    return ComputeInstance.objects.select_related("cluster", "project").get(pk=instance.pk)


@pytest.fixture
def ready(world):
    return world, _ready(world)


def _token(kubeconfig: str) -> str:
    return yaml.safe_load(kubeconfig)["users"][0]["user"]["token"]


def _audits(action: str, instance) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action, target_id=str(instance.pk)).order_by("seq"))


def _add_collaborator(world, instance):
    friend = world.a.users["collaborator_rw"]
    services.collaborator_add(actor=instance.owner, instance=instance, email=friend.email)
    return friend


def test_the_token_format_and_only_its_digest_is_stored(ready, settings):
    _world, instance = ready
    settings.PAAS_KUBE_PROXY_URL = "https://paas.example.test/"
    owner = instance.owner
    config = yaml.safe_load(services.kubeconfig_issue(actor=owner, instance=instance))
    token = config["users"][0]["user"]["token"]
    match = TOKEN.match(token)
    assert match, token
    row = KubeCredential.objects.get(prefix=match["prefix"])
    assert row.user == owner and row.instance == instance and row.via == "kubeconfig"
    assert row.digest == hashlib.sha256(token.encode()).hexdigest()
    secret = token.rsplit("_", 1)[1]
    stored = KubeCredential.objects.filter(pk=row.pk).values().get()
    assert not any(secret in str(value) for value in stored.values())  # the token is nowhere at rest
    # The kubeconfig points at the platform's proxy for this instance; nothing of the cluster's.
    assert config["clusters"][0]["cluster"] == {
        "server": f"https://paas.example.test/k8s/instances/{instance.pk}"
    }
    assert config["contexts"][0]["context"]["namespace"] == instance.namespace
    cluster_secret = instance.cluster.kubeconfig.reveal()
    assert instance.cluster.server not in yaml.safe_dump(config) and cluster_secret not in yaml.safe_dump(
        config
    )
    # Issued audited, with the credential's public prefix and never its token.
    (event,) = _audits("instance.kubeconfig", instance)
    assert event.actor == owner and event.details["credential"] == f"gpk_{row.prefix}"
    assert secret not in str(event.details)
    # Two downloads, two different credentials.
    again = _token(services.kubeconfig_issue(actor=owner, instance=instance))
    assert again != token and KubeCredential.objects.filter(instance=instance).count() == 2


def test_expiry_follows_the_setting_and_an_expired_token_grants_nothing(ready, settings):
    _world, instance = ready
    settings.PAAS_KUBECONFIG_TTL_MINUTES = 7
    before = timezone.now()
    token = _token(services.kubeconfig_issue(actor=instance.owner, instance=instance))
    row = KubeCredential.objects.get()
    assert before + timedelta(minutes=7) <= row.expires_at <= timezone.now() + timedelta(minutes=7)
    assert credentials.grant_for(token=token, instance_id=instance.pk) is not None
    KubeCredential.objects.filter(pk=row.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert credentials.grant_for(token=token, instance_id=instance.pk) is None
    assert list(credential_selectors.credentials_visible(actor=instance.owner, instance=instance)) == []
    # A shell's credential has its own lifetime.
    shell, _ = credentials.credential_issue(
        actor=instance.owner, instance=instance, via="shell", ttl=timedelta(minutes=3)
    )
    assert shell.via == "shell" and shell.expires_at <= timezone.now() + timedelta(minutes=3)


def test_the_grant_checks_everything_and_records_the_last_use(ready):
    world, instance = ready
    token = _token(services.kubeconfig_issue(actor=instance.owner, instance=instance))
    row = KubeCredential.objects.get()
    assert row.last_used_at is None
    grant = credentials.grant_for(token=token, instance_id=instance.pk)
    assert grant.user_id == instance.owner.pk and grant.instance_id == instance.pk
    assert grant.namespace == instance.namespace and grant.cluster_id == instance.cluster_id
    assert grant.impersonate_user == f"system:serviceaccount:{instance.namespace}:{grant.service_account}"
    row.refresh_from_db()
    assert row.last_used_at is not None
    other = _ready(world, "kc2")
    prefix = TOKEN.match(token)["prefix"]
    tampered = token[:-1] + ("A" if token[-1] != "A" else "B")
    for bad, instance_id in (
        (token, other.pk),  # issued for another instance
        (tampered, instance.pk),
        (f"gpk_{prefix}_", instance.pk),
        (f"gpk_{'0' * 12}_{token.rsplit('_', 1)[1]}", instance.pk),  # a prefix of no credential
        (token.replace("gpk_", "gpx_", 1), instance.pk),
        ("", instance.pk),
        ("gpk_", instance.pk),
        ("gpk__x", instance.pk),
        (f"gpk_{'a' * 17}_x", instance.pk),
        (f"Bearer {token}", instance.pk),
        (token + "\x00", instance.pk),
    ):
        assert credentials.grant_for(token=bad, instance_id=instance_id) is None, bad
    # Not ready: stopped or being deleted, no grant (and again once ready).
    with transaction.atomic():
        locked = ComputeInstance.objects.select_for_update().get(pk=instance.pk)
        transition(locked, State.DELETING)
    assert credentials.grant_for(token=token, instance_id=instance.pk) is None


def test_who_sees_and_revokes_which_credentials(ready):
    world, instance = ready
    owner = instance.owner
    friend = _add_collaborator(world, instance)
    reader = world.a.users["collaborator_ro"]  # sees the workspace's instances, may not change them
    owner_token = _token(services.kubeconfig_issue(actor=owner, instance=instance))
    services.kubeconfig_issue(actor=friend, instance=instance)
    own, _ = credentials.credential_issue(actor=reader, instance=instance)
    mine = KubeCredential.objects.get(user=owner)
    # Who may change the instance sees everyone's; anyone else only their own.
    assert {c.user for c in credential_selectors.credentials_visible(actor=owner, instance=instance)} == {
        owner,
        friend,
        reader,
    }
    assert list(credential_selectors.credentials_visible(actor=reader, instance=instance)) == [own]
    # Forbidden and missing alike.
    for credential_id in (mine.pk, 10**30, -1, "x", None, "1 OR 1=1", 0):
        with pytest.raises(NotFound):
            credential_selectors.access_credential(
                actor=reader, instance=instance, credential_id=credential_id
            )
    other = _ready(world, "kc3")
    with pytest.raises(NotFound):  # a credential of this instance reached through another's path
        credential_selectors.access_credential(actor=owner, instance=other, credential_id=mine.pk)
    # The service refuses another's credential to someone who may not change the instance.
    with pytest.raises(Forbidden):
        credentials.credential_revoke(actor=reader, credential=mine)
    # Revoke: the grant ends at once, one audit event even when revoked twice.
    credentials.credential_revoke(actor=reader, credential=own)
    credentials.credential_revoke(actor=owner, credential=mine)
    credentials.credential_revoke(actor=owner, credential=mine)
    assert credentials.grant_for(token=owner_token, instance_id=instance.pk) is None
    events = _audits("instance.kubeconfig_revoke", instance)
    assert [(e.actor, e.details["credential"]) for e in events] == [
        (reader, f"gpk_{own.prefix}"),
        (owner, f"gpk_{mine.prefix}"),
    ]
    assert {c.user for c in credential_selectors.credentials_visible(actor=owner, instance=instance)} == {
        friend
    }


def test_kubeconfig_refused_to_outsiders_and_before_ready(world):
    instance = _ready(world)
    with pytest.raises((Forbidden, NotFound)):
        services.kubeconfig_issue(actor=world.b.users["org_admin"], instance=instance)
    with pytest.raises((Forbidden, NotFound)):
        services.kubeconfig_issue(actor=world.a.users["collaborator_ro"], instance=instance)
    with transaction.atomic():
        locked = ComputeInstance.objects.select_for_update().get(pk=instance.pk)
        transition(locked, State.DELETING)
    instance.refresh_from_db()
    with pytest.raises(Conflict):
        services.kubeconfig_issue(actor=instance.owner, instance=instance)
    assert not KubeCredential.objects.exists()


def test_a_removed_collaborator_loses_their_credentials_for_good(ready):
    world, instance = ready
    friend = _add_collaborator(world, instance)
    friend_token = _token(services.kubeconfig_issue(actor=friend, instance=instance))
    owner_token = _token(services.kubeconfig_issue(actor=instance.owner, instance=instance))
    services.collaborator_remove(actor=instance.owner, instance=instance, user=friend)
    revoked = KubeCredential.objects.get(user=friend)
    assert revoked.revoked_at is not None
    assert credentials.grant_for(token=friend_token, instance_id=instance.pk) is None
    assert credentials.grant_for(token=owner_token, instance_id=instance.pk) is not None  # untouched
    (event,) = _audits("instance.kubeconfig_revoke", instance)
    assert event.actor is None and event.details["credentials"] == [f"gpk_{revoked.prefix}"]
    assert event.details["users"] == [friend.email]
    # Added back: the old credential stays dead; a new download works.
    services.collaborator_add(actor=instance.owner, instance=instance, email=friend.email)
    assert credentials.grant_for(token=friend_token, instance_id=instance.pk) is None
    fresh = _token(services.kubeconfig_issue(actor=friend, instance=instance))
    assert credentials.grant_for(token=fresh, instance_id=instance.pk) is not None


def test_a_deactivated_account_is_revoked_and_not_revived_by_reactivation(ready):
    world, instance = ready
    friend = _add_collaborator(world, instance)
    token = _token(services.kubeconfig_issue(actor=friend, instance=instance))
    user_update(actor=world.operator, user=friend, is_active=False)
    assert KubeCredential.objects.get(user=friend).revoked_at is not None
    assert credentials.grant_for(token=token, instance_id=instance.pk) is None
    (event,) = _audits("instance.kubeconfig_revoke", instance)
    assert event.details["users"] == [friend.email] and event.details["via"] == "account deactivated"
    user_update(actor=world.operator, user=friend, is_active=True)
    assert credentials.grant_for(token=token, instance_id=instance.pk) is None
    assert KubeCredential.objects.get(user=friend).revoked_at is not None
    assert len(_audits("instance.kubeconfig_revoke", instance)) == 1


def test_a_deactivated_organization_revokes_every_credential(ready):
    world, instance = ready
    friend = _add_collaborator(world, instance)
    tokens = [_token(services.kubeconfig_issue(actor=u, instance=instance)) for u in (instance.owner, friend)]
    org_update(actor=world.operator, org=world.a.org, is_active=False)
    assert not KubeCredential.objects.filter(revoked_at__isnull=True).exists()
    (event,) = _audits("instance.kubeconfig_revoke", instance)
    assert event.details["users"] == sorted([instance.owner.email, friend.email])
    org_update(actor=world.operator, org=world.a.org, is_active=True)
    assert all(credentials.grant_for(token=t, instance_id=instance.pk) is None for t in tokens)


def test_revoke_lost_leaves_whoever_keeps_access(ready):
    _world, instance = ready
    services.kubeconfig_issue(actor=instance.owner, instance=instance)
    assert credentials.revoke_lost(instance=instance, reason="test") == 0
    assert not _audits("instance.kubeconfig_revoke", instance)
