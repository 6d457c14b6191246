"""Every write on compute instances: launch (quota-safe, placed by the matchmaker), state changes,
runs, collaborators and delete. Workers call the ``*_execute`` functions through ``instances.tasks``."""

import re
from collections import defaultdict
from decimal import Decimal

from django.db import transaction
from django.db.models import Q, Sum
from django.utils import timezone

from catalog.models import ComputeProfile
from catalog.selectors import catalog_for
from catalog.services import profile_snapshot
from instances.models import ComputeInstance, Run
from instances.states import ACTIVE, State, can_move
from inventory.matchmaker import PlacementRequest, ResourceGroup
from inventory.models import Cluster
from inventory.selectors import Reservation, placement_for
from inventory.services import enqueue_for_cluster
from paas import authz
from paas.audit import audit_log
from paas.errors import Conflict, NotFound, ValidationFailed
from tenancy.models import Project, Quota

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
GIB = 2**30


# --- resource arithmetic ----------------------------------------------------------------------------


def profile_totals(profile: ComputeProfile) -> dict:
    """The totals an instance of ``profile`` holds (what quotas count)."""
    totals = {
        "gpus": 0,
        "gpus_by_model": defaultdict(int),
        "mig_slices": defaultdict(int),
        "cpu_millis": 0,
        "memory_gib": 0,
        "storage_gib": 0,
    }
    for group in profile.resource_groups.all():
        totals["gpus"] += group.gpu_count
        if group.gpu_count:
            totals["gpus_by_model"][group.gpu_model] += group.gpu_count
        if group.mig_count:
            totals["mig_slices"][group.mig_profile] += group.mig_count
        totals["cpu_millis"] += int(group.cpu_cores * 1000)
        totals["memory_gib"] += group.memory_gib
        totals["storage_gib"] += group.storage_gib
    totals["gpus_by_model"], totals["mig_slices"] = dict(totals["gpus_by_model"]), dict(totals["mig_slices"])
    return totals


def _usage(instances) -> dict:
    """Usage summed in SQL (plus per-model GPUs from the JSON column)."""
    sums = instances.aggregate(
        gpus=Sum("gpus"), cpu=Sum("cpu_millis"), memory=Sum("memory_gib"), storage=Sum("storage_gib")
    )
    by_model: dict[str, int] = defaultdict(int)
    for row in instances.exclude(gpus_by_model={}).values_list("gpus_by_model", flat=True):
        for model, count in row.items():
            by_model[model] += count
    return {
        "gpus": sums["gpus"] or 0,
        "cpu_cores": Decimal(sums["cpu"] or 0) / 1000,
        "memory_gib": sums["memory"] or 0,
        "storage_gib": sums["storage"] or 0,
        "instances": instances.count(),
        "gpus_by_model": dict(by_model),
    }


def _check_quota(quota: Quota, usage: dict, want: dict, scope: str, gpu_models: list) -> list[str]:
    problems = []
    asked = {
        "gpus": want["gpus"],
        "cpu_cores": Decimal(want["cpu_millis"]) / 1000,
        "memory_gib": want["memory_gib"],
        "storage_gib": want["storage_gib"],
        "instances": 1,
    }
    labels = {
        "gpus": "GPUs",
        "cpu_cores": "CPU cores",
        "memory_gib": "GiB of memory",
        "storage_gib": "GiB of storage",
        "instances": "instances",
    }
    for field, label in labels.items():
        limit = getattr(quota, field)
        if limit is not None and usage[field] + asked[field] > limit:
            problems.append(
                f"{scope} quota of {_fmt(limit)} {label}: {_fmt(usage[field])} in use, "
                f"this launch needs {_fmt(asked[field])}."
            )
    for row in gpu_models:
        need = want["gpus_by_model"].get(row.gpu_model, 0)
        used = usage["gpus_by_model"].get(row.gpu_model, 0)
        if need and used + need > row.gpus:
            problems.append(
                f"{scope} quota of {row.gpus} {row.gpu_model} GPUs: {used} in use, this launch needs {need}."
            )
    return problems


def quota_problems(*, project: Project, wants: dict, quotas: list[Quota] | None = None) -> dict[object, list]:
    """For each key of ``wants`` (resources as ``profile_totals`` gives them), what the workspace's and
    the org's quotas would refuse with today's usage: the launch's check (under its lock), and the
    portal's warning on each size card before anyone presses Launch."""
    if quotas is None:
        quotas = list(Quota.objects.filter(Q(project=project) | Q(org_id=project.org_id)))
    result: dict[object, list] = {key: [] for key in wants}
    for quota in sorted(quotas, key=lambda q: q.project_id is None):
        scope = "Workspace" if quota.project_id else "Organization"
        instances = ComputeInstance.objects.filter(state__in=ACTIVE)
        instances = (
            instances.filter(project=project) if quota.project_id else instances.filter(org_id=project.org_id)
        )
        usage = _usage(instances)
        gpu_models = list(quota.gpu_models.all())
        for key, want in wants.items():
            result[key] += _check_quota(quota, usage, want, scope, gpu_models)
    return result


