"""Budgets: setting them, the alerts at 50, 75, 90 and 100 percent of a month's spend, and the hard stop.

* :func:`budget_set` / :func:`budget_delete`: an org admin (``administer_organization`` on the org) or an
  operator sets the monthly budget of an org or of one of its workspaces.
* :func:`budgets_check` (the scheduled task ``billing.tasks.budgets_check``, every 5 minutes): for every
  budget, each threshold the month's spend so far has reached raises a :class:`BudgetAlert` once per
  month. The row's unique constraint makes it exactly once, even with two workers checking at the same
  time: the alert is inserted with ``get_or_create`` (the second insert waits for the first to commit,
  fails on the constraint and finds the row), and only the worker whose insert created it audits it and
  emails it, on commit. The email goes to the org admins (and, for a workspace budget, the workspace
  admins); the portal shows the alerts as a banner on the workspace's landing page, the studio on its
  budgets page.
* :func:`hard_stop_check` (a launch check, registered in ``billing.apps``): when the org's or the
  workspace's budget has ``hard_stop`` and the month's spend has reached its amount, new compute
  launches, starts and service deploys are refused (the prepaid model).
"""

import datetime as dt
import logging
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q

from billing import budget_selectors
from billing.costs import money_shown
from billing.models import Budget, BudgetAlert
from billing.periods import month_start
from billing.selectors import now_second
from catalog.pricing import is_currency
from paas import authz
from paas.audit import audit_log
from paas.errors import Conflict, NotFound, ValidationFailed
from paas.mail import send_email
from tenancy.models import Organization, Project, User
from tenancy.roles import Role
from tenancy.selectors import org_list_for

log = logging.getLogger(__name__)

MAX_AMOUNT = Decimal(10) ** 12  # the column holds 14 digits, 2 of them after the point
EMAIL_RETRY_AFTER = dt.timedelta(minutes=10)


# --- setting budgets ------------------------------------------------------------------------------------


def clean_amount(value) -> Decimal:
    try:
        amount = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise ValidationFailed("Invalid budget.", fields={"amount": "A number, e.g. 500.00."}) from None
    if not amount.is_finite():
        raise ValidationFailed("Invalid budget.", fields={"amount": "A number, e.g. 500.00."})
    if amount <= 0:
        raise ValidationFailed("Invalid budget.", fields={"amount": "More than zero."})
    if amount >= MAX_AMOUNT:
        raise ValidationFailed("Invalid budget.", fields={"amount": "Less than 1,000,000,000,000."})
    if amount != amount.quantize(Decimal("0.01")):
        raise ValidationFailed("Invalid budget.", fields={"amount": "At most 2 decimal places."})
    return amount.quantize(Decimal("0.01"))


def clean_currency(value) -> str:
    currency = str(value or "").strip().upper()
    if not is_currency(currency):
        raise ValidationFailed(
            "Invalid budget.", fields={"currency": "A three-letter ISO 4217 code, e.g. USD."}
        )
    return currency


def _require_admin(actor, org: Organization) -> None:
    if not org_list_for(actor).filter(pk=org.pk).exists():
        raise NotFound("No such organization.")
    authz.require(
        actor, "administer_organization", org, message="Only the org's admins and operators set budgets."
    )


def _shown(budget: Budget) -> dict:
    return {"amount": str(budget.amount), "currency": budget.currency, "hard_stop": budget.hard_stop}


