"""Who may still reach an instance, and making the cluster agree (losing a role loses the access).

tenancy sends ``access_changed`` whenever access may have shrunk (a role dropped by hand, by an IdP
group sync or a mapping's deletion; a member removed from the org; a user or an org (de)activated).
:func:`access_changed` re-checks, for each instance those users own or collaborate on:

- the **owner** keeps the instance's own permissions (and its kubeconfig) while they may see the
  instance's workspace; a **collaborator** while they may see it or are still a member of the org
  (collaborators may be any member of the org). Whoever no longer qualifies loses them for good: a
  collaborator's row goes, an owner's instance is marked *owner left* (``owner_left_at``) and stays,
  with its data and billing, for the workspace admins to keep or delete.
- a deactivated account or organization loses every access at once (``paas.authz`` refuses every
  permission of an inactive user or in an inactive org), while the grants stay dormant: reactivating
  brings them back, re-checked.

Either way the cluster follows on commit: :func:`access_sync` (on the cluster's agent) re-applies the
namespace's access objects for :func:`identities` only and deletes every other person's ServiceAccount
(:func:`stale_accounts`), which kills every token ever issued for it (bound tokens die with their
ServiceAccount). Should that task be lost, the periodic drift repair (``instances.drift``) deletes the
same stale ServiceAccounts. Instance-collaborator invitations riding on workspace invitations that the
change revoked (``revoked_invitations``) are dropped, audited.
"""

from django.db import connection
from django.db.models import Q
from django.utils import timezone

from instances.kubeproxy import credentials
from instances.models import Collaborator, CollaboratorInvitation, ComputeInstance
from instances.namespace import baseline_objects, identities
from instances.states import State
from inventory.routing import enqueue_for_cluster
from paas import authz
from paas.audit import audit_log

ACCESS_KINDS = ("ServiceAccount", "Role", "RoleBinding")
LIVE_STATES = (State.READY, State.PROVISIONING, State.FAILED)


OWNER_PERMISSIONS = (
    "view_computeinstance",
    "change_computeinstance",
    "delete_computeinstance",
    "use_instance",
)


def grant(user, instance: ComputeInstance) -> None:
    """The owner's permissions on this instance (its owner and each collaborator hold them): the rows
    django-guardian's ``assign_perm`` would write one by one, in one statement (a launch's hot path)."""
    from django.contrib.auth.models import Permission
    from django.contrib.contenttypes.models import ContentType

    from instances.models import ComputeInstanceUserObjectPermission

    table = ComputeInstanceUserObjectPermission._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (permission_id, user_id, content_object_id) "  # noqa: S608 (model tables)
            f"SELECT p.id, %s, %s FROM {Permission._meta.db_table} p "
            "WHERE p.content_type_id = %s AND p.codename = ANY(%s) "
            "ON CONFLICT DO NOTHING",  # granted already (a collaborator added again)
            [
                user.pk,
                instance.pk,
                ContentType.objects.get_for_model(ComputeInstance).pk,
                list(OWNER_PERMISSIONS),
            ],
        )
    authz.forget(user, support=False)  # (support grants are not changed by this)


def revoke(user, instance: ComputeInstance) -> None:
    """Take back what :func:`grant` gave."""
    from guardian.shortcuts import remove_perm

    for codename in OWNER_PERMISSIONS:
        remove_perm(codename, user, instance)
    authz.forget(user)
    credentials.revoke_lost(instance=instance, user_ids=[user.pk], reason="instance permissions revoked")


def keeps_access(user, instance: ComputeInstance, *, collaborator: bool) -> bool:
    """May ``user`` (an active user in an active org) still hold the instance's own permissions?"""
    from tenancy.services import is_member

    authz.forget(user)
    if authz.has_perm(user, "view_project", instance.project):
        return True
    return collaborator and is_member(user, instance.org)


def _lose(user, instance: ComputeInstance, *, reason: str) -> None:
    """Take the instance's own permissions from ``user`` for good (they no longer qualify)."""
    revoke(user, instance)
    if instance.owner_id == user.pk:
        ComputeInstance.objects.filter(pk=instance.pk).update(owner_left_at=timezone.now())
        instance.owner_left_at = timezone.now()
        action = "instance.owner_left"
    else:
        Collaborator.objects.filter(instance=instance, user=user).delete()
        action = "instance.collaborator_remove"
    audit_log(
        actor=None,
        action=action,
        target=instance,
        project=instance.project,
        details={"user": user.email, "via": reason},
    )


