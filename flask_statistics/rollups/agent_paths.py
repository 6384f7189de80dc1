"""The paths of a view filtered by browser or platform: the busiest paths (or routes)
with their figures, and the path top list.

Path-agent rows (``PATH_AGENT``) are day, month and year rows. A closed day's count
all of it; the open day's count its quarters that are over, up to the state's
``open_merged`` (the writer task adds each quarter within a minute or so of its end,
see :func:`.compact.close_quarters`). So the window's whole closed days and the open
day up to ``open_merged`` are read from those rows, and the rest, the last quarter of
an hour or so and the edges of a window that does not start or end on a local
midnight, from the raw rows. Both are added up here: counts and sums exactly,
response times and visitors through the same sketches as every rollup figure.
"""

from __future__ import annotations

import dataclasses
import typing as t
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from .. import queries
from ..dialects import as_double, exact_text, unindexed
from ..filters import zone
from ..sketches import Histogram, Visitors
from .aggregate import quarter_aligned
from .read import OTHER, Plan, plan_for
from .rebuild import day_start, next_day
from .store import _naive
from .tables import AGENT, DAY, PATH_AGENT, ROUTE_AGENT


def serves(found: Plan | None) -> bool:
    """Whether ``found`` is a browser or platform view whose paths this module reads."""
    return found is not None and found.grain == AGENT and found.local_days


def _split(
    found: Plan, grain: int = PATH_AGENT
) -> tuple[Plan | None, ColumnElement[bool] | None, list[tuple[datetime, datetime]]]:
    """The plan of ``grain`` (path-agent or route-agent rows) and the rows of it that
    cover the window's whole closed days and the open day's quarters they count, and
    the ``[since, until)`` ranges left to the raw rows."""
    since, until = found.since, found.until
    tz = zone(found.filters.tz)
    rolled = plan_for(
        found.store, found.filters, grain, DAY, found.dialect, None, found.months_before,
        found.years_before, local_days=True,
    )
    parts: list[ColumnElement[bool]] = []
    raw: list[tuple[datetime, datetime]] = []
    cursor = since
    first = day_start(since, tz)
    if first < since:
        first = next_day(first, tz)
    last = day_start(until, tz)
    open_from, open_merged = found.open_from, found.open_merged
    if open_from is not None:
        last = min(last, open_from)
    if since <= first < last <= until and quarter_aligned(first) and quarter_aligned(last):
        parts.append(rolled.span(first, last))
        if since < first:
            raw.append((since, first))
        cursor = last
    # The open day's rows count it from its start to ``open_merged``: a window that
    # holds all of that reads them.
    if (
        open_from is not None and open_merged is not None
        and cursor <= open_from < open_merged <= until
    ):
        parts.append(rolled._range(grain, DAY, open_from, open_merged))
        if cursor < open_from:
            raw.append((cursor, open_from))
        cursor = open_merged
    if cursor < until:
        raw.append((cursor, until))
    if not parts:
        return None, None, [(since, until)]
    return rolled, sa.or_(*parts) if len(parts) > 1 else parts[0], raw


def _raw_where(
    conn: sa.Connection, table: sa.Table, found: Plan, since: datetime, until: datetime
) -> list[ColumnElement[bool]]:
    filters = dataclasses.replace(found.filters, since=since, until=until)
    return queries._where_all(conn, table, filters)


class _Sums:
    __slots__ = ("hits", "timed", "time_sum", "errors", "last_seen")

    def __init__(self) -> None:
        self.hits = 0
        self.timed = 0
        self.time_sum = 0.0
        self.errors = 0
        self.last_seen: datetime | None = None

    def add(self, hits: t.Any, timed: t.Any, time_sum: t.Any, errors: t.Any, last_seen: t.Any) -> None:
        self.hits += int(hits or 0)
        self.timed += int(timed or 0)
        self.time_sum += float(time_sum or 0.0)
        self.errors += int(errors or 0)
        if last_seen is not None:
            self.saw(_naive(last_seen))

    def saw(self, moment: datetime) -> None:
        if self.last_seen is None or moment > self.last_seen:
            self.last_seen = moment


