"""``flask statistics``: prune old rows, erase one client's rows, export rows, show
the state.

Output is for people; exit codes are for scripts: 0 when the work was done, 1 when the
database could not be read or written, 2 for bad arguments.
"""

from __future__ import annotations

import contextlib
import os
import sys
import typing as t
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

import click
import sqlalchemy as sa
from flask import Flask, current_app
from flask.cli import AppGroup
from sqlalchemy import exc as sa_exc

from .filters import local_midnight_utc, zone
from .formatting import filesize, number
from .models import bind_key
from .privacy import KeyRing, address_forms, keys_table, truncate_address
from .retention import (
    DURATION_FORMAT,
    count_older_than,
    cutoff_before,
    delete_older_than,
    delete_where,
    parse_duration,
)

if t.TYPE_CHECKING:
    from .extension import StatisticsState

statistics_cli = AppGroup(
    "statistics",
    help="Prune, erase and inspect the recorded requests.",
)

FLUSH_TIMEOUT = 10.0


class Duration(click.ParamType):
    name = "duration"

    def convert(self, value: t.Any, param: t.Any, ctx: t.Any) -> timedelta:
        if isinstance(value, timedelta):
            return value
        try:
            return parse_duration(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def register(app: Flask) -> None:
    """Add ``flask statistics`` to ``app``'s command line (once)."""
    if app.cli.commands.get("statistics") is not statistics_cli:
        app.cli.add_command(statistics_cli)


@statistics_cli.command("prune")
@click.option(
    "--older-than",
    "older_than",
    type=Duration(),
    required=True,
    help=f"Delete rows recorded longer ago than this: {DURATION_FORMAT}.",
)
@click.option("--dry-run", is_flag=True, help="Only count the rows that would be deleted.")
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=500,
    show_default=True,
    help="Rows deleted per transaction.",
)
def prune(older_than: timedelta, dry_run: bool, batch_size: int) -> None:
    """Delete old rows, in small batches."""
    state, engine = _state_and_engine()
    cutoff = cutoff_before(older_than)
    since = f"before {_utc(cutoff)}"
    with _database_errors("count the old rows"):
        total = count_older_than(engine, state.table, cutoff)
    if dry_run:
        click.echo(f"Would delete {_rows(total)} recorded {since}.")
        return
    if total == 0:
        click.echo(f"Nothing to delete: no rows recorded {since}.")
        return
    with _database_errors("delete the old rows"):
        with click.progressbar(length=total, label="Deleting", file=sys.stderr) as bar:
            deleted = delete_older_than(
                engine, state.table, cutoff, batch_size=batch_size, on_batch=bar.update
            )
    click.echo(f"Deleted {_rows(deleted)} recorded {since}.")


@statistics_cli.command("rebuild")
@click.option(
    "--since",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="Rebuild from this day on (YYYY-MM-DD, in STATISTICS_TIMEZONE); "
    "default: every day that has rows.",
)
def rebuild(since: datetime | None) -> None:
    """Recompute the dashboard's rollups from the recorded rows.

    Run it after rows reached the table some other way: an import, a restore, a
    migration from flask-statistics 1.x. Creates the rollup tables if they are
    missing. Days whose rows were pruned keep their rollups. Safe while the app runs:
    each day is rebuilt in one transaction, under the lock the writers take.
    """
    from .rollups.compact import close_periods
    from .rollups.rebuild import days_with_rows, first_day_after, rebuild_day, today_start

    state, engine = _state_and_engine()
    store = state.rollups
    if store is None:
        raise click.ClickException("this app keeps no rollups")
    zone_name = state.backfill.zone_name if state.backfill is not None else "UTC"
    tz = zone(zone_name)
    with _database_errors("create the rollup tables"):
        store.create(engine)
        store.ensure_state(engine, zone_name, first_day_after(tz), open_from=today_start(tz))
    state.writer.flush(FLUSH_TIMEOUT)
    start = None if since is None else local_midnight_utc(since.date(), tz)
    with _database_errors(f"read table {state.table.name!r}"):
        days = days_with_rows(engine, state.table, tz, start, None)
    read = 0
    with _database_errors("rebuild the rollups"):
        with click.progressbar(days, label="Rebuilding", file=sys.stderr) as bar:
            for day in bar:
                read += rebuild_day(engine, store, day, tz)
        with engine.begin() as conn:
            store.lock(conn)
            current = store.read_state(conn)
            changes: dict[str, t.Any] = {}
            if current is not None:
                if start is None or (current.backfill_from is not None and start <= current.backfill_from):
                    changes["backfill_before"] = None
                if current.stale_since is not None and (start is None or start <= current.stale_since):
                    changes["stale_since"] = None
                if start is None and current.zone != zone_name:
                    changes["zone"] = zone_name
            if changes:
                store.set_state(conn, **changes)
        # Months and years whose days were rebuilt are merged again, so long ranges stay fast.
        close_periods(engine, store, zone_name)
    first = f" from {since.date().isoformat()}" if since is not None else ""
    click.echo(
        f"Rebuilt the rollups of {number(len(days))} day{'s' if len(days) != 1 else ''}"
        f"{first} from {_rows(read)}."
    )


