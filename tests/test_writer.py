"""The write path: outages, the queue bound, fork safety and writes at exit."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest
import sqlalchemy as sa

from conftest import AppFactory, rows

REFUSED = {
    "postgresql": "postgresql+psycopg://postgres@127.0.0.1:1/test?connect_timeout=2",
    "mariadb": "mysql+pymysql://root@127.0.0.1:1/test?connect_timeout=2",
    "sqlite": "sqlite:////nonexistent-directory/statistics.db",
}


def hello(app):
    @app.route("/")
    def index():
        return "Hello World!"


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


@pytest.fixture
def down_app(backend):
    factory = AppFactory(REFUSED[backend])

    def make(**config):
        app, db, model, statistics = factory(
            create=False,
            config={"STATISTICS_FLUSH_INTERVAL": 0.05, "STATISTICS_SHUTDOWN_TIMEOUT": 0.5, **config},
        )
        hello(app)
        return app, statistics

    yield make
    for cleanup in factory._cleanups:
        try:
            cleanup()
        except sa.exc.OperationalError:
            pass


def test_unreachable_database_never_fails_requests(down_app):
    app, statistics = down_app()
    client = app.test_client()
    assert [client.get("/").status_code for _ in range(50)] == [200] * 50
    assert wait_for(lambda: statistics.health().last_error is not None)
    health = statistics.health()
    assert "OperationalError" in health.last_error
    assert health.written == 0
    assert health.queued + health.dropped == 50
    assert statistics.flush(timeout=0.2) is False


def test_queue_bound_drops_and_counts(down_app):
    app, statistics = down_app(STATISTICS_QUEUE_SIZE=10, STATISTICS_BATCH_SIZE=10)
    client = app.test_client()
    for _ in range(40):
        assert client.get("/").status_code == 200
    health = statistics.health()
    assert health.queued + health.dropped == 40
    assert health.queued <= 20  # the bound plus one batch held for retry
    assert health.dropped >= 20


def test_stop_during_an_outage_gives_up_and_counts(down_app):
    app, statistics = down_app()
    client = app.test_client()
    for _ in range(5):
        client.get("/")
    writer = app.extensions["statistics"].writer
    writer.stop(timeout=0.5)
    health = statistics.health()
    assert (health.written, health.dropped, health.queued) == (0, 5, 0)


def test_rows_are_written_once_the_table_exists(make_app):
    app, db, model, statistics = make_app(create=False, config={"STATISTICS_FLUSH_INTERVAL": 0.05})
    hello(app)
    client = app.test_client()
    for _ in range(7):
        client.get("/")
    assert wait_for(lambda: statistics.health().last_error is not None)
    assert statistics.health().written == 0
    with app.app_context():
        model.__table__.create(db.engine)
    assert len(rows(app, statistics)) == 7
    assert statistics.health().dropped == 0


def test_batches_are_written_in_order(make_app):
    app, db, model, statistics = make_app(config={"STATISTICS_BATCH_SIZE": 7})
    client = app.test_client()
    for i in range(50):
        client.get(f"/page/{i}")
    got = rows(app, statistics)
    assert [r.path for r in got] == [f"/page/{i}" for i in range(50)]
    assert statistics.health().written == 50


@pytest.mark.parametrize("backend", ["sqlite"])
def test_fork_gives_the_child_its_own_writer(make_app):
    app, db, model, statistics = make_app(
        config={"STATISTICS_FLUSH_INTERVAL": 60.0, "STATISTICS_BATCH_SIZE": 1000}
    )
    hello(app)
    client = app.test_client()
    client.get("/first")
    assert statistics.flush(timeout=10)  # the parent's writer is idle, not mid-write
    for _ in range(3):
        client.get("/")  # queued in the parent, not yet written
    with app.app_context():
        pool = db.engine.pool
        with db.engine.connect():
            pass
        assert pool.checkedin() == 1
    pid = os.fork()
    if pid == 0:  # child
        code = 1
        try:
            with app.app_context():
                if db.engine.pool.checkedin() != 0:
                    os._exit(4)  # inherited pooled connections were kept
            child = app.test_client()
            child.get("/child")
            child.get("/child")
            flushed = statistics.flush(timeout=10)
            code = 0 if flushed and statistics.health().written == 2 else 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    got = rows(app, statistics)
    assert sorted(r.path for r in got) == ["/", "/", "/", "/child", "/child", "/first"]


def test_queued_rows_are_written_at_interpreter_exit(tmp_path):
    db_file = tmp_path / "exit.db"
    script = textwrap.dedent(
        f"""
        from flask import Flask
        from flask_sqlalchemy import SQLAlchemy
        from flask_statistics import Statistics

        app = Flask(__name__)
        app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite:///{db_file}"
        app.config["STATISTICS_FLUSH_INTERVAL"] = 3600
        app.config["STATISTICS_BATCH_SIZE"] = 100000
        db = SQLAlchemy(app)
        Statistics(app, db)
        with app.app_context():
            db.create_all()
        client = app.test_client()
        for i in range(123):
            client.get(f"/{{i}}")
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    engine = sa.create_engine(f"sqlite:///{db_file}")
    with engine.connect() as conn:
        count = conn.execute(sa.text("SELECT COUNT(*) FROM statistics_request")).scalar()
    engine.dispose()
    assert count == 123