def budget_set(
    *,
    actor,
    org: Organization,
    project: Project | None = None,
    amount,
    currency: str = "USD",
    hard_stop: bool = False,
) -> Budget:
    """Create or update the monthly budget of ``org`` (``project`` empty) or of its workspace ``project``."""
    _require_admin(actor, org)
    errors = {}
    try:
        amount = clean_amount(amount)
    except ValidationFailed as exc:
        errors |= exc.fields
    try:
        currency = clean_currency(currency)
    except ValidationFailed as exc:
        errors |= exc.fields
    if project is not None and project.org_id != org.pk:
        errors["project"] = ["A workspace of this organization."]
    if errors:
        raise ValidationFailed("Invalid budget.", fields=errors)
    with transaction.atomic():
        Organization.objects.select_for_update().get(pk=org.pk)  # one writer of an org's budgets at a time
        budget = Budget.objects.filter(org=org, project=project).first()
        previous = _shown(budget) if budget else None
        if budget is None:
            try:
                with transaction.atomic():
                    budget = Budget.objects.create(
                        org=org,
                        project=project,
                        amount=amount,
                        currency=currency,
                        hard_stop=bool(hard_stop),
                        created_by=actor if authz.is_active_user(actor) else None,
                    )
            except IntegrityError:  # the project was deleted meanwhile, or a constraint we did not foresee
                raise Conflict("The budget could not be saved; try again.", code="budget_conflict") from None
        else:
            budget.amount, budget.currency, budget.hard_stop = amount, currency, bool(hard_stop)
            budget.save(update_fields=["amount", "currency", "hard_stop", "updated_at"])
        audit_log(
            actor=actor,
            action="budget.set",
            target=budget,
            org=org,
            project=project,
            details={"scope": _scope(budget), "previous": previous, **_shown(budget)},
        )
    return budget


def budget_update(*, actor, budget: Budget, **changes) -> Budget:
    """Change a budget's amount, currency or hard stop (its scope is fixed)."""
    values = {"amount": budget.amount, "currency": budget.currency, "hard_stop": budget.hard_stop}
    values |= {k: v for k, v in changes.items() if k in values}
    return budget_set(actor=actor, org=budget.org, project=budget.project, **values)


def budget_delete(*, actor, budget: Budget) -> None:
    _require_admin(actor, budget.org)
    with transaction.atomic():
        audit_log(
            actor=actor,
            action="budget.delete",
            target=budget,
            org=budget.org,
            project=budget.project,
            details={"scope": _scope(budget), **_shown(budget)},
        )
        Budget.objects.filter(pk=budget.pk).delete()


def _scope(budget: Budget) -> str:
    if budget.project_id:
        return f"workspace {budget.project.name} of {budget.org.name}"
    return f"organization {budget.org.name}"


# --- alerts ---------------------------------------------------------------------------------------------


def budgets_check(now: dt.datetime | None = None) -> int:
    """Raise the alerts whose thresholds this month's spend has reached (each once per budget and month);
    email each on commit. Returns how many alerts this call raised."""
    now = (now or now_second()).replace(microsecond=0)
    raised = 0
    budgets = Budget.objects.select_related("org", "project").filter(org__is_active=True).order_by("pk")
    for budget in budgets.iterator():
        status = budget_selectors.budget_status(budget, now)
        if status.thresholds:
            raised += _raise_alerts(budget, status)
    _email_unsent(now)
    return raised


def _raise_alerts(budget: Budget, status) -> int:
    period = status.period
    known = set(BudgetAlert.objects.filter(budget=budget, period=period).values_list("threshold", flat=True))
    if known.issuperset(status.thresholds):
        return 0
    created = []
    with transaction.atomic():
        for threshold in status.thresholds:  # ascending: concurrent checks insert in the same order
            if threshold in known:
                continue
            alert, new = BudgetAlert.objects.get_or_create(
                budget=budget,
                period=period,
                threshold=threshold,
                defaults={"spend": status.spend, "projected": status.projected},
            )
            if not new:
                continue
            created.append(alert.pk)
            audit_log(
                actor=None,
                action="budget.alert",
                target=budget,
                org=budget.org,
                project=budget.project,
                details={
                    "scope": _scope(budget),
                    "month": f"{period:%Y-%m}",
                    "threshold": threshold,
                    "spend": str(status.spend),
                    "amount": str(budget.amount),
                    "currency": budget.currency,
                    "projected": str(status.projected),
                },
            )
        if created:
            ids = list(created)
            transaction.on_commit(lambda: email_alerts(ids))
    return len(created)


def recipients(budget: Budget) -> list[str]:
    """The org's admins and, for a workspace budget, the workspace's admins (active, with an address)."""
    holds = Q(role_assignments__role=Role.ORG_ADMIN, role_assignments__org_id=budget.org_id)
    if budget.project_id:
        holds |= Q(
            role_assignments__role=Role.WORKSPACE_ADMIN, role_assignments__project_id=budget.project_id
        )
    users = User.objects.filter(holds, is_active=True).exclude(email="")
    return sorted(set(users.values_list("email", flat=True)))


