"""Helpers of the billing tests: a workspace with a priced profile on a synced cluster (no Kubernetes),
instances launched there and moved through their states as the deployer does, at chosen instants."""

import datetime as dt
from contextlib import contextmanager
from unittest import mock

from django.db import transaction

from instances.models import ComputeInstance
from instances.services import instance_launch
from instances.states import transition
from tenancy import services as tenancy_services
from tenancy.roles import Role
from tests.factories import ONE_A100, UserFactory, make_operator, make_org, make_profile, make_synced_cluster

MANIFESTS = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ instance.name }}-info\ndata:\n  a: b\n"


def priced_setup(
    name: str,
    *,
    operator=None,
    amount="2.5",
    period="hour",
    billing_model="on_demand",
    stopped_amount="0.1",
    nodes: int = 4,
):
    """An org ``name`` with a workspace 'lab', a workspace admin, a priced one-A100 profile and a synced
    cluster: (operator, admin, project, owner, profile, cluster)."""
    operator = operator or make_operator(username=f"op-{name}")
    org, admin = make_org(operator=operator, name=name)
    project = tenancy_services.project_create(actor=admin, org=org, name="lab")
    owner = UserFactory(username=f"{name}-owner")
    tenancy_services.role_assign(actor=operator, user=owner, role=Role.WORKSPACE_ADMIN, project=project)
    profile = make_profile(
        actor=admin,
        project=project,
        manifests=MANIFESTS,
        name="one-gpu",
        template="ns",
        resource_groups=ONE_A100,
        cost_amount=amount,
        cost_period=period,
        cost_billing_model=billing_model,
        cost_stopped_amount=stopped_amount if billing_model == "on_demand" else "0",
    )
    cluster = make_synced_cluster(name=f"{name}-c", nodes=nodes)
    return operator, admin, project, owner, profile, cluster


@contextmanager
def frozen_at(moment: dt.datetime):
    """``django.utils.timezone.now`` returns ``moment`` inside (metering reads the time through it)."""
    with mock.patch("django.utils.timezone.now", return_value=moment):
        yield


def move(instance: ComputeInstance, *states: str, at: dt.datetime | None = None) -> ComputeInstance:
    """Move ``instance`` through ``states`` as the deployer does (row locked, one transaction each)."""
    for state in states:
        with transaction.atomic():
            row = type(instance).objects.select_for_update().get(pk=instance.pk)
            if at is not None:
                with frozen_at(at):
                    transition(row, state, "test")
            else:
                transition(row, state, "test")
        instance = row
    return instance


def launch_at(*, owner, project, profile, name: str, at: dt.datetime) -> ComputeInstance:
    """Launch at ``at`` (the instance's launch time is ``at``)."""
    with frozen_at(at):
        return instance_launch(actor=owner, project=project, name=name, profile=profile)


# --- the hourly roll-up (issue 16, part A) -----------------------------------------------------------


def usage_rows(**filters) -> list[dict]:
    """Every usage record (filtered), as full rows but for when it was rolled up, in (hour, meter)
    order: what two roll-ups of the same intervals must agree on."""
    from billing.models import UsageRecord

    return [
        {k: v for k, v in row.items() if k not in ("id", "rolled_up_at")}
        for row in UsageRecord.objects.filter(**filters).order_by("hour", "meter_id").values()
    ]


def add_cost_profile(cluster, effective_from: dt.datetime, **rates):
    """A cost profile of ``cluster`` from ``effective_from`` (rates as model fields: gpu_hour={model:
    "rate"}, mig_slice_hour, cpu_hour, memory_gib_hour, storage_gib_hour, currency)."""
    from billing.models import CostProfile

    return CostProfile.objects.create(cluster=cluster, effective_from=effective_from, **rates)
