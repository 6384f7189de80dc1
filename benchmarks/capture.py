"""What recording costs the app, and how fast the writer empties its queue.

    python benchmarks/capture.py [--requests 5000] [--rounds 7] [--rows 50000]

Part 1 is an A/B in one process with Flask's test client on a trivial route: bare
Flask, then the same app with Statistics in buffered mode and in sync mode, both on
a SQLite file. Rounds alternate between the variants; the figures are medians.
Part 2 enqueues synthetic records straight into the writer and times until they are
committed, into a SQLite file, PostgreSQL (STATISTICS_BENCH_POSTGRESQL, default
postgresql+psycopg://postgres@127.0.0.1:5432/test) and MariaDB (STATISTICS_BENCH_MARIADB,
default mysql+pymysql://root@127.0.0.1:3306/test), each skipped if unreachable, without
and with the rollup tables, rounds alternating.
"""

from __future__ import annotations

import argparse
import os
import statistics as stats
import sys
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa
from flask import Flask
from flask_sqlalchemy import SQLAlchemy

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))

from flask_statistics import Statistics  # noqa: E402
from flask_statistics.capture import Record  # noqa: E402

import traffic  # noqa: E402

POSTGRESQL = os.environ.get(
    "STATISTICS_BENCH_POSTGRESQL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
MARIADB = os.environ.get("STATISTICS_BENCH_MARIADB", "mysql+pymysql://root@127.0.0.1:3306/test")


def make_app(mode: str | None, directory: str) -> tuple[Flask, Statistics | None]:
    """``mode`` None: Flask alone; "db": Flask + Flask-SQLAlchemy (the baseline, since
    every app that uses the extension has it); else Statistics in that write mode."""
    app = Flask(f"bench_{mode}")
    app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{directory}/{mode}.db"

    @app.route("/")
    def index():
        return "Hello World!"

    if mode is None:
        return app, None
    db = SQLAlchemy(app)
    if mode == "db":
        return app, None
    app.config["STATISTICS_WRITE_MODE"] = mode
    statistics = Statistics(app, db)
    with app.app_context():
        db.create_all()
    return app, statistics


def time_requests(app: Flask, count: int) -> float:
    client = app.test_client()
    get = client.get
    start = time.perf_counter()
    for _ in range(count):
        get("/")
    return (time.perf_counter() - start) / count * 1e6


def request_overhead(requests: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as directory:
        variants = {name: make_app(mode, directory) for name, mode in (
            ("Flask alone", None), ("baseline", "db"), ("buffered", "buffered"), ("sync", "sync"),
        )}
        timings: dict[str, list[float]] = {name: [] for name in variants}
        for app, _ in variants.values():
            time_requests(app, min(requests, 500))  # warm up caches and the writer
        for _ in range(rounds):
            for name, (app, statistics) in variants.items():
                count = requests if name != "sync" else max(requests // 10, 200)
                timings[name].append(time_requests(app, count))
                if statistics is not None:
                    statistics.flush(app=app)
        base = stats.median(timings["baseline"])
        print(f"Request overhead, test client, trivial route, median of {rounds} rounds")
        print("(baseline = Flask + Flask-SQLAlchemy without Statistics)")
        print(f"  {'variant':<12} {'µs/request':>11} {'added µs':>9}")
        for name, values in timings.items():
            median = stats.median(values)
            added = "" if name in ("baseline", "Flask alone") else f"{median - base:9.1f}"
            print(f"  {name:<12} {median:11.1f} {added:>9}")
        for name, (app, statistics) in variants.items():
            if statistics is not None:
                health = statistics.health(app=app)
                print(f"  {name}: {health.written:,} rows written, {health.dropped} dropped")
                app.extensions["statistics"].writer.stop()


def synthetic_records(count: int, rate: float = 20_000.0) -> list[Record]:
    """``count`` records of the demo's traffic mix, arriving in order at ``rate`` a
    second from now, as a writer keeping up with a busy app receives them."""
    records = []
    start = time.time()
    for n, row in enumerate(traffic.generate(days=1, per_day=count, seed=3)):
        record = Record(
            start + n / rate, 0.0, row["method"], row["path"], row["user_agent"],
            row["remote_address"], row["referrer"], row["route"],
        )
        record.end = row["response_time"]
        record.status_code = row["status_code"]
        record.content_type = "text/html; charset=utf-8"
        record.size = row["size"]
        record.exception = row["exception"]
        records.append(record)
    return records


def throughput_app(url: str, label: str, records: list[Record], rollups: bool) -> tuple[Flask, SQLAlchemy] | None:
    app = Flask(f"throughput_{label}")
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    app.config["STATISTICS_TABLE_NAME"] = f"bench_{uuid.uuid4().hex[:8]}"
    app.config["STATISTICS_QUEUE_SIZE"] = len(records) + 1
    app.config["STATISTICS_QUEUE_BYTES"] = 2**40  # hold every record: this measures the writer
    if "BENCH_BATCH" in os.environ:  # else the default STATISTICS_BATCH_SIZE
        app.config["STATISTICS_BATCH_SIZE"] = int(os.environ["BENCH_BATCH"])
    db = SQLAlchemy(app)
    Statistics(app, db)
    state = app.extensions["statistics"]
    try:
        with app.app_context():
            state.table.create(db.engine)
            if rollups:
                state.rollups.create(db.engine)
    except sa.exc.OperationalError as exc:
        print(f"  {label}: skipped, not reachable ({str(exc).splitlines()[0]})")
        return None
    return app, db


def writer_throughput(url: str, label: str, records: list[Record], rounds: int) -> None:
    """Rows per second without and with rollups, rounds alternating between the two."""
    variants = {}
    for rollups in (False, True):
        made = throughput_app(url, label, records, rollups)
        if made is None:
            return
        variants[rollups] = made
    rates: dict[bool, list[float]] = {False: [], True: []}
    try:
        for _ in range(rounds):
            for rollups, (app, _db) in variants.items():
                writer = app.extensions["statistics"].writer
                start = time.perf_counter()
                for record in records:
                    writer.emit(record)
                assert writer.flush(timeout=600)
                rates[rollups].append(len(records) / (time.perf_counter() - start))
        for rollups in (False, True):
            writer = variants[rollups][0].extensions["statistics"].writer
            name = f"{label}, {'with' if rollups else 'no'} rollups"
            print(f"  {name:<32} {stats.median(rates[rollups]):>10,.0f} rows/s  "
                  f"(median of {rounds} rounds of {len(records):,}; dropped {writer.dropped})")
    finally:
        for app, db in variants.values():
            state = app.extensions["statistics"]
            state.writer.stop()
            with app.app_context():
                state.rollups.rollup.drop(db.engine, checkfirst=True)
                state.rollups.state.drop(db.engine, checkfirst=True)
                state.table.drop(db.engine)
                db.engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--writer-only", action="store_true", help="skip part 1")
    args = parser.parse_args()
    if not args.writer_only:
        request_overhead(args.requests, args.rounds)
        print()
    print("Writer throughput (user-agent parsing and truncation included)")
    records = synthetic_records(args.rows)
    with tempfile.TemporaryDirectory() as directory:
        writer_throughput(f"sqlite:///{directory}/throughput.db", "SQLite file", records, 3)
    writer_throughput(POSTGRESQL, "PostgreSQL", records, 3)
    writer_throughput(MARIADB, "MariaDB", records, 3)


if __name__ == "__main__":
    main()