@statistics_cli.command("forget")
@click.argument("address")
def forget(address: str) -> None:
    """Erase every row of one client ADDRESS.

    With STATISTICS_ANONYMIZE_IP = "truncate" the rows of its whole network are
    erased (that is all that was stored); with "hash", the rows hashed under every
    day key still kept. Rows stored before anonymisation was switched on, with the
    address as it was, are erased too.
    """
    address = address.strip()
    if not address:
        raise click.BadParameter("give the client's address, e.g. 203.0.113.7", param_hint="ADDRESS")
    state, engine = _state_and_engine()
    if not state.writer.flush(FLUSH_TIMEOUT):
        click.echo(
            f"Warning: rows still queued after {FLUSH_TIMEOUT:g} s are not erased; "
            "run this again once the writer has caught up.",
            err=True,
        )
    mode = current_app.config.get("STATISTICS_ANONYMIZE_IP")
    values = address_forms(address)
    note = ""
    if mode == "truncate":
        network = truncate_address(address)
        if network is not None:
            values.append(network)
            note = f" (addresses are stored truncated: every client in {_network(network)})"
    elif mode == "hash":
        keyring = getattr(state, "keyring", None) or KeyRing(keys_table(state.table))
        with _database_errors("read the address-hash keys"):
            keyring.sync(engine)
        hashes = [h for form in address_forms(address) for h in keyring.hashes_of(form)]
        values.extend(hashes)
        days = len(keyring.days())
        note = f" (hashed under the {days} day key{'s' if days != 1 else ''} still kept)"
    column = state.table.c["remote_address"]
    condition = column.in_(list(dict.fromkeys(values)))
    with _database_errors("erase the rows"):
        erased = delete_where(engine, state.table, condition)
    click.echo(f"Erased {_rows(erased)} of {address}{note}.")


@statistics_cli.command("status")
def status() -> None:
    """Show the writer's health, the rows stored and the table's size."""
    state, engine = _state_and_engine()
    table = state.table
    config = current_app.config
    health = state.writer.health()
    with _database_errors(f"read table {table.name!r}"):
        with engine.connect() as conn:
            count, oldest, newest = conn.execute(
                sa.select(sa.func.count(), sa.func.min(table.c["date"]), sa.func.max(table.c["date"]))
            ).one()
    size = table_size(engine, table)
    retention = config.get("STATISTICS_RETENTION")
    rollups = _rollup_status(engine, state)
    lines = [
        ("table", f"{table.name} on {engine.url.render_as_string(hide_password=True)}"),
        ("rows", number(count)),
        ("oldest", _utc(oldest) if oldest is not None else "none"),
        ("newest", _utc(newest) if newest is not None else "none"),
        ("size", size),
        ("addresses", _address_mode(config.get("STATISTICS_ANONYMIZE_IP"))),
        ("referrers", str(config.get("STATISTICS_REFERRER", "full"))),
        ("retention", _retention(retention)),
        ("rollups", rollups),
        ("writer", f"{health.mode}, {'running' if health.running else 'idle'} (this process)"),
        ("written", number(health.written)),
        ("queued", number(health.queued)),
        ("dropped", number(health.dropped)),
        ("last error", _last_error(health.last_error, health.last_error_at)),
    ]
    width = max(len(label) for label, _ in lines)
    for label, value in lines:
        click.echo(f"{label + ':':<{width + 1}} {value}")


