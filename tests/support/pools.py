"""Warm-pool standby instances in tests: a standby row made as the loop makes one (``make_standby``),
and, on the local control plane, built to ready (``ready_standby``)."""

import uuid

from instances import pool_claims, pool_deployer
from instances.baseline import standby_namespace_name
from instances.models import StandbyInstance
from instances.quota import profile_totals


def make_standby(
    live: dict, *, profile=None, cluster=None, pool=None, state: str = StandbyInstance.State.PROVISIONING
) -> StandbyInstance:
    """A standby instance of ``profile`` (default the small system profile) on ``cluster`` (default the
    registered local cluster): the launch snapshot and its digest, the profile totals, its namespace."""
    profile = profile or live["profile"]
    cluster = cluster or live["cluster"]
    snapshot = pool_claims.launch_snapshot(profile)
    standby = StandbyInstance.objects.create(
        pool=pool,
        profile=profile,
        snapshot=snapshot,
        snapshot_digest=pool_claims.snapshot_digest(snapshot),
        cluster=cluster,
        namespace=f"pending-{uuid.uuid4().hex[:16]}",
        placement={"cluster": cluster.name, "explanation": "made by a test"},
        state=state,
        **profile_totals(profile, cluster_id=cluster.pk),
    )
    standby.namespace = standby_namespace_name(profile.name, standby.pk)
    standby.save(update_fields=["namespace"])
    return standby


def ready_standby(live: dict, **kwargs) -> StandbyInstance:
    """A standby built on the local control plane (``standby_deploy``) and ready to be claimed."""
    standby = make_standby(live, **kwargs)
    state = pool_deployer.standby_deploy(standby_id=standby.pk)
    standby.refresh_from_db()
    assert state == StandbyInstance.State.READY, standby.state_reason
    return standby
