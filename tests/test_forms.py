"""The filter form: defaults, the whole-day window, and every bad input it refuses."""

from __future__ import annotations

import typing as t
from datetime import date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from werkzeug.datastructures import MultiDict

from flask_statistics.config import DEFAULTS, ConfigError
from flask_statistics.filters import PRESETS, Filters
from flask_statistics.forms import MAX_DAYS, MAX_PAGE, MAX_TEXT, parse_filters

TODAY = date(2024, 3, 10)
NOW = datetime(2024, 3, 10, 14, 20)  # UTC, on TODAY
FIRST_DAY = date(2024, 1, 15)
CONFIG = dict(DEFAULTS)


def parse(
    config: dict[str, t.Any] | None = None, /, **args: t.Any
) -> tuple[Filters | None, dict[str, list[str]]]:
    filters, form = parse_filters(
        MultiDict(args), config or CONFIG, today=TODAY, now=NOW, first_day=lambda: FIRST_DAY
    )
    return filters, form.errors


def valid(config: dict[str, t.Any] | None = None, /, **args: t.Any) -> Filters:
    filters, errors = parse(config, **args)
    assert errors == {}
    assert filters is not None
    return filters


def errors_of(**args: t.Any) -> dict[str, list[str]]:
    filters, errors = parse(**args)
    assert filters is None
    assert errors
    return errors


def test_defaults_are_the_last_span_up_to_today_inclusive() -> None:
    # STATISTICS_DEFAULT_DATE_SPAN = 7 days: the last 7 days, today the 7th.
    filters = valid()
    assert (filters.start_day, filters.end_day) == (date(2024, 3, 4), TODAY)
    assert filters.days == 7
    assert filters.since == datetime(2024, 3, 4)
    assert filters.until == datetime(2024, 3, 11)
    assert (filters.range, filters.range_explicit) == ("7d", False)
    assert filters.path is None and filters.status is None and filters.method is None
    assert (filters.sort, filters.descending, filters.page) == ("date", True, 1)
    assert not filters.is_filtered
    assert filters.query_args() == {}


def test_the_span_comes_from_config() -> None:
    filters = valid({**CONFIG, "STATISTICS_DEFAULT_DATE_SPAN": timedelta(days=1)})
    assert (filters.start_day, filters.end_day, filters.range) == (TODAY, TODAY, "today")
    assert filters.until - filters.since == timedelta(days=1)
    # A span that is no preset: its days up to today, as dates.
    two_weeks = valid({**CONFIG, "STATISTICS_DEFAULT_DATE_SPAN": timedelta(days=14)})
    assert (two_weeks.start_day, two_weeks.end_day) == (date(2024, 2, 26), TODAY)
    assert two_weeks.range is None and two_weeks.query_args() == {}
    # Part of a day counts as a whole one.
    assert valid({**CONFIG, "STATISTICS_DEFAULT_DATE_SPAN": timedelta(hours=36)}).days == 2
    assert valid({**CONFIG, "STATISTICS_DEFAULT_DATE_SPAN": timedelta(0)}).days == 1


def test_every_empty_field_means_its_default() -> None:
    # htmx submits every input of the form, empty ones included.
    names = ("range", "start", "end", "path", "path_match", "status", "method", "browser",
             "platform", "remote_address", "user_agent", "sort", "order", "page")
    assert valid(**{name: "" for name in names}) == valid()
    assert valid(**{name: "   " for name in names}) == valid()


def test_explicit_days_are_whole_and_inclusive() -> None:
    filters = valid(start="2024-01-31", end="2024-02-02")
    assert filters.since == datetime(2024, 1, 31)
    assert filters.until == datetime(2024, 2, 3)
    assert filters.days == 3
    assert filters.query_args() == {"start": "2024-01-31", "end": "2024-02-02"}


def test_a_single_day() -> None:
    filters = valid(start="2024-02-29", end="2024-02-29")
    assert (filters.since, filters.until) == (datetime(2024, 2, 29), datetime(2024, 3, 1))


def test_only_one_date() -> None:
    only_end = valid(end="2024-01-10")
    assert (only_end.start_day, only_end.end_day) == (date(2024, 1, 4), date(2024, 1, 10))
    assert only_end.query_args() == {"end": "2024-01-10"}
    only_start = valid(start="2024-03-01")
    assert (only_start.start_day, only_start.end_day) == (date(2024, 3, 1), TODAY)
    future_start = valid(start="2024-04-01")
    assert (future_start.start_day, future_start.end_day) == (date(2024, 4, 1),) * 2


