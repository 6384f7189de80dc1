"""Every dashboard figure against a reference computed in Python from the same rows,
read back from the database, on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import dataclasses
import math
import random
import re
import typing as t
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta, timezone
from fractions import Fraction

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flask_statistics import figures, percentiles, queries
from flask_statistics.filters import TEXT_FILTERS, Filters, zone
from flask_statistics.forms import MAX_DAYS
from flask_statistics.queries import Kpis, PathStats, Point, Series

WEEK = Filters.between(date(2024, 3, 4), date(2024, 3, 10))
HOUR, DAY, MICRO = timedelta(hours=1), timedelta(days=1), timedelta(microseconds=1)

# LIKE wildcards, the escape character, case and trailing-space variants, a
# backslash and non-ASCII: each must match only itself.
PATHS = ["/", "/a", "/a_b%", "/aXb%", "/a_bc", "/a_b%/x", "/a/b_", "/About", "/about",
         "/about ", "/p\\q", "/é", "/%", "/_", "//x", "/x//", None]
ADDRESSES = [f"10.0.0.{n}" for n in range(40)] + ["::1", "A::1", "a::1", None]
Stored = list[dict[str, t.Any]]
STATUSES = [200] * 8 + [101, 201, 204, 301, 302, 304, 400, 401, 404, 404, 418, 500, 503, 599, None]


def make_row(rng: random.Random, when: datetime, **fields: t.Any) -> dict[str, t.Any]:
    status = rng.choice(STATUSES)
    row = {
        "date": when,
        # Ties (0.25, 1/16ths) and full-precision floats, and NULLs.
        "response_time": rng.choice([None, 0.25, 0.5, rng.randint(1, 4000) / 16,
                                     rng.random(), rng.random() * 30]),
        "method": rng.choice(["GET"] * 5 + ["POST", "PUT", "DELETE", "HEAD"]),
        "size": rng.choice([None, 0, rng.randrange(10**7)]),
        "status_code": status,
        "path": rng.choice(PATHS),
        "user_agent": rng.choice(
            ["Mozilla/5.0 (X11; Linux)", "curl/8.5", "<script>x</script>", None]
        ),
        "remote_address": rng.choice(ADDRESSES),
        "exception": "ValueError('boom')" if status == 500 else None,
        "referrer": rng.choice([None, "https://example.com/", "https://example.com/ ",
                                "HTTPS://EXAMPLE.COM/"]),
        "browser": rng.choice(["Firefox 72.0", "firefox 72.0", "Chrome 120.0", None]),
        "platform": rng.choice(["Linux", "Windows", "Mac OS X", None]),
        "mimetype": rng.choice(["text/html", "application/json", None]),
    }
    row.update(fields)
    return row


# Rows from two days before WEEK to two days after it, plus rows on its edges, on
# every hour edge of its first two days and on every day edge.
def realistic_rows(seed: int = 7, n: int = 700) -> Stored:
    rng = random.Random(seed)
    first, last = WEEK.since - 2 * DAY, WEEK.until + 2 * DAY
    span = (last - first) // MICRO
    rows = [make_row(rng, first + rng.randrange(span) * MICRO) for _ in range(n)]
    edges = [WEEK.since - MICRO, WEEK.since, WEEK.until - MICRO, WEEK.until]
    edges += [WEEK.since + k * HOUR + delta for k in range(1, 49) for delta in (-MICRO, 0 * MICRO)]
    edges += [WEEK.since + k * DAY + delta for k in range(1, 7) for delta in (-MICRO, 0 * MICRO)]
    rows += [make_row(rng, when) for when in edges]
    rows.append(make_row(rng, WEEK.since + 3 * DAY, path="/single", remote_address="10.9.9.9",
                         response_time=0.125))
    return rows


@dataclasses.dataclass
class Store:
    conn: sa.Connection
    table: sa.Table
    backend: str

    def insert(self, rows: Stored) -> Stored:
        # Returns every row as the database keeps it, the reference's input.
        if rows:
            self.conn.execute(self.table.insert(), rows)
        self.conn.commit()
        return self.stored()

    def clear(self) -> None:
        self.conn.execute(self.table.delete())
        self.conn.commit()

    def stored(self) -> Stored:
        # MariaDB keeps microseconds only with DATETIME(6) and rounds FLOAT to single
        # precision, which it sends as 6 digits unless asked for a double.
        c = self.table.c
        rt: sa.ColumnElement[t.Any] = c.response_time
        if self.backend == "mariadb":
            rt = sa.type_coerce(rt + sa.literal_column("0e0"), sa.Float())
        columns = [rt.label("response_time") if col.name == "response_time" else col for col in c]
        query = sa.select(*columns).order_by(c["index"])
        return [dict(row) for row in self.conn.execute(query).mappings()]


Seeded = tuple[Store, Stored]


def open_store(make_app: t.Any, backend: str, model: str) -> t.Iterator[Store]:
    app, db, _model, _statistics = make_app(model=model)
    table = app.extensions["statistics"].table
    with app.app_context():
        engine = db.engines[table.metadata.info.get("bind_key")]
    with engine.connect() as conn:
        # Strict grouping, and a session time zone that must not shift any bucket.
        if backend == "mariadb":
            conn.execute(
                sa.text("SET SESSION sql_mode = CONCAT(@@sql_mode, ',ONLY_FULL_GROUP_BY')")
            )
            conn.execute(sa.text("SET SESSION time_zone = '+09:30'"))
        elif backend == "postgresql":
            conn.execute(sa.text("SET TIME ZONE 'America/Sao_Paulo'"))
        yield Store(conn, table, backend)


@pytest.fixture
def store(make_app: t.Any, backend: str) -> t.Iterator[Store]:
    """A table of the classic example's model, without indexes."""
    yield from open_store(make_app, backend, "seed")


@pytest.fixture
def indexed_store(make_app: t.Any, backend: str) -> t.Iterator[Store]:
    """A table of the default model, with its indexes."""
    yield from open_store(make_app, backend, "default")


