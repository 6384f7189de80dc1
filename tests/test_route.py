"""The matched URL rule in the optional ``route`` column, and tables created before
the default model had it."""

from __future__ import annotations

import logging
import re

import sqlalchemy as sa

from conftest import rows
from dashboard_support import Page, dashboard_urls
from flask_statistics.capture import MAX_ROUTE


def add_routes(app):
    @app.route("/items/<int:id>")
    def item(id):
        return f"item {id}"

    @app.route("/")
    def index():
        return "home"


def route_warnings(caplog):
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "flask_statistics" and "has no column 'route'" in r.getMessage()
    ]


def stored(app, table):
    """``(path, route or "-")`` of each row of ``table``, oldest first."""
    state = app.extensions["statistics"]
    assert state.writer.flush(timeout=10), "the writer did not catch up"
    with app.app_context():
        engine = state.db.engines[None]
        with engine.connect() as conn:
            query = sa.select(table).order_by(table.c["index"])
            return [
                (row.path, getattr(row, "route", "-"))
                for row in conn.execute(query)
            ]


def create_previous_default_table(app, db):
    """The table as the previous default model created it: no route column."""
    table = app.extensions["statistics"].table
    previous = sa.Table(
        table.name,
        sa.MetaData(),
        *(
            sa.Column(c.name, c.type, primary_key=c.primary_key, autoincrement=c.autoincrement)
            for c in table.columns
            if c.name != "route"
        ),
    )
    with app.app_context():
        previous.create(db.engine)
    return previous


def test_the_matched_rule_is_recorded_and_unmatched_urls_have_none(make_app):
    app, db, model, statistics = make_app(model="default")
    add_routes(app)
    client = app.test_client()
    assert client.get("/items/5").status_code == 200
    assert client.get("/").status_code == 200
    assert client.get("/nowhere/5").status_code == 404
    assert client.post("/items/5").status_code == 405
    assert client.get("/items/five").status_code == 404  # the converter refuses it
    got = [(r.path, r.status_code, r.route) for r in rows(app, statistics)]
    assert got == [
        ("/items/5", 200, "/items/<int:id>"),
        ("/", 200, "/"),
        ("/nowhere/5", 404, None),
        ("/items/5", 405, None),
        ("/items/five", 404, None),
    ]


def test_a_long_rule_is_cut_at_capture(make_app):
    # The app's own model, with an unbounded route column.
    app, db, model, statistics = make_app(columns={"route": sa.Column(sa.Text)})
    rule = "/" + "r" * (MAX_ROUTE + 100)

    @app.route(rule)
    def long_rule():
        return "long"

    assert app.test_client().get(rule).status_code == 200
    [row] = rows(app, statistics)
    assert row.route == rule[:MAX_ROUTE]


def test_a_model_without_the_column_still_records(make_app, caplog):
    app, db, model, statistics = make_app()  # the seed's contract: no route column
    add_routes(app)
    client = app.test_client()
    client.get("/items/5")
    client.get("/nowhere")
    got = rows(app, statistics)
    assert [r.path for r in got] == ["/items/5", "/nowhere"]
    assert "route" not in got[0]._fields
    assert route_warnings(caplog) == []  # the model does not ask for it


def test_a_table_of_the_previous_default_model_keeps_recording(make_app, caplog, backend):
    caplog.set_level(logging.WARNING, logger="flask_statistics")
    app, db, model, statistics = make_app(model="default", create=False)
    add_routes(app)
    previous = create_previous_default_table(app, db)
    client = app.test_client()
    for path in ("/items/1", "/items/2", "/nowhere"):
        client.get(path)
    assert stored(app, previous) == [("/items/1", "-"), ("/items/2", "-"), ("/nowhere", "-")]
    health = statistics.health(app=app)
    assert (health.written, health.dropped, health.rejected) == (3, 0, 0)

    # The dashboard reads what the table has.
    index = stored_indexes(app, previous)[0]
    for name, url in dashboard_urls(app, detail_index=index, query="").items():
        assert client.get(url).status_code == 200, name
    assert "/items/2" in Page(client.get("/statistics/").get_data(as_text=True)).all_text
    detail = client.get(f"/statistics/requests/{index}")
    assert detail.status_code == 200
    html = detail.get_data(as_text=True)
    assert 'data-field="path"' in html and 'data-field="route"' not in html
    assert "/items/1" in Page(html).all_text

    # Later batches too, and the fix was named exactly once.
    client.get("/items/3")
    assert stored(app, previous)[-1] == ("/items/3", "-")
    [warning] = route_warnings(caplog)
    table_name = app.extensions["statistics"].table.name
    assert f"table '{table_name}' has no column 'route'" in warning
    assert "matched URL rule" in warning

    # The statement it names adds the column; an app started afterwards fills it.
    alter = warning[warning.index("ALTER TABLE") :]
    assert re.fullmatch(rf"ALTER TABLE {table_name} ADD COLUMN route VARCHAR\(512\)", alter)
    with app.app_context(), db.engine.begin() as conn:
        conn.exec_driver_sql(alter)
    restarted, _, _, restarted_statistics = make_app(
        model="default", create=False, config={"STATISTICS_TABLE_NAME": table_name}
    )
    add_routes(restarted)
    restarted.test_client().get("/items/4")
    assert [(r.path, r.route) for r in rows(restarted, restarted_statistics)] == [
        ("/items/1", None),
        ("/items/2", None),
        ("/nowhere", None),
        ("/items/3", None),
        ("/items/4", "/items/<int:id>"),
    ]
    assert len(route_warnings(caplog)) == 1


def stored_indexes(app, table):
    with app.app_context():
        engine = app.extensions["statistics"].db.engines[None]
        with engine.connect() as conn:
            return list(conn.scalars(sa.select(table.c["index"]).order_by(table.c["index"])))


def test_rows_wait_for_a_missing_table_and_fill_the_route(make_app):
    app, db, model, statistics = make_app(
        model="default", create=False, config={"STATISTICS_FLUSH_INTERVAL": 0.05}
    )
    add_routes(app)
    client = app.test_client()
    client.get("/items/7")
    assert statistics.flush(timeout=0.5, app=app) is False  # no table yet
    with app.app_context():
        model.__table__.create(db.engine)
    assert [(r.path, r.route) for r in rows(app, statistics)] == [("/items/7", "/items/<int:id>")]
    assert statistics.health(app=app).dropped == 0


def test_the_detail_page_shows_the_route_escaped(make_app):
    app, db, model, statistics = make_app(model="default")
    add_routes(app)
    client = app.test_client()
    client.get("/items/9")
    [row] = rows(app, statistics)
    response = client.get(f"/statistics/requests/{row.index}")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert 'data-field="route"' in html
    assert "/items/&lt;int:id&gt;" in html and "<int:id>" not in html
    assert "Route /items/<int:id>" in Page(html).all_text
