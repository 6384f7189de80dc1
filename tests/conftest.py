"""Shared fixtures: one Flask app factory, parametrised over SQLite, PostgreSQL and
MariaDB. Each test gets its own table on the shared servers and drops it afterwards.

Backend URLs come from STATISTICS_TEST_POSTGRESQL and STATISTICS_TEST_MARIADB. Locally
an unreachable backend is skipped with a reason; with CI=true it fails the test.
"""

from __future__ import annotations

import os
import typing as t
import uuid

import pytest
import sqlalchemy as sa
from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from flask_statistics import Statistics

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

SERVER_URLS = {
    "postgresql": os.environ.get(
        "STATISTICS_TEST_POSTGRESQL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    ),
    "mariadb": os.environ.get(
        "STATISTICS_TEST_MARIADB", "mysql+pymysql://root@127.0.0.1:3306/test"
    ),
}
BACKENDS = ("sqlite", "postgresql", "mariadb")
_reachable: dict[str, str | None] = {}


def require_or_skip(reason: str) -> t.NoReturn:
    """Skip locally; under CI a missing dependency is a failure."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: nothing may be skipped)")
    pytest.skip(reason)


def _check_server(name: str) -> None:
    if name not in _reachable:
        engine = sa.create_engine(SERVER_URLS[name])
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            _reachable[name] = None
        except Exception as exc:
            _reachable[name] = f"{type(exc).__name__}: {exc}".splitlines()[0]
        finally:
            engine.dispose()
    error = _reachable[name]
    if error is not None:
        env = "STATISTICS_TEST_POSTGRESQL" if name == "postgresql" else "STATISTICS_TEST_MARIADB"
        require_or_skip(
            f"{name} at {SERVER_URLS[name]} is not reachable ({error}); start it or "
            f"set {env} to a reachable URL"
        )


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The name of a database backend; the test runs once per backend."""
    return t.cast(str, request.param)


@pytest.fixture
def database_url(backend: str, tmp_path: t.Any) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'statistics.db'}"
    _check_server(backend)
    return SERVER_URLS[backend]


def unique_table() -> str:
    return f"fst_{uuid.uuid4().hex[:12]}"


def define_model(
    db: SQLAlchemy,
    table_name: str,
    *,
    lengths: bool = True,
    bind_key: str | None = None,
    table_args: tuple[t.Any, ...] = (),
    columns: dict[str, t.Any] | None = None,
) -> type:
    """The classic example's model. ``lengths=False`` is the example verbatim
    (``db.String`` without lengths, which MariaDB cannot create). ``table_args`` adds
    indexes or constraints, and ``columns`` replaces columns, e.g. to make the database
    refuse some rows."""

    def string() -> t.Any:
        return db.String(255) if lengths else db.String

    namespace: dict[str, t.Any] = {
        "__tablename__": table_name,
        "index": db.Column(db.Integer, primary_key=True, autoincrement=True),
        "response_time": db.Column(db.Float),
        "date": db.Column(db.DateTime),
        "method": db.Column(string()),
        "size": db.Column(db.Integer),
        "status_code": db.Column(db.Integer),
        "path": db.Column(string()),
        "user_agent": db.Column(string()),
        "remote_address": db.Column(string()),
        "exception": db.Column(string()),
        "referrer": db.Column(string()),
        "browser": db.Column(string()),
        "platform": db.Column(string()),
        "mimetype": db.Column(string()),
    }
    namespace.update(columns or {})
    if bind_key is not None:
        namespace["__bind_key__"] = bind_key
    if table_args:
        namespace["__table_args__"] = tuple(
            arg(table_name) if callable(arg) else arg for arg in table_args
        )
    return type(f"Request_{table_name}", (db.Model,), namespace)


class AppFactory:
    """Builds apps recording into a fresh table; cleans everything up afterwards."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self._cleanups: list[t.Callable[[], None]] = []

    def __call__(
        self,
        *,
        model: t.Literal["seed", "verbatim", "default", "none"] | None = "seed",
        guard: t.Any = None,
        disable_f: t.Any = None,
        testing: bool = True,
        config: dict[str, t.Any] | None = None,
        create: bool = True,
        table_args: tuple[t.Any, ...] = (),
        columns: dict[str, t.Any] | None = None,
    ) -> tuple[Flask, SQLAlchemy, type, Statistics]:
        app = Flask(f"test_{uuid.uuid4().hex[:6]}")
        app.testing = testing
        app.config["SQLALCHEMY_DATABASE_URI"] = self.database_url
        table_name = unique_table()
        app.config["STATISTICS_TABLE_NAME"] = table_name
        app.config.update(config or {})
        db = SQLAlchemy(app)
        model_cls = None
        if model in ("seed", "verbatim"):
            # "verbatim": the classic example's strings without lengths.
            model_cls = define_model(
                db, table_name, lengths=model == "seed", table_args=table_args, columns=columns
            )
        statistics = Statistics(app, db, model_cls, guard, disable_f=disable_f)
        state = app.extensions["statistics"]
        if create:
            with app.app_context():
                state.table.create(db.engine, checkfirst=True)
                state.rollups.create(db.engine)

        def cleanup() -> None:
            state.writer.stop(timeout=2)
            with app.app_context():
                state.table.drop(db.engine, checkfirst=True)
                state.rollups.rollup.drop(db.engine, checkfirst=True)
                state.rollups.state.drop(db.engine, checkfirst=True)
                for engine in db.engines.values():
                    engine.dispose()

        self._cleanups.append(cleanup)
        return app, db, state.model, statistics

    def close(self) -> None:
        for cleanup in reversed(self._cleanups):
            cleanup()


@pytest.fixture
def make_app(database_url: str) -> t.Iterator[AppFactory]:
    """``make_app(config={...})`` returns ``(app, db, model, statistics)``."""
    factory = AppFactory(database_url)
    yield factory
    factory.close()


def rows(app: Flask, statistics: Statistics) -> list[t.Any]:
    """Every recorded row, oldest first, after the writer has caught up."""
    assert statistics.flush(timeout=10, app=app), "the writer did not catch up"
    state = app.extensions["statistics"]
    with app.app_context():
        engine = state.db.engines[state.table.metadata.info.get("bind_key")]
        with engine.connect() as conn:
            return list(conn.execute(sa.select(state.table).order_by(state.table.c.index)))
