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

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

from .bulk import ValuesInsert, copy_rows, copy_statement, values_insert
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
        self._values: ValuesInsert | None = None
        self._seconds = False
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
            (i, processor)
            for i, c in enumerate(self.columns)
            if (processor := c.type.dialect_impl(dialect).bind_processor(dialect)) is not None
        ]
        self._dialect = dialect

    def insert(self, conn: sa.Connection, rows: list[t.Any]) -> None:
        """Insert ``rows`` (from :meth:`rows`) on ``conn``, in the current transaction."""
        if self._copy is not None:
            copy_rows(conn, self._copy, rows)
        elif self._values is not None:
            self._values.insert(conn, rows)
        else:
            conn.exec_driver_sql(self.statement, rows)

    def rows(self, records: t.Iterable[Record], facts: list[t.Any] | None = None) -> list[t.Any]:
        """Driver parameters for ``records``: tuples, or dicts for named paramstyles.
        Given ``facts``, appends each record's rollup fact to it (see
        :data:`.rollups.aggregate.Fact`), with the values as they are stored."""
        values = [self.values(record, facts) for record in records]
        if self._named:
            keys = self._keys
            return [dict(zip(keys, row)) for row in values]
        return values

    def values(self, record: Record, facts: list[t.Any] | None = None) -> tuple[t.Any, ...]:
        client = parse(record.user_agent)
        date = datetime.fromtimestamp(record.timestamp, _UTC)
        row: list[t.Any] = [
            record.end - record.start,
            date if self._aware else date.replace(tzinfo=None),
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
        if self._is_bot:
            row.append(client.is_bot)
        if self._route:
            row.append(record.route)
        for i, limit in self._limits:
            value = row[i]
            if value is not None and len(value) > limit:
                row[i] = value[:limit]
        for i in _TEXT:
            value = row[i]
            # PostgreSQL rejects NUL in text; a request can carry one in its path.
            if value and "\x00" in value:
                row[i] = value.replace("\x00", "\ufffd")
        if facts is not None:
            when = date.replace(tzinfo=None)
            if self._seconds:
                when = when.replace(microsecond=0)
            facts.append((
                when, row[2], row[4], row[5], record.route if self._route else None,
                row[0], row[3], row[7], client.is_bot if self._is_bot else None,
                row[10], row[11], row[9],
            ))
        for i, process in self._processors:
            value = row[i]
            if value is not None:
                row[i] = process(value)
        return tuple(row)


#: Positions of the recorded strings in a row (method, path, user agent, address,
#: exception, referrer, browser, platform, mimetype).
_TEXT = (2, 5, 6, 7, 8, 9, 10, 11, 12)