@pytest.mark.parametrize(
    ("tz", "since", "until"),
    [
        # Local midnights in UTC; both windows include a daylight-saving change.
        ("Europe/Berlin", datetime(2024, 3, 29, 23), datetime(2024, 4, 1, 22)),
        ("America/New_York", datetime(2024, 3, 30, 4), datetime(2024, 4, 2, 4)),
        ("Asia/Kolkata", datetime(2024, 3, 29, 18, 30), datetime(2024, 4, 1, 18, 30)),
    ],
)
def test_days_follow_the_configured_time_zone(tz: str, since: datetime, until: datetime) -> None:
    config = {**CONFIG, "STATISTICS_TIMEZONE": tz}
    filters = valid(config, start="2024-03-30", end="2024-04-01")
    assert (filters.since, filters.until, filters.tz) == (since, until, tz)


def test_today_is_taken_in_the_configured_time_zone() -> None:
    # No `today` given: the default window ends on today's date in that zone.
    config = {**CONFIG, "STATISTICS_TIMEZONE": "Pacific/Kiritimati"}
    filters, form = parse_filters(MultiDict(), config)
    assert filters is not None and form.errors == {}
    from zoneinfo import ZoneInfo

    assert filters.end_day == datetime.now(ZoneInfo("Pacific/Kiritimati")).date()


def test_an_unknown_time_zone_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="STATISTICS_TIMEZONE"):
        parse_filters(MultiDict(), {**CONFIG, "STATISTICS_TIMEZONE": "Mars/Olympus"})


def test_end_before_start_is_an_error_on_end() -> None:
    errors = errors_of(start="2024-03-05", end="2024-03-04")
    assert errors == {"end": ["The end date is before the start date. Choose 2024-03-05 or later."]}


@pytest.mark.parametrize(
    "value",
    ["yesterday", "2024-13-01", "2023-02-29", "2024-03-05T00:00", "05/03/2024",
     "2024-03-05 2024-03-06"],
)
def test_bad_dates(value: str) -> None:
    assert errors_of(start=value) == {"start": ["Enter the start date as YYYY-MM-DD."]}
    assert errors_of(end=value) == {"end": ["Enter the end date as YYYY-MM-DD."]}


@pytest.mark.parametrize(
    ("start", "end", "fields"),
    [
        ("0001-01-01", "2024-01-01", ["start"]),
        ("1899-12-31", "1900-01-02", ["start"]),
        ("9999-12-30", "9999-12-31", ["start", "end"]),
        (None, "9999-01-01", ["end"]),
    ],
)
def test_dates_out_of_range(start: str | None, end: str, fields: list[str]) -> None:
    args = {"end": end} if start is None else {"start": start, "end": end}
    message = "Choose a date between 1900-01-01 and 9998-12-31."
    assert errors_of(**args) == {name: [message] for name in fields}


def test_the_longest_range() -> None:
    last = date(2024, 1, 1)
    first = last - timedelta(days=MAX_DAYS - 1)
    assert valid(start=first.isoformat(), end=last.isoformat()).days == MAX_DAYS
    too_long = (first - timedelta(days=1)).isoformat()
    assert errors_of(start=too_long, end=last.isoformat()) == {
        "start": [f"Choose a range of at most {MAX_DAYS} days: {too_long} to 2024-01-01 "
                  f"is {MAX_DAYS + 1:,} days."]
    }
    assert list(errors_of(start="1900-01-01")) == ["start"]


@pytest.mark.parametrize(
    ("value", "status", "status_class"),
    [("404", 404, None), ("100", 100, None), ("599", 599, None), ("4xx", None, 4),
     ("5XX", None, 5), ("1xx", None, 1), (" 2xx ", None, 2)],
)
def test_status(value: str, status: int | None, status_class: int | None) -> None:
    filters = valid(status=value)
    assert (filters.status, filters.status_class) == (status, status_class)
    assert filters.is_filtered
    assert filters.query_args() == {"status": value.strip().lower()}


@pytest.mark.parametrize(
    "value", ["abc", "99", "600", "6xx", "0xx", "4x", "40", "4044", "4 04", "x" * 10_000]
)
def test_bad_status(value: str) -> None:
    assert errors_of(status=value) == {
        "status": ["Enter a status code from 100 to 599, or a class such as 4xx."]
    }


def test_method_is_case_insensitive_and_known() -> None:
    assert valid(method="get").method == "GET"
    assert valid(method="DELETE").method == "DELETE"
    assert list(errors_of(method="BREW")) == ["method"]


