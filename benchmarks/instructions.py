"""Instructions per request and per written row, counted by valgrind (deterministic).

    python benchmarks/instructions.py [--requests 1000] [--rows 2000] [--batch 500]
                                      [--variants bare,down,sqlite,writer-sqlite,writer-postgresql]
                                      [--keep DIR]

Wall-clock timings on a shared machine swing by 2x; instruction counts do not. Each
variant runs twice under ``valgrind --tool=callgrind``, once with N and once with 2N
requests (or rows), and the difference over N is printed: start-up, imports and
warm-up cancel out. Every thread is counted, the writer's included.

Variants:

- ``bare``: Flask and Flask-SQLAlchemy, one route rendering a 10-item template,
  called as a WSGI server would call it (a fresh environ with a browser's headers,
  the body read, ``close()`` called);
- ``down``: the same app with Statistics on a database that is not there: the request
  path only (capture, queueing); the writer is never woken during the run;
- ``sqlite``: Statistics on a SQLite file with the rollup tables; the writer writes
  every ``--batch`` requests (as a busy app's writer does once a second), so the
  figure is the request plus writing its row and its rollups;
- ``writer-sqlite`` and ``writer-postgresql``: the writer alone, fed the demo's
  traffic mix straight into its queue (as ``benchmarks/capture.py --writer-only``
  does), written ``--batch`` rows at a time with rollups: instructions per row, on
  the client side (PostgreSQL's own work is in another process and not counted).
  The PostgreSQL one is skipped when STATISTICS_BENCH_POSTGRESQL (default
  postgresql+psycopg://postgres@127.0.0.1:5432/test) is unreachable.

The writer's timed maintenance (backfill, compaction) runs once at start and is then
switched off, so that a slow run does not count it more often than a fast one.
With ``--keep DIR`` the callgrind files are kept there for ``callgrind_annotate``.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
POSTGRESQL = os.environ.get(
    "STATISTICS_BENCH_POSTGRESQL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
VARIANTS = ("bare", "down", "sqlite", "writer-sqlite", "writer-postgresql")
HEADERS = {
    "User-Agent": (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like "
        "Gecko) Chrome/124.0.0.0 Safari/537.36"
    ),
    "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    "Accept-Language": "en-GB,en;q=0.9",
    "Accept-Encoding": "gzip, deflate, br",
    "Referer": "https://www.example.org/search?q=items",
    "Cookie": "theme=dark; consent=yes",
}
PAGE = "<ul>{% for item in items %}<li>{{ item.name }}: {{ item.price }}</li>{% endfor %}</ul>\n"
WARM_UP = 300


# -- the measured programs (run under valgrind) ---------------------------------------


def _app(variant: str, directory: str):  # type: ignore[no-untyped-def]
    from flask import Flask, render_template
    from flask_sqlalchemy import SQLAlchemy
    from jinja2 import DictLoader

    app = Flask("instructions")
    app.jinja_loader = DictLoader({"page.html": PAGE})
    items = [{"name": f"item {n}", "price": n * 1.5} for n in range(10)]
    if variant == "down":
        with socket.socket() as s:  # a port nothing listens on
            s.bind(("127.0.0.1", 0))
            closed = s.getsockname()[1]
        url = f"postgresql+psycopg://postgres@127.0.0.1:{closed}/test?connect_timeout=2"
    else:
        url = f"sqlite:///{directory}/instructions.db"
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    _writer_config(app)
    db = SQLAlchemy(app)
    statistics = None
    if variant != "bare":
        from flask_statistics import Statistics

        statistics = Statistics(app, db)
        if variant == "sqlite":
            with app.app_context():
                db.create_all()

    @app.route("/")
    def index():  # type: ignore[no-untyped-def]
        return render_template("page.html", items=items)

    return app, statistics


def _writer_config(app) -> None:  # type: ignore[no-untyped-def]
    # The writer writes only when told to (flush), never on a timer or a full queue.
    app.config["STATISTICS_FLUSH_INTERVAL"] = 3600.0
    app.config["STATISTICS_QUEUE_SIZE"] = 1_000_000
    app.config["STATISTICS_QUEUE_BYTES"] = 2**40


def _environ(n: int) -> dict:  # type: ignore[type-arg]
    from werkzeug.test import EnvironBuilder

    environ = EnvironBuilder(path="/", headers=HEADERS).get_environ()
    environ["REMOTE_ADDR"] = f"198.51.100.{n % 50}"  # fifty visitors
    return environ


def _quiet_maintenance(app) -> None:  # type: ignore[no-untyped-def]
    app.extensions["statistics"].writer._core._maintenance = ()


def run_requests(variant: str, count: int, batch: int) -> None:
    with tempfile.TemporaryDirectory() as directory:
        app, statistics = _app(variant, directory)
        environs = [_environ(n) for n in range(50)]
        wsgi = app.wsgi_app

        def serve(n: int) -> None:
            environ = dict(environs[n % 50])
            environ["wsgi.input"] = io.BytesIO()
            body = wsgi(environ, lambda status, headers, exc_info=None: None)
            for _chunk in body:
                pass
            close = getattr(body, "close", None)
            if close is not None:
                close()

        if variant == "down":
            # Only the request path: a writer thread on a database that is down
            # retries on a clock, which a count of instructions must not follow.
            # A thread object that never runs stands in, so records just queue up.
            app.extensions["statistics"].writer._core._thread = threading.Thread(target=id)
        for n in range(WARM_UP):
            serve(n)
        if variant == "sqlite":
            statistics.flush(app=app)  # type: ignore[union-attr]
        if statistics is not None:
            _quiet_maintenance(app)
        for n in range(count):
            serve(n)
            if variant == "sqlite" and (n + 1) % batch == 0:
                statistics.flush(app=app)  # type: ignore[union-attr]
        if variant == "sqlite":
            statistics.flush(app=app)  # type: ignore[union-attr]
            health = statistics.health(app=app)  # type: ignore[union-attr]
            if health.written != WARM_UP + count or health.dropped or health.rejected:
                raise SystemExit(f"sqlite: {health}")


def run_writer(variant: str, count: int, batch: int, records_made: int) -> None:
    from flask import Flask
    from flask_sqlalchemy import SQLAlchemy

    from flask_statistics import Statistics

    sys.path.insert(0, str(HERE))
    from capture import synthetic_records  # the same traffic as capture.py

    # As many records in every run, so making them cancels out.
    records = synthetic_records(records_made + WARM_UP)
    with tempfile.TemporaryDirectory() as directory:
        app = Flask("instructions_writer")
        postgresql = variant == "writer-postgresql"
        app.config["SQLALCHEMY_DATABASE_URI"] = (
            POSTGRESQL if postgresql else f"sqlite:///{directory}/instructions.db"
        )
        app.config["STATISTICS_TABLE_NAME"] = f"bench_{uuid.uuid4().hex[:8]}"
        _writer_config(app)
        db = SQLAlchemy(app)
        Statistics(app, db)
        state = app.extensions["statistics"]
        with app.app_context():
            state.table.create(db.engine)
            state.rollups.create(db.engine)
        writer = state.writer
        try:
            for record in records[:WARM_UP]:
                writer.emit(record)
            writer.flush()
            _quiet_maintenance(app)
            for n, record in enumerate(records[WARM_UP : WARM_UP + count]):
                writer.emit(record)
                if (n + 1) % batch == 0:
                    writer.flush()
            writer.flush()
            if writer.written != WARM_UP + count or writer.dropped:
                raise SystemExit(f"{variant}: {writer.health()}")
        finally:
            writer.stop()
            with app.app_context():
                state.rollups.rollup.drop(db.engine, checkfirst=True)
                state.rollups.state.drop(db.engine, checkfirst=True)
                state.table.drop(db.engine)
                db.engine.dispose()


def child(args: argparse.Namespace) -> None:
    if args.child.startswith("writer-"):
        run_writer(args.child, args.count, args.batch, args.made)
    else:
        run_requests(args.child, args.count, args.batch)
    sys.stdout.flush()
    # Skip the exit handlers: a writer on a database that is down would spend its
    # shutdown timeout retrying, an amount of work that depends on the clock.
    os._exit(0)


# -- the driver ------------------------------------------------------------------------


def postgresql_reachable() -> bool:
    import sqlalchemy as sa

    try:
        engine = sa.create_engine(POSTGRESQL, connect_args={"connect_timeout": 3})
        with engine.connect():
            pass
        engine.dispose()
        return True
    except Exception:
        return False


def count_instructions(variant: str, count: int, made: int, batch: int, keep: str | None) -> int:
    with tempfile.TemporaryDirectory() as directory:
        out = Path(directory) / f"callgrind.{variant}.{count}"
        command = [
            "valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
            sys.executable, str(Path(__file__).resolve()),
            "--child", variant, "--count", str(count), "--made", str(made), "--batch", str(batch),
        ]
        env = dict(os.environ, PYTHONHASHSEED="0")
        done = subprocess.run(command, capture_output=True, text=True, env=env)
        if done.returncode != 0 or not out.exists():
            raise SystemExit(f"{variant} ({count}) failed:\n{done.stdout}\n{done.stderr[-4000:]}")
        if keep:
            shutil.copy(out, Path(keep) / out.name)
        for line in out.read_text().splitlines():
            if line.startswith(("totals:", "summary:")):
                return int(line.split()[1])
    raise SystemExit(f"{variant}: no totals in the callgrind output")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=1000, help="N for the request variants")
    parser.add_argument("--rows", type=int, default=2000, help="N for the writer variants")
    parser.add_argument("--batch", type=int, default=500, help="rows per write")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--jobs", type=int, default=2, help="valgrind runs at once")
    parser.add_argument("--keep", help="a directory to keep the callgrind files in")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--made", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        raise SystemExit(f"unknown variants {sorted(unknown)}; choose from {', '.join(VARIANTS)}")
    if "writer-postgresql" in variants and not postgresql_reachable():
        print(f"writer-postgresql: skipped, {POSTGRESQL} is not reachable")
        variants.remove("writer-postgresql")
    if args.keep:
        Path(args.keep).mkdir(parents=True, exist_ok=True)
    runs = []
    for variant in variants:
        n = args.rows if variant.startswith("writer-") else args.requests
        for count in (n, 2 * n):
            runs.append((variant, count, 2 * n))
    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        totals = dict(zip(runs, pool.map(
            lambda run: count_instructions(*run, args.batch, args.keep), runs
        )))
    print(f"Instructions (valgrind --tool=callgrind, all threads), {args.batch} rows per write")
    print(f"  {'variant':<18} {'per request/row':>16} {'vs bare':>10}")
    per: dict[str, float] = {}
    for variant in variants:
        n = args.rows if variant.startswith("writer-") else args.requests
        per[variant] = (totals[(variant, 2 * n, 2 * n)] - totals[(variant, n, 2 * n)]) / n
    for variant, value in per.items():
        versus = ""
        if "bare" in per and not variant.startswith("writer-") and variant != "bare":
            versus = f"{value / per['bare']:9.2f}x"
        unit = "row" if variant.startswith("writer-") else "request"
        print(f"  {variant:<18} {value:>12,.0f}/{unit:<4} {versus:>9}")


if __name__ == "__main__":
    main()
