"""Rollups recomputed from the raw rows: ``flask statistics rebuild`` and the
background backfill of a table that had rows before it had rollups.

One local day at a time, under the writers' lock: the day's rollup rows are deleted
and written again from the day's raw rows, so the result is the same whatever was
there before, and a writer's batch lands wholly before or after.
"""

from __future__ import annotations

import logging
import typing as t
from datetime import date, datetime, timedelta, timezone, tzinfo

import sqlalchemy as sa

from ..buckets import to_local
from ..dialects import as_double
from ..filters import local_midnight_utc, zone
from .aggregate import DayOf, Fact, Totals, month_start
from .maintenance import MaintenanceTask
from .store import Store, _naive

logger = logging.getLogger("flask_statistics")

_SLICE = 5000
#: Seconds between two looks at the state row once there is nothing to backfill,
#: and before another try after a failure.
CHECK_EVERY = 300.0
RETRY_AFTER = 30.0


def fact_columns(
    table: sa.Table, dialect: t.Any, present: t.Collection[str] | None = None
) -> list[t.Any]:
    """The columns a :data:`Fact` is read from, NULL for optional ones not there."""
    c = table.c

    def optional(name: str) -> t.Any:
        if name in c and (present is None or name in present):
            return c[name]
        return sa.null()

    return [
        # MariaDB sends a FLOAT with 6 digits unless asked for a double.
        c.date, c.method, c.status_code, c.path, optional("route"), as_double(dialect, c.response_time),
        c.size, c.remote_address, optional("is_bot"), c.browser, c.platform, c.referrer,
    ]


def day_start(moment: datetime, tz: tzinfo) -> datetime:
    """The first instant (naive UTC) of the local day holding ``moment``."""
    return local_midnight_utc(to_local(moment, tz).date(), tz)


def next_day(start: datetime, tz: tzinfo) -> datetime:
    return local_midnight_utc(to_local(start, tz).date() + timedelta(days=1), tz)


def next_month(start: datetime, tz: tzinfo) -> datetime:
    """The first instant (naive UTC) of the local month after the one holding ``start``."""
    first = to_local(start, tz).date().replace(day=1)
    following = first.replace(year=first.year + 1, month=1) if first.month == 12 else first.replace(month=first.month + 1)
    return local_midnight_utc(following, tz)


def next_year(start: datetime, tz: tzinfo) -> datetime:
    """The first instant (naive UTC) of the local year after the one holding ``start``."""
    return local_midnight_utc(date(to_local(start, tz).year + 1, 1, 1), tz)


def today_start(tz: tzinfo) -> datetime:
    """The first instant (naive UTC) of the current local day."""
    return day_start(datetime.now(timezone.utc).replace(tzinfo=None), tz)


def first_day_after(tz: tzinfo) -> t.Callable[[datetime], datetime]:
    return lambda moment: next_day(day_start(moment, tz), tz)


def rebuild_day(
    engine: sa.Engine, store: Store, start: datetime, tz: tzinfo,
    present: t.Collection[str] | None = None,
) -> int:
    """Replace the rollups of the local day starting at ``start`` with those of its raw
    rows; returns how many raw rows it read."""
    end = next_day(start, tz)
    totals = Totals()
    with engine.begin() as conn:
        store.lock(conn)
        store.delete_period(conn, start, end)
        store.reopen_months(conn, month_start(start, tz), tz)
        read = add_rows(conn, store.table, totals, start, end, present)
        store.apply(conn, totals.rollup(DayOf(tz), store.quarters_from(), *store.cuts(conn)))
    return read


def add_rows(
    conn: sa.Connection, table: sa.Table, totals: Totals, start: datetime, end: datetime,
    present: t.Collection[str] | None = None,
) -> int:
    """Add the raw rows dated in ``[start, end)`` to ``totals``; returns how many."""
    columns = fact_columns(table, conn.dialect, present)
    # Streamed in slices: bounded memory whatever the day holds.
    result = conn.execute(
        sa.select(*columns)
        .where(table.c.date >= start, table.c.date < end)
        .execution_options(yield_per=_SLICE)
    )
    read = 0
    for rows in result.partitions():
        read += len(rows)
        totals.add(_facts(rows))
    return read


