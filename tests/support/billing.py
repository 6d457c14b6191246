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
from tests.factories import (
    ONE_A100,
    UserFactory,
    add_member,
    make_operator,
    make_org,
    make_profile,
    make_synced_cluster,
)

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
    add_member(admin=admin, user=owner, role=Role.WORKSPACE_ADMIN, project=project)
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


# --- the chargeback dashboards' generated history (tests/integration/test_billing_dashboards.py and
# --- tests/browser/test_billing_browser.py) --------------------------------------------------------------

OCTOBER = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)
NOVEMBER = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


def october(day: int, hour: int = 0, minute: int = 0, second: int = 0) -> dt.datetime:
    return dt.datetime(2026, 10, day, hour, minute, second, tzinfo=dt.UTC)


def dashboard_history() -> dict:
    """Two orgs ("dasha" on demand: $2.5/h running, $0.1/h stopped; "dashb" reserved: $1.2/h whatever
    runs), three instances started, stopped, restarted and deleted at chosen instants of the last days
    of October 2026 (one still running at its end; few hours, so the roll-up is quick), rolled up
    for October: {"operator", "a": {...}, "b": {...}}."""
    op, admin_a, project_a, owner_a, profile_a, cluster_a = priced_setup("dasha")
    _op, admin_b, project_b, owner_b, profile_b, cluster_b = priced_setup(
        "dashb", operator=op, amount="1.2", billing_model="reserved"
    )
    for cluster, rate in ((cluster_a, "1.5"), (cluster_b, "1.75")):  # chargeback rates on both clusters
        add_cost_profile(
            cluster,
            OCTOBER - dt.timedelta(days=1),
            gpu_hour={"A100-SXM4-40GB": rate},
            cpu_hour="0.02",
            memory_gib_hour="0.005",
            storage_gib_hour="0.0001",
        )
    a1 = launch_at(owner=owner_a, project=project_a, profile=profile_a, name="a1", at=october(27, 9, 58, 10))
    move(a1, "provisioning", at=october(27, 9, 59, 1))
    move(a1, "ready", at=october(27, 10, 0, 7))
    move(a1, "provisioning", at=october(28, 12, 29, 0))
    move(a1, "stopped", at=october(28, 12, 30, 13))
    move(a1, "provisioning", at=october(29, 8, 0, 0))
    move(a1, "ready", at=october(29, 8, 1, 0))
    move(a1, "deleting", at=october(29, 20, 0, 0))
    move(a1, "deleted", at=october(29, 20, 1, 30))
    second = UserFactory(username="dasha-second")
    add_member(admin=admin_a, user=second, role=Role.WORKSPACE_ADMIN, project=project_a)
    a2 = launch_at(owner=second, project=project_a, profile=profile_a, name="a2", at=october(30, 22, 0, 30))
    move(a2, "provisioning", at=october(30, 22, 1, 0))
    move(a2, "ready", at=october(30, 22, 2, 0))  # still running at the end of the month
    b1 = launch_at(owner=owner_b, project=project_b, profile=profile_b, name="b1", at=october(29, 6, 15, 0))
    move(b1, "provisioning", at=october(29, 6, 15, 20))
    move(b1, "ready", at=october(29, 6, 17, 0))
    move(b1, "provisioning", at=october(30, 0, 0, 0))
    move(b1, "stopped", at=october(30, 0, 1, 0))  # reserved: billed while stopped too
    move(b1, "deleting", at=october(30, 3, 0, 0))
    move(b1, "deleted", at=october(30, 3, 0, 45))
    from billing.rollup import rollup_pending

    # the roll-up's own schedule as it would have run just after October (every settled hour)
    rollup_pending(now=NOVEMBER + dt.timedelta(hours=1))
    return {
        "operator": op,
        "a": {
            "admin": admin_a,
            "project": project_a,
            "owner": owner_a,
            "cluster": cluster_a,
            "org": project_a.org,
        },
        "b": {
            "admin": admin_b,
            "project": project_b,
            "owner": owner_b,
            "cluster": cluster_b,
            "org": project_b.org,
        },
    }
