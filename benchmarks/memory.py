"""How much memory a flood of huge requests costs while the database is unreachable.

    python benchmarks/memory.py [--requests 6000] [--rounds 2] [--quick]
    python benchmarks/memory.py --trees /tmp/fst-base /work/main   # A/B, interleaved

Each run is a fresh child process: a Flask app with Statistics in the default
(buffered) mode, recording into a PostgreSQL URL on a closed port, takes ``--requests``
requests through the test client, each with a unique 128 KB User-Agent, a unique
128 KB Referer and a unique ~8 KB path. The child prints its RSS growth (VmRSS
before and after the flood, and the peak) and ``statistics.health()``. With
``--trees``, rounds alternate between source trees (each put first on PYTHONPATH) and
the figures are medians per tree.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import socket
import statistics as stats
import subprocess
import sys
import time
from pathlib import Path

KB = 1024
MB = 1024 * 1024


def rss_bytes(field: str = "VmRSS") -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * KB
    raise RuntimeError(f"{field} not found in /proc/self/status; this needs Linux")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child(requests: int, database_url: str) -> dict[str, object]:
    from flask import Flask
    from flask_sqlalchemy import SQLAlchemy

    import flask_statistics
    from flask_statistics import Statistics

    app = Flask("memory_bench")
    app.config["SQLALCHEMY_DATABASE_URI"] = database_url
    db = SQLAlchemy(app)
    statistics = Statistics(app, db)

    @app.route("/<path:anything>")
    def anything(anything: str) -> str:
        return "ok"

    client = app.test_client()
    filler = "x" * (128 * KB - 16)
    path_filler = "p" * (8 * KB - 32)
    # Warm up: imports, the writer thread, the first connection error.
    for i in range(20):
        client.get(f"/warm/{i}", headers={"User-Agent": "warm", "Referer": "http://warm/"})
    time.sleep(0.5)
    gc.collect()
    before = rss_bytes()
    started = time.perf_counter()
    for i in range(requests):
        # Unique strings, as a real server would build for each request.
        client.get(
            f"/flood/{i:08d}/{path_filler}",
            headers={
                "User-Agent": f"Mozilla/5.0 {i:08d} {filler}",
                "Referer": f"http://example.com/{i:08d}/{filler}",
            },
        )
    elapsed = time.perf_counter() - started
    gc.collect()
    after = rss_bytes()
    health = statistics.health(app=app)
    return {
        "module": flask_statistics.__file__,
        "requests": requests,
        "seconds": elapsed,
        "rss_before_mb": before / MB,
        "rss_after_mb": after / MB,
        "rss_growth_mb": (after - before) / MB,
        "rss_peak_mb": rss_bytes("VmHWM") / MB,
        "queued": health.queued,
        "dropped": health.dropped,
        "written": health.written,
    }


def run_child(tree: str | None, requests: int, database_url: str) -> dict[str, object]:
    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [tree, env.get("PYTHONPATH")]))
    # Keep the unwritten-rows log lines out of the figures.
    result = subprocess.run(
        [sys.executable, __file__, "--child", "--requests", str(requests), "--database-url", database_url],
        env=env, capture_output=True, text=True, timeout=600, cwd=Path(__file__).parent,
    )
    if result.returncode != 0:
        raise SystemExit(f"child failed ({tree or 'current tree'}):\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=6000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--trees", nargs="*", default=None, help="source trees to compare")
    parser.add_argument("--quick", action="store_true", help="1,000 requests, 1 round")
    parser.add_argument("--database-url", default=None, help="an unreachable database URL")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    database_url = args.database_url or (
        f"postgresql+psycopg://postgres@127.0.0.1:{closed_port()}/test?connect_timeout=2"
    )
    if args.child:
        print(json.dumps(child(args.requests, database_url)))
        return
    if args.quick:
        args.requests, args.rounds = 1000, 1
    trees: list[str | None] = list(args.trees) if args.trees else [None]
    results: dict[str | None, list[dict[str, object]]] = {tree: [] for tree in trees}
    print(f"{args.requests} requests of ~264 KB each, database unreachable, buffered mode")
    for round_no in range(args.rounds):
        for tree in trees:
            result = run_child(tree, args.requests, database_url)
            results[tree].append(result)
            print(
                f"  round {round_no + 1} {tree or 'current'}: RSS +{result['rss_growth_mb']:.0f} MB "
                f"(peak {result['rss_peak_mb']:.0f} MB), queued {result['queued']}, "
                f"dropped {result['dropped']}, {result['seconds']:.1f} s"
            )
    print()
    for tree, runs in results.items():
        growth = stats.median(float(r["rss_growth_mb"]) for r in runs)  # type: ignore[arg-type]
        peak = stats.median(float(r["rss_peak_mb"]) for r in runs)  # type: ignore[arg-type]
        last = runs[-1]
        print(
            f"{tree or 'current'} ({last['module']}): median RSS growth {growth:.0f} MB, "
            f"peak {peak:.0f} MB; queued {last['queued']}, dropped {last['dropped']} "
            f"(target: growth <= 64 MB)"
        )


if __name__ == "__main__":
    main()
