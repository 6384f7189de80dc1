"""The dashboard's figures, from rollups where they can answer and from the raw rows
where they cannot (filters by client, a backfill still running, a folded path).

Each function has the signature of its namesake in :mod:`.queries` plus the rollup
:class:`~.rollups.store.Store`; :func:`source` says which the view used.
"""

from __future__ import annotations

import typing as t
from datetime import datetime, timezone

import sqlalchemy as sa

from . import queries
from .filters import Filters
from .rollups import read
from .rollups.store import Store



def _plan(conn: sa.Connection, store: Store | None, filters: Filters) -> read.Plan | None:
    if store is None:
        return None
    hourly = queries.bucket_width(filters) == "hour"
    return read.plan(conn, store, filters, hourly)


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


def timeseries(conn: sa.Connection, store: Store | None, table: sa.Table, filters: Filters) -> queries.Series:
    found = _plan(conn, store, filters)
    if found is None:
        return queries.timeseries(conn, table, filters)
    unit = queries.bucket_width(filters)
    return read.timeseries(conn, found, unit, queries.bucket_starts(filters, unit))


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
    if found is None or not read.ranks(found, column):
        return queries.top(conn, table, filters, column, limit, grouped=grouped)
    return read.top(conn, found, column, limit, grouped=grouped)


def top_paths(
    conn: sa.Connection, store: Store | None, table: sa.Table, filters: Filters,
    limit: int = 20, by: str = "path",
) -> list[queries.PathStats]:
    found = _plan(conn, store, filters)
    if found is None:
        return queries.top_paths(conn, table, filters, limit, by)
    return read.top_paths(conn, found, limit, by)
