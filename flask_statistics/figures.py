"""The dashboard's figures, from rollups where they can answer and from the raw rows
where they cannot (filters by client, a backfill still running, a folded path).

Each function has the signature of its namesake in :mod:`.queries` plus the rollup
:class:`~.rollups.store.Store`; :func:`source` says which the view used.
"""

from __future__ import annotations

import typing as t
import weakref
from datetime import datetime, timezone

import sqlalchemy as sa

from . import queries
from .filters import Filters
from .rollups import agent_paths, read
from .rollups.store import Store, _naive
from .rollups.tables import CLASS, DAY, QUARTER

#: Plans already made on a connection: a full page asks for the same one per panel,
#: and each would read the state row again.
_plans: weakref.WeakKeyDictionary[sa.Connection, dict[tuple[int, Filters], t.Any]] = (
    weakref.WeakKeyDictionary()
)

def first_recorded(conn: sa.Connection, store: Store | None, table: sa.Table) -> datetime | None:
    """When the oldest request the dashboard counts was made (naive UTC; None when
    there are none): the rollups' first day once they hold every row (they can
    outlive pruned rows), else the oldest row. Both are one index lookup."""
    if store is not None and store.present(conn.engine):
        state = store.read_state(conn)
        if state is not None and state.backfill_before is None:
            r = store.rollup.c
            # Days still open are counted in 15-minute rows (their day rows, if any,
            # start at midnight); one index lookup per tier.
            closed = [] if state.open_from is None else [r.bucket < state.open_from]
            firsts = [
                conn.execute(
                    sa.select(sa.func.min(r.bucket)).where(r.grain == CLASS, r.tier == tier, *where)
                ).scalar()
                for tier, where in ((DAY, closed), (QUARTER, []))
            ]
            found = [_naive(first) for first in firsts if first is not None]
            return min(found) if found else None
    first = conn.execute(sa.select(sa.func.min(table.c.date))).scalar()
    return None if first is None else _naive(first)


def _plan(conn: sa.Connection, store: Store | None, filters: Filters) -> read.Plan | None:
    if store is None:
        return None
    made = _plans.setdefault(conn, {})
    key = (id(store), filters)
    if key not in made:
        hourly = queries.bucket_width(filters) == "hour"
        made[key] = read.plan(conn, store, filters, hourly)
    return t.cast("read.Plan | None", made[key])


def source(conn: sa.Connection, store: Store | None, filters: Filters) -> str:
    """"rollups" or "rows": where the figures of ``filters`` come from."""
    return "rows" if _plan(conn, store, filters) is None else "rollups"


def pruned_before(
    conn: sa.Connection, store: Store | None, table: sa.Table, filters: Filters
) -> datetime | None:
    """The date of the oldest raw row, when the rollups still count requests of the
    window from before it: their rows were pruned, so the request log cannot show
    them. None otherwise."""
    found = _plan(conn, store, filters)
    if found is None:
        return None
    oldest = conn.execute(sa.select(sa.func.min(table.c.date))).scalar()
    if oldest is not None and oldest.tzinfo is not None:
        oldest = oldest.astimezone(timezone.utc).replace(tzinfo=None)
    if oldest is not None and oldest <= filters.since:
        return None
    return read.counted_before(conn, found, oldest)


def kpis(conn: sa.Connection, store: Store | None, table: sa.Table, filters: Filters) -> queries.Kpis:
    found = _plan(conn, store, filters)
    if found is None:
        return queries.kpis(conn, table, filters)
    return read.kpis(conn, found)


def hits(conn: sa.Connection, store: Store | None, table: sa.Table, filters: Filters) -> int:
    """The requests of the window: the hits KPI alone, without its sketches."""
    found = _plan(conn, store, filters)
    if found is None:
        return queries.hits(conn, table, filters)
    return read.hits(conn, found)


def timeseries(
    conn: sa.Connection, store: Store | None, table: sa.Table, filters: Filters,
    parts: t.Collection[str] = queries.SERIES_PARTS,
) -> queries.Series:
    """Hits per bucket with ``parts`` (see :data:`..queries.SERIES_PARTS`); rollups
    leave the others out (0 visitors, no times), raw rows give them all."""
    found = _plan(conn, store, filters)
    if found is None:
        return queries.timeseries(conn, table, filters)
    unit = queries.bucket_width(filters)
    return read.timeseries(conn, found, unit, queries.bucket_starts(filters, unit), parts)


def status_classes(conn: sa.Connection, store: Store | None, table: sa.Table, filters: Filters) -> list[tuple[str, int]]:
    found = _plan(conn, store, filters)
    if found is None:
        return queries.status_classes(conn, table, filters)
    return read.status_classes(conn, found)


def top(
    conn: sa.Connection, store: Store | None, table: sa.Table, filters: Filters, column: str,
    limit: int = 10, *, grouped: bool = False,
) -> list[tuple[t.Any, int]]:
    found = _plan(conn, store, filters)
    if column == "path" and agent_paths.serves(found):
        return agent_paths.top_path_hits(conn, t.cast(read.Plan, found), table, limit)
    if found is None or not read.ranks(found, column):
        return queries.top(conn, table, filters, column, limit, grouped=grouped)
    return read.top(conn, found, column, limit, grouped=grouped)


def top_lists(
    conn: sa.Connection, store: Store | None, table: sa.Table, filters: Filters,
    columns: t.Sequence[str], limit: int = 10, *, grouped: t.Collection[str] = (),
) -> list[list[tuple[t.Any, int]]]:
    """:func:`top` of each of ``columns`` (``grouped`` names those ranked by group).
    Lists only the raw rows give are counted in one pass over one client's or one
    user agent's rows (see :func:`..queries.top_lists`)."""
    found = _plan(conn, store, filters)
    raw = [column for column in columns if found is None or not read.ranks(found, column)]
    together: dict[str, list[tuple[t.Any, int]]] = {}
    if len(raw) > 1 and (filters.remote_address is not None or filters.user_agent is not None):
        lists = queries.top_lists(conn, table, filters, raw, limit, grouped=grouped)
        if lists is not None:
            together = dict(zip(raw, lists))
    return [
        together[column] if column in together
        else top(conn, store, table, filters, column, limit, grouped=column in grouped)
        for column in columns
    ]


def top_paths(
    conn: sa.Connection, store: Store | None, table: sa.Table, filters: Filters,
    limit: int = 20, by: str = "path",
) -> list[queries.PathStats]:
    found = _plan(conn, store, filters)
    if agent_paths.serves(found):
        return agent_paths.top_paths(conn, t.cast(read.Plan, found), table, limit, by)
    if found is None or not read.ranks_paths(found):
        return queries.top_paths(conn, table, filters, limit, by)
    return read.top_paths(conn, found, limit, by)