def test_bots_and_route() -> None:
    assert valid(bots="exclude").bots == "exclude"
    assert valid(bots="only").query_args() == {"bots": "only"}
    assert valid(bots="").bots is None and valid().bots is None
    assert errors_of(bots="maybe") == {"bots": ["Not a valid choice. Choose one of include, exclude, only."]}
    assert valid(bots="include").bots is None
    filters = valid(route="/items/<int:id>")
    assert filters.route == "/items/<int:id>" and filters.is_filtered
    assert filters.query_args() == {"route": "/items/<int:id>"}


@pytest.mark.parametrize(("value", "page"), [("1", 1), ("2", 2), (str(MAX_PAGE), MAX_PAGE)])
def test_page(value: str, page: int) -> None:
    assert valid(page=value).page == page


@pytest.mark.parametrize(
    "value", ["-1", "0", str(MAX_PAGE + 1), str(10**9), "abc", "1.5", "9" * 5000]
)
def test_bad_page(value: str) -> None:
    assert list(errors_of(page=value)) == ["page"]


def test_sort_and_order() -> None:
    filters = valid(sort="response_time", order="asc")
    assert (filters.sort, filters.descending) == ("response_time", False)
    assert filters.query_args() == {"sort": "response_time", "order": "asc"}
    for sort in ("date", "size", "status_code"):
        assert valid(sort=sort).sort == sort
    assert list(errors_of(sort="index; DROP TABLE x")) == ["sort"]
    assert list(errors_of(sort="path")) == ["sort"]
    assert errors_of(order="sideways") == {"order": ["Not a valid choice. Choose one of desc, asc."]}


def test_path_and_match() -> None:
    filters = valid(path="/a_b%", path_match="prefix")
    assert (filters.path, filters.path_match) == ("/a_b%", "prefix")
    assert valid(path="/x").path_match == "exact"
    assert list(errors_of(path_match="regex")) == ["path_match"]


@pytest.mark.parametrize("name", ["path", "browser", "platform", "remote_address", "user_agent"])
def test_text_fields(name: str) -> None:
    assert getattr(valid(**{name: "x" * MAX_TEXT}), name) == "x" * MAX_TEXT
    assert getattr(valid(**{name: " <script>é "}), name) == " <script>é "
    assert errors_of(**{name: "x" * (MAX_TEXT + 1)}) == {
        name: [f"Use at most {MAX_TEXT} characters."]
    }
    assert list(errors_of(**{name: "a\x00b"})) == [name]
    assert list(errors_of(**{name: "a\ud800b"})) == [name]


def test_all_errors_are_reported_together() -> None:
    errors = errors_of(start="nope", status="abc", page="-1", sort="evil", path="x" * 3000)
    assert set(errors) == {"start", "status", "page", "sort", "path"}


def test_previous_period() -> None:
    filters = valid(start="2024-03-01", end="2024-03-07", path="/a", status="4xx", page="3")
    previous = filters.previous()
    assert (previous.start_day, previous.end_day) == (date(2024, 2, 23), date(2024, 2, 29))
    assert (previous.since, previous.until) == (datetime(2024, 2, 23), datetime(2024, 3, 1))
    assert (previous.path, previous.status_class, previous.page) == ("/a", 4, 1)
    one_day = valid(start="2024-03-01", end="2024-03-01").previous()
    assert (one_day.since, one_day.until) == (datetime(2024, 2, 29), datetime(2024, 3, 1))


def test_previous_period_in_a_time_zone() -> None:
    config = {**CONFIG, "STATISTICS_TIMEZONE": "Europe/Berlin"}
    previous = valid(config, start="2024-04-01", end="2024-04-07").previous()
    assert (previous.start_day, previous.end_day) == (date(2024, 3, 25), date(2024, 3, 31))
    # Winter time (UTC+1) at the start, summer time (UTC+2) at the end.
    assert previous.since == datetime(2024, 3, 24, 23)
    assert previous.until == datetime(2024, 3, 31, 22)


def test_query_args_apply_changes_and_drop_defaults() -> None:
    filters = valid(start="2024-03-01", path="/a", path_match="prefix", method="post", page="4")
    assert filters.query_args() == {
        "start": "2024-03-01", "path": "/a", "path_match": "prefix", "method": "POST", "page": "4",
    }
    assert filters.query_args(path="/b", page=None) == {
        "start": "2024-03-01", "path": "/b", "path_match": "prefix", "method": "POST",
    }
    # Without a path the match mode means nothing.
    assert filters.query_args(path=None, page=1, method="", sort="date") == {"start": "2024-03-01"}
    assert filters.query_args(status=404, end=date(2024, 3, 9))["status"] == "404"
    assert filters.query_args(end=date(2024, 3, 9))["end"] == "2024-03-09"
    with pytest.raises(TypeError, match="unknown filter"):
        filters.query_args(colour="red")


