"""The recorded rows matching the dashboard's filters as CSV or JSON Lines, streamed
in constant memory; shared by ``/statistics/export.csv``, ``/statistics/export.jsonl``
and ``flask statistics export``.

Rows are read through a server-side cursor (``stream_results``) a batch at a time
and encoded a batch at a time, so memory does not grow with the number of rows.
Every column of the model that the database table has is exported, oldest row
first (by date, then index). Dates are ISO 8601 in UTC with a ``Z``.

Recorded values are attacker-controlled. CSV cells that a spreadsheet would read as
a formula (starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return) get a
leading ``'``, as OWASP advises; only text cells, so negative numbers stay numbers.
"""

from __future__ import annotations

import csv
import io
import json
import typing as t
from datetime import date, datetime, timezone
from decimal import Decimal

import sqlalchemy as sa
from flask import Response, render_template, stream_with_context

from .filters import Filters
from .forms import FilterForm
from .models import bind_key
from .queries import filter_conditions, row_columns

if t.TYPE_CHECKING:
    from flask import Blueprint

    from .extension import StatisticsState

FORMATS = ("csv", "jsonl")
MEDIA_TYPES = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson; charset=utf-8"}
#: Rows fetched from the database and encoded per step: large enough that per-batch
#: costs vanish, small enough that a batch of long rows stays a few megabytes.
BATCH_ROWS = 2000
#: Characters a spreadsheet reads as the start of a formula (OWASP CSV injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


# ---------------------------------------------------------------------------------
# Reading the rows


def export_query(conn: sa.Connection, table: sa.Table, filters: Filters) -> sa.Select[t.Any]:
    """Every column the table has, for the rows ``filters`` match, oldest first.

    The request log's sort and page do not apply: an export is every matching row.
    """
    return (
        sa.select(*row_columns(conn, table))
        .where(*filter_conditions(conn.dialect, table, filters))
        .order_by(table.c.date.asc(), table.c["index"].asc())
    )


def count_rows(conn: sa.Connection, table: sa.Table, filters: Filters) -> int:
    """How many rows an export of ``filters`` holds."""
    query = (
        sa.select(sa.func.count())
        .select_from(table)
        .where(*filter_conditions(conn.dialect, table, filters))
    )
    return int(conn.execute(query).scalar_one())


class RowStream:
    """The rows of an export, read batch by batch from a server-side cursor.

    Iterating yields lists of rows (tuples in :attr:`columns` order). The query runs
    when the stream is made, so a database error surfaces before any byte is sent.
    :meth:`close` (also on garbage collection of the response, or when a client
    goes away mid-download) releases the cursor and the connection; it is safe to
    call more than once.
    """

    def __init__(self, engine: sa.Engine, table: sa.Table, filters: Filters, batch: int = BATCH_ROWS) -> None:
        self._conn: sa.Connection | None = engine.connect()
        self._done = False
        try:
            conn = self._conn.execution_options(stream_results=True, yield_per=batch)
            query = export_query(conn, table, filters)
            self._result = conn.execute(query)
            self.columns: list[str] = list(self._result.keys())
            self.types: list[t.Any] = [column.type for column in query.selected_columns]
            self._batches = self._result.partitions(batch)
        except BaseException:
            self.close()
            raise

    def __iter__(self) -> RowStream:
        return self

    def __next__(self) -> t.Sequence[t.Any]:
        if self._conn is None:
            raise StopIteration
        try:
            return next(self._batches)
        except StopIteration:
            self._done = True
            self.close()
            raise

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            if not self._done and conn.dialect.name in ("mysql", "mariadb"):
                # Closing an unfinished unbuffered (SSCursor) result reads every row
                # left on the server; dropping the connection ends the query at once.
                # PyMySQL would still try to read the rest when the cursor is freed.
                pending = getattr(getattr(self._result, "cursor", None), "_result", None)
                if getattr(pending, "unbuffered_active", False):
                    pending.unbuffered_active = False
                conn.invalidate()
            else:
                self._result.close()
        finally:
            conn.close()

    def __enter__(self) -> RowStream:
        return self

    def __exit__(self, *exc: t.Any) -> None:
        self.close()


# ---------------------------------------------------------------------------------
# Encoding


def iso_utc(moment: datetime) -> str:
    """``moment`` (naive UTC, or aware) as ISO 8601 UTC with a ``Z``."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment.isoformat(timespec="microseconds") + "Z"


def _plain(value: t.Any) -> t.Any:
    """A database value as a JSON value (str, int, float, bool or None)."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    return str(value)


def csv_cell(value: t.Any) -> t.Any:
    """One CSV cell: text that could start a formula gets a leading ``'``."""
    value = _plain(value)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def _kind(type_: t.Any) -> str:
    """How a column's values are encoded: "number" and "text" values pass as they
    are, "date" becomes ISO 8601, "other" goes through :func:`_plain`."""
    if isinstance(type_, sa.Boolean):
        return "other"
    if isinstance(type_, (sa.Integer, sa.Float)):
        return "number"
    if isinstance(type_, sa.DateTime):
        return "date"
    if isinstance(type_, sa.String):
        return "text"
    return "other"


class _Encoder:
    """Converts only the columns that need it, chosen once from the column types:
    a million rows of 16 columns make any per-cell call add up."""

    def __init__(self, columns: t.Sequence[str], types: t.Sequence[t.Any] | None = None) -> None:
        self.columns = list(columns)
        kinds = [_kind(type_) for type_ in types] if types is not None else ["other"] * len(columns)
        self._dates = [i for i, kind in enumerate(kinds) if kind == "date"]
        self._others = [i for i, kind in enumerate(kinds) if kind == "other"]

    def _convert(self, row: t.Sequence[t.Any]) -> list[t.Any]:
        values = list(row)
        for i in self._dates:
            if values[i] is not None:
                values[i] = iso_utc(values[i])
        for i in self._others:
            values[i] = _plain(values[i])
        return values


