"""Day rows for days that are over, and month rows for months that are over.

Writers add a day's requests to its 15-minute rows only while the day is open (from
the state row's ``open_from`` on), which halves the rollup rows each batch reads and
writes. Once the day is over, a writer maintenance task merges its 15-minute rows
into day rows and moves ``open_from`` to the next day, in one transaction under the
writers' lock: a batch lands wholly before (in the merged rows) or after (adding to
both tiers, as for any closed day). The dashboard reads day rows before
``open_from`` and 15-minute rows from it on, so every request counts once.

While a day is open, this task also adds each of its quarters that is over to the
day's rows (:func:`close_quarters`, moving ``open_merged``): a view of days reads
the open day's day rows and only its last quarter or so from 15-minute rows, and
writers add a late row for such a quarter to both tiers. Paths per browser and
platform (path-agent rows) have no 15-minute rows: they are day rows only, made the
same way from the raw rows, so the dashboard reads the raw rows of the last quarter
or so only. When the day closes, its last quarters are added the same way.

Months work the same way one tier up: once every day of a local month has its day
rows, they are merged into month rows and ``months_before`` moves to the next month;
late rows for such a month then add to its month rows too. A long range reads whole
months from month rows, so its cost grows with months rather than days. Years follow
months the same way (``years_before``). A rebuild of a day drops the month rows from
its month on and the year rows from its year on (:meth:`.Store.reopen_months`), and
they are merged again here.
"""

from __future__ import annotations

import typing as t
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from ..filters import zone
from ..sketches import Histogram, Visitors
from . import counts
from ..schema import present_columns
from .aggregate import DayOf, Entry, Key, Totals, month_start, quarter_start, year_start
from .maintenance import MaintenanceTask
from .rebuild import add_rows, day_start, next_day, next_month, next_year
from .store import Store, _naive
from .tables import AGENT_PATH_GRAINS, CLASS, DAY, GRAINS, MONTH, QUARTER, YEAR

#: Seconds between two looks at the state row, and before another try after a
#: failure. A day not yet merged is still counted, from its 15-minute rows.
CHECK_EVERY = 60.0
#: Most quarters one transaction of :func:`close_quarters` reads: the writers wait.
QUARTERS_AT_ONCE = 8
#: The grains whose 15-minute rows a closing day merges into its day rows.
MERGED_GRAINS = tuple(grain for grain in GRAINS if grain not in AGENT_PATH_GRAINS)
_QUARTER = timedelta(minutes=15)


def _utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def close_days(engine: sa.Engine, store: Store, zone_name: str, now: datetime | None = None) -> int:
    """Merge every day that is over but still open into day rows; returns how many."""
    tz = zone(zone_name)
    today = day_start(now or _utcnow(), tz)
    closed = 0
    while True:
        with engine.begin() as conn:
            if not store.lock(conn):
                return closed
            state = store.read_state(conn)
            if state is None or state.zone != zone_name or state.backfill_before is not None:
                return closed  # the backfill rebuilds days itself; then we follow it
            start = state.open_from
            if start is None:
                # Every day has day rows so far (a new table, or a new zone): from
                # today on, 15-minute rows only. Today's day rows go, its quarters stay.
                _delete_tier(conn, store, DAY, today)
                store.set_state(conn, open_from=today, open_merged=None)
                return closed
            if start >= today:
                return closed
            end = next_day(start, tz)
            # The day's rows already count its quarters before this (see close_quarters).
            built = min(max(start, state.open_merged or start), end)
            if built == start:
                _delete_tier(conn, store, DAY, start, end)
            # The rest of it; the day is closed from here on.
            _add_quarters(conn, engine, store, tz, start, built, end, open_from=end)
            moved: dict[str, t.Any] = {"open_from": end}
            if state.open_merged is not None and state.open_merged < end:
                moved["open_merged"] = end
            store.set_state(conn, **moved)
        closed += 1


