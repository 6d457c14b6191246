"""Billing periods: whole-second UTC bounds, parsed from what people and billing systems send."""

import datetime as dt

from django.utils.dateparse import parse_date, parse_datetime

from paas.errors import ValidationFailed

UTC = dt.UTC
MAX_DAYS = 400
MIN_YEAR, MAX_YEAR = 2000, 2999


def _bound(name: str, text: str | None, *, end: bool) -> dt.datetime | None:
    if text is None or text == "":
        return None
    text = str(text).strip()
    message = "A date (2026-11-01) or a date and time with its offset (2026-11-01T00:00:00Z)."
    if not text.isascii() or "\x00" in text:
        raise ValidationFailed("Invalid period.", fields={name: message})
    try:
        day = parse_date(text)
        moment = None if day else parse_datetime(text)
        if day is not None:
            moment = dt.datetime.combine(day, dt.time(), tzinfo=UTC)
            if end:
                moment += dt.timedelta(days=1)  # an end date includes that whole day
        if moment is not None:
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            moment = moment.astimezone(UTC).replace(microsecond=0)
    except (ValueError, OverflowError):
        moment = None
    if moment is None or not (MIN_YEAR <= moment.year <= MAX_YEAR):
        raise ValidationFailed(
            "Invalid period.", fields={name: message + f" Years {MIN_YEAR} to {MAX_YEAR}."}
        )
    return moment


def month_start(moment: dt.datetime) -> dt.datetime:
    moment = moment.astimezone(UTC)
    return dt.datetime(moment.year, moment.month, 1, tzinfo=UTC)


def next_month(moment: dt.datetime) -> dt.datetime:
    start = month_start(moment)
    return (start + dt.timedelta(days=32)).replace(day=1)


def parse_period(start: str | None, end: str | None, *, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) in UTC, whole seconds. Defaults: the current month so far. ``end`` as a date is
    inclusive (the whole day). At most 400 days; start before end."""
    begin = _bound("start", start, end=False)
    until = _bound("end", end, end=True)
    if begin is None:
        begin = month_start(until - dt.timedelta(seconds=1) if until else now)
    if until is None:
        until = next_month(begin)
    if until <= begin:
        raise ValidationFailed("Invalid period.", fields={"end": "The end must come after the start."})
    if until - begin > dt.timedelta(days=MAX_DAYS):
        raise ValidationFailed("Invalid period.", fields={"end": f"A period spans at most {MAX_DAYS} days."})
    return begin, until
