"""How long each dashboard page and partial takes at a realistic row count.

    python benchmarks/dashboard.py [--rows 1000000] [--days 7] [--runs 5]
                                   [--only sqlite|postgresql|mariadb] [--raw]
                                   [--range-days N] [--keep NAME] [--sqlite-file PATH]

Seeds ``--rows`` synthetic requests spread over the last ``--days`` days, inserted in
arrival order as a live table holds them, into a SQLite file, PostgreSQL
(STATISTICS_BENCH_POSTGRESQL, default postgresql+psycopg://postgres@127.0.0.1:5432/test)
and MariaDB (STATISTICS_BENCH_MARIADB, default mysql+pymysql://root@127.0.0.1:3306/test),
using the default model and its indexes; a database that is not reachable is skipped.
The rollups are then built with the same code as ``flask statistics rebuild`` (timed),
unless ``--raw`` asks for the dashboard as it reads raw rows only.

Then it requests every dashboard endpoint, and a few filtered views, through Flask's
test client as htmx would for a partial, and prints the median time of ``--runs``
runs (rendering and charts included). ``--range-days`` sets the range shown (default:
the dashboard's default, the last 7 days); ``--days 3650 --range-days 3650`` shows
ten years.

``--keep NAME`` seeds a table of that name only if it is not there yet and leaves it
(and its rollups) in place afterwards, so later runs skip the seeding; indexes of the
default model that the kept table lacks are created. With SQLite it needs
``--sqlite-file``, the database file to keep the table in. A kept table must have been
seeded with the same ``--rows``, ``--days`` and ``--raw``; drop it to start afresh.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics as stats
import sys
import tempfile
import time
import typing as t
import uuid
from pathlib import Path

import sqlalchemy as sa
from flask import Flask
from flask_sqlalchemy import SQLAlchemy

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))

from flask_statistics import Statistics  # noqa: E402
from flask_statistics.filters import zone  # noqa: E402
from flask_statistics.rollups.compact import close_periods, close_quarters  # noqa: E402
from flask_statistics.rollups.aggregate import DayOf, Totals  # noqa: E402
from flask_statistics.rollups.rebuild import (  # noqa: E402
    add_rows, day_start, days_with_rows, rebuild_day, today_start,
)

import traffic  # noqa: E402

SERVERS = {
    "postgresql": os.environ.get(
        "STATISTICS_BENCH_POSTGRESQL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    ),
    "mariadb": os.environ.get(
        "STATISTICS_BENCH_MARIADB", "mysql+pymysql://root@127.0.0.1:3306/test"
    ),
}
LABELS = {"sqlite": "SQLite file", "postgresql": "PostgreSQL", "mariadb": "MariaDB"}
#: An endpoint slower than this on its first request is timed once, not ``--runs`` times.
SLOW_MS = 3000.0
#: Filtered views, as query strings added to each partial's URL.
FILTERED = {
    "status=404": "status=404",
    "method=POST": "method=POST",
    "path /api prefix": "path=/api&path_match=prefix",
    "browser": "browser=Firefox%20133.0",
    "browser family": "browser=Chrome",
    "platform": "platform=Windows&status_class=2",
    "address": "remote_address=192.0.2.77",
    "user agent": "user_agent=curl/8.5.0",
}


def build(url: str, table_name: str | None = None) -> tuple[Flask, SQLAlchemy]:
    app = Flask("bench_dashboard")
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    app.config["STATISTICS_TABLE_NAME"] = table_name or f"bench_{uuid.uuid4().hex[:8]}"
    db = SQLAlchemy(app)
    Statistics(app, db)
    return app, db


def endpoints(app: Flask, first_index: int, query: str) -> list[tuple[str, str]]:
    """(name, url) of every dashboard page and partial, with ``query``."""
    urls = []
    prefix = app.config["STATISTICS_URL_PREFIX"]
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if not rule.endpoint.startswith("statistics.") or rule.endpoint.endswith("static"):
            continue
        if rule.arguments == {"index"}:
            urls.append((rule.endpoint, f"{prefix}/requests/{first_index}"))
        elif not rule.arguments and "export" not in rule.rule:
            urls.append((rule.endpoint, rule.rule + (f"?{query}" if query else "")))
    return urls


def time_url(client, url: str, partial: bool, runs: int) -> tuple[float, int]:
    """Median milliseconds until the whole body has arrived (the full page is
    streamed, so the response alone is not the end)."""
    headers = {"HX-Request": "true"} if partial else {}
    times = []
    status = 0
    for _ in range(runs):
        start = time.perf_counter()
        response = client.get(url, headers=headers)
        response.get_data()
        times.append(time.perf_counter() - start)
        status = response.status_code
    return stats.median(times) * 1000, status


def time_first_byte(client, url: str, runs: int) -> float:
    """Median milliseconds until the first part of the page's body (its first paint)."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        response = client.get(url, buffered=False)
        next(iter(response.response))
        times.append(time.perf_counter() - start)
        response.close()
    return stats.median(times) * 1000


