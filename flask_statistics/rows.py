"""Turns captured records into insert parameters for one table: the user-agent
parse, the mimetype, values cut to what each column holds, and the database's own
conversions, applied in one tight loop per row.

The writer hands the rows straight to the driver's ``executemany``: going through
SQLAlchemy's per-row parameter handling cost as much as building the rows.
"""

from __future__ import annotations

import typing as t
from datetime import datetime, timezone
from functools import lru_cache

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

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
        names = [n for n in REQUIRED_COLUMNS if n != "index"]
        names += [n for n in OPTIONAL_COLUMNS if n in table.c]
        self.names = names
        self.columns = [table.c[name] for name in names]
        self._limits = [
            (i, column.type.length)
            for i, column in enumerate(self.columns)
            if isinstance(column.type, sa.String) and column.type.length
        ]
        self._aware = bool(getattr(table.c["date"].type, "timezone", False))
        self._is_bot = "is_bot" in table.c
        self._dialect: Dialect | None = None
        self._processors: list[tuple[int, t.Callable[[t.Any], t.Any]]] = []
        self.statement = ""
        self._named = False

    def prepare(self, dialect: Dialect) -> None:
        """Compile the INSERT for ``dialect`` and look up its value conversions."""
        if self._dialect is dialect:
            return
        insert = self.table.insert().values(
            {c.key: sa.bindparam(f"p{i}", type_=c.type) for i, c in enumerate(self.columns)}
        )
        compiled = insert.compile(dialect=dialect)
        self.statement = str(compiled)
        order = [int(name[1:]) for name in compiled.positiontup or ()] if compiled.positional else None
        if order is not None and order != list(range(len(self.columns))):
            raise RuntimeError(f"unexpected parameter order {order} for {self.table.name}")
        self._named = not compiled.positional
        self._processors = [
            (i, processor)
            for i, c in enumerate(self.columns)
            if (processor := c.type.dialect_impl(dialect).bind_processor(dialect)) is not None
        ]
        self._dialect = dialect

    def rows(self, records: t.Iterable[Record]) -> list[t.Any]:
        """Driver parameters for ``records``: tuples, or dicts for named paramstyles."""
        values = [self.values(record) for record in records]
        if self._named:
            keys = [f"p{i}" for i in range(len(self.columns))]
            return [dict(zip(keys, row)) for row in values]
        return values

    def values(self, record: Record) -> tuple[t.Any, ...]:
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
        for i, limit in self._limits:
            value = row[i]
            if value is not None and len(value) > limit:
                row[i] = value[:limit]
        for i in _TEXT:
            value = row[i]
            # PostgreSQL rejects NUL in text; a request can carry one in its path.
            if value and "\x00" in value:
                row[i] = value.replace("\x00", "\ufffd")
        for i, process in self._processors:
            value = row[i]
            if value is not None:
                row[i] = process(value)
        return tuple(row)


#: Positions of the recorded strings in a row (method, path, user agent, address,
#: exception, referrer, browser, platform, mimetype).
_TEXT = (2, 5, 6, 7, 8, 9, 10, 11, 12)