def _facts(rows: t.Sequence[t.Any]) -> t.Iterator[Fact]:
    for row in rows:
        date = row[0]
        if date is None:
            continue
        if date.tzinfo is not None:
            date = _naive(date)
        rt = row[5]
        yield (date, row[1], row[2], row[3], row[4], None if rt is None else float(rt),
               row[6], row[7], row[8], row[9], row[10], row[11])


def days_with_rows(
    engine: sa.Engine, table: sa.Table, tz: tzinfo, since: datetime | None, until: datetime | None
) -> list[datetime]:
    """The local days (first instants) from ``since`` up to ``until`` that hold rows,
    found by stepping from one row's day to the next through the date index."""
    days = []
    date = table.c.date
    with engine.connect() as conn:
        lower = since
        while True:
            query = sa.select(sa.func.min(date))
            if lower is not None:
                query = query.where(date >= lower)
            if until is not None:
                query = query.where(date < until)
            first = conn.execute(query).scalar()
            if first is None:
                return days
            start = day_start(_naive(first), tz)
            days.append(start)
            lower = next_day(start, tz)


class Backfill(MaintenanceTask):
    """A writer maintenance task: rebuilds, newest first, one day with rows per run,
    the days before the state row's ``backfill_before``, then clears it."""

    __name__ = "rollup backfill"
    retry_after = RETRY_AFTER
    doing = "backfill the rollups"

    def __init__(self, store: Store, zone_name: str, present: t.Callable[[sa.Engine], t.Collection[str] | None] = lambda e: None) -> None:
        super().__init__(store)
        self.zone_name = zone_name
        self.tz = zone(zone_name)
        self._present = present
        self.remaining: datetime | None = None  # rows before this still wait
        self.oldest: datetime | None = None

    def run(self, engine: sa.Engine) -> float:
        return 0.0 if self._step(engine) else CHECK_EVERY

    def _step(self, engine: sa.Engine) -> bool:
        """One step; True when there is more to do."""
        store = self.store
        if not store.present(engine):
            return False
        store.ensure_state(
            engine, self.zone_name, first_day_after(self.tz), open_from=today_start(self.tz)
        )
        with engine.connect() as conn:
            state = store.read_state(conn)
        if state is None:
            return False
        if state.zone != self.zone_name:
            self._change_zone(engine)
            return True
        before = state.backfill_before
        self.remaining, self.oldest = before, state.backfill_from
        if before is None:
            return False
        date = store.table.c.date
        with engine.connect() as conn:
            newest = conn.execute(sa.select(sa.func.max(date)).where(date < before)).scalar()
        if newest is None:
            with engine.begin() as conn:
                store.lock(conn)
                store.set_state(conn, backfill_before=None)
            self.remaining = None
            logger.info("flask-statistics: rollups backfilled")
            return False
        start = day_start(_naive(newest), self.tz)
        rebuild_day(engine, store, start, self.tz, self._present(engine))
        with engine.begin() as conn:
            store.lock(conn)
            store.set_state(conn, backfill_before=start)
        self.remaining = start
        return True

    def _change_zone(self, engine: sa.Engine) -> None:
        # Day rows follow the old zone's midnights: rebuild every day with raw rows.
        date = self.store.table.c.date
        with engine.begin() as conn:
            self.store.lock(conn)
            last = conn.execute(sa.select(sa.func.max(date))).scalar()
            self.store.reopen_months(conn, None)
            self.store.set_state(
                conn,
                zone=self.zone_name,
                backfill_before=None if last is None else first_day_after(self.tz)(_naive(last)),
                # Rebuilt days get day rows in the new zone; then the open days are
                # chosen again (see compact.close_days), and so are the months.
                open_from=None,
                open_merged=None,
            )
        logger.warning(
            "flask-statistics: STATISTICS_TIMEZONE changed to %s; rebuilding the daily "
            "rollups from the recorded rows in the background",
            self.zone_name,
        )
