"""Turns captured records into insert parameters for one table: the user-agent
parse, the mimetype, values cut to what each column holds, and the database's own
conversions, applied in one tight loop per row.

The writer hands the rows straight to the driver (see :mod:`.bulk`): going through
SQLAlchemy's per-row parameter handling cost as much as building the rows.
"""

from __future__ import annotations

import typing as t
from datetime import datetime, timezone
from functools import lru_cache
from math import modf

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite as _sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.engine import processors as _processors

from .bulk import ManyValues, copy_rows, copy_statement, values_insert
from .capture import Record
from .models import OPTIONAL_COLUMNS, REQUIRED_COLUMNS
from .useragent import parse

_UTC = timezone.utc


@lru_cache(maxsize=256)  # an app sends a handful of Content-Types
def mimetype(content_type: str | None) -> str | None:
    if not content_type:
        return None
    return content_type.partition(";")[0].strip().lower() or None


class RowBuilder:
    """Insert parameters for ``table``, one tuple per record, in ``self.names`` order."""

    def __init__(self, table: sa.Table) -> None:
        self.table = table
        self._optional = [n for n in OPTIONAL_COLUMNS if n in table.c]
        self._aware = bool(getattr(table.c["date"].type, "timezone", False))
        self._dialect: Dialect | None = None
        self._processors: list[tuple[int, t.Callable[[t.Any], t.Any]]] = []
        self.statement = ""
        self._named = False
        self._copy: str | None = None
        self._values: ManyValues | None = None
        self._seconds = False
        self._stamp = _Stamp()
        self._use(self._optional)

    def _use(self, optional: list[str]) -> None:
        names = [n for n in REQUIRED_COLUMNS if n != "index"]
        # Each column keeps its parameter name whichever optional columns are written.
        numbers = list(range(len(names)))
        numbers += [len(names) + self._optional.index(n) for n in optional]
        names += optional
        self.names = names
        self.columns = [self.table.c[name] for name in names]
        self._keys = [f"p{n}" for n in numbers]
        self._limits = [
            (i, column.type.length)
            for i, column in enumerate(self.columns)
            if isinstance(column.type, sa.String) and column.type.length
        ]
        self._is_bot = "is_bot" in optional
        limits = dict(self._limits)
        #: (position, length limit or 0, whether it is a recorded string) of each
        #: string that may need cutting or cleaning.
        self._texts = [
            (i, limits.get(i, 0), i in _TEXT) for i in sorted(set(limits) | set(_TEXT))
        ]
        self._route = "route" in optional
        self._dialect = None

    def prepare(self, dialect: Dialect, present: t.Collection[str] | None = None) -> None:
        """Compile the INSERT for ``dialect`` and look up its value conversions.

        ``present`` names the columns the database table has (see
        :func:`.schema.present_columns`); the model's optional columns outside it
        are not written. None writes all of them.
        """
        optional = [n for n in self._optional if present is None or n in present]
        if optional != self.names[len(REQUIRED_COLUMNS) - 1 :]:
            self._use(optional)
        if self._dialect is dialect:
            return
        insert = self.table.insert().values(
            {c.key: sa.bindparam(key, type_=c.type) for key, c in zip(self._keys, self.columns)}
        )
        compiled = insert.compile(dialect=dialect)
        self.statement = str(compiled)
        order = list(compiled.positiontup or ()) if compiled.positional else None
        if order is not None and order != self._keys:
            raise RuntimeError(f"unexpected parameter order {order} for {self.table.name}")
        self._named = not compiled.positional
        self._copy = copy_statement(self.table, self.columns, dialect)
        if self._copy is not None:
            self._named = False
        self._values = None if self._named else values_insert(self.statement, len(self.columns), dialect)
        # MariaDB keeps whole seconds in a DATETIME without a fraction, cutting the rest.
        fsp = getattr(self.table.c["date"].type, "fsp", None)
        self._seconds = dialect.name in ("mysql", "mariadb") and not fsp
        self._processors = [
            (i, fast)
            for i, c in enumerate(self.columns)
            if (processor := c.type.dialect_impl(dialect).bind_processor(dialect)) is not None
            and (fast := _fast_processor(c, i, dialect, processor)) is not None
        ]
        self._dialect = dialect

    @property
    def streams(self) -> bool:
        """Whether :meth:`insert` streams the rows (PostgreSQL's COPY), so that work
        given as its ``meanwhile`` overlaps the server's."""
        return self._copy is not None

    def insert(
        self, conn: sa.Connection, rows: t.Iterable[t.Any], meanwhile: t.Callable[[], None] | None = None
    ) -> None:
        """Insert ``rows`` (from :meth:`rows`) on ``conn``, in the current transaction;
        run ``meanwhile`` (which must not raise) while a streamed insert finishes.
        ``rows`` is iterated once, as it is sent, only where :attr:`streams`;
        elsewhere it must be a list."""
        if self._copy is not None:
            copy_rows(conn, self._copy, rows, meanwhile)
            return
        if meanwhile is not None:
            meanwhile()
        assert isinstance(rows, list)
        if self._values is not None:
            self._values.insert(conn, rows)
        else:
            conn.exec_driver_sql(self.statement, rows)

    def rows(self, records: t.Iterable[Record], facts: list[t.Any] | None = None) -> list[t.Any]:
        """Driver parameters for ``records``: tuples, or dicts for named paramstyles.
        Given ``facts``, appends each record's rollup fact to it (see
        :data:`.rollups.aggregate.Fact`), with the values as they are stored."""
        # One loop with everything it reads in locals: the writer spends its time
        # here, on every request the app serves.
        aware = self._aware
        seconds = self._seconds
        is_bot = self._is_bot
        with_route = self._route
        texts = self._texts
        processors = self._processors
        stamp = self._stamp
        values: list[tuple[t.Any, ...]] = []
        for record in records:
            client = parse(record.user_agent)
            frac, whole = modf(record.timestamp)
            micro = round(frac * 1e6)
            if whole != stamp.second or not 0 <= micro < 1_000_000:
                micro = stamp.move(whole, micro)
            date = datetime(*stamp.fields, micro)
            row: list[t.Any] = [
                record.end - record.start,
                datetime(*stamp.fields, micro, _UTC) if aware else date,
                record.method,
                record.size,
                record.status_code,
                record.path,
                record.user_agent,
                record.remote_address,
                record.exception,
                record.referrer,
                client.browser,
                client.platform,
                mimetype(record.content_type),
            ]
            if is_bot:
                row.append(client.is_bot)
            if with_route:
                row.append(record.route)
            for i, limit, text in texts:
                value = row[i]
                if value:
                    if limit and len(value) > limit:
                        value = row[i] = value[:limit]
                    # PostgreSQL rejects NUL in text; a request can carry one in its path.
                    if text and "\x00" in value:
                        row[i] = value.replace("\x00", "\ufffd")
            if facts is not None:
                facts.append((
                    stamp.start if seconds else date, row[2], row[4], row[5],
                    record.route if with_route else None, row[0], row[3], row[7],
                    client.is_bot if is_bot else None, row[10], row[11], row[9],
                ))
            for i, process in processors:
                value = row[i]
                if value is not None:
                    row[i] = process(value)
            values.append(tuple(row))
        if self._named:
            keys = self._keys
            return [dict(zip(keys, row)) for row in values]
        return values


