"""Warm pools' schedules: the capacity in force at a given instant, and when it next changes.

Pure over rows (a pool and its ``PoolSchedule`` rows; nothing here writes). A rule applies on its days
between ``start`` and ``end`` read on the wall clock of its own time zone (``zoneinfo``), so "weekdays
08:00-20:00 Europe/Paris" follows Paris across daylight-saving changes:

- ``start == end``: the whole day (local midnight to midnight) on each of ``days``;
- ``start < end``: from ``start`` to just before ``end`` on each of ``days``;
- ``end < start``: from ``start`` past midnight to just before ``end`` the next morning; the *start*
  day is the one that must be in ``days`` (Friday 22:00-06:00 covers Saturday's early hours).

The first rule by ``position`` (then id) that applies wins; when none applies, ``pool.desired``.
A wall time that does not exist on a spring-forward day (02:30 in Paris on the last Sunday of March)
is simply never seen on that day: a rule starting then is in force from the jump (03:00) on.

Also the validation of a schedule's days, times and time zone, used by ``instances.pools``.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable, Sequence
from zoneinfo import ZoneInfo, available_timezones

from paas.errors import ValidationFailed

DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
#: How far ahead ``next_change`` looks.
HORIZON = dt.timedelta(days=8)
WARM_POOL = "warm_pool"  # catalog.models.ComputeProfile.Allocation.WARM_POOL (kept import-free)


# --- validation ---------------------------------------------------------------------------------------


@functools.cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def clean_timezone(name: object) -> str:
    """An IANA zone name (``Europe/Paris``, ``UTC``), or ValidationFailed on the ``timezone`` field."""
    text = name.strip() if isinstance(name, str) else ""
    if not text:
        raise ValidationFailed("Invalid schedule.", fields={"timezone": "Choose a time zone (IANA name)."})
    if text not in _zones():
        raise ValidationFailed(
            "Invalid schedule.",
            fields={"timezone": f"Unknown time zone {text[:64]!r}: use an IANA name such as Europe/Paris."},
        )
    return text


def clean_days(days: object) -> list[int]:
    """Weekdays as a sorted list of distinct ints 0 (Monday) .. 6 (Sunday); at least one."""
    if not isinstance(days, list | tuple) or not days:
        raise ValidationFailed(
            "Invalid schedule.",
            fields={"days": "Choose at least one day of the week (0 Monday ... 6 Sunday)."},
        )
    cleaned = set()
    for day in days:
        if isinstance(day, bool) or not isinstance(day, int) or not 0 <= day <= 6:
            raise ValidationFailed(
                "Invalid schedule.", fields={"days": f"{day!r} is not a day: use 0 (Monday) to 6 (Sunday)."}
            )
        cleaned.add(day)
    return sorted(cleaned)


def clean_time(field: str, value: object) -> dt.time:
    """A wall-clock time: a ``datetime.time`` or ``HH:MM[:SS]`` text."""
    if isinstance(value, dt.time):
        return value.replace(tzinfo=None)
    if isinstance(value, str):
        try:
            return dt.time.fromisoformat(value.strip())
        except ValueError:
            pass
    raise ValidationFailed("Invalid schedule.", fields={field: "A time of day, HH:MM (24-hour clock)."})


def clean_count(field: str, value: object, *, allow_none: bool = False) -> int | None:
    """A count that is not negative (``desired``, ``max_gpus``)."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationFailed("Invalid input.", fields={field: "A whole number, 0 or more."})
    if value < 0:
        raise ValidationFailed("Invalid input.", fields={field: "Must not be negative."})
    return value


def describe(schedule) -> str:
    """``Mon-Fri 08:00-20:00 Europe/Paris: 9`` (for audit details and pages)."""
    days = sorted(schedule.days)
    if days == list(range(7)):
        when = "every day"
    elif len(days) > 2 and days == list(range(days[0], days[-1] + 1)):
        when = f"{DAY_NAMES[days[0]]}-{DAY_NAMES[days[-1]]}"
    else:
        when = ",".join(DAY_NAMES[d] for d in days)
    hours = "all day" if schedule.start == schedule.end else f"{schedule.start:%H:%M}-{schedule.end:%H:%M}"
    return f"{when} {hours} {schedule.timezone}: {schedule.desired}"


# --- the capacity in force ------------------------------------------------------------------------------


def _aware(when: dt.datetime) -> dt.datetime:
    if when.tzinfo is None:
        raise ValueError("pool schedules need an aware datetime")
    return when


