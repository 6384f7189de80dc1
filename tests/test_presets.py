"""Range presets end to end: the rolling 24 hours from rollups against the raw rows
on every backend, the default range and its comparison, links that keep the preset,
the canonical redirect of a no-JS form, and the preset control in a real browser
with and without JavaScript."""

from __future__ import annotations

import random
import time
import typing as t
from datetime import date, datetime, timedelta, timezone
from urllib.parse import parse_qs, urlsplit

import pytest
from werkzeug.datastructures import MultiDict

from browser_support import Session, Site, count_rows, hits, kpi, query, today, wait_for_query
from dashboard_support import HISTORY_RESTORE, HTMX, Page, dashboard_urls, insert, row
from test_browser import browser, session_factory, site, tally  # noqa: F401  (fixtures)
from test_rollups import Tables, assert_same, random_rows, tables  # noqa: F401  (fixture)

from flask_statistics import figures, queries
from flask_statistics.config import DEFAULTS
from flask_statistics.filters import PRESETS, Filters
from flask_statistics.forms import parse_filters

NOW = datetime(2024, 3, 10, 14, 20)  # naive UTC
HOUR, DAY = timedelta(hours=1), timedelta(days=1)


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def preset(name: str, tz: str = "UTC", now: datetime = NOW) -> Filters:
    config = {**DEFAULTS, "STATISTICS_TIMEZONE": tz}
    filters, form = parse_filters(MultiDict({"range": name}), config, now=now)
    assert filters is not None, form.errors
    return filters


# ---------------------------------------------------------------------------------
# The rolling 24 hours from rollups, on SQLite, PostgreSQL and MariaDB


@pytest.mark.parametrize("tz", ["UTC", "Asia/Kolkata"])
def test_24_hours_from_rollups_equal_the_raw_rows(tables: Tables, tz: str) -> None:
    rng = random.Random(24)
    tables.insert(random_rows(rng, NOW - 3 * DAY, NOW + 10 * HOUR, 1500))
    tables.rebuild(tz)
    filters = preset("24h", tz)
    assert filters.until - filters.since == 24 * HOUR
    assert queries.bucket_width(filters) == "hour"
    # Served from the 15-minute rollups, every figure as the raw rows give it; the
    # rows after "now" (a clock ahead) are not in the window.
    assert_same(tables, filters)
    assert_same(tables, filters.previous())
    with tables.engine.connect() as conn:
        series = figures.timeseries(conn, tables.store, tables.table, filters)
        kpis = figures.kpis(conn, tables.store, tables.table, filters)
    assert len(series.points) == 24
    assert series.points[0].start == filters.since and series.end == filters.until
    assert kpis.hits == sum(p.hits for p in series.points) > 0


def test_all_starts_on_the_first_recorded_day(tables: Tables) -> None:
    first = datetime(2024, 2, 3, 23, 10)
    tables.insert([*random_rows(random.Random(1), NOW - 2 * DAY, NOW, 50), row(date=first)])
    with tables.engine.connect() as conn:
        # From the raw rows before the rollups hold them, from the rollups after.
        assert figures.first_recorded(conn, None, tables.table) == first
    tables.rebuild("UTC")
    with tables.engine.connect() as conn:
        assert figures.first_recorded(conn, tables.store, tables.table) == datetime(2024, 2, 3)


# ---------------------------------------------------------------------------------
# The dashboard


def get(app: t.Any, url: str, headers: dict[str, str] | None = None) -> t.Any:
    with app.test_client() as client:
        return client.get(url, headers=headers or {})


def test_the_default_range_is_7_days_against_the_7_before(make_app: t.Any) -> None:
    app, *_ = make_app()
    now = utcnow()
    # One request today, two in the 7 days before the default week, one before those.
    insert(app, [row(date=now - timedelta(minutes=1)), row(date=now - 8 * DAY), row(date=now - 10 * DAY),
                 row(date=now - 15 * DAY)])
    response = get(app, "/statistics/partials/kpis", HTMX)
    html = response.get_data(as_text=True)
    first, last = now.date() - 13 * DAY, now.date() - 7 * DAY
    assert f"Change against {first.day} {first:%b} – {last.day} {last:%b}" in html
    page = Page(html)
    assert "Hits 1 ▼ −50 %" in page.all_text  # 1 request against 2
    assert "no data" not in page.all_text


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("7d", "no data in the previous 7 days"),
        ("today", "no data the day before"),
        ("24h", "no data in the previous 24 hours"),
        ("30d", "no data in the previous 30 days"),
    ],
)
def test_a_card_without_a_previous_period_says_so(make_app: t.Any, name: str, words: str) -> None:
    app, *_ = make_app()
    insert(app, [row(date=utcnow())])
    page = Page(get(app, f"/statistics/partials/kpis?range={name}", HTMX).get_data(as_text=True))
    assert page.all_text.count(words) >= 9  # every card
    assert "new" not in page.all_text.split()


