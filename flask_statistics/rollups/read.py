"""The dashboard's figures from rollup rows.

:func:`plan` decides whether a view can be answered from rollups and which rows to
read; the other functions mirror those of :mod:`..queries` and return the same
types. Counts and sums are added up by the database; histograms and visitor sketches
are merged here, only for the rows a figure needs.
"""

from __future__ import annotations

import bisect
import typing as t
import weakref
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from .. import queries
from ..dialects import exact_text, int_div, text_equals, text_startswith
from ..filters import Filters, zone
from ..grouping import Key, browser_condition, group, key_for, rank
from ..sketches import Histogram, Visitors
from .aggregate import (
    method_key, month_start, quarter_aligned, quarter_start, split_path_counts, year_start,
)
from . import counts
from .rebuild import next_month, next_year
from .store import State, Store, _naive
from .tables import (
    AGENT, AGENT_COLUMNS, AGENT_PATH_GRAINS, CLASS, DAY, DIMENSIONS, MONTH, PATH, QUARTER,
    REFERRER, ROUTE, STATUS, YEAR,
)

#: Filters only the raw rows can answer.
RAW_ONLY = ("remote_address", "user_agent", "referrer")
#: Filters the ``AGENT`` grain answers, on their own or with status, method and bots
#: (not with a path or a route: no grain keeps both).
AGENT_FILTERS = ("browser", "platform")


class _Other:
    """The folded long tail of a top list (paths, browsers...)."""

    def __repr__(self) -> str:
        return "OTHER"


OTHER: t.Any = _Other()


@dataclass(frozen=True)
class Plan:
    """Which rollup rows answer a view: ``grain``, and ``tier`` buckets in
    ``[since, until)``, narrowed by ``conditions``."""

    store: Store
    grain: int
    tier: int
    filters: Filters
    dialect: t.Any
    conditions: tuple[ColumnElement[bool], ...]
    #: Days from this on are open: a day-tier plan reads their quarters (and the part
    #: of them their day rows count, before ``open_merged``).
    open_from: datetime | None = None
    #: Months before this have month rows: a day-tier plan reads whole months there.
    months_before: datetime | None = None
    #: Years before this have year rows: a day-tier plan reads whole years there.
    years_before: datetime | None = None
    #: Whether the day rows follow the local days of the view's zone.
    local_days: bool = False
    #: The open day's day rows count its quarters before this (see ``compact``).
    open_merged: datetime | None = None

    @property
    def since(self) -> datetime:
        return self.filters.since

    @property
    def until(self) -> datetime:
        return self.filters.until

    def where(self, upto: int = YEAR) -> list[ColumnElement[bool]]:
        """The plan's rows, from tiers up to ``upto``: ``DAY`` for figures by a unit
        finer than a month, which month rows cannot split; ``MONTH`` by the month."""
        return [self.span(self.since, self.until, upto), *self.conditions]

    def span(
        self, since: datetime, until: datetime, upto: int = YEAR, grain: int | None = None
    ) -> ColumnElement[bool]:
        """The rows of ``grain`` (the plan's by default) in buckets in ``[since,
        until)``: of the plan's tier, except that days still open are read from their
        15-minute rows and, up to tier ``upto``, whole years and months that have year
        and month rows from those. Each part names the grain, so that a database can
        read each range from the index on grain, tier and bucket."""
        grain = self.grain if grain is None else grain
        if self.tier != DAY:
            return self._days(since, until, grain)
        for tier, before, start_of, next_of in (
            (YEAR, self.years_before, year_start, next_year),
            (MONTH, self.months_before, month_start, next_month),
        ):
            if tier > upto or before is None:
                continue
            tz = zone(self.filters.tz)
            first = start_of(since, tz)
            if first < since:
                first = next_of(first, tz)
            last = min(start_of(until, tz), before)
            if self.open_from is not None:
                last = min(last, self.open_from)
            if first < last:
                parts = [self._range(grain, tier, first, last)]
                if since < first:
                    parts.append(self.span(since, first, tier - 1, grain))
                if last < until:
                    parts.append(self.span(last, until, tier - 1, grain))
                return sa.or_(*parts)
        return self._days(since, until, grain)

    def _range(self, grain: int, tier: int, since: datetime, until: datetime) -> ColumnElement[bool]:
        r = self.store.rollup.c
        return sa.and_(r.grain == grain, r.tier == tier, r.bucket >= since, r.bucket < until)

    def _days(self, since: datetime, until: datetime, grain: int) -> ColumnElement[bool]:
        cut = self.open_from
        if self.tier == QUARTER or cut is None or cut >= until:
            return self._range(grain, self.tier, since, until)
        parts = []
        if since < cut:
            parts.append(self._range(grain, DAY, since, cut))
        quarters = max(since, cut)
        merged = self.open_merged
        if merged is not None and since <= cut < merged <= until:
            # The open day's rows count its quarters before ``merged``.
            parts.append(self._range(grain, DAY, cut, merged))
            quarters = merged
        if quarters < until:
            parts.append(self._range(grain, QUARTER, quarters, until))
        return parts[0] if len(parts) == 1 else sa.or_(*parts)

    def at_least(self, grain: int) -> Plan:
        """The same view from a grain that also keeps the dimensions of ``grain``."""
        if DIMENSIONS[self.grain] >= DIMENSIONS[grain]:
            return self
        return self.regrained(grain)

    def regrained(self, grain: int) -> Plan:
        if self.grain == AGENT:
            # Only the agent grain keeps browsers and platforms: another would drop
            # the filter.
            raise ValueError("a view filtered by browser or platform is read from its own rows")
        return plan_for(
            self.store, self.filters, grain, self.tier, self.dialect, self.open_from,
            self.months_before, self.years_before, local_days=self.local_days,
            open_merged=self.open_merged,
        )


