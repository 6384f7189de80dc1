"""What the writer needs to keep the rollups: whether the tables are there (with one
warning naming the fix when they are not), the entries of a batch, the lock."""

from __future__ import annotations

import logging
import typing as t
import weakref
from datetime import datetime

import sqlalchemy as sa

from ..filters import zone
from .aggregate import DayOf, Entry, Fact, Key, Totals
from .rebuild import first_day_after, today_start
from .store import Store

logger = logging.getLogger("flask_statistics")


#: The first day without day rows, month without month rows, year without year rows
#: and quarter without path-agent rows.
Cuts = tuple[t.Optional[datetime], t.Optional[datetime], t.Optional[datetime], t.Optional[datetime]]


class RollupFailed(Exception):
    """Adding a batch to the rollups failed; its rows can still be written."""


class Rollups:
    def __init__(self, store: Store, zone_name: str) -> None:
        self.store = store
        self.zone_name = zone_name
        self.tz = zone(zone_name)
        self.day_of = DayOf(self.tz)
        self._warned: weakref.WeakKeyDictionary[sa.Engine, bool] = weakref.WeakKeyDictionary()
        self.failures = 0

    def ready(self, engine: sa.Engine) -> bool:
        """Whether the rollup tables exist; says once per engine when they do not."""
        try:
            present = self.store.present(engine)
        except Exception:
            return False
        if not present and engine not in self._warned and engine not in self.store.incomplete:
            self._warned[engine] = True
            store = self.store
            logger.warning(
                "flask-statistics keeps no rollups for table %r: the tables %r and %r do "
                "not exist. Create them with db.create_all() or `flask statistics "
                "rebuild`; until then the dashboard reads every raw row.",
                store.table.name, store.rollup.name, store.state.name,
            )
        return present

    def entries(self, facts: t.Iterable[Fact]) -> Totals:
        """The batch summed up, before the lock: the costly part, per request."""
        # Paths per agent are kept for days that are over only: a batch adds its late
        # rows, if any, to them.
        totals = Totals("closed")
        totals.add(facts)
        return totals

    def lock(self, conn: sa.Connection) -> bool:
        try:
            return self.store.lock(conn)
        except Exception as exc:
            raise RollupFailed from exc

    def cuts(self, conn: sa.Connection) -> Cuts:
        """Where the tiers start (see :meth:`.Store.cuts`); read under :meth:`lock`,
        which keeps a compaction from closing a day or a month before the commit."""
        try:
            return self.store.cuts(conn)
        except Exception as exc:
            raise RollupFailed from exc

    def keyed(self, totals: Totals, cuts: Cuts) -> dict[Key, Entry]:
        """Every rollup row the batch adds to, by key: needs no connection."""
        return totals.rollup(self.day_of, self.store.quarters_from(), *cuts)

    def apply(self, conn: sa.Connection, entries: dict[Key, Entry]) -> None:
        """Add :meth:`keyed` entries to their rollup rows, under :meth:`lock`."""
        try:
            self.store.apply(conn, entries)
        except Exception as exc:
            raise RollupFailed from exc

    def create_state(self, engine: sa.Engine) -> None:
        self.store.ensure_state(
            engine, self.zone_name, first_day_after(self.tz), open_from=today_start(self.tz)
        )

    def failed(self, engine: sa.Engine, facts: list[Fact], exc: BaseException) -> None:
        """Rows were written without their rollups: mark the rollups stale from the
        oldest of them, and look for the tables again next time."""
        self.failures += 1
        self.store.forget(engine)
        since = min((f[0] for f in facts), default=None)
        logger.error(
            "flask-statistics could not update the rollups (%s); the rows were written. "
            "Run `flask statistics rebuild --since %s` to count them in the dashboard.",
            type(exc.__cause__ or exc).__name__,
            since.date().isoformat() if since else "DATE",
        )
        if since is None:
            return
        try:
            with engine.begin() as conn:
                self.store.mark_stale(conn, since)
        except Exception:
            pass
