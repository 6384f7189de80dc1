"""What each recorded column holds, and that every request yields exactly one row."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest
from flask import Response, abort, g, redirect, stream_with_context
from werkzeug.middleware.proxy_fix import ProxyFix

from conftest import rows
from flask_statistics.capture import MAX_EXCEPTION, MAX_PATH, MAX_REFERRER, MAX_USER_AGENT

FIREFOX = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:72.0) Gecko/20100101 Firefox/72.0"
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


def add_routes(app):
    @app.route("/")
    def index():
        return "Hello World!"

    @app.route("/json")
    def json_view():
        return {"ok": True}

    @app.route("/boom")
    def boom():
        return 1 / 0

    @app.route("/forbidden")
    def forbidden():
        abort(403)

    @app.route("/go")
    def go():
        return redirect("/")

    @app.route("/post-only", methods=["POST"])
    def post_only():
        return "posted"

    @app.route("/stream")
    def stream():
        def chunks():
            yield "é" * 10  # 20 bytes in UTF-8
            yield b"x" * 5

        return Response(stream_with_context(chunks()), mimetype="text/plain")

    @app.route("/stream-fails")
    def stream_fails():
        def chunks():
            yield b"partial"
            raise KeyError("gone")

        return Response(chunks())

    @app.route("/slow")
    def slow():
        time.sleep(0.05)
        return "slow"


@pytest.fixture
def app_stats(make_app):
    app, db, model, statistics = make_app()
    add_routes(app)
    return app, statistics


def test_fields_of_a_plain_request(app_stats):
    app, statistics = app_stats
    before = datetime.now(timezone.utc).replace(tzinfo=None)
    response = app.test_client().get(
        "/?q=secret&x=1",
        headers={"User-Agent": FIREFOX, "Referer": "https://example.org/from?a=1"},
    )
    after = datetime.now(timezone.utc).replace(tzinfo=None)
    [row] = rows(app, statistics)
    assert row.path == "/"
    assert row.method == "GET"
    assert row.status_code == 200
    assert row.size == len(response.data) == len(b"Hello World!")
    assert row.mimetype == "text/html"
    assert row.user_agent == FIREFOX
    assert row.referrer == "https://example.org/from"  # STATISTICS_REFERRER="path"
    assert row.remote_address == "127.0.0.1"
    assert row.browser == "Firefox 72.0"
    assert row.platform == "Windows"
    assert row.exception is None
    assert 0 < row.response_time < 1
    # Stored as naive UTC; MariaDB DATETIME drops sub-second digits by default.
    assert before.replace(microsecond=0) <= row.date <= after


def test_json_mimetype_and_size(app_stats):
    app, statistics = app_stats
    body = app.test_client().get("/json").data
    [row] = rows(app, statistics)
    assert row.mimetype == "application/json"
    assert row.size == len(body)


def test_response_time_covers_the_view_and_other_before_request_functions(make_app):
    app, db, model, statistics = make_app()
    add_routes(app)

    @app.before_request
    def slow_hook():
        time.sleep(0.03)

    app.test_client().get("/slow")
    [row] = rows(app, statistics)
    assert row.response_time >= 0.08


def test_spoofed_forwarding_headers_are_ignored(app_stats):
    app, statistics = app_stats
    app.test_client().get(
        "/",
        headers={"X-Forwarded-For": "6.6.6.6", "X-Real-IP": "7.7.7.7"},
        environ_base={"REMOTE_ADDR": "10.1.2.3"},
    )
    [row] = rows(app, statistics)
    assert row.remote_address == "10.1.2.3"


def test_proxyfix_supplies_the_client_address(app_stats):
    app, statistics = app_stats
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1)
    app.test_client().get(
        "/", headers={"X-Forwarded-For": "203.0.113.9"}, environ_base={"REMOTE_ADDR": "10.0.0.1"}
    )
    [row] = rows(app, statistics)
    assert row.remote_address == "203.0.113.9"


@pytest.mark.parametrize("testing", [True, False])
def test_unhandled_exception_is_recorded_with_status_500(make_app, testing):
    app, db, model, statistics = make_app(testing=testing)
    add_routes(app)
    client = app.test_client()
    if testing:
        with pytest.raises(ZeroDivisionError):
            client.get("/boom")
    else:
        assert client.get("/boom").status_code == 500
    [row] = rows(app, statistics)
    assert row.status_code == 500
    assert row.exception == "ZeroDivisionError('division by zero')"
    assert row.path == "/boom"


def test_debug_mode_records_exceptions(make_app):
    app, db, model, statistics = make_app(testing=False)
    add_routes(app)
    app.debug = True
    with pytest.raises(ZeroDivisionError):
        app.test_client().get("/boom")
    app.test_client().get("/")
    got = rows(app, statistics)
    assert [(r.path, r.status_code, r.exception) for r in got] == [
        ("/boom", 500, "ZeroDivisionError('division by zero')"),
        ("/", 200, None),
    ]


def test_exception_in_another_before_request_function(make_app):
    app, db, model, statistics = make_app(testing=False)
    add_routes(app)

    @app.before_request
    def broken():
        raise ValueError("no session store")

    assert app.test_client().get("/").status_code == 500
    [row] = rows(app, statistics)
    assert (row.status_code, row.exception) == (500, "ValueError('no session store')")


def test_error_handler_response_is_recorded_as_sent(make_app):
    app, db, model, statistics = make_app(testing=False)
    add_routes(app)

    @app.errorhandler(ZeroDivisionError)
    def handled(exc):
        return "nope", 418

    @app.errorhandler(404)
    def not_found(exc):
        return "custom missing page", 404

    client = app.test_client()
    assert client.get("/boom").status_code == 418
    assert client.get("/missing").data == b"custom missing page"
    got = rows(app, statistics)
    assert [(r.path, r.status_code, r.size) for r in got] == [
        ("/boom", 418, 4),
        ("/missing", 404, len(b"custom missing page")),
    ]


def test_http_errors_and_redirects(app_stats):
    app, statistics = app_stats
    client = app.test_client()
    sent = [
        client.get("/nowhere"),
        client.get("/post-only"),
        client.get("/forbidden"),
        client.get("/go"),
    ]
    got = rows(app, statistics)
    assert [(r.path, r.status_code) for r in got] == [
        ("/nowhere", 404),
        ("/post-only", 405),
        ("/forbidden", 403),
        ("/go", 302),
    ]
    assert [r.size for r in got] == [len(s.data) for s in sent]
    assert all(r.size > 0 for r in got)


def test_head_request_sends_no_body(app_stats):
    app, statistics = app_stats
    response = app.test_client().head("/")
    assert response.data == b""
    [row] = rows(app, statistics)
    assert (row.method, row.status_code, row.size) == ("HEAD", 200, 0)


def test_streamed_response_is_counted_when_it_closes(app_stats):
    app, statistics = app_stats
    response = app.test_client().get("/stream", buffered=True)
    assert len(response.data) == 25
    [row] = rows(app, statistics)
    assert (row.path, row.size, row.status_code, row.mimetype) == ("/stream", 25, 200, "text/plain")


def test_streamed_response_not_yet_closed_is_not_yet_recorded(app_stats):
    app, statistics = app_stats
    response = app.test_client().get("/stream")
    assert rows(app, statistics) == []
    response.close()
    [row] = rows(app, statistics)
    # The client took only the first chunk before closing.
    assert row.size == 20


def test_exception_inside_a_stream(make_app):
    app, db, model, statistics = make_app(testing=False)
    add_routes(app)
    with pytest.raises(KeyError):
        app.test_client().get("/stream-fails", buffered=True)
    [row] = rows(app, statistics)
    assert row.size == len(b"partial")
    assert (row.status_code, row.exception) == (500, "KeyError('gone')")


def test_exactly_one_row_per_request(app_stats):
    app, statistics = app_stats
    client = app.test_client()
    paths = ["/", "/json", "/nowhere", "/go", "/forbidden"] * 20
    for path in paths:
        client.get(path)
    client.get("/stream", buffered=True)
    client.head("/")
    got = rows(app, statistics)
    assert len(got) == len(paths) + 2
    assert len({r.index for r in got}) == len(got)
    assert [r.path for r in got[: len(paths)]] == paths


def test_bot_user_agents_are_flagged(make_app):
    app, db, model, statistics = make_app(model="default")
    add_routes(app)
    client = app.test_client()
    client.get("/", headers={"User-Agent": GOOGLEBOT})
    client.get("/", headers={"User-Agent": FIREFOX})
    client.get("/", headers={"User-Agent": ""})
    got = rows(app, statistics)
    assert [r.is_bot for r in got] == [True, False, None]
    assert got[0].browser.startswith("Googlebot")
    assert got[2].browser is None and got[2].user_agent in ("", None)


def test_app_session_work_is_never_committed(make_app):
    app, db, model, statistics = make_app(testing=False)

    class Note(db.Model):
        __tablename__ = f"note_{model.__table__.name}"
        id = db.Column(db.Integer, primary_key=True)
        text = db.Column(db.String(50))

    with app.app_context():
        Note.__table__.create(db.engine)

    @app.route("/add-then-fail")
    def add_then_fail():
        db.session.add(Note(text="half-done"))
        db.session.flush()
        raise RuntimeError("after adding")

    @app.route("/add-no-commit")
    def add_no_commit():
        db.session.add(Note(text="never committed"))
        return "ok"

    try:
        client = app.test_client()
        assert client.get("/add-then-fail").status_code == 500
        assert client.get("/add-no-commit").status_code == 200
        got = rows(app, statistics)
        assert [r.status_code for r in got] == [500, 200]
        with app.app_context():
            assert db.session.query(Note).count() == 0
    finally:
        with app.app_context():
            db.session.remove()
            Note.__table__.drop(db.engine)


def test_sync_mode_commits_before_the_response_is_returned(make_app):
    app, db, model, statistics = make_app(config={"STATISTICS_WRITE_MODE": "sync"})
    add_routes(app)
    app.test_client().get("/json")
    state = app.extensions["statistics"]
    assert state.writer.health().queued == 0
    with app.app_context(), db.engine.connect() as conn:
        [row] = conn.execute(state.table.select()).all()
    assert (row.path, row.status_code) == ("/json", 200)


def test_long_strings_are_truncated_to_the_column(make_app):
    app, db, model, statistics = make_app(model="default", config={"STATISTICS_REFERRER": "full"})
    add_routes(app)
    long_path = "/" + "p" * 3000
    referrer = "https://example.org/" + "r" * 900
    app.test_client().get(long_path, headers={"User-Agent": "u" * 5000, "Referer": referrer})
    [row] = rows(app, statistics)
    table = app.extensions["statistics"].table
    assert row.path == long_path[: table.c.path.type.length]
    assert row.user_agent == "u" * table.c.user_agent.type.length
    assert row.referrer == referrer[: table.c.referrer.type.length]
    assert row.status_code == 404


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_strings_are_cut_at_capture_whatever_the_column_allows(make_app):
    # The seed's model has unbounded strings on SQLite and PostgreSQL: what is stored
    # is still cut to the documented maximums, before the record is queued.
    app, db, model, statistics = make_app(
        model="verbatim", testing=False, config={"STATISTICS_REFERRER": "full"}
    )

    @app.route("/<path:anything>")
    def boom(anything):
        raise ValueError("x" * 100_000)

    referrer = "https://example.org/" + "r" * 200_000
    app.test_client().get(
        "/" + "p" * 100_000,
        headers={"User-Agent": "u" * 100_000, "Referer": referrer},
    )
    [row] = rows(app, statistics)
    assert row.path == "/" + "p" * (MAX_PATH - 1)
    assert row.user_agent == "u" * MAX_USER_AGENT
    assert row.referrer == referrer[:MAX_REFERRER]
    assert len(row.exception) == MAX_EXCEPTION
    assert row.exception.startswith("ValueError('xxx")
    assert row.status_code == 500


def test_hostile_characters_are_stored(app_stats):
    app, statistics = app_stats
    client = app.test_client()
    client.get("/a%00b", headers={"User-Agent": "<script>alert('x')</script>\u202e"})
    client.get("/caf%C3%A9/%F0%9F%98%80")
    got = rows(app, statistics)
    assert got[0].path == "/a\ufffdb"  # NUL cannot be stored in PostgreSQL text
    assert got[0].user_agent == "<script>alert('x')</script>\u202e"
    assert got[1].path == "/café/😀"
