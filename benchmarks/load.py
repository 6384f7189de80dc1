"""Throughput and tail latency under load: gunicorn, bare versus with Statistics.

    python benchmarks/load.py [--rounds 3] [--duration 5] [--quick]
    python benchmarks/load.py --trees /tmp/fst-base /work/main   # A/B, interleaved

gunicorn runs 2 gthread workers serving a small app whose one route renders a Jinja
template. Variants: ``bare`` (Flask and Flask-SQLAlchemy, no Statistics), then
Statistics in buffered mode on a SQLite file, on PostgreSQL
(STATISTICS_BENCH_POSTGRESQL, default postgresql+psycopg://postgres@127.0.0.1:5432/test)
and on a database that is down (a closed port). Load comes from ``wrk --latency``
over loopback (or a small Python client when wrk is not installed). Rounds
interleave the variants; figures are medians, and each variant is compared with bare
(targets: throughput >= 0.95x, p99 <= 1.1x). CPU time per request, summed over the
workers' threads (the writer's included), is printed too, so a slow run shows
whether the workers worked more or waited more, with the busiest worker's share of
that CPU: a run where one worker served nearly everything is run again (see
``LOPSIDED``). With ``--trees``, the Statistics variants run once per source tree
(put first on PYTHONPATH).
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import shutil
import signal
import socket
import statistics as stats
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from servers import free_port, wait_until_up

POSTGRESQL = os.environ.get(
    "STATISTICS_BENCH_POSTGRESQL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)

APP = textwrap.dedent(
    """
    import os

    from flask import Flask, render_template
    from flask_sqlalchemy import SQLAlchemy

    ITEMS = [{"name": f"item {n}", "price": n * 1.5} for n in range(10)]


    def create_app():
        app = Flask(__name__)
        app.config["SQLALCHEMY_DATABASE_URI"] = os.environ["BENCH_DATABASE_URL"]
        app.config["STATISTICS_TABLE_NAME"] = os.environ["BENCH_TABLE"]
        db = SQLAlchemy(app)
        if os.environ["BENCH_STATISTICS"] == "yes":
            from flask_statistics import Statistics

            Statistics(app, db)
            if os.environ.get("BENCH_CREATE") == "yes":
                with app.app_context():
                    db.create_all()

        @app.route("/")
        def index():
            return render_template("page.html", items=ITEMS)

        return app
    """
)
PAGE = "<ul>{% for item in items %}<li>{{ item.name }}: {{ item.price }}</li>{% endfor %}</ul>\n"


@dataclass
class Variant:
    name: str
    tree: str | None
    statistics: bool
    database_url: str
    creates_table: bool


@dataclass
class Result:
    requests_per_second: float
    p50: float
    p99: float
    errors: str
    requests: int
    cpu_per_request: float = 0.0
    busiest_share: float = 0.0


#: A run where one worker did more than this share of the work is run again: wrk
#: keeps its 32 connections for the whole run, and now and then one worker accepts
#: them all (bare included), which halves throughput whatever the app does.
LOPSIDED = 0.7
LOPSIDED_TRIES = 3


def tree_env(tree: str | None, directory: str) -> dict[str, str]:
    env = dict(os.environ)
    paths = [directory] + ([tree] if tree else []) + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}


def wrk(port: int, duration: float, connections: int) -> Result:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration:g}s", "--latency", f"http://127.0.0.1:{port}/"],
        capture_output=True, text=True, timeout=duration + 60, check=True,
    ).stdout

    def latency(pct: str) -> float:
        match = re.search(rf"^\s*{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if match is None:
            raise SystemExit(f"cannot read the {pct}% latency from wrk's output:\n{out}")
        return float(match[1]) * _UNITS[match[2]]

    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    errors = "; ".join(
        line.strip() for line in out.splitlines() if "Socket errors" in line or "Non-2xx" in line
    )
    return Result(
        float(rps[1]) if rps else 0.0, latency("50"), latency("99"), errors,
        int(total[1]) if total else 0,
    )


def workers_cpu_seconds(master: int) -> dict[int, float]:
    """CPU time (user + system, all threads) used so far by each of ``master``'s children."""
    ticks = os.sysconf("SC_CLK_TCK")
    used: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                # The command name may hold spaces; the fields after it are fixed.
                fields = stat.read().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == master:
            used[int(entry)] = (int(fields[11]) + int(fields[12])) / ticks
    return used