def reuse(app: Flask, db: SQLAlchemy) -> int | None:
    """The first index of a kept table that is already seeded, after creating the
    model's indexes it lacks; None when there is no such table."""
    state = app.extensions["statistics"]
    with app.app_context():
        engine = db.engine
    if not sa.inspect(engine).has_table(state.table.name):
        return None
    for index in state.table.indexes:
        start = time.perf_counter()
        index.create(engine, checkfirst=True)
        took = time.perf_counter() - start
        if took > 0.5:
            print(f"  created index {index.name} in {took:.1f} s")
    with engine.connect() as conn:
        count = conn.execute(sa.select(sa.func.count()).select_from(state.table)).scalar()
        first = conn.execute(sa.select(sa.func.min(state.table.c.index))).scalar()
        if engine.dialect.name in ("mysql", "mariadb"):
            conn.execute(sa.text(f"ANALYZE TABLE {state.table.name}"))
    print(f"  reusing {count:,} rows of table {state.table.name}")
    if not state.rollups.present(engine):  # dropped to be built again by this code
        build_rollups(app, db)
    else:
        open_quarters(app, db)
    return None if first is None else int(first)


def seed(app: Flask, db: SQLAlchemy, rows: int, days: int, raw: bool) -> int:
    state = app.extensions["statistics"]
    with app.app_context():
        engine = db.engine
    state.table.create(engine)
    start = time.perf_counter()
    with engine.begin() as conn:
        traffic.insert(conn, state.table, traffic.generate(days=days, per_day=max(1, rows // days), seed=11))
    with engine.connect() as conn:
        count = conn.execute(sa.select(sa.func.count()).select_from(state.table)).scalar()
        first = conn.execute(sa.select(sa.func.min(state.table.c.index))).scalar()
    print(f"  seeded {count:,} rows in {time.perf_counter() - start:.1f} s")
    if not raw:
        build_rollups(app, db)
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(sa.text("ANALYZE"))
            conn.commit()
    return int(first)


def build_rollups(app: Flask, db: SQLAlchemy) -> None:
    """The rollups of the seeded rows, built as `flask statistics rebuild` does."""
    state = app.extensions["statistics"]
    with app.app_context():
        engine = db.engine
    store = state.rollups
    store.create(engine)
    tz_name = app.config["STATISTICS_TIMEZONE"]
    tz = zone(tz_name)
    store.ensure_state(engine, tz_name, lambda moment: moment, open_from=today_start(tz))
    start = time.perf_counter()
    for day in days_with_rows(engine, state.table, tz, None, None):
        rebuild_day(engine, store, day, tz)
    with engine.begin() as conn:
        store.set_state(conn, backfill_before=None)
    close_periods(engine, store, tz_name)
    with engine.begin() as conn:
        rollup_rows = conn.execute(sa.select(sa.func.count()).select_from(store.rollup)).scalar()
    print(f"  built {rollup_rows:,} rollup rows in {time.perf_counter() - start:.1f} s")
    open_quarters(app, db)
    # A whole day's paths per browser and platform from its raw rows (timed without
    # writing them): what a rebuild reads, and what closing a day held the writers'
    # lock for before the open day's quarters were added as they ended.
    with engine.connect() as conn:
        state_row = store.read_state(conn)
    if state_row is not None and state_row.open_from is not None:
        day = day_start(state_row.open_from - dt.timedelta(hours=12), tz)
        start = time.perf_counter()
        with engine.connect() as conn:
            totals = Totals("only")
            read = add_rows(conn, state.table, totals, day, state_row.open_from)
            made = totals.rollup(DayOf(tz), open_from=state_row.open_from)
        print(f"  a whole day's path-agent rows: {len(made):,} from {read:,} raw rows in "
              f"{time.perf_counter() - start:.1f} s")


def open_quarters(app: Flask, db: SQLAlchemy) -> None:
    """The path-agent rows of the open day's quarters that are over, as the writer
    task makes them within a minute (eight quarters a transaction; once running, one
    every 15 minutes), timed."""
    state = app.extensions["statistics"]
    with app.app_context():
        engine = db.engine
    start = time.perf_counter()
    quarters = close_quarters(engine, state.rollups, app.config["STATISTICS_TIMEZONE"])
    took = time.perf_counter() - start
    print(f"  the open day's path-agent rows: {quarters} quarters in {took:.1f} s"
          + (f" ({took / quarters * 1000:.0f} ms a quarter)" if quarters else ""))


def run(
    name: str, url: str, rows: int, runs: int, days: int, range_days: int | None, raw: bool,
    filtered: bool = True, keep: str | None = None, only_views: t.Sequence[str] = (),
) -> None:
    app, db = build(url, keep)
    state = app.extensions["statistics"]
    label = LABELS[name]
    try:
        with app.app_context():
            db.engine.connect().close()
    except sa.exc.OperationalError as exc:
        print(f"{label}: skipped, not reachable ({str(exc).splitlines()[0]})")
        return
    print(f"{label}:", flush=True)
    try:
        found = reuse(app, db) if keep else None
        first = found if found is not None else seed(app, db, rows, days, raw)
        query = ""
        if range_days is not None:
            today = dt.datetime.now(dt.timezone.utc).date()
            query = f"start={today - dt.timedelta(days=range_days - 1)}&end={today}"
        client = app.test_client()
        results: list[tuple[str, float, int]] = []
        views = [("", query)] + [
            (f" [{label_}]", "&".join(p for p in (query, extra) if p))
            for label_, extra in (FILTERED.items() if filtered else ())
        ]
        if only_views:
            views = [v for v in views if (v[0].strip(" []") or "unfiltered") in only_views]
        for suffix, view_query in views:
            for endpoint, path in endpoints(app, first, view_query):
                if suffix and endpoint in ("statistics.index", "statistics.detail", "statistics.requests"):
                    continue
                partial = endpoint not in ("statistics.index", "statistics.detail")
                warm, status = time_url(client, path, partial, 1)  # warm up
                name = endpoint.removeprefix("statistics.") + suffix
                if warm > SLOW_MS:  # one run is enough to see it misses
                    results.append((name + " (1 run)", warm, status))
                    continue
                ms, status = time_url(client, path, partial, runs)
                results.append((name, ms, status))
        width = max(len(n) for n, _, _ in results)
        print(f"  {'endpoint':<{width}}  {'median':>10}")
        for endpoint, ms, status in results:
            flag = "" if status == 200 else f"  (HTTP {status})"
            print(f"  {endpoint:<{width}}  {ms:8.1f} ms{flag}")
        partials = [ms for n, ms, _ in results if n.split(" ")[0] not in ("index", "detail")]
        page = [ms for n, ms, _ in results if n == "index"]
        index_url = next((path for endpoint, path in endpoints(app, first, query) if endpoint == "statistics.index"), None)
        print(f"  slowest partial {max(partials):.1f} ms"
              + (f"; full page {page[0]:.1f} ms" if page else "")
              + (f", its first bytes after {time_first_byte(client, index_url, runs):.1f} ms" if page and index_url else ""))
    finally:
        state.writer.stop()
        with app.app_context():
            if not keep:
                state.rollups.rollup.drop(db.engine, checkfirst=True)
                state.rollups.state.drop(db.engine, checkfirst=True)
                state.table.drop(db.engine)
            db.engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--only", choices=tuple(LABELS), help="benchmark one database")
    parser.add_argument("--days", type=int, default=7, help="the days the rows are spread over")
    parser.add_argument("--range-days", type=int, default=None, help="the date range shown, in days")
    parser.add_argument("--raw", action="store_true", help="no rollups: every figure from raw rows")
    parser.add_argument("--no-filters", action="store_true", help="only the unfiltered view")
    parser.add_argument("--keep", metavar="NAME", help="seed table NAME once and keep it")
    parser.add_argument("--sqlite-file", metavar="PATH", help="the SQLite file for --keep")
    parser.add_argument("--view", action="append", default=[], choices=("unfiltered", *FILTERED),
                        help="time only this view (repeatable; default: all)")
    args = parser.parse_args()
    if args.keep and args.only in (None, "sqlite") and not args.sqlite_file:
        parser.error("--keep with SQLite needs --sqlite-file (or --only another database)")
    print(f"Median of {args.runs} runs per endpoint, {args.rows:,} rows over {args.days} days"
          f"{' (raw rows only)' if args.raw else ''}\n")
    for name in LABELS:
        if args.only not in (None, name):
            continue
        if name == "sqlite" and args.sqlite_file:
            run(name, f"sqlite:///{Path(args.sqlite_file).resolve()}", args.rows, args.runs,
                args.days, args.range_days, args.raw, not args.no_filters, args.keep, args.view)
        elif name == "sqlite":
            with tempfile.TemporaryDirectory() as directory:
                run(name, f"sqlite:///{directory}/dashboard.db", args.rows, args.runs, args.days,
                    args.range_days, args.raw, not args.no_filters)
        else:
            run(name, SERVERS[name], args.rows, args.runs, args.days, args.range_days, args.raw,
                not args.no_filters, args.keep, args.view)
        print()


if __name__ == "__main__":
    main()
