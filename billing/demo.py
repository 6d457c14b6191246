"""Demo data for billing: chargeback rates on the demo cluster, a monthly budget for acme and one for
its research workspace, and a first roll-up, so the studio's *Costs and usage* dashboard, *Budgets* and
*Cost profiles* and the workspace's spend card have something to show from the first sign-in (the
demo instance's spend grows from its launch). Idempotent."""

from billing import budgets, cost_profiles, metering, rollup
from billing.models import Budget, CostProfile
from inventory.models import Cluster
from tenancy.models import Organization, Project, User

DEMO_RATES = {
    "gpu_hour": {"A100-SXM4-40GB": "2.10", "A100-SXM4-80GB": "2.60", "NVIDIA-H100-80GB-HBM3": "4.90"},
    "mig_slice_hour": {"1g.10gb": "0.35", "2g.20gb": "0.70", "3g.40gb": "1.05"},
    "cpu_hour": "0.02",
    "memory_gib_hour": "0.004",
    "storage_gib_hour": "0.0002",
}


def seed() -> list[str]:
    report = []
    operator = User.objects.get(username="operator")
    cluster = Cluster.objects.filter(name="local").first()
    if cluster is not None and not CostProfile.objects.filter(cluster=cluster).exists():
        cost_profiles.cost_profile_set(actor=operator, cluster=cluster, currency="USD", **DEMO_RATES)
        report.append(
            "Demo billing: chargeback rates on the 'local' cluster (A100 2.10 USD per GPU-hour, ...)."
        )
    acme = Organization.objects.get(name="acme")
    alice = User.objects.get(username="alice")
    if not Budget.objects.filter(org=acme, project__isnull=True).exists():
        budgets.budget_set(actor=alice, org=acme, amount="5000", currency="USD")
        report.append("Demo billing: acme's monthly budget of 5,000 USD (alerts at 50, 75, 90 and 100 %).")
    research = Project.objects.get(org=acme, name="research")
    if not Budget.objects.filter(project=research).exists():
        budgets.budget_set(
            actor=alice, org=acme, project=research, amount="1500", currency="USD", hard_stop=True
        )
        report.append("Demo billing: acme/research's budget of 1,500 USD with a hard stop on launches.")
    metering.meter_untracked()
    summary = rollup.rollup_pending()
    report.append(f"Demo billing: usage rolled up ({summary.get('records', 0)} hourly records).")
    return report
