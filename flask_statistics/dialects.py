"""SQL expressions that each database spells differently: exact text comparison,
integer division, percentiles, time buckets, index hints. Supported: SQLite, PostgreSQL, MySQL 8
and MariaDB 10.2+ (window functions are needed)."""

from __future__ import annotations

import typing as t
from datetime import datetime, timedelta
from fractions import Fraction

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement, UnaryExpression
from sqlalchemy.sql.operators import custom_op
from sqlalchemy.sql.visitors import InternalTraversal

_LIKE_ESCAPE = "/"
_HAIR = Fraction(1, 2**45)
_MICROSECOND = timedelta(microseconds=1)
#: The most buckets :func:`bucket_index` takes. The SQL is written for exactly this
#: many, whatever the window, so its text never grows with the range.
MAX_BUCKETS = 256


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
    SQLite keeps any value in any column: text there (an import's "N/A") is not a
    time, and is read as NULL rather than failing every figure that ranks it.
    """
    if _is_mysql(dialect):
        return sa.type_coerce(column + sa.literal_column("0e0"), sa.Float())
    if dialect.name == "sqlite":
        kind = sa.func.typeof(column)
        numeric = sa.or_(kind == sa.literal_column("'real'"), kind == sa.literal_column("'integer'"))
        return sa.case((numeric, column), else_=sa.null()).self_group()
    return column


def int_div(dialect: Dialect, dividend: ColumnElement[t.Any], divisor: t.Any) -> ColumnElement[int]:
    """Integer division, exact for non-negative operands."""
    # SQLAlchemy's // is FLOOR(a / b) on MySQL, where a / b is a DECIMAL rounded to
    # 4 places: 3599999999 / 3600000000 becomes 1.0000.
    operator = "DIV" if _is_mysql(dialect) else "/"
    # A high precedence makes SQLAlchemy parenthesize compound operands.
    return dividend.op(operator, precedence=100, return_type=sa.BigInteger())(divisor)


def unindexed(dialect: Dialect, column: ColumnElement[t.Any]) -> ColumnElement[t.Any]:
    """``column`` unchanged, except that SQLite (any column) and MySQL/MariaDB (a date
    column) will not use an index to look it up."""
    if dialect.name == "sqlite":
        # A unary + is SQLite's documented way to keep a term away from the planner's
        # indexes; the value and its comparisons are unchanged.
        return UnaryExpression(column, operator=custom_op("+"), type_=column.type)
    if _is_mysql(dialect) and isinstance(column.type, sa.DateTime):
        # Adding nothing makes it an expression, which no index holds.
        return column.op("+", return_type=column.type)(sa.literal_column("INTERVAL 0 SECOND"))
    return column


def percentile_aggregate(
    dialect: Dialect, value: ColumnElement[t.Any], p: Fraction
) -> ColumnElement[t.Any] | None:
    """The nearest-rank ``p`` percentile of ``value`` as an aggregate, on databases that
    have one (PostgreSQL's ``percentile_disc``); None elsewhere."""
    if dialect.name != "postgresql":
        return None
    # percentile_disc takes row ceil(p * n) with p * n in floating point, which can
    # land just above a whole number and skip a row. A fraction a hair below p gives
    # the exact rank for every n below 10**11.
    below = float(p - _HAIR)
    return sa.func.percentile_disc(sa.literal(below, sa.Float())).within_group(value)


def percentile_window(
    dialect: Dialect,
    value: ColumnElement[t.Any],
    p: Fraction,
    partition: ColumnElement[t.Any] | None = None,
) -> ColumnElement[t.Any] | None:
    """The nearest-rank ``p`` percentile of ``value`` over each ``partition`` (all
    rows without one) as a window function, on databases whose ``percentile_disc`` is
    one (MariaDB 10.3.3+): a column of every row, the same for the rows of a partition,
    which the query around them takes the ``max`` of. None elsewhere.

    MariaDB leaves NULLs out and picks the first value whose row number over the
    partition's count is at least p, both doubles: exact below 10**13 values, as is
    ``cume_dist()`` compared with p.
    """
    if not getattr(dialect, "is_mariadb", False):
        return None
    if (dialect.server_version_info or (0,)) < (10, 3, 3):
        return None
    disc = sa.func.percentile_disc(sa.literal(float(p), sa.Float())).within_group(value)
    return disc.over(partition_by=partition)


def bucket_index(
    dialect: Dialect, date: ColumnElement[t.Any], starts: t.Sequence[datetime], until: datetime
) -> ColumnElement[t.Any]:
    """The index (from 0) of the bucket holding ``date``: bucket ``k`` runs from
    ``starts[k]`` up to the next start, the last one up to ``until``.

    Only the parameters depend on the window: the SQL text is the same for any
    number of buckets up to :data:`MAX_BUCKETS`. Dates are compared, never converted,
    so a bucket edge is exact to the microsecond on every database. Expects
    ``starts[0] <= date < until``.
    """
    if not 1 <= len(starts) <= MAX_BUCKETS:
        raise ValueError(f"bucket_index takes 1 to {MAX_BUCKETS} starts, got {len(starts)}")
    if dialect.name == "postgresql":
        # A binary search over one array parameter, in C: nothing for the JIT to
        # compile however many buckets there are.
        array = sa.cast(sa.bindparam(None, list(starts), type_=postgresql.ARRAY(date.type)),
                        postgresql.ARRAY(date.type))
        found = sa.func.width_bucket(date, array, type_=sa.Integer())
        return found - sa.literal_column("1", sa.Integer())
    if _is_mysql(dialect):
        # INTERVAL(n, n1, n2, ...) counts the ni <= n by binary search when they are
        # constants; the offsets are microseconds after the first start. Padding past
        # ``until`` keeps them increasing and the argument count fixed.
        since = starts[0]
        offsets = [(start - since) // _MICROSECOND for start in starts[1:]]
        end = (until - since) // _MICROSECOND
        offsets += [end + k for k in range(1, MAX_BUCKETS - len(starts) + 1)]
        elapsed = sa.func.timestampdiff(
            sa.literal_column("MICROSECOND"), sa.bindparam(None, since, type_=date.type), date
        )
        params = [sa.bindparam(None, offset, type_=sa.BigInteger()) for offset in offsets]
        return sa.func.interval(elapsed, *params, type_=sa.Integer())
    # A binary search written as nested CASEs over MAX_BUCKETS starts, the unused
    # ones at ``until`` where no row reaches them; each date takes log2(MAX_BUCKETS)
    # comparisons. The first start is never compared.
    padded = [*starts[1:], *[until] * (MAX_BUCKETS - len(starts))]
    return _BucketSearch(date, [sa.bindparam(None, start, type_=date.type) for start in padded])


class _BucketSearch(ColumnElement[int]):
    """The nested CASEs of :func:`bucket_index`, rendered as text by one function:
    built from SQLAlchemy's ``case()``, they were 511 objects to make and to walk for
    the cache key, about 13 ms a query."""

    __visit_name__ = "flask_statistics_bucket_search"
    _traverse_internals = [
        ("date", InternalTraversal.dp_clauseelement),
        ("edges", InternalTraversal.dp_clauseelement_list),
    ]
    type = sa.Integer()

    def __init__(self, date: ColumnElement[t.Any], edges: list[sa.BindParameter[t.Any]]) -> None:
        self.date = date
        self.edges = edges

    @property
    def _from_objects(self) -> list[t.Any]:
        return self.date._from_objects


@compiles(_BucketSearch)
def _render_bucket_search(element: _BucketSearch, compiler: t.Any, **kw: t.Any) -> str:
    # edges[k - 1] is where bucket k starts. Each part is rendered in the order it
    # appears in the text, which is the order of positional parameters.
    edges = element.edges

    def search(first: int, last: int) -> str:
        if first == last:
            return str(first)
        middle = (first + last + 1) // 2
        test = f"{compiler.process(element.date, **kw)} < {compiler.process(edges[middle - 1], **kw)}"
        below = search(first, middle - 1)
        return f"CASE WHEN ({test}) THEN {below} ELSE {search(middle, last)} END"

    return search(0, len(edges))


def reading_connection(engine: sa.Engine) -> sa.Connection:
    """A connection for the dashboard's reads.

    On PostgreSQL 11 and later, JIT compilation is off for its transaction (``SET
    LOCAL``, gone when the connection returns to the pool, so the app's own queries
    keep the server's setting). The server compiles any query it costs above
    ``jit_above_cost``: a rollup read at 10,000,000 requests a month spent 79 of its
    251 ms compiling, for a query that runs once.
    """
    conn = engine.connect()
    dialect = conn.dialect
    if dialect.name == "postgresql" and (dialect.server_version_info or (0,)) >= (11,):
        try:
            conn.exec_driver_sql("SET LOCAL jit = off")
        except BaseException:
            conn.close()
            raise
    return conn