def plan(
    conn: sa.Connection, store: Store, filters: Filters, hourly: bool
) -> Plan | None:
    """How to answer ``filters`` from rollups, or None when only raw rows can."""
    if any(getattr(filters, name) is not None for name in RAW_ONLY):
        return None
    if not (quarter_aligned(filters.since) and quarter_aligned(filters.until)):
        return None
    if not store.present(conn.engine):
        return None
    state = store.read_state(conn)
    if not usable(state, filters):
        return None
    assert state is not None
    tier = QUARTER if hourly or state.zone != filters.tz else DAY
    kept = store.quarters_from()
    if tier == QUARTER and kept is not None and filters.since < kept:
        return None  # 15-minute rows of that period are no longer kept
    agent = any(getattr(filters, name) is not None for name in AGENT_FILTERS)
    if agent and (filters.path is not None or filters.route is not None):
        return None
    if agent:
        grain = AGENT
    elif filters.path is not None:
        grain = PATH
    elif filters.route is not None:
        grain = ROUTE
    elif filters.status is not None or filters.method is not None:
        grain = STATUS
    else:
        grain = CLASS
    found = plan_for(
        store, filters, grain, tier, conn.dialect, state.open_from, state.months_before,
        state.years_before, local_days=state.zone == filters.tz, open_merged=state.open_merged,
    )
    if filters.path is not None and _folded(conn, found):
        return None  # a folded path could match: only the raw rows know
    if filters.browser is not None and _folded(conn, found):
        return None  # so could a folded browser
    return found


def usable(state: State | None, filters: Filters) -> bool:
    if state is None:
        return False
    if state.backfill_before is not None and state.backfill_before > filters.since:
        return False
    if state.stale_since is not None and state.stale_since < filters.until:
        return False
    return True