def test_the_24_hours_that_make_one_local_day_compare_with_hours(make_app: t.Any) -> None:
    # In a day's last local hour, the rolling range is that whole day: its cards
    # still speak of the 24 hours before, not of "the day before".
    now = utcnow()
    if now.minute == 59 and now.second > 50:  # not across the turn of the hour
        time.sleep(11)
        now = utcnow()
    ahead = (23 - now.hour + 12) % 24 - 12  # hours ahead of UTC, -12 to +11
    tz = "UTC" if ahead == 0 else f"Etc/GMT{-ahead:+d}"  # the Etc names count westwards
    app, *_ = make_app(config={"STATISTICS_TIMEZONE": tz})
    insert(app, [row(date=now)])
    filters = preset("24h", tz, now)
    assert filters.until == filters.since + DAY and filters.until.hour == (24 - ahead) % 24
    page = Page(get(app, "/statistics/partials/kpis?range=24h", HTMX).get_data(as_text=True))
    assert page.all_text.count("no data in the previous 24 hours") >= 9
    assert "the day before" not in page.all_text


def test_links_carry_the_preset_not_its_dates(make_app: t.Any) -> None:
    app, *_ = make_app()
    insert(app, [row(date=utcnow() - timedelta(minutes=3), path="/shop")])
    response = get(app, "/statistics/?range=24h", HTMX)
    assert response.headers["HX-Push-Url"] == "/statistics/?range=24h"
    for name, url in dashboard_urls(app, query="range=24h&status=2xx").items():
        if name in ("index", "detail"):
            continue
        page = Page(get(app, url, HTMX).get_data(as_text=True))
        for link in page.links:
            href = link.get("href") or ""
            if not href.startswith("/statistics/") or "/static/" in href:
                continue
            args = parse_qs(urlsplit(href).query)
            assert "start" not in args and "end" not in args, (name, href)
            assert args.get("range") == ["24h"], (name, href)


def test_the_preset_control_marks_the_active_preset(make_app: t.Any) -> None:
    app, *_ = make_app()

    def control(url: str) -> tuple[list[str], str | None]:
        page = Page(get(app, url).get_data(as_text=True))
        current = [a.get("data-range") or "" for tag, a in page.elements if tag == "a" and a.get("aria-current")]
        hidden = [a.get("value") for tag, a in page.elements if tag == "input" and a.get("name") == "range"]
        assert len(hidden) == 1
        return current, hidden[0]

    presets = [a.get("data-range") for tag, a in Page(get(app, "/statistics/").get_data(as_text=True)).elements
               if tag == "a" and a.get("data-range")]
    assert presets == list(PRESETS)
    # The default is the 7-day preset, left implicit in the form as in links.
    assert control("/statistics/") == (["7d"], "")
    assert control("/statistics/?range=90d") == (["90d"], "90d")
    # Chosen dates: no preset is current.
    assert control("/statistics/?start=2024-01-01&end=2024-01-31") == ([], "")


def test_range_all_starts_on_the_first_day_with_requests(make_app: t.Any) -> None:
    app, *_ = make_app()
    first = utcnow() - 20 * DAY
    insert(app, [row(date=first), row(date=utcnow() - HOUR)])
    page = Page(get(app, "/statistics/?range=all").get_data(as_text=True))
    start, end = page.by_id("start"), page.by_id("end")
    assert start is not None and end is not None
    assert (start["value"], end["value"]) == (first.date().isoformat(), today().isoformat())
    assert "Hits 2" in page.all_text


def test_a_bad_range_is_a_400_listing_the_presets(make_app: t.Any) -> None:
    app, *_ = make_app()
    message = "Not a valid choice. Choose one of today, yesterday, 24h, 7d, 30d, 90d, 365d, all, or leave it empty."
    for name, url in dashboard_urls(app, query="range=week").items():
        for headers in ({}, HTMX):
            response = get(app, url, headers)
            assert response.status_code == 400, (name, headers)
            assert message in Page(response.get_data(as_text=True)).all_text, (name, headers)


def test_the_dates_of_a_400_page_read_alike(make_app: t.Any) -> None:
    app, *_ = make_app()
    page = Page(get(app, "/statistics/?start=2024-03-05&end=2024-03-01").get_data(as_text=True))
    start, end = page.by_id("start"), page.by_id("end")
    assert start is not None and end is not None
    # Both as typed, as text: a date input would show the browser's own format.
    assert (start["type"], start["value"], end["type"], end["value"]) == (
        "text", "2024-03-05", "text", "2024-03-01"
    )
    assert "Choose 2024-03-05 or later." in page.all_text