def _fmt(value) -> str:
    return f"{Decimal(value).normalize():f}" if isinstance(value, Decimal) else str(value)


def _reservations() -> dict[int, Reservation]:
    """What active instances hold on each cluster (subtracted from capacity before placing)."""
    held: dict[int, dict] = {}
    for row in ComputeInstance.objects.filter(state__in=ACTIVE, cluster__isnull=False).values(
        "cluster_id", "gpus_by_model", "mig_slices", "cpu_millis", "memory_gib"
    ):
        entry = held.setdefault(
            row["cluster_id"], {"gpus": defaultdict(int), "mig": defaultdict(int), "cpu": 0, "memory": 0}
        )
        for model, count in row["gpus_by_model"].items():
            entry["gpus"][model] += count
        for profile, count in row["mig_slices"].items():
            entry["mig"][profile] += count
        entry["cpu"] += row["cpu_millis"]
        entry["memory"] += row["memory_gib"] * GIB
    return {
        pk: Reservation(
            gpus=dict(e["gpus"]), mig=dict(e["mig"]), cpu_millis=e["cpu"], memory_bytes=e["memory"]
        )
        for pk, e in held.items()
    }


def placement_request(profile: ComputeProfile, org_id: int) -> PlacementRequest:
    groups = tuple(
        ResourceGroup(
            gpu_model=g.gpu_model if g.gpu_count else "",
            gpu_count=g.gpu_count,
            mig_profile=g.mig_profile if g.mig_count else "",
            mig_count=g.mig_count,
            cpu_millis=int(g.cpu_cores * 1000),
            memory_bytes=g.memory_gib * GIB,
        )
        for g in profile.resource_groups.all()
    )
    allowed = tuple(
        c.strip() for c in (profile.input_values.get("cluster_details") or "").split(",") if c.strip()
    )
    return PlacementRequest(groups=groups, allowed_clusters=allowed, flavor=profile.flavor, org_id=org_id)


# --- launch -----------------------------------------------------------------------------------------


def instance_name_check(*, project: Project, name: str) -> str:
    """The name, stripped, if it may name a new instance in the workspace (the launch checks it again
    under the quota lock; the portal's first step asks early)."""
    name = (name or "").strip()
    if not DNS_LABEL.match(name):
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