def plan_for(
    store: Store, filters: Filters, grain: int, tier: int, dialect: t.Any,
    open_from: datetime | None = None, months_before: datetime | None = None,
    years_before: datetime | None = None, *, local_days: bool = False,
    open_merged: datetime | None = None,
) -> Plan:
    r = store.rollup.c
    conditions: list[ColumnElement[bool]] = []
    if grain == PATH and filters.path is not None:
        match = text_startswith if filters.path_match == "prefix" else text_equals
        conditions.append(match(dialect, r.path, filters.path))
        conditions.append(r.other.is_(False))
    if grain in (PATH, ROUTE) and filters.route is not None:
        conditions.append(text_equals(dialect, r.route, filters.route))
    if grain == AGENT and filters.platform is not None:
        conditions.append(text_equals(dialect, r.route, filters.platform))
    if grain == AGENT and filters.browser is not None:
        conditions.append(browser_condition(dialect, r.path, filters.browser))
        conditions.append(r.other.is_(False))
    if grain in AGENT_PATH_GRAINS and filters.platform is not None:
        conditions.append(text_equals(dialect, r.platform, filters.platform))
    if grain in AGENT_PATH_GRAINS and filters.browser is not None:
        conditions.append(browser_condition(dialect, r.browser, filters.browser))
    if filters.status is not None:
        conditions.append(r.status == filters.status)
    if filters.status_class is not None:
        if grain == CLASS:
            conditions.append(r.status == filters.status_class)
        else:
            low = filters.status_class * 100
            conditions += [r.status >= low, r.status < low + 100]
    if filters.method is not None:
        conditions.append(r.method == method_key(filters.method))
    if filters.bots == "only":
        conditions.append(r.is_bot.is_(True))
    elif filters.bots == "exclude":
        conditions.append(sa.or_(r.is_bot.is_(None), r.is_bot.is_(False)))
    return Plan(
        store, grain, tier, filters, dialect, tuple(conditions), open_from, months_before,
        years_before, local_days, open_merged,
    )


def _folded(conn: sa.Connection, found: Plan) -> bool:
    """Whether the window has folded rows of the plan's grain: paths of any route (a
    path filter cannot tell which route a folded path had), browsers of the filtered
    platform."""
    r = found.store.rollup.c
    where = [found.span(found.since, found.until), r.other.is_(True)]
    if found.grain == AGENT and found.filters.platform is not None:
        where.append(text_equals(found.dialect, r.route, found.filters.platform))
    query = sa.select(r.id).where(*where).limit(1)
    return conn.execute(query).first() is not None


_LONGEST_DAY = timedelta(hours=25)

# ---------------------------------------------------------------------------------
# Figures


def _classes(found: Plan) -> ColumnElement[t.Any]:
    r = found.store.rollup.c
    if found.grain == CLASS:
        return r.status
    return sa.case(
        (sa.and_(r.status >= 100, r.status < 600), int_div(found.dialect, r.status, 100)), else_=0
    )


def hits(conn: sa.Connection, found: Plan) -> int:
    r = found.store.rollup.c
    return int(conn.execute(sa.select(sa.func.sum(r.hits)).where(*found.where())).scalar() or 0)


