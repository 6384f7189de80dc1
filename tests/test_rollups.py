"""Rollup figures against the same figures computed from the raw rows, on SQLite,
PostgreSQL and MariaDB: counts, sums and rates equal, percentiles within 1 %,
visitors within 2 % (exact while small), whatever filter the rollups serve."""

from __future__ import annotations

import dataclasses
import logging
import math
import random
import re
import time
import typing as t
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from flask_statistics import figures, queries
from flask_statistics.filters import Filters
from flask_statistics.rollups import compact, read
from flask_statistics.rollups.compact import Compaction
from flask_statistics.rollups.rebuild import Backfill, days_with_rows, rebuild_day
from flask_statistics.rollups.store import AGENT_CAP, PATH_AGENT_CAP, PATH_CAP, Store
from flask_statistics.rollups.tables import AGENT, DAY as DAY_TIER, MONTH, PATH, PATH_AGENT, QUARTER, YEAR
from flask_statistics.filters import zone

from dashboard_support import Tables

DAY, HOUR, MINUTE = timedelta(days=1), timedelta(hours=1), timedelta(minutes=1)
PATHS = ["/", "/a", "/a/b", "/a_b%", "/About", "/about", "/x/1", "/x/2", "/x/3", "/é"]
METHODS = ["GET"] * 6 + ["POST", "PUT", "DELETE", "HEAD"]
STATUSES = [200] * 10 + [201, 204, 301, 304, 400, 404, 404, 418, 500, 503]


def random_rows(rng: random.Random, first: datetime, last: datetime, n: int) -> list[dict[str, t.Any]]:
    span = int((last - first).total_seconds())
    rows = []
    for _ in range(n):
        when = first + timedelta(seconds=rng.randrange(span), microseconds=rng.randrange(10**6))
        rows.append(
            {
                "date": when,
                "response_time": rng.choice(
                    [None, 0.0, 0.25, rng.lognormvariate(-3, 1.2), rng.random() * 5]
                ),
                "method": rng.choice(METHODS),
                "size": rng.choice([None, 0, rng.randrange(10**6)]),
                "status_code": rng.choice(STATUSES),
                "path": rng.choice(PATHS),
                "user_agent": "Mozilla/5.0",
                "remote_address": f"10.0.{rng.randrange(4)}.{rng.randrange(60)}",
                "exception": None,
                "referrer": rng.choice([None, None, "https://example.com/", "https://example.com/a"]),
                "browser": rng.choice(["Firefox 120.0", "firefox 120.0", "Chrome 131.0", None]),
                "platform": rng.choice(["Linux", "Windows", None]),
                "mimetype": "text/html",
            }
        )
    return rows


@pytest.fixture
def tables(make_app: t.Any) -> t.Iterator[Tables]:
    # Keep the 15-minute rows of 2024 too: the hourly views below read them.
    app, db, _model, _statistics = make_app(model="seed", config={"STATISTICS_ROLLUP_DETAIL": None})
    found = Tables(app, db)
    yield found
    found.drop()


def close(estimate: float | None, exact: float | None, relative: float) -> bool:
    if exact is None or estimate is None:
        return estimate is None and exact is None
    return math.isclose(estimate, exact, rel_tol=relative, abs_tol=1e-9)


def assert_same(tables: Tables, filters: Filters, paths: bool = True, folded: tuple[str, ...] = ()) -> None:
    """Every figure the rollups serve equals (or is within the sketches' error of)
    the same figure from the raw rows; ``folded`` names top lists with a folded tail."""
    store, table = tables.store, tables.table
    with tables.engine.connect() as conn:
        assert figures.source(conn, store, filters) == "rollups", filters
        got, want = figures.kpis(conn, store, table, filters), queries.kpis(conn, table, filters)
        assert (got.hits, got.bytes_sent) == (want.hits, want.bytes_sent)
        assert (got.rate_4xx, got.rate_5xx) == (want.rate_4xx, want.rate_5xx)
        assert close(got.avg, want.avg, 1e-6)
        for name in ("p50", "p95", "p99"):
            assert close(getattr(got, name), getattr(want, name), 0.0101), name
        assert got.visitors == want.visitors  # few visitors: the sketch is exact

        series, expected = (
            figures.timeseries(conn, store, table, filters), queries.timeseries(conn, table, filters)
        )
        assert series.width == expected.width
        assert [p.start for p in series.points] == [p.start for p in expected.points]
        assert [p.hits for p in series.points] == [p.hits for p in expected.points]
        assert [p.visitors for p in series.points] == [p.visitors for p in expected.points]
        for a, b in zip(series.points, expected.points):
            assert close(a.p50, b.p50, 0.0101) and close(a.p95, b.p95, 0.0101)

        assert figures.status_classes(conn, store, table, filters) == queries.status_classes(conn, table, filters)
        for column in ("method", "browser", "platform", "referrer"):
            if column in folded:
                continue
            assert figures.top(conn, store, table, filters, column) == queries.top(conn, table, filters, column)
        for column in {"browser", "referrer"} - set(folded):  # by family and host
            assert figures.top(conn, store, table, filters, column, grouped=True) == queries.top(
                conn, table, filters, column, grouped=True
            )
        if not paths:
            return
        assert figures.top(conn, store, table, filters, "path", 50) == queries.top(conn, table, filters, "path", 50)
        got_paths = figures.top_paths(conn, store, table, filters, 50)
        want_paths = queries.top_paths(conn, table, filters, 50)
        assert [(p.path, p.hits, p.visitors, p.error_rate) for p in got_paths] == [
            (p.path, p.hits, p.visitors, p.error_rate) for p in want_paths
        ]
        for a, b in zip(got_paths, want_paths):
            assert close(a.avg, b.avg, 1e-6) and close(a.p95, b.p95, 0.0101)
            assert a.last_seen is not None and abs(a.last_seen - b.last_seen) < timedelta(milliseconds=1)
        if "route" in table.c:
            got_routes = figures.top_paths(conn, store, table, filters, 50, by="route")
            want_routes = queries.top_paths(conn, table, filters, 50, by="route")
            assert [(p.path, p.hits, p.visitors, p.error_rate) for p in got_routes] == [
                (p.path, p.hits, p.visitors, p.error_rate) for p in want_routes
            ]
            for a, b in zip(got_routes, want_routes):
                assert close(a.avg, b.avg, 1e-6) and close(a.p95, b.p95, 0.0101)


WEEK = Filters.between(date(2024, 3, 4), date(2024, 3, 10))
FILTERS = [
    {},
    {"status": 404},
    {"status_class": 4},
    {"status_class": 2, "method": "GET"},
    {"method": "POST"},
    {"path": "/a"},
    {"path": "/a", "path_match": "prefix"},
    {"path": "/About"},
    {"path": "/x/", "path_match": "prefix", "status_class": 2},
    {"browser": "Firefox"},  # the family: not "firefox 120.0"
    {"browser": "Chrome", "status": 404},
    {"platform": "Windows", "status_class": 2, "method": "GET"},
]


#: The filters the agent rows answer, but for the paths under them.
AGENT_FILTERS = [f for f in FILTERS if "browser" in f or "platform" in f]


