"""Which of the model's optional columns the database table really has.

A table created by an earlier version of the default model lacks the columns added
since. Writing or selecting them would fail every INSERT and the dashboard, so the
writer and the dashboard use only the columns found here. Each table is inspected
once per engine; a missing column is reported once, with the statement that adds it.
"""

from __future__ import annotations

import logging
import threading
import weakref

import sqlalchemy as sa

from .models import OPTIONAL_COLUMNS

logger = logging.getLogger("flask_statistics")

_TableKey = tuple[str | None, str]
# Per engine, per table: the lower-cased names of the table's columns in the database.
_found: weakref.WeakKeyDictionary[sa.Engine, dict[_TableKey, frozenset[str]]] = (
    weakref.WeakKeyDictionary()
)
_lock = threading.Lock()
_RECORDS = {"is_bot": "whether the client is a crawler", "route": "the matched URL rule"}


def present_columns(engine: sa.Engine, table: sa.Table) -> frozenset[str] | None:
    """The names of ``table``'s columns to read and write on ``engine``: every column
    but the optional ones the database table lacks.

    None when that cannot be known yet (the table does not exist, or the database did
    not answer); nothing is remembered then, and the next call asks again.
    """
    key = (table.schema, table.name)
    found = _found.get(engine, {}).get(key)
    if found is None:
        found = _inspect(engine, table)
        if found is None:
            return None
        with _lock:
            per_engine = _found.setdefault(engine, {})
            first = key not in per_engine
            found = per_engine.setdefault(key, found)
        if first:
            _warn_missing(engine, table, found)
    return frozenset(
        column.name
        for column in table.columns
        if column.name not in OPTIONAL_COLUMNS or column.name.lower() in found
    )


def _inspect(engine: sa.Engine, table: sa.Table) -> frozenset[str] | None:
    # A connection of its own: a failed query here must not spoil the caller's
    # transaction. Any error is left for the caller's own statement to report.
    try:
        inspector = sa.inspect(engine)
        if not inspector.has_table(table.name, schema=table.schema):
            return None
        columns = inspector.get_columns(table.name, schema=table.schema)
    except Exception:
        logger.debug("could not inspect table %r", table.name, exc_info=True)
        return None
    return frozenset(str(column["name"]).lower() for column in columns)


def _warn_missing(engine: sa.Engine, table: sa.Table, found: frozenset[str]) -> None:
    preparer = engine.dialect.identifier_preparer
    for name in OPTIONAL_COLUMNS:
        if name not in table.c or name.lower() in found:
            continue
        column = table.c[name]
        logger.warning(
            "table %r has no column %r; add it to record %s, then restart the app: "
            "ALTER TABLE %s ADD COLUMN %s %s",
            table.name,
            name,
            _RECORDS.get(name, "it"),
            preparer.format_table(table),
            preparer.format_column(column),
            column.type.compile(dialect=engine.dialect),
        )
