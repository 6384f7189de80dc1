"""The write path: outages, the queue bound, fork safety and writes at exit."""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
import textwrap
import threading
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


def test_a_table_created_while_a_write_fails_loses_no_row(make_app, monkeypatch):
    # The insert fails on the missing table, then the table appears before the writer
    # checks whether it takes inserts: the rows were not to blame, and are written.
    from flask_statistics import faults

    app, db, model, statistics = make_app(create=False, config={"STATISTICS_FLUSH_INTERVAL": 0.05})
    hello(app)
    probe = faults.accepts_inserts_probe

    def created_meanwhile(table):
        with app.app_context():
            model.__table__.create(db.engine, checkfirst=True)
        return probe(table)

    monkeypatch.setattr(faults, "accepts_inserts_probe", created_meanwhile)
    # One row: a batch of several would be split, and its halves written.
    app.test_client().get("/")
    assert len(rows(app, statistics)) == 1
    health = statistics.health()
    assert (health.written, health.rejected, health.dropped) == (1, 0, 0)


def test_batches_are_written_in_order(make_app):
    app, db, model, statistics = make_app(config={"STATISTICS_BATCH_SIZE": 7})
    client = app.test_client()
    for i in range(50):
        client.get(f"/page/{i}")
    got = rows(app, statistics)
    assert [r.path for r in got] == [f"/page/{i}" for i in range(50)]
    assert statistics.health().written == 50


def test_a_large_batch_is_written_whole_in_few_statements(make_app, backend):
    # SQLite's executemany gives up the GIL once per row, which cost the app's
    # request threads a thread switch per recorded row; rows go many per statement.
    app, db, model, statistics = make_app(config={"STATISTICS_FLUSH_INTERVAL": 60})
    table = app.extensions["statistics"].table.name
    inserts = []
    with app.app_context():
        engine = db.engine

    def count(conn, cursor, statement, parameters, context, executemany):
        target = statement.split("(")[0].split()
        if target[:1] in (["INSERT"], ["COPY"]) and target[-1].strip('"`') == table:
            inserts.append(executemany)

    sa.event.listen(engine, "before_cursor_execute", count)
    client = app.test_client()
    for i in range(1234):
        client.get(f"/page/{i}")
    got = rows(app, statistics)
    assert [r.path for r in got] == [f"/page/{i}" for i in range(1234)]
    assert statistics.health().written == 1234
    if backend == "sqlite":
        # Not executemany (one step, and one GIL release, per row) but statements of
        # 200 rows: the first request may be written alone, then 7.
        assert not any(inserts)
        assert 7 <= len(inserts) <= 8


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


# -- rows the database refuses ---------------------------------------------------------


def poison_check(table_name):
    return sa.CheckConstraint("path <> '/poison'", name=f"ck_{table_name}_path")


def test_a_refused_row_is_isolated_and_the_rest_written(make_app, caplog):
    app, db, model, statistics = make_app(
        table_args=(poison_check,), config={"STATISTICS_BATCH_SIZE": 50}
    )
    hello(app)
    client = app.test_client()
    paths = [f"/ok/{i}" for i in range(40)]
    paths[17] = "/poison"
    paths[31] = "/poison"
    for path in paths:
        client.get(path, headers={"User-Agent": "secret-agent/1.0"}, environ_base={"REMOTE_ADDR": "203.0.113.77"})
    written = [r.path for r in rows(app, statistics)]
    assert written == [p for p in paths if p != "/poison"]
    health = statistics.health()
    assert (health.written, health.rejected, health.dropped) == (38, 2, 0)
    assert health.last_error.startswith("row rejected: ")
    assert f"ck_{app.extensions['statistics'].table.name}_path" in health.last_error
    rejected = [r.getMessage() for r in caplog.records if "rejected a row" in r.getMessage()]
    assert len(rejected) == 2
    # The log says why, never what the row held.
    for text in [r.getMessage() for r in caplog.records] + [health.last_error]:
        assert "secret-agent" not in text and "203.0.113.77" not in text and "/poison" not in text
    # And the writer goes on.
    client.get("/after")
    assert rows(app, statistics)[-1].path == "/after"