class _Stamp:
    """The second the writer's records are in: arrival times come as seconds since
    the epoch, in order, and turning one into a date the way
    ``datetime.fromtimestamp(ts, timezone.utc)`` does (microseconds rounded half to
    even) costs a fraction when the date of its whole second is already known."""

    __slots__ = ("second", "fields", "start")

    def __init__(self) -> None:
        self.second = float("nan")  # equal to nothing
        self.fields: tuple[int, ...] = ()
        #: The second's first instant, naive UTC.
        self.start = datetime.min

    def move(self, whole: float, micro: int) -> int:
        """Make ``whole`` (plus a carry out of ``micro``) the current second; returns
        the microseconds within it."""
        if micro >= 1_000_000:
            whole += 1.0
            micro -= 1_000_000
        elif micro < 0:
            whole -= 1.0
            micro += 1_000_000
        if whole != self.second:
            start = datetime.fromtimestamp(whole, _UTC).replace(tzinfo=None)
            self.fields = (start.year, start.month, start.day, start.hour, start.minute, start.second)
            self.start = start
            self.second = whole
        return micro


def _fast_processor(
    column: sa.Column[t.Any], position: int, dialect: Dialect, process: t.Callable[[t.Any], t.Any]
) -> t.Callable[[t.Any], t.Any] | None:
    """``process`` for the values this module puts at ``position``, or a cheaper
    function giving the same results; None where it changes nothing."""
    if position == 0 and process is getattr(_processors, "to_float", None):
        return None  # response times are floats already
    if position == 1 and _default_sqlite_datetime(column, dialect):
        # The same text as SQLAlchemy's storage format, from C: dates here are naive.
        return _sqlite_datetime
    if column.name == "is_bot":
        # Three possible values: look the results up.
        results = {value: process(value) for value in (True, False)}
        return results.__getitem__
    return process


def _default_sqlite_datetime(column: sa.Column[t.Any], dialect: Dialect) -> bool:
    if dialect.name != "sqlite" or getattr(column.type, "timezone", False):
        return False
    impl = column.type.dialect_impl(dialect)
    return type(impl) is _sqlite.DATETIME and impl._storage_format == _sqlite.DATETIME._storage_format


def _sqlite_datetime(value: datetime) -> str:
    return value.isoformat(" ", "microseconds")


#: Positions of the recorded strings in a row (method, path, user agent, address,
#: exception, referrer, browser, platform, mimetype).
_TEXT = (2, 5, 6, 7, 8, 9, 10, 11, 12)