def test_routes_under_a_browser_or_platform_filter_come_from_route_agent_rows(make_app: t.Any) -> None:
    app, db, _model, _statistics = make_app(model="default", config={"STATISTICS_ROLLUP_DETAIL": None})
    tables = Tables(app, db)
    try:
        rng = random.Random(31)
        rows = random_rows(rng, WEEK.since - DAY, WEEK.until + DAY, 2500)
        for row in rows:
            row["route"] = "/x/<int:n>" if row["path"].startswith("/x/") else {"/a": "/a", "/": "/"}.get(row["path"])
        tables.insert(rows)
        tables.rebuild()
        for extra in AGENT_FILTERS:
            assert_same(tables, Filters.between(WEEK.start_day, WEEK.end_day, **extra))
        # Without the path-agent rows, the routes still add up: their own rows answer.
        r = tables.store.rollup.c
        with tables.engine.begin() as conn:
            assert conn.execute(sa.delete(tables.store.rollup).where(r.grain == PATH_AGENT)).rowcount > 0
        with tables.engine.connect() as conn:
            for extra in AGENT_FILTERS:
                filters = Filters.between(WEEK.start_day, WEEK.end_day, **extra)
                got = figures.top_paths(conn, tables.store, tables.table, filters, 50, by="route")
                want = queries.top_paths(conn, tables.table, filters, 50, by="route")
                assert len(want) > 1
                assert [(p.path, p.hits, p.visitors, p.error_rate) for p in got] == [
                    (p.path, p.hits, p.visitors, p.error_rate) for p in want
                ]
    finally:
        tables.drop()


def test_rebuilt_rollups_equal_the_raw_figures(tables: Tables) -> None:
    # One table for every filter: building it cost more than comparing a filter.
    rng = random.Random(3)
    tables.insert(random_rows(rng, WEEK.since - 2 * DAY, WEEK.until + 2 * DAY, 3000))
    tables.rebuild()
    for extra in FILTERS:
        for filters in (Filters.between(WEEK.start_day, WEEK.end_day, **extra),
                        Filters.between(date(2024, 3, 5), date(2024, 3, 6), **extra)):  # hourly
            assert_same(tables, filters)


# DST (New York), a :45 offset (Kathmandu), a :30 offset whose DST moves by half an hour
# (Lord Howe).
@pytest.mark.parametrize("tz", ["America/New_York", "Asia/Kathmandu", "Australia/Lord_Howe"])
def test_local_days_across_dst_and_odd_offsets(tables: Tables, tz: str) -> None:
    # March and November 2024 hold the DST changes of New York, Berlin and Lord Howe.
    rng = random.Random(5)
    rows = []
    for first in (datetime(2024, 3, 5), datetime(2024, 3, 27), datetime(2024, 10, 30)):
        rows += random_rows(rng, first, first + 8 * DAY, 1500)
    tables.insert(rows)
    tables.rebuild(tz)
    for start, end in ((date(2024, 3, 6), date(2024, 3, 12)), (date(2024, 3, 28), date(2024, 4, 3)),
                       (date(2024, 10, 31), date(2024, 11, 6)), (date(2024, 3, 10), date(2024, 3, 11))):
        assert_same(tables, Filters.between(start, end, tz=tz))


def test_a_path_row_counts_its_busiest_referrers_and_the_rest_as_other(tables: Tables) -> None:
    # A path's rows count its browsers and referrers for the lists of a path filter,
    # at most counts.CAP values a row: the others' hits show as "other".
    rng = random.Random(21)
    when = WEEK.since + 3 * DAY + 5 * MINUTE
    rows = random_rows(rng, when, when + 5 * MINUTE, 650)
    for n, row in enumerate(rows):
        row.update(path="/a", method="GET", status_code=200,
                   referrer="https://top.example/" if n < 50 else f"https://r{n}.example/")
    tables.insert(rows + random_rows(rng, when, when + DAY, 300))
    tables.rebuild()
    hourly = Filters.between(date(2024, 3, 7), date(2024, 3, 7), path="/a")
    for filters in (hourly, Filters.between(WEEK.start_day, WEEK.end_day, path="/a")):
        with tables.engine.connect() as conn:
            assert figures.source(conn, tables.store, filters) == "rollups"
            total = queries.kpis(conn, tables.table, filters).hits
            for grouped in (False, True):
                got = figures.top(conn, tables.store, tables.table, filters, "referrer", 10**6, grouped=grouped)
                want = queries.top(conn, tables.table, filters, "referrer", 10**6, grouped=grouped)
                named = [(value, hits) for value, hits in got if value is not read.OTHER]
                assert named[0] == want[0] == (("top.example" if grouped else "https://top.example/"), 50)
                other = dict(got)[read.OTHER]
                assert 0 < other and sum(hits for _, hits in got) == total
                assert set(named) <= set(want)
            for column in ("browser", "platform"):  # few values: every one is kept
                assert figures.top(conn, tables.store, tables.table, filters, column) == queries.top(
                    conn, tables.table, filters, column)


def test_paths_beyond_the_cap_fold_into_other(tables: Tables) -> None:
    rng = random.Random(9)
    when = WEEK.since + 3 * DAY + 5 * MINUTE
    rows = random_rows(rng, when, when + MINUTE, 100)
    for row in rows[:]:
        row.update(path="/kept")
    scans = random_rows(rng, when, when + 5 * MINUTE, 2000)
    for row in scans:
        row.update(path=f"/scan/{rng.getrandbits(64):x}", status_code=404)
    tables.insert(rows + scans)
    tables.rebuild()
    r = tables.store.rollup.c
    with tables.engine.connect() as conn:
        quarter_rows = conn.execute(
            sa.select(sa.func.count()).where(r.grain == PATH, r.tier == QUARTER)
        ).scalar()
        assert quarter_rows <= PATH_CAP[QUARTER] + 8 * 20  # the cap plus one other row per combination
        # Hits still add up, the busiest path is kept, and path filters fall back to rows.
        one_day = Filters.between(date(2024, 3, 7), date(2024, 3, 7))  # hourly: quarter rows
        assert_same(tables, one_day, paths=False)
        ranked = figures.top(conn, tables.store, tables.table, one_day, "path", 3)
        assert ("/kept", 100) in ranked
        folded = dict(ranked).get(read.OTHER)
        assert folded is not None and folded + 100 + sum(
            hits for value, hits in figures.top(conn, tables.store, tables.table, one_day, "path", 10**6)
            if value not in ("/kept", read.OTHER)
        ) == 2100
        narrowed = Filters.between(one_day.start_day, one_day.end_day, path="/scan/", path_match="prefix")
        assert figures.source(conn, tables.store, narrowed) == "rows"


def test_rollups_keep_pruned_periods(tables: Tables) -> None:
    rng = random.Random(4)
    tables.insert(random_rows(rng, WEEK.since, WEEK.until, 1000))
    tables.rebuild()
    with tables.engine.connect() as conn:
        before = figures.kpis(conn, tables.store, tables.table, WEEK)
    with tables.engine.begin() as conn:
        conn.execute(tables.table.delete())
    with tables.engine.connect() as conn:
        after = figures.kpis(conn, tables.store, tables.table, WEEK)
        assert queries.kpis(conn, tables.table, WEEK).hits == 0
    assert after == before and after.hits == 1000


def test_backfill_counts_rows_that_were_there_before_the_rollups(tables: Tables) -> None:
    rng = random.Random(8)
    tables.insert(random_rows(rng, WEEK.since - DAY, WEEK.until, 1200))
    task = Backfill(tables.store, "Europe/Berlin")
    with tables.engine.connect() as conn:
        assert figures.source(conn, tables.store, WEEK) == "rows"
    for _ in range(30):
        task(tables.engine)
        if task.remaining is None:
            break
    assert task.remaining is None
    with tables.engine.connect() as conn:
        state = tables.store.read_state(conn)
    assert state is not None and state.backfill_before is None
    assert_same(tables, Filters.between(WEEK.start_day, WEEK.end_day, tz="Europe/Berlin"))


