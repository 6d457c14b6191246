"""Every write on compute instances: launch (quota-safe, placed by the matchmaker), state changes,
runs, collaborators and delete. Workers call the ``*_execute`` functions through ``instances.tasks``."""

from django.db import IntegrityError, transaction
from django.db.models import prefetch_related_objects
from django.utils import timezone

from catalog.models import ComputeProfile
from catalog.selectors import catalog_for
from instances import access, launch_decision, pool_claims, pool_quota, selectors
from instances.applications import applications_deleting_with
from instances.capacity import capacity_place, capacity_place_and_reserve
from instances.launch_checks import launch_checks_run
from instances.models import ComputeInstance, Run
from instances.quota import profile_totals
from instances.secret_outputs import read_secret_output
from instances.service_instances import services_deleting_with
from instances.states import State, transition
from inventory.models import Cluster
from inventory.routing import enqueue_for_cluster, enqueue_on, queue_for_cluster
from paas import authz, metrics
from paas.audit import audit_log
from paas.errors import Conflict, Forbidden, NotFound, ValidationFailed
from paas.validation import is_dns_label
from tenancy.models import Project

# What quotas count and refuse lives in instances.quota (GPU quotas count MIG slices as fractions of a
# GPU); what active instances hold and what a profile asks of the matchmaker, in instances.selectors.


# --- launch -----------------------------------------------------------------------------------------


def instance_name_check(*, project: Project, name: str) -> str:
    """The name, stripped, if it may name a new instance in the workspace (the portal's first step asks
    early; a concurrent launch of the same name is refused by the unique constraint at the INSERT)."""
    name = (name or "").strip()
    if not is_dns_label(name):
        raise ValidationFailed(
            "Invalid name.",
            fields={
                "name": "Lowercase letters, digits and hyphens, at most 63, "
                "starting and ending with a letter or digit."
            },
        )
    if ComputeInstance.objects.filter(project=project, name=name).exclude(state=State.DELETED).exists():
        raise ValidationFailed(
            "Invalid name.", fields={"name": f"An instance named {name!r} exists in this workspace already."}
        )
    return name