def python_client(port: int, duration: float, connections: int) -> Result:
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    end = time.monotonic() + duration

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine: list[float] = []
        while time.monotonic() < end:
            started = time.perf_counter()
            conn.request("GET", "/")
            response = conn.getresponse()
            response.read()
            mine.append(time.perf_counter() - started)
            if response.status != 200:
                errors[0] += 1
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ordered = sorted(latencies)
    return Result(
        len(ordered) / duration,
        ordered[len(ordered) // 2],
        ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
        f"Non-2xx: {errors[0]}" if errors[0] else "",
        len(ordered),
    )


def run_variant(variant: Variant, duration: float, connections: int) -> Result:
    table = f"fst_load_{uuid.uuid4().hex[:10]}"
    with tempfile.TemporaryDirectory() as directory:
        Path(directory, "loadbench_app.py").write_text(APP)
        Path(directory, "templates").mkdir()
        Path(directory, "templates", "page.html").write_text(PAGE)
        url = variant.database_url.replace("{dir}", directory)
        env = {
            **tree_env(variant.tree, directory), "BENCH_DATABASE_URL": url, "BENCH_TABLE": table,
            "BENCH_STATISTICS": "yes" if variant.statistics else "no",
        }
        if variant.statistics and variant.creates_table:
            # Create the table once, so the workers don't race to create it.
            subprocess.run(
                [sys.executable, "-c", "import loadbench_app; loadbench_app.create_app()"],
                cwd=directory, env={**env, "BENCH_CREATE": "yes"}, check=True, timeout=60,
                capture_output=True,
            )
        port = free_port()
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "gunicorn", "-w", "2", "-k", "gthread", "--threads", "4",
                "-b", f"127.0.0.1:{port}", "loadbench_app:create_app()",
            ],
            cwd=directory, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            wait_until_up(port, proc)
            load = wrk if shutil.which("wrk") else python_client
            load(port, min(2.0, duration), connections)  # warm up both workers
            cpu_before = workers_cpu_seconds(proc.pid)
            result = load(port, duration, connections)
            cpu_after = workers_cpu_seconds(proc.pid)
            used = [cpu_after[pid] - cpu_before.get(pid, 0.0) for pid in cpu_after]
            result.cpu_per_request = sum(used) / max(1, result.requests)
            # wrk keeps its connections for the whole run: when one worker took most of
            # them, the run measures one process's GIL, not the app.
            result.busiest_share = max(used) / sum(used) if sum(used) else 0.0
            return result
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if variant.statistics and variant.creates_table and not url.startswith("sqlite"):
                engine = sa.create_engine(url)
                with engine.begin() as conn:
                    # The rollup tables db.create_all() made beside it, too.
                    for name in (f"{table}_rollup_state", f"{table}_rollup", table):
                        conn.execute(sa.text(f"DROP TABLE IF EXISTS {name}"))
                engine.dispose()


def postgresql_reachable() -> bool:
    engine = sa.create_engine(POSTGRESQL)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        return True
    except Exception as exc:
        print(f"PostgreSQL at {POSTGRESQL} is not reachable ({type(exc).__name__}); skipping it")
        return False
    finally:
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trees", nargs="*", default=None, help="source trees to compare")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of load per run")
    # Each worker accepts kept-alive connections for itself: with few of them, one
    # worker often gets them all and throughput halves at random. 32 spread evenly.
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--quick", action="store_true", help="1 round of 3 s runs")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.duration = 1, 3.0
    trees: list[str | None] = list(args.trees) if args.trees else [None]

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    databases = {"SQLite": ("sqlite:///{dir}/load.db", True)}
    if postgresql_reachable():
        databases["PostgreSQL"] = (POSTGRESQL, True)
    databases["database down"] = (
        f"postgresql+psycopg://postgres@127.0.0.1:{closed}/test?connect_timeout=2", False
    )
    variants = [Variant("bare", None, False, "sqlite:///{dir}/load.db", False)]
    for db_name, (url, creates) in databases.items():
        for tree in trees:
            label = db_name if len(trees) == 1 else f"{db_name} [{tree}]"
            variants.append(Variant(label, tree, True, url, creates))

    client = "wrk" if shutil.which("wrk") else "a Python client (wrk not found)"
    print(
        f"gunicorn 2 gthread workers x 4 threads; {client}, {args.connections} connections, "
        f"{args.duration:g} s per run, {args.rounds} round(s)"
    )
    results: dict[str, list[Result]] = {v.name: [] for v in variants}
    for round_no in range(args.rounds):
        for variant in variants:
            for _ in range(LOPSIDED_TRIES):
                result = run_variant(variant, args.duration, args.connections)
                if result.busiest_share <= LOPSIDED:
                    break
                print(f"  round {round_no + 1} {variant.name:<40} one worker served "
                      f"{result.busiest_share:.0%} of it: run again")
            results[variant.name].append(result)
            print(
                f"  round {round_no + 1} {variant.name:<40} {result.requests_per_second:6.0f} req/s  "
                f"p50 {result.p50 * 1e3:6.2f} ms  p99 {result.p99 * 1e3:6.2f} ms  "
                f"CPU {result.cpu_per_request * 1e6:5.0f} us/req  "
                f"busiest worker {result.busiest_share:4.0%}  {result.errors}"
            )

    def medians(name: str) -> tuple[float, float, float, float]:
        runs = results[name]
        return (
            stats.median(r.requests_per_second for r in runs),
            stats.median(r.p50 for r in runs),
            stats.median(r.p99 for r in runs),
            stats.median(r.cpu_per_request for r in runs),
        )

    bare_rps, _, bare_p99, bare_cpu = medians("bare")
    print()
    print(
        f"{'variant':<40} {'req/s':>6} {'p50':>9} {'p99':>9} {'CPU/req':>9}  vs bare "
        "(targets: >= 0.95x req/s, <= 1.1x p99)"
    )
    for variant in variants:
        rps, p50, p99, cpu = medians(variant.name)
        print(
            f"{variant.name:<40} {rps:6.0f} {p50 * 1e3:7.2f}ms {p99 * 1e3:7.2f}ms {cpu * 1e6:6.0f}us  "
            f"{rps / bare_rps:.2f}x req/s, {p99 / bare_p99:.2f}x p99, {cpu / bare_cpu:.2f}x CPU/req"
        )

if __name__ == "__main__":
    main()