class CsvEncoder(_Encoder):
    """CSV (RFC 4180: quoted as needed, CRLF line ends) with a header row. Empty
    cells are NULL; booleans are true and false."""

    def __init__(self, columns: t.Sequence[str], types: t.Sequence[t.Any] | None = None) -> None:
        super().__init__(columns, types)
        self._buffer = io.StringIO()
        self._writer = csv.writer(self._buffer)
        # Every cell but a date is checked: SQLite keeps text even in a column
        # declared INTEGER, so the type alone does not rule a formula out.
        dates = set(self._dates)
        self._checked = [i for i in range(len(self.columns)) if i not in dates]

    def _take(self) -> bytes:
        text = self._buffer.getvalue()
        self._buffer.seek(0)
        self._buffer.truncate()
        # No recorded value holds a lone surrogate; if one did, it must not end the
        # download halfway.
        return text.encode("utf-8", "replace")

    def header(self) -> bytes:
        self._writer.writerow([csv_cell(name) for name in self.columns])
        return self._take()

    def _cells(self, row: t.Sequence[t.Any]) -> list[t.Any]:
        values = self._convert(row)
        for i in self._checked:
            value = values[i]
            if value.__class__ is str:
                if value.startswith(FORMULA_START):
                    values[i] = "'" + value
            elif value is not None and not isinstance(value, (int, float)):
                values[i] = csv_cell(value)
            elif isinstance(value, bool):
                values[i] = "true" if value else "false"
        return values

    def rows(self, rows: t.Iterable[t.Sequence[t.Any]]) -> bytes:
        # csv writes None as an empty cell and numbers with repr().
        self._writer.writerows(map(self._cells, rows))
        return self._take()


class JsonlEncoder(_Encoder):
    """One JSON object per line, keyed by column name; None is null."""

    def __init__(self, columns: t.Sequence[str], types: t.Sequence[t.Any] | None = None) -> None:
        super().__init__(columns, types)
        self._dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode

    def header(self) -> bytes:
        return b""

    def rows(self, rows: t.Iterable[t.Sequence[t.Any]]) -> bytes:
        columns = self.columns
        dumps = self._dumps
        convert = self._convert
        lines = [dumps(dict(zip(columns, convert(row)))) for row in rows]
        if not lines:
            return b""
        # json escapes the line breaks inside strings, so each object is one line.
        return ("\n".join(lines) + "\n").encode("utf-8", "replace")


def encoder(
    fmt: str, columns: t.Sequence[str], types: t.Sequence[t.Any] | None = None
) -> CsvEncoder | JsonlEncoder:
    """The encoder for ``fmt``; without the column ``types`` every value is checked."""
    if fmt == "csv":
        return CsvEncoder(columns, types)
    if fmt == "jsonl":
        return JsonlEncoder(columns, types)
    raise ValueError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")


def encode(fmt: str, stream: RowStream, on_batch: t.Callable[[int], t.Any] | None = None) -> t.Iterator[bytes]:
    """The bytes of the export, one chunk per batch of rows; ``on_batch(n)`` is
    called after each batch of ``n`` rows. Closes ``stream`` when done or closed."""
    try:
        out = encoder(fmt, stream.columns, stream.types)
        head = out.header()
        if head:
            yield head
        for batch in stream:
            chunk = out.rows(batch)
            if on_batch is not None:
                on_batch(len(batch))
            if chunk:
                yield chunk
    finally:
        stream.close()


def filename(filters: Filters, fmt: str) -> str:
    """``statistics-2026-11-19-to-2026-11-25.csv``: the file name carries the range."""
    return f"statistics-{filters.start_day.isoformat()}-to-{filters.end_day.isoformat()}.{fmt}"


def engine_of(state: StatisticsState) -> sa.Engine:
    return t.cast(sa.Engine, state.db.engines[bind_key(state.table)])


# ---------------------------------------------------------------------------------
# The views


def register(blueprint: Blueprint, state_of_app: t.Callable[[], StatisticsState]) -> None:
    """Add ``/export.csv`` and ``/export.jsonl`` to the dashboard blueprint."""
    for fmt in FORMATS:
        blueprint.add_url_rule(
            f"/export.{fmt}", f"export_{fmt}", _view(fmt, state_of_app), methods=["GET"]
        )


def _view(fmt: str, state_of_app: t.Callable[[], StatisticsState]) -> t.Callable[[], Response]:
    def view() -> Response:
        from .views import request_filters

        filters, form = request_filters()
        if filters is None:
            return _bad_filters(form)
        state = state_of_app()
        stream = RowStream(engine_of(state), state.table, filters)
        response = Response(stream_with_context(encode(fmt, stream)), content_type=MEDIA_TYPES[fmt])
        # A response that is never read (HEAD, an error while sending) still frees
        # the connection: the generator's cleanup runs only once it has started.
        response.call_on_close(stream.close)
        # The name is ASCII letters, digits, dashes and dots: quoting it is enough.
        response.headers["Content-Disposition"] = f'attachment; filename="{filename(filters, fmt)}"'
        return response

    view.__name__ = f"export_{fmt}"
    view.__doc__ = f"The rows matching the filters as {fmt.upper()}, streamed."
    return view


def _bad_filters(form: FilterForm) -> Response:
    """The dashboard with the filter form and its messages, as the other views answer."""
    from . import panels
    from .views import PARTIALS

    html = render_template(
        "statistics/index.html",
        filters=None,
        form=form,
        links=panels.Links(None),
        partial=None,
        partials=PARTIALS,
        lazy=False,
    )
    return Response(html, 400, mimetype="text/html")

