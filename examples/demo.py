"""A small shop app that records its own traffic. Run it from the project root:

    python examples/demo.py

It stores statistics in SQLite (instance/demo.db next to this file, or
DEMO_DATABASE_URL), seeds five weeks of synthetic traffic the first time (so every
comparison with the previous period, and the 30-day range, has data), keeps sending
itself a few requests a second in the background so the live view moves (--quiet
turns that off), and serves the dashboard at http://127.0.0.1:5000/statistics.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import threading
import time
from pathlib import Path

from flask import Flask, Response, abort, jsonify, redirect, request, url_for
from markupsafe import escape
from flask_sqlalchemy import SQLAlchemy

from flask_statistics import Statistics

sys.path.insert(0, str(Path(__file__).parent))
import traffic  # noqa: E402

db = SQLAlchemy()
statistics = Statistics()


def local_only():
    """The dashboard guard: only this machine may look at the statistics."""
    if request.remote_addr not in ("127.0.0.1", "::1"):
        abort(403)


def create_app(database_url: str | None = None) -> Flask:
    app = Flask(__name__, instance_path=str(Path(__file__).parent / "instance"))
    os.makedirs(app.instance_path, exist_ok=True)
    app.config["SQLALCHEMY_DATABASE_URI"] = (
        database_url
        or os.environ.get("DEMO_DATABASE_URL")
        or f"sqlite:///{Path(app.instance_path) / 'demo.db'}"
    )
    # e.g. DEMO_STATISTICS_WRITE_MODE=sync sets STATISTICS_WRITE_MODE.
    app.config.from_prefixed_env("DEMO")
    db.init_app(app)
    statistics.init_app(app, db=db, guard=local_only)

    @app.route("/")
    def index():
        return (
            "<h1>Demo shop</h1><p><a href='/products'>Products</a> · "
            "<a href='/statistics'>Statistics</a></p>"
        )

    @app.route("/products")
    def products():
        return "<ul>" + "".join(f"<li><a href='/products/{n}'>Item {n}</a></li>" for n in range(1, 21)) + "</ul>"

    @app.route("/products/<int:n>")
    def product(n: int):
        if n > 100:
            abort(404)
        return f"<h1>Item {n}</h1>"

    @app.route("/api/items", methods=["GET", "POST"])
    def items():
        if request.method == "POST":
            return jsonify(created=True), 201
        return jsonify(items=list(range(10)))

    @app.route("/api/items/<int:n>", methods=["PUT", "DELETE"])
    def item(n: int):
        if n > 100:
            abort(404)
        return ("", 204) if request.method == "DELETE" else jsonify(updated=n)

    @app.route("/search")
    def search():
        time.sleep(random.uniform(0.02, 0.1))
        return f"<h1>Results for {escape(request.args.get('q', ''))}</h1>"

    @app.route("/reports/monthly")
    def report():
        time.sleep(random.uniform(0.1, 0.4))
        return "<h1>Monthly report</h1>"

    @app.route("/about")
    def about():
        return "<h1>About the demo shop</h1>"

    @app.route("/slow")
    def slow():
        time.sleep(0.2)
        return "done"

    @app.route("/error")
    def error():
        return 1 / 0

    @app.route("/stream")
    def stream():
        return Response((f"line {i}\n" for i in range(100)), mimetype="text/plain")

    @app.route("/checkout", methods=["POST"])
    def checkout():
        if random.random() < 0.125:
            abort(503)  # the payment provider is down now and then
        return redirect(url_for("index"))

    @app.route("/login", methods=["POST"])
    def login():
        if request.form.get("password") != "demo":
            abort(401)
        return redirect(url_for("index"))

    with app.app_context():
        db.create_all()
    return app


def seed_if_empty(app: Flask, days: float, per_day: int) -> int:
    """Insert ``days`` of synthetic traffic into an empty table; returns the rows.

    The dashboard reads these rows directly at first; the writer then counts them
    into the rollups in the background, a day at a time, newest first, as it does
    for the rows of a table that existed before the extension."""
    table = app.extensions["statistics"].table
    with app.app_context(), db.engine.begin() as conn:
        if conn.execute(table.select().limit(1)).first() is not None:
            return 0
        return traffic.insert(conn, table, traffic.generate(days, per_day))


def send_live_traffic(app: Flask, rate: float = 3.0, stop: threading.Event | None = None) -> threading.Thread:
    """Start a daemon thread that sends the app about ``rate`` requests a second,
    with the synthetic mix of paths, clients and user agents, through the app's
    test client: each is recorded like a real one."""
    stop = stop or threading.Event()

    def run() -> None:
        rng = random.Random()
        client = app.test_client()
        while not stop.wait(rng.expovariate(rate)):
            live = traffic.live_request(rng)
            try:
                client.open(
                    live.path, method=live.method, headers=live.headers, data=live.data,
                    environ_base={"REMOTE_ADDR": live.remote_address},
                )
            except Exception:  # e.g. the database is briefly locked: try the next one
                pass

    thread = threading.Thread(target=run, name="demo live traffic", daemon=True)
    thread.start()
    return thread


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--days", type=float, default=35, help="days of synthetic traffic to seed")
    parser.add_argument("--per-day", type=int, default=3000, help="synthetic requests per day")
    parser.add_argument("--no-seed", action="store_true", help="record only real traffic")
    parser.add_argument("--quiet", action="store_true", help="send no live synthetic traffic")
    parser.add_argument("--rate", type=float, default=3.0, help="live synthetic requests a second")
    args = parser.parse_args()
    app = create_app()
    if not args.no_seed:
        began = time.perf_counter()
        added = seed_if_empty(app, args.days, args.per_day)
        if added:
            print(f"seeded {added:,} synthetic requests in {time.perf_counter() - began:.1f} s")
    if not args.quiet:
        send_live_traffic(app, args.rate)
        print(f"sending about {args.rate:g} synthetic requests a second (--quiet: none)")
    print(f"dashboard: http://{args.host}:{args.port}/statistics")
    app.run(host=args.host, port=args.port)


if __name__ == "__main__":
    main()
