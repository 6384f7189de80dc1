"""Where local hours, days, weeks and months begin, in zones with daylight saving,
:30 and :45 offsets, skipped midnights and a skipped day."""

from __future__ import annotations

from datetime import date, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

import pytest

from flask_statistics import buckets
from flask_statistics.filters import Filters, local_midnight_utc, zone as tz_named

HOUR = timedelta(hours=1)


def tz_of(f: Filters) -> tzinfo:
    return tz_named(f.tz)


def lengths(f: Filters, unit: buckets.Unit) -> list[float]:
    starts = buckets.starts(f.since, f.until, tz_of(f), unit)
    return [(b - a) / HOUR for a, b in zip(starts, [*starts[1:], f.until])]


@pytest.mark.parametrize(
    ("zone", "day", "midnight"),
    [
        ("Asia/Kolkata", date(2024, 3, 5), datetime(2024, 3, 4, 18, 30)),
        ("Asia/Kathmandu", date(2024, 3, 5), datetime(2024, 3, 4, 18, 15)),
        ("Australia/Eucla", date(2024, 3, 5), datetime(2024, 3, 4, 15, 15)),
        ("Europe/Berlin", date(2024, 3, 31), datetime(2024, 3, 30, 23)),
        ("Europe/Berlin", date(2024, 4, 1), datetime(2024, 3, 31, 22)),
        # The clocks go from 23:59:59 to 01:00: the day begins at the jump.
        ("America/Santiago", date(2024, 9, 8), datetime(2024, 9, 8, 4)),
        ("Asia/Beirut", date(2024, 3, 31), datetime(2024, 3, 30, 22)),
        # Midnight happens twice (the clocks go from 01:00 back to 00:00): the first.
        ("America/Havana", date(2024, 11, 3), datetime(2024, 11, 3, 4)),
        # 30 December 2011 was skipped in Samoa: it "begins" when 31 December does.
        ("Pacific/Apia", date(2011, 12, 30), datetime(2011, 12, 30, 10)),
        ("Pacific/Apia", date(2011, 12, 31), datetime(2011, 12, 30, 10)),
    ],
)
def test_a_local_day_begins_at_its_first_instant(zone: str, day: date, midnight: datetime) -> None:
    assert local_midnight_utc(day, ZoneInfo(zone)) == midnight


def test_a_wall_time_inside_a_gap_maps_to_the_jump() -> None:
    # Noon on the skipped 30 December 2011 in Samoa comes at the jump, not 24 hours on.
    apia = ZoneInfo("Pacific/Apia")
    assert buckets.first_instant(datetime(2011, 12, 30, 12), apia) == datetime(2011, 12, 30, 10)
    # Lord Howe moves its clocks by half an hour: 02:15 is skipped.
    lord_howe = ZoneInfo("Australia/Lord_Howe")
    assert buckets.first_instant(datetime(2024, 10, 6, 2, 15), lord_howe) == datetime(2024, 10, 5, 15, 30)


def test_hours_of_daylight_saving_days() -> None:
    berlin_autumn = Filters.between(date(2024, 10, 27), date(2024, 10, 27), tz="Europe/Berlin")
    assert lengths(berlin_autumn, "hour") == [1.0] * 25
    new_york_spring = Filters.between(date(2024, 3, 10), date(2024, 3, 10), tz="America/New_York")
    assert lengths(new_york_spring, "hour") == [1.0] * 23
    # A half-hour change: the skipped half hour shortens the hour it falls in.
    lord_howe = Filters.between(date(2024, 10, 6), date(2024, 10, 6), tz="Australia/Lord_Howe")
    assert lengths(lord_howe, "hour") == [1.0, 1.0, 0.5] + [1.0] * 21


@pytest.mark.parametrize(("zone", "minute"), [("Asia/Kolkata", 30), ("Asia/Kathmandu", 15),
                                              ("Australia/Eucla", 15), ("UTC", 0)])
def test_hours_start_on_the_local_hour(zone: str, minute: int) -> None:
    f = Filters.between(date(2024, 3, 4), date(2024, 3, 5), tz=zone)
    starts = buckets.starts(f.since, f.until, tz_of(f), "hour")
    assert len(starts) == 48 and {s.minute for s in starts} == {minute}


def test_weeks_start_on_monday_and_months_on_the_first() -> None:
    f = Filters.between(date(2024, 1, 3), date(2024, 12, 28), tz="America/New_York")
    tz = ZoneInfo(f.tz)
    weeks = buckets.starts(f.since, f.until, tz, "week")
    assert weeks[0] == f.since  # Wednesday: the first week is cut to the window
    later = [buckets.to_local(s, tz) for s in weeks[1:]]
    assert {(w.weekday(), w.hour, w.minute) for w in later} == {(0, 0, 0)}
    assert len(weeks) == 52
    months = buckets.starts(f.since, f.until, tz, "month")
    assert [buckets.to_local(s, tz).date() for s in months[1:]] == [
        date(2024, m, 1) for m in range(2, 13)
    ]
    # March and November have their daylight-saving change inside them.
    assert [round(x) for x in lengths(f, "month")][2:4] == [31 * 24 - 1, 30 * 24]
    assert [round(x) for x in lengths(f, "month")][10] == 30 * 24 + 1


def test_an_empty_window_has_one_bucket() -> None:
    # 30 December 2011 in Samoa starts and ends at the same instant.
    f = Filters.between(date(2011, 12, 30), date(2011, 12, 30), tz="Pacific/Apia")
    assert f.since == f.until
    assert buckets.starts(f.since, f.until, ZoneInfo(f.tz), "day") == [f.since]


@pytest.mark.parametrize(
    ("zone", "now", "hours"),
    [
        ("UTC", datetime(2024, 3, 10, 14, 20), [1.0] * 24),
        # Berlin's clocks go forward: 24 hours, 23 local hours, the skipped one absent.
        ("Europe/Berlin", datetime(2024, 3, 31, 10, 5), [1.0] * 24),
        # Samoa skipped 30 December 2011: the 24 hours touch three dates, still by the hour.
        ("Pacific/Apia", datetime(2011, 12, 30, 10, 30), [1.0] * 24),
        # Lord Howe moves its clocks by half an hour (02:00 becomes 02:30): 24 hours
        # back from 08:00 is 07:30 in the old offset, so the first bucket is half an
        # hour, and so is the hour the clocks skip into.
        ("Australia/Lord_Howe", datetime(2024, 10, 5, 20, 10), [0.5] + [1.0] * 18 + [0.5] + [1.0] * 5),
    ],
)
def test_the_rolling_24_hours_are_hour_buckets(zone: str, now: datetime, hours: list[float]) -> None:
    f = Filters.last_hours(now, tz=zone)
    assert f.since <= now < f.until
    assert buckets.choose_unit(f.since, f.until, tz_of(f)) == "hour"
    assert lengths(f, "hour") == hours
    local = [buckets.to_local(s, tz_of(f)) for s in buckets.starts(f.since, f.until, tz_of(f), "hour")]
    assert {(moment.minute, moment.second) for moment in local} <= {(0, 0), (30, 0)}
