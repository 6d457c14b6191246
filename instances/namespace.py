"""What an instance's namespace must hold for the people who may use it now: its name and its
isolation baseline (``instances.baseline``) for the current identities. Read by the deployer, the
drift repair and the access sync (all worker side); imports neither of them nor the services."""

from django.db.models import Prefetch, prefetch_related_objects

from instances import baseline
from instances.models import Collaborator, ComputeInstance
from instances.states import STORAGE_ONLY
from paas.units import GIB


def identities(instance: ComputeInstance) -> list[str]:
    """The usernames that get a ServiceAccount (and so a kubeconfig) in the instance's namespace now:
    the owner unless they left, and the collaborators; active accounts of an active org only."""
    if not instance.org.is_active:
        return []
    users = []
    if instance.owner_left_at is None and instance.owner.is_active:
        users.append(instance.owner.username)
    # Through ``all()`` so that a prefetch (:data:`COLLABORATOR_USERS`) saves the query per instance.
    users += [c.user.username for c in instance.collaborators.all() if c.user.is_active]
    return users


#: Collaborators with their users, in one query (``prefetch_related`` it when building many baselines).
COLLABORATOR_USERS = Prefetch("collaborators", queryset=Collaborator.objects.select_related("user"))


def _users(instance: ComputeInstance) -> list[str]:
    # Only people who may still use it: not an owner who left, no deactivated account or org.
    prefetch_related_objects([instance], COLLABORATOR_USERS)  # a no-op when prefetched already
    return identities(instance)


def held_resources(held, *, stopped: bool = False) -> baseline.Resources:
    """The quota of a namespace holding ``held`` (a compute instance or a warm pool's standby instance:
    their ``HeldResources`` columns)."""
    return _resources(held, stopped=stopped)


def _resources(instance: ComputeInstance, *, stopped: bool) -> baseline.Resources:
    if stopped:
        # A stopped instance keeps its storage, and nothing that runs: no CPU, memory, GPU or MIG
        # requests are admitted (every MIG profile stays at 0 as for any instance).
        return baseline.Resources(
            cpu_millis=0, memory_bytes=0, storage_bytes=max(instance.storage_gib, 1) * GIB, gpus=0, mig={}
        )
    return baseline.Resources(
        cpu_millis=instance.cpu_millis,
        memory_bytes=instance.memory_gib * GIB,
        storage_bytes=max(instance.storage_gib, 1) * GIB,
        gpus=instance.gpus,
        mig=instance.mig_slices,
    )


def namespace_for(instance: ComputeInstance) -> str:
    return instance.namespace or baseline.namespace_name(
        org=instance.org.name, project=instance.project.name, instance=instance.name, instance_id=instance.pk
    )


def baseline_objects(instance: ComputeInstance, namespace: str, *, stopped: bool | None = None) -> list[dict]:
    """The baseline; a stopped instance's (``stopped``, by default: its state is STOPPED) has a quota
    of zero CPU, memory, GPUs and MIG slices, its storage kept."""
    labels = baseline.tenant_labels(
        org=instance.org.name, project=instance.project.name, instance=instance.name, instance_id=instance.pk
    )
    if stopped is None:
        stopped = instance.state in STORAGE_ONLY
    return baseline.baseline(
        namespace_name=namespace,
        labels=labels,
        resources=_resources(instance, stopped=stopped),
        users=_users(instance),
    )