def test_query_args_round_trip() -> None:
    filters = valid(
        start="2024-02-01", end="2024-02-03", path="/p q?&=", path_match="prefix", status="5xx",
        method="HEAD", browser="Firefox 72.0", platform="Linux", remote_address="::1",
        user_agent="curl/8", sort="size", order="asc", page="7",
    )
    assert filters.is_filtered
    assert valid(**filters.query_args()) == filters


text = st.text(st.characters(codec="utf-8"), max_size=30)
arg_values = st.one_of(
    text,
    st.sampled_from(["", "2024-03-01", "2024-03-04", "2024-03-10", "2024-02-30", "4xx",
                     *PRESETS, "404", "-1", "1", "asc", "prefix",
                     "size", "GET", "x" * (MAX_TEXT + 1)]),
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(
    st.sampled_from(["range", "start", "end", "path", "path_match", "status", "method", "browser",
                     "platform", "remote_address", "user_agent", "sort", "order", "page",
                     "other"]),
    arg_values,
))
def test_any_query_string_gives_filters_or_messages(args: dict[str, str]) -> None:
    filters, errors = parse(**args)
    if filters is None:
        assert errors and all(
            messages and all(isinstance(m, str) and m for m in messages)
            for messages in errors.values()
        )
    else:
        assert errors == {}
        assert filters.since < filters.until
        assert filters.until - filters.since <= timedelta(days=MAX_DAYS, hours=2)
        assert 1 <= filters.page <= MAX_PAGE
        assert valid(**filters.query_args()) == filters


# ---------------------------------------------------------------------------------
# Range presets


@pytest.mark.parametrize(
    ("preset", "first", "last"),
    [
        ("today", TODAY, TODAY),
        ("yesterday", date(2024, 3, 9), date(2024, 3, 9)),
        ("7d", date(2024, 3, 4), TODAY),
        ("30d", date(2024, 2, 10), TODAY),
        ("90d", date(2023, 12, 12), TODAY),
        ("365d", date(2023, 3, 12), TODAY),
        ("all", FIRST_DAY, TODAY),
    ],
)
def test_whole_day_presets(preset: str, first: date, last: date) -> None:
    filters = valid(range=preset)
    assert (filters.start_day, filters.end_day) == (first, last)
    assert (filters.since, filters.until) == (
        datetime.combine(first, datetime.min.time()), datetime.combine(last, datetime.min.time()) + timedelta(days=1)
    )
    assert (filters.range, filters.range_explicit) == (preset, True)
    assert filters.whole_days
    # A link keeps the preset, not its dates: a bookmark keeps meaning "the last 7 days".
    assert filters.query_args() == {"range": preset}
    assert filters.query_args(status="4xx", page=2) == {"range": preset, "status": "4xx", "page": "2"}
    assert valid(**filters.query_args()) == filters


def test_presets_are_local_days() -> None:
    config = {**CONFIG, "STATISTICS_TIMEZONE": "Pacific/Auckland"}
    # 14:20 UTC on 10 March is 03:20 on 11 March in Auckland (UTC+13).
    filters, form = parse_filters(MultiDict({"range": "today"}), config, now=NOW)
    assert filters is not None
    assert (filters.start_day, filters.since, filters.until) == (
        date(2024, 3, 11), datetime(2024, 3, 10, 11), datetime(2024, 3, 11, 11)
    )


def test_the_rolling_24_hours() -> None:
    filters = valid(range="24h")
    # The current hour (14:00-15:00) and the 23 before it, in hour buckets.
    assert (filters.since, filters.until) == (datetime(2024, 3, 9, 15), datetime(2024, 3, 10, 15))
    assert (filters.start_day, filters.end_day) == (date(2024, 3, 9), TODAY)
    assert not filters.whole_days
    assert filters.query_args() == {"range": "24h"}
    previous = filters.previous()
    assert (previous.since, previous.until) == (datetime(2024, 3, 8, 15), datetime(2024, 3, 9, 15))
    assert previous.range is None
    # From 23:00, the 24 hours are one whole day, and still the rolling range.
    late, _ = parse_filters(MultiDict({"range": "24h"}), CONFIG, now=datetime(2024, 3, 10, 23, 20))
    assert late is not None and (late.since, late.until) == (datetime(2024, 3, 10), datetime(2024, 3, 11))
    assert not late.whole_days
    assert late.previous().since == datetime(2024, 3, 9)


