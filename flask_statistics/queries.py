"""The dashboard's figures, computed by the database.

Nothing here loads the window's rows into Python: aggregates, percentiles and time
buckets are SQL, and the request log is read one page at a time. Time buckets follow
the local calendar (see :mod:`.buckets`); their edges are parameters of a statement
whose text is the same whatever the range. Percentiles are an aggregate of the main
query on PostgreSQL and on SQLite (one written in Python, see :mod:`.percentiles`,
which holds the times of up to a quarter of a million rows), a window column of the
rows the main query groups on MariaDB, and elsewhere a second query, which sorts only
the times. Every function takes an open connection, the statistics table and the
validated :class:`Filters`.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction

import sqlalchemy as sa
from sqlalchemy.engine import Dialect, RowMapping
from sqlalchemy.sql.elements import ColumnElement

from . import buckets, percentiles
from .buckets import Unit
from .dialects import (
    as_double,
    bucket_index,
    exact_text,
    int_div,
    percentile_aggregate,
    percentile_window,
    text_equals,
    text_startswith,
    unindexed,
)
from .filters import TEXT_FILTERS, Filters, zone
from .grouping import browser_condition, group, key_for, rank, referrer_condition
from .schema import present_columns

#: Columns :func:`top` can rank.
TOP_COLUMNS = (
    "path", "browser", "platform", "referrer", "method", "status_code",
    "mimetype", "remote_address", "user_agent",
)
P50, P95, P99 = Fraction(50, 100), Fraction(95, 100), Fraction(99, 100)
#: What a :class:`Series` can hold besides hits: unique visitors, and p50 and p95.
SERIES_PARTS = frozenset(("visitors", "times"))


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
    """One time bucket, starting at ``start`` (naive UTC) and running to the next
    point's start (the last one to the window's end)."""

    start: datetime
    hits: int
    visitors: int
    p50: float | None
    p95: float | None


@dataclass(frozen=True)
class Series:
    """Every bucket of the window in time order, empty ones included.

    ``width`` is the local calendar unit of the buckets: "hour", "day", "week"
    (from Monday), "month" or "year". The first and last bucket may be part of one,
    cut to the window, which ends at ``end`` (naive UTC).
    """

    width: Unit
    points: list[Point]
    end: datetime | None = None


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


# Filters that select a group of values (see grouping); the others match exactly.
_TEXT_MATCHES = {"browser": browser_condition, "referrer": referrer_condition}


def filter_conditions(
    dialect: Dialect, table: sa.Table, filters: Filters, date: ColumnElement[t.Any] | None = None
) -> list[ColumnElement[bool]]:
    """The WHERE conditions that select the rows ``filters`` match.

    ``date``, when given, stands in for the table's date column: for example the
    column wrapped so that the database does not read the window through its index.
    """
    c = table.c
    date = c.date if date is None else date
    conditions = [date >= filters.since, date < filters.until]
    if filters.path is not None:
        match = text_startswith if filters.path_match == "prefix" else text_equals
        conditions.append(match(dialect, c.path, filters.path))
    if filters.route is not None:
        # A table without the column has no rows of any route.
        conditions.append(text_equals(dialect, c.route, filters.route) if "route" in c else sa.false())
    if filters.bots in ("exclude", "only"):  # "include" keeps every row
        conditions.append(bot_condition(table, filters.bots))
    if filters.status is not None:
        conditions.append(c.status_code == filters.status)
    if filters.status_class is not None:
        low = filters.status_class * 100
        conditions += [c.status_code >= low, c.status_code < low + 100]
    for name in TEXT_FILTERS:
        value = getattr(filters, name)
        if value is None:
            continue
        match = _TEXT_MATCHES.get(name, text_equals)
        conditions.append(match(dialect, c[name], value))
    return conditions


#: The share of the table's time span from which a window is read straight through
#: rather than through the date index (see :func:`_where_all`).
SCAN_SHARE = 0.2


def _where_all(
    conn: sa.Connection, table: sa.Table, filters: Filters
) -> list[ColumnElement[bool]]:
    """The conditions for a query that reads every row of the window.

    SQLite has no statistics, so it reads any date range through the date index, one
    row lookup at a time: a few microseconds a row when the rows are not stored in
    date order (imported, or spread at random as in the benchmark), against a tenth
    of that to read the table straight through. MariaDB does the same for a range
    over most of a table larger than its buffer pool, reading a page from disk per
    row. So a window that spans a good part of the recorded time
    (:data:`SCAN_SHARE`; rows are assumed spread evenly over it) keeps the date out
    of the planner's reach. An index on a filtered column (browser, address...), or
    one that holds every column a query reads, can still be used.
    """
    date = table.c.date
    if conn.dialect.name in ("sqlite", "mysql", "mariadb") and _date_indexed(table):
        first, last = conn.execute(
            sa.select(
                sa.select(sa.func.min(date)).scalar_subquery(),
                sa.select(sa.func.max(date)).scalar_subquery(),
            )
        ).one()
        if first is not None and _spans_most(first, last, filters):
            date = unindexed(conn.dialect, date)
    return filter_conditions(conn.dialect, table, filters, date)


def _spans_most(first: datetime, last: datetime, filters: Filters) -> bool:
    # Whether [since, until) holds at least SCAN_SHARE of the time from first to last.
    overlap = (min(filters.until, last) - max(filters.since, first)).total_seconds()
    if overlap < 0:
        return False
    span = (last - first).total_seconds()
    return span <= 0 or overlap >= SCAN_SHARE * span


def _date_indexed(table: sa.Table) -> bool:
    # Without an index on date, min() and max() would read the whole table.
    return any(next(iter(index.columns), None) is table.c.date for index in table.indexes)


def _aggregates(
    dialect: Dialect, value: ColumnElement[t.Any], wanted: dict[str, Fraction]
) -> list[ColumnElement[t.Any]]:
    # The percentiles as aggregates of the main query, on databases that have them.
    found = [percentile_aggregate(dialect, value, p) for p in wanted.values()]
    if any(expression is None for expression in found):
        return []
    return [t.cast(ColumnElement[t.Any], e).label(name) for e, name in zip(found, wanted)]


#: The label of the SQLite aggregate that collects a query's times (see percentiles).
_TIMES = "times"


def _inline(
    conn: sa.Connection, value: ColumnElement[t.Any], wanted: dict[str, Fraction]
) -> list[ColumnElement[t.Any]]:
    """The columns that give the percentiles ``wanted`` of ``value`` in the main query:
    PostgreSQL's aggregates, or SQLite's collecting aggregate; none elsewhere."""
    found = _aggregates(conn.dialect, value, wanted)
    if found:
        return found
    collecting = percentiles.aggregate(conn, value, wanted)
    return [] if collecting is None else [collecting.label(_TIMES)]


def _base(
    conn: sa.Connection,
    columns: dict[str, ColumnElement[t.Any]],
    where: list[ColumnElement[bool]],
    value: str,
    wanted: dict[str, Fraction],
    partition: str | None = None,
) -> tuple[sa.Subquery, list[ColumnElement[t.Any]]]:
    """``columns`` of the rows ``where`` selects, as the subquery ``base``, and the
    columns that give the percentiles ``wanted`` of its ``value`` in a query on it
    grouped by ``partition`` (or not grouped): see :func:`_inline`, and on MariaDB
    window columns of ``base``, read in the same pass over the rows. None of them
    when only a second query can rank the times (see :func:`_percentiles`)."""
    over = None if partition is None else columns[partition]
    windows = {
        name: percentile_window(conn.dialect, columns[value], p, over)
        for name, p in wanted.items()
    }
    selected = [column.label(name) for name, column in columns.items()]
    if any(w is None for w in windows.values()):
        base = sa.select(*selected).where(*where).subquery("base")
        return base, _inline(conn, base.c[value], wanted)
    labeled = [t.cast(ColumnElement[t.Any], w).label(name) for name, w in windows.items()]
    base = sa.select(*selected, *labeled).where(*where).subquery("base")
    # Every row of a group holds its group's value.
    return base, [sa.func.max(base.c[name]).label(name) for name in wanted]


def _inline_values(
    row: t.Mapping[str, t.Any], wanted: dict[str, Fraction]
) -> t.Mapping[str, t.Any] | None:
    """The percentiles ``wanted`` from a row of a query with :func:`_inline` columns;
    None when there were too many times to collect, and a second query must rank them."""
    if _TIMES in row:
        return percentiles.picked(row[_TIMES], wanted)
    return row


def _percentiles(
    conn: sa.Connection,
    value: ColumnElement[t.Any],
    conditions: list[ColumnElement[bool]],
    wanted: dict[str, Fraction],
    group: ColumnElement[t.Any] | None = None,
) -> dict[t.Any, RowMapping]:
    """The nearest-rank percentiles ``wanted`` of ``value`` per ``group`` (or for all
    rows), keyed by group (None without one), for databases without an aggregate.

    The value at rank ceil(p * n) is the smallest whose cumulative share of the
    non-NULL values, cume_dist() (tied values all count up to the last of them), is
    at least p. Both sides of that comparison are doubles; it is exact for fewer than
    10**13 values.
    """
    # The group is computed once, in an inner query, rather than again for PARTITION BY.
    rows = (
        sa.select(*([] if group is None else [group.label("grp")]), value.label("value"))
        .where(*conditions, value.is_not(None))
        .subquery("times")
    )
    ranked = sa.select(
        rows,
        sa.func.cume_dist(type_=sa.Float())
        .over(partition_by=None if group is None else rows.c.grp, order_by=rows.c.value)
        .label("share"),
    ).subquery("ranked")
    r = ranked.c
    keys = [] if group is None else [r.grp]
    query = (
        sa.select(
            *keys,
            *(
                sa.func.min(sa.case((r.share >= sa.literal(float(p), sa.Float()), r.value)))
                .label(name)
                for name, p in wanted.items()
            ),
        )
        # Only rows at or above the lowest percentile can be picked; fewer to group.
        .where(r.share >= sa.literal(float(min(wanted.values())), sa.Float()))
        .group_by(*keys)
    )
    result = conn.execute(query).mappings()
    return {None if group is None else row["grp"]: row for row in result}


def bot_condition(table: sa.Table, bots: str) -> ColumnElement[bool]:
    """Rows marked as bots (``bots="only"``) or the others (``"exclude"``); a table
    without ``is_bot`` has no bots."""
    if "is_bot" not in table.c:
        return sa.false() if bots == "only" else sa.true()
    is_bot = table.c.is_bot
    if bots == "only":
        return is_bot.is_(True)
    return sa.or_(is_bot.is_(None), is_bot.is_(False))


def visitor(dialect: Dialect, table: sa.Table) -> ColumnElement[t.Any]:
    """The client address that counts as a visitor: NULL for rows marked as bots,
    where the table has ``is_bot``."""
    address = exact_text(dialect, table.c.remote_address)
    if "is_bot" not in table.c:
        return address
    is_bot = table.c.is_bot
    return sa.case((sa.or_(is_bot.is_(None), is_bot.is_(False)), address), else_=sa.null())


def _count_if(condition: ColumnElement[bool]) -> ColumnElement[t.Any]:
    return sa.func.coalesce(sa.func.sum(sa.case((condition, 1), else_=0)), 0)


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _float(value: t.Any) -> float | None:
    return None if value is None else float(value)


def hits(conn: sa.Connection, table: sa.Table, filters: Filters) -> int:
    """The rows of the window: what the request log pages through."""
    query = sa.select(sa.func.count()).select_from(table).where(*_where_all(conn, table, filters))
    return int(conn.execute(query).scalar() or 0)


def kpis(conn: sa.Connection, table: sa.Table, filters: Filters) -> Kpis:
    """Hits, distinct visitors, response-time average and percentiles, error rates and
    bytes sent in the window."""
    d = conn.dialect
    c = table.c
    rt = as_double(d, c.response_time)
    where = _where_all(conn, table, filters)
    wanted = {"p50": P50, "p95": P95, "p99": P99}
    columns = {"rt": rt, "visitor": visitor(d, table), "status": c.status_code, "size": c.size}
    base, inline = _base(conn, columns, where, "rt", wanted)
    b = base.c
    query = sa.select(
        sa.func.count().label("hits"),
        sa.func.count(sa.distinct(b.visitor)).label("visitors"),
        sa.func.avg(b.rt).label("avg"),
        *inline,
        _count_if(sa.and_(b.status >= 400, b.status < 500)).label("n4xx"),
        _count_if(sa.and_(b.status >= 500, b.status < 600)).label("n5xx"),
        sa.func.coalesce(sa.func.sum(b.size), 0).label("bytes_sent"),
    )
    row = conn.execute(query).one()
    hits = int(row.hits)
    times = _inline_values(row._mapping, wanted) if inline else None
    if times is None:
        times = _percentiles(conn, rt, where, wanted)[None]
    return Kpis(
        hits=hits,
        visitors=int(row.visitors),
        avg=_float(row.avg),
        p50=_float(times["p50"]),
        p95=_float(times["p95"]),
        p99=_float(times["p99"]),
        rate_4xx=_rate(int(row.n4xx), hits),
        rate_5xx=_rate(int(row.n5xx), hits),
        bytes_sent=int(row.bytes_sent),
    )


def bucket_width(filters: Filters) -> Unit:
    """The unit of the window's time buckets: an hour for windows within two local
    days; beyond, the finest of day, week, month and year that keeps a chart to
    about 200 points."""
    return buckets.choose_unit(filters.since, filters.until, zone(filters.tz))


def bucket_starts(filters: Filters, unit: Unit | None = None) -> list[datetime]:
    """The naive UTC start of each time bucket of the window: ``since``, then where
    each local hour, day, week or month begins in ``filters.tz``."""
    unit = bucket_width(filters) if unit is None else unit
    return buckets.starts(filters.since, filters.until, zone(filters.tz), unit)


def timeseries(conn: sa.Connection, table: sa.Table, filters: Filters) -> Series:
    """Hits, visitors and p50/p95 response time per local hour, day, week or month,
    every bucket present."""
    d = conn.dialect
    c = table.c
    unit = bucket_width(filters)
    starts = bucket_starts(filters, unit)
    bucket = bucket_index(d, c.date, starts, filters.until)
    rt = as_double(d, c.response_time)
    where = _where_all(conn, table, filters)
    wanted = {"p50": P50, "p95": P95}
    columns = {"bucket": bucket, "rt": rt, "visitor": visitor(d, table)}
    base, inline = _base(conn, columns, where, "rt", wanted, partition="bucket")
    b = base.c
    query = (
        sa.select(
            b.bucket,
            sa.func.count().label("hits"),
            sa.func.count(sa.distinct(b.visitor)).label("visitors"),
            *inline,
        )
        .group_by(b.bucket)
        .order_by(b.bucket)
    )
    found = {int(row["bucket"]): row for row in conn.execute(query).mappings()}
    times: t.Mapping[t.Any, t.Any] | None = None
    if inline:
        picked = {k: _inline_values(row, wanted) for k, row in found.items()}
        if None not in picked.values():
            times = picked
    if times is None:
        times = {int(k): v for k, v in _percentiles(conn, rt, where, wanted, bucket).items()}
    points = []
    for index, start in enumerate(starts):
        row = found.get(index)
        if row is None:
            points.append(Point(start, 0, 0, None, None))
            continue
        # A bucket whose times are all NULL has no percentile row.
        pct = times.get(index, {})
        points.append(
            Point(start, int(row["hits"]), int(row["visitors"]),
                  _float(pct.get("p50")), _float(pct.get("p95")))
        )
    return Series(unit, points, filters.until)


def status_classes(conn: sa.Connection, table: sa.Table, filters: Filters) -> list[tuple[str, int]]:
    """Hits per status class, e.g. ``[("2xx", 120), ("4xx", 3)]``, in class order,
    leaving out classes without hits and codes outside 100-599."""
    d = conn.dialect
    c = table.c
    base = (
        sa.select(int_div(d, c.status_code, 100).label("cls"))
        .where(*_where_all(conn, table, filters), c.status_code >= 100, c.status_code < 600)
        .subquery("base")
    )
    query = (
        sa.select(base.c.cls, sa.func.count().label("hits"))
        .group_by(base.c.cls)
        .order_by(base.c.cls)
    )
    return [(f"{int(row.cls)}xx", int(row.hits)) for row in conn.execute(query)]


def top(
    conn: sa.Connection, table: sa.Table, filters: Filters, column: str, limit: int = 10,
    *, grouped: bool = False,
) -> list[tuple[t.Any, int]]:
    """The ``limit`` most frequent values of ``column`` (one of :data:`TOP_COLUMNS`)
    with their hits, most hits first, ties by value; NULL counts as a value (None).

    ``grouped=True`` ranks referrer hosts and browser families instead (see
    :mod:`.grouping`) while that column is not filtered.
    """
    if column not in TOP_COLUMNS:
        raise ValueError(f"top() ranks one of {', '.join(TOP_COLUMNS)}; got {column!r}")
    d = conn.dialect
    value: ColumnElement[t.Any] = table.c[column]
    if column != "status_code":
        value = exact_text(d, value)
    # Not grouped through an index led by the column: SQLite would read every row of
    # the table in that index's order, one lookup each, to save sorting a few values.
    value = unindexed(d, value)
    where = _where_all(conn, table, filters)
    base = sa.select(value.label("value")).where(*where).subquery("base")
    hits = sa.func.count()
    query = (
        sa.select(base.c.value, hits.label("hits"))
        .group_by(base.c.value)
        .order_by(hits.desc(), base.c.value.is_(None), base.c.value)
    )
    key = key_for(column, filters) if grouped else None
    if key is not None:
        # Every value's hits, grouped here: a group's values can rank anywhere.
        found = conn.execute(query.order_by(None))
        return rank(group(((row.value, int(row.hits)) for row in found), key), limit)
    return [(row.value, int(row.hits)) for row in conn.execute(query.limit(limit))]


#: Most combinations of values :func:`top_lists` adds up itself.
COMBINATIONS = 20_000


def top_lists(
    conn: sa.Connection, table: sa.Table, filters: Filters, columns: t.Sequence[str],
    limit: int = 10, *, grouped: t.Collection[str] = (),
) -> list[list[tuple[t.Any, int]]] | None:
    """The top list of each of ``columns`` (text columns of :data:`TOP_COLUMNS`), as
    :func:`top` gives it (``grouped`` names the columns ranked by group), from one
    query that counts their combinations: one pass over the window's rows instead of
    one per list, for a window of few rows (one client, one user agent). None when
    the window has more than :data:`COMBINATIONS` of them; each list is then better
    counted by the database."""
    d = conn.dialect
    where = _where_all(conn, table, filters)
    # Not grouped through an index on a column, as in top().
    values = [unindexed(d, exact_text(d, table.c[column])).label(f"v{n}") for n, column in enumerate(columns)]
    base = sa.select(*values).where(*where).subquery("base")
    keys = [base.c[f"v{n}"] for n in range(len(columns))]
    query = sa.select(*keys, sa.func.count()).group_by(*keys).limit(COMBINATIONS + 1)
    rows = conn.execute(query).all()
    if len(rows) > COMBINATIONS:
        return None
    lists = []
    for n, column in enumerate(columns):
        total: dict[t.Any, int] = {}
        for row in rows:
            total[row[n]] = total.get(row[n], 0) + int(row[-1])
        key = key_for(column, filters) if column in grouped else None
        if key is not None:
            total = group(total.items(), key)
        lists.append(rank(total, limit))
    return lists


def top_paths(
    conn: sa.Connection, table: sa.Table, filters: Filters, limit: int = 20, by: str = "path"
) -> list[PathStats]:
    """The ``limit`` busiest paths (or routes, ``by="route"``, in ``path``) with their
    visitors, times, error rate and last hit, most hits first, ties by name."""
    d = conn.dialect
    c = table.c
    rt = as_double(d, c.response_time)
    path = exact_text(d, c[by])
    where = _where_all(conn, table, filters)
    columns = {
        "path": path, "rt": rt, "visitor": visitor(d, table), "status": c.status_code,
        "date": c.date,
    }
    base, inline = _base(conn, columns, where, "rt", {"p95": P95}, partition="path")
    b = base.c
    hits = sa.func.count()
    query = (
        sa.select(
            b.path,
            hits.label("hits"),
            sa.func.count(sa.distinct(b.visitor)).label("visitors"),
            sa.func.avg(b.rt).label("avg"),
            *inline,
            _count_if(b.status >= 400).label("errors"),
            sa.func.max(b.date).label("last_seen"),
        )
        .group_by(b.path)
        .order_by(hits.desc(), b.path.is_(None), b.path)
        .limit(limit)
    )
    rows = list(conn.execute(query).mappings())
    picked = [_inline_values(row, {"p95": P95}) for row in rows] if inline else [None]
    p95: list[t.Any] = [None if p is None else p["p95"] for p in picked]
    if None in picked and rows:
        p95 = _path_p95(conn, c[by], path, rt, where, [row["path"] for row in rows])
    return [
        PathStats(
            path=row["path"],
            hits=int(row["hits"]),
            visitors=int(row["visitors"]),
            avg=_float(row["avg"]),
            p95=_float(p95[place]),
            error_rate=int(row["errors"]) / int(row["hits"]),
            last_seen=row["last_seen"],
        )
        for place, row in enumerate(rows)
    ]


def _path_p95(
    conn: sa.Connection,
    column: ColumnElement[t.Any],
    path: ColumnElement[t.Any],
    rt: ColumnElement[t.Any],
    where: list[ColumnElement[bool]],
    shown: list[str | None],
) -> list[t.Any]:
    # The p95 of each path in ``shown``, ranking only their rows. Rows are grouped by
    # their path's place in the list: a small number sorts faster than the text.
    places = {p: sa.literal_column(str(i), sa.Integer()) for i, p in enumerate(shown)}
    named = [p for p in shown if p is not None]
    place: ColumnElement[t.Any] = sa.null()
    if named:
        place = sa.case({p: places[p] for p in named}, value=path)
    # On MySQL this also lets through case variants of the names; place ignores them.
    nearby = column.in_(named)
    if None in places:
        place = sa.case((column.is_(None), places[None]), else_=place)
        nearby = sa.or_(nearby, column.is_(None))
    found = _percentiles(conn, rt, [*where, nearby], {"p95": P95}, place)
    return [found[i]["p95"] if i in found else None for i in range(len(shown))]


def row_columns(conn: sa.Connection, table: sa.Table) -> list[ColumnElement[t.Any]]:
    """The columns of ``table`` that the database table has, to select whole rows.

    A table created by an earlier default model lacks the newer optional columns.
    ``response_time`` is read as a double on every backend.
    """
    present = present_columns(conn.engine, table)
    return [
        as_double(conn.dialect, column).label(column.name)
        if column.name == "response_time"
        else column
        for column in table.c
        if present is None or column.name in present
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
        sa.select(*row_columns(conn, table))
        .where(*filter_conditions(d, table, filters))
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
    """Every column of the request ``index`` that the database table has, or None if
    there is no such row."""
    query = sa.select(*row_columns(conn, table)).where(table.c["index"] == index)
    return conn.execute(query).mappings().first()