def test_a_path_too_long_for_an_index_does_not_stop_recording(make_app, backend):
    # PostgreSQL: the classic model's unbounded strings plus a (date, path) index,
    # whose btree refuses a 6 KB key with ProgramLimitExceeded, which psycopg classes
    # as an OperationalError like a lost connection. SQLite and MariaDB take the
    # default model's (date, path) index, where the path is cut to its column.
    def index(table_name):
        return sa.Index(f"ix_{table_name}_date_path", "date", "path")

    if backend == "postgresql":
        setup = {"model": "verbatim", "table_args": (index,)}
    else:
        setup = {"model": "default"}
    app, db, model, statistics = make_app(config={"STATISTICS_BATCH_SIZE": 100}, **setup)
    hello(app)
    client = app.test_client()
    client.get("/before")
    # 2,000 characters that compress badly, about 6 KB in UTF-8.
    rng = random.Random(7)
    long_path = "/" + "".join(chr(rng.randrange(0x4E00, 0x9FFF)) for _ in range(1999))
    client.get(long_path)
    for i in range(20):
        client.get(f"/after/{i}")
    got = [r.path for r in rows(app, statistics)]
    after = [f"/after/{i}" for i in range(20)]
    health = statistics.health()
    if backend == "postgresql":
        assert got == ["/before"] + after
        assert (health.written, health.rejected, health.dropped, health.queued) == (21, 1, 0, 0)
        assert "ProgramLimitExceeded" in health.last_error
        assert long_path[1:20] not in health.last_error
    else:
        limit = app.extensions["statistics"].table.c.path.type.length
        assert got == ["/before", long_path[:limit]] + after
        assert (health.written, health.rejected) == (22, 0)


@pytest.mark.parametrize("backend", ["postgresql"])
def test_text_the_column_type_refuses_is_isolated(make_app):
    # A model that stores addresses in PostgreSQL's INET type; with ProxyFix or a
    # unix socket the address is not always an IP.
    from sqlalchemy.dialects.postgresql import INET

    app, db, model, statistics = make_app(columns={"remote_address": sa.Column(INET)})
    hello(app)
    client = app.test_client()
    client.get("/a", environ_base={"REMOTE_ADDR": "192.0.2.1"})
    client.get("/b", environ_base={"REMOTE_ADDR": "not-an-address"})
    client.get("/c", environ_base={"REMOTE_ADDR": "192.0.2.3"})
    assert [r.path for r in rows(app, statistics)] == ["/a", "/c"]
    health = statistics.health()
    assert (health.written, health.rejected) == (2, 1)
    assert "InvalidTextRepresentation" in health.last_error
    assert "not-an-address" not in health.last_error


@pytest.mark.parametrize("backend", ["sqlite"])
def test_text_a_strict_sqlite_column_refuses_is_isolated(make_app):
    # A STRICT table (SQLite 3.37+) checks types: text in an INTEGER column is refused.
    app, db, model, statistics = make_app(create=False)
    table = app.extensions["statistics"].table
    text_columns = ", ".join(
        f'"{c}" TEXT' for c in ("date", "method", "path", "user_agent", "exception",
                                 "referrer", "browser", "platform", "mimetype")
    )
    with app.app_context(), db.engine.begin() as conn:
        conn.exec_driver_sql(
            f'CREATE TABLE {table.name} ("index" INTEGER PRIMARY KEY, response_time REAL, '
            f"size INTEGER, status_code INTEGER, remote_address INTEGER, {text_columns}) STRICT"
        )
    hello(app)
    client = app.test_client()
    client.get("/a", environ_base={"REMOTE_ADDR": "1"})
    client.get("/b", environ_base={"REMOTE_ADDR": "not-an-address"})
    client.get("/c", environ_base={"REMOTE_ADDR": "3"})
    assert [r.path for r in rows(app, statistics)] == ["/a", "/c"]
    health = statistics.health()
    assert (health.written, health.rejected) == (2, 1)
    assert "cannot store TEXT value in INTEGER column" in health.last_error
    assert "not-an-address" not in health.last_error


