"""Deleting old rows: in small batches, one short transaction each, so neither the
writer nor the app's own queries ever wait long on a lock.

Keys are selected first and then deleted by key, because MariaDB/MySQL cannot take a
LIMIT inside an ``IN`` subquery.
"""

from __future__ import annotations

import logging
import re
import time
import typing as t
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

logger = logging.getLogger("flask_statistics")

DURATION_FORMAT = "a whole number and a unit: m (minutes), h (hours), d (days) or w (weeks), e.g. 30d, 12h, 6w"

_DURATION = re.compile(r"\s*(\d{1,9})\s*([mhdw])\s*", re.ASCII | re.IGNORECASE)
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str) -> timedelta:
    """``"30d"`` → ``timedelta(days=30)``; also ``m``, ``h`` and ``w``."""
    match = _DURATION.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration; use {DURATION_FORMAT}")
    amount = int(match.group(1))
    if amount == 0:
        raise ValueError(f"{text!r} is zero; use a positive duration, e.g. 30d")
    try:
        return timedelta(**{_UNITS[match.group(2).lower()]: amount})
    except OverflowError:
        raise ValueError(f"{text!r} is too long; use a shorter duration, e.g. 30d") from None


def cutoff_before(period: timedelta, now: datetime | None = None) -> datetime:
    """The aware UTC moment ``period`` before ``now``; the earliest one there is when
    ``period`` reaches back past year 1."""
    now = now or datetime.now(timezone.utc)
    try:
        return now - period
    except OverflowError:
        return datetime.min.replace(tzinfo=timezone.utc)


def _before(table: sa.Table, cutoff: datetime) -> sa.ColumnElement[bool]:
    column = table.c["date"]
    if cutoff.tzinfo is None:
        raise ValueError("cutoff must be an aware datetime, e.g. datetime.now(timezone.utc)")
    cutoff = cutoff.astimezone(timezone.utc)
    if not getattr(column.type, "timezone", False):
        cutoff = cutoff.replace(tzinfo=None)
    return column < cutoff


def count_older_than(engine: sa.Engine, table: sa.Table, cutoff: datetime) -> int:
    """How many rows were recorded before ``cutoff`` (an aware datetime)."""
    return count_where(engine, table, _before(table, cutoff))


def delete_older_than(
    engine: sa.Engine,
    table: sa.Table,
    cutoff: datetime,
    *,
    batch_size: int = 500,
    on_batch: t.Callable[[int], None] | None = None,
    should_stop: t.Callable[[], bool] | None = None,
) -> int:
    """Delete the rows recorded before ``cutoff`` (an aware datetime), ``batch_size``
    at a time; returns how many were deleted.

    ``on_batch`` gets the count of each committed batch; ``should_stop`` is asked
    before each batch and ends the work early when it returns True.
    """
    return delete_where(
        engine,
        table,
        _before(table, cutoff),
        batch_size=batch_size,
        on_batch=on_batch,
        should_stop=should_stop,
    )


def count_where(engine: sa.Engine, table: sa.Table, condition: sa.ColumnElement[bool]) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table).where(condition)).scalar_one())


def delete_where(
    engine: sa.Engine,
    table: sa.Table,
    condition: sa.ColumnElement[bool],
    *,
    batch_size: int = 500,
    on_batch: t.Callable[[int], None] | None = None,
    should_stop: t.Callable[[], bool] | None = None,
) -> int:
    """Delete the rows matching ``condition`` in batches of ``batch_size`` rows,
    each in its own transaction; returns how many were deleted."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    key = table.c["index"]
    pick = sa.select(key).where(condition).limit(batch_size)
    deleted = 0
    while should_stop is None or not should_stop():
        with engine.begin() as conn:
            keys = sorted(conn.scalars(pick))
            if not keys:
                break
            count = conn.execute(table.delete().where(key.in_(keys))).rowcount
        deleted += count
        if on_batch is not None:
            on_batch(count)
        if len(keys) < batch_size:
            break
    return deleted


class Retention:
    """A writer maintenance task: deletes rows older than ``period``.

    Called on the writer thread as ``task(engine)`` after each drain; it does nothing
    until ``interval`` seconds have passed since its last run, then deletes at most
    ``max_batches`` batches of ``batch_size`` rows, so a large backlog is worked off
    over several runs instead of holding up the writer.
    """

    def __init__(
        self,
        table: sa.Table,
        period: timedelta,
        *,
        interval: float = 60.0,
        max_batches: int = 20,
        batch_size: int = 500,
        clock: t.Callable[[], float] = time.monotonic,
    ) -> None:
        if not isinstance(period, timedelta) or period <= timedelta(0):
            raise ValueError(
                f"STATISTICS_RETENTION must be a positive datetime.timedelta or None, "
                f"got {period!r}; use e.g. timedelta(days=90)"
            )
        self.table = table
        self.period = period
        self.interval = interval
        self.max_batches = max_batches
        self.batch_size = batch_size
        self._clock = clock
        self._last_run: float | None = None
        self.deleted = 0

    def __call__(self, engine: sa.Engine) -> None:
        now = self._clock()
        if self._last_run is not None and now - self._last_run < self.interval:
            return
        self._last_run = now
        batches = 0

        def should_stop() -> bool:
            nonlocal batches
            batches += 1
            return batches > self.max_batches

        self.deleted += delete_older_than(
            engine,
            self.table,
            cutoff_before(self.period),
            batch_size=self.batch_size,
            should_stop=should_stop,
        )