def _ranked(values: t.Iterable[t.Any], hits: t.Callable[[t.Any], int], limit: int) -> list[t.Any]:
    # Most hits first, ties by value, None after the names, the folded rest last.
    def order(value: t.Any) -> tuple[int, int, str]:
        if value is OTHER:
            return (-hits(value), 2, "")
        return (-hits(value), 1 if value is None else 0, value or "")

    return sorted(values, key=order)[:limit]


def top_paths(
    conn: sa.Connection, found: Plan, table: sa.Table, limit: int, by: str = "path"
) -> list[queries.PathStats]:
    """The busiest paths (or routes) of ``found``, as :func:`..queries.top_paths`."""
    d = conn.dialect
    # A route's figures come from route-agent rows: fewer than its paths' rows.
    rolled, span, raw = _split(found, ROUTE_AGENT if by == "route" else PATH_AGENT)
    sums: dict[t.Any, _Sums] = {}
    if rolled is not None:
        r = found.store.rollup.c
        value = exact_text(d, r[by]).label("value")
        kept = [] if by == "route" else [r.other.is_(False)]
        query = (
            sa.select(
                value, sa.func.sum(r.hits), sa.func.sum(r.timed), sa.func.sum(r.time_sum),
                sa.func.sum(sa.case((r.status >= 400, r.hits), else_=0)), sa.func.max(r.last_seen),
            )
            .where(span, *rolled.conditions, *kept)
            .group_by(value)
        )
        for name, *figures in conn.execute(query):
            sums.setdefault(name, _Sums()).add(*figures)
    # The raw rows are few (the open days): read once, summed here, and kept for the
    # sketches of the names shown.
    seconds: dict[t.Any, list[float]] = {}
    addresses: dict[t.Any, set[str]] = {}
    c = table.c
    column = unindexed(d, exact_text(d, c[by]))
    dates, convert = _dates_as_text(d, c.date)
    latest: dict[t.Any, t.Any] = {}
    for since, until in raw:
        rows = sa.select(
            column, as_double(d, c.response_time), queries.visitor(d, table), c.status_code, dates,
        ).where(*_raw_where(conn, table, found, since, until))
        _add_raw(conn.execute(rows).all(), sums, seconds, addresses, latest)
    for name, moment in latest.items():
        sums[name].saw(_naive(convert(moment)))
    shown = _ranked(sums, lambda name: sums[name].hits, limit)
    if not shown:
        return []
    times, visitors = _sketches(conn, found, rolled, span, by, shown)
    hashes: dict[str, int] = {}
    out = []
    for name in shown:
        histogram = times[name]
        histogram.add_all(seconds.get(name, ()))
        seen = visitors[name]
        codes = set()
        for address in addresses.get(name, ()):
            code = hashes.get(address)
            if code is None:
                code = hashes[address] = Visitors.hash(address)
            codes.add(code)
        if codes:
            seen.add_hashes(codes)
        total = sums[name]
        out.append(
            queries.PathStats(
                path=name,
                hits=total.hits,
                visitors=seen.count(),
                avg=total.time_sum / total.timed if total.timed else None,
                p95=histogram.quantile(0.95),
                error_rate=total.errors / total.hits,
                last_seen=total.last_seen,
            )
        )
    return out


