"""SIGTERM under servers that don't turn it into a normal exit (Werkzeug's
``app.run()``, waitress): every queued row is written before the process dies, a
host's own handler still runs, and an ignored SIGTERM stays ignored."""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import sqlalchemy as sa

from conftest import require_or_skip, rows, unique_table

N = 300

SERVER = textwrap.dedent(
    """
    import os
    import signal
    import sys

    from flask import Flask
    from flask_sqlalchemy import SQLAlchemy

    from flask_statistics import Statistics

    server, url, port, table, host_handler, create = sys.argv[1:]

    if host_handler == "ignore":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    elif host_handler == "chain":
        def on_sigterm(signum, frame):
            print("host handler ran", file=sys.stderr, flush=True)
            sys.exit(3)

        signal.signal(signal.SIGTERM, on_sigterm)

    app = Flask(__name__)
    app.config.update(
        SQLALCHEMY_DATABASE_URI=url,
        STATISTICS_TABLE_NAME=table,
        # Keep every row queued until the signal arrives.
        STATISTICS_FLUSH_INTERVAL=3600,
        STATISTICS_SHUTDOWN_TIMEOUT=float(os.environ.get("SHUTDOWN_TIMEOUT", "5")),
        STATISTICS_EXCLUDE=("/ready",),
    )
    db = SQLAlchemy(app)
    Statistics(app, db)
    if create == "yes":
        with app.app_context():
            db.create_all()

    @app.route("/ready")
    def ready():
        return "ready"

    @app.route("/hit/<int:n>")
    def hit(n):
        return f"hit {n}"

    if server == "werkzeug":
        app.run(host="127.0.0.1", port=int(port), threaded=True)
    else:
        import waitress

        waitress.serve(app, host="127.0.0.1", port=int(port), threads=4, _quiet=True)
    """
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


class Server:
    def __init__(
        self, tmp_path: Path, kind: str, url: str, *, host_handler: str = "none",
        create: bool = True, shutdown_timeout: float = 5.0,
    ) -> None:
        script = tmp_path / "server.py"
        script.write_text(SERVER)
        self.port = free_port()
        self.table = unique_table()
        self.url = url
        self.created = create
        env = {**os.environ, "SHUTDOWN_TIMEOUT": str(shutdown_timeout)}
        # A file, not a pipe: a full pipe would block the server's request log.
        self._stderr_path = tmp_path / "server.err"
        self._stderr = open(self._stderr_path, "w")
        self.proc = subprocess.Popen(
            [sys.executable, str(script), kind, url, str(self.port), self.table,
             host_handler, "yes" if create else "no"],
            env=env, stdout=subprocess.DEVNULL, stderr=self._stderr,
        )
        try:
            self._wait_until_up()
        except BaseException:
            self.kill()
            raise

    def _wait_until_up(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"the server exited early: {self.stderr()}")
            try:
                if get(self.base + "/ready") == 200:
                    return
            except OSError:
                time.sleep(0.1)
        raise AssertionError("the server did not start within 30 s")

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def hit(self, count: int, start: int = 0) -> None:
        statuses = [get(f"{self.base}/hit/{n}") for n in range(start, start + count)]
        assert statuses == [200] * count

    def signal_and_wait(self, signum: int, timeout: float = 30) -> tuple[int, str]:
        self.proc.send_signal(signum)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"the server did not exit within {timeout} s") from None
        return self.proc.returncode, self.stderr()

    def stderr(self) -> str:
        return self._stderr_path.read_text()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._stderr.close()

    def paths(self) -> list[str]:
        engine = sa.create_engine(self.url)
        try:
            with engine.connect() as conn:
                return [p for (p,) in conn.execute(sa.text(f"SELECT path FROM {self.table}"))]
        finally:
            engine.dispose()

    def drop_table(self) -> None:
        """Drop the request table and the rollup tables ``db.create_all()`` made."""
        engine = sa.create_engine(self.url)
        try:
            with engine.begin() as conn:
                for name in (f"{self.table}_rollup", f"{self.table}_rollup_state", self.table):
                    conn.execute(sa.text(f"DROP TABLE IF EXISTS {name}"))
        finally:
            engine.dispose()


@pytest.fixture
def servers():
    started: list[Server] = []
    yield started
    for server in started:
        server.kill()
        if server.created and not server.url.startswith("sqlite"):
            server.drop_table()


@pytest.mark.parametrize("kind", ["werkzeug", "waitress"])
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_sigterm_writes_every_queued_row_then_dies_by_sigterm(tmp_path, servers, database_url, kind):
    if kind == "waitress" and importlib.util.find_spec("waitress") is None:
        require_or_skip("waitress is not installed; pip install -e '.[test]' installs it")
    server = Server(tmp_path, kind, database_url)
    servers.append(server)
    server.hit(N)
    status, stderr = server.signal_and_wait(signal.SIGTERM)
    assert status == -signal.SIGTERM, stderr
    assert sorted(server.paths()) == sorted(f"/hit/{n}" for n in range(N))


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_host_handler_installed_first_still_decides_how_to_exit(tmp_path, servers, database_url):
    server = Server(tmp_path, "werkzeug", database_url, host_handler="chain")
    servers.append(server)
    server.hit(N)
    status, stderr = server.signal_and_wait(signal.SIGTERM)
    assert "host handler ran" in stderr
    assert status == 3, stderr
    # The host exited normally, so the rows were written at exit.
    assert len(server.paths()) == N


@pytest.mark.parametrize("backend", ["sqlite"])
def test_an_ignored_sigterm_stays_ignored(tmp_path, servers, database_url):
    server = Server(tmp_path, "werkzeug", database_url, host_handler="ignore")
    servers.append(server)
    server.hit(10)
    server.proc.send_signal(signal.SIGTERM)
    time.sleep(1.0)  # time for a handler to run, if one wrongly did
    assert server.proc.poll() is None, server.stderr()
    server.hit(10, start=10)
    status, stderr = server.signal_and_wait(signal.SIGINT)
    assert len(server.paths()) == 20, stderr


def test_sigterm_with_the_database_down_exits_in_time_and_says_how_many_rows_were_lost(tmp_path, servers):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    url = f"postgresql+psycopg://postgres@127.0.0.1:{closed_port}/test?connect_timeout=2"
    timeout = 2.0
    server = Server(tmp_path, "werkzeug", url, create=False, shutdown_timeout=timeout)
    servers.append(server)
    server.hit(50)
    started = time.monotonic()
    status, stderr = server.signal_and_wait(signal.SIGTERM, timeout=timeout + 20)
    elapsed = time.monotonic() - started
    assert status == -signal.SIGTERM, stderr
    assert elapsed < timeout + 5, f"took {elapsed:.1f} s to exit"
    counts = [int(n) for n in re.findall(r"(\d+) row", stderr)]
    assert 50 in counts or sum(counts) == 50, stderr


@pytest.mark.parametrize("backend", ["sqlite"])
def test_an_app_set_up_outside_the_main_thread_records_as_usual(make_app):
    # Signal handlers can only be set from the main thread; setting up there must
    # not fail because of it.
    built: list[tuple] = []
    errors: list[BaseException] = []

    def build() -> None:
        try:
            built.append(make_app())
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=build)
    thread.start()
    thread.join(30)
    assert not errors, errors
    app, _, _, statistics = built[0]

    @app.route("/")
    def index():
        return "ok"

    assert app.test_client().get("/").status_code == 200
    assert [row.path for row in rows(app, statistics)] == ["/"]