@pytest.mark.parametrize("backend", ["mariadb"])
def test_text_a_3_byte_utf8_column_refuses_is_isolated(make_app):
    app, db, model, statistics = make_app(model="default")
    state = app.extensions["statistics"]
    with app.app_context(), db.engine.begin() as conn:
        conn.execute(sa.text(
            f"ALTER TABLE {state.table.name} MODIFY path VARCHAR(512) "
            "CHARACTER SET utf8mb3 COLLATE utf8mb3_general_ci"
        ))
    hello(app)
    client = app.test_client()
    client.get("/plain")
    client.get("/emoji/%F0%9F%98%80")  # 4-byte UTF-8: refused by utf8mb3 in strict mode
    client.get("/plain/again")
    got = [r.path for r in rows(app, statistics)]
    health = statistics.health()
    # MariaDB's default sql_mode is strict (STRICT_TRANS_TABLES): refused, isolated.
    assert got == ["/plain", "/plain/again"]
    assert (health.written, health.rejected) == (2, 1)
    assert "Incorrect string value" in health.last_error
    assert "\\xF0" not in health.last_error and "😀" not in health.last_error


def test_a_nul_byte_is_stored_replaced_not_refused(make_app):
    app, db, model, statistics = make_app()
    hello(app)
    client = app.test_client()
    client.get("/a%00b", headers={"User-Agent": "x\x00y"})
    client.get("/next")
    got = rows(app, statistics)
    assert [r.path for r in got] == ["/a\ufffdb", "/next"]
    assert got[0].user_agent == "x\ufffdy"
    assert statistics.health().rejected == 0


# -- memory ---------------------------------------------------------------------------


def test_the_queue_is_bounded_in_bytes(down_app):
    app, statistics = down_app(
        STATISTICS_QUEUE_BYTES=200_000, STATISTICS_QUEUE_SIZE=100_000, STATISTICS_REFERRER="full"
    )
    client = app.test_client()
    big = {"User-Agent": "u" * 131072, "Referer": "https://example.org/" + "r" * 131072}
    for i in range(400):
        client.get("/" + "p" * 8192, headers=big)
    health = statistics.health()
    assert health.queued + health.dropped == 400
    # Each record holds at most about 5 KB once cut: 200 KB fit about 40 of them.
    assert 20 <= health.queued <= 45
    assert health.dropped >= 355


# -- the app's own transaction ----------------------------------------------------------


def test_in_memory_sqlite_never_commits_the_apps_work(caplog):
    # The cookiecutter-flask / microblog test setup: sqlite:// shares one connection
    # (StaticPool) between db.session and every other thread.
    from flask import Flask
    from flask_sqlalchemy import SQLAlchemy

    from flask_statistics import Statistics

    app = Flask("memory")
    app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite://"
    app.config["STATISTICS_FLUSH_INTERVAL"] = 0.05
    db = SQLAlchemy(app)

    class User(db.Model):
        id = sa.Column(sa.Integer, primary_key=True)
        name = sa.Column(sa.String(50))

    statistics = Statistics(app, db)
    hello(app)
    with app.app_context():
        db.create_all()
        db.session.add(User(name="uncommitted"))
        db.session.flush()
        assert app.test_client().get("/").status_code == 200
        assert statistics.flush(timeout=5)
        time.sleep(0.2)  # past another flush interval
        db.session.rollback()
        assert db.session.query(User).count() == 0
    warnings = [r.getMessage() for r in caplog.records if "does not write to" in r.getMessage()]
    assert len(warnings) == 1
    assert "commit the app's own unfinished work" in warnings[0]
    health = statistics.health()
    assert (health.written, health.dropped) == (0, 1)
    app.extensions["statistics"].writer.stop(timeout=1)


