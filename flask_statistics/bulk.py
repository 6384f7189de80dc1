"""Bulk writes: PostgreSQL's COPY (psycopg 3), which takes rows about seven times as
fast as executemany, and SQLite's multi-row VALUES; updates of many rows in one
statement on both; other drivers keep executemany.

SQLite's ``executemany`` releases the GIL around every row it steps, so under load
the writer thread gave up the GIL and waited to get it back once per row: each row
cost a forced thread switch in the app's request threads. One statement of many
rows releases it once per statement.
"""

from __future__ import annotations

import sqlite3
import typing as t
from itertools import chain

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


def copy_rows(
    conn: sa.Connection, statement: str, rows: t.Iterable[t.Sequence[t.Any]],
    meanwhile: t.Callable[[], None] | None = None,
) -> None:
    """Stream ``rows`` (tuples in the statement's column order) through ``statement``
    in the current transaction. Failures are raised as SQLAlchemy raises them, so
    they are judged the same way as those of executemany.

    ``meanwhile``, which must not raise, runs once the rows are sent and before the
    COPY ends, while the server is still storing what it has received."""
    raw = conn.connection.dbapi_connection
    assert raw is not None
    try:
        with raw.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row(row)
            if meanwhile is not None:
                meanwhile()
    except Exception as exc:
        raise _as_sqlalchemy(conn, raw, statement, exc) from exc


def fetch_unprepared(conn: sa.Connection, statement: str, parameters: t.Sequence[t.Any]) -> list[t.Any]:
    """The rows of ``statement`` run by psycopg without a server-side prepared
    statement, so the server plans it for these parameters. A prepared statement
    keeps the generic plan it chose while the table was small: for ``= ANY($1)`` a
    sequential scan that compares every row with every array element, 20 times
    slower than the index once the table has grown."""
    raw = conn.connection.dbapi_connection
    assert raw is not None
    try:
        with raw.cursor() as cursor:
            cursor.execute(statement, parameters, prepare=False)
            return cursor.fetchall()
    except Exception as exc:
        raise _as_sqlalchemy(conn, raw, statement, exc) from exc


def _as_sqlalchemy(conn: sa.Connection, raw: t.Any, statement: str, exc: Exception) -> sa.exc.DBAPIError:
    # Raised as SQLAlchemy raises a driver's error, so it is judged the same way.
    broken = bool(getattr(raw, "broken", False) or getattr(raw, "closed", False))
    if broken:
        conn.invalidate(exc)
    return sa.exc.DBAPIError.instance(
        statement, None, exc, Exception, hide_parameters=True,
        connection_invalidated=broken, dialect=conn.dialect,
    )


#: Rows per SQLite INSERT: enough to make switches rare, few enough that the
#: statement stays small to prepare and its parameters within SQLite's limit.
SQLITE_ROWS_PER_STATEMENT = 200
#: Rows per set-based UPDATE: few statements, parameters well within the limits.
UPDATE_ROWS_PER_STATEMENT = 500


class ManyValues:
    """A statement whose ``VALUES`` list carries many rows (``head``, then ``group``
    once per row, then ``tail``), sent as few statements as SQLite's parameter
    limit and ``most`` rows a statement allow."""

    def __init__(self, head: str, group: str, tail: str, columns: int, most: int) -> None:
        self._head = head
        self._group = group
        self._tail = tail
        self._per_statement = max(1, min(most, _sqlite_variables() // columns))
        self._full = self._statement(self._per_statement)

    def _statement(self, rows: int) -> str:
        return self._head + ", ".join([self._group] * rows) + self._tail

    def run(self, conn: sa.Connection, rows: t.Sequence[t.Sequence[t.Any]]) -> None:
        step = self._per_statement
        for start in range(0, len(rows), step):
            chunk = rows[start : start + step]
            statement = self._full if len(chunk) == step else self._statement(len(chunk))
            conn.exec_driver_sql(statement, tuple(chain.from_iterable(chunk)))

    # As an INSERT (rows.py, the rollup store) and as an UPDATE (values_update).
    insert = update = run


def values_insert(statement: str, columns: int, dialect: t.Any) -> ManyValues | None:
    """``statement`` (an ``INSERT … VALUES (?, …)``) many rows at a time, on SQLite's
    own driver; else None."""
    if dialect.name != "sqlite" or dialect.driver != "pysqlite" or dialect.paramstyle != "qmark":
        return None
    head, found, group = statement.rpartition("VALUES")
    if not found:
        raise ValueError(f"not an INSERT … VALUES statement: {statement!r}")
    return ManyValues(head + "VALUES ", group.strip(), "", columns, SQLITE_ROWS_PER_STATEMENT)


def _sqlite_variables() -> int:
    # The most parameters one statement may carry in the SQLite Python links against.
    return 32766 if sqlite3.sqlite_version_info >= (3, 32, 0) else 999


class ArraysUpdate:
    """``UPDATE table SET … FROM unnest(arrays)`` on PostgreSQL: one short statement
    that the driver prepares once, with one array of values per column."""

    def __init__(
        self, table: sa.Table, key: sa.Column[t.Any], columns: t.Sequence[sa.Column[t.Any]], dialect: t.Any
    ) -> None:
        quote = dialect.identifier_preparer
        types = dialect.type_compiler_instance
        name = quote.format_table(table)
        names = [f"v{i}" for i in range(len(columns) + 1)]
        # Each array is cast to its column's type, whatever type the driver gives a
        # list (of NULLs only, of small integers).
        # Sent in binary (%b): text arrays are escaped value by value, in Python.
        arrays = ", ".join(f"%b::{types.process(c.type)}[]" for c in (key, *columns))
        sets = ", ".join(f"{quote.format_column(c)} = v.{n}" for c, n in zip(columns, names[1:]))
        self._statement = (
            f"UPDATE {name} SET {sets} FROM unnest({arrays}) AS v ({', '.join(names)}) "
            f"WHERE {name}.{quote.format_column(key)} = v.{names[0]}"
        )

    def update(self, conn: sa.Connection, rows: t.Sequence[t.Sequence[t.Any]]) -> None:
        if rows:
            conn.exec_driver_sql(self._statement, tuple(list(column) for column in zip(*rows)))


def values_update(
    table: sa.Table, key: sa.Column[t.Any], columns: t.Sequence[sa.Column[t.Any]], dialect: t.Any
) -> ManyValues | ArraysUpdate | None:
    """An UPDATE setting ``columns`` of the rows of ``table`` whose ``key`` is each
    row's first value (the others follow in ``columns`` order), many rows a statement:
    on PostgreSQL (psycopg) and SQLite 3.33 or later; else None."""
    if dialect.name == "postgresql" and dialect.driver == "psycopg":
        return ArraysUpdate(table, key, columns, dialect)
    quote = dialect.identifier_preparer
    name = quote.format_table(table)
    if (
        dialect.name == "sqlite" and dialect.driver == "pysqlite"
        and dialect.paramstyle == "qmark" and sqlite3.sqlite_version_info >= (3, 33, 0)
    ):
        # SQLite names the columns of a VALUES list column1, column2, …
        sets = ", ".join(
            f"{quote.format_column(c)} = v.column{i}" for i, c in enumerate(columns, start=2)
        )
        return ManyValues(
            f"UPDATE {name} SET {sets} FROM (VALUES ",
            "(" + ", ".join(["?"] * (len(columns) + 1)) + ")",
            f") AS v WHERE {name}.{quote.format_column(key)} = v.column1",
            len(columns) + 1,
            UPDATE_ROWS_PER_STATEMENT,
        )
    return None