@pytest.mark.parametrize(
    ("sent", "canonical"),
    [
        # What the no-JS form sends: every field, most of them empty.
        ("range=&start=&end=&path=&path_match=exact&status=&method=&bots=&route=&browser=&platform="
         "&remote_address=&user_agent=&sort=date&order=desc&page=1", "/statistics/"),
        ("range=30d&start={d30}&end={today}&path=&path_match=exact&status=4xx&method=", "/statistics/?range=30d&status=4xx"),
        ("range=&start={d7}&end={today}&method=get", "/statistics/?method=GET"),
        ("range=7d&start=2024-01-01&end=2024-01-02&page=2", "/statistics/?start=2024-01-01&end=2024-01-02&page=2"),
        ("utm_source=x&status=+404+", "/statistics/?status=404"),
    ],
)
def test_a_page_with_empty_or_default_fields_redirects_to_its_canonical_url(
    make_app: t.Any, sent: str, canonical: str
) -> None:
    app, *_ = make_app()
    day = today()
    sent = sent.format(today=day, d30=day - 29 * DAY, d7=day - 6 * DAY)
    response = get(app, f"/statistics/?{sent}")
    assert response.status_code == 302
    assert response.headers["Location"] == canonical
    # The canonical URL is final, and the same query through htmx is answered as is.
    assert get(app, canonical).status_code == 200
    for headers in (HTMX, HISTORY_RESTORE):
        answered = get(app, f"/statistics/?{sent}", headers)
        assert answered.status_code == 200, headers
    assert get(app, "/statistics/?range=bogus&path=").status_code == 400


# ---------------------------------------------------------------------------------
# In the browser, under both policies


def test_choosing_presets_in_the_browser(session_factory: t.Callable[..., Session]) -> None:
    session = session_factory()
    page, site = session.page, session.site
    session.open()
    session.settle()
    page.evaluate("window.__marker = 1")
    current = page.locator("#range a[aria-current]")
    assert current.inner_text() == "7 days"

    # A preset swaps the dashboard in place and pushes a URL holding only it.
    session.swap(lambda: page.click('#range a[data-range="today"]'), range="today", start=None)
    midnight = datetime.combine(today(), datetime.min.time())
    assert kpi(page, "hits") == hits(count_rows(site.app, since=midnight))
    assert current.inner_text() == "Today"
    assert page.input_value("#start") == page.input_value("#end") == today().isoformat()

    # Another filter keeps the preset.
    session.swap(lambda: page.select_option("#method", "GET"), range="today", method="GET")
    assert kpi(page, "hits") == hits(count_rows(site.app, since=midnight, method="GET"))

    # The rolling 24 hours, in hour buckets.
    session.swap(lambda: page.click('#range a[data-range="24h"]'), range="24h", method="GET")
    assert current.inner_text() == "24 hours"
    assert page.locator("#panel-traffic .panel-meta").inner_text().startswith("Hits and unique visitors per hour")
    assert "no data" not in page.locator("#panel-kpis").inner_text()

    # Choosing a date clears the preset.
    day = (today() - timedelta(days=2)).isoformat()
    session.swap(lambda: page.fill("#start", day), range=None, start=day, method="GET")
    assert page.locator("#range a[aria-current]").count() == 0
    assert page.evaluate("window.__marker") == 1, "a preset reloaded the page"
    session.assert_clean()


def test_choosing_presets_without_javascript(session_factory: t.Callable[..., Session]) -> None:
    session = session_factory(java_script_enabled=False)
    page, site = session.page, session.site
    session.open()
    with page.expect_navigation():
        page.click('#range a[data-range="30d"]')
    assert query(page) == {"range": ["30d"]}
    assert page.locator("#range a[aria-current]").inner_text() == "30 days"
    assert kpi(page, "hits") == hits(site.total)  # the seeded week is inside 30 days

    # The form sends every field; the page answers with the canonical URL.
    page.fill("#status", "4xx")
    with page.expect_navigation():
        page.click("#apply-filters")
    wait_for_query(page, range="30d", status="4xx")
    assert query(page) == {"range": ["30d"], "status": ["4xx"]}
    assert page.locator("#range a[aria-current]").inner_text() == "30 days"
    four = sum(site.count(status_code=code) for code in (401, 404))
    assert kpi(page, "hits") == hits(four)

    # Other dates typed in the form clear the preset.
    day = (today() - timedelta(days=1)).isoformat()
    page.fill("#start", day)
    with page.expect_navigation():
        page.click("#apply-filters")
    assert query(page) == {"start": [day], "end": [today().isoformat()], "status": ["4xx"]}
    assert page.locator("#range a[aria-current]").count() == 0
    session.assert_clean()