@pytest.mark.parametrize("task_class", [Backfill, Compaction])
def test_a_failing_rollup_task_logs_each_kind_of_failure_once(
    task_class: t.Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # While the database is down every try fails the same way: one error in the log,
    # another only when the reason changes or after a run that worked.
    clock = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    outcomes: list[Exception | None] = [
        sa.exc.OperationalError("SELECT 1", {}, Exception("database is locked")),
        sa.exc.OperationalError("SELECT 1", {}, Exception("database is locked")),
        None,
        sa.exc.OperationalError("SELECT 1", {}, Exception("database is locked")),
        sa.exc.OperationalError("SELECT 1", {}, Exception("disk I/O error")),
    ]
    runs: list[float] = []

    def work(*args: t.Any) -> bool:
        runs.append(clock[0])
        failure = outcomes.pop(0)
        if failure is not None:
            raise failure
        return False

    monkeypatch.setattr(compact, "close_days", work)
    monkeypatch.setattr(compact, "close_quarters", lambda *args, **kwargs: 0)
    monkeypatch.setattr(compact, "close_months", lambda *args, **kwargs: 0)
    monkeypatch.setattr(compact, "close_years", lambda *args, **kwargs: 0)
    monkeypatch.setattr(Backfill, "_step", work)
    store = Store(sa.Table("requests", sa.MetaData(), sa.Column("index", sa.Integer, primary_key=True)))
    monkeypatch.setattr(store, "present", lambda engine: True)
    task = task_class(store, "UTC")
    engine = sa.create_engine("sqlite://")
    with caplog.at_level(logging.ERROR, logger="flask_statistics"):
        task(engine)
        task(engine)  # not due yet: no second try at once
        for _ in range(4):
            clock[0] += 3600
            task(engine)
    assert runs == [1000.0, 4600.0, 8200.0, 11800.0, 15400.0]
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(logged) == 3, logged
    assert ["database is locked" in m for m in logged] == [True, True, False]
    assert "disk I/O error" in logged[2]
    assert all(m.startswith("flask-statistics could not ") for m in logged)


def write_late(tables: Tables, tz: str, late: list[dict[str, t.Any]]) -> None:
    """Insert ``late`` rows and add them to the rollups in one transaction, as the
    writer does with a batch."""
    from flask_statistics.rollups.writing import Rollups

    rollups = Rollups(tables.store, tz)
    facts = [(row["date"], row["method"], row["status_code"], row["path"], None, row["response_time"],
              row["size"], row["remote_address"], None, row["browser"], row["platform"], row["referrer"])
             for row in late]
    with tables.engine.begin() as conn:
        assert rollups.lock(conn)
        conn.execute(tables.table.insert(), late)
        rollups.apply(conn, rollups.keyed(rollups.entries(facts), rollups.cuts(conn)))


# New York for a DST change, Kathmandu for a :45 offset; UTC adds nothing they miss.
@pytest.mark.parametrize("tz", ["America/New_York", "Asia/Kathmandu"])
def test_open_days_count_in_quarters_until_they_are_merged(tables: Tables, tz: str) -> None:
    from flask_statistics.rollups.compact import close_days, close_quarters

    rng = random.Random(12)
    week = Filters.between(WEEK.start_day, WEEK.end_day, tz=tz)  # New York's DST starts on the 10th
    tables.insert(random_rows(rng, week.since - DAY, week.until + DAY, 2500))
    tables.store.ensure_state(tables.engine, tz, lambda m: m)
    with tables.engine.begin() as conn:
        tables.store.set_state(conn, backfill_before=None, zone=tz, open_from=week.since)
    for day in days_with_rows(tables.engine, tables.table, zone(tz), None, None):
        rebuild_day(tables.engine, tables.store, day, zone(tz))
    r = tables.store.rollup.c

    def day_rows(since: datetime, until: datetime) -> int:
        with tables.engine.connect() as conn:
            return conn.execute(
                sa.select(sa.func.count()).where(r.tier == DAY_TIER, r.bucket >= since, r.bucket < until)
            ).scalar()

    def agent_rows(since: datetime, until: datetime) -> int:
        with tables.engine.connect() as conn:
            return conn.execute(
                sa.select(sa.func.count()).where(r.grain == PATH_AGENT, r.bucket >= since, r.bucket < until)
            ).scalar()

    def same(since: date, until: date) -> None:
        # The paths of a browser or platform filter add the path-agent rows of the
        # days that are over to the raw rows of the others.
        for extra in ({}, *AGENT_FILTERS):
            assert_same(tables, Filters.between(since, until, tz=tz, **extra))

    # Open days have 15-minute rows only, and every figure still adds up.
    assert day_rows(week.since, week.until + 2 * DAY) == 0
    assert day_rows(week.since - 2 * DAY, week.since) > 0
    assert agent_rows(week.since, week.until + 2 * DAY) == 0
    assert agent_rows(week.since - 2 * DAY, week.since) > 0
    same(week.start_day - timedelta(days=1), week.end_day)

    # The days before "now" become day rows; the day holding now stays open.
    assert close_days(tables.engine, tables.store, tz, now=week.until + 2 * HOUR) >= 7
    with tables.engine.connect() as conn:
        state = tables.store.read_state(conn)
    assert state is not None and state.open_from is not None and state.open_from >= week.until
    assert day_rows(week.since, week.until) > 0
    # Closing a day made its path-agent rows from its raw rows.
    assert agent_rows(week.since, week.until) > 0
    assert agent_rows(week.until, week.until + 2 * DAY) == 0
    same(week.start_day, week.end_day)
    same(week.end_day, week.end_day + timedelta(days=1))
    # An hourly window that starts within a day reads that day's part from the raw
    # rows, and the next day from its path-agent rows.
    for extra in AGENT_FILTERS:
        window = Filters.between(week.start_day + timedelta(days=1), week.start_day + timedelta(days=2), tz=tz, **extra)
        assert_same(tables, dataclasses.replace(window, since=window.since + 6 * HOUR))

    # A late batch for a merged day adds to both its tiers, as the writer does it.
    write_late(tables, tz, random_rows(rng, week.since + 2 * DAY, week.since + 2 * DAY + HOUR, 300))
    same(week.start_day, week.end_day)
    same(week.start_day + timedelta(days=2), week.start_day + timedelta(days=2))

    # The open day's quarters that are over are added to its day rows (eight a
    # transaction), its paths per agent from its raw rows; the quarter holding "now"
    # stays with the 15-minute and raw rows.
    opened = t.cast(datetime, state.open_from)
    now = opened + 5 * HOUR + timedelta(minutes=7)
    assert close_quarters(tables.engine, tables.store, tz, now=now) == 20
    assert close_quarters(tables.engine, tables.store, tz, now=now) == 0
    assert day_rows(opened, opened + DAY) > 0
    assert agent_rows(opened, opened + 5 * HOUR) > 0
    assert agent_rows(opened + 5 * HOUR, opened + 2 * DAY) == 0
    open_day = week.end_day + timedelta(days=1)
    eight_days = (week.start_day, open_day)  # by the day: the open day's day rows count

    def by_the_day(filters: list[dict[str, t.Any]]) -> None:
        for extra in filters:
            assert_same(tables, Filters.between(*eight_days, tz=tz, **extra))

    def same_everywhere() -> None:
        same(open_day, open_day)
        # One filter of each grain, after the first check of all of them.
        by_the_day([{}, {"status": 404}, {"path": "/x/", "path_match": "prefix", "status_class": 2}, *AGENT_FILTERS])

    same(open_day, open_day)
    by_the_day(FILTERS)
    for extra in AGENT_FILTERS:  # a window from 02:30 reads that day's raw rows
        window = Filters.between(open_day, open_day, tz=tz, **extra)
        assert_same(tables, dataclasses.replace(window, since=opened + 2 * HOUR + timedelta(minutes=30)))
    # A late batch for quarters already merged adds to both tiers.
    write_late(tables, tz, random_rows(rng, opened + HOUR, opened + 2 * HOUR, 200))
    same_everywhere()
    # Rebuilding the open day makes its day rows again, for the same quarters.
    rebuild_day(tables.engine, tables.store, opened, zone(tz))
    assert agent_rows(opened, opened + 5 * HOUR) > 0
    same_everywhere()

    # By the day, the merged quarters are read from the day rows: without some of
    # their 15-minute rows the figures still add up.
    with tables.engine.begin() as conn:
        conn.execute(
            sa.delete(tables.store.rollup)
            .where(r.tier == QUARTER, r.bucket >= opened, r.bucket < opened + 2 * HOUR)
        )
    by_the_day(FILTERS)

    # Closing that day adds the rest of it.
    assert close_days(tables.engine, tables.store, tz, now=opened + DAY + 2 * HOUR) == 1
    by_the_day(FILTERS)


# ---------------------------------------------------------------------------------
# Month rows: long ranges read whole months from them.

#: January to May 2024: New York, Berlin and Lord Howe change clocks in March/April.
SPRING = (datetime(2024, 1, 20), datetime(2024, 5, 10))


def month_rows(tables: Tables, since: datetime | None = None) -> int:
    r = tables.store.rollup.c
    where = [r.tier == MONTH] + ([r.bucket >= since] if since is not None else [])
    with tables.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).where(*where)).scalar()