@transaction.atomic
def instance_launch(
    *, actor, project: Project, name: str, profile: ComputeProfile, description: str = ""
) -> ComputeInstance:
    """Launch a compute profile into a workspace.

    Inside one transaction: the project's and org's quota rows are locked, usage is re-summed and an
    over-quota launch is refused naming the limit; the profile is snapshotted; the matchmaker places
    it; the instance and its first run are created; the deploy is enqueued on commit for the agent
    that reaches the chosen cluster.
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
    # Lock the quota rows (project first, then org, always in this order) and re-sum under the lock.
    quotas = {
        q.pk: q
        for q in Quota.objects.select_for_update(of=("self",))
        .filter(Q(project=project) | Q(org_id=project.org_id))
        .order_by("project_id")
    }
    instance_name_check(project=project, name=name)  # again, now that launches here are serialised
    want = profile_totals(profile)
    problems = quota_problems(project=project, wants={profile.pk: want}, quotas=list(quotas.values()))[
        profile.pk
    ]
    if problems:
        raise Conflict("Over quota: " + " ".join(problems), code="quota_exceeded")
    placement = placement_for(placement_request(profile, project.org_id), reserved=_reservations())
    if placement.cluster is None:
        raise Conflict(
            "No cluster has capacity for this profile now. " + placement.explain(), code="no_capacity"
        )
    cluster = Cluster.objects.get(name=placement.cluster)
    snapshot = profile_snapshot(profile) | {
        "profile_id": profile.pk,
        "name": profile.name,
        "template": {
            "name": profile.template_version.template.name,
            "version": profile.template_version.version,
            "manifests": profile.template_version.manifests,
            "inputs": profile.template_version.inputs,
            "outputs": profile.template_version.outputs,
            "custom_resources": profile.template_version.custom_resources,
        },
        "input_values": profile.input_values,
        "price": {
            "currency": profile.cost_currency,
            "amount": str(profile.cost_amount),
            "period": profile.cost_period,
        },
    }
    instance = ComputeInstance.objects.create(
        org_id=project.org_id,
        project=project,
        name=name,
        description=description or "",
        owner=actor,
        profile=profile,
        snapshot=snapshot,
        cluster=cluster,
        placement=placement.as_dict(),
        **want,
    )
    run = Run.objects.create(instance=instance, kind=Run.Kind.DEPLOY)
    _grant(actor, instance)  # the owner's own access (and kubeconfig) to this instance
    audit_log(
        actor=actor,
        action="instance.launch",
        target=instance,
        project=project,
        details={"profile": profile.name, "cluster": cluster.name, "gpus": want["gpus"]},
    )
    enqueue_for_cluster(cluster, "instances.tasks.run_execute", run.pk)
    return instance


def transition(instance: ComputeInstance, target: str, reason: str = "") -> None:
    """Move an instance to ``target`` if the state machine allows it (call inside a transaction)."""
    if not can_move(instance.state, target):
        raise Conflict(f"An instance cannot go from {instance.get_state_display()} to {State(target).label}.")
    instance.state, instance.state_reason = target, reason
    fields = ["state", "state_reason"]
    if target == State.READY:
        instance.ready_at = timezone.now()
        fields.append("ready_at")
    if target == State.DELETED:
        instance.deleted_at = timezone.now()
        fields.append("deleted_at")
    instance.save(update_fields=fields)


# --- collaborators, retry, delete -------------------------------------------------------------------

OWNER_PERMISSIONS = (
    "view_computeinstance",
    "change_computeinstance",
    "delete_computeinstance",
    "use_instance",
)


def _grant(user, instance: ComputeInstance) -> None:
    from guardian.shortcuts import assign_perm

    for codename in OWNER_PERMISSIONS:
        assign_perm(codename, user, instance)
    authz.forget(user)


def _revoke(user, instance: ComputeInstance) -> None:
    from guardian.shortcuts import remove_perm

    for codename in OWNER_PERMISSIONS:
        remove_perm(codename, user, instance)
    authz.forget(user)


def _require_manage(actor, instance: ComputeInstance) -> None:
    authz.require(actor, "delete_computeinstance", instance, message="You may not change this instance.")


@transaction.atomic
def collaborator_add(*, actor, instance: ComputeInstance, email: str):
    """Give someone the owner's access to this instance. Existing members of the org get it at once;
    anyone else is invited to the workspace as a read-only collaborator and then added."""
    from instances.models import Collaborator, CollaboratorInvitation
    from tenancy.models import User
    from tenancy.roles import Role
    from tenancy.services import invitation_create, is_member

    _require_manage(actor, instance)
    user = User.objects.filter(email__iexact=(email or "").strip()).first()
    if user is None or not is_member(user, instance.project.org):
        if not authz.has_perm(actor, "administer_organization", instance.project.org) and user is not None:
            raise ValidationFailed(
                "That person is not a member of this organization.",
                fields={"email": "Not a member of this organization; ask an org admin."},
            )
        if user is None:
            invitation, _token = invitation_create(
                actor=_inviter(actor, instance),
                org=instance.project.org,
                email=email,
                role=Role.COLLABORATOR_RO,
                project=instance.project,
            )
            CollaboratorInvitation.objects.create(instance=instance, invitation=invitation, invited_by=actor)
            audit_log(
                actor=actor,
                action="instance.collaborator_invite",
                target=instance,
                project=instance.project,
                details={"email": invitation.email},
            )
            return None
    owner = user.pk == instance.owner_id and instance.owner_left_at is None  # a leaver may come back
    if owner or Collaborator.objects.filter(instance=instance, user=user).exists():
        raise Conflict(f"{user} has access to {instance.name} already.")
    return _add_collaborator(actor=actor, instance=instance, user=user, added_by=actor)


def _add_collaborator(*, actor, instance: ComputeInstance, user, added_by, via: str = ""):
    """The collaborator row, their instance permissions, the audit event, and (on commit) their
    access in the namespace."""
    from instances.models import Collaborator

    collaborator = Collaborator.objects.create(instance=instance, user=user, added_by=added_by)
    _grant(user, instance)
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


def _inviter(actor, instance):
    """Invitations are an org admin's act; a workspace admin's request is sent in the org's name."""
    from tenancy.models import RoleAssignment

    if authz.has_perm(actor, "administer_organization", instance.project.org):
        return actor
    admin = (
        RoleAssignment.objects.filter(org=instance.project.org, role="org_admin")
        .select_related("user")
        .first()
    )
    if admin is None:
        raise ValidationFailed("Nobody can invite into this organization.", fields={"email": "No org admin."})
    return admin.user


