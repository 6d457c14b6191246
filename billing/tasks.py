"""django-q2 entry points of billing (scheduled in billing/migrations/0002_schedules.py)."""


def usage_rollup() -> dict:
    """Scheduled every 5 minutes: roll up every completed hour not rolled up yet, and the current hour
    so far (``billing.rollup``). Safe to run twice, or after a worker died half-way."""
    from billing import metering, rollup

    metering.meter_untracked()
    return rollup.rollup_pending()


def budgets_check() -> int:
    """Scheduled every 5 minutes: raise the budget alerts whose threshold the month's spend crossed
    (each once per month), by email and in the portal (``billing.budgets``). Returns how many."""
    from billing import budgets

    return budgets.budgets_check()