def kpis(conn: sa.Connection, found: Plan) -> queries.Kpis:
    r = found.store.rollup.c
    rows = conn.execute(
        sa.select(r.hits, r.bytes, r.timed, r.time_sum, r.status, r.times, r.visitors)
        .where(*found.where())
    ).all()
    # Columns at once: a row's fields by name cost ten times more than adding them up.
    columns = list(zip(*rows)) or [()] * 7
    row_hits, sizes, timed_hits, time_sums, statuses, histograms, sketches = columns
    hits, bytes_, timed, time_sum = sum(row_hits), sum(sizes), sum(timed_hits), sum(time_sums, 0.0)
    per_status: dict[t.Any, int] = {}
    for status, count in zip(statuses, row_hits):
        per_status[status] = per_status.get(status, 0) + count
    n4xx = n5xx = 0
    for status, count in per_status.items():
        cls = status if found.grain == CLASS else (status // 100 if status and 100 <= status < 600 else 0)
        if cls == 4:
            n4xx += count
        elif cls == 5:
            n5xx += count
    times = Histogram.merged(histograms)
    visitors = Visitors.merged(sketches)
    return queries.Kpis(
        hits=hits,
        visitors=visitors.count(),
        avg=time_sum / timed if timed else None,
        p50=times.quantile(0.5),
        p95=times.quantile(0.95),
        p99=times.quantile(0.99),
        rate_4xx=n4xx / hits if hits else None,
        rate_5xx=n5xx / hits if hits else None,
        bytes_sent=bytes_,
    )


def timeseries(
    conn: sa.Connection, found: Plan, unit: t.Any, starts: list[datetime],
    parts: t.Collection[str] = queries.SERIES_PARTS,
) -> queries.Series:
    """Hits per bucket, with the ``parts`` asked for: "visitors", "times" (p50 and
    p95). The sketches of the others are neither read nor merged: a chart needs one
    kind, and under a path filter over ten years there are tens of thousands."""
    r = found.store.rollup.c
    rows = conn.execute(
        sa.select(
            r.bucket, r.hits,
            r.times if "times" in parts else sa.null(),
            r.visitors if "visitors" in parts else sa.null(),
        )
        .where(*found.where({"year": YEAR, "month": MONTH}.get(unit, DAY)))
    ).all()  # fetched at once: a row at a time costs a driver call each
    sums = [0] * len(starts)
    times: list[list[t.Any]] = [[] for _ in starts]
    visitors: list[list[t.Any]] = [[] for _ in starts]
    # Rows share a few hundred buckets at most: each is placed once. A long range
    # under a path filter reads tens of thousands of rows: each is unpacked once.
    places: dict[t.Any, int] = {}
    for bucket, row_hits, row_times, row_visitors in rows:
        place = places.get(bucket)
        if place is None:
            place = places[bucket] = bisect.bisect_right(starts, _naive(bucket)) - 1
        if place >= 0:
            sums[place] += row_hits
            times[place].append(row_times)
            visitors[place].append(row_visitors)
    points = []
    for start, place_hits, place_times, place_visitors in zip(starts, sums, times, visitors):
        if not place_times:
            points.append(queries.Point(start, 0, 0, None, None))
            continue
        merged = Histogram.merged(place_times)
        points.append(
            queries.Point(
                start, place_hits, Visitors.merged(place_visitors).count(),
                merged.quantile(0.5), merged.quantile(0.95),
            )
        )
    return queries.Series(unit, points, found.until)


def counted_before(conn: sa.Connection, found: Plan, moment: datetime | None) -> datetime | None:
    """``moment`` (or the window's end, for None) if the window's rollups count
    requests in quarters that end before it, else None."""
    r = found.store.rollup.c
    upto = found.until if moment is None else min(quarter_start(moment), found.until)
    if found.tier == DAY and moment is not None:
        upto = min(upto, moment - _LONGEST_DAY)  # days that ended before it
    query = (
        sa.select(r.id)
        .where(found.span(found.since, upto, grain=CLASS), r.hits > 0)
        .limit(1)
    )
    if conn.execute(query).first() is None:
        return None
    return upto


def status_classes(conn: sa.Connection, found: Plan) -> list[tuple[str, int]]:
    r = found.store.rollup.c
    cls = _classes(found).label("cls")
    query = sa.select(cls, sa.func.sum(r.hits)).where(*found.where()).group_by(cls).order_by(cls)
    out = []
    for value, hits in conn.execute(query):
        value = int(value)
        if 1 <= value <= 5 and hits:
            out.append((f"{value}xx", int(hits)))
    return out


#: The top lists kept by method, status and bot flag.
_LISTS = ("browser", "platform", "referrer")


def ranks(found: Plan, column: str) -> bool:
    """Whether rollups hold the top list of ``column`` for ``found``'s filters: views
    filtered by browser or platform have no paths."""
    if found.grain == AGENT:
        return column in _LISTS or column == "method"
    return column in (*_LISTS, "method", "path")


def ranks_paths(found: Plan) -> bool:
    """Whether rollups hold the busiest paths of ``found``'s filters."""
    return found.grain != AGENT


def _ranked(total: dict[t.Any, int], other: int, key: Key | None, limit: int) -> list[tuple[t.Any, int]]:
    """``total`` grouped by ``key`` (when given) and ranked, with ``other`` hits of
    values no row names (folded, or past a row's cap) as one value, :data:`OTHER`."""
    if key is not None:
        total = group(total.items(), key)
    if other:
        total[OTHER] = other
    return rank(total, limit)


def _top_counts(conn: sa.Connection, found: Plan, limit: int, key: Key | None) -> list[tuple[t.Any, int]]:
    r = found.store.rollup.c
    total: dict[t.Any, int] = {}
    other = 0
    for (blob,) in conn.execute(sa.select(r.counts).where(*found.where())):
        other += counts.add_encoded(total, blob)
    # Values past a row's cap were folded before grouping: they stay "other".
    return _ranked(total, other, key, limit)


#: The counts of the path rows of a view, per connection: its three lists read them.
_decoded: weakref.WeakKeyDictionary[sa.Connection, dict[tuple[int, Filters], t.Any]] = (
    weakref.WeakKeyDictionary()
)


def _path_counts(
    conn: sa.Connection, found: Plan
) -> tuple[dict[tuple[t.Any, t.Any], int], dict[t.Any, int], int]:
    """The (browser, platform) pairs and referrers counted by ``found``'s path rows,
    and their hits."""
    made = _decoded.setdefault(conn, {})
    key = (id(found.store), found.filters)
    if key not in made:
        r = found.store.rollup.c
        named: dict[t.Any, int] = {}
        hits = 0
        for row_hits, blob in conn.execute(sa.select(r.hits, r.counts).where(*found.where())):
            hits += int(row_hits)
            counts.add_encoded(named, blob)
        made[key] = (*split_path_counts(named), hits)
    return t.cast("tuple[dict[tuple[t.Any, t.Any], int], dict[t.Any, int], int]", made[key])


def _top_path_counts(
    conn: sa.Connection, found: Plan, column: str, limit: int, key: Key | None
) -> list[tuple[t.Any, int]]:
    """The browser, platform or referrer list of a path or route filter, from the
    counts of the path rows (folded paths keep theirs): hits a row's cap left out of
    its counts are "other"."""
    agents, referrers, hits = _path_counts(conn, found)
    total: dict[t.Any, int] = {}
    if column == "referrer":
        total = dict(referrers)  # the decoded counts stay as they are for the next list
    else:
        place = 0 if column == "browser" else 1
        for pair, count in agents.items():
            total[pair[place]] = total.get(pair[place], 0) + count
    other = hits - sum(total.values())
    return _ranked(total, other, key, limit)


def _top_agents(
    conn: sa.Connection, found: Plan, column: str, limit: int, key: Key | None
) -> list[tuple[t.Any, int]]:
    """The browser (a folded row's are "other") or platform list from agent rows."""
    r = found.store.rollup.c
    value = exact_text(conn.dialect, r[AGENT_COLUMNS[column]])
    keys = [r.other, value] if column == "browser" else [value]
    labelled = [k.label(f"k{i}") for i, k in enumerate(keys)]
    query = sa.select(*labelled, sa.func.sum(r.hits)).where(*found.where()).group_by(*labelled)
    total: dict[t.Any, int] = {}
    other = 0
    for *values, hits in conn.execute(query):
        if len(values) == 2 and values[0]:
            other += int(hits)
        else:
            total[values[-1]] = int(hits)
    return _ranked(total, other, key, limit)


def top(
    conn: sa.Connection, found: Plan, column: str, limit: int, *, grouped: bool = False
) -> list[tuple[t.Any, int]]:
    """The busiest values of ``column`` (see :func:`ranks`); folded rows count as one
    value, :data:`OTHER`. ``grouped`` as in :func:`..queries.top`."""
    if column == "method":
        if "method" not in DIMENSIONS[found.grain]:
            found = found.regrained(STATUS)
        r = found.store.rollup.c
        value: ColumnElement[t.Any] = r.method
        keys: list[ColumnElement[t.Any]] = [value]
    elif column == "path":
        found = found.at_least(PATH)
        r = found.store.rollup.c
        value = exact_text(conn.dialect, r.path)
        keys = [r.other, value]
    elif column in _LISTS:
        key = key_for(column, found.filters) if grouped else None
        if found.grain in (PATH, ROUTE):
            return _top_path_counts(conn, found.at_least(PATH), column, limit, key)
        if column == "referrer":
            counted = found if found.grain == AGENT else found.regrained(REFERRER)
            return _top_counts(conn, counted, limit, key)
        agents = found if found.grain == AGENT else found.regrained(AGENT)
        return _top_agents(conn, agents, column, limit, key)
    else:
        raise ValueError(f"rollups rank methods, paths, browsers, platforms and referrers, not {column!r}")
    hits = sa.func.sum(r.hits)
    labelled = [k.label(f"k{i}") for i, k in enumerate(keys)]
    query = (
        sa.select(*labelled, hits.label("hits"))
        .where(*found.where())
        .group_by(*labelled)
        .order_by(hits.desc(), value.is_(None), value)
        .limit(limit)
    )
    out = []
    for row in conn.execute(query):
        if column != "method" and row.k0:
            out.append((OTHER, int(row.hits)))
        else:
            out.append((row[len(keys) - 1], int(row.hits)))
    return out


def top_paths(
    conn: sa.Connection, found: Plan, limit: int, by: str = "path"
) -> list[queries.PathStats]:
    """The busiest paths, or routes (``by="route"``: folded paths keep their route,
    so every request counts)."""
    found = found.at_least(ROUTE if by == "route" else PATH)
    r = found.store.rollup.c
    column = r[by]
    path = exact_text(conn.dialect, column).label("path")
    kept = [] if by == "route" else [r.other.is_(False)]
    hits = sa.func.sum(r.hits)
    errors = sa.func.sum(sa.case((r.status >= 400, r.hits), else_=0))
    query = (
        sa.select(
            path, hits.label("hits"), sa.func.sum(r.timed).label("timed"),
            sa.func.sum(r.time_sum).label("time_sum"), errors.label("errors"),
            sa.func.max(r.last_seen).label("last_seen"),
        )
        .where(*found.where(), *kept)
        .group_by(path)
        .order_by(hits.desc(), path.is_(None), path)
        .limit(limit)
    )
    ranked = conn.execute(query).all()
    if not ranked:
        return []
    names = [row.path for row in ranked if row.path is not None]
    wanted = [column.in_(names)] if names else []
    if len(names) < len(ranked):
        wanted.append(column.is_(None))
    sketches: dict[t.Any, list[t.Any]] = {}
    if wanted:
        blobs = sa.select(path, r.times, r.visitors).where(
            *found.where(), *kept, sa.or_(*wanted)
        )
        for row in conn.execute(blobs):
            sketches.setdefault(row.path, []).append(row)
    out = []
    for row in ranked:
        group = sketches.get(row.path, [])
        times = Histogram.merged(g.times for g in group)
        visitors = Visitors.merged(g.visitors for g in group)
        timed = int(row.timed or 0)
        out.append(
            queries.PathStats(
                path=row.path,
                hits=int(row.hits),
                visitors=visitors.count(),
                avg=float(row.time_sum) / timed if timed else None,
                p95=times.quantile(0.95),
                error_rate=int(row.errors) / int(row.hits),
                last_seen=_naive(row.last_seen) if row.last_seen is not None else None,
            )
        )
    return out


