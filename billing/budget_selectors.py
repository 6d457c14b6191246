"""Permission-filtered reads of budgets, and a budget's status (spend so far, percent, projection).

Who sees which budgets:

* org admins (``administer_organization`` on the org): their org's budgets, org-wide and per workspace;
* people who may view a workspace's instances (``view_instances`` on the project): that workspace's
  budget and their org's org-wide budget, with its status. The status is a budget's own totals (spend
  so far, percent used, projection, thresholds crossed): a workspace member learns the org's total
  spend against the org's budget, never another workspace's figures or meters. They learn that total
  anyway when a hard stop refuses their launch (the refusal says how much is spent), so the banner shows
  no more than the refusal would.
* operators: an org's budgets only through a support access to it (read: see them; admin: set them, as
  its admins do). A budget is the org's own spending rule, not the provider's bill.

A budget's status is computed over the budget's own scope (every meter of its org, or of its
workspace), not over what the viewer may see: the budget is the org's, whoever looks at it.
"""

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from django.db.models import OuterRef, Q, QuerySet, Subquery

from billing import costs, selectors
from billing.models import Budget, BudgetAlert, Interval, Meter
from billing.periods import month_start, next_month
from paas import authz
from tenancy.models import Organization, Project

SIX = Decimal("0.000001")
TWO = Decimal("0.01")


def budget_list_for(user) -> QuerySet[Budget]:
    """The budgets ``user`` may see (see the module's docstring)."""
    if not authz.is_active_user(user):
        return Budget.objects.none()
    budgets = Budget.objects.select_related("org", "project")
    viewed = Project.objects.filter(authz.permission_q(user, "view_instances", Project))
    visible = authz.permission_q(user, "administer_organization", Organization, prefix="org__")
    visible |= Q(project__in=viewed.values("pk"))
    visible |= Q(project__isnull=True, org__in=viewed.values("org_id"))
    return budgets.filter(visible)


def budget_get_for(user, pk) -> Budget:
    return authz.get_visible(budget_list_for(user), pk, user=user)


def budget_orgs_for(user) -> QuerySet[Organization]:
    """The orgs whose budgets ``user`` may set: org admins theirs (an operator's through an admin
    support access)."""
    return authz.filter_for(user, "administer_organization", Organization.objects.filter(is_active=True))


def may_manage_budgets(user) -> bool:
    return authz.remembered(user, "manages_budgets", lambda: budget_orgs_for(user).exists())


def budgets_for_workspace(user, project: Project) -> list[Budget]:
    """The budgets that apply to ``project`` (its own and its org's) that ``user`` may see."""
    return list(
        budget_list_for(user)
        .filter(Q(project=project) | Q(project__isnull=True, org_id=project.org_id))
        .order_by("project_id")
    )


def scope_meters(budget: Budget) -> QuerySet[Meter]:
    """Every meter a budget counts: its workspace's, or (org-wide) its org's."""
    if budget.project_id:
        return Meter.objects.filter(project_id=budget.project_id)
    return Meter.objects.filter(org_id=budget.org_id)


def month_spend(budget: Budget, now: dt.datetime) -> Decimal:
    """The budget's spend in its currency from the start of ``now``'s month until ``now`` (exact)."""
    start = month_start(now)
    if now <= start:
        return Decimal(0)
    return selectors.spend(scope_meters(budget), start=start, end=now, currency=budget.currency)


def run_rate(meters: QuerySet[Meter], *, currency: str, now: dt.datetime) -> Decimal:
    """What ``meters`` cost per second right now, in ``currency``: an on-demand meter at its price while
    its open interval is running and at its stopped price while stopped or deleting; a reserved meter
    at its price while it exists (launched, not deleted). One query."""
    open_kind = Interval.objects.filter(meter=OuterRef("pk"), ended_at__isnull=True).values("kind")[:1]
    rows = (
        meters.filter(currency=currency, created_at__lte=now, ended_at__isnull=True)
        .annotate(open_kind=Subquery(open_kind))
        .values_list("billing_model", "amount", "stopped_amount", "unit", "open_kind")
    )
    rate = Decimal(0)
    for billing_model, amount, stopped_amount, unit, kind in rows:  # one second of each, by the one formula
        rate += costs.list_cost(
            amount=amount,
            stopped_amount=stopped_amount,
            unit=unit,
            billing_model=billing_model,
            running=int(kind == Interval.Kind.RUNNING),
            stopped=int(kind == Interval.Kind.STOPPED),
            deleting=int(kind == Interval.Kind.DELETING),
            existing=1,
        )
    return rate