# The reference: plain Python over the stored rows.

def matches(row: dict[str, t.Any], f: Filters) -> bool:
    if row["date"] is None or not f.since <= row["date"] < f.until:
        return False
    path = row["path"]
    if f.path is not None and (
        path is None
        or (not path.startswith(f.path) if f.path_match == "prefix" else path != f.path)
    ):
        return False
    status = row["status_code"]
    if f.status is not None and status != f.status:
        return False
    if f.status_class is not None and (status is None or status // 100 != f.status_class):
        return False
    return all(getattr(f, name) in (None, row[name]) for name in TEXT_FILTERS)


def nearest_rank(values: t.Iterable[float | None], p: Fraction) -> float | None:
    ordered = sorted(v for v in values if v is not None)
    return ordered[math.ceil(p * len(ordered)) - 1] if ordered else None


def approx(value: float | None) -> t.Any:
    # Averages may differ in the last bits by summation order.
    return None if value is None else pytest.approx(value, rel=1e-9)


def mean(values: t.Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def visitors(rows: Stored) -> int:
    return len({r["remote_address"] for r in rows} - {None})


def times(rows: Stored) -> list[float | None]:
    return [r["response_time"] for r in rows]


def ref_kpis(stored: Stored, f: Filters) -> Kpis:
    rows = [r for r in stored if matches(r, f)]
    codes = [r["status_code"] for r in rows if r["status_code"] is not None]
    hits = len(rows)
    return Kpis(
        hits=hits,
        visitors=visitors(rows),
        avg=approx(mean(times(rows))),
        p50=nearest_rank(times(rows), Fraction(1, 2)),
        p95=nearest_rank(times(rows), Fraction(95, 100)),
        p99=nearest_rank(times(rows), Fraction(99, 100)),
        rate_4xx=sum(400 <= c < 500 for c in codes) / hits if hits else None,
        rate_5xx=sum(500 <= c < 600 for c in codes) / hits if hits else None,
        bytes_sent=sum(r["size"] or 0 for r in rows),
    )


def local(moment: datetime, f: Filters) -> datetime:
    return moment.replace(tzinfo=timezone.utc).astimezone(zone(f.tz))


def ref_unit(f: Filters) -> str:
    # Hours within two local days, then the finest unit with at most 200 buckets.
    first, last = local(f.since, f).date(), local(max(f.since, f.until - MICRO), f).date()
    if (last - first).days < 2:
        return "hour"
    monday = (last - timedelta(days=last.weekday()) - (first - timedelta(days=first.weekday())))
    counts = {
        "day": (last - first).days + 1,
        "week": monday.days // 7 + 1,
        "month": (last.year - first.year) * 12 + last.month - first.month + 1,
    }
    return next((unit for unit, n in counts.items() if n <= 200), "year")


def period(moment: datetime, f: Filters, unit: str) -> tuple[t.Any, ...]:
    # The local period a UTC instant falls in, read off the local clock; a repeated
    # hour is told apart by its fold.
    when = local(moment, f)
    day = when.date()
    return {
        "hour": (day, when.hour, when.fold),
        "day": (day,),
        "week": (day - timedelta(days=day.weekday()),),
        "month": (day.year, day.month),
        "year": (day.year,),
    }[unit]


def ref_starts(f: Filters, unit: str) -> list[datetime]:
    # Walk the window an hour at a time and, where the period changes, a quarter of
    # an hour at a time: every offset in use is a whole number of quarter hours, so
    # each period begins on that grid counted from since (a local midnight).
    quarter = timedelta(minutes=15)
    starts = [f.since]
    moment, current = f.since, period(f.since, f, unit)
    while moment + HOUR < f.until:
        if period(moment + HOUR, f, unit) == current:
            moment += HOUR
            continue
        for _ in range(4):
            moment += quarter
            if period(moment, f, unit) != current:
                starts.append(moment)
                current = period(moment, f, unit)
    moment += quarter
    while moment < f.until:
        if period(moment, f, unit) != current:
            starts.append(moment)
            current = period(moment, f, unit)
        moment += quarter
    return starts


def ref_series(stored: Stored, f: Filters) -> Series:
    unit = ref_unit(f)
    starts = ref_starts(f, unit)
    place = {period(start, f, unit): k for k, start in enumerate(starts)}
    assert len(place) == len(starts)
    buckets: list[Stored] = [[] for _ in starts]
    for row in (r for r in stored if matches(r, f)):
        buckets[place[period(row["date"], f, unit)]].append(row)
    points = [
        Point(start, len(b), visitors(b), nearest_rank(times(b), Fraction(1, 2)),
              nearest_rank(times(b), Fraction(95, 100)))
        for start, b in zip(starts, buckets)
    ]
    return Series(unit, points, f.until)  # type: ignore[arg-type]


def ranked(counts: dict[t.Any, int], limit: int) -> list[tuple[t.Any, int]]:
    order = sorted(counts.items(), key=lambda item: (-item[1], item[0] is None, item[0]))
    return order[:limit]


def ref_top(stored: Stored, f: Filters, column: str, limit: int) -> list[tuple[t.Any, int]]:
    return ranked(Counter(r[column] for r in stored if matches(r, f)), limit)


def ref_status_classes(stored: Stored, f: Filters) -> list[tuple[str, int]]:
    classes = Counter(
        r["status_code"] // 100 for r in stored
        if matches(r, f) and r["status_code"] is not None and 100 <= r["status_code"] < 600
    )
    return [(f"{c}xx", n) for c, n in sorted(classes.items())]


def ref_top_paths(stored: Stored, f: Filters, limit: int) -> list[PathStats]:
    groups: dict[str | None, Stored] = defaultdict(list)
    for row in (r for r in stored if matches(r, f)):
        groups[row["path"]].append(row)
    return [
        PathStats(
            path=path,
            hits=hits,
            visitors=visitors(groups[path]),
            avg=approx(mean(times(groups[path]))),
            p95=nearest_rank(times(groups[path]), Fraction(95, 100)),
            error_rate=sum((r["status_code"] or 0) >= 400 for r in groups[path]) / hits,
            last_seen=max(r["date"] for r in groups[path]),
        )
        for path, hits in ranked({p: len(g) for p, g in groups.items()}, limit)
    ]


def ref_order(stored: Stored, f: Filters) -> list[int]:
    rows = [r for r in stored if matches(r, f)]
    present = sorted((r for r in rows if r[f.sort] is not None),
                     key=lambda r: (r[f.sort], r["index"]), reverse=f.descending)
    missing = sorted((r for r in rows if r[f.sort] is None),
                     key=lambda r: r["index"], reverse=f.descending)
    return [r["index"] for r in present + missing]


def week(**fields: t.Any) -> Filters:
    return dataclasses.replace(WEEK, **fields)


CASES: dict[str, Filters] = {
    "week": WEEK,
    "two days, hourly": Filters.between(date(2024, 3, 4), date(2024, 3, 5)),
    "one day": Filters.between(date(2024, 3, 6), date(2024, 3, 6)),
    "three days": Filters.between(date(2024, 3, 3), date(2024, 3, 5)),
    "around the data": Filters.between(date(2024, 2, 29), date(2024, 3, 14)),
    "empty window": Filters.between(date(2023, 1, 1), date(2023, 1, 7)),
    "exact /a_b%": week(path="/a_b%"),
    "exact /about": week(path="/about"),
    "exact /about with a space": week(path="/about "),
    "single row": week(path="/single"),
    "no such path": week(path="/nope"),
    "prefix /a_b%": week(path="/a_b%", path_match="prefix"),
    "prefix /a_": week(path="/a_", path_match="prefix"),
    "prefix /about": week(path="/about", path_match="prefix"),
    "prefix //": week(path="//", path_match="prefix"),
    "prefix /%": week(path="/%", path_match="prefix"),
    "prefix backslash": week(path="/p\\", path_match="prefix"),
    "prefix /": week(path="/", path_match="prefix"),
    "status 404": week(status=404),
    "status 599": week(status=599),
    "class 1xx": week(status_class=1),
    "class 2xx": week(status_class=2),
    "class 4xx": week(status_class=4),
    "class 5xx": week(status_class=5),
    "method POST": week(method="POST"),
    "browser": week(browser="Firefox 72.0"),
    "platform": week(platform="Mac OS X"),
    "address A::1": week(remote_address="A::1"),
    "user agent": week(user_agent="<script>x</script>"),
    "combined": week(path="/a", path_match="prefix", status_class=2, method="GET",
                     browser="Chrome 120.0"),
}


@pytest.fixture
def seeded(store: Store) -> Seeded:
    return store, store.insert(realistic_rows())


def test_the_default_model_and_its_indexes(indexed_store: Store) -> None:
    # The same figures whether the database reads the window through the date index
    # or, when the window holds every row, straight through the table.
    store = indexed_store
    stored = store.insert(realistic_rows())
    assert all(matches(r, CASES["around the data"]) for r in stored)
    for name in ("around the data", "week", "prefix /a_", "class 4xx", "two days, hourly"):
        f = CASES[name]
        assert queries.kpis(store.conn, store.table, f) == ref_kpis(stored, f), name
        assert queries.timeseries(store.conn, store.table, f) == ref_series(stored, f), name
        actual = queries.top_paths(store.conn, store.table, f, 5)
        assert actual == ref_top_paths(stored, f, 5), name
        actual_classes = queries.status_classes(store.conn, store.table, f)
        assert actual_classes == ref_status_classes(stored, f), name
        for column in ("path", "referrer"):
            actual_top = queries.top(store.conn, store.table, f, column, 3)
            assert actual_top == ref_top(stored, f, column, 3), (name, column)


def test_the_longest_window(seeded: Seeded) -> None:
    store, stored = seeded
    last = WEEK.end_day + 4 * DAY
    f = Filters.between(last - (MAX_DAYS - 1) * DAY, last)
    series = queries.timeseries(store.conn, store.table, f)
    # Ten years by the month: 2014-03-08 to 2024-03-14 touches 121 calendar months.
    assert (series.width, len(series.points)) == ("month", 121)
    assert series == ref_series(stored, f)


def test_the_data_exercises_every_case(seeded: Seeded) -> None:
    store, stored = seeded
    hits = {name: sum(matches(r, f) for r in stored) for name, f in CASES.items()}
    assert hits["empty window"] == hits["no such path"] == 0
    assert hits["single row"] == 1
    special = ("empty window", "no such path", "single row")
    assert all(n > 1 for name, n in hits.items() if name not in special), hits


def test_kpis(seeded: Seeded) -> None:
    store, stored = seeded
    for name, f in CASES.items():
        assert queries.kpis(store.conn, store.table, f) == ref_kpis(stored, f), name
        previous = f.previous()
        assert queries.kpis(store.conn, store.table, previous) == ref_kpis(stored, previous), name


def test_timeseries(seeded: Seeded) -> None:
    store, stored = seeded
    for name, f in CASES.items():
        assert queries.timeseries(store.conn, store.table, f) == ref_series(stored, f), name


def test_status_classes(seeded: Seeded) -> None:
    store, stored = seeded
    for name, f in CASES.items():
        actual = queries.status_classes(store.conn, store.table, f)
        assert actual == ref_status_classes(stored, f), name


@pytest.mark.parametrize("column", queries.TOP_COLUMNS)
def test_top(seeded: Seeded, column: str) -> None:
    store, stored = seeded
    for name, f in CASES.items():
        for limit in (3, 1000):
            actual = queries.top(store.conn, store.table, f, column, limit)
            assert actual == ref_top(stored, f, column, limit), (name, limit)


def test_top_paths(seeded: Seeded) -> None:
    store, stored = seeded
    for name, f in CASES.items():
        for limit in (5, 1000):
            actual = queries.top_paths(store.conn, store.table, f, limit)
            assert actual == ref_top_paths(stored, f, limit), (name, limit)


NARROWED = [{"user_agent": "curl/8.5"}, {"remote_address": "10.0.0.3"},
            {"remote_address": "a::1", "status_class": 2}]


@pytest.mark.parametrize("narrowed", NARROWED, ids=[str(n) for n in NARROWED])
def test_the_top_lists_of_one_client_or_user_agent_in_one_pass(
    seeded: Seeded, narrowed: dict[str, t.Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, stored = seeded
    f = week(**narrowed)
    columns = ["path", "browser", "platform", "referrer", "method"]
    assert any(matches(r, f) for r in stored)
    for grouped in ((), ("browser", "referrer")):
        each = [queries.top(store.conn, store.table, f, c, 3, grouped=c in grouped) for c in columns]
        got = queries.top_lists(store.conn, store.table, f, columns, 3, grouped=grouped)
        assert got == each
        if not grouped:
            assert got == [ref_top(stored, f, c, 3) for c in columns]
        assert figures.top_lists(store.conn, None, store.table, f, columns, 3, grouped=grouped) == each
        # More combinations than it adds up itself: the lists come one by one.
        monkeypatch.setattr(queries, "COMBINATIONS", 1)
        assert queries.top_lists(store.conn, store.table, f, columns, 3, grouped=grouped) is None
        assert figures.top_lists(store.conn, None, store.table, f, columns, 3, grouped=grouped) == each
        monkeypatch.undo()


@pytest.mark.parametrize("sort", ["date", "response_time", "size", "status_code"])
@pytest.mark.parametrize("descending", [True, False])
def test_request_pages(seeded: Seeded, sort: str, descending: bool) -> None:
    store, stored = seeded
    by_index = {r["index"]: r for r in stored}
    for name in ("week", "class 4xx", "prefix /a_b%", "single row", "empty window"):
        f = dataclasses.replace(CASES[name], sort=sort, descending=descending)
        expected = ref_order(stored, f)
        seen: list[int] = []
        for page in range(1, len(expected) // 40 + 3):
            on_page = dataclasses.replace(f, page=page)
            result = queries.request_page(store.conn, store.table, on_page, 40)
            assert (result.page, result.page_size, result.has_previous) == (page, 40, page > 1)
            assert result.has_next == (len(expected) > page * 40), (name, page)
            assert all(dict(row) == by_index[row["index"]] for row in result.rows)
            seen += [row["index"] for row in result.rows]
        assert seen == expected, name


def test_page_boundaries(store: Store) -> None:
    rng = random.Random(3)
    store.insert([make_row(rng, WEEK.since + k * HOUR) for k in range(20)])
    newest_first = list(range(20, 0, -1))

    def page(n: int, size: int) -> queries.Page:
        return queries.request_page(store.conn, store.table, week(page=n), size)

    assert [r["index"] for r in page(1, 10).rows] == newest_first[:10]
    assert (page(1, 10).has_next, page(2, 10).has_next) == (True, False)
    assert (page(1, 10).has_previous, page(2, 10).has_previous) == (False, True)
    assert [r["index"] for r in page(2, 10).rows] == newest_first[10:]
    assert (page(3, 10).rows, page(3, 10).has_next) == ([], False)
    assert (len(page(1, 20).rows), page(1, 20).has_next) == (20, False)
    assert (len(page(1, 19).rows), page(1, 19).has_next, len(page(2, 19).rows)) == (19, True, 1)
    with pytest.raises(ValueError, match="page_size"):
        page(1, 0)


def test_sort_ties_go_by_index_and_nulls_last(store: Store) -> None:
    rng = random.Random(5)
    times_ = [0.5, None, 0.25, 0.5, None, 0.5, 0.25]
    store.insert(
        [make_row(rng, WEEK.since + k * HOUR, response_time=rt) for k, rt in enumerate(times_)]
    )
    order = {
        desc: [r["index"] for r in queries.request_page(
            store.conn, store.table, week(sort="response_time", descending=desc), 50).rows]
        for desc in (True, False)
    }
    assert order[True] == [6, 4, 1, 7, 3, 5, 2]
    assert order[False] == [3, 7, 1, 4, 6, 2, 5]


def test_request_detail(seeded: Seeded) -> None:
    store, stored = seeded
    for row in (stored[0], stored[len(stored) // 2], stored[-1]):
        assert dict(queries.request_detail(store.conn, store.table, row["index"]) or {}) == row
    assert queries.request_detail(store.conn, store.table, 10**9) is None


def test_an_empty_table(store: Store) -> None:
    nothing = Kpis(0, 0, None, None, None, None, None, None, 0)
    assert queries.kpis(store.conn, store.table, WEEK) == nothing
    series = queries.timeseries(store.conn, store.table, WEEK)
    empty_days = [Point(WEEK.since + k * DAY, 0, 0, None, None) for k in range(7)]
    assert series == Series("day", empty_days, WEEK.until)
    assert queries.status_classes(store.conn, store.table, WEEK) == []
    assert queries.top(store.conn, store.table, WEEK, "path") == []
    assert queries.top_paths(store.conn, store.table, WEEK) == []
    page = queries.request_page(store.conn, store.table, WEEK, 50)
    assert (page.rows, page.has_next, page.has_previous) == ([], False, False)


def test_one_row(store: Store) -> None:
    when = datetime(2024, 3, 5, 13, 30)
    store.insert([make_row(random.Random(1), when, response_time=0.375, remote_address="::1",
                           status_code=503, size=None, path="/x")])
    one = Kpis(1, 1, 0.375, 0.375, 0.375, 0.375, 0.0, 1.0, 0)
    assert queries.kpis(store.conn, store.table, WEEK) == one
    points = queries.timeseries(store.conn, store.table, WEEK).points
    assert [p.hits for p in points] == [0, 1, 0, 0, 0, 0, 0]
    assert (points[1].p50, points[1].p95, points[1].visitors) == (0.375, 0.375, 1)
    stats = PathStats("/x", 1, 1, 0.375, 0.375, 1.0, when)
    assert queries.top_paths(store.conn, store.table, WEEK) == [stats]


def test_nearest_rank_percentiles(store: Store) -> None:
    # 1..20 seconds: p50 is the 10th value, p95 the 19th, p99 the 20th.
    rng = random.Random(2)
    rows = [make_row(rng, WEEK.since + k * HOUR, response_time=float(k + 1)) for k in range(20)]
    store.insert([*rows, make_row(rng, WEEK.since, response_time=None)])
    kpis = queries.kpis(store.conn, store.table, WEEK)
    assert (kpis.hits, kpis.p50, kpis.p95, kpis.p99, kpis.avg) == (21, 10.0, 19.0, 20.0, 10.5)


def test_hour_bucket_edges(store: Store) -> None:
    # SQLite's date functions round to milliseconds: 00:59:59.9999995 must stay in
    # the first hour. MariaDB's DATETIME drops the fraction, which keeps it there too.
    f = Filters.between(date(2024, 3, 4), date(2024, 3, 5))
    rng = random.Random(4)
    store.insert([make_row(rng, f.since + delta) for delta in (
        timedelta(0), HOUR - MICRO, HOUR, HOUR + MICRO, 2 * HOUR - 500 * MICRO, 47 * HOUR,
        48 * HOUR - MICRO, 48 * HOUR, -MICRO)])
    series = queries.timeseries(store.conn, store.table, f)
    assert series.width == "hour" and len(series.points) == 48
    assert [p.start for p in series.points] == [f.since + k * HOUR for k in range(48)]
    hits = [p.hits for p in series.points]
    assert (hits[0], hits[1], hits[47], sum(hits)) == (2, 3, 2, 7)


def test_width_switches_after_exactly_two_days() -> None:
    two_days = Filters.between(date(2024, 3, 4), date(2024, 3, 5))
    assert queries.bucket_width(two_days) == "hour"
    assert queries.bucket_width(dataclasses.replace(two_days, until=two_days.until + MICRO)) == "day"
    assert queries.bucket_width(Filters.between(date(2024, 3, 4), date(2024, 3, 6))) == "day"


@pytest.mark.parametrize(
    ("first", "last", "unit", "count"),
    [
        # Two local days are hours even when one of them has 25.
        (date(2024, 10, 26), date(2024, 10, 27), "hour", 49),
        (date(2024, 3, 30), date(2024, 3, 31), "hour", 47),
        (date(2024, 1, 1), date(2024, 7, 18), "day", 200),
        (date(2024, 1, 1), date(2024, 7, 19), "week", 29),
        (date(2024, 1, 1), date(2024, 12, 31), "week", 53),
        # 200 weeks from a Monday, then one day more.
        (date(2024, 1, 1), date(2027, 10, 31), "week", 200),
        (date(2024, 1, 1), date(2027, 11, 1), "month", 47),
        (date(2014, 1, 1), date(2023, 12, 31), "month", 120),
        (date(2000, 1, 1), date(2016, 8, 31), "month", 200),
        (date(2000, 1, 1), date(2016, 9, 1), "year", 17),
    ],
)
def test_the_unit_keeps_charts_to_200_points(first: date, last: date, unit: str, count: int) -> None:
    f = Filters.between(first, last, tz="Europe/Berlin")
    assert queries.bucket_width(f) == unit == ref_unit(f)
    assert len(queries.bucket_starts(f)) == count


def boundary_rows(f: Filters, rng: random.Random, n: int = 300) -> Stored:
    # Rows on every bucket edge and a microsecond either side of it, on the window's
    # edges, and at random in and around the window.
    edges = ref_starts(f, ref_unit(f)) + [f.until]
    when = [edge + delta for edge in edges for delta in (-MICRO, 0 * MICRO, MICRO)]
    span = (f.until - f.since) // MICRO
    when += [f.since + rng.randrange(-span // 10, span + span // 10) * MICRO for _ in range(n)]
    return [make_row(rng, moment) for moment in when]


CALENDAR_CASES = {
    # Spring forward on 31 March (a 23-hour day), fall back on 27 October (25 hours).
    "Berlin, spring": Filters.between(date(2024, 3, 28), date(2024, 4, 3), tz="Europe/Berlin"),
    "Berlin, autumn": Filters.between(date(2024, 10, 24), date(2024, 10, 30), tz="Europe/Berlin"),
    "Berlin, 25 hours": Filters.between(date(2024, 10, 26), date(2024, 10, 27), tz="Europe/Berlin"),
    "New York, 23 hours": Filters.between(date(2024, 3, 10), date(2024, 3, 10), tz="America/New_York"),
    "New York, weeks": Filters.between(date(2023, 6, 1), date(2024, 5, 31), tz="America/New_York"),
    "Kathmandu (+5:45), days": Filters.between(date(2024, 3, 1), date(2024, 3, 20), tz="Asia/Kathmandu"),
    "Kathmandu (+5:45), hours": Filters.between(date(2024, 3, 4), date(2024, 3, 5), tz="Asia/Kathmandu"),
    "Kolkata (+5:30), weeks": Filters.between(date(2024, 1, 1), date(2024, 12, 31), tz="Asia/Kolkata"),
    "Eucla (+8:45), months": Filters.between(date(2015, 1, 1), date(2024, 12, 31), tz="Australia/Eucla"),
    "Berlin, ten years": Filters.between(date(2015, 1, 1), date(2024, 12, 31), tz="Europe/Berlin"),
    "Berlin, one year": Filters.between(date(2024, 1, 1), date(2024, 12, 31), tz="Europe/Berlin"),
    # Clocks go from 23:59:59 to 01:00 on 8 September: that day begins at 01:00.
    "Santiago, midnight skipped": Filters.between(date(2024, 9, 5), date(2024, 9, 11), tz="America/Santiago"),
    "Santiago, hours": Filters.between(date(2024, 9, 7), date(2024, 9, 8), tz="America/Santiago"),
    # 30 December 2011 never happened in Samoa.
    "Apia, a day skipped": Filters.between(date(2011, 12, 28), date(2012, 1, 2), tz="Pacific/Apia"),
}


@pytest.mark.parametrize("name", list(CALENDAR_CASES))
def test_buckets_follow_the_local_calendar(store: Store, name: str) -> None:
    f = CALENDAR_CASES[name]
    stored = store.insert(boundary_rows(f, random.Random(name)))
    series = queries.timeseries(store.conn, store.table, f)
    assert series == ref_series(stored, f)
    assert sum(p.hits for p in series.points) == sum(matches(r, f) for r in stored) > 0


def test_days_across_daylight_saving_are_23_and_25_hours(store: Store) -> None:
    spring, autumn = CALENDAR_CASES["Berlin, spring"], CALENDAR_CASES["Berlin, autumn"]
    lengths = {}
    for f in (spring, autumn):
        starts = [p.start for p in queries.timeseries(store.conn, store.table, f).points]
        lengths[f.start_day] = [(b - a) / HOUR for a, b in zip(starts, [*starts[1:], f.until])]
        # Every day starts at midnight, Berlin time.
        assert {local(s, f).time() for s in starts} == {datetime.min.time()}
    assert lengths[spring.start_day] == [24, 24, 24, 23, 24, 24, 24]
    assert lengths[autumn.start_day] == [24, 24, 24, 25, 24, 24, 24]


def test_a_row_at_local_midnight_belongs_to_the_new_day(store: Store) -> None:
    f = CALENDAR_CASES["Kathmandu (+5:45), days"]
    midnight = datetime(2024, 3, 4, 18, 15)  # 5 March, 00:00 in Kathmandu
    store.insert([make_row(random.Random(1), midnight - MICRO * 10**6),
                  make_row(random.Random(2), midnight)])
    points = queries.timeseries(store.conn, store.table, f).points
    assert [p.start for p in points[3:5]] == [midnight - DAY, midnight]
    assert [p.hits for p in points[3:5]] == [1, 1]


def test_a_skipped_midnight_starts_the_day_when_the_clocks_jump(store: Store) -> None:
    f = CALENDAR_CASES["Santiago, midnight skipped"]
    points = queries.timeseries(store.conn, store.table, f).points
    # Days begin at 04:00 UTC (-04) until 8 September, which begins at 04:00 UTC
    # too (01:00 -03), and at 03:00 UTC after it.
    assert [p.start.hour for p in points] == [4, 4, 4, 4, 3, 3, 3]
    apia = CALENDAR_CASES["Apia, a day skipped"]
    days = [local(p.start, apia).day for p in queries.timeseries(store.conn, store.table, apia).points]
    assert days == [28, 29, 31, 1, 2]


def test_sql_does_not_grow_with_the_range(store: Store) -> None:
    statements: list[str] = []

    def record(conn: t.Any, cursor: t.Any, statement: str, *args: t.Any) -> None:
        statements.append(statement)

    sa.event.listen(store.conn, "before_cursor_execute", record)
    lengths = {}
    try:
        for years in (1, 10, 20):
            statements.clear()
            f = Filters.between(date(2025 - years, 1, 1), date(2024, 12, 31), tz="Europe/Berlin")
            queries.timeseries(store.conn, store.table, f)
            lengths[years] = sum(len(s) for s in statements if "bucket" in s)
            assert statements and max(len(s) for s in statements) < 20_000, years
    finally:
        sa.event.remove(store.conn, "before_cursor_execute", record)
    # Weeks, months and years: the same statements, only the parameters differ.
    assert lengths[1] == lengths[10] == lengths[20], lengths


def test_prefix_and_exact_match_literally(store: Store) -> None:
    rng = random.Random(8)
    store.insert([make_row(rng, WEEK.since + k * HOUR, path=path) for k, path in enumerate(PATHS)])

    def paths(**fields: t.Any) -> set[str | None]:
        return {p for p, _ in queries.top(store.conn, store.table, week(**fields), "path", 100)}

    assert paths(path="/a_b%", path_match="prefix") == {"/a_b%", "/a_b%/x"}
    assert paths(path="/a_", path_match="prefix") == {"/a_b%", "/a_bc", "/a_b%/x"}
    assert paths(path="/about", path_match="prefix") == {"/about", "/about "}
    assert paths(path="//", path_match="prefix") == {"//x"}
    assert paths(path="/%", path_match="prefix") == {"/%"}
    assert paths(path="/p\\", path_match="prefix") == {"/p\\q"}
    assert paths(path="/about") == {"/about"}
    assert paths(path="/About") == {"/About"}
    assert paths(path="/É") == set()


def test_text_is_compared_by_code_point_whatever_the_collation(store: Store) -> None:
    # Locale collations order "a" before "B" and "/é" next to "/e"; MySQL-family
    # ones also equate "A" and "a". Results must not depend on that.
    name = store.table.name
    if store.backend == "postgresql":
        store.conn.execute(sa.text(
            f'ALTER TABLE {name} ALTER COLUMN path TYPE VARCHAR(255) COLLATE "en-US-x-icu"'))
    elif store.backend == "mariadb":
        store.conn.execute(sa.text(
            f"ALTER TABLE {name} MODIFY path VARCHAR(255) "
            "CHARACTER SET latin1 COLLATE latin1_general_ci"))
    rng = random.Random(9)
    paths = ["/b", "/B", "/a", "/A", "/é", "/e", "/a "]
    store.insert([make_row(rng, WEEK.since + k * HOUR, path=p) for k, p in enumerate(paths)])
    ordered = ["/A", "/B", "/a", "/a ", "/b", "/e", "/é"]
    assert queries.top(store.conn, store.table, WEEK, "path", 100) == [(p, 1) for p in ordered]
    assert [s.path for s in queries.top_paths(store.conn, store.table, WEEK, 100)] == ordered
    assert queries.kpis(store.conn, store.table, week(path="/a")).hits == 1
    assert queries.kpis(store.conn, store.table, week(path="/a", path_match="prefix")).hits == 2
    assert queries.kpis(store.conn, store.table, week(path="/é", path_match="prefix")).hits == 1


def test_unknown_top_column(store: Store) -> None:
    with pytest.raises(ValueError, match="path"):
        queries.top(store.conn, store.table, WEEK, "exception")


row_strategy = st.builds(
    lambda seed, minute, fields: make_row(
        random.Random(seed), WEEK.since + minute * timedelta(minutes=1), **fields
    ),
    st.integers(0, 10**6),
    st.integers(-60 * 24, 60 * 24 * 8),
    st.fixed_dictionaries({}, optional={
        "response_time": st.one_of(st.none(), st.sampled_from([0.1, 0.25, 2.0]),
                                   st.floats(0, 100, allow_nan=False)),
        "path": st.sampled_from(PATHS),
        "remote_address": st.sampled_from(ADDRESSES[-5:]),
    }),
)
filter_strategy = st.builds(
    lambda days, length, fields: Filters.between(
        date(2024, 3, 3) + days * DAY, date(2024, 3, 3) + (days + length) * DAY, **fields
    ),
    st.integers(0, 8),
    st.integers(0, 3),
    st.fixed_dictionaries({}, optional={
        "path": st.sampled_from(["/a", "/a_b%", "/about", "/"]),
        "path_match": st.sampled_from(["exact", "prefix"]),
        "status_class": st.integers(1, 5),
    }),
)


@pytest.fixture
def examples(backend: str) -> int:
    return 40 if backend == "sqlite" else 8


def test_random_rows_and_filters(store: Store, examples: int) -> None:
    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(row_strategy, max_size=40), filter_strategy)
    def check(rows: Stored, f: Filters) -> None:
        store.clear()
        stored = store.insert(rows)
        assert queries.kpis(store.conn, store.table, f) == ref_kpis(stored, f)
        assert queries.timeseries(store.conn, store.table, f) == ref_series(stored, f)
        assert queries.top_paths(store.conn, store.table, f, 50) == ref_top_paths(stored, f, 50)

    check()


# ---------------------------------------------------------------------------------
# Plans: how the raw rows are read


def sqlite_plans(store: Store, figure: t.Callable[[], t.Any]) -> list[str]:
    """The query plan of every statement ``figure`` issues, one line per step."""
    issued: list[tuple[str, t.Any]] = []

    def record(conn: t.Any, cursor: t.Any, statement: str, parameters: t.Any, *args: t.Any) -> None:
        issued.append((statement, parameters))

    sa.event.listen(store.conn, "before_cursor_execute", record)
    try:
        figure()
    finally:
        sa.event.remove(store.conn, "before_cursor_execute", record)
    plans = []
    for statement, parameters in issued:
        rows = store.conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
        plan = "\n".join(row[3] for row in rows)
        if not plan.startswith("SCAN CONSTANT ROW"):  # the first and last date: two lookups
            plans.append(plan)
    return plans


#: Query plans without statistics are SQLite's: these tests run on it alone.
sqlite_only = pytest.mark.parametrize("backend", ["sqlite"])


@pytest.fixture
def indexed(make_app: t.Any, backend: str) -> t.Iterator[Store]:
    """A table of the default model, with an index on browser as a user might add."""
    for found in open_store(make_app, backend, "default"):
        sa.Index(f"ix_{found.table.name}_browser", found.table.c.browser).create(found.conn)
        found.conn.commit()
        yield found


@sqlite_only
def test_sqlite_reads_a_window_of_most_rows_straight_through(indexed: Store) -> None:
    # Ten days of rows; one lookup per row through the date index costs many times a
    # plain read of the table once the window holds a good share of them.
    rng = random.Random(12)
    first = WEEK.since - 2 * DAY
    rows = indexed.insert([make_row(rng, first + k * 17 * MICRO * 10**6) for k in range(500)]
                          + [make_row(rng, first + 10 * DAY - MICRO)])
    figures_of = {
        "kpis": lambda f: queries.kpis(indexed.conn, indexed.table, f),
        "timeseries": lambda f: queries.timeseries(indexed.conn, indexed.table, f),
        "status": lambda f: queries.status_classes(indexed.conn, indexed.table, f),
        "top": lambda f: queries.top(indexed.conn, indexed.table, f, "platform"),
        "paths": lambda f: queries.top_paths(indexed.conn, indexed.table, f),
    }
    # A covering index reads no rows.
    lookups = re.compile(rf"USING INDEX ix_{indexed.table.name}_date\b")
    for name, figure in figures_of.items():
        plans = sqlite_plans(indexed, lambda: figure(WEEK))
        assert not any(lookups.search(plan) for plan in plans), (name, plans)
    # A day of the ten is still found through the date index.
    day = Filters.between(date(2024, 3, 5), date(2024, 3, 5))
    assert any("USING INDEX ix_" in plan and "_date" in plan
               for plan in sqlite_plans(indexed, lambda: queries.kpis(indexed.conn, indexed.table, day)))
    assert queries.kpis(indexed.conn, indexed.table, WEEK).hits == sum(
        1 for r in rows if WEEK.since <= r["date"] < WEEK.until)


@sqlite_only
def test_a_top_list_is_not_grouped_through_the_columns_index(indexed: Store) -> None:
    # Grouping through an index on the column reads every row of the table in that
    # index's order, one lookup each, to save sorting a handful of values.
    rng = random.Random(13)
    rows = indexed.insert([make_row(rng, WEEK.since + k * HOUR) for k in range(100)])
    for grouped in (False, True):
        plans = sqlite_plans(
            indexed, lambda: queries.top(indexed.conn, indexed.table, WEEK, "browser", grouped=grouped)
        )
        assert not any("_browser" in plan for plan in plans), plans
    got = queries.top(indexed.conn, indexed.table, WEEK, "browser", 2)
    want = Counter(r["browser"] for r in rows)
    assert got == sorted(want.items(), key=lambda kv: (-kv[1], kv[0] is None, kv[0] or ""))[:2]


@sqlite_only
def test_a_browser_with_a_version_is_one_equality_the_index_answers(indexed: Store) -> None:
    rng = random.Random(14)
    rows = indexed.insert([make_row(rng, WEEK.since + k * HOUR) for k in range(100)])
    firefox = week(browser="Firefox 72.0")
    plans = sqlite_plans(indexed, lambda: queries.kpis(indexed.conn, indexed.table, firefox))
    assert all(f"USING INDEX ix_{indexed.table.name}_browser (browser=?)" in plan for plan in plans), plans
    assert queries.kpis(indexed.conn, indexed.table, firefox).hits == sum(
        1 for r in rows if r["browser"] == "Firefox 72.0")


@sqlite_only
@pytest.mark.parametrize("column", ["remote_address", "user_agent"])
def test_one_client_or_user_agent_is_read_through_its_index(indexed: Store, column: str) -> None:
    # The rollups cannot answer these filters: without an index of their own, every
    # figure would read every row of the window.
    rng = random.Random(15)
    rows = indexed.insert([make_row(rng, WEEK.since + k * 7 * MICRO * 10**6) for k in range(300)])
    value = next(r[column] for r in rows if r[column] is not None)
    one = week(**{column: value})
    figures_of = {
        "kpis": lambda: queries.kpis(indexed.conn, indexed.table, one),
        "timeseries": lambda: queries.timeseries(indexed.conn, indexed.table, one),
        "status": lambda: queries.status_classes(indexed.conn, indexed.table, one),
        "top": lambda: queries.top(indexed.conn, indexed.table, one, "path"),
        "paths": lambda: queries.top_paths(indexed.conn, indexed.table, one),
    }
    wanted = f"USING INDEX ix_{indexed.table.name}_{column}_date ({column}=?"
    for name, figure in figures_of.items():
        plans = sqlite_plans(indexed, figure)
        assert plans and all(wanted in plan for plan in plans), (name, plans)
    assert queries.kpis(indexed.conn, indexed.table, one).hits == sum(
        1 for r in rows if r[column] == value and WEEK.since <= r["date"] < WEEK.until)


@sqlite_only
def test_sqlite_ranks_times_in_the_main_query_and_in_sql_past_its_limit(
    seeded: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    # SQLite collects the times in the query that counts the rows: one pass instead of
    # two. Past the limit of what it holds, the figures stay exact, ranked in SQL.
    store, stored = seeded
    issued: list[str] = []
    sa.event.listen(store.conn, "before_cursor_execute",
                    lambda conn, cursor, statement, *args: issued.append(statement))
    f = CASES["week"]
    assert queries.kpis(store.conn, store.table, f) == ref_kpis(stored, f)
    assert queries.top_paths(store.conn, store.table, f, 50) == ref_top_paths(stored, f, 50)
    assert queries.timeseries(store.conn, store.table, f) == ref_series(stored, f)
    assert len(issued) == 3 and not any("cume_dist" in statement for statement in issued)
    issued.clear()
    monkeypatch.setattr(percentiles, "LIMIT", 4)
    for name, f in CASES.items():
        assert queries.kpis(store.conn, store.table, f) == ref_kpis(stored, f), name
        assert queries.timeseries(store.conn, store.table, f) == ref_series(stored, f), name
        assert queries.top_paths(store.conn, store.table, f, 50) == ref_top_paths(stored, f, 50), name
    assert any("cume_dist" in statement for statement in issued)


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"])
def test_servers_rank_times_in_the_query_that_reads_the_rows(seeded: Seeded) -> None:
    # PostgreSQL's percentile aggregate and MariaDB's percentile window read the rows
    # once: a second ranking query would look up every row of a user-agent or client
    # filter again.
    store, stored = seeded
    issued: list[str] = []
    sa.event.listen(store.conn, "before_cursor_execute",
                    lambda conn, cursor, statement, *args: issued.append(statement))
    for name, f in CASES.items():
        issued.clear()
        assert queries.kpis(store.conn, store.table, f) == ref_kpis(stored, f), name
        assert queries.timeseries(store.conn, store.table, f) == ref_series(stored, f), name
        assert queries.top_paths(store.conn, store.table, f, 50) == ref_top_paths(stored, f, 50), name
        assert len(issued) == 3 and not any("cume_dist" in s for s in issued), name


@sqlite_only
def test_sqlite_times_stored_as_text_are_no_times(store: Store) -> None:
    # SQLite keeps whatever it is given: a time imported as text is left out of the
    # times, as a NULL is, rather than failing every panel that ranks it.
    rng = random.Random(16)
    rows = [make_row(rng, WEEK.since + k * HOUR, response_time=float(k + 1), path="/t")
            for k in range(9)]
    store.insert(rows)
    store.conn.execute(store.table.update().where(store.table.c["index"] == 9)
                       .values(response_time=sa.literal_column("'slow'")))
    store.conn.commit()
    assert store.conn.exec_driver_sql(
        f"SELECT typeof(response_time) FROM {store.table.name} WHERE \"index\" = 9").scalar() == "text"
    kpis = queries.kpis(store.conn, store.table, WEEK)
    assert (kpis.hits, kpis.avg, kpis.p50, kpis.p99) == (9, 4.5, 4.0, 8.0)
    points = queries.timeseries(store.conn, store.table, CASES["two days, hourly"]).points
    assert (points[0].p95, points[8].hits, points[8].p95) == (1.0, 1, None)
    assert queries.top_paths(store.conn, store.table, WEEK, 1)[0].p95 == 8.0
    slow = queries.request_detail(store.conn, store.table, 9)
    assert slow is not None and slow["response_time"] is None