@metrics.observe_launch("compute")
@transaction.atomic
def instance_launch(
    *, actor, project: Project, name: str, profile: ComputeProfile, description: str = ""
) -> ComputeInstance:
    """Launch a compute profile into a workspace.

    Everything that does not depend on concurrent launches runs first, without a lock: the name, the
    catalog, the snapshot, the placement (or the claim of a warm-pool standby), what the instance will
    hold, and the higher layers' launch checks (billing's budget stop). Then the rows that concern no
    other launch: the instance (its meter with it), its first run and the owner's permissions. Then
    the decision, last: the chosen cluster's capacity reservation (re-placed when another launch took
    it meanwhile) and one conditional statement on the usage counters (``instances.launch_decision``)
    against the workspace's and org's quotas and the owner's instance limits; refused, it says which
    limit with the numbers ("Over quota: Workspace quota of …") and everything rolls back. The audit
    event (one INSERT, sealed after commit) and the deploy, enqueued on commit for the agent that
    reaches the cluster, follow. The reservation and counter rows are the only rows this transaction
    locks that other launches wait for (lock order: cluster, org, workspace, user; the standby's ``SKIP
    LOCKED`` claim never waits), so launches wait for one another only for that decision and the commit.

    A profile with the warm-pool strategy first claims a ready standby instance built from the same
    snapshot (``instances.pool_claims``): the instance takes over its namespace and cluster, its first
    run is the hand-over (run at once on commit), and the loop is enqueued to refill the pool. The
    decision and launch checks are the same either way.
    """
    authz.require(
        actor, "manage_instances", project, message="You may not launch instances in this workspace."
    )
    name = instance_name_check(project=project, name=name)
    if not catalog_for(ComputeProfile, project).filter(pk=profile.pk).exists():
        raise ValidationFailed(
            "That compute profile is not in this workspace's catalog.",
            fields={"profile": "Choose a published profile of this workspace's catalog."},
        )
    limits = launch_decision.limits_for(project=project, user=actor)
    # (Read once: the snapshot, the placement request and the totals all walk the resource groups.)
    prefetch_related_objects([profile], "resource_groups")
    snapshot = pool_claims.launch_snapshot(profile)
    # A warm-pool profile claims a ready standby instance built from this very snapshot (skip-locked:
    # concurrent launches take different ones); none ready: on demand, placed by the matchmaker.
    standby = None
    if profile.allocation_strategy == ComputeProfile.Allocation.WARM_POOL:
        standby = pool_claims.claim(
            profile, org_id=project.org_id, digest=pool_claims.snapshot_digest(snapshot)
        )
    request = placement = None
    if standby is not None:
        cluster = standby.cluster  # (its capacity moves to the instance: the cluster's row is unchanged)
    else:
        # Placed first (reads only): the parent GPU model of a MIG slice (what per-model limits count)
        # is known once the cluster is.
        request = selectors.placement_request(profile, project.org_id)
        placement = capacity_place(request)
        cluster = Cluster.objects.get(name=placement.cluster) if placement.cluster else None
    want = profile_totals(profile, cluster_id=cluster.pk if cluster else None)
    if cluster is None:
        _no_capacity(project=project, actor=actor, want=want, limits=limits, placement=placement)
    # Higher layers' rules (budgets, limits) that do not depend on concurrent launches
    # (instances.launch_checks): before the decision, outside any lock.
    launch_checks_run(
        actor=actor, project=project, profile=profile, cluster=cluster, totals=want, kind="compute"
    )
    try:
        instance = ComputeInstance.objects.create(
            org=project.org,
            project=project,
            name=name,
            description=description or "",
            owner=actor,
            profile=profile,
            snapshot=snapshot,
            cluster=cluster,
            placement=placement.as_dict() if placement else _claimed_placement(standby),
            namespace=standby.namespace if standby else "",
            from_warm_pool=standby is not None,
            **want,
        )
    except IntegrityError as exc:
        # A concurrent launch took the name since the check above (the partial unique constraint).
        if "instances_name_unique_in_project" not in str(exc):
            raise
        raise ValidationFailed(
            "Invalid name.", fields={"name": f"An instance named {name!r} exists in this workspace already."}
        ) from exc
    run = Run.objects.create(instance=instance, kind=Run.Kind.CLAIM if standby else Run.Kind.DEPLOY)
    access.grant(actor, instance)  # the owner's own access (and kubeconfig) to this instance
    if standby is not None:
        pool_claims.mark_claimed(standby, instance)
        # Registered before the audit event's checkpoint callback: the hand-over runs first on commit
        # (the instance is ready sooner), the checkpoint is still written before the request answers.
        pool_claims.after_claim(run, cluster)
    else:  # the deploy's queue: read now, outside the critical section
        queue = queue_for_cluster(cluster)
    # The critical section, last: the cluster's capacity, then the quotas and the owner's limits on
    # the counters.
    if standby is None:
        placement, reserved = capacity_place_and_reserve(
            request=request, placement=placement, cluster=cluster, instance_id=instance.pk
        )
        if reserved is None:
            _no_capacity(project=project, actor=actor, want=want, limits=limits, placement=placement)
        if reserved.pk != cluster.pk:  # placed elsewhere meanwhile: its MIG slices' parents may differ
            cluster, want = reserved, profile_totals(profile, cluster_id=reserved.pk)
            queue = queue_for_cluster(cluster)
            _moved(instance, cluster=cluster, placement=placement, want=want)
    launch_decision.take(project=project, user=actor, want=want, limits=limits)
    if standby is not None:
        # Its GPUs leave the pool quota with the claim: after the decision, so that the pool's usage
        # row is locked from here to the commit only.
        pool_quota.standby_left(standby)
    details = {
        "profile": profile.name,
        "cluster": cluster.name,
        "gpus": want["gpus"],
        "gpu_units": want["gpu_units"],
    }
    if standby is not None:
        details["warm_pool"] = {"standby": standby.namespace, "pool": standby.pool_id}
    elif profile.allocation_strategy == ComputeProfile.Allocation.WARM_POOL:
        details["warm_pool"] = {"standby": None}  # a miss: no standby ready, launched on demand
    audit_log(actor=actor, action="instance.launch", target=instance, project=project, details=details)
    if standby is None:
        enqueue_on(queue, "instances.tasks.run_execute", run.pk)
    return instance


def _moved(instance: ComputeInstance, *, cluster: Cluster, placement, want: dict) -> None:
    """The launch was placed again (its first cluster's capacity was taken meanwhile): the new
    instance's row follows, before anything reads it (its meter follows its ``post_save``)."""
    instance.cluster = cluster
    instance.placement = placement.as_dict()
    for field, value in want.items():
        setattr(instance, field, value)
    instance.save(update_fields=["cluster", "placement", *want])