@statistics_cli.command("export")
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), default="csv", show_default=True,
              help="CSV with a header row, or JSON Lines (one object per row).")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, allow_dash=True),
              help="The file to write; - writes to standard output.")
@click.option("--start", help="First day, YYYY-MM-DD (default: the dashboard's default range).")
@click.option("--end", help="Last day, YYYY-MM-DD, included.")
@click.option("--path", help="Only this path (or prefix, with --path-match prefix).")
@click.option("--path-match", help="exact (the default) or prefix.")
@click.option("--route", help="Only this URL rule, e.g. /products/<int:id>.")
@click.option("--status", help="A status code (404) or class (4xx).")
@click.option("--method", help="GET, POST, ...")
@click.option("--bots", help="exclude: leave the rows marked as bots out; only: keep only them.")
@click.option("--browser", help="Only this browser, as shown on the dashboard.")
@click.option("--platform", help="Only this platform.")
@click.option("--remote-address", help="Only this client address, as stored.")
@click.option("--user-agent", help="Only this user agent.")
def export(fmt: str, output: str, **options: str | None) -> None:
    """Write the rows matching the dashboard's filters to a file, oldest first.

    Every column, dates in UTC (ISO 8601), streamed in constant memory. The filters
    and their checks are the dashboard's: the same dates and the same messages.
    """
    from werkzeug.datastructures import MultiDict

    from . import export as exporting
    from .forms import parse_filters

    args = MultiDict({name: value for name, value in options.items() if value is not None})
    filters, form = parse_filters(args, current_app.config)
    if filters is None:
        for name, messages in form.errors.items():
            for message in messages:
                click.echo(f"Error: --{name.replace('_', '-')}: {message}", err=True)
        click.get_current_context().exit(2)
    state, engine = _state_and_engine()
    with _database_errors(f"read table {state.table.name!r}"):
        with engine.connect() as conn:
            total = exporting.count_rows(conn, state.table, filters)
        stream = exporting.RowStream(engine, state.table, filters)
    written = 0

    def progress(rows: int) -> None:
        nonlocal written
        written += rows
        bar.update(rows)

    with contextlib.closing(stream), _output(output) as target:
        with _database_errors("read the rows"):
            with click.progressbar(length=total, label="Exporting", file=sys.stderr) as bar:
                for chunk in exporting.encode(fmt, stream, on_batch=progress):
                    target.write(chunk)
    where = "standard output" if output == "-" else output
    click.echo(
        f"Exported {_rows(written)} from {filters.start_day.isoformat()} to "
        f"{filters.end_day.isoformat()} to {where}.",
        err=True,
    )


