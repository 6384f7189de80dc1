"""The public API: construction styles, model checks, exemptions, config errors."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa
from flask import Blueprint, Flask
from flask_sqlalchemy import SQLAlchemy

from conftest import define_model, rows, unique_table
from flask_statistics import ConfigError, Statistics


def hello_routes(app):
    @app.route("/")
    def index():
        return "Hello World!"


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_classic_example_model_verbatim(database_url):
    """db.String without lengths, as in the classic example (MariaDB needs lengths)."""
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = database_url
    db = SQLAlchemy(app)
    Request = define_model(db, unique_table(), lengths=False)
    statistics = Statistics(app, db, Request)
    hello_routes(app)
    with app.app_context():
        db.create_all()
    try:
        app.test_client().get("/")
        assert statistics.flush(timeout=10)
        with app.app_context():
            [row] = Request.query.all()
        assert (row.path, row.status_code, row.size) == ("/", 200, 12)
    finally:
        app.extensions["statistics"].writer.stop()
        with app.app_context():
            db.drop_all()
            db.engine.dispose()


def test_app_factory_pattern(database_url):
    db = SQLAlchemy()
    statistics = Statistics()
    table_name = unique_table()
    Request = define_model(db, table_name)

    def create_app():
        app = Flask(__name__)
        app.config["SQLALCHEMY_DATABASE_URI"] = database_url
        db.init_app(app)
        statistics.init_app(app, db=db, model=Request)
        hello_routes(app)
        return app

    app = create_app()
    with app.app_context():
        Request.__table__.create(db.engine)
    try:
        assert "statistics" in app.extensions
        assert not hasattr(statistics, "app")
        app.test_client().get("/")
        [row] = rows(app, statistics)
        assert row.path == "/"
    finally:
        app.extensions["statistics"].writer.stop()
        with app.app_context():
            Request.__table__.drop(db.engine)
            db.engine.dispose()


def test_two_apps_record_into_their_own_models(make_app):
    app_a, _, model_a, stats_a = make_app()
    app_b, _, model_b, stats_b = make_app()
    hello_routes(app_a)

    @app_b.route("/b")
    def b():
        return "b"

    app_a.test_client().get("/")
    app_b.test_client().get("/b")
    app_b.test_client().get("/b")
    assert [r.path for r in rows(app_a, stats_a)] == ["/"]
    assert [r.path for r in rows(app_b, stats_b)] == ["/b", "/b"]


def test_one_extension_object_for_two_apps(tmp_path):
    db = SQLAlchemy()
    statistics = Statistics()
    apps = []
    for name in ("one", "two"):
        app = Flask(name)
        app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{tmp_path / name}.db"
        db.init_app(app)
        statistics.init_app(app, db=db)
        hello_routes(app)
        with app.app_context():
            db.create_all()
        apps.append(app)
    apps[0].test_client().get("/")
    with pytest.raises(RuntimeError, match="pass app="):
        statistics.flush()
    assert [r.path for r in rows(apps[0], statistics)] == ["/"]
    assert rows(apps[1], statistics) == []
    for app in apps:
        app.extensions["statistics"].writer.stop()


def test_init_app_twice_raises(make_app):
    app, db, model, statistics = make_app()
    with pytest.raises(RuntimeError, match="already set up"):
        statistics.init_app(app, db=db, model=model)
    with pytest.raises(RuntimeError, match="already set up"):
        Statistics(app, db, model)


def test_missing_db_says_how_to_pass_it():
    with pytest.raises(RuntimeError, match=r"Statistics\(app, db\)"):
        Statistics(Flask(__name__))


def test_model_missing_a_column_names_it_and_the_fix(tmp_path):
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{tmp_path}/x.db"
    db = SQLAlchemy(app)

    class Partial(db.Model):
        __tablename__ = "partial"
        index = db.Column(db.Integer, primary_key=True)
        response_time = db.Column(db.Float)
        date = db.Column(db.DateTime)

    with pytest.raises(RuntimeError) as info:
        Statistics(app, db, Partial)
    message = str(info.value)
    assert "'path'" in message and "'mimetype'" in message
    assert "add it, or pass model=None" in message
    assert "statistics" not in app.extensions


def test_default_model_has_indexes_and_works(make_app):
    app, db, model, statistics = make_app(model="default")
    hello_routes(app)
    app.test_client().get("/", headers={"User-Agent": "curl/8.5.0"})
    [row] = rows(app, statistics)
    assert (row.path, row.is_bot) == ("/", False)
    with app.app_context():
        indexes = sa.inspect(db.engine).get_indexes(model.__table__.name)
    columns = {tuple(ix["column_names"]) for ix in indexes}
    assert {("date",), ("date", "path"), ("date", "status_code")} <= columns


def test_exempt_view_and_blueprint(make_app):
    app, db, model, statistics = make_app()

    @app.route("/health")
    @statistics.exempt
    def health():
        return "ok"

    @statistics.exempt
    @app.route("/ping")
    def ping():
        return "pong"

    @app.route("/counted")
    def counted():
        return "yes"

    admin = Blueprint("admin", __name__)

    @admin.route("/admin/panel")
    def panel():
        return "panel"

    statistics.exempt(admin)
    app.register_blueprint(admin)
    client = app.test_client()
    for path in ("/health", "/ping", "/admin/panel", "/counted"):
        assert client.get(path).status_code == 200
    assert [r.path for r in rows(app, statistics)] == ["/counted"]


def test_disable_f_opts_requests_out(make_app):
    from flask import request

    app, db, model, statistics = make_app(
        disable_f=lambda: request.cookies.get("disable_stat") == "True"
    )
    hello_routes(app)
    client = app.test_client()
    client.get("/")
    client.set_cookie("disable_stat", "True")
    client.get("/")
    client.get("/nowhere")
    assert [r.path for r in rows(app, statistics)] == ["/"]


def test_failing_disable_f_does_not_break_the_request(make_app, caplog):
    def broken():
        raise LookupError("no user")

    app, db, model, statistics = make_app(disable_f=broken)
    hello_routes(app)
    assert app.test_client().get("/").status_code == 200
    assert rows(app, statistics) == []
    assert "disable_f raised" in caplog.text


def test_exclude_prefixes_and_regexes(make_app):
    app, db, model, statistics = make_app(
        config={"STATISTICS_EXCLUDE": ["/static/", re.compile(r"\.(png|ico)$")]}
    )
    hello_routes(app)
    client = app.test_client()
    for path in ("/static/app.css", "/favicon.ico", "/img/logo.png", "/", "/pngs"):
        client.get(path)
    assert [r.path for r in rows(app, statistics)] == ["/", "/pngs"]


def test_dashboard_urls_are_never_recorded(make_app):
    app, db, model, statistics = make_app(config={"STATISTICS_URL_PREFIX": "/stats"})
    hello_routes(app)
    client = app.test_client()
    client.get("/stats")
    client.get("/stats/anything/at/all")
    client.get("/statsx")
    assert [r.path for r in rows(app, statistics)] == ["/statsx"]


@pytest.mark.parametrize(
    ("key", "value", "fix"),
    [
        ("STATISTICS_WRITE_MODE", "async", "'buffered' or 'sync'"),
        ("STATISTICS_DEFAULT_DATE_SPAN", 7, "timedelta"),
        ("STATISTICS_EXCLUDE", [42], "compiled regexes"),
        ("STATISTICS_URL_PREFIX", "statistics", "such as '/statistics'"),
        ("STATISTICS_URL_PREFIX", "//", "no empty segments"),
        ("STATISTICS_URL_PREFIX", "/", "such as '/statistics'"),
        ("STATISTICS_URL_PREFIX", "/a//b", "no empty segments"),
        ("STATISTICS_URL_PREFIX", "/stats?x=1", "no empty segments, query"),
        ("STATISTICS_QUEUE_BYTES", 0, "positive integer"),
        ("STATISTICS_SYNC_TIMEOUT", 0, "positive number of seconds"),
        ("STATISTICS_ANONYMIZE_IP", "mask", "'truncate' or 'hash'"),
        ("STATISTICS_REFERRER", "none", "'full', 'path' or 'origin'"),
        ("STATISTICS_RETENTION", 30, "timedelta(days=90)"),
        ("STATISTICS_RETENTION", timedelta(0), "positive"),
        ("STATISTICS_BATCH_SIZE", 0, "positive integer"),
        ("STATISTICS_FLUSH_INTERVAL", -1, "positive number of seconds"),
    ],
)
def test_bad_config_raises_with_the_fix(tmp_path, key, value, fix):
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{tmp_path}/x.db"
    app.config[key] = value
    db = SQLAlchemy(app)
    with pytest.raises(ConfigError, match=re.escape(fix)) as info:
        Statistics(app, db)
    assert key in str(info.value)


def test_a_prefix_with_several_segments_mounts_there(make_app):
    app, *_ = make_app(config={"STATISTICS_URL_PREFIX": "/admin/statistics/"})
    client = app.test_client()
    assert client.get("/admin/statistics/").status_code == 200
    assert client.get("/").status_code == 404  # never the site's root


def test_config_defaults(make_app):
    app, *_ = make_app()
    assert app.config["STATISTICS_DEFAULT_DATE_SPAN"] == timedelta(days=7)
    assert app.config["STATISTICS_URL_PREFIX"] == "/statistics"
    assert app.config["STATISTICS_WRITE_MODE"] == "buffered"


def test_separate_bind_for_statistics(tmp_path):
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{tmp_path}/app.db"
    app.config["SQLALCHEMY_BINDS"] = {"stats": f"sqlite:///{tmp_path}/stats.db"}
    db = SQLAlchemy(app)
    Request = define_model(db, "request", bind_key="stats")
    statistics = Statistics(app, db, Request)
    hello_routes(app)
    with app.app_context():
        db.create_all()
    app.test_client().get("/")
    assert [r.path for r in rows(app, statistics)] == ["/"]
    main = sa.create_engine(f"sqlite:///{tmp_path}/app.db")
    assert "request" not in sa.inspect(main).get_table_names()
    app.extensions["statistics"].writer.stop()


def test_unknown_bind_key_raises_with_the_fix(tmp_path):
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{tmp_path}/app.db"
    db = SQLAlchemy(app)
    Request = define_model(db, f"r_{uuid.uuid4().hex[:6]}", bind_key="missing")
    with pytest.raises(RuntimeError, match="'missing', which is not in SQLALCHEMY_BINDS; add it"):
        Statistics(app, db, Request)