@transaction.atomic
def collaborator_remove(*, actor, instance: ComputeInstance, user) -> None:
    from instances.models import Collaborator

    _require_manage(actor, instance)
    deleted, _ = Collaborator.objects.filter(instance=instance, user=user).delete()
    if not deleted:
        raise ValidationFailed("Not a collaborator.", fields={"user": f"{user} is not a collaborator."})
    _revoke(user, instance)
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
    run = Run.objects.create(instance=instance, kind=Run.Kind.DELETE)
    audit_log(actor=actor, action="instance.delete", target=instance, project=instance.project, details={})
    enqueue_for_cluster(instance.cluster, "instances.tasks.run_execute", run.pk)
    return run


# --- worker-side helpers ----------------------------------------------------------------------------


def access_apply(*, instance_id: int) -> None:
    """Apply the access part of the baseline (service accounts, role, binding) for current users."""
    from instances import deployer
    from inventory import kube

    instance = ComputeInstance.objects.select_related("cluster", "org", "project", "owner").get(
        pk=instance_id
    )
    if not instance.namespace or instance.state not in (State.READY, State.PROVISIONING, State.FAILED):
        return
    objects = [
        o
        for o in deployer.baseline_objects(instance, instance.namespace)
        if o["kind"] in ("ServiceAccount", "Role", "RoleBinding")
    ]
    kube.apply(instance.cluster.kubeconfig.reveal(), objects, namespace=instance.namespace)


def identity_remove(*, instance_id: int, username: str) -> None:
    """Worker side: delete a former collaborator's ServiceAccount (and so every token issued to it)."""
    from instances import baseline
    from inventory import kube

    instance = ComputeInstance.objects.select_related("cluster").get(pk=instance_id)
    account = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": baseline.service_account_name(username), "namespace": instance.namespace},
    }
    kube.delete_objects(instance.cluster.kubeconfig.reveal(), [account])


def reconcile() -> int:
    """Re-enqueue every stale run on its cluster's agent; ``execute`` picks up where it stopped."""
    from instances import deployer

    count = 0
    for run in deployer.stale_runs().select_related("instance__cluster"):
        with transaction.atomic():
            Run.objects.filter(pk=run.pk).update(outcome=Run.Outcome.QUEUED, heartbeat_at=timezone.now())
            audit_log(
                actor=None,
                action="instance.reconcile",
                target=run.instance,
                project=run.instance.project,
                details={"run": run.pk, "attempt": run.attempt},
            )
            enqueue_for_cluster(run.instance.cluster, "instances.tasks.run_execute", run.pk)
        count += 1
    return count


@transaction.atomic
def kubeconfig_issue(*, actor, instance: ComputeInstance) -> str:
    """A kubeconfig for the actor's own ServiceAccount in the instance's namespace, with a short-lived
    token from the TokenRequest API (issued now, audited, never stored)."""
    from instances import baseline
    from inventory import kube

    authz.require(
        actor,
        "use_instance",
        instance,
        message="Only the owner and collaborators of this instance get a kubeconfig.",
    )
    if instance.state != State.READY:
        raise Conflict(f"{instance.name} is {instance.state}; a kubeconfig is issued once it is ready.")
    kubeconfig = instance.cluster.kubeconfig.reveal()
    account = baseline.service_account_name(actor.username)
    try:
        token, expires = kube.issue_token(
            kubeconfig, namespace=instance.namespace, service_account=account, seconds=3600
        )
    except kube.KubeUnreachable as exc:
        raise Conflict(f"The cluster cannot issue a token now: {exc}") from exc
    audit_log(
        actor=actor,
        action="instance.kubeconfig",
        target=instance,
        project=instance.project,
        details={"service_account": account, "expires_at": expires.isoformat()},
    )
    return kube.kubeconfig_for_token(
        kubeconfig, token=token, namespace=instance.namespace, user=actor.username
    )


@transaction.atomic
def output_reveal(*, actor, instance: ComputeInstance, name: str) -> str:
    """The value of a secret output, read from its Secret in the namespace now (audited, never stored)."""
    from inventory import kube

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
    try:
        value = kube.read_secret_key(
            instance.cluster.kubeconfig.reveal(),
            namespace=instance.namespace,
            name=reference["name"],
            key=reference["key"],
        )
    except kube.KubeUnreachable as exc:
        raise Conflict(f"The cluster cannot be reached now: {exc}") from exc
    if value is None:
        raise Conflict(f"The secret behind {name!r} does not exist (yet) in the instance's namespace.")
    audit_log(
        actor=actor,
        action="instance.output_reveal",
        target=instance,
        project=instance.project,
        details={"output": name},
    )
    return value