def _claim(alert_ids: list[int]) -> list[BudgetAlert]:
    """Mark the alerts emailed and return those this call marked (the others are someone else's)."""
    claimed = []
    for pk in alert_ids:
        if BudgetAlert.objects.filter(pk=pk, emailed_at__isnull=True).update(emailed_at=now_second()):
            claimed.append(pk)
    return list(BudgetAlert.objects.filter(pk__in=claimed).select_related("budget__org", "budget__project"))


def email_alerts(alert_ids: list[int]) -> None:
    """Email the given alerts (one email per budget, naming the highest threshold). An alert is claimed
    before its email is sent (``emailed_at``), so no two workers send it; if sending fails the claim is
    undone and a later check sends it."""
    alerts = _claim(alert_ids)
    by_budget: dict[int, list[BudgetAlert]] = {}
    for alert in alerts:
        by_budget.setdefault(alert.budget_id, []).append(alert)
    for group in by_budget.values():
        group.sort(key=lambda a: a.threshold)
        top = group[-1]
        budget = top.budget
        to = recipients(budget)
        if not to:
            continue
        what = f"workspace {budget.project.display_name}" if budget.project_id else "organization"
        subject = (
            f"Budget alert: {budget.org.display_name} {what} at {top.threshold}% of its "
            f"{top.period:%B %Y} budget"
        )
        context = {
            "what": what,
            "budget": budget,
            "top": top,
            "spend": money_shown(top.spend),
            "amount": money_shown(budget.amount),
            "projected": money_shown(top.projected),
            "reached": ", ".join(f"{a.threshold}%" for a in group),
            "studio_url": f"{settings.PAAS_BASE_URL}/studio/billing/budget/",
        }
        try:
            send_email(
                to=to,
                subject=subject,
                template="billing/budget_alert_email.txt",
                context=context,
                org=budget.org,
            )
        except Exception:  # the mail server: leave the alerts unsent, a later check tries again
            log.exception("budget alert email failed for budget %s", budget.pk)
            BudgetAlert.objects.filter(pk__in=[a.pk for a in group]).update(emailed_at=None)


def _email_unsent(now: dt.datetime) -> None:
    """Alerts of this month whose email was never sent (the mail server was down, or a worker died
    between its commit and the email): send them now, once they are old enough that their own worker
    is not about to."""
    stale = BudgetAlert.objects.filter(
        emailed_at__isnull=True,
        period=month_start(now).date(),
        created_at__lt=now - EMAIL_RETRY_AFTER,
    ).values_list("pk", flat=True)
    ids = list(stale)
    if ids:
        email_alerts(ids)


# --- hard stop ------------------------------------------------------------------------------------------


def hard_stop_check(*, project, kind: str = "compute", **kwargs) -> None:
    """A launch check (``instances.launch_checks``): refuse a launch, start or service deploy in
    ``project`` when its workspace's or its org's budget has a hard stop and this month's spend has
    reached it. One query when neither budget has a hard stop."""
    budgets = list(
        Budget.objects.filter(org_id=project.org_id, hard_stop=True)
        .filter(Q(project__isnull=True) | Q(project_id=project.pk))
        .select_related("org", "project")
        .order_by("-project_id")  # the workspace's first
    )
    if not budgets:
        return
    now = now_second()
    for budget in budgets:
        spent = budget_selectors.month_spend(budget, now)
        if spent >= budget.amount:
            whose = (
                f"The workspace {budget.project.display_name}'s"
                if budget.project_id
                else f"The organization {budget.org.display_name}'s"
            )
            what = "deploy" if kind == "service" else "launch"
            raise Conflict(
                f"{whose} budget of {money_shown(budget.amount)} {budget.currency} for {now:%B %Y} is spent "
                f"({money_shown(spent)} {budget.currency}); nothing new may {what} until next month. Ask an "
                "org admin to raise the budget or lift its hard stop.",
                code="budget_exceeded",
            )