def delete_days(tables: Tables, since: datetime, until: datetime) -> None:
    r = tables.store.rollup.c
    with tables.engine.begin() as conn:
        conn.execute(sa.delete(tables.store.rollup).where(r.tier == DAY_TIER, r.bucket >= since, r.bucket < until))


@pytest.mark.parametrize("tz", ["America/New_York", "Australia/Lord_Howe"])
def test_long_ranges_read_whole_months_from_month_rows(tables: Tables, tz: str) -> None:
    rng = random.Random(21)
    tables.insert(random_rows(rng, *SPRING, 4000))
    tables.rebuild(tz)
    with tables.engine.connect() as conn:
        state = tables.store.read_state(conn)
    assert state is not None and state.months_before is not None and state.months_before >= datetime(2024, 5, 1) - DAY
    assert month_rows(tables) > 0
    ten_years = Filters.between(date(2015, 1, 1), date(2024, 12, 31), tz=tz)
    assert queries.bucket_width(ten_years) == "month"
    ranges = [
        ten_years,
        Filters.between(date(2024, 2, 10), date(2024, 4, 20), tz=tz),  # parts of months around whole ones
        Filters.between(date(2024, 3, 1), date(2024, 3, 31), tz=tz),  # one whole month
        Filters.between(date(2024, 3, 8), date(2024, 3, 14), tz=tz),  # within a month
    ]
    for extra in ({}, {"status_class": 4}, {"method": "POST"}, {"path": "/x/", "path_match": "prefix"},
                  {"browser": "Firefox"}):
        for filters in ranges:
            assert_same(tables, Filters.between(filters.start_day, filters.end_day, tz=tz, **extra))
    # The whole months really come from month rows: without March's day rows, the
    # ten years and February to April still add up; March alone by the day does not.
    march = Filters.between(date(2024, 3, 1), date(2024, 3, 31), tz=tz)
    delete_days(tables, march.since, march.until)
    with tables.engine.connect() as conn:
        for filters in (ten_years, ranges[1]):
            assert figures.kpis(conn, tables.store, tables.table, filters) == read.kpis(
                conn, t.cast(read.Plan, read.plan(conn, tables.store, filters, False))
            )
            assert figures.kpis(conn, tables.store, tables.table, filters).hits == queries.kpis(conn, tables.table, filters).hits
        assert [p.hits for p in figures.timeseries(conn, tables.store, tables.table, ten_years).points] == [
            p.hits for p in queries.timeseries(conn, tables.table, ten_years).points
        ]
        by_day = figures.timeseries(conn, tables.store, tables.table, march)
        assert sum(p.hits for p in by_day.points) == 0
        # So do the paths of a browser, from their month rows.
        firefox = Filters.between(ten_years.start_day, ten_years.end_day, tz=tz, browser="Firefox")
        assert [(p.path, p.hits) for p in figures.top_paths(conn, tables.store, tables.table, firefox, 50)] == [
            (p.path, p.hits) for p in queries.top_paths(conn, tables.table, firefox, 50)
        ]


def test_late_rows_and_rebuilt_days_keep_month_rows_exact(tables: Tables) -> None:
    from flask_statistics.rollups.compact import close_months

    tz = "Europe/Berlin"
    rng = random.Random(22)
    tables.insert(random_rows(rng, *SPRING, 3000))
    tables.rebuild(tz)
    long = Filters.between(date(2023, 1, 1), date(2024, 12, 31), tz=tz)
    assert month_rows(tables, datetime(2024, 3, 1)) > 0

    # A late batch for a merged month adds to its month rows too, as the writer does it.
    write_late(tables, tz, random_rows(rng, datetime(2024, 3, 30, 23), datetime(2024, 3, 31, 3), 300))  # across the DST change
    assert_same(tables, long)
    assert_same(tables, Filters.between(date(2024, 3, 1), date(2024, 4, 30), tz=tz))

    # Rows imported into March: rebuilding one of its days drops the month rows from
    # March on (the figures then come from day rows), and they are merged again.
    imported = random_rows(rng, datetime(2024, 3, 12, 8), datetime(2024, 3, 12, 20), 200)
    tables.insert(imported)
    rebuild_day(tables.engine, tables.store, datetime(2024, 3, 11, 23), zone(tz))  # March 12th, Berlin
    assert month_rows(tables, datetime(2024, 2, 29, 23)) == 0 and month_rows(tables) > 0
    with tables.engine.connect() as conn:
        state = tables.store.read_state(conn)
    assert state is not None and state.months_before == datetime(2024, 2, 29, 23)
    assert_same(tables, long)
    assert close_months(tables.engine, tables.store, tz) >= 2  # March, April and the months after
    assert month_rows(tables, datetime(2024, 2, 29, 23)) > 0
    assert_same(tables, long)

    # A new zone drops every month row: they follow the old zone's months.
    task = Backfill(tables.store, "Asia/Kolkata")
    task(tables.engine)
    assert month_rows(tables) == 0


def tier_rows(tables: Tables, tier: int) -> int:
    r = tables.store.rollup.c
    with tables.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).where(r.tier == tier)).scalar()


def local_instant(day: date, tz: str) -> datetime:
    return Filters.between(day, day, tz=tz).since