def _no_capacity(*, project, actor, want, limits, placement) -> None:
    """Refuse a launch nothing can place now: over quota is said first (read from the counters, nothing
    taken), then "no capacity" with the matchmaker's explanation."""
    launch_decision.refuse_if_over(project=project, user=actor, want=want, limits=limits)
    raise Conflict("No cluster has capacity for this profile now. " + placement.explain(), code="no_capacity")


def _claimed_placement(standby) -> dict:
    """The placement explanation of an instance that claimed a standby instance."""
    return {
        "cluster": standby.cluster.name,
        "warm_pool": True,
        "explanation": f"Claimed the ready standby instance {standby.namespace} of the "
        f"{standby.snapshot.get('name', 'profile')} warm pool on {standby.cluster.name} "
        f"(placed there when it was built: {standby.placement.get('explanation', 'n/a')}).",
    }


# --- collaborators, retry, delete -------------------------------------------------------------------


def _require_manage(actor, instance: ComputeInstance) -> None:
    authz.require(actor, "delete_computeinstance", instance, message="You may not change this instance.")


class OutsiderRefused(Forbidden):
    """Adding someone outside the org needs the right to invite to it (a form error on the page)."""


@transaction.atomic
def collaborator_add(*, actor, instance: ComputeInstance, email: str):
    """Give someone the owner's access to this instance.

    A member of the org (matched on a verified email only) gets it at once. Anyone else, with an account
    elsewhere on the platform or none, is invited to the workspace as a read-only collaborator and added
    on accepting; only someone who may invite to the org (an org admin) may do that, in their own name.
    The answer for an outsider is the same whether or not the address has an account: nothing here tells
    a caller who is on the platform. Returns the new collaborator, or None when an invitation went out.
    """
    from instances.models import Collaborator, CollaboratorInvitation
    from tenancy.models import Invitation, User
    from tenancy.roles import Role
    from tenancy.services import invitation_create, is_member

    _require_manage(actor, instance)
    org = instance.project.org
    email = (email or "").strip()
    user = User.objects.filter(email__iexact=email, is_active=True, email_verified=True).first()
    if user is not None and is_member(user, org):
        owner = user.pk == instance.owner_id and instance.owner_left_at is None  # a leaver may come back
        if owner or Collaborator.objects.filter(instance=instance, user=user).exists():
            raise Conflict(f"{user} has access to {instance.name} already.")
        return _add_collaborator(actor=actor, instance=instance, user=user, added_by=actor)
    if not authz.has_perm(actor, "administer_organization", org):
        raise OutsiderRefused(
            "Only an org admin can bring in someone from outside the organization.",
            fields={"email": "Not a member of this organization: ask an org admin to invite them."},
        )
    invitation = (
        Invitation.objects.filter(
            org=org,
            email__iexact=email,
            role=Role.COLLABORATOR_RO,
            project=instance.project,
            accepted_at__isnull=True,
            revoked_at__isnull=True,
            expires_at__gt=timezone.now(),
        )
        .order_by("-created_at")
        .first()
    )
    if invitation is None:
        invitation, _token = invitation_create(
            actor=actor, org=org, email=email, role=Role.COLLABORATOR_RO, project=instance.project
        )
    CollaboratorInvitation.objects.get_or_create(
        instance=instance, invitation=invitation, defaults={"invited_by": actor}
    )
    audit_log(
        actor=actor,
        action="instance.collaborator_invite",
        target=instance,
        project=instance.project,
        details={"email": invitation.email},
    )
    return None


def _add_collaborator(*, actor, instance: ComputeInstance, user, added_by, via: str = ""):
    """The collaborator row, their instance permissions, the audit event, and (on commit) their
    access in the namespace."""
    from instances.models import Collaborator

    collaborator = Collaborator.objects.create(instance=instance, user=user, added_by=added_by)
    access.grant(user, instance)
    details = {"user": user.email} | ({"via": via} if via else {})
    audit_log(
        actor=actor,
        action="instance.collaborator_add",
        target=instance,
        project=instance.project,
        details=details,
    )
    _refresh_access(instance)
    return collaborator


def invitation_accepted(*, invitation, user, **kwargs) -> None:
    """Receiver of ``tenancy.signals.invitation_accepted`` (inside the accept's transaction): someone
    invited to instances by email becomes their collaborator now that they have an account."""
    from instances.models import Collaborator, CollaboratorInvitation

    grants = CollaboratorInvitation.objects.filter(invitation=invitation).select_related("instance__project")
    for grant in grants:
        instance = grant.instance
        if instance.state in (State.DELETING, State.DELETED) or instance.owner_id == user.pk:
            continue
        if Collaborator.objects.filter(instance=instance, user=user).exists():
            continue
        _add_collaborator(
            actor=user, instance=instance, user=user, added_by=grant.invited_by, via="invitation"
        )
    grants.delete()