@contextmanager
def _output(path: str) -> t.Iterator[t.BinaryIO]:
    """Standard output for ``-``; else ``path``, written under a temporary name and
    renamed when complete, so a failed export never leaves a truncated file."""
    if path == "-":
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    partial = f"{path}.part"
    try:
        target = open(partial, "wb")
    except OSError as exc:
        raise click.ClickException(f"could not write {partial}: {exc.strerror or exc}") from None
    try:
        with target:
            yield target
        os.replace(partial, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(partial)
        raise


# -- helpers -------------------------------------------------------------------------


def _state_and_engine() -> tuple[StatisticsState, sa.Engine]:
    from .extension import state_of

    try:
        state = state_of(current_app)
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from None
    return state, state.db.engines[bind_key(state.table)]


@contextmanager
def _database_errors(doing: str) -> t.Iterator[None]:
    """Turn a database error into a one-line message and exit code 1."""
    try:
        yield
    except sa_exc.StatementError as exc:
        # Only the driver's first line: the statement's parameters are recorded data.
        cause = exc.orig if exc.orig is not None else exc
        raise click.ClickException(f"could not {doing}: {_first_line(cause)}") from None
    except (sa_exc.SQLAlchemyError, RuntimeError) as exc:
        raise click.ClickException(f"could not {doing}: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


def table_size(engine: sa.Engine, table: sa.Table) -> str:
    """The table's size on disk as the database reports it, or ``unknown``."""
    try:
        with engine.connect() as conn:
            name = engine.dialect.name
            if name == "postgresql":
                quoted = engine.dialect.identifier_preparer.format_table(table)
                size = conn.execute(
                    sa.text("SELECT pg_total_relation_size(CAST(:name AS regclass))"),
                    {"name": quoted},
                ).scalar()
                return filesize(size) + " with indexes" if size is not None else "unknown"
            if name in ("mysql", "mariadb"):
                size = conn.execute(
                    sa.text(
                        "SELECT data_length + index_length FROM information_schema.tables "
                        "WHERE table_schema = COALESCE(:schema, DATABASE()) AND table_name = :name"
                    ),
                    {"schema": table.schema, "name": table.name},
                ).scalar()
                return filesize(size) + " with indexes (estimate)" if size is not None else "unknown"
            if name == "sqlite":
                return _sqlite_size(conn, table)
    except sa_exc.SQLAlchemyError:
        pass
    return "unknown"


def _sqlite_size(conn: sa.Connection, table: sa.Table) -> str:
    try:
        # dbstat exists only when SQLite was built with it; roll back the failed try.
        with conn.begin_nested():
            size = conn.execute(
                sa.text(
                    "SELECT SUM(pgsize) FROM dbstat WHERE name IN "
                    "(SELECT name FROM sqlite_master WHERE tbl_name = :name)"
                ),
                {"name": table.name},
            ).scalar()
        if size is not None:
            return filesize(size) + " with indexes"
    except sa_exc.SQLAlchemyError:
        pass
    pages = conn.execute(sa.text("PRAGMA page_count")).scalar()
    page_size = conn.execute(sa.text("PRAGMA page_size")).scalar()
    if pages is None or page_size is None:
        return "unknown"
    return filesize(pages * page_size) + " (whole database file)"


def _rollup_status(engine: sa.Engine, state: StatisticsState) -> str:
    store = state.rollups
    if store is None:
        return "none"
    try:
        store.forget(engine)
        if not store.present(engine):
            return "tables missing: run `flask statistics rebuild` or db.create_all()"
        with engine.connect() as conn:
            rows = conn.execute(sa.select(sa.func.count()).select_from(store.rollup)).scalar() or 0
            found = store.read_state(conn)
    except sa_exc.SQLAlchemyError as exc:
        return f"unknown ({_first_line(exc)})"
    text = f"{number(rows)} rows"
    if found is None:
        return text + ", not started (the writer starts them)"
    if found.backfill_before is not None:
        text += f"; backfilling: rows before {_utc(found.backfill_before)} still to count"
    if found.stale_since is not None:
        text += f"; missing rows since {_utc(found.stale_since)}: run `flask statistics rebuild --since {found.stale_since.date().isoformat()}`"
    return text


def _utc(moment: datetime) -> str:
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _rows(count: int) -> str:
    return f"{number(count)} row{'' if count == 1 else 's'}"


def _network(truncated: str) -> str:
    return f"{truncated}/48" if ":" in truncated else f"{truncated}/24"


def _address_mode(mode: t.Any) -> str:
    if mode == "truncate":
        return "truncated (IPv4 /24, IPv6 /48)"
    if mode == "hash":
        return "hashed with a daily key"
    return "stored as they are"


def _retention(period: t.Any) -> str:
    if not isinstance(period, timedelta):
        return "keep every row"
    return f"delete rows older than {_describe(period)}"


def _describe(period: timedelta) -> str:
    seconds = int(period.total_seconds())
    for unit, size in (("week", 604800), ("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            amount = seconds // size
            return f"{amount} {unit}{'s' if amount != 1 else ''}"
    return str(period)


def _last_error(error: str | None, at: datetime | None) -> str:
    if error is None:
        return "none"
    error = (error.strip().splitlines() or ["error"])[0][:300]
    return f"{error} ({_utc(at)})" if at is not None else error