def close_quarters(
    engine: sa.Engine, store: Store, zone_name: str, now: datetime | None = None
) -> int:
    """Add the quarters of the open day that are over and not yet counted to its day
    rows, moving ``open_merged``: its 15-minute rows (which stay, for the hourly
    charts), and its paths per agent from its raw rows; returns how many quarters. Call
    after :func:`close_days`. Up to :data:`QUARTERS_AT_ONCE` quarters a transaction,
    under the writers' lock: a batch lands wholly before (read here) or after (adding
    its late rows to both tiers, see :meth:`.Totals.rollup`)."""
    tz = zone(zone_name)
    current = quarter_start(now or _utcnow())
    made = 0
    while True:
        with engine.begin() as conn:
            if not store.lock(conn):
                return made
            state = store.read_state(conn)
            if (
                state is None or state.zone != zone_name or state.backfill_before is not None
                or state.open_from is None
            ):
                return made
            start = state.open_merged
            if start is None or start < state.open_from:
                start = state.open_from
            if start >= current:
                return made
            day = day_start(start, tz)
            end = min(current, start + QUARTERS_AT_ONCE * _QUARTER, next_day(day, tz))
            _add_quarters(
                conn, engine, store, tz, day, start, end, open_from=state.open_from, open_merged=end
            )
            store.set_state(conn, open_merged=end)
        made += (end - start) // _QUARTER


def _add_quarters(
    conn: sa.Connection, engine: sa.Engine, store: Store, tz: t.Any, day: datetime,
    start: datetime, end: datetime, *, open_from: datetime, open_merged: datetime | None = None,
) -> None:
    """Add the quarters in ``[start, end)`` of the local day starting at ``day`` to its
    day rows: its 15-minute rows merged, and its paths per agent from its raw rows
    (``open_from`` and ``open_merged`` as the state will say once they are in)."""
    store.apply(conn, _merged(conn, store, QUARTER, DAY, start, end, MERGED_GRAINS, day))
    path_agents = Totals("only")
    add_rows(conn, store.table, path_agents, start, end, present_columns(engine, store.table))
    store.apply(
        conn, path_agents.rollup(DayOf(tz), open_from=open_from, open_merged=open_merged)
    )


def close_months(engine: sa.Engine, store: Store, zone_name: str, limit: int | None = None) -> int:
    """Merge every local month whose days all have day rows (they end before
    ``open_from``) but that has no month rows yet, oldest first, at most ``limit``;
    returns how many."""
    return _close(engine, store, zone_name, limit, MONTH, month_start, next_month)


def close_years(engine: sa.Engine, store: Store, zone_name: str, limit: int | None = None) -> int:
    """Merge every local year whose months all have month rows (they end before
    ``months_before``) into year rows, the same way."""
    return _close(engine, store, zone_name, limit, YEAR, year_start, next_year)


def close_periods(engine: sa.Engine, store: Store, zone_name: str) -> None:
    """Merge every month and then every year that can be, at once (the writer task
    takes one per run)."""
    close_months(engine, store, zone_name)
    close_years(engine, store, zone_name)


def merge_year_again(engine: sa.Engine, store: Store, zone_name: str, since: datetime) -> None:
    """After the rows before ``since`` (a local month's start) were deleted, make the
    year row of its year again from the months left, if that year has year rows."""
    tz = zone(zone_name)
    start = year_start(since, tz)
    end = next_year(start, tz)
    with engine.begin() as conn:
        if not store.lock(conn):
            return
        state = store.read_state(conn)
        if state is None or state.zone != zone_name or state.years_before is None or end > state.years_before:
            return
        r = store.rollup.c
        hits = [
            conn.execute(
                sa.select(sa.func.sum(r.hits))
                .where(r.grain == CLASS, r.tier == tier, r.bucket >= start, r.bucket < end)
            ).scalar() or 0
            for tier in (MONTH, YEAR)
        ]
        if hits[0] == hits[1]:
            return  # its year rows still count what its months do
        _delete_tier(conn, store, YEAR, start, end)
        store.apply(conn, _merged(conn, store, MONTH, YEAR, start, end))


#: For the tiers that merge another: the tier merged, the state column of the first
#: bucket without rows of the tier, and that of the tier merged.
_MERGES = {MONTH: (DAY, "months_before", "open_from"), YEAR: (MONTH, "years_before", "months_before")}