@pytest.mark.parametrize(
    ("tz", "now", "since", "until"),
    [
        # India is 5:30 ahead of UTC: its hours start at half past UTC.
        ("Asia/Kolkata", datetime(2024, 3, 10, 14, 20), datetime(2024, 3, 9, 14, 30), datetime(2024, 3, 10, 14, 30)),
        # Berlin's clocks go forward at 01:00 UTC on 31 March: 24 hours, 23 local.
        ("Europe/Berlin", datetime(2024, 3, 31, 10, 5), datetime(2024, 3, 30, 11), datetime(2024, 3, 31, 11)),
        # The repeated hour in autumn (00:00-02:00 UTC are both 02:xx local): the second.
        ("Europe/Berlin", datetime(2024, 10, 27, 1, 30), datetime(2024, 10, 26, 2), datetime(2024, 10, 27, 2)),
        # Lord Howe skips 02:00-02:30: the hour holding 02:40 began at the jump.
        ("Australia/Lord_Howe", datetime(2024, 10, 5, 15, 40), datetime(2024, 10, 4, 16, 30), datetime(2024, 10, 5, 16, 30)),
    ],
)
def test_24_hours_in_time_zones(tz: str, now: datetime, since: datetime, until: datetime) -> None:
    filters, _ = parse_filters(MultiDict({"range": "24h"}), {**CONFIG, "STATISTICS_TIMEZONE": tz}, now=now)
    assert filters is not None
    assert (filters.since, filters.until) == (since, until)
    assert since <= now < until


def test_previous_periods_of_presets() -> None:
    today = valid(range="today").previous()
    assert (today.start_day, today.end_day) == (date(2024, 3, 9),) * 2
    yesterday = valid(range="yesterday").previous()
    assert (yesterday.start_day, yesterday.end_day) == (date(2024, 3, 8),) * 2
    week = valid(range="7d").previous()
    assert (week.start_day, week.end_day) == (date(2024, 2, 26), date(2024, 3, 3))
    default = valid().previous()
    assert default.days == 7 and default.end_day == date(2024, 3, 3)


def test_all_starts_on_the_first_recorded_day() -> None:
    nothing, _ = parse_filters(MultiDict({"range": "all"}), CONFIG, today=TODAY, first_day=lambda: None)
    assert nothing is not None and (nothing.start_day, nothing.end_day) == (TODAY, TODAY)
    ancient, _ = parse_filters(
        MultiDict({"range": "all"}), CONFIG, today=TODAY, first_day=lambda: date(1990, 1, 1)
    )
    assert ancient is not None and ancient.days == MAX_DAYS and ancient.end_day == TODAY
    future, _ = parse_filters(  # rows dated after today (a clock ahead)
        MultiDict({"range": "all"}), CONFIG, today=TODAY, first_day=lambda: date(2024, 4, 1)
    )
    assert future is not None and (future.start_day, future.end_day) == (TODAY, TODAY)


def test_dates_win_over_a_preset() -> None:
    # The form sends the preset with its own days: the preset stays.
    same = valid(range="30d", start="2024-02-10", end="2024-03-10")
    assert same == valid(range="30d")
    assert valid(range="7d", start="2024-03-04") == valid(range="7d")
    # Other dates are a choice of dates: they clear the preset.
    chosen = valid(range="30d", start="2024-03-01", end="2024-03-10")
    assert (chosen.start_day, chosen.end_day, chosen.range) == (date(2024, 3, 1), TODAY, None)
    assert chosen.query_args() == {"start": "2024-03-01", "end": "2024-03-10"}
    only_end = valid(range="today", end="2024-03-05")
    assert (only_end.start_day, only_end.end_day, only_end.range) == (date(2024, 2, 28), date(2024, 3, 5), None)
    # The default's own days restate the default.
    assert valid(start="2024-03-04", end="2024-03-10") == valid()


def test_query_args_switch_between_preset_and_dates() -> None:
    preset = valid(range="7d", path="/a")
    assert preset.query_args(range="30d") == {"range": "30d", "path": "/a"}
    assert preset.query_args(start=date(2024, 3, 1)) == {"start": "2024-03-01", "path": "/a"}
    chosen = valid(start="2024-03-01", end="2024-03-05")
    assert chosen.query_args(range="today") == {"range": "today"}
    # The default preset stays out of links, like every default.
    assert valid().query_args(path="/b") == {"path": "/b"}


@pytest.mark.parametrize("value", ["week", "7", "7D ", "1y", "24H", "x" * 5000])
def test_bad_range(value: str) -> None:
    assert errors_of(range=value) == {
        "range": ["Not a valid choice. Choose one of today, yesterday, 24h, 7d, 30d, 90d, 365d, all, or leave it empty."]
    }