# -- sync mode --------------------------------------------------------------------------


@pytest.fixture
def silent_server():
    """A TCP port that accepts connections and never says a word."""
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(50)
    accepted = []
    stop = threading.Event()

    def accept():
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"])
def test_sync_mode_is_bounded_when_the_database_hangs(backend, silent_server):
    url = {
        "postgresql": f"postgresql+psycopg://postgres@127.0.0.1:{silent_server}/test",
        "mariadb": f"mysql+pymysql://root@127.0.0.1:{silent_server}/test",
    }[backend]
    factory = AppFactory(url)
    app, db, model, statistics = factory(
        create=False,
        config={"STATISTICS_WRITE_MODE": "sync", "STATISTICS_SYNC_TIMEOUT": 0.5},
    )
    hello(app)
    client = app.test_client()
    times = []
    for _ in range(4):
        start = time.monotonic()
        assert client.get("/").status_code == 200
        times.append(time.monotonic() - start)
    assert max(times) < 0.5 + 0.4  # never more than the timeout
    assert sum(times) < 1.5  # and once the database is known to hang, no waiting at all
    health = statistics.health()
    assert health.written == 0 and health.queued + health.dropped == 4
    app.extensions["statistics"].writer.stop(timeout=0.2)


def test_sync_mode_counts_rows_it_cannot_write(down_app):
    app, statistics = down_app(STATISTICS_WRITE_MODE="sync")
    client = app.test_client()
    assert [client.get("/").status_code for _ in range(5)] == [200] * 5
    health = statistics.health()
    assert (health.written, health.dropped, health.queued) == (0, 5, 0)
    assert health.last_error is not None


# -- test suites ------------------------------------------------------------------------


def run_script(code, timeout=60):
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True, text=True, timeout=timeout,
    )
    return done, time.monotonic() - started


def test_dropped_apps_are_collected_and_exit_is_quick(tmp_path):
    done, elapsed = run_script(
        f"""
        import gc, threading, time, weakref
        from flask import Flask
        from flask_sqlalchemy import SQLAlchemy
        from flask_statistics import Statistics

        refs = []
        for i in range(30):
            app = Flask(f"app{{i}}")
            app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite:///{tmp_path}/t{{i}}.db"
            db = SQLAlchemy(app)
            Statistics(app, db)
            @app.route("/")
            def index():
                1 / 0
            with app.app_context():
                db.create_all()
            client = app.test_client()
            app.testing = False
            client.get("/")   # an exception: got_request_exception fires
            client.get("/missing")
            refs.append(weakref.ref(app))
            del app, db, client, index
        gc.collect()
        deadline = time.monotonic() + 5
        while threading.active_count() > 3 and time.monotonic() < deadline:
            time.sleep(0.05)
            gc.collect()
        alive = sum(1 for r in refs if r() is not None)
        print("alive", alive, "threads", threading.active_count(), "end", time.time())
        """
    )
    assert done.returncode == 0, done.stderr
    words = done.stdout.split()
    alive, threads = int(words[1]), int(words[3])
    assert alive <= 1 and threads <= 3, done.stdout
    exiting = time.time() - float(words[5])
    assert exiting < 3, exiting  # from the script's last line to the process's end


def test_exit_waits_one_shutdown_timeout_however_many_apps(tmp_path):
    done, elapsed = run_script(
        """
        import time
        from flask import Flask
        from flask_sqlalchemy import SQLAlchemy
        from flask_statistics import Statistics

        apps = []
        for i in range(10):
            app = Flask(f"app{i}")
            app.config["SQLALCHEMY_DATABASE_URI"] = (
                "postgresql+psycopg://postgres@127.0.0.1:1/test?connect_timeout=1"
            )
            app.config["STATISTICS_SHUTDOWN_TIMEOUT"] = 1.0
            db = SQLAlchemy(app)
            Statistics(app, db)
            app.test_client().get("/")
            apps.append(app)
        print(time.time())
        """
    )
    assert done.returncode == 0, done.stderr
    exiting = time.time() - float(done.stdout.split()[-1])
    assert exiting < 1.0 + 1.0, exiting
    assert "not written" in done.stderr