def applies(schedule, when: dt.datetime) -> bool:
    """Whether ``schedule`` is in force at the instant ``when`` (aware)."""
    local = _aware(when).astimezone(ZoneInfo(schedule.timezone))
    day, clock = local.weekday(), local.time().replace(tzinfo=None)
    days = set(schedule.days)
    start, end = schedule.start, schedule.end
    if start == end:
        return day in days
    if start < end:
        return day in days and start <= clock < end
    if clock >= start:  # past midnight rule, evening part: today started it
        return day in days
    return clock < end and (day - 1) % 7 in days  # morning part: yesterday started it


def _ordered(pool, schedules: Iterable | None) -> list:
    rows = list(pool.schedules.all()) if schedules is None else list(schedules)
    return sorted(rows, key=lambda s: (s.position, s.pk or 0))


def desired_at(pool, when: dt.datetime, schedules: Iterable | None = None) -> int:
    """The capacity ``pool``'s schedules set at ``when``: the first applying rule's, else ``pool.desired``
    (whether the pool is enabled is :func:`effective_desired`'s business)."""
    for schedule in _ordered(pool, schedules):
        if applies(schedule, when):
            return schedule.desired
    return pool.desired


def idle_reason(pool) -> str:
    """Why the pool keeps nothing whatever its schedules say, or "" (it is live)."""
    profile = pool.profile
    if not pool.enabled:
        return "pool disabled"
    if profile is None:
        return "profile deleted"
    if not profile.published:
        return "profile unpublished"
    if profile.allocation_strategy != WARM_POOL:
        return "profile allocates on demand"
    return ""


def effective_desired(pool, when: dt.datetime, schedules: Iterable | None = None) -> int:
    """What the loop keeps ready at ``when``: 0 for a disabled pool or a profile that is unpublished or
    on demand; otherwise :func:`desired_at`."""
    return 0 if idle_reason(pool) else desired_at(pool, when, schedules)


def _transitions(zone: ZoneInfo, begin: dt.datetime, end: dt.datetime) -> list[dt.datetime]:
    """The instants in [begin, end] at which ``zone``'s UTC offset changes (DST), to the second."""

    def offset(seconds: int) -> dt.timedelta | None:
        return dt.datetime.fromtimestamp(seconds, zone).utcoffset()

    found = []
    t, stop = int(begin.timestamp()), int(end.timestamp())
    current = offset(t)
    while t < stop:
        nxt = min(t + 3600, stop)
        if offset(nxt) != current:
            lo, hi = t, nxt  # offset(lo) == current != offset(hi): the change is in (lo, hi]
            while hi - lo > 1:
                mid = (lo + hi) // 2
                lo, hi = (mid, hi) if offset(mid) == current else (lo, mid)
            found.append(dt.datetime.fromtimestamp(hi, dt.UTC))
            current = offset(hi)
        t = nxt
    return found


def _candidates(schedules: Sequence, begin: dt.datetime, end: dt.datetime) -> set[dt.datetime]:
    """Every instant in (begin, end] at which some rule may start or stop applying: its start and end
    wall times (both folds of an ambiguous one), local midnights, and the zones' DST changes."""
    out: set[dt.datetime] = set()
    utc = dt.UTC
    for zone_name in {s.timezone for s in schedules}:
        zone = ZoneInfo(zone_name)
        clocks = {dt.time(0, 0)}
        for s in schedules:
            if s.timezone == zone_name:
                clocks.update((s.start, s.end))
        first = begin.astimezone(zone).date() - dt.timedelta(days=1)
        for offset in range((end - begin).days + 3):
            date = first + dt.timedelta(days=offset)
            for clock in clocks:
                for fold in (0, 1):
                    out.add(dt.datetime.combine(date, clock, tzinfo=zone).replace(fold=fold).astimezone(utc))
        out.update(_transitions(zone, begin, end))
    return {t for t in out if begin < t <= end}


def next_change(pool, when: dt.datetime, schedules: Iterable | None = None) -> tuple[dt.datetime, int] | None:
    """The next instant after ``when`` (within 8 days) at which the capacity the schedules set changes,
    with the new capacity; None when it stays the same that long (or the pool has no schedules)."""
    rows = _ordered(pool, schedules)
    if not rows:
        return None
    begin = _aware(when).astimezone(dt.UTC)
    current = desired_at(pool, begin, rows)
    for instant in sorted(_candidates(rows, begin, begin + HORIZON)):
        value = desired_at(pool, instant, rows)
        if value != current:
            return instant, value
    return None