def access_changed(*, users=None, org=None, reason: str = "", revoked_invitations=(), **kwargs) -> None:
    """Receiver of ``tenancy.signals.access_changed`` (inside the change's transaction)."""
    if revoked_invitations:
        _drop_collaborator_invitations(revoked_invitations, reason=reason)
    instances = ComputeInstance.objects.exclude(state=State.DELETED).select_related(
        "org", "project__org", "owner", "cluster"
    )
    if org is not None:
        instances = instances.filter(org=org)
    if users is not None:
        ids = [user.pk for user in users]
        instances = instances.filter(Q(owner_id__in=ids) | Q(collaborators__user_id__in=ids)).distinct()
    for instance in instances:
        if instance.org.is_active:
            people = {} if instance.owner_left_at else {instance.owner_id: (instance.owner, False)}
            for row in instance.collaborators.select_related("user"):
                people[row.user_id] = (row.user, True)
            if users is not None:
                people = {pk: entry for pk, entry in people.items() if pk in ids}
            for user, collaborator in people.values():
                if user.is_active and not keeps_access(user, instance, collaborator=collaborator):
                    _lose(user, instance, reason=reason)
        credentials.revoke_lost(instance=instance, user_ids=ids if users is not None else None, reason=reason)
        sync_later(instance)


def _drop_collaborator_invitations(invitation_ids, *, reason: str) -> None:
    """The instance-collaborator invitations riding on revoked workspace invitations go, audited."""
    grants = CollaboratorInvitation.objects.filter(invitation_id__in=invitation_ids).select_related(
        "instance__project", "invitation"
    )
    for grant in grants:
        audit_log(
            actor=None,
            action="instance.collaborator_invite_revoke",
            target=grant.instance,
            project=grant.instance.project,
            details={"email": grant.invitation.email, "via": reason},
        )
    grants.delete()


def sync_later(instance: ComputeInstance) -> None:
    """Enqueue :func:`access_sync` for the instance's cluster once the change commits."""
    if instance.cluster_id and instance.namespace:
        enqueue_for_cluster(instance.cluster, "instances.tasks.access_sync", instance.pk)


def access_sync(*, instance_id: int) -> list[str]:
    """Worker side: the namespace's ServiceAccounts, Role and RoleBinding for :func:`identities` only;
    every other person's ServiceAccount of this instance is deleted. Returns the deleted names."""
    from instances import baseline
    from inventory import kube

    instance = ComputeInstance.objects.select_related("cluster", "org", "project", "owner").get(
        pk=instance_id
    )
    if not (instance.cluster_id and instance.namespace) or instance.state in (State.DELETING, State.DELETED):
        return []
    kubeconfig = instance.cluster.kubeconfig.reveal()
    if instance.state in LIVE_STATES:
        objects = [o for o in baseline_objects(instance, instance.namespace) if o["kind"] in ACCESS_KINDS]
        kube.apply(kubeconfig, objects, namespace=instance.namespace)
    selector = f"{baseline.LABEL_INSTANCE_ID}={instance.pk},{baseline.LABEL_MANAGED_BY}={baseline.MANAGED_BY}"
    found = kube.list_service_accounts(kubeconfig, instance.namespace, label_selector=selector)
    stale = stale_accounts(instance, found)
    delete_accounts(kubeconfig, instance, stale)
    return stale


def stale_accounts(instance: ComputeInstance, accounts: list[dict]) -> list[str]:
    """The names among ``accounts`` (ServiceAccounts of the instance's namespace, as dicts) that are a
    person's account of this instance (the platform's labels, the per-user name pattern) and belong to
    no one in :func:`identities`: people who lost their access. Sorted."""
    from instances import baseline
    from paas.platform_owned import USER_ACCOUNT

    wanted = {baseline.service_account_name(username) for username in identities(instance)}
    stale = []
    for account in accounts:
        metadata = account.get("metadata") or {}
        labels = metadata.get("labels") or {}
        name = metadata.get("name") or ""
        if (
            metadata.get("namespace", instance.namespace) == instance.namespace
            and labels.get(baseline.LABEL_INSTANCE_ID) == str(instance.pk)
            and labels.get(baseline.LABEL_MANAGED_BY) == baseline.MANAGED_BY
            and USER_ACCOUNT.match(name)
            and name not in wanted
        ):
            stale.append(name)
    return sorted(stale)


def delete_accounts(kubeconfig: str, instance: ComputeInstance, names: list[str]) -> None:
    """Delete these ServiceAccounts of the instance's namespace (every token issued for them dies)."""
    from inventory import kube

    kube.delete_objects(
        kubeconfig,
        [
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": name, "namespace": instance.namespace},
            }
            for name in names
        ],
    )
