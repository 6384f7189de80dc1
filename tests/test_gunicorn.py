"""The demo app under gunicorn with two workers: every request lands exactly once,
including the rows still queued when the workers are told to stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import sqlalchemy as sa

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
N = 200


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(port: int, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"gunicorn exited early: {proc.stderr.read()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("gunicorn did not start")


def get(url: str) -> int:
    try:
        with urllib.request.urlopen(url) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.mark.parametrize("preload", [False, True], ids=["fork-per-worker", "preload"])
def test_two_workers_write_every_request_exactly_once(tmp_path, preload):
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    # Create the schema once so the workers don't race to create it.
    subprocess.run(
        [sys.executable, "-c", f"import demo; demo.create_app({url!r})"],
        cwd=EXAMPLES, check=True, timeout=60,
    )
    port = free_port()
    # A long flush interval leaves the rows queued until the workers stop.
    env = {**os.environ, "DEMO_DATABASE_URL": url, "DEMO_STATISTICS_FLUSH_INTERVAL": "3600"}
    command = [
        sys.executable, "-m", "gunicorn", "-w", "2", "-b", f"127.0.0.1:{port}",
        "--graceful-timeout", "20", "demo:create_app()",
    ]
    if preload:
        command.insert(3, "--preload")
    proc = subprocess.Popen(command, cwd=EXAMPLES, env=env, stderr=subprocess.PIPE, text=True)
    try:
        wait_until_up(port, proc)
        statuses = [get(f"http://127.0.0.1:{port}/products/{i}?via=test") for i in range(1, N + 1)]
        assert statuses == [200] * 100 + [404] * (N - 100)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        paths = [p for (p,) in conn.execute(sa.text("SELECT path FROM statistics_request"))]
    engine.dispose()
    assert len(paths) == N
    assert sorted(paths) == sorted(f"/products/{i}" for i in range(1, N + 1))
