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


# --- the API and the instance page ----------------------------------------------------------------

FIELDS = {"id", "user", "via", "created_at", "expires_at", "last_used_at", "revoked"}


def test_the_api_lists_and_revokes(ready, api):
    world, instance = ready
    owner, friend = instance.owner, _add_collaborator(world, instance)
    reader, outsider = world.a.users["collaborator_ro"], world.b.users["org_admin"]
    tokens = [_token(services.kubeconfig_issue(actor=u, instance=instance)) for u in (owner, friend)]
    url = f"/api/v1/instances/{instance.pk}/kube-credentials/"
    listed = api.as_user(owner).get(url)
    assert listed.status_code == 200
    assert [set(row) for row in listed.json()] == [FIELDS, FIELDS]
    assert {row["user"]["email"] for row in listed.json()} == {owner.email, friend.email}
    body = listed.content.decode()
    for token in tokens:  # neither the token, nor its secret part, nor the digest
        assert token.rsplit("_", 1)[1] not in body and hashlib.sha256(token.encode()).hexdigest() not in body
    assert api.as_user(reader).get(url).json() == []  # only their own, and they have none
    assert api.as_user(outsider).get(url).status_code == 404
    assert api.as_user(owner).get(f"/api/v1/instances/{10**30}/kube-credentials/").status_code == 404
    friends = KubeCredential.objects.get(user=friend)
    revoke = f"{url}{friends.pk}/revoke/"
    # Forbidden and missing alike.
    assert api.as_user(reader).post(revoke).status_code == 404
    assert api.as_user(outsider).post(revoke).status_code == 404
    assert api.as_user(owner).post(f"{url}{10**30}/revoke/").status_code == 404
    assert api.as_user(owner).get(revoke).status_code == 405
    assert KubeCredential.objects.get(pk=friends.pk).revoked_at is None
    # The owner revokes the collaborator's (audited); then it is gone from the list and a 404.
    answer = api.as_user(owner).post(revoke, {"junk": ["x"] * 3}, format="json")
    assert answer.status_code == 200 and answer.json()["revoked"] is True and set(answer.json()) == FIELDS
    assert credentials.grant_for(token=tokens[1], instance_id=instance.pk) is None
    assert api.as_user(owner).post(revoke).status_code == 404
    assert [row["user"]["email"] for row in api.as_user(owner).get(url).json()] == [owner.email]
    (event,) = _audits("instance.kubeconfig_revoke", instance)
    assert event.actor == owner and event.details == {
        "credential": f"gpk_{friends.prefix}",
        "user": friend.email,
    }


def test_the_instance_page_lists_and_revokes(ready, client):
    from django.test import Client

    world, instance = ready
    owner, friend = instance.owner, _add_collaborator(world, instance)
    services.kubeconfig_issue(actor=owner, instance=instance)
    services.kubeconfig_issue(actor=friend, instance=instance)
    mine, friends = KubeCredential.objects.get(user=owner), KubeCredential.objects.get(user=friend)
    client.force_login(owner)
    page = client.get(f"/instances/{instance.pk}/")
    html = page.content.decode()
    assert page.status_code == 200 and 'id="kube-credentials"' in html and "kubectl access" in html
    assert (
        f"/kube-credentials/{friends.pk}/revoke/" in html and f"/kube-credentials/{mine.pk}/revoke/" in html
    )
    assert "platform's kubectl proxy" in html and "audited" in html and "expires after one hour" in html
    # Without htmx: revoked, back to the page with a message.
    answer = client.post(f"/instances/{instance.pk}/kube-credentials/{friends.pk}/revoke/", follow=True)
    assert answer.redirect_chain[-1][0].endswith(f"/instances/{instance.pk}/#kube-credentials")
    assert f"The kubectl credential of {friend.email} is revoked." in answer.content.decode()
    assert KubeCredential.objects.get(pk=friends.pk).revoked_at is not None
    # Again (revoked already): an error on the form, nothing else happens.
    again = client.post(
        f"/instances/{instance.pk}/kube-credentials/{friends.pk}/revoke/", HTTP_HX_REQUEST="true"
    )
    assert again.status_code == 200 and 'role="alert"' in again.content.decode()
    assert "no longer live" in again.content.decode()
    # With htmx: the section comes back without the revoked credential.
    section = client.post(
        f"/instances/{instance.pk}/kube-credentials/{mine.pk}/revoke/", HTTP_HX_REQUEST="true"
    )
    assert section.status_code == 200 and section.content.decode().lstrip().startswith(
        '<section id="kube-credentials"'
    )
    assert "No live kubectl credentials." in section.content.decode()
    assert len(_audits("instance.kubeconfig_revoke", instance)) == 2
    # A reader sees only their own (none), and another's credential answers as a missing one.
    services.kubeconfig_issue(actor=owner, instance=instance)
    fresh = KubeCredential.objects.get(user=owner, revoked_at__isnull=True)
    reader = Client()
    reader.force_login(world.a.users["collaborator_ro"])
    assert (
        f"/kube-credentials/{fresh.pk}/revoke/"
        not in reader.get(f"/instances/{instance.pk}/").content.decode()
    )
    refused = reader.post(
        f"/instances/{instance.pk}/kube-credentials/{fresh.pk}/revoke/", HTTP_HX_REQUEST="true"
    )
    assert "no longer live" in refused.content.decode()
    assert KubeCredential.objects.get(pk=fresh.pk).revoked_at is None
    outsider = Client()
    outsider.force_login(world.b.users["org_admin"])
    assert outsider.post(f"/instances/{instance.pk}/kube-credentials/{fresh.pk}/revoke/").status_code == 404
    # A POST needs the CSRF token; a GET changes nothing.
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(owner)
    assert strict.post(f"/instances/{instance.pk}/kube-credentials/{fresh.pk}/revoke/").status_code == 403
    assert client.get(f"/instances/{instance.pk}/kube-credentials/{fresh.pk}/revoke/").status_code == 405
    assert KubeCredential.objects.get(pk=fresh.pk).revoked_at is None
