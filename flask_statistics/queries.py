"""The dashboard's figures, each computed by the database in one query.

Nothing here loads the window's rows into Python: aggregates, percentiles and time
buckets are SQL, and the request log is read one page at a time. Every function
takes an open connection, the statistics table and the validated :class:`Filters`.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction

import sqlalchemy as sa
from sqlalchemy.engine import Dialect, RowMapping
from sqlalchemy.sql.elements import ColumnElement

from .dialects import (
    as_double,
    exact_text,
    int_div,
    least,
    micros_since,
    text_equals,
    text_startswith,
)
from .filters import TEXT_FILTERS, Filters

#: Columns :func:`top` can rank.
TOP_COLUMNS = (
    "path", "browser", "platform", "referrer", "method", "status_code",
    "mimetype", "remote_address", "user_agent",
)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
#: Ranges up to this long are bucketed by hour, longer ones by day.
HOURLY_UP_TO = timedelta(days=2)

P50, P95, P99 = Fraction(50, 100), Fraction(95, 100), Fraction(99, 100)


@dataclass(frozen=True)
class Kpis:
    """Headline figures; times in seconds, rates from 0 to 1 (None without hits)."""

    hits: int
    visitors: int
    avg: float | None
    p50: float | None
    p95: float | None
    p99: float | None
    rate_4xx: float | None
    rate_5xx: float | None
    bytes_sent: int


@dataclass(frozen=True)
class Point:
    """One time bucket, starting at ``start`` (naive UTC)."""

    start: datetime
    hits: int
    visitors: int
    p50: float | None
    p95: float | None


@dataclass(frozen=True)
class Series:
    """Every bucket of the window in time order, empty ones included."""

    width: t.Literal["hour", "day"]
    points: list[Point]


@dataclass(frozen=True)
class PathStats:
    """Traffic to one path; ``error_rate`` is the share of statuses >= 400."""

    path: str | None
    hits: int
    visitors: int
    avg: float | None
    p95: float | None
    error_rate: float
    last_seen: datetime | None


@dataclass(frozen=True)
class Page:
    """One page of the request log; ``rows`` map every column name to its value."""

    rows: list[RowMapping]
    page: int
    page_size: int
    has_next: bool
    has_previous: bool


def _where(dialect: Dialect, table: sa.Table, filters: Filters) -> list[ColumnElement[bool]]:
    c = table.c
    conditions = [c.date >= filters.since, c.date < filters.until]
    if filters.path is not None:
        match = text_startswith if filters.path_match == "prefix" else text_equals
        conditions.append(match(dialect, c.path, filters.path))
    if filters.status is not None:
        conditions.append(c.status_code == filters.status)
    if filters.status_class is not None:
        low = filters.status_class * 100
        conditions += [c.status_code >= low, c.status_code < low + 100]
    for name in TEXT_FILTERS:
        value = getattr(filters, name)
        if value is not None:
            conditions.append(text_equals(dialect, c[name], value))
    return conditions


def _ranked(value: ColumnElement[t.Any], partition: t.Any = None) -> list[ColumnElement[t.Any]]:
    # Each row's 1-based rank by value within the partition, NULLs after every value
    # on every database, and how many values are not NULL.
    return [
        sa.func.row_number()
        .over(partition_by=partition, order_by=(value.is_(None), value))
        .label("rank"),
        sa.func.count(value).over(partition_by=partition).label("ranked"),
    ]


def _nearest_rank(value: t.Any, rank: t.Any, ranked: t.Any, p: Fraction) -> ColumnElement[t.Any]:
    # The nearest-rank percentile: the value at rank ceil(p * n), NULL when n == 0.
    # rank == ceil(p * n) is written in integers, rank * den >= n * num > (rank - 1)
    # * den, so no database rounds a float on the way.
    num, den = p.numerator, p.denominator
    at_rank = sa.and_(rank * den >= ranked * num, (rank - 1) * den < ranked * num)
    return sa.func.min(sa.case((at_rank, value)))


def _count_if(condition: ColumnElement[bool]) -> ColumnElement[t.Any]:
    return sa.func.coalesce(sa.func.sum(sa.case((condition, 1), else_=0)), 0)


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _float(value: t.Any) -> float | None:
    return None if value is None else float(value)


def kpis(conn: sa.Connection, table: sa.Table, filters: Filters) -> Kpis:
    """Hits, distinct visitors, response-time average and percentiles, error rates and
    bytes sent in the window."""
    d = conn.dialect
    c = table.c
    rt = as_double(d, c.response_time)
    rows = (
        sa.select(
            rt.label("rt"),
            exact_text(d, c.remote_address).label("visitor"),
            c.status_code.label("status"),
            c.size.label("size"),
            *_ranked(rt),
        )
        .where(*_where(d, table, filters))
        .subquery("rows")
    )
    r = rows.c
    query = sa.select(
        sa.func.count().label("hits"),
        sa.func.count(sa.distinct(r.visitor)).label("visitors"),
        sa.func.avg(r.rt).label("avg"),
        *(_nearest_rank(r.rt, r.rank, r.ranked, p).label(n) for n, p in
          (("p50", P50), ("p95", P95), ("p99", P99))),
        _count_if(sa.and_(r.status >= 400, r.status < 500)).label("n4xx"),
        _count_if(sa.and_(r.status >= 500, r.status < 600)).label("n5xx"),
        sa.func.coalesce(sa.func.sum(r.size), 0).label("bytes_sent"),
    )
    row = conn.execute(query).one()
    hits = int(row.hits)
    return Kpis(
        hits=hits,
        visitors=int(row.visitors),
        avg=_float(row.avg),
        p50=_float(row.p50),
        p95=_float(row.p95),
        p99=_float(row.p99),
        rate_4xx=_rate(int(row.n4xx), hits),
        rate_5xx=_rate(int(row.n5xx), hits),
        bytes_sent=int(row.bytes_sent),
    )


def bucket_width(filters: Filters) -> timedelta:
    """An hour for windows up to two days long, a day beyond."""
    return HOUR if filters.until - filters.since <= HOURLY_UP_TO else DAY


def bucket_count(filters: Filters, width: timedelta) -> int:
    """How many buckets of ``width`` the window holds.

    Buckets are fixed steps from ``since``. A window that is not a whole number of
    steps (a day window spanning a daylight-saving change is 23 or 25 hours longer
    or shorter) rounds to the nearest count: the last bucket absorbs or lacks the
    difference.
    """
    return max(1, round((filters.until - filters.since) / width))


def timeseries(conn: sa.Connection, table: sa.Table, filters: Filters) -> Series:
    """Hits, visitors and p50/p95 response time per hour or day, every bucket present.

    Day buckets start at local midnight of ``start_day`` and step by fixed 24 hours,
    so after a daylight-saving change in the window they are an hour off the local
    midnights.
    """
    d = conn.dialect
    c = table.c
    width = bucket_width(filters)
    count = bucket_count(filters, width)
    width_micros = width // timedelta(microseconds=1)
    bucket = least(d, int_div(d, micros_since(d, c.date, filters.since), width_micros), count - 1)
    rt = as_double(d, c.response_time)
    base = (
        sa.select(
            bucket.label("bucket"),
            rt.label("rt"),
            exact_text(d, c.remote_address).label("visitor"),
        )
        .where(*_where(d, table, filters))
        .subquery("base")
    )
    rows = sa.select(base, *_ranked(base.c.rt, base.c.bucket)).subquery("rows")
    r = rows.c
    query = (
        sa.select(
            r.bucket,
            sa.func.count().label("hits"),
            sa.func.count(sa.distinct(r.visitor)).label("visitors"),
            _nearest_rank(r.rt, r.rank, r.ranked, P50).label("p50"),
            _nearest_rank(r.rt, r.rank, r.ranked, P95).label("p95"),
        )
        .group_by(r.bucket)
        .order_by(r.bucket)
    )
    found = {int(row.bucket): row for row in conn.execute(query)}
    points = []
    for index in range(count):
        row = found.get(index)
        start = filters.since + index * width
        if row is None:
            points.append(Point(start, 0, 0, None, None))
        else:
            points.append(
                Point(start, int(row.hits), int(row.visitors), _float(row.p50), _float(row.p95))
            )
    return Series("hour" if width == HOUR else "day", points)


def status_classes(conn: sa.Connection, table: sa.Table, filters: Filters) -> list[tuple[str, int]]:
    """Hits per status class, e.g. ``[("2xx", 120), ("4xx", 3)]``, in class order,
    leaving out classes without hits and codes outside 100-599."""
    d = conn.dialect
    c = table.c
    base = (
        sa.select(int_div(d, c.status_code, 100).label("cls"))
        .where(*_where(d, table, filters), c.status_code >= 100, c.status_code < 600)
        .subquery("base")
    )
    query = (
        sa.select(base.c.cls, sa.func.count().label("hits"))
        .group_by(base.c.cls)
        .order_by(base.c.cls)
    )
    return [(f"{int(row.cls)}xx", int(row.hits)) for row in conn.execute(query)]


def top(
    conn: sa.Connection, table: sa.Table, filters: Filters, column: str, limit: int = 10
) -> list[tuple[t.Any, int]]:
    """The ``limit`` most frequent values of ``column`` (one of :data:`TOP_COLUMNS`)
    with their hits, most hits first, ties by value; NULL counts as a value (None)."""
    if column not in TOP_COLUMNS:
        raise ValueError(f"top() ranks one of {', '.join(TOP_COLUMNS)}; got {column!r}")
    d = conn.dialect
    value: ColumnElement[t.Any] = table.c[column]
    if column != "status_code":
        value = exact_text(d, value)
    base = sa.select(value.label("value")).where(*_where(d, table, filters)).subquery("base")
    hits = sa.func.count()
    query = (
        sa.select(base.c.value, hits.label("hits"))
        .group_by(base.c.value)
        .order_by(hits.desc(), base.c.value.is_(None), base.c.value)
        .limit(limit)
    )
    return [(row.value, int(row.hits)) for row in conn.execute(query)]


def top_paths(
    conn: sa.Connection, table: sa.Table, filters: Filters, limit: int = 20
) -> list[PathStats]:
    """The ``limit`` busiest paths with their visitors, times, error rate and last
    hit, most hits first, ties by path."""
    d = conn.dialect
    c = table.c
    rt = as_double(d, c.response_time)
    base = (
        sa.select(
            exact_text(d, c.path).label("path"),
            rt.label("rt"),
            exact_text(d, c.remote_address).label("visitor"),
            c.status_code.label("status"),
            c.date.label("date"),
        )
        .where(*_where(d, table, filters))
        .subquery("base")
    )
    rows = sa.select(base, *_ranked(base.c.rt, base.c.path)).subquery("rows")
    r = rows.c
    hits = sa.func.count()
    query = (
        sa.select(
            r.path,
            hits.label("hits"),
            sa.func.count(sa.distinct(r.visitor)).label("visitors"),
            sa.func.avg(r.rt).label("avg"),
            _nearest_rank(r.rt, r.rank, r.ranked, P95).label("p95"),
            _count_if(r.status >= 400).label("errors"),
            sa.func.max(r.date).label("last_seen"),
        )
        .group_by(r.path)
        .order_by(hits.desc(), r.path.is_(None), r.path)
        .limit(limit)
    )
    return [
        PathStats(
            path=row.path,
            hits=int(row.hits),
            visitors=int(row.visitors),
            avg=_float(row.avg),
            p95=_float(row.p95),
            error_rate=int(row.errors) / int(row.hits),
            last_seen=row.last_seen,
        )
        for row in conn.execute(query)
    ]


def _columns(dialect: Dialect, table: sa.Table) -> list[ColumnElement[t.Any]]:
    return [
        as_double(dialect, column).label(column.name) if column.name == "response_time" else column
        for column in table.c
    ]


def request_page(
    conn: sa.Connection, table: sa.Table, filters: Filters, page_size: int
) -> Page:
    """Page ``filters.page`` of the matching requests, ``page_size`` rows a page.

    Sorted by ``filters.sort`` (NULLs last in either direction), ties by ``index``
    in the same direction. Reads ``page_size + 1`` rows whatever the window holds.
    """
    if page_size < 1:
        raise ValueError(f"page_size must be at least 1, got {page_size}")
    d = conn.dialect
    column = table.c[filters.sort]
    direction = sa.desc if filters.descending else sa.asc
    order = [] if filters.sort == "date" else [column.is_(None)]  # date is never NULL here
    order += [direction(column), direction(table.c["index"])]
    query = (
        sa.select(*_columns(d, table))
        .where(*_where(d, table, filters))
        .order_by(*order)
        .limit(page_size + 1)
        .offset((filters.page - 1) * page_size)
    )
    rows = list(conn.execute(query).mappings())
    return Page(
        rows=rows[:page_size],
        page=filters.page,
        page_size=page_size,
        has_next=len(rows) > page_size,
        has_previous=filters.page > 1,
    )


def request_detail(conn: sa.Connection, table: sa.Table, index: int) -> RowMapping | None:
    """Every column of the request ``index``, or None if there is no such row."""
    query = sa.select(*_columns(conn.dialect, table)).where(table.c["index"] == index)
    return conn.execute(query).mappings().first()
