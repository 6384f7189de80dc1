"""Bulk inserts: PostgreSQL's COPY (psycopg 3), which takes rows about seven times as
fast as executemany, and SQLite's multi-row VALUES; other drivers keep executemany.

SQLite's ``executemany`` releases the GIL around every row it steps, so under load
the writer thread gave up the GIL and waited to get it back once per row: each row
cost a forced thread switch in the app's request threads. One statement of many
rows releases it once per statement.
"""

from __future__ import annotations

import sqlite3
import typing as t

import sqlalchemy as sa


def copy_statement(table: sa.Table, columns: t.Sequence[sa.Column[t.Any]], dialect: t.Any) -> str | None:
    """``COPY table (columns) FROM STDIN`` where the driver can stream it, else None."""
    if dialect.name != "postgresql" or dialect.driver != "psycopg":
        return None
    quote = dialect.identifier_preparer
    return (
        f"COPY {quote.format_table(table)} "
        f"({', '.join(quote.format_column(c) for c in columns)}) FROM STDIN"
    )


def copy_rows(conn: sa.Connection, statement: str, rows: t.Iterable[t.Sequence[t.Any]]) -> None:
    """Stream ``rows`` (tuples in the statement's column order) through ``statement``
    in the current transaction. Failures are raised as SQLAlchemy raises them, so
    they are judged the same way as those of executemany."""
    raw = conn.connection.dbapi_connection
    assert raw is not None
    try:
        with raw.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row(row)
    except Exception as exc:
        broken = bool(getattr(raw, "broken", False) or getattr(raw, "closed", False))
        if broken:
            conn.invalidate(exc)
        raise sa.exc.DBAPIError.instance(
            statement, None, exc, Exception, hide_parameters=True,
            connection_invalidated=broken, dialect=conn.dialect,
        ) from exc


#: Rows per SQLite INSERT: enough to make switches rare, few enough that the
#: statement stays small to prepare and its parameters within SQLite's limit.
SQLITE_ROWS_PER_STATEMENT = 200


class ValuesInsert:
    """An ``INSERT … VALUES (?, …)`` for SQLite, sent many rows per statement."""

    def __init__(self, statement: str, columns: int) -> None:
        head, found, group = statement.rpartition("VALUES")
        if not found:
            raise ValueError(f"not an INSERT … VALUES statement: {statement!r}")
        self._head = head + "VALUES "
        self._group = group.strip()
        self._per_statement = max(1, min(SQLITE_ROWS_PER_STATEMENT, _sqlite_variables() // columns))
        self._full = self._statement(self._per_statement)

    def _statement(self, rows: int) -> str:
        return self._head + ", ".join([self._group] * rows)

    def insert(self, conn: sa.Connection, rows: t.Sequence[t.Sequence[t.Any]]) -> None:
        step = self._per_statement
        for start in range(0, len(rows), step):
            chunk = rows[start : start + step]
            statement = self._full if len(chunk) == step else self._statement(len(chunk))
            conn.exec_driver_sql(statement, tuple(v for row in chunk for v in row))


def values_insert(statement: str, columns: int, dialect: t.Any) -> ValuesInsert | None:
    """A :class:`ValuesInsert` for ``statement`` on SQLite's own driver, else None."""
    if dialect.name != "sqlite" or dialect.driver != "pysqlite" or dialect.paramstyle != "qmark":
        return None
    return ValuesInsert(statement, columns)


def _sqlite_variables() -> int:
    # The most parameters one statement may carry in the SQLite Python links against.
    return 32766 if sqlite3.sqlite_version_info >= (3, 32, 0) else 999
