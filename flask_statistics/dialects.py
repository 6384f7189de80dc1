"""SQL expressions that each database spells differently: exact text comparison,
time offsets in whole microseconds, integer division. Supported: SQLite, PostgreSQL,
MySQL 8 and MariaDB 10.2+ (window functions are needed)."""

from __future__ import annotations

import typing as t
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.elements import ColumnElement

_EPOCH = datetime(1970, 1, 1)
_MICROSECOND = timedelta(microseconds=1)
_LIKE_ESCAPE = "/"


def _is_mysql(dialect: Dialect) -> bool:
    return dialect.name in ("mysql", "mariadb")


def exact_text(dialect: Dialect, column: ColumnElement[t.Any]) -> ColumnElement[t.Any]:
    """``column`` compared, grouped and ordered by code point, case and trailing spaces
    included, like Python strings.

    MySQL/MariaDB's default collations ignore case and trailing spaces, so "/About"
    and "/about " would count as one path; PostgreSQL orders by locale.
    """
    if _is_mysql(dialect):
        mariadb = getattr(dialect, "is_mariadb", False)
        binary = "utf8mb4_nopad_bin" if mariadb else "utf8mb4_0900_bin"
        return sa.collate(sa.cast(column, mysql.CHAR(charset="utf8mb4")), binary)
    if dialect.name == "postgresql":
        return sa.collate(column, "C")
    return column


def text_equals(dialect: Dialect, column: ColumnElement[t.Any], value: str) -> ColumnElement[bool]:
    """``column = value`` exactly, still letting the database use an index on it."""
    if _is_mysql(dialect):
        # The plain comparison can use the column's index; the binary one removes
        # the rows that are equal only ignoring case or trailing spaces.
        return sa.and_(column == value, exact_text(dialect, column) == value)
    return column == value


def like_prefix_pattern(prefix: str) -> str:
    """A LIKE pattern matching ``prefix`` literally, for ``ESCAPE '/'``."""
    escaped = (
        prefix.replace(_LIKE_ESCAPE, _LIKE_ESCAPE * 2)
        .replace("%", _LIKE_ESCAPE + "%")
        .replace("_", _LIKE_ESCAPE + "_")
    )
    return escaped + "%"


def text_startswith(
    dialect: Dialect, column: ColumnElement[t.Any], prefix: str
) -> ColumnElement[bool]:
    """``column`` begins with ``prefix``, case-sensitively; % and _ are literal."""
    if dialect.name == "sqlite":
        # SQLite's LIKE ignores ASCII case; compare the leading characters instead.
        return sa.func.substr(column, 1, len(prefix)) == prefix
    pattern = like_prefix_pattern(prefix)
    like = column.like(pattern, escape=_LIKE_ESCAPE)
    if _is_mysql(dialect):
        return sa.and_(like, exact_text(dialect, column).like(pattern, escape=_LIKE_ESCAPE))
    return like


def as_double(dialect: Dialect, column: ColumnElement[t.Any]) -> ColumnElement[t.Any]:
    """``column`` as a double-precision value.

    MySQL/MariaDB send a single-precision FLOAT column (SQLAlchemy's ``Float``) as
    text rounded to 6 digits; in arithmetic it is exact, so make it arithmetic.
    """
    if _is_mysql(dialect):
        return sa.type_coerce(column + sa.literal_column("0e0"), sa.Float())
    return column


def int_div(dialect: Dialect, dividend: ColumnElement[t.Any], divisor: t.Any) -> ColumnElement[int]:
    """Integer division, exact for non-negative operands."""
    # SQLAlchemy's // is FLOOR(a / b) on MySQL, where a / b is a DECIMAL rounded to
    # 4 places: 3599999999 / 3600000000 becomes 1.0000.
    operator = "DIV" if _is_mysql(dialect) else "/"
    # A high precedence makes SQLAlchemy parenthesize compound operands.
    return dividend.op(operator, precedence=100, return_type=sa.BigInteger())(divisor)


def least(dialect: Dialect, a: t.Any, b: t.Any) -> ColumnElement[t.Any]:
    """The smaller of two values (SQLite spells LEAST as a two-argument MIN)."""
    if dialect.name == "sqlite":
        return sa.func.min(a, b)
    return sa.func.least(a, b)


def micros_since(
    dialect: Dialect, column: ColumnElement[t.Any], start: datetime
) -> ColumnElement[int]:
    """Whole microseconds from ``start`` (naive UTC) to the naive DateTime ``column``,
    computed exactly and independently of the session's time zone."""
    if dialect.name == "sqlite":
        # SQLAlchemy stores "YYYY-MM-DD HH:MM:SS.ffffff". SQLite's date functions
        # round to milliseconds (so 00:59:59.9999 would land in the next hour), so
        # take whole seconds from strftime and the microseconds from the text.
        seconds = sa.cast(sa.func.strftime("%s", sa.func.substr(column, 1, 19)), sa.BigInteger)
        fraction = sa.func.substr(column, 21, type_=sa.String()).op("||")("000000")
        micros = sa.cast(sa.func.substr(fraction, 1, 6), sa.BigInteger)
        start_micros = (start - _EPOCH) // _MICROSECOND
        return seconds * 1_000_000 + micros - start_micros
    if dialect.name == "postgresql":
        # EXTRACT returns an exact numeric with 6 decimals on PostgreSQL 14+.
        interval = column - sa.cast(start, sa.DateTime())
        return sa.cast(sa.extract("epoch", interval) * 1_000_000, sa.BigInteger)
    if _is_mysql(dialect):
        # Unlike UNIX_TIMESTAMP, TIMESTAMPDIFF on DATETIME ignores the session zone.
        return sa.func.timestampdiff(
            sa.literal_column("MICROSECOND"), start, column, type_=sa.BigInteger()
        )
    raise NotImplementedError(
        f"the statistics dashboard supports SQLite, PostgreSQL, MySQL and MariaDB, "
        f"not {dialect.name!r}"
    )