@transaction.atomic
def collaborator_remove(*, actor, instance: ComputeInstance, user) -> None:
    from instances.models import Collaborator

    _require_manage(actor, instance)
    deleted, _ = Collaborator.objects.filter(instance=instance, user=user).delete()
    if not deleted:
        raise ValidationFailed("Not a collaborator.", fields={"user": f"{user} is not a collaborator."})
    access.revoke(user, instance)
    _forget_identity(instance, user)
    audit_log(
        actor=actor,
        action="instance.collaborator_remove",
        target=instance,
        project=instance.project,
        details={"user": user.email},
    )
    _refresh_access(instance)


def _forget_identity(instance: ComputeInstance, user) -> None:
    """Delete the removed collaborator's ServiceAccount once the change commits: their tokens die with it."""
    if instance.cluster_id and instance.namespace:
        enqueue_for_cluster(instance.cluster, "instances.tasks.identity_remove", instance.pk, user.username)


def _refresh_access(instance: ComputeInstance) -> None:
    """Re-apply the namespace's access objects (owner and collaborators) once the change commits."""
    if instance.cluster_id and instance.state in (State.READY, State.PROVISIONING, State.FAILED):
        enqueue_for_cluster(instance.cluster, "instances.tasks.access_refresh", instance.pk)


@transaction.atomic
def instance_retry(*, actor, instance: ComputeInstance) -> Run:
    _require_manage(actor, instance)
    instance = ComputeInstance.objects.select_for_update().get(pk=instance.pk)
    if instance.state not in (State.FAILED, State.READY):
        raise Conflict(f"Only failed or ready instances can be redeployed (this one is {instance.state}).")
    run = Run.objects.create(instance=instance, kind=Run.Kind.RETRY)
    audit_log(actor=actor, action="instance.retry", target=instance, project=instance.project, details={})
    enqueue_for_cluster(instance.cluster, "instances.tasks.run_execute", run.pk)
    return run


@transaction.atomic
def instance_delete(*, actor, instance: ComputeInstance) -> Run:
    """Irreversible: the namespace and everything in it are removed; quota is released once the
    namespace is gone; the instance keeps its history."""
    _require_manage(actor, instance)
    instance = ComputeInstance.objects.select_for_update().get(pk=instance.pk)
    if instance.state in (State.DELETING, State.DELETED):
        raise Conflict(f"{instance.name} is {instance.state} already.")
    transition(instance, State.DELETING, f"Deleted by {actor}.")
    # Its services go with it: DELETING now; the delete run removes their objects before the namespace.
    services = services_deleting_with(actor=actor, compute_instance=instance)
    applications = applications_deleting_with(actor=actor, compute_instance=instance)
    run = Run.objects.create(instance=instance, kind=Run.Kind.DELETE)
    audit_log(
        actor=actor,
        action="instance.delete",
        target=instance,
        project=instance.project,
        details=({"services": services} if services else {})
        | ({"applications": applications} if applications else {}),
    )
    enqueue_for_cluster(instance.cluster, "instances.tasks.run_execute", run.pk)
    return run


@transaction.atomic
def kubeconfig_issue(*, actor, instance: ComputeInstance) -> str:
    """A kubeconfig for the platform's kubectl proxy with a new short-lived credential of the actor's
    (instances/kubeproxy/credentials.py: bound to the actor and this instance, stored as a digest,
    revocable, audited). Nothing of the cluster's leaves the platform."""
    from instances.kubeproxy import credentials

    return credentials.kubeconfig_issue(actor=actor, instance=instance)


@transaction.atomic
def output_reveal(*, actor, instance: ComputeInstance, name: str) -> str:
    """The value of a secret output, read from its Secret in the namespace now (audited, never stored)."""
    authz.require(
        actor,
        "use_instance",
        instance,
        message="Only the owner and collaborators of this instance see its secrets.",
    )
    reference = (instance.outputs or {}).get(name)
    if not isinstance(reference, dict) or not reference.get("secret"):
        raise NotFound("No such secret output.")
    if instance.state != State.READY:
        raise Conflict(f"{instance.name} is {instance.state}; its secrets are readable once it is ready.")
    value = read_secret_output(
        cluster=instance.cluster, namespace=instance.namespace, name=name, reference=reference
    )
    audit_log(
        actor=actor,
        action="instance.output_reveal",
        target=instance,
        project=instance.project,
        details={"output": name},
    )
    return value