@pytest.mark.parametrize("tz", ["Australia/Lord_Howe"])
def test_long_ranges_read_whole_years_from_year_rows(tables: Tables, tz: str) -> None:
    rng = random.Random(27)
    tables.insert(random_rows(rng, datetime(2022, 12, 20), datetime(2024, 1, 10), 2000))
    tables.rebuild(tz)
    with tables.engine.connect() as conn:
        state = t.cast(t.Any, tables.store.read_state(conn))
    # Every year whose months all have month rows has year rows: 2022 to 2024.
    assert state.years_before is not None and state.years_before >= local_instant(date(2025, 1, 1), tz)
    assert tier_rows(tables, YEAR) > 0
    ten_years = Filters.between(date(2015, 1, 1), date(2024, 12, 31), tz=tz)
    across = Filters.between(date(2022, 12, 25), date(2024, 1, 5), tz=tz)  # parts of years around a whole one
    year_2023 = Filters.between(date(2023, 1, 1), date(2023, 12, 31), tz=tz)

    def check(*extras: dict[str, t.Any]) -> None:
        for extra in ({}, *extras):
            for filters in (ten_years, across, year_2023):
                assert_same(tables, Filters.between(filters.start_day, filters.end_day, tz=tz, **extra))

    check({"status_class": 4}, {"browser": "Firefox"}, {"path": "/x/", "path_match": "prefix"})
    # A late batch for 2023 adds to its day, month and year rows.
    late = random_rows(rng, datetime(2023, 6, 14), datetime(2023, 6, 16), 40)
    write_late(tables, tz, late)
    check()
    # Rebuilding a day of 2023 drops the year rows from 2023 on, until they are merged again.
    rebuild_day(tables.engine, tables.store, local_instant(date(2023, 6, 15), tz), zone(tz))
    with tables.engine.connect() as conn:
        state = t.cast(t.Any, tables.store.read_state(conn))
    assert state.years_before == local_instant(date(2023, 1, 1), tz)
    assert state.months_before == local_instant(date(2023, 6, 1), tz)
    check()
    compact.close_periods(tables.engine, tables.store, tz)
    with tables.engine.connect() as conn:
        assert t.cast(t.Any, tables.store.read_state(conn)).years_before >= local_instant(date(2025, 1, 1), tz)
    check()
    # The whole years really come from year rows: without 2023's month rows the
    # ten years still add up, while 2023 charted by the month is empty.
    r = tables.store.rollup.c
    with tables.engine.begin() as conn:
        conn.execute(sa.delete(tables.store.rollup).where(
            r.tier == MONTH, r.bucket >= year_2023.since, r.bucket < year_2023.until
        ))
    with tables.engine.connect() as conn:
        got = figures.kpis(conn, tables.store, tables.table, ten_years)
        want = queries.kpis(conn, tables.table, ten_years)
        assert (got.hits, got.bytes_sent, got.visitors) == (want.hits, want.bytes_sent, want.visitors)
        by_month = figures.timeseries(conn, tables.store, tables.table, ten_years)
        assert sum(p.hits for p in by_month.points if year_2023.since <= p.start < year_2023.until) == 0


def history(make_app: t.Any, seed: int, days: int) -> tuple[Tables, datetime]:
    """3,000 rows over the last ``days`` days, with their rollups; and now."""
    app, db, _model, _statistics = make_app(model="default")
    tables = Tables(app, db)
    now = datetime.utcnow()
    tables.insert(random_rows(random.Random(seed), now - days * DAY, now - HOUR, 3000))
    tables.rebuild()
    return tables, now


def test_rollup_retention_keeps_the_year_of_its_cutoff_whole(make_app: t.Any) -> None:
    from flask_statistics.rollups.retention import RollupRetention

    tables, now = history(make_app, 4, 800)
    cutoff = now - 500 * DAY
    first_kept = datetime(cutoff.year, cutoff.month, 1)
    with tables.engine.connect() as conn:
        state = t.cast(t.Any, tables.store.read_state(conn))
    assert state.years_before > datetime(cutoff.year + 1, 1, 1) - DAY  # the cutoff's year has year rows
    RollupRetention(tables.store, timedelta(days=500))(tables.engine)
    r = tables.store.rollup.c
    with tables.engine.connect() as conn:
        years = conn.execute(sa.select(r.bucket).where(r.tier == YEAR, r.grain == 0).distinct()).scalars().all()
        assert min(years) == datetime(cutoff.year, 1, 1)
        # Its year row now counts the months it keeps: a range over whole years
        # (read from year rows) counts the raw rows from the first month kept.
        everything = Filters.between(date(now.year - 9, 1, 1), now.date())
        kept = Filters.between(first_kept.date(), now.date())
        assert figures.kpis(conn, tables.store, tables.table, everything).hits == queries.kpis(conn, tables.table, kept).hits
        whole_year = Filters.between(date(cutoff.year, 1, 1), date(cutoff.year, 12, 31))
        kept_of_year = Filters.between(first_kept.date(), date(cutoff.year, 12, 31))
        assert figures.kpis(conn, tables.store, tables.table, whole_year).hits == queries.kpis(
            conn, tables.table, kept_of_year
        ).hits > 0


def test_the_writer_task_merges_one_month_per_run(tables: Tables) -> None:
    tables.insert(random_rows(random.Random(24), *SPRING, 1000))
    tables.rebuild(months=False)
    assert month_rows(tables) == 0
    task = Compaction(tables.store, "UTC")
    merged = []
    for _ in range(3):
        task(tables.engine)  # due again at once after a run that merged a month
        with tables.engine.connect() as conn:
            merged.append(t.cast(t.Any, tables.store.read_state(conn)).months_before)
    assert merged == [datetime(2024, 2, 1), datetime(2024, 3, 1), datetime(2024, 4, 1)]
    assert month_rows(tables) > 0