def test_a_missing_table_is_not_retried_at_exit(tmp_path):
    done, elapsed = run_script(
        f"""
        from flask import Flask
        from flask_sqlalchemy import SQLAlchemy
        from flask_statistics import Statistics

        app = Flask("t")
        app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite:///{tmp_path}/none.db"
        app.config["STATISTICS_SHUTDOWN_TIMEOUT"] = 20.0
        app.config["STATISTICS_FLUSH_INTERVAL"] = 3600
        db = SQLAlchemy(app)
        Statistics(app, db)
        for _ in range(7):
            app.test_client().get("/")
        """
    )
    assert done.returncode == 0, done.stderr
    assert elapsed < 5, elapsed
    counts = re.findall(r"stopped with (\d+) row\(s\) not written \(.*no such table", done.stderr)
    assert sum(int(c) for c in counts) == 7, done.stderr


@pytest.mark.parametrize("backend", ["postgresql"])
def test_dropped_apps_release_their_database_connections(database_url):
    import gc

    from flask import Flask
    from flask_sqlalchemy import SQLAlchemy

    from flask_statistics import Statistics

    def connections():
        engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
        with engine.connect() as conn:
            count = conn.execute(sa.text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND application_name = 'statistics-leak-test'"
            )).scalar()
        engine.dispose()
        return count

    def one_app(table_name):
        app = Flask("leak")
        app.config["SQLALCHEMY_DATABASE_URI"] = database_url
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {
            "connect_args": {"application_name": "statistics-leak-test"}
        }
        app.config["STATISTICS_TABLE_NAME"] = table_name
        db = SQLAlchemy(app)
        statistics = Statistics(app, db)
        hello(app)
        table = app.extensions["statistics"].table
        with app.app_context():
            table.create(db.engine)
        app.test_client().get("/")
        assert statistics.flush(timeout=10)
        with app.app_context():
            table.drop(db.engine)

    for i in range(10):
        one_app(f"fst_leak_{os.getpid()}_{i}")
    gc.collect()
    assert wait_for(lambda: (gc.collect(), connections())[1] == 0, timeout=10), connections()


# -- dates ----------------------------------------------------------------------------


def test_arrival_times_are_stored_as_the_clock_gave_them(make_app, backend):
    # Rows are dated from the arrival timestamp, microseconds rounded half to even
    # as datetime.fromtimestamp rounds them, including into the next second.
    from datetime import datetime, timezone

    from flask_statistics.capture import Record

    app, db, model, statistics = make_app(model="default")
    stamps = [
        1700000000.25, 1700000000.75, 1700000000.9999996, 1700000001.0000004,
        1700000001.5000005, 1700000059.9999999, 1700000060.0, 1700003599.999999,
        1700003600.000001, 1700003600.000001, 1700000000.5,
    ]
    writer = app.extensions["statistics"].writer
    for n, stamp in enumerate(stamps):
        record = Record(stamp, 0.0, "GET", f"/at/{n}", "curl/8.5.0", "10.0.0.1", None)
        record.end, record.status_code, record.size = 0.01, 200, 1
        writer.emit(record)
    got = [r.date for r in rows(app, statistics)]
    want = [datetime.fromtimestamp(s, timezone.utc).replace(tzinfo=None) for s in stamps]
    if backend == "mariadb":  # DATETIME without a fraction keeps whole seconds
        want = [w.replace(microsecond=0) for w in want]
    assert got == want
    assert want[2] == datetime(2023, 11, 14, 22, 13, 21)  # rounded up a second
