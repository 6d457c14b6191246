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
namespace's access objects for :func:`identities` only and deletes every other person's ServiceAccount,
which kills every token ever issued for it (bound tokens die with their ServiceAccount).
"""

from django.db.models import Q
from django.utils import timezone

from instances.models import Collaborator, ComputeInstance
from instances.states import State
from inventory.services import enqueue_for_cluster
from paas import authz
from paas.audit import audit_log

ACCESS_KINDS = ("ServiceAccount", "Role", "RoleBinding")
LIVE_STATES = (State.READY, State.PROVISIONING, State.FAILED)


def identities(instance: ComputeInstance) -> list[str]:
    """The usernames that get a ServiceAccount (and so a kubeconfig) in the instance's namespace now:
    the owner unless they left, and the collaborators; active accounts of an active org only."""
    if not instance.org.is_active:
        return []
    users = []
    if instance.owner_left_at is None and instance.owner.is_active:
        users.append(instance.owner.username)
    # Through ``all()`` so that a prefetch (``deployer.COLLABORATOR_USERS``) saves the query per instance.
    users += [c.user.username for c in instance.collaborators.all() if c.user.is_active]
    return users


def keeps_access(user, instance: ComputeInstance, *, collaborator: bool) -> bool:
    """May ``user`` (an active user in an active org) still hold the instance's own permissions?"""
    from tenancy.services import is_member

    authz.forget(user)
    if authz.has_perm(user, "view_project", instance.project):
        return True
    return collaborator and is_member(user, instance.org)


def _lose(user, instance: ComputeInstance, *, reason: str) -> None:
    """Take the instance's own permissions from ``user`` for good (they no longer qualify)."""
    from instances.services import _revoke

    _revoke(user, instance)
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


def access_changed(*, users=None, org=None, reason: str = "", **kwargs) -> None:
    """Receiver of ``tenancy.signals.access_changed`` (inside the change's transaction)."""
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
        sync_later(instance)


def sync_later(instance: ComputeInstance) -> None:
    """Enqueue :func:`access_sync` for the instance's cluster once the change commits."""
    if instance.cluster_id and instance.namespace:
        enqueue_for_cluster(instance.cluster, "instances.tasks.access_sync", instance.pk)


def access_sync(*, instance_id: int) -> list[str]:
    """Worker side: the namespace's ServiceAccounts, Role and RoleBinding for :func:`identities` only;
    every other person's ServiceAccount of this instance is deleted. Returns the deleted names."""
    from kubernetes import client as k8s

    from instances import baseline, deployer
    from inventory import kube

    instance = ComputeInstance.objects.select_related("cluster", "org", "project", "owner").get(
        pk=instance_id
    )
    if not (instance.cluster_id and instance.namespace) or instance.state in (State.DELETING, State.DELETED):
        return []
    kubeconfig = instance.cluster.kubeconfig.reveal()
    if instance.state in LIVE_STATES:
        objects = [
            o for o in deployer.baseline_objects(instance, instance.namespace) if o["kind"] in ACCESS_KINDS
        ]
        kube.apply(kubeconfig, objects, namespace=instance.namespace)
    wanted = {baseline.service_account_name(username) for username in identities(instance)}
    selector = f"{baseline.LABEL_INSTANCE_ID}={instance.pk},{baseline.LABEL_MANAGED_BY}={baseline.MANAGED_BY}"
    with kube.api_client(kubeconfig) as api:
        accounts = k8s.CoreV1Api(api).list_namespaced_service_account(
            instance.namespace, label_selector=selector
        )
    stale = sorted(
        a.metadata.name
        for a in accounts.items
        if a.metadata.name.startswith("u-") and a.metadata.name not in wanted
    )
    kube.delete_objects(
        kubeconfig,
        [
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": name, "namespace": instance.namespace},
            }
            for name in stale
        ],
    )
    return stale