def test_browsers_beyond_the_cap_fold_into_other_and_keep_their_platform(
    tables: Tables, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(AGENT_CAP, QUARTER, 30)
    monkeypatch.setitem(AGENT_CAP, DAY_TIER, 30)
    rng = random.Random(31)
    when = WEEK.since + 3 * DAY + 5 * MINUTE
    rows = random_rows(rng, when, when + 5 * MINUTE, 600)
    for row in rows[:300]:  # made-up browsers, as a client can send
        row.update(browser=f"Scan{rng.getrandbits(32):x} 1.0", platform=rng.choice(["Linux", "Other"]))
    tables.insert(rows)
    tables.rebuild()
    r = tables.store.rollup.c
    with tables.engine.connect() as conn:
        kept = conn.execute(
            sa.select(r.tier, sa.func.count())
            .where(r.grain == AGENT, r.other.is_(False)).group_by(r.tier)
        ).all()
        assert kept and all(count <= 30 for _, count in kept)
        one_day = Filters.between(date(2024, 3, 7), date(2024, 3, 7))
        week = Filters.between(WEEK.start_day, WEEK.end_day)
        for filters in (one_day, week):
            def narrowed(**extra: t.Any) -> Filters:
                return Filters.between(filters.start_day, filters.end_day, **extra)

            # A folded browser keeps its platform: platform views stay exact.
            assert_same(tables, narrowed(platform="Linux"), folded=("browser",))
            ranked = dict(figures.top(conn, tables.store, tables.table, narrowed(platform="Other"), "browser", 10**6))
            assert sum(ranked.values()) == queries.kpis(conn, tables.table, narrowed(platform="Other")).hits
            assert ranked.get(read.OTHER, 0) > 0
            # A folded row could hold any browser: those views read the raw rows.
            firefox = narrowed(browser="Firefox")
            assert figures.source(conn, tables.store, firefox) == "rows"
            assert figures.kpis(conn, tables.store, tables.table, firefox) == queries.kpis(conn, tables.table, firefox)


def test_month_rows_fold_paths_beyond_their_cap(tables: Tables, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(PATH_CAP, MONTH, 40)
    rng = random.Random(23)
    rows = random_rows(rng, *SPRING, 2000)
    for row in rows[:600]:
        row.update(path=f"/scan/{rng.getrandbits(64):x}", status_code=404)
    tables.insert(rows)
    tables.rebuild()
    r = tables.store.rollup.c
    with tables.engine.connect() as conn:
        per_month = conn.execute(
            sa.select(r.bucket, sa.func.count())
            .where(r.grain == PATH, r.tier == MONTH, r.other.is_(False))
            .group_by(r.bucket)
        ).all()
    assert per_month and all(count <= 40 for _, count in per_month)
    year = Filters.between(date(2024, 1, 1), date(2024, 12, 31))
    assert_same(tables, year, paths=False)
    with tables.engine.connect() as conn:
        ranked = dict(figures.top(conn, tables.store, tables.table, year, "path", 10**6))
        assert sum(ranked.values()) == 2000 and ranked.get(read.OTHER)


# ---------------------------------------------------------------------------------
# The write path: rollups kept by the writer, in the transaction of the rows.


def today_filters(days: int = 1, **extra: t.Any) -> Filters:
    today = datetime.utcnow().date()
    return Filters.between(today - timedelta(days=days - 1), today, **extra)


def serve(app: t.Any) -> None:
    @app.route("/items/<int:id>")
    def item(id: int) -> t.Any:
        return "x" * id, 404 if id % 7 == 0 else 200

    @app.post("/items")
    def create() -> t.Any:
        return "", 201


def test_the_writer_keeps_rollups_equal_to_its_rows(make_app: t.Any) -> None:
    app, db, _model, statistics = make_app(model="default", config={"STATISTICS_BATCH_SIZE": 37})
    serve(app)
    client = app.test_client()
    rng = random.Random(2)
    agents = ["Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
              "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "curl/8.5.0"]
    people = {"127.0.0.1"}  # /nowhere below
    for n in range(400):
        agent = rng.choice(agents)
        headers = {"User-Agent": agent}
        address = f"10.1.0.{rng.randrange(30)}"
        if "Googlebot" in agent:
            address = f"10.9.0.{n % 200}"  # crawlers are not visitors
        else:
            people.add(address)
        if n % 5 == 0:
            client.post("/items", headers=headers, environ_base={"REMOTE_ADDR": address})
        else:
            client.get(f"/items/{rng.randrange(1, 40)}", headers=headers, environ_base={"REMOTE_ADDR": address})
    client.get("/nowhere")
    assert statistics.flush(timeout=30, app=app)
    tables = Tables(app, db)
    with tables.engine.connect() as conn:
        routes = dict(conn.execute(sa.select(tables.store.rollup.c.path, tables.store.rollup.c.route)
                                   .where(tables.store.rollup.c.grain == PATH)).all())
    assert routes["/items/5"] == "/items/<int:id>" and routes["/nowhere"] is None
    for extra in ({}, {"status_class": 4}, {"method": "POST"}, {"path": "/items/", "path_match": "prefix"},
                  {"route": "/items/<int:id>"}, {"route": "/items/<int:id>", "status": 404},
                  {"bots": "exclude"}, {"bots": "only", "method": "GET"}, {"browser": "Firefox"},
                  {"browser": "Googlebot", "bots": "only"}, {"platform": "Linux", "bots": "exclude"}):
        assert_same(tables, today_filters(**extra))
        assert_same(tables, today_filters(3, **extra))
    with tables.engine.connect() as conn:  # bots are not visitors
        assert figures.kpis(conn, tables.store, tables.table, today_filters()).visitors == len(people)
        bots = figures.kpis(conn, tables.store, tables.table, today_filters(bots="only"))
        people_only = figures.kpis(conn, tables.store, tables.table, today_filters(bots="exclude"))
        assert bots.hits > 0 and bots.visitors == 0
        assert bots.hits + people_only.hits == 401


def test_late_rows_land_in_their_own_buckets(make_app: t.Any) -> None:
    from flask_statistics.capture import Record

    app, db, _model, statistics = make_app(model="default")
    writer = app.extensions["statistics"].writer
    now = datetime.utcnow().replace(tzinfo=None)
    import calendar

    for hours_ago in (0, 5, 30, 50):  # a backlog written after an outage
        moment = now - timedelta(hours=hours_ago)
        for n in range(20):
            record = Record(calendar.timegm(moment.timetuple()) + n, 0.0, "GET", f"/late/{hours_ago}",
                            "curl/8.5.0", f"10.2.0.{n}", None)
            record.end, record.status_code, record.size = 0.01 * (n + 1), 200, 10
            writer.emit(record)
    assert statistics.flush(timeout=30, app=app)
    tables = Tables(app, db)
    assert_same(tables, today_filters(4))
    assert_same(tables, today_filters(2))


def test_batches_that_only_add_hits_keep_the_rows_sums(make_app: t.Any) -> None:
    # Later batches update rows in one statement per batch. Here the updated rows
    # carry no visitors (crawlers, requests without an address), so a column of the
    # update holds only NULLs; the visitors, times and top lists stay as they were.
    from flask_statistics.capture import Record

    app, db, _model, statistics = make_app(model="default")
    writer = app.extensions["statistics"].writer
    now = time.time()
    bot = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
    for batch in range(3):
        for n in range(30):
            agent, address = (bot, f"10.3.0.{n}") if n % 3 else ("curl/8.5.0", None)
            if batch == 0 and n % 10 == 0:
                agent, address = "curl/8.5.0", f"10.4.0.{n}"  # people, first batch only
            record = Record(now + batch + n / 100, 0.0, "GET", f"/crawl/{n % 4}", agent, address,
                            "https://example.com/" if n % 2 else None)
            record.end, record.status_code, record.size = 0.001 * (n + 1), 200 + (n % 2) * 104, n
            writer.emit(record)
        assert statistics.flush(timeout=30, app=app)
    tables = Tables(app, db)
    for extra in ({}, {"bots": "only"}, {"bots": "exclude"}, {"path": "/crawl/1"}, {"status": 304}):
        assert_same(tables, today_filters(**extra))
    with tables.engine.connect() as conn:
        kpis = figures.kpis(conn, tables.store, tables.table, today_filters())
        assert kpis.hits == 90 and kpis.visitors == 3


def test_without_rollup_tables_rows_are_still_written(make_app: t.Any, caplog: t.Any) -> None:
    app, db, _model, statistics = make_app(model="default")
    state = app.extensions["statistics"]
    with app.app_context():
        state.rollups.rollup.drop(db.engine)
        state.rollups.state.drop(db.engine)
        state.rollups.forget(db.engine)
    serve(app)
    client = app.test_client()
    for n in range(30):
        client.get(f"/items/{n}")
    assert statistics.flush(timeout=30, app=app)
    assert statistics.health(app).written == 30 and statistics.health(app).rejected == 0
    warnings = [r for r in caplog.records if "keeps no rollups" in r.getMessage()]
    assert len(warnings) == 1 and "db.create_all()" in warnings[0].getMessage()
    response = client.get("/statistics/", headers={"HX-Request": "true"})
    assert response.status_code == 200


def test_rollup_tables_without_the_agent_path_columns_name_the_fix(make_app: t.Any, caplog: t.Any) -> None:
    import re

    app, db, _model, statistics = make_app(model="default")
    state = app.extensions["statistics"]
    with app.app_context():
        engine = db.engine
        # The rollup and state tables as they were made before path-agent rows.
        for table, left_out in (
            (state.rollups.rollup, ("browser", "platform")), (state.rollups.state, ("open_merged",))
        ):
            table.drop(engine)
            sa.Table(
                table.name, sa.MetaData(),
                *(
                    sa.Column(c.name, c.type, primary_key=c.primary_key, nullable=c.nullable,
                              autoincrement=c.autoincrement)
                    for c in table.columns if c.name not in left_out
                ),
            ).create(engine)
        state.rollups.forget(engine)
    serve(app)
    client = app.test_client()
    for n in range(20):
        client.get(f"/items/{n}")
    assert statistics.flush(timeout=30, app=app)
    assert statistics.health(app).written == 20 and statistics.health(app).rejected == 0
    warnings = [r.getMessage() for r in caplog.records if "keeps no rollups" in r.getMessage()]
    rollup, state_table = state.rollups.rollup.name, state.rollups.state.name
    assert len(warnings) == 1, warnings
    assert (
        f"lack the column(s) {rollup}.browser, {rollup}.platform, {state_table}.open_merged"
        in warnings[0]
    ), warnings
    assert "flask statistics rebuild" in warnings[0]
    tables = Tables(app, db)
    with engine.connect() as conn:
        assert figures.source(conn, tables.store, today_filters()) == "rows"

    # The statements it names add the columns; then the rollups are kept again.
    fix = re.search(r"Add them \((.*)\), then run", warnings[0])
    assert fix is not None
    with engine.begin() as conn:
        for statement in fix.group(1).split("; "):
            conn.exec_driver_sql(statement)
    state.rollups.forget(engine)
    tables.rebuild()
    for n in range(20):
        client.get(f"/items/{n}")
    assert statistics.flush(timeout=30, app=app)
    assert_same(tables, today_filters())


# Storing the entries fails after the rows are sent; summing them fails while they
# are (on PostgreSQL, inside the COPY).
@pytest.mark.parametrize("failing", ["storing", "summing"])
def test_a_failing_rollup_update_keeps_the_rows_and_marks_the_rollups_stale(
    make_app: t.Any, monkeypatch: t.Any, caplog: t.Any, failing: str
) -> None:
    from flask_statistics.rollups.writing import Rollups

    app, db, _model, statistics = make_app(model="default")
    serve(app)
    client = app.test_client()
    client.get("/items/1")
    assert statistics.flush(timeout=30, app=app)
    store = app.extensions["statistics"].rollups

    def broken(*args: t.Any, **kwargs: t.Any) -> None:
        raise ValueError("rollups broken")

    if failing == "storing":
        monkeypatch.setattr(store, "apply", broken)
    else:
        monkeypatch.setattr(Rollups, "entries", broken)
    for n in range(10):
        client.get(f"/items/{n}")
    assert statistics.flush(timeout=30, app=app)
    health = statistics.health(app)
    assert (health.written, health.rejected, health.dropped) == (11, 0, 0)
    logged = [r.getMessage() for r in caplog.records]
    assert any("rollups (ValueError)" in m and "flask statistics rebuild --since" in m for m in logged)
    tables = Tables(app, db)
    with tables.engine.connect() as conn:
        assert figures.source(conn, store, today_filters()) == "rows"  # stale: the raw rows answer
        assert figures.kpis(conn, store, tables.table, today_filters()).hits == 11


def test_random_paths_leave_the_rollups_bounded(make_app: t.Any) -> None:
    from flask_statistics.capture import Record
    from flask_statistics.rollups.compact import close_days
    import calendar

    app, db, _model, statistics = make_app(model="default", config={"STATISTICS_QUEUE_SIZE": 200_000})
    writer = app.extensions["statistics"].writer
    rng = random.Random(1)
    start = calendar.timegm(datetime.utcnow().timetuple()) - 3 * 3600
    for n in range(100_000):  # a scanner: 100,000 random 404 paths over three hours
        record = Record(start + n * 0.1, 0.0, "GET", f"/{rng.getrandbits(48):x}", "scanner", "10.3.0.1", None)
        record.end, record.status_code = 0.001, 404
        writer.emit(record)
    assert statistics.flush(timeout=300, app=app)
    tables = Tables(app, db)
    r = tables.store.rollup.c

    def path_rows() -> tuple[dict[int, int], int]:
        with tables.engine.connect() as conn:
            counts = dict(conn.execute(
                sa.select(r.tier, sa.func.count()).where(r.grain == PATH).group_by(r.tier)
            ).all())
            quarters = conn.execute(
                sa.select(sa.func.count(sa.distinct(r.bucket))).where(r.grain == PATH, r.tier == QUARTER)
            ).scalar()
        return counts, quarters

    # At most the cap plus one "other" row per bucket (one route, method, status here).
    counts, quarters = path_rows()
    assert counts[QUARTER] <= quarters * (PATH_CAP[QUARTER] + 1)
    assert counts.get(DAY_TIER, 0) <= 2 * (PATH_CAP[DAY_TIER] + 1)  # one or two local days
    assert_same(tables, today_filters(2), paths=False)
    # Once the days are over, their day rows are bounded too.
    close_days(tables.engine, tables.store, "UTC", now=datetime.utcnow() + 2 * DAY)
    counts, quarters = path_rows()
    assert 0 < counts[DAY_TIER] <= 2 * (PATH_CAP[DAY_TIER] + 1)
    assert_same(tables, today_filters(2), paths=False)
    # So are the paths per browser and platform that closing the days made.
    with tables.engine.connect() as conn:
        agent_paths = conn.execute(
            sa.select(sa.func.count()).where(r.grain == PATH_AGENT, r.tier == DAY_TIER)
        ).scalar()
    assert PATH_AGENT_CAP[DAY_TIER] <= agent_paths <= 2 * (PATH_AGENT_CAP[DAY_TIER] + 1)


APP_MODULE = '''
import os
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from flask_statistics import Statistics

app = Flask(__name__)
app.config.update(
    SQLALCHEMY_DATABASE_URI=os.environ["ROLLUP_TEST_URL"],
    STATISTICS_TABLE_NAME=os.environ["ROLLUP_TEST_TABLE"],
    STATISTICS_FLUSH_INTERVAL=0.01,
    STATISTICS_BATCH_SIZE=5,
)
db = SQLAlchemy(app)
Statistics(app, db, None, lambda: True)


@app.route("/items/<int:id>")
def item(id):
    return "x" * id, 404 if id % 7 == 0 else 200
'''


def test_concurrent_workers_and_a_killed_one_keep_rollups_exact(
    database_url: str, tmp_path: t.Any
) -> None:
    """Two gunicorn workers write at once, small batches, and one is killed with
    SIGKILL while it writes: the rollups still equal the rows that landed."""
    import http.client
    import os
    import signal
    import subprocess
    import sys
    import threading
    import time
    import urllib.error
    import urllib.request

    from conftest import unique_table
    from test_gunicorn import free_port, wait_until_up

    (tmp_path / "rollapp.py").write_text(APP_MODULE)
    table_name = unique_table()
    env = {**os.environ, "ROLLUP_TEST_URL": database_url, "ROLLUP_TEST_TABLE": table_name}
    subprocess.run(
        [sys.executable, "-c", "import rollapp\nwith rollapp.app.app_context(): rollapp.db.create_all()"],
        cwd=tmp_path, env=env, check=True, timeout=60,
    )
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-w", "2", "-b", f"127.0.0.1:{port}",
         "--graceful-timeout", "20", "rollapp:app"],
        cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True,
    )

    def hammer(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(120):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/items/{rng.randrange(1, 50)}").read()
            except (OSError, http.client.HTTPException):  # 404s, and the killed worker's
                pass

    try:
        wait_until_up(port, proc)
        threads = [threading.Thread(target=hammer, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        time.sleep(1.0)
        children = (Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split())
        os.kill(int(children[0]), signal.SIGKILL)  # gunicorn starts another
        for thread in threads:
            thread.join()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)

    from flask import Flask
    from flask_sqlalchemy import SQLAlchemy

    from flask_statistics import Statistics

    app = Flask("reader")
    app.config.update(SQLALCHEMY_DATABASE_URI=database_url, STATISTICS_TABLE_NAME=table_name)
    db = SQLAlchemy(app)
    Statistics(app, db, None, lambda: True)
    tables = Tables(app, db)
    try:
        with tables.engine.connect() as conn:
            written = conn.execute(sa.select(sa.func.count()).select_from(tables.table)).scalar()
        # Many of the 960 requests; the killed worker's queue is lost, and with one
        # SQLite file the two writers take turns, so under load that queue has held
        # half of them (489 written in one run).
        assert written > 300
        assert_same(tables, today_filters())
        assert_same(tables, today_filters(3))
    finally:
        tables.drop()
        tables.table.drop(tables.engine)
        app.extensions["statistics"].writer.stop(timeout=2)
        tables.engine.dispose()


# ---------------------------------------------------------------------------------
# The dashboard and the command line


def test_the_log_says_when_pruned_requests_are_still_counted(make_app: t.Any) -> None:
    app, db, _model, statistics = make_app(model="default", config={"STATISTICS_TIMEZONE": "UTC"})
    serve(app)
    tables = Tables(app, db)
    rng = random.Random(6)
    today = datetime.utcnow().date()
    first = datetime.combine(today - timedelta(days=5), datetime.min.time())
    tables.insert(random_rows(rng, first, first + 4 * DAY, 400))
    tables.rebuild()
    client = app.test_client()
    query = f"/statistics/partials/requests?start={today - timedelta(days=6)}&end={today}"
    page = client.get(query, headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "pruned" not in page
    with tables.engine.begin() as conn:  # what prune or STATISTICS_RETENTION does
        conn.execute(tables.table.delete().where(tables.table.c.date < first + 2 * DAY))
    page = client.get(query, headers={"HX-Request": "true"}).get_data(as_text=True)
    assert 'id="pruned-note"' in page and "still count them" in page
    kpis = client.get(f"/statistics/partials/kpis?start={today - timedelta(days=6)}&end={today}",
                      headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "≈" in kpis  # the sketches' figures say they are approximate
    assert '<span class="kpi-value">400</span>' in kpis  # pruned requests still count


def test_rebuild_command_counts_imported_rows(make_app: t.Any) -> None:
    app, db, _model, statistics = make_app(model="default")
    state = app.extensions["statistics"]
    with app.app_context():
        state.rollups.rollup.drop(db.engine)
        state.rollups.state.drop(db.engine)
        state.rollups.forget(db.engine)
    tables_rows = random_rows(random.Random(12), WEEK.since, WEEK.until, 600)
    with app.app_context(), db.engine.begin() as conn:  # an import: rows without rollups
        conn.execute(state.table.insert(), tables_rows)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["statistics", "rebuild"])
    assert result.exit_code == 0, result.output
    assert "Rebuilt the rollups of 7 days from 600 rows." in result.output
    tables = Tables(app, db)
    assert_same(tables, WEEK)
    # Only from a day on: the rows of earlier days are not read again.
    result = runner.invoke(args=["statistics", "rebuild", "--since", "2024-03-09"])
    assert result.exit_code == 0 and "of 2 days from 2024-03-09" in result.output
    assert_same(tables, WEEK)
    result = runner.invoke(args=["statistics", "rebuild", "--since", "09/03/2024"])
    assert result.exit_code == 2 and "%Y-%m-%d" in result.output


def test_rollup_retention_deletes_old_rollups_only(make_app: t.Any) -> None:
    from flask_statistics.rollups.retention import RollupRetention

    tables, now = history(make_app, 3, 100)
    r = tables.store.rollup.c
    with tables.engine.connect() as conn:
        days_before = conn.execute(sa.select(sa.func.count(sa.distinct(r.bucket))).where(r.tier == DAY_TIER)).scalar()
    cutoff = now - 40 * DAY
    RollupRetention(tables.store, timedelta(days=40))(tables.engine)
    with tables.engine.connect() as conn:
        oldest = conn.execute(sa.select(sa.func.min(r.bucket))).scalar()
        months = conn.execute(sa.select(sa.func.min(r.bucket)).where(r.tier == MONTH)).scalar()
        days_after = conn.execute(sa.select(sa.func.count(sa.distinct(r.bucket))).where(r.tier == DAY_TIER)).scalar()
        raw = conn.execute(sa.select(sa.func.count()).select_from(tables.table)).scalar()
    # Whole months go: the month holding the cutoff stays whole, with its month rows.
    first_kept = datetime(cutoff.year, cutoff.month, 1)
    assert oldest == first_kept and months == first_kept
    assert days_before - 100 < days_after < days_before - 30
    assert raw == 3000
    assert_same(tables, Filters.between(first_kept.date(), now.date()))


def test_health_shows_the_backfill(make_app: t.Any) -> None:
    app, db, _model, statistics = make_app(model="default")
    tables = Tables(app, db)
    tables.insert(random_rows(random.Random(2), WEEK.since, WEEK.until, 300))
    backfill = app.extensions["statistics"].backfill
    backfill(tables.engine)  # the first day
    health = statistics.health(app)
    assert health.backfill_before is not None and health.backfill_from is not None
    assert WEEK.since <= health.backfill_from < health.backfill_before < WEEK.until
    while backfill.remaining is not None:
        backfill(tables.engine)
    assert statistics.health(app).backfill_before is None


def test_fifteen_minute_rows_are_kept_for_the_detail_period_only(make_app: t.Any) -> None:
    from flask_statistics.rollups.retention import DetailRetention

    app, db, _model, statistics = make_app(
        model="default", config={"STATISTICS_ROLLUP_DETAIL": timedelta(days=3)}
    )
    tables = Tables(app, db)
    now = datetime.utcnow()
    tables.insert(random_rows(random.Random(4), now - 8 * DAY, now - HOUR, 800))
    tables.rebuild()
    r = tables.store.rollup.c
    with tables.engine.connect() as conn:
        oldest_quarter = conn.execute(sa.select(sa.func.min(r.bucket)).where(r.tier == QUARTER)).scalar()
    assert oldest_quarter >= now - 3 * DAY - timedelta(minutes=15)
    assert_same(tables, today_filters(8))  # by the day: day rows, all of them
    old_day = Filters.between((now - 6 * DAY).date(), (now - 6 * DAY).date())  # by the hour
    with tables.engine.connect() as conn:
        assert figures.source(conn, tables.store, old_day) == "rows"
        assert figures.kpis(conn, tables.store, tables.table, old_day) == queries.kpis(conn, tables.table, old_day)
    tables.store.detail = timedelta(days=1)
    DetailRetention(tables.store)(tables.engine)
    with tables.engine.connect() as conn:
        oldest_quarter = conn.execute(sa.select(sa.func.min(r.bucket)).where(r.tier == QUARTER)).scalar()
    assert oldest_quarter >= now - DAY - timedelta(minutes=15)
    assert_same(tables, today_filters(8))


def test_each_chart_partial_reads_only_the_sketches_it_shows(make_app: t.Any) -> None:
    # Under a path filter over a long range a chart merges tens of thousands of
    # sketches: the traffic chart shows visitors, the response-time chart percentiles,
    # and neither reads the other's. The full page reads both, once.
    app, db, _model, _statistics = make_app(model="seed", config={"STATISTICS_ROLLUP_DETAIL": None})
    tables = Tables(app, db)
    try:
        tables.insert(random_rows(random.Random(21), WEEK.since, WEEK.until, 400))
        tables.rebuild()
        statements: list[str] = []
        sa.event.listen(tables.engine, "before_cursor_execute",
                        lambda conn, cursor, statement, *args: statements.append(statement))
        client = app.test_client()
        query = "?start=2024-03-04&end=2024-03-10"
        pages = {}
        for name in ("traffic", "response-times", ""):
            statements.clear()
            url = f"/statistics/partials/{name}{query}" if name else f"/statistics/{query}"
            response = client.get(url, headers={"HX-Request": "true"} if name else {})
            assert response.status_code == 200
            pages[name] = response.get_data(as_text=True)
            rollup = tables.store.rollup.name
            reads = [s for s in statements if f"FROM {rollup}" in s and f"{rollup}.bucket," in s]
            sketches = {kind for kind in ("times", "visitors") for s in reads if f"{rollup}.{kind}" in s}
            assert sketches == {"traffic": {"visitors"}, "response-times": {"times"}, "": {"times", "visitors"}}[name]
        visitors, times = re.compile(r"\d+ visitors?\b"), re.compile(r"p50 [^,<]+, p95 [^(<]+")
        assert visitors.findall(pages["traffic"]) == visitors.findall(pages[""]) != []
        assert times.findall(pages["response-times"]) == times.findall(pages[""]) != []
    finally:
        tables.drop()
