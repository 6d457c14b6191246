"""Warm pools' schedules (pure: rows in, capacity out): weekdays 8-20 at 9 and weekends at 2, rules
past midnight, the rule's own time zone across a daylight-saving change, and the next change."""

import datetime as dt
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest

from instances import pool_schedules as ps
from paas.errors import ValidationFailed

UTC = dt.UTC
PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")


def rule(pk, days, start, end, desired, zone="UTC", position=0):
    return SimpleNamespace(
        pk=pk,
        position=position,
        days=days,
        start=dt.time(*start),
        end=dt.time(*end),
        timezone=zone,
        desired=desired,
    )


def pool(desired=1, *, enabled=True, published=True, strategy="warm_pool"):
    profile = SimpleNamespace(published=published, allocation_strategy=strategy)
    return SimpleNamespace(desired=desired, enabled=enabled, profile=profile)


WEEKDAYS = rule(1, [0, 1, 2, 3, 4], (8,), (20,), 9, "Europe/Paris")
WEEKENDS = rule(2, [5, 6], (0,), (0,), 2, "Europe/Paris", position=1)
OFFICE = [WEEKDAYS, WEEKENDS]


def paris(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=PARIS)


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        (paris(2026, 6, 1, 7, 59), 1),  # Monday before 8: no rule, the pool's own desired
        (paris(2026, 6, 1, 8, 0), 9),  # Monday 8:00 sharp
        (paris(2026, 6, 5, 19, 59, 59), 9),  # Friday just before 20:00
        (paris(2026, 6, 5, 20, 0), 1),  # Friday 20:00: the end is excluded
        (paris(2026, 6, 6, 0, 0), 2),  # Saturday midnight: the weekend's whole day
        (paris(2026, 6, 7, 23, 59), 2),  # Sunday night
        (paris(2026, 6, 8, 0, 0), 1),  # Monday midnight
    ],
)
def test_weekdays_8_to_20_at_9_and_weekends_at_2(when, expected):
    assert ps.desired_at(pool(1), when, OFFICE) == expected


def test_the_rule_reads_its_own_zone_whatever_the_instant_is_given_in():
    monday_8_paris_in_utc = dt.datetime(2026, 6, 1, 6, 0, tzinfo=UTC)  # CEST = UTC+2
    assert ps.desired_at(pool(1), monday_8_paris_in_utc, OFFICE) == 9
    assert ps.desired_at(pool(1), monday_8_paris_in_utc - dt.timedelta(seconds=1), OFFICE) == 1
    # In winter (CET = UTC+1) the same wall time is another UTC hour.
    assert ps.desired_at(pool(1), dt.datetime(2026, 1, 5, 7, 0, tzinfo=UTC), OFFICE) == 9
    assert ps.desired_at(pool(1), dt.datetime(2026, 1, 5, 6, 59, tzinfo=UTC), OFFICE) == 1
    with pytest.raises(ValueError, match="aware"):
        ps.desired_at(pool(1), dt.datetime(2026, 1, 5, 7, 0), OFFICE)


def test_overnight_rule_belongs_to_its_start_day():
    friday_night = rule(1, [4], (22,), (6,), 5, "Europe/Paris")  # Fri 22:00 -> Sat 06:00
    p = pool(0)
    assert ps.desired_at(p, paris(2026, 6, 5, 21, 59), [friday_night]) == 0
    assert ps.desired_at(p, paris(2026, 6, 5, 22, 0), [friday_night]) == 5
    assert ps.desired_at(p, paris(2026, 6, 6, 3, 0), [friday_night]) == 5  # Saturday early: Friday's rule
    assert ps.desired_at(p, paris(2026, 6, 6, 6, 0), [friday_night]) == 0
    assert (
        ps.desired_at(p, paris(2026, 6, 6, 23, 0), [friday_night]) == 0
    )  # Saturday evening: not a start day
    assert ps.desired_at(p, paris(2026, 6, 5, 3, 0), [friday_night]) == 0  # Friday early: Thursday is not in
    # Sunday night into Monday wraps the week.
    sunday = rule(2, [6], (23,), (1,), 3)
    assert ps.desired_at(p, dt.datetime(2026, 6, 8, 0, 30, tzinfo=UTC), [sunday]) == 3


def test_first_rule_by_position_wins():
    low = rule(1, list(range(7)), (0,), (0,), 4, position=2)
    high = rule(2, [0], (9,), (10,), 7, position=1)
    monday_9 = dt.datetime(2026, 6, 1, 9, 30, tzinfo=UTC)
    assert ps.desired_at(pool(1), monday_9, [low, high]) == 7
    assert ps.desired_at(pool(1), monday_9 + dt.timedelta(hours=1), [low, high]) == 4


def test_effective_desired_is_zero_for_a_disabled_pool_or_an_unpublished_or_on_demand_profile():
    when = paris(2026, 6, 1, 9)
    assert ps.effective_desired(pool(1), when, OFFICE) == 9
    assert ps.effective_desired(pool(1, enabled=False), when, OFFICE) == 0
    assert ps.effective_desired(pool(1, published=False), when, OFFICE) == 0
    assert ps.effective_desired(pool(1, strategy="on_demand"), when, OFFICE) == 0
    assert ps.idle_reason(pool(1, published=False)) == "profile unpublished"


