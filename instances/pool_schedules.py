"""LOCAL STAND-IN (pool-ui branch) for the pool-loop helper's module of the same name: the signatures of
CONTRACTS15, a minimal version so that the pages can be written; replaced by theirs on merge."""

import datetime as dt
from zoneinfo import ZoneInfo

from catalog.models import ComputeProfile


def _applies(rule, when: dt.datetime) -> bool:
    local = when.astimezone(ZoneInfo(rule.timezone))
    t, day = local.time(), local.weekday()
    if rule.start == rule.end:
        return day in rule.days
    if rule.start < rule.end:
        return day in rule.days and rule.start <= t < rule.end
    return (day in rule.days and t >= rule.start) or ((day - 1) % 7 in rule.days and t < rule.end)


def desired_at(pool, when: dt.datetime, schedules=None) -> int:
    rules = list(pool.schedules.all()) if schedules is None else schedules
    for rule in sorted(rules, key=lambda r: (r.position, r.pk or 0)):
        if _applies(rule, when):
            return rule.desired
    return pool.desired


def next_change(pool, when: dt.datetime, schedules=None) -> tuple[dt.datetime, int] | None:
    rules = list(pool.schedules.all()) if schedules is None else schedules
    now = desired_at(pool, when, rules)
    moments = set()
    for rule in rules:
        zone = ZoneInfo(rule.timezone)
        start = when.astimezone(zone).date()
        for offset in range(9):
            day = start + dt.timedelta(days=offset)
            for t in (rule.start, rule.end):
                moment = dt.datetime.combine(day, t, tzinfo=zone)
                if when < moment <= when + dt.timedelta(days=8):
                    moments.add(moment)
    for moment in sorted(moments):
        value = desired_at(pool, moment, rules)
        if value != now:
            return moment.astimezone(dt.UTC), value
    return None


def effective_desired(pool, when: dt.datetime) -> int:
    profile = pool.profile
    if (
        not pool.enabled
        or not profile.published
        or profile.allocation_strategy != ComputeProfile.Allocation.WARM_POOL
    ):
        return 0
    return desired_at(pool, when)