@dataclass
class BudgetStatus:
    """A budget's month so far (amounts in the budget's currency)."""

    budget: Budget
    now: dt.datetime
    period: dt.date  # the month's first day
    spend: Decimal
    percent: Decimal
    run_rate_per_hour: Decimal
    projected: Decimal
    thresholds: list[int]
    not_counted: list[dict] = field(default_factory=list)  # {"currency", "spend"}: other currencies
    alerts: list[BudgetAlert] = field(default_factory=list)

    @property
    def exceeded(self) -> bool:
        return self.spend >= self.budget.amount

    @property
    def highest(self) -> int | None:
        return self.thresholds[-1] if self.thresholds else None

    @property
    def month_label(self) -> str:
        return f"{self.period:%B %Y}"


def thresholds_crossed(spend: Decimal, amount: Decimal) -> list[int]:
    return [t for t in Budget.THRESHOLDS if spend * 100 >= Decimal(amount) * t]


def budget_status(budget: Budget, now: dt.datetime | None = None) -> BudgetStatus:
    """The budget's status at ``now`` (default: the current second).

    * spend so far: ``billing.selectors.spend`` over every meter of the budget's scope, from the month's
      start until ``now``, in the budget's currency; meters priced in another currency are not counted
      (``not_counted`` lists their spend per currency);
    * percent used = spend / amount × 100;
    * projected month-end spend = spend so far + the run-rate now (what the meters running now cost per
      hour: :func:`run_rate`) × the hours left until the month ends. It assumes what runs now keeps
      running and nothing else starts;
    * thresholds crossed: those of 50, 75, 90, 100 % that the spend so far has reached.
    """
    now = (now or selectors.now_second()).replace(microsecond=0)
    start, end = month_start(now), next_month(now)
    meters = scope_meters(budget)
    spent = month_spend(budget, now)
    per_second = run_rate(meters, currency=budget.currency, now=now)
    left = int((end - now).total_seconds())
    projected = (spent + per_second * left).quantize(SIX)
    not_counted = []
    if now > start:
        others = (
            selectors.meters_in_period(meters, start=start, end=now)
            .exclude(currency=budget.currency)
            .values_list("currency", flat=True)
            .distinct()
        )
        for currency in sorted(set(others)):
            other = selectors.spend(meters, start=start, end=now, currency=currency)
            not_counted.append({"currency": currency, "spend": other.quantize(SIX)})
    return BudgetStatus(
        budget=budget,
        now=now,
        period=start.date(),
        spend=spent.quantize(SIX),
        percent=(spent * 100 / Decimal(budget.amount)).quantize(TWO),
        run_rate_per_hour=(per_second * 3600).quantize(SIX),
        projected=projected,
        thresholds=thresholds_crossed(spent, budget.amount),
        not_counted=not_counted,
    )


def alerts_this_month(budgets: list[Budget], now: dt.datetime) -> dict[int, list[BudgetAlert]]:
    """The alerts raised in ``now``'s month, per budget id (one query)."""
    out: dict[int, list[BudgetAlert]] = {b.pk: [] for b in budgets}
    rows = BudgetAlert.objects.filter(
        budget_id__in=[b.pk for b in budgets], period=month_start(now).date()
    ).order_by("threshold")
    for alert in rows:
        out[alert.budget_id].append(alert)
    return out


def statuses(budgets: list[Budget], now: dt.datetime | None = None) -> dict[int, BudgetStatus]:
    """Each budget's status with its alerts of the month."""
    now = (now or selectors.now_second()).replace(microsecond=0)
    alerts = alerts_this_month(budgets, now)
    out = {}
    for budget in budgets:
        status = budget_status(budget, now)
        status.alerts = alerts[budget.pk]
        out[budget.pk] = status
    return out
