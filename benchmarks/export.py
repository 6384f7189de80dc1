"""How long the CSV export of the dashboard's default range takes, and whether its
memory stays flat as the rows go by.

    python benchmarks/export.py [--rows 1000000] [--format csv|jsonl]
                                [--only sqlite|postgresql|mariadb]

Seeds ``--rows`` synthetic requests (the generator ``benchmarks/dashboard.py`` uses)
over the last 7 days into a SQLite file, PostgreSQL and MariaDB (the same URLs as
``benchmarks/dashboard.py``; an unreachable database is skipped). The seeding runs
in a child process, so this process's peak memory is the export's alone.

Then it reads ``/statistics/export.csv`` through Flask's test client in chunks, as
a server would send it, and prints the rows, the seconds, and this process's peak
resident memory (VmHWM) before the export, after 100,000 rows and at the end:
constant memory means the peak does not grow with the rows.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import sqlalchemy as sa
from flask import Flask
from flask_sqlalchemy import SQLAlchemy

sys.path.insert(0, str(Path(__file__).resolve().parent))

import dashboard  # noqa: E402  # its row generator, server URLs and labels

from flask_statistics import Statistics  # noqa: E402

DAYS = 7
CHECKPOINT = 100_000


def build(url: str, table_name: str) -> tuple[Flask, SQLAlchemy]:
    app = Flask("bench_export")
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    app.config["STATISTICS_TABLE_NAME"] = table_name
    db = SQLAlchemy(app)
    Statistics(app, db)
    return app, db


def seed(url: str, table_name: str, rows: int) -> None:
    """Create the table and fill it (run in a child process)."""
    app, db = build(url, table_name)
    state = app.extensions["statistics"]
    with app.app_context():
        engine = db.engine
        state.table.create(engine)
        end = datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(minutes=1)
        with engine.begin() as conn:
            generated = dashboard.traffic.generate(days=DAYS, per_day=max(1, rows // DAYS), end=end, seed=11)
            dashboard.traffic.insert(conn, state.table, generated)
        if engine.dialect.name == "postgresql":
            with engine.connect() as conn:
                conn.execute(sa.text(f"ANALYZE {table_name}"))
                conn.commit()
        engine.dispose()
    state.writer.stop()


def memory() -> dict[str, int]:
    """This process's current (VmRSS) and peak (VmHWM) resident memory, in KiB."""
    found = {}
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                found[name] = int(value.split()[0])
    return found


def mib(kib: int) -> str:
    return f"{kib / 1024:,.1f} MiB"


def reachable(url: str) -> str | None:
    engine = sa.create_engine(url)
    try:
        with engine.connect():
            return None
    except sa.exc.SQLAlchemyError as exc:
        return str(exc).splitlines()[0]
    finally:
        engine.dispose()


def run(name: str, url: str, rows: int, fmt: str) -> None:
    label = dashboard.LABELS[name]
    problem = reachable(url)
    if problem is not None:
        print(f"{label}: skipped, not reachable ({problem})")
        return
    print(f"{label}:", flush=True)
    table_name = f"bench_{uuid.uuid4().hex[:8]}"
    start = time.perf_counter()
    child = multiprocessing.get_context("spawn").Process(target=seed, args=(url, table_name, rows))
    child.start()
    child.join()
    if child.exitcode != 0:
        print(f"  seeding failed (exit code {child.exitcode})")
        return
    print(f"  seeded in {time.perf_counter() - start:.1f} s (child process)", flush=True)
    app, db = build(url, table_name)
    state = app.extensions["statistics"]
    try:
        with app.app_context():
            with db.engine.connect() as conn:
                count = conn.execute(sa.select(sa.func.count()).select_from(state.table)).scalar_one()
        client = app.test_client()
        before = memory()
        print(f"  {count:,} rows in the table; before the export: RSS {mib(before['VmRSS'])}, "
              f"peak {mib(before['VmHWM'])}")
        start = time.perf_counter()
        response = client.get(f"/statistics/export.{fmt}", buffered=False)
        assert response.status_code == 200, response.status_code
        separator = b"\r\n" if fmt == "csv" else b"\n"
        lines = 0
        size = 0
        at_checkpoint: dict[str, int] | None = None
        for chunk in response.response:
            lines += chunk.count(separator)
            size += len(chunk)
            if at_checkpoint is None and lines >= CHECKPOINT:
                at_checkpoint = memory()
                at_checkpoint["rows"] = lines - (fmt == "csv")
        response.close()
        seconds = time.perf_counter() - start
        after = memory()
        exported = lines - (fmt == "csv")  # the CSV header is not a row
        print(f"  exported {exported:,} rows ({size / 2**20:,.1f} MiB of {fmt.upper()}) in "
              f"{seconds:.1f} s, {exported / seconds:,.0f} rows/s")
        if at_checkpoint is not None:
            print(f"  peak after {at_checkpoint['rows']:,} rows: {mib(at_checkpoint['VmHWM'])}")
        print(f"  peak after {exported:,} rows: {mib(after['VmHWM'])} "
              f"(+{mib(after['VmHWM'] - before['VmHWM'])} over the peak before the export)")
    finally:
        state.writer.stop()
        with app.app_context():
            state.table.drop(db.engine, checkfirst=True)
            db.engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--format", choices=("csv", "jsonl"), default="csv")
    parser.add_argument("--only", choices=tuple(dashboard.LABELS), help="benchmark one database")
    args = parser.parse_args()
    print(f"Export of {args.rows:,} rows over the last {DAYS} days (the default range) as "
          f"{args.format.upper()}\n")
    for name in dashboard.LABELS:
        if args.only not in (None, name):
            continue
        if name == "sqlite":
            with tempfile.TemporaryDirectory() as directory:
                run(name, f"sqlite:///{directory}/export.db", args.rows, args.format)
        else:
            run(name, dashboard.SERVERS[name], args.rows, args.format)
        print()


if __name__ == "__main__":
    main()
