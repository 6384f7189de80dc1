"""How long each dashboard partial takes at a realistic row count.

    python benchmarks/dashboard.py [--rows 100000] [--runs 5] [--only sqlite|postgresql]
                                   [--days 7]

Seeds ``--rows`` synthetic requests spread over the last ``--days`` days (7, the
default date range, unless told; ``--days 3650`` shows ten years) into a SQLite file and into PostgreSQL (STATISTICS_BENCH_POSTGRESQL, default
postgresql+psycopg://postgres@127.0.0.1:5432/test; skipped if unreachable), using the
default model and its indexes. Then it requests every dashboard endpoint through
Flask's test client, as htmx would for a partial, and prints the median time of
``--runs`` runs (rendering and chart generation included).
"""

from __future__ import annotations

import argparse
import datetime as dt
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

import traffic  # noqa: E402

POSTGRESQL = os.environ.get(
    "STATISTICS_BENCH_POSTGRESQL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def build(url: str) -> tuple[Flask, SQLAlchemy]:
    app = Flask("bench_dashboard")
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    app.config["STATISTICS_TABLE_NAME"] = f"bench_{uuid.uuid4().hex[:8]}"
    db = SQLAlchemy(app)
    Statistics(app, db)
    return app, db


def endpoints(app: Flask, first_index: int, days: int) -> list[tuple[str, str]]:
    """(name, url) of every dashboard page and partial over the last ``days`` days
    (the default filters for 7)."""
    urls = []
    query = ""
    if days != 7:
        today = dt.datetime.now(dt.timezone.utc).date()
        query = f"?start={today - dt.timedelta(days=days - 1)}&end={today}"
    prefix = app.config["STATISTICS_URL_PREFIX"]
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if not rule.endpoint.startswith("statistics.") or rule.endpoint.endswith("static"):
            continue
        if rule.arguments == {"index"}:
            urls.append((rule.endpoint, f"{prefix}/requests/{first_index}"))
        elif not rule.arguments:
            urls.append((rule.endpoint, rule.rule + query))
    return urls


def time_url(client, url: str, partial: bool, runs: int) -> tuple[float, int]:
    headers = {"HX-Request": "true"} if partial else {}
    times = []
    status = 0
    for _ in range(runs):
        start = time.perf_counter()
        response = client.get(url, headers=headers)
        times.append(time.perf_counter() - start)
        status = response.status_code
    return stats.median(times) * 1000, status


def run(url: str, label: str, rows: int, runs: int, days: int = 7) -> dict[str, float] | None:
    app, db = build(url)
    state = app.extensions["statistics"]
    try:
        with app.app_context():
            state.table.create(db.engine)
    except sa.exc.OperationalError as exc:
        print(f"{label}: skipped, not reachable ({str(exc).splitlines()[0]})")
        return None
    try:
        start = time.perf_counter()
        with app.app_context(), db.engine.begin() as conn:
            traffic.insert(conn, state.table, traffic.generate(days=days, per_day=max(1, rows // days), seed=11))
        with app.app_context(), db.engine.connect() as conn:
            count = conn.execute(sa.select(sa.func.count()).select_from(state.table)).scalar()
            first = conn.execute(sa.select(sa.func.min(state.table.c.index))).scalar()
            if db.engine.dialect.name == "postgresql":
                conn.execute(sa.text(f"ANALYZE {state.table.name}"))
        print(f"{label}: seeded {count:,} rows in {time.perf_counter() - start:.1f} s")
        client = app.test_client()
        results = {}
        for name, path in endpoints(app, first, days):
            partial = name not in ("statistics.index", "statistics.detail")
            time_url(client, path, partial, 1)  # warm up
            ms, status = time_url(client, path, partial, runs)
            results[name] = ms
            print(f"  {name:<28} {path:<40} {ms:9.1f} ms  (HTTP {status})")
        return results
    finally:
        state.writer.stop()
        with app.app_context():
            state.table.drop(db.engine)
            db.engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--only", choices=("sqlite", "postgresql"), help="benchmark one database")
    parser.add_argument("--days", type=int, default=7, help="the date range shown, in days")
    args = parser.parse_args()
    print(f"Median of {args.runs} runs per endpoint, {args.rows:,} rows over {args.days} days\n")
    if args.only in (None, "sqlite"):
        with tempfile.TemporaryDirectory() as directory:
            run(f"sqlite:///{directory}/dashboard.db", "SQLite file", args.rows, args.runs, args.days)
    if args.only is None:
        print()
    if args.only in (None, "postgresql"):
        run(POSTGRESQL, "PostgreSQL", args.rows, args.runs, args.days)


if __name__ == "__main__":
    main()