def test_across_the_spring_forward_change_the_wall_clock_rules():
    # Europe/Paris jumps from 02:00 CET to 03:00 CEST on Sunday 29 March 2026 (01:00 UTC).
    early = rule(1, [6], (2, 30), (4,), 5, "Europe/Paris")  # 02:30 does not exist that day
    p = pool(0)
    jump = dt.datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    assert ps.desired_at(p, jump - dt.timedelta(seconds=1), [early]) == 0  # 01:59:59 CET
    assert ps.desired_at(p, jump, [early]) == 5  # 03:00 CEST: past 02:30 on the wall clock
    assert ps.next_change(p, dt.datetime(2026, 3, 28, 12, tzinfo=UTC), [early]) == (jump, 5)
    # Until 04:00 CEST = 02:00 UTC.
    assert ps.next_change(p, jump, [early]) == (dt.datetime(2026, 3, 29, 2, 0, tzinfo=UTC), 0)
    # The weekday rule starts at 08:00 local on both sides of the change: 07:00 UTC, then 06:00 UTC.
    friday = ps.next_change(pool(1), dt.datetime(2026, 3, 27, 3, tzinfo=UTC), OFFICE)
    assert friday == (dt.datetime(2026, 3, 27, 7, 0, tzinfo=UTC), 9)
    monday = ps.next_change(pool(1), dt.datetime(2026, 3, 29, 23, tzinfo=UTC), OFFICE)
    assert monday == (dt.datetime(2026, 3, 30, 6, 0, tzinfo=UTC), 9)


def test_across_the_fall_back_change_in_new_york():
    # 1 November 2026, 02:00 EDT -> 01:00 EST (06:00 UTC); a rule 00:00-01:30 runs over the repeated hour.
    night = rule(1, [6], (0,), (1, 30), 3, "America/New_York")
    p = pool(0)
    start = dt.datetime(2026, 11, 1, 4, 0, tzinfo=UTC)  # 00:00 EDT
    assert ps.desired_at(p, start, [night]) == 3
    first_end = dt.datetime(2026, 11, 1, 5, 30, tzinfo=UTC)  # 01:30 EDT
    assert ps.next_change(p, start, [night]) == (first_end, 0)
    # The clock goes back to 01:00 (EST) at 06:00 UTC: the wall-clock rule applies again until 01:30 EST.
    assert ps.next_change(p, first_end, [night]) == (dt.datetime(2026, 11, 1, 6, 0, tzinfo=UTC), 3)
    assert ps.desired_at(p, dt.datetime(2026, 11, 1, 6, 31, tzinfo=UTC), [night]) == 0


def test_next_change_walks_the_office_week():
    when = paris(2026, 6, 5, 12)  # Friday noon: 9
    steps = []
    for _ in range(4):
        when, value = ps.next_change(pool(1), when, OFFICE)
        steps.append((when.astimezone(PARIS).strftime("%a %H:%M"), value))
    assert steps == [("Fri 20:00", 1), ("Sat 00:00", 2), ("Mon 00:00", 1), ("Mon 08:00", 9)]


def test_next_change_is_none_without_rules_or_change_within_eight_days():
    assert ps.next_change(pool(1), paris(2026, 6, 1, 9), []) is None
    always = rule(1, list(range(7)), (0,), (0,), 1)  # the same as the pool's own desired: no change
    assert ps.next_change(pool(1), paris(2026, 6, 1, 9), [always]) is None


def test_validation_helpers():
    assert ps.clean_timezone(" Europe/Paris ") == "Europe/Paris"
    for bad in ("Mars/Olympus", "", None, "../etc/passwd", "Europe"):
        with pytest.raises(ValidationFailed) as error:
            ps.clean_timezone(bad)
        assert "timezone" in error.value.fields
    assert "Unknown time zone 'Mars/Olympus'" in _field(ps.clean_timezone, "Mars/Olympus", "timezone")
    assert ps.clean_days([4, 0, 4]) == [0, 4]
    assert "at least one day" in _field(ps.clean_days, [], "days")
    for bad in ([7], [-1], ["mon"], [True], "0,1"):
        with pytest.raises(ValidationFailed):
            ps.clean_days(bad)
    assert ps.clean_time("start", "08:30") == dt.time(8, 30)
    assert "HH:MM" in _field(lambda v: ps.clean_time("start", v), "25:00", "start")
    assert "negative" in _field(lambda v: ps.clean_count("desired", v), -1, "desired")
    assert ps.clean_count("max_gpus", None, allow_none=True) is None
    assert ps.describe(WEEKDAYS) == "Mon-Fri 08:00-20:00 Europe/Paris: 9"
    assert ps.describe(WEEKENDS) == "Sat,Sun all day Europe/Paris: 2"


def _field(check, value, field) -> str:
    with pytest.raises(ValidationFailed) as error:
        check(value)
    return error.value.fields[field][0]
