"""What hostile user agents cost: the parser alone, and the app's latency under a flood.

    python benchmarks/useragent.py [--rounds 2] [--seconds 5] [--quick]
    python benchmarks/useragent.py --trees /tmp/fst-base /work/main   # A/B, interleaved

Part 1 times ``flask_statistics.useragent.parse`` on crafted user agents of 512 B,
8 KB and 64 KB, in shapes that are slow for ua-parser's regexes (long runs of one
character, many ``;`` or ``/`` separators, long version-like tokens). Every string is
unique, so no cache answers. A cell stops repeating once it has used its time budget.

Part 2 runs gunicorn (1 worker, gthread) serving a small app with Statistics
(buffered, SQLite file). One client thread sends normal requests back to back over a
kept-alive connection and records their latency, first alone, then while a second
client sends about 10 requests/s, each with a unique 8 KB User-Agent. A control phase
sends the same 8 KB User-Agent each time (parsed once, then cached), to tell what the
big requests cost without the parsing. It prints p50 and p95 and the p95 ratio of the
unique flood to no flood (target: within 1.2x).

With ``--trees``, each part runs in a child process per tree (put first on
PYTHONPATH), rounds alternating between trees; figures are medians.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics as stats
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import typing as t
from pathlib import Path

from servers import free_port, wait_until_up

KB = 1024
SIZES = {"512 B": 512, "8 KB": 8 * KB, "64 KB": 64 * KB}


def shapes(size: int, unique: str) -> dict[str, str]:
    """User agents of about ``size`` characters; ``unique`` makes each one new."""
    half = size // 2

    def fit(text: str) -> str:
        return (text[: size - len(unique) - 1] + " " + unique)[:size]

    return {
        "one char": fit("a" * size),
        "digits": fit("1" * size),
        "spaces": fit("Mozilla/5.0 " + " " * size),
        "semicolons": fit("Mozilla/5.0 (" + "; " * half),
        "slashes": fit("Mozilla/5.0 " + "a/" * half),
        "version-like": fit("Mozilla/5.0 (Windows NT 10.0) Chrome/" + "1." * half),
        "android model": fit("Mozilla/5.0 (Linux; Android 10; " + "A" * size + " Build/"),
        "open parens": fit("Mozilla/5.0 " + "(" * size),
    }


def parse_times(budget: float, reps: int) -> dict[str, object]:
    import flask_statistics
    from flask_statistics.useragent import parse

    parse("Mozilla/5.0 (X11; Linux x86_64; rv:72.0) Gecko/20100101 Firefox/72.0")  # load the regexes
    cells: dict[str, dict[str, list[float]]] = {}
    counter = 0
    for size_name, size in SIZES.items():
        cells[size_name] = {}
        for shape in shapes(size, "0"):
            timings: list[float] = []
            spent = 0.0
            while len(timings) < reps and spent < budget:
                counter += 1
                ua = shapes(size, f"u{counter}")[shape]
                started = time.perf_counter()
                parse(ua)
                elapsed = time.perf_counter() - started
                timings.append(elapsed)
                spent += elapsed
            cells[size_name][shape] = timings
    return {"module": flask_statistics.__file__, "cells": cells}


APP = textwrap.dedent(
    """
    import os

    from flask import Flask, render_template_string
    from flask_sqlalchemy import SQLAlchemy

    from flask_statistics import Statistics

    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = os.environ["BENCH_DATABASE_URL"]
    db = SQLAlchemy(app)
    Statistics(app, db)
    with app.app_context():
        db.create_all()

    @app.route("/")
    def index():
        return render_template_string("<p>Hello {{ name }}</p>", name="World")
    """
)


def measure_latency(port: int, seconds: float) -> list[float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"}
    latencies: list[float] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        started = time.perf_counter()
        conn.request("GET", "/", headers=headers)
        conn.getresponse().read()
        latencies.append(time.perf_counter() - started)
    conn.close()
    return latencies


def flood(port: int, stop: threading.Event, rate: float, sent: list[int], unique: bool) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    filler = "Mozilla/5.0 (" + "; " * (4 * KB)
    n = 0
    next_at = time.monotonic()
    while not stop.is_set():
        n += 1
        prefix = f"{n:08d}" if unique else "00000000"
        conn.request("GET", "/", headers={"User-Agent": (prefix + filler)[: 8 * KB]})
        conn.getresponse().read()
        sent[0] += 1
        next_at += 1 / rate
        stop.wait(max(0.0, next_at - time.monotonic()))
    conn.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def flood_latency(seconds: float, rate: float) -> dict[str, object]:
    import flask_statistics

    with tempfile.TemporaryDirectory() as directory:
        Path(directory, "uabench_app.py").write_text(APP)
        port = free_port()
        env = {**os.environ, "BENCH_DATABASE_URL": f"sqlite:///{directory}/bench.db"}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [directory, env.get("PYTHONPATH")]))
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "gunicorn", "-w", "1", "-k", "gthread", "--threads", "4",
                "-b", f"127.0.0.1:{port}", "--limit-request-field_size", "32768",
                "uabench_app:app",
            ],
            cwd=directory, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            wait_until_up(port, proc)
            measure_latency(port, 1.0)  # warm up
            quiet = measure_latency(port, seconds)
            phases: dict[str, list[float]] = {}
            sent = [0]
            # The same 8 KB user agent every time (parsed once, then cached) tells
            # what the big requests cost by themselves; unique ones add the parsing.
            for phase, unique in (("repeated", False), ("flood", True)):
                stop = threading.Event()
                sent[0] = 0
                flooder = threading.Thread(target=flood, args=(port, stop, rate, sent, unique))
                flooder.start()
                time.sleep(1.0)  # let the writer start chewing on the flood
                phases[phase] = measure_latency(port, seconds)
                stop.set()
                flooder.join(60)
        finally:
            proc.terminate()
            proc.wait(30)
    return {
        "module": flask_statistics.__file__,
        "quiet": quiet,
        "repeated": phases["repeated"],
        "flood": phases["flood"],
        "flood_sent": sent[0],
        "flood_seconds": seconds + 1.0,  # the flood of the last phase
    }


def run_child(tree: str | None, part: str, args: argparse.Namespace) -> dict[str, t.Any]:
    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [tree, env.get("PYTHONPATH")]))
    command = [
        sys.executable, __file__, "--child", part, "--seconds", str(args.seconds),
        "--budget", str(args.budget), "--reps", str(args.reps), "--rate", str(args.rate),
    ]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        raise SystemExit(f"child failed ({tree or 'current tree'}):\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def report_parse(tree: str | None, result: dict[str, t.Any]) -> None:
    print(f"\nparse() on {tree or 'current'} ({result['module']})")
    for size_name, cells in result["cells"].items():
        worst_shape = max(cells, key=lambda shape: max(cells[shape]))
        medians = {shape: stats.median(timings) for shape, timings in cells.items()}
        print(
            f"  {size_name:>6}: worst shape {worst_shape!r}: median {ms(medians[worst_shape])}, "
            f"max {ms(max(cells[worst_shape]))}; median over all shapes "
            f"{ms(stats.median(medians.values()))}"
        )
        for shape, timings in cells.items():
            print(f"          {shape:<14} median {ms(medians[shape]):>12}  max {ms(max(timings)):>12}  (n={len(timings)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trees", nargs="*", default=None, help="source trees to compare")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of the latency part")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each latency phase")
    parser.add_argument("--rate", type=float, default=10.0, help="flood requests per second")
    parser.add_argument("--budget", type=float, default=2.0, help="seconds per parse cell")
    parser.add_argument("--reps", type=int, default=15, help="most parses per cell")
    parser.add_argument("--skip-parse", action="store_true", help="only the latency part")
    parser.add_argument("--quick", action="store_true", help="short phases, 1 round, few reps")
    parser.add_argument("--child", choices=("parse", "latency"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "parse":
        print(json.dumps(parse_times(args.budget, args.reps)))
        return
    if args.child == "latency":
        print(json.dumps(flood_latency(args.seconds, args.rate)))
        return
    if args.quick:
        args.rounds, args.seconds, args.budget, args.reps = 1, 3.0, 0.5, 3
    trees: list[str | None] = list(args.trees) if args.trees else [None]

    if not args.skip_parse:
        print("Part 1: parse() on crafted user agents (unique strings, no cache hits)")
        for tree in trees:
            report_parse(tree, run_child(tree, "parse", args))

    print(f"\nPart 2: latency of normal requests, alone and with {args.rate:g} req/s of unique 8 KB user agents")
    results: dict[str | None, list[dict[str, t.Any]]] = {tree: [] for tree in trees}
    for round_no in range(args.rounds):
        for tree in trees:
            result = run_child(tree, "latency", args)
            results[tree].append(result)
            quiet, same, loud = result["quiet"], result["repeated"], result["flood"]
            print(
                f"  round {round_no + 1} {tree or 'current'}: alone p50 {ms(percentile(quiet, 0.5))} "
                f"p95 {ms(percentile(quiet, 0.95))} ({len(quiet)} req); one repeated 8 KB UA "
                f"p95 {ms(percentile(same, 0.95))}; unique 8 KB UAs p50 "
                f"{ms(percentile(loud, 0.5))} p95 {ms(percentile(loud, 0.95))} ({len(loud)} req, "
                f"{result['flood_sent'] / result['flood_seconds']:.1f} flood req/s)"
            )
    print()
    for tree, runs in results.items():
        quiet_p95 = stats.median(percentile(r["quiet"], 0.95) for r in runs)
        loud_p95 = stats.median(percentile(r["flood"], 0.95) for r in runs)
        quiet_p50 = stats.median(percentile(r["quiet"], 0.5) for r in runs)
        loud_p50 = stats.median(percentile(r["flood"], 0.5) for r in runs)
        same_p95 = stats.median(percentile(r["repeated"], 0.95) for r in runs)
        print(
            f"{tree or 'current'} ({runs[-1]['module']}): p50 {ms(quiet_p50)} -> {ms(loud_p50)}, "
            f"p95 {ms(quiet_p95)} -> {ms(loud_p95)}, p95 ratio {loud_p95 / quiet_p95:.2f}x "
            f"(target <= 1.2x); with one repeated 8 KB UA instead: p95 {ms(same_p95)}, "
            f"{same_p95 / quiet_p95:.2f}x"
        )


if __name__ == "__main__":
    main()
