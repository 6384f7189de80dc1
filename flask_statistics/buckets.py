"""Time buckets that follow the local calendar: where each hour, day, week (from
Monday) and month of the dashboard's time zone begins, as naive UTC instants.

A local day is not always 24 hours (23 or 25 on daylight-saving days), zones at :30
and :45 offsets start their hours and days off the UTC hour, and some zones skip
midnight itself when the clocks go forward. Every boundary here is therefore worked
out from the zone's rules rather than stepped by a fixed width.
"""

from __future__ import annotations

import typing as t
from datetime import date, datetime, timedelta, timezone, tzinfo

Unit = t.Literal["hour", "day", "week", "month", "year"]
UNITS: tuple[Unit, ...] = ("hour", "day", "week", "month", "year")
#: Windows touching at most this many local days are shown by the hour.
HOURLY_DAYS = 2
#: And so are windows this short, wherever they fall: the rolling 24 hours.
HOURLY_SPAN = timedelta(hours=25)
#: The most buckets a chart gets: the finest unit that stays within it is used.
MAX_POINTS = 200

_HOUR = timedelta(hours=1)
_SECOND = timedelta(seconds=1)


def to_local(moment: datetime, tz: tzinfo) -> datetime:
    """The aware local time in ``tz`` of the naive UTC instant ``moment``."""
    return moment.replace(tzinfo=timezone.utc).astimezone(tz)


def _wall(moment: datetime, tz: tzinfo) -> datetime:
    # The local wall-clock reading, naive (comparisons of naive times ignore fold).
    return to_local(moment, tz).replace(tzinfo=None)


def _to_utc(wall: datetime, tz: tzinfo, fold: int) -> datetime:
    aware = wall.replace(tzinfo=tz, fold=fold)
    return aware.astimezone(timezone.utc).replace(tzinfo=None)


def first_instant(wall: datetime, tz: tzinfo) -> datetime:
    """The first naive UTC instant at which the clock in ``tz`` reads ``wall`` or later.

    A repeated wall time (clocks going back) gives its first occurrence. A skipped one
    (clocks going forward over it, e.g. a midnight in America/Santiago) gives the
    instant the clocks jumped: the first moment of the local hour or day.
    """
    one, other = _to_utc(wall, tz, 0), _to_utc(wall, tz, 1)
    early, late = min(one, other), max(one, other)
    if _wall(early, tz) == wall:
        return early
    # In a gap: the clock reads before ``wall`` at ``early`` and after it at
    # ``late``; the jump between them is at a whole second.
    early = early.replace(microsecond=0)
    while late - early > _SECOND:
        middle = early + ((late - early) // 2 // _SECOND) * _SECOND
        if _wall(middle, tz) >= wall:
            late = middle
        else:
            early = middle
    return late


def _local_days(since: datetime, until: datetime, tz: tzinfo) -> tuple[date, date]:
    # The first and last local day the window [since, until) touches.
    first = _wall(since, tz).date()
    last = _wall(max(since, until - timedelta(microseconds=1)), tz).date()
    return first, last


def _period_start(day: date, unit: Unit) -> date:
    if unit == "week":
        return day - timedelta(days=day.weekday())
    if unit == "month":
        return day.replace(day=1)
    if unit == "year":
        return day.replace(month=1, day=1)
    return day


def _next_period(day: date, unit: Unit) -> date:
    # ``day`` is the start of a period; the start of the one after it.
    if unit == "day":
        return day + timedelta(days=1)
    if unit == "week":
        return day + timedelta(days=7)
    if unit == "month":
        return date(day.year + day.month // 12, day.month % 12 + 1, 1)
    return date(day.year + 1, 1, 1)


def _periods(first: date, last: date, unit: Unit) -> int:
    # How many periods of ``unit`` the days first..last touch.
    if unit == "day":
        return (last - first).days + 1
    if unit == "week":
        return (_period_start(last, "week") - _period_start(first, "week")).days // 7 + 1
    if unit == "month":
        return (last.year - first.year) * 12 + last.month - first.month + 1
    return last.year - first.year + 1


def choose_unit(since: datetime, until: datetime, tz: tzinfo) -> Unit:
    """Hours for a window within two local days or of at most 25 hours; beyond, the
    finest of day, week, month and year that gives at most :data:`MAX_POINTS`
    buckets."""
    first, last = _local_days(since, until, tz)
    if _periods(first, last, "day") <= HOURLY_DAYS or until - since <= HOURLY_SPAN:
        return "hour"
    for unit in UNITS[1:-1]:
        if _periods(first, last, unit) <= MAX_POINTS:
            return unit
    return "year"


def starts(since: datetime, until: datetime, tz: tzinfo, unit: Unit) -> list[datetime]:
    """The naive UTC start of every bucket of ``unit`` in ``[since, until)``, in order.

    The first bucket starts at ``since`` and the last one runs to ``until``, so
    either may be part of a period. Every other start is where a local period
    begins. A period the clocks skip entirely has no bucket.
    """
    found = {since}
    if unit == "hour":
        found |= _hour_starts(since, until, tz)
    else:
        first, last = _local_days(since, until, tz)
        day = _next_period(_period_start(first, unit), unit)
        while day <= last:
            found.add(first_instant(datetime.combine(day, datetime.min.time()), tz))
            day = _next_period(day, unit)
    return sorted(moment for moment in found if since <= moment < until) or [since]


def _hour_starts(since: datetime, until: datetime, tz: tzinfo) -> set[datetime]:
    # Every instant in the window at which a local hour begins; an hour the clocks
    # repeat begins twice, so a 25-hour day has 25 buckets.
    found = set()
    wall = _wall(since, tz).replace(minute=0, second=0, microsecond=0)
    last = _wall(until, tz) + _HOUR
    while wall <= last:
        found.add(first_instant(wall, tz))
        again = _to_utc(wall, tz, 1)
        if _wall(again, tz) == wall:
            found.add(again)
        wall += _HOUR
    return {moment for moment in found if since < moment < until}


def period_start(moment: datetime, tz: tzinfo, unit: Unit) -> datetime:
    """The local wall-clock start of the period of ``unit`` holding the naive UTC
    instant ``moment`` (aware, in ``tz``); the name a bucket is shown by."""
    local = to_local(moment, tz)
    if unit == "hour":
        return local.replace(minute=0, second=0, microsecond=0)
    day = _period_start(local.date(), unit)
    return datetime.combine(day, datetime.min.time(), tzinfo=tz)


def period_days(day: date, unit: Unit) -> tuple[date, date]:
    """The first and last local day of the period of ``unit`` holding ``day``."""
    first = _period_start(day, unit)
    if unit == "hour":
        return first, first
    return first, _next_period(first, unit) - timedelta(days=1)
