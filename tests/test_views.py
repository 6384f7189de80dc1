"""The dashboard as a user meets it: pages and htmx partials on every backend,
filters, drill-down, sorting, pagination, the detail page and bad input."""

from __future__ import annotations

import re
import typing as t
from datetime import datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa
from dashboard_support import (
    HISTORY_RESTORE,
    HTMX,
    NOON,
    PARTIAL_ENDPOINTS,
    QS,
    Page,
    dashboard_urls,
    indexes,
    insert,
    row,
    sample_rows,
)

from flask_statistics.dialects import reading_connection
from flask_statistics.models import bind_key


@pytest.fixture
def dashboard(make_app: t.Any) -> t.Any:
    """An app on the parametrised backend with the sample rows and 5 rows a page."""
    app, *_ = make_app(config={"STATISTICS_PAGE_SIZE": 5})
    insert(app, sample_rows())
    return app


def get(app: t.Any, url: str, headers: dict[str, str] | None = None) -> t.Any:
    return app.test_client().get(url, headers=headers or {})


def text(response: t.Any) -> str:
    return Page(response.get_data(as_text=True)).all_text


def query_of(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


# ---------------------------------------------------------------------------------
# Every endpoint, every backend


def test_every_endpoint_renders_the_data_as_a_page(dashboard: t.Any) -> None:
    first = indexes(dashboard)[0]
    urls = dashboard_urls(dashboard, detail_index=first)
    expectations = {
        "index": ["Key figures", "Traffic", "Requests", "/shop", "/about"],
        "kpis": ["Hits", "12", "Unique visitors", "4"],
        "traffic": ["Traffic", "12 hits"],
        "response_times": ["Response time"],
        "status": ["2xx", "9", "4xx", "3"],
        "top": ["Top paths", "/shop", "Chrome", "Windows", "POST"],
        "paths": ["/shop", "/about"],
        "requests": ["/shop", "Page 1"],
        "detail": ["/about", "Chrome 124.0", "203.0.113.0", "https://example.com/from"],
    }
    for name, url in urls.items():
        response = get(dashboard, url)
        assert response.status_code == 200, (name, response.status_code)
        html = response.get_data(as_text=True)
        assert html.lstrip().lower().startswith("<!doctype html>"), name
        shown = text(response)
        for expected in expectations[name]:
            assert expected in shown, (name, expected)


def test_dashboard_reads_compile_no_jit_and_leave_the_pool_as_it_was(
    dashboard: t.Any, backend: str, database_url: str
) -> None:
    # PostgreSQL compiles a costly query before running it; for a rollup read at ten
    # million requests a month that took a third of the query's time.
    state = dashboard.extensions["statistics"]
    with dashboard.app_context():
        engine = state.db.engines[bind_key(state.table)]
    statements: list[str] = []

    def seen(conn: t.Any, cursor: t.Any, statement: str, *args: t.Any) -> None:
        statements.append(statement)

    sa.event.listen(engine, "before_cursor_execute", seen)
    try:
        for name in ("kpis", "traffic", "requests"):
            assert get(dashboard, f"/statistics/partials/{name}", HTMX).status_code == 200
    finally:
        sa.event.remove(engine, "before_cursor_execute", seen)
    switches = [s for s in statements if "jit" in s]
    if backend != "postgresql":
        assert switches == []
        return
    assert len(switches) == 3 and statements[0] == "SET LOCAL jit = off"
    # The switch ends with the dashboard's transaction: the app's next query on the
    # same pooled connection has the session's own setting.
    single = sa.create_engine(database_url, pool_size=1, max_overflow=0)
    try:
        with single.connect() as conn:
            conn.exec_driver_sql("SET jit = on")
            conn.commit()
        with reading_connection(single) as conn:
            assert conn.exec_driver_sql("SHOW jit").scalar() == "off"
        with single.connect() as conn:
            assert conn.exec_driver_sql("SHOW jit").scalar() == "on"
    finally:
        single.dispose()


@pytest.mark.parametrize("name", PARTIAL_ENDPOINTS)
def test_htmx_gets_only_the_fragment_of_each_partial(dashboard: t.Any, name: str) -> None:
    url = dashboard_urls(dashboard)[name]
    response = get(dashboard, url, HTMX)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "<!doctype" not in html.lower() and "<html" not in html and "<head>" not in html
    element_id = f"panel-{name.replace('_', '-')}"
    # One element, with the id the placeholder targets, so hx-swap="outerHTML" fits.
    assert re.match(rf'\s*(?:\s*)<section id="{element_id}"', html), html[:200]
    assert html.count(f'id="{element_id}"') == 1


def test_history_restore_gets_the_full_page(dashboard: t.Any) -> None:
    for name, url in dashboard_urls(dashboard).items():
        if name == "detail":
            continue
        response = get(dashboard, url, HISTORY_RESTORE)
        assert response.status_code == 200
        assert "<!doctype html>" in response.get_data(as_text=True).lower(), name


def test_responses_vary_on_the_htmx_headers(dashboard: t.Any) -> None:
    for headers in ({}, HTMX, HISTORY_RESTORE):
        for name, url in dashboard_urls(dashboard).items():
            vary = {v.strip() for v in get(dashboard, url, headers).headers.get("Vary", "").split(",")}
            assert {"HX-Request", "HX-Request-Type"} <= vary, (name, headers)


def test_filter_change_swaps_panels_that_load_from_their_own_endpoints(dashboard: t.Any) -> None:
    url = dashboard_urls(dashboard)["index"] + "&path=&status=&method=POST&browser="
    response = get(dashboard, url, HTMX)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "<html" not in html
    page = Page(html)
    # The pushed URL is the canonical one, without the empty fields the form sends.
    pushed = response.headers["HX-Push-Url"]
    assert query_of(pushed) == {
        "start": ["2024-05-01"], "end": ["2024-05-03"], "method": ["POST"],
    }
    # The form shows the new filter, and each panel's slot fetches it with it.
    assert page.by_id("filters") is not None
    loaders = {attrs["data-slot"]: attrs for tag, attrs in page.elements if attrs.get("hx-trigger") == "load"}
    assert set(loaders) == set(PARTIAL_ENDPOINTS)
    for name, attrs in loaders.items():
        assert attrs["hx-swap"] == "innerHTML"
        assert query_of(attrs["hx-get"])["method"] == ["POST"], name
    # The panel on screen stays (hx-preserve) until its slot has the new one.
    for name in PARTIAL_ENDPOINTS:
        placeholder = page.by_id(f"panel-{name.replace('_', '-')}")
        assert placeholder is not None and "hx-preserve" in placeholder, name
    # Following them gives the narrowed data: six POST requests.
    kpis = get(dashboard, loaders["kpis"]["hx-get"], HTMX)
    assert '<span class="kpi-value">6</span>' in kpis.get_data(as_text=True)


def test_back_gets_the_page_at_once_with_panels_that_reload_in_place(dashboard: t.Any) -> None:
    # What htmx 4.0.1 sends when it restores a page from history.
    restore = {"HX-History-Restore-Request": "true", "HX-Request-Type": "full"}
    url = dashboard_urls(dashboard)["index"] + "&method=POST"
    response = get(dashboard, url, restore)
    assert response.status_code == 200
    assert "HX-History-Restore-Request" in response.headers["Vary"]
    html = response.get_data(as_text=True)
    assert html.lstrip().lower().startswith("<!doctype html>")
    page = Page(html)
    assert page.by_id("filters") is not None
    # No figure was computed for it: each panel loads from its own endpoint.
    assert "kpi-value" not in html
    loaders = {attrs["data-slot"]: attrs for tag, attrs in page.elements if attrs.get("hx-trigger") == "load"}
    assert set(loaders) == set(PARTIAL_ENDPOINTS)
    assert all(query_of(attrs["hx-get"])["method"] == ["POST"] for attrs in loaders.values())


def test_full_page_and_htmx_use_the_same_partial_markup(dashboard: t.Any) -> None:
    full = get(dashboard, dashboard_urls(dashboard)["index"]).get_data(as_text=True)
    fragment = get(dashboard, dashboard_urls(dashboard)["paths"], HTMX).get_data(as_text=True)
    table = re.search(r'<table class="data-table" id="paths-table">.*?</table>', fragment, re.S)
    assert table is not None and table.group(0) in full


# ---------------------------------------------------------------------------------
# What the panels show


def test_kpis_show_figures_and_change_against_the_previous_period(dashboard: t.Any) -> None:
    html = get(dashboard, dashboard_urls(dashboard)["kpis"], HTMX).get_data(as_text=True)
    cards = dict(re.findall(
        r'data-kpi="(\w+)">.*?<span class="kpi-value">([^<]*)</span>', html, re.S
    ))
    assert cards["hits"] == "12"
    assert cards["visitors"] == "4"
    assert cards["rate_4xx"] == "25.0 %"
    assert cards["rate_5xx"] == "0.0 %"
    assert cards["avg"] == "65 ms"  # mean of 10, 20, ... 120 ms
    assert cards["bytes_sent"] == "78.0 KB"  # 1 KB + 2 KB + ... + 12 KB
    assert "Change against 28 Apr – 30 Apr 2024" in text(get(dashboard, dashboard_urls(dashboard)["kpis"]))
    # 3 hits before, 12 now.
    assert re.search(r'data-kpi="hits">.*?kpi-change up neutral.*?\+300 %', html, re.S)


def test_large_numbers_are_formatted_for_people(make_app: t.Any) -> None:
    app, *_ = make_app()
    insert(app, [row(date=NOON, size=3 * 1024 * 1024, response_time=2.5) for _ in range(1234)])
    shown = text(get(app, dashboard_urls(app)["kpis"]))
    assert "1,234" in shown
    assert "3.6 GB" in shown  # 1234 × 3 MB
    assert "2.50 s" in shown  # durations over a second in seconds


def test_dates_are_shown_in_the_configured_time_zone(make_app: t.Any) -> None:
    app, *_ = make_app(config={"STATISTICS_TIMEZONE": "Europe/Berlin"})
    insert(app, [row(date=datetime(2024, 5, 2, 12, 0, 5))])
    page = get(app, dashboard_urls(app)["requests"])
    shown = text(page)
    assert "Times in Europe/Berlin" in shown
    # The zone is named once, in the column's heading, not on every row.
    assert "Time (Europe/Berlin)" in shown
    assert "2024-05-02 14:00:05" in shown and "CEST" not in shown


def test_request_log_is_paginated_newest_first(dashboard: t.Any) -> None:
    urls = dashboard_urls(dashboard)
    first = get(dashboard, urls["requests"], HTMX).get_data(as_text=True)
    stamps = re.findall(r'<time datetime="([^"]+)">', first)
    assert stamps == [f"2024-05-02T12:{m:02d}:00Z" for m in (11, 10, 9, 8, 7)]
    page = Page(first)
    next_link = page.by_id("page-next")
    assert next_link is not None and page.by_id("page-prev") is None
    # Without JS the link opens the whole dashboard at page 2; htmx swaps the log only.
    assert urlsplit(next_link["href"]).path == "/statistics/"
    assert query_of(next_link["href"])["page"] == ["2"]
    assert next_link["hx-push-url"] == next_link["href"]
    assert next_link["hx-target"] == "#panel-requests"
    third = get(dashboard, urls["requests"] + "&page=3", HTMX).get_data(as_text=True)
    assert re.findall(r'<time datetime="([^"]+)">', third) == [
        "2024-05-02T12:01:00Z", "2024-05-02T12:00:00Z",
    ]
    page = Page(third)
    assert page.by_id("page-next") is None
    assert query_of(page.by_id("page-prev")["href"])["page"] == ["2"]
    # The full page shows the same page of the log.
    assert "2024-05-02 12:01:00" in text(get(dashboard, urls["index"] + "&page=3"))


def test_a_page_past_the_end_offers_the_first_page(dashboard: t.Any) -> None:
    html = get(dashboard, dashboard_urls(dashboard)["requests"] + "&page=40").get_data(as_text=True)
    page = Page(html)
    assert "past the last request" in page.all_text
    assert "page" not in query_of(page.by_id("page-first-empty")["href"])


@pytest.mark.parametrize(
    ("sort", "order", "expected_first"),
    [
        ("response_time", "desc", "120 ms"),
        ("response_time", "asc", "10 ms"),
        ("size", "desc", "12.0 KB"),
        ("status_code", "desc", "404"),
        ("date", "asc", "2024-05-02 12:00:00"),
    ],
)
def test_request_log_sorts_by_column(dashboard: t.Any, sort: str, order: str, expected_first: str) -> None:
    url = dashboard_urls(dashboard)["requests"] + f"&sort={sort}&order={order}"
    html = get(dashboard, url, HTMX).get_data(as_text=True)
    first_row = re.search(r'<tr data-index=.*?</tr>', html, re.S)
    assert first_row is not None and expected_first in Page(first_row.group(0)).all_text


def test_sort_links_toggle_and_mark_the_sorted_column(dashboard: t.Any) -> None:
    urls = dashboard_urls(dashboard)
    html = get(dashboard, urls["requests"], HTMX).get_data(as_text=True)
    page = Page(html)
    links = {a["data-sort"]: a for a in page.links if a.get("data-sort")}
    assert set(links) == {"date", "response_time", "size", "status_code"}
    assert query_of(links["response_time"]["href"])["sort"] == ["response_time"]
    assert "order" not in query_of(links["response_time"]["href"])  # desc is the default
    assert query_of(links["date"]["href"])["order"] == ["asc"]  # flips the current sort
    assert re.search(r'<th [^>]*aria-sort="descending">\s*<a class="sort-link"[^>]*data-sort="date"', html)
    # Sorted by time, page 2: sorting again goes back to page 1 and keeps the filters.
    html = get(dashboard, urls["requests"] + "&sort=response_time&page=2&method=GET", HTMX).get_data(as_text=True)
    link = next(a for a in Page(html).links if a.get("data-sort") == "response_time")
    assert query_of(link["href"]) == {
        "start": ["2024-05-01"], "end": ["2024-05-03"], "method": ["GET"],
        "sort": ["response_time"], "order": ["asc"],
    }
    # The filter form keeps the order when filters change.
    assert '<input type="hidden" form="filters" name="sort" value="response_time">' in html


def test_drill_down_links_narrow_the_filters(dashboard: t.Any) -> None:
    html = get(dashboard, dashboard_urls(dashboard)["index"]).get_data(as_text=True)
    drills = [a for a in Page(html).links if "drill" in (a.get("class") or "")]
    targets = {tuple(sorted((k, v[0]) for k, v in query_of(a["href"]).items() if k not in ("start", "end")))
               for a in drills}
    for expected in (
        (("path", "/shop"),), (("path", "/about"),), (("status", "404"),), (("status", "4xx"),),
        (("browser", "Chrome 124.0"),), (("platform", "Windows"),), (("method", "POST"),),
        (("remote_address", "203.0.113.1"),),
    ):
        assert expected in targets, expected
    for a in drills:
        # Plain navigation without JS, and the same URL swapped in with htmx.
        assert a["hx-get"] == a["href"] and a["hx-target"] == "#dashboard"
        assert a["hx-push-url"] == "true"
        assert query_of(a["href"])["start"] == ["2024-05-01"]  # the window is kept
    # Following one narrows every panel.
    shop = next(a["href"] for a in drills if query_of(a["href"]).get("path") == ["/shop"])
    page = text(get(dashboard, shop))
    assert "/about" not in page.split("Requests", 1)[1]
    assert "Path /shop" in page  # the active-filter chip


def test_drill_down_from_charts_is_a_link_too(dashboard: t.Any) -> None:
    html = get(dashboard, dashboard_urls(dashboard)["top"], HTMX).get_data(as_text=True)
    svg_links = re.findall(r'<a [^>]*class="fs-drill"[^>]*>', html)
    assert svg_links
    hrefs = [re.search(r' href="([^"]+)"', a).group(1).replace("&amp;", "&") for a in svg_links]
    assert any(query_of(h).get("path") == ["/shop"] for h in hrefs)
    assert any(query_of(h).get("platform") == ["Linux"] for h in hrefs)


def test_active_filters_can_be_removed(dashboard: t.Any) -> None:
    url = dashboard_urls(dashboard)["index"] + "&path=/shop&method=GET"
    page = Page(get(dashboard, url).get_data(as_text=True))
    removers = [a for a in page.links if "chip-remove" in (a.get("class") or "")]
    assert len(removers) == 2
    remaining = [query_of(a["href"]) for a in removers]
    assert {"start": ["2024-05-01"], "end": ["2024-05-03"], "method": ["GET"]} in remaining
    assert {"start": ["2024-05-01"], "end": ["2024-05-03"], "path": ["/shop"]} in remaining


def test_prefix_path_filter(dashboard: t.Any) -> None:
    shown = text(get(dashboard, dashboard_urls(dashboard)["kpis"] + "&path=/sh&path_match=prefix"))
    assert re.search(r"Hits 8\b", shown)


def test_every_row_links_to_its_detail(dashboard: t.Any) -> None:
    html = get(dashboard, dashboard_urls(dashboard)["requests"]).get_data(as_text=True)
    rows = re.findall(r'<tr data-index="(\d+)".*?</tr>', html, re.S)
    details = [a["href"] for a in Page(html).links if a.get("class") == "detail-link"]
    assert len(rows) == len(details) == 5
    for index, href in zip(rows, details):
        assert urlsplit(href).path == f"/statistics/requests/{index}"


# ---------------------------------------------------------------------------------
# The detail page


def test_detail_shows_every_stored_field_and_related_links(make_app: t.Any) -> None:
    app, *_ = make_app(model="default")
    insert(app, [row(
        date=datetime(2024, 5, 2, 8, 30, 1), method="PUT", path="/api/items/7",
        status_code=503, response_time=1.25, size=2048, mimetype="application/json",
        remote_address="198.51.100.9", user_agent="Googlebot/2.1 (+http://www.google.com/bot.html)",
        referrer="https://search.example/?q=items", browser="Googlebot 2.1", platform="Other",
        exception="TimeoutError('upstream')", is_bot=True,
    )])
    index = indexes(app)[0]
    response = get(app, f"/statistics/requests/{index}?{QS}")
    assert response.status_code == 200
    page = Page(response.get_data(as_text=True))
    fields = re.findall(r'data-field="(\w+)"', response.get_data(as_text=True))
    state = app.extensions["statistics"]
    assert fields == list(state.table.c.keys())  # every column, is_bot included
    shown = page.all_text
    for expected in (
        f"Request number {index}", "2024-05-02 08:30:01 UTC", "PUT", "/api/items/7", "503",
        "1.25 s", "2.0 KB", "2,048 bytes", "application/json", "198.51.100.9",
        "Googlebot/2.1 (+http://www.google.com/bot.html)", "Googlebot 2.1", "Other",
        "TimeoutError('upstream')", "Bot Yes, a crawler",
    ):
        assert expected in shown, expected
    related = {a["id"]: query_of(a["href"]) for a in page.links if (a.get("id") or "").startswith("related-")}
    assert related["related-path"]["path"] == ["/api/items/7"]
    assert related["related-address"]["remote_address"] == ["198.51.100.9"]
    assert related["related-user-agent"]["user_agent"] == ["Googlebot/2.1 (+http://www.google.com/bot.html)"]
    assert related["related-status"]["status"] == ["503"]
    assert related["related-path"]["start"] == ["2024-05-01"]  # the window is kept
    referrer = next(a for a in page.links if a.get("href") == "https://search.example/?q=items")
    assert referrer["rel"] == "noopener noreferrer nofollow"


def test_detail_of_missing_or_absurd_request_is_404(dashboard: t.Any) -> None:
    missing = get(dashboard, "/statistics/requests/999999")
    assert missing.status_code == 404
    assert "No request number 999999" in text(missing)
    assert get(dashboard, f"/statistics/requests/{10**30}").status_code == 404
    assert get(dashboard, "/statistics/requests/-1").status_code == 404


def test_null_values_render(make_app: t.Any) -> None:
    app, *_ = make_app()
    insert(app, [row(size=None, user_agent=None, referrer=None, browser=None, platform=None,
                     mimetype=None, remote_address=None, response_time=None)])
    for name, url in dashboard_urls(app, detail_index=indexes(app)[0]).items():
        assert get(app, url).status_code == 200, name
    assert "not recorded" in text(get(app, f"/statistics/requests/{indexes(app)[0]}"))


def test_empty_window_says_so(make_app: t.Any) -> None:
    app, *_ = make_app()
    shown = text(get(app, dashboard_urls(app)["index"]))
    assert "No requests match these filters." in shown
    assert "No responses in this range." in shown


# ---------------------------------------------------------------------------------
# Without JavaScript


def test_everything_is_reachable_without_javascript(dashboard: t.Any) -> None:
    html = get(dashboard, dashboard_urls(dashboard)["index"]).get_data(as_text=True)
    page = Page(html)
    form = page.by_id("filters")
    assert form is not None and form["method"] == "get" and form["action"] == "/statistics/"
    names = {attrs.get("name") for tag, attrs in page.elements if tag in ("input", "select")}
    assert {"start", "end", "path", "path_match", "status", "method", "browser", "platform",
            "remote_address", "user_agent"} <= names
    assert any(tag == "button" and attrs.get("type") == "submit" for tag, attrs in page.elements)
    # Everything htmx can fetch is also a link or the form: no JS-only control.
    for tag, attrs in page.elements:
        if "hx-get" in attrs:
            assert (tag == "a" and attrs.get("href")) or tag == "form", (tag, attrs)
    # The full page renders every panel's data, not placeholders.
    assert 'hx-trigger="load"' not in html
    for name in PARTIAL_ENDPOINTS:
        assert page.by_id(f"panel-{name.replace('_', '-')}") is not None


def test_every_control_is_labelled(dashboard: t.Any) -> None:
    page = Page(get(dashboard, dashboard_urls(dashboard)["index"]).get_data(as_text=True))
    labelled = {attrs.get("for") for tag, attrs in page.elements if tag == "label"}
    for tag, attrs in page.elements:
        if tag in ("input", "select") and attrs.get("type") != "hidden":
            assert attrs.get("id") in labelled or attrs.get("aria-label"), attrs
    headers = [attrs for tag, attrs in page.elements if tag == "th"]
    assert headers and all(attrs.get("scope") in ("col", "row") for attrs in headers)
    for tag, attrs in page.elements:
        if tag == "svg" and "pygal-chart" in (attrs.get("class") or ""):
            assert attrs["role"] in ("img", "figure") and attrs["aria-labelledby"]


# ---------------------------------------------------------------------------------
# Bad input: 400 with the messages, never a 500

BAD_INPUT = [
    ("start=2024-13-45", "Enter the start date as YYYY-MM-DD."),
    ("start=2024-05-03&end=2024-05-01", "The end date is before the start date."),
    ("end=&start=abc", "Enter the start date as YYYY-MM-DD."),
    ("status=abc", "Enter a status code from 100 to 599, or a class such as 4xx."),
    ("page=-1", "Choose a page from 1 to 100000."),
    (f"page={10**9}", "Choose a page from 1 to 100000."),
    ("sort=password", "Not a valid choice."),
    ("path=" + "x" * 5000, "Use at most 2048 characters."),
]


@pytest.mark.parametrize(("query", "message"), BAD_INPUT)
def test_bad_query_input_is_a_400_with_the_message(make_app: t.Any, query: str, message: str) -> None:
    app, *_ = make_app()
    for name, url in dashboard_urls(app, query=query).items():
        for headers in ({}, HTMX):
            response = get(app, url, headers)
            assert response.status_code == 400, (name, headers)
            shown = text(response)
            assert message in shown, (name, headers)
            assert "These filters can’t be used" in shown
            if headers and name != "detail":
                html = response.get_data(as_text=True)
                assert "<html" not in html
                # Swapped where the panel (or the dashboard) was.
                if name != "index":
                    assert f'id="panel-{name.replace("_", "-")}"' in html
                else:
                    assert response.headers["HX-Push-Url"] == "false"
                    assert 'id="filters"' in html


def test_the_rejected_value_stays_in_the_form(make_app: t.Any) -> None:
    app, *_ = make_app()
    page = Page(get(app, "/statistics/?start=2024-02-31&status=abc").get_data(as_text=True))
    start = page.by_id("start")
    assert start["value"] == "2024-02-31" and start["aria-invalid"] == "true"
    assert start["type"] == "text"  # a date input could not show what was typed
    assert page.by_id("status")["value"] == "abc"
    assert page.by_id("status-error") is not None


def test_page_size_comes_from_the_config(make_app: t.Any) -> None:
    app, *_ = make_app(config={"STATISTICS_PAGE_SIZE": 3})
    insert(app, [row(date=NOON + timedelta(seconds=i)) for i in range(7)])
    html = get(app, dashboard_urls(app)["requests"]).get_data(as_text=True)
    assert len(re.findall(r"<tr data-index=", html)) == 3
    assert "3 per page" in text(get(app, dashboard_urls(app)["requests"]))


def test_dashboard_mounts_at_the_configured_prefix(make_app: t.Any) -> None:
    app, *_ = make_app(config={"STATISTICS_URL_PREFIX": "/admin/stats"})
    assert get(app, "/admin/stats/").status_code == 200
    assert get(app, "/statistics/").status_code == 404
    html = get(app, "/admin/stats/").get_data(as_text=True)
    assert 'href="/admin/stats/static/statistics/dashboard.css"' in html


# ---------------------------------------------------------------------------------
# The request log's position, and how figures read


def test_request_log_says_which_rows_of_how_many_it_shows(dashboard: t.Any) -> None:
    urls = dashboard_urls(dashboard)
    pages = {}
    for number in (1, 2, 3):
        html = get(dashboard, urls["requests"] + f"&page={number}", HTMX).get_data(as_text=True)
        pages[number] = Page(html)
    assert "1–5 of 12 · newest first" in pages[1].all_text
    assert "6–10 of 12" in pages[2].all_text
    assert "11–12 of 12" in pages[3].all_text
    assert "Page 1 of 3" in pages[1].all_text and "Page 3 of 3" in pages[3].all_text
    # The last page is one click away, and so is the first.
    assert query_of(pages[1].by_id("page-last")["href"])["page"] == ["3"]
    assert pages[2].by_id("page-last") is None  # "Next" is the last page already
    assert "page" not in query_of(pages[3].by_id("page-first")["href"])
    assert pages[3].by_id("page-last") is None
    # The total follows the filters: six POST requests.
    html = get(dashboard, urls["requests"] + "&method=POST", HTMX).get_data(as_text=True)
    assert "1–5 of 6" in Page(html).all_text


def test_paths_with_a_single_row_say_it_in_the_singular(make_app: t.Any) -> None:
    app, *_ = make_app()
    insert(app, [row(path="/only")])
    shown = text(get(app, dashboard_urls(app)["paths"], HTMX))
    assert "The busiest path" in shown or "The busiest route" in shown
    assert "The 1 busiest" not in shown


def test_paths_may_wrap_only_after_a_slash(make_app: t.Any) -> None:
    app, *_ = make_app()
    insert(app, [row(path="/reports/monthly/<b>x</b>")])
    html = get(app, dashboard_urls(app)["requests"], HTMX).get_data(as_text=True)
    assert "/<wbr>reports/<wbr>monthly/<wbr>&lt;b&gt;x&lt;/<wbr>b&gt;" in html
    assert "<b>" not in html


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (0.00042, "0.42 ms"), (0.0871, "87 ms"), (0.9994, "999 ms"), (0.9997, "1.00 s"),
        (3.0834, "3.08 s"), (12.34, "12.3 s"), (99.97, "100 s"), (4321.0, "4,321 s"),
    ],
)
def test_durations_over_a_second_are_shown_in_seconds(seconds: float, shown: str) -> None:
    from flask_statistics.formatting import duration

    assert duration(seconds) == shown