def _dates_as_text(
    dialect: t.Any, date: ColumnElement[t.Any]
) -> tuple[ColumnElement[t.Any], t.Callable[[t.Any], t.Any]]:
    """``date`` to select, and what makes one value a datetime. SQLite keeps dates as
    text of one width, and MariaDB and MySQL send a DATETIME as such text, in date
    order: only the latest of each name is made a datetime, not every row's (with
    pymysql, that was a fifth of the time of reading an open day)."""
    if dialect.name == "sqlite":
        processor = date.type.dialect_impl(dialect).result_processor(dialect, None)
        return sa.type_coerce(date, sa.String()), processor or (lambda value: value)
    if dialect.name in ("mysql", "mariadb"):
        return sa.cast(date, sa.String()), datetime.fromisoformat
    return date, lambda value: value


def _add_raw(
    rows: t.Sequence[t.Any], sums: dict[t.Any, _Sums], seconds: dict[t.Any, list[float]],
    addresses: dict[t.Any, set[str]], latest: dict[t.Any, t.Any],
) -> None:
    for name, value, address, status, date in rows:
        total = sums.get(name)
        if total is None:
            total = sums[name] = _Sums()
            seconds[name] = []
            addresses[name] = set()
        elif name not in seconds:
            seconds[name] = []
            addresses[name] = set()
        total.hits += 1
        if value is not None:
            total.timed += 1
            total.time_sum += value
            seconds[name].append(value)
        if status is not None and status >= 400:
            total.errors += 1
        if date is not None:
            last = latest.get(name)
            if last is None or date > last:
                latest[name] = date
        if address is not None:
            addresses[name].add(address)


def _sketches(
    conn: sa.Connection, found: Plan, rolled: Plan | None, span: ColumnElement[bool] | None,
    by: str, shown: list[t.Any],
) -> tuple[dict[t.Any, Histogram], dict[t.Any, Visitors]]:
    """The merged response times and visitors of the path-agent rows of ``shown``."""
    time_blobs: dict[t.Any, list[bytes]] = {name: [] for name in shown}
    visitor_blobs: dict[t.Any, list[bytes]] = {name: [] for name in shown}
    if rolled is not None and span is not None:
        r = found.store.rollup.c
        column = r[by]
        names = [name for name in shown if name is not None]
        wanted = [column.in_(names)] if names else []
        if len(names) < len(shown):
            wanted.append(column.is_(None))
        kept = [] if by == "route" else [r.other.is_(False)]
        blobs = sa.select(exact_text(conn.dialect, column), r.times, r.visitors).where(
            span, *rolled.conditions, *kept, sa.or_(*wanted)
        )
        for name, time_blob, visitor_blob in conn.execute(blobs).all():
            if name in time_blobs:
                time_blobs[name].append(time_blob)
                visitor_blobs[name].append(visitor_blob)
    times = {name: Histogram.merged(time_blobs[name]) for name in shown}
    visitors = {name: Visitors.merged(visitor_blobs[name]) for name in shown}
    return times, visitors


def top_path_hits(
    conn: sa.Connection, found: Plan, table: sa.Table, limit: int
) -> list[tuple[t.Any, int]]:
    """The path top list of ``found``, as :func:`..queries.top`; paths folded out of the
    path-agent rows count as one value, :data:`.read.OTHER`."""
    d = conn.dialect
    rolled, span, raw = _split(found)
    hits: dict[t.Any, int] = {}
    if rolled is not None:
        r = found.store.rollup.c
        value = exact_text(d, r.path).label("value")
        query = (
            sa.select(r.other, value, sa.func.sum(r.hits))
            .where(span, *rolled.conditions)
            .group_by(r.other, value)
        )
        for other, name, count in conn.execute(query):
            key = OTHER if other else name
            hits[key] = hits.get(key, 0) + int(count)
    column = unindexed(d, exact_text(d, table.c.path)).label("value")
    for since, until in raw:
        query = (
            sa.select(column, sa.func.count())
            .where(*_raw_where(conn, table, found, since, until))
            .group_by(column)
        )
        for name, count in conn.execute(query):
            hits[name] = hits.get(name, 0) + int(count)
    return [(name, hits[name]) for name in _ranked(hits, hits.__getitem__, limit)]