def _close(
    engine: sa.Engine, store: Store, zone_name: str, limit: int | None, tier: int,
    start_of: t.Callable[[datetime, t.Any], datetime], next_of: t.Callable[[datetime, t.Any], datetime],
) -> int:
    tz = zone(zone_name)
    lower, column, below = _MERGES[tier]
    closed = 0
    while limit is None or closed < limit:
        with engine.begin() as conn:
            if not store.lock(conn):
                return closed
            state = store.read_state(conn)
            if (
                state is None or state.zone != zone_name or state.backfill_before is not None
                or getattr(state, below) is None
            ):
                return closed  # days are being rebuilt or chosen: the others follow
            ready = getattr(state, below)
            start = getattr(state, column)
            if start is None:
                r = store.rollup.c
                first = conn.execute(
                    sa.select(sa.func.min(r.bucket)).where(r.grain == CLASS, r.tier == lower)
                ).scalar()
                start = start_of(ready if first is None else _naive(first), tz)
            end = next_of(start, tz)
            if end > ready:
                if getattr(state, column) is None:
                    store.set_state(conn, **{column: start})
                return closed
            _delete_tier(conn, store, tier, start, end)
            store.apply(conn, _merged(conn, store, lower, tier, start, end))
            store.set_state(conn, **{column: end})
        closed += 1
    return closed


def _delete_tier(
    conn: sa.Connection, store: Store, tier: int, since: datetime, until: datetime | None = None,
    grains: tuple[int, ...] = GRAINS,
) -> None:
    r = store.rollup.c
    where = [r.grain.in_(grains), r.tier == tier, r.bucket >= since]
    if until is not None:
        where.append(r.bucket < until)
    conn.execute(sa.delete(store.rollup).where(*where))


def _merged(
    conn: sa.Connection, store: Store, tier: int, into: int, start: datetime, end: datetime,
    grains: tuple[int, ...] = GRAINS, bucket: datetime | None = None,
) -> dict[Key, Entry]:
    """The rows of ``grains`` and ``tier`` in ``[start, end)`` summed into one bucket of
    tier ``into``, starting at ``bucket`` (by default ``start``)."""
    r = store.rollup.c
    rows = conn.execute(
        sa.select(
            r.grain, r.route, r.path, r.other, r.method, r.status, r.is_bot, r.hits, r.bytes,
            r.timed, r.time_sum, r.last_seen, r.times, r.visitors, r.counts, r.browser,
            r.platform,
        ).where(r.grain.in_(grains), r.tier == tier, r.bucket >= start, r.bucket < end)
    )
    out: dict[Key, Entry] = {}
    for row in rows:
        key: Key = (
            into, bucket or start, int(row.grain), row.route, row.path, bool(row.other), row.method,
            row.status, row.is_bot, row.browser, row.platform,
        )
        entry = out.get(key)
        if entry is None:
            entry = out[key] = Entry()
        entry.hits += int(row.hits)
        entry.bytes += int(row.bytes)
        entry.timed += int(row.timed)
        entry.time_sum += float(row.time_sum)
        if row.last_seen is not None:
            seen = _naive(row.last_seen)
            if entry.last_seen is None or seen > entry.last_seen:
                entry.last_seen = seen
        if row.times:
            entry.times.merge(Histogram.from_bytes(row.times))
        if row.visitors:
            entry.visitors.merge(Visitors.from_bytes(row.visitors))
        if row.counts:
            values, other = counts.decode(row.counts)
            if entry.counts is None:
                entry.counts = {}
            counts.add(entry.counts, values)
            entry.counts_other += other
    return out


class Compaction(MaintenanceTask):
    """A writer maintenance task: :func:`close_days` and :func:`close_quarters`, then
    :func:`close_months` or
    :func:`close_years`, at most once a minute. Months and years are merged one per
    run, and the next run follows the next drain: the first merge of years of months
    must not hold the writer up."""

    __name__ = "rollup compaction"
    retry_after = CHECK_EVERY
    doing = "merge the day, month and year rollups"

    def __init__(self, store: Store, zone_name: str) -> None:
        super().__init__(store)
        self.zone_name = zone_name

    def run(self, engine: sa.Engine) -> float | None:
        if not self.store.present(engine):
            return None
        close_days(engine, self.store, self.zone_name)
        close_quarters(engine, self.store, self.zone_name)
        merged = close_months(engine, self.store, self.zone_name, limit=1)
        merged = merged or close_years(engine, self.store, self.zone_name, limit=1)
        return 0.0 if merged else None
