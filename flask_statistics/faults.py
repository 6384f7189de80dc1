"""What a failed write means, and how to say so without repeating recorded data.

Drivers disagree on exception classes (psycopg calls an oversized index row an
``OperationalError``), so the writer never decides by class. A failure is:

- ``CONNECTION``: no connection could be had, or SQLAlchemy's dialect says the
  connection broke. Retried until the database answers.
- ``TABLE``: connected, but an insert of no rows into the table fails too (it is
  missing, or we may not insert). No row is to blame; retried while the app runs.
- ``ROW``: the table takes inserts, so the database refused something in the rows.
  The batch is split until the refused rows are found; the rest are written.
"""

from __future__ import annotations

import re
import typing as t

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

CONNECTION = "connection"
TABLE = "table"
ROW = "row"

# Quoted text in a driver's message may be a recorded value ('Incorrect string value:
# '\xF0...' for column 'path''); column names are kept, anything else is elided.
_QUOTED = re.compile(r"""'[^']*'|"[^"]*"|\([^()]*\)=\([^()]*\)""")
_MAX_MESSAGE = 300


def is_connection_failure(exc: BaseException) -> bool:
    if isinstance(exc, sa_exc.TimeoutError):  # the pool had no connection to give
        return True
    return isinstance(exc, sa_exc.DBAPIError) and bool(exc.connection_invalidated)


def accepts_inserts_probe(table: sa.Table) -> t.Any:
    """An INSERT of no rows: it fails only when the table is missing or closed to us."""
    column = table.c["date"]
    return table.insert().from_select([column], sa.select(sa.null()).where(sa.false()))


def describe(exc: BaseException, table: sa.Table | None = None) -> str:
    """The error's class and the first line of the driver's message, without the
    statement, its parameters or any quoted value that is not a column name."""
    original = getattr(exc, "orig", None)
    source = original if isinstance(original, BaseException) else exc
    args = getattr(source, "args", ())
    if len(args) >= 2 and isinstance(args[0], int) and isinstance(args[1], str):
        text = args[1]  # PyMySQL: (errno, message)
    else:
        text = str(source)
    lines = text.strip().splitlines()
    message = lines[0] if lines else ""
    names: set[str] = set()
    if table is not None:
        names = {c.name.lower() for c in table.columns} | {table.name.lower()}
        names |= {str(c.name).lower() for c in table.constraints if c.name}
        names |= {str(i.name).lower() for i in table.indexes if i.name}

    def elide(match: re.Match[str]) -> str:
        text = match.group(0)
        if text[0] in "'\"" and text[1:-1].lower() in names:
            return text
        return text[0] + "…" + text[-1] if text[0] in "'\"" else "(…)=(…)"

    message = _QUOTED.sub(elide, message)
    if len(message) > _MAX_MESSAGE:
        message = message[:_MAX_MESSAGE] + "…"
    code = _code(source)
    name = type(source).__name__
    label = f"{name} [{code}]" if code else name
    return f"{label}: {message}" if message else label


def _code(error: BaseException) -> str | None:
    for attribute in ("sqlstate", "pgcode", "sqlite_errorname"):
        value = getattr(error, attribute, None)
        if value:
            return str(value)
    args = getattr(error, "args", ())
    if args and isinstance(args[0], int):  # PyMySQL: (errno, message)
        return str(args[0])
    return None
