"""Exact percentiles as an aggregate of the main query on SQLite.

SQLite has no percentile aggregate, so a raw-row figure took a second query that
ranked the window's times with ``cume_dist()``: a second pass over rows that, under
a filter such as one user agent, are scattered through the table and cost a B-tree
lookup each (about 1.5 microseconds a row on a 1 GB file), plus the sort. Here the
times are collected by an aggregate function written in Python, registered on the
connection, in the same pass as the counts: about 0.5 microseconds a row, and the
values arrive as the exact doubles the database holds (its text forms of a double
are not exact at every magnitude).

An aggregate keeps at most :data:`LIMIT` values; beyond, it answers :data:`TOO_MANY`
and the caller ranks them in SQL as before, so memory stays bounded whatever the
window holds. With GROUP BY, SQLite computes one group at a time.
"""

from __future__ import annotations

import math
import sqlite3
import typing as t
from fractions import Fraction

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

#: The prefix of the functions' names on the connection, unlikely to meet the app's.
NAME = "flask_statistics_percentiles"
#: Most values one aggregate keeps (8 MB of floats).
LIMIT = 250_000
#: What an aggregate answers when it holds more values, or values that are not
#: numbers (SQLite lets any column hold text), which the SQL ranking then orders.
TOO_MANY = "!"
_NUMBERS = (float, int)


class _Full(list):  # type: ignore[type-arg]
    """Where an aggregate's values go once it holds too many: nowhere."""

    def append(self, value: t.Any) -> None:
        pass


class _Percentiles:
    """Collects the values of a group; finalize() gives the nearest-rank value of each
    fraction of ``wanted``, space-separated in Python's exact float notation, None
    without values, or :data:`TOO_MANY`. Subclassed per set of fractions, so that a
    row passes one argument (each costs a conversion)."""

    wanted: tuple[Fraction, ...] = ()

    def __init__(self) -> None:
        self.values: list[t.Any] = []

    def step(self, value: t.Any) -> None:
        if value is not None:
            values = self.values
            values.append(value)
            if len(values) > LIMIT:
                self.values = _Full()

    def finalize(self) -> str | None:
        values = self.values
        if isinstance(values, _Full) or not all(type(v) in _NUMBERS for v in values):
            return TOO_MANY
        if not values:
            return None
        values.sort()
        n = len(values)
        return " ".join(repr(float(values[rank(p, n) - 1])) for p in self.wanted)


_classes: dict[tuple[Fraction, ...], type[_Percentiles]] = {}


def rank(p: Fraction, n: int) -> int:
    """The nearest rank of ``p`` among ``n`` values: ceil(p * n), at least 1."""
    return max(1, math.ceil(p * n))


def aggregate(
    conn: sa.Connection, value: ColumnElement[t.Any], wanted: dict[str, Fraction]
) -> ColumnElement[t.Any] | None:
    """The aggregate that picks the percentiles ``wanted`` of ``value`` (read its
    result with :func:`picked`), registered on the connection the first time; None
    where there is none (databases other than SQLite, drivers other than pysqlite)."""
    if conn.dialect.name != "sqlite":
        return None
    fractions = tuple(wanted.values())
    name = f"{NAME}_" + "_".join(f"{p.numerator}_{p.denominator}" for p in fractions)
    proxied = conn.connection
    if not proxied.info.get(name):
        raw = proxied.dbapi_connection
        if not isinstance(raw, sqlite3.Connection):
            return None
        if fractions not in _classes:
            _classes[fractions] = type("Percentiles", (_Percentiles,), {"wanted": fractions})
        raw.create_aggregate(name, 1, _classes[fractions])
        proxied.info[name] = True
    return getattr(sa.func, name)(value, type_=sa.String())


def picked(found: str | None, wanted: dict[str, Fraction]) -> dict[str, float | None] | None:
    """The percentiles by name from what :func:`aggregate` gave; None when it held too
    many values to answer."""
    if found == TOO_MANY:
        return None
    if found is None:
        return dict.fromkeys(wanted)
    return dict(zip(wanted, map(float, found.split())))
