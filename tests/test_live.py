"""The live view at /statistics/live: requests per minute over the last 30 minutes,
the current rate, status classes and the latest requests, on every backend; and in
a real browser, polling under both CSPs, pausing while the tab is hidden, and a
refresh link without JavaScript."""

from __future__ import annotations

import re
import typing as t
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from dashboard_support import HISTORY_RESTORE, HOSTILE_PATH, HTMX, Page, insert, row
from flask import Response

from flask_statistics import live

NOW = datetime(2026, 11, 25, 14, 30, 0)


def at(seconds_ago: float, **values: t.Any) -> dict[str, t.Any]:
    return row(date=NOW - timedelta(seconds=seconds_ago), **values)


def live_rows() -> list[dict[str, t.Any]]:
    """Rows on both sides of every edge: the window's start, minute boundaries, now."""
    rows = [
        at(0, path="/future-edge"),  # at now: not yet in the window
        at(-30, path="/future"),  # after now (another host's clock)
        at(30 * 60, path="/first-edge", status_code=201),  # the first instant: counted
        at(30 * 60 + 1, path="/too-old"),  # just before the window
        at(60, status_code=404),  # the first instant of the last minute
        at(61, status_code=302),
        at(1, status_code=500),
        at(59, status_code=None),
        at(45, status_code=99),
        at(3 * 3600, path="/hours-ago"),
    ]
    statuses = (200, 200, 200, 304, 404, 503, 101)
    for i in range(60):
        rows.append(at(7 + i * 29.5, status_code=statuses[i % len(statuses)], path=f"/p/{i}"))
    return rows


def stored(app: t.Any) -> list[dict[str, t.Any]]:
    """Every row as the database keeps it (MariaDB's DATETIME drops the fraction)."""
    state = app.extensions["statistics"]
    with app.app_context(), state.db.engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(state.table)).mappings()]


def snapshot(app: t.Any, now: datetime = NOW) -> live.Snapshot:
    state = app.extensions["statistics"]
    with app.app_context(), state.db.engine.connect() as conn:
        return live.snapshot(conn, state.table, now)


def status_class(code: int | None) -> str:
    return f"{code // 100}xx" if code is not None and 100 <= code <= 599 else "other"


def test_figures_match_the_raw_rows(make_app: t.Any) -> None:
    app, *_ = make_app()
    insert(app, live_rows())
    snap = snapshot(app)
    rows = stored(app)
    since = NOW - timedelta(minutes=30)
    window = [r for r in rows if since <= r["date"] < NOW]
    assert len(window) == 66  # the reference itself sees the edges as meant

    # One bar per whole minute, the last one ending now.
    assert len(snap.minutes) == live.WINDOW_MINUTES
    assert snap.minutes[0].start == since and snap.minutes[-1].end == NOW
    for minute in snap.minutes:
        assert minute.end - minute.start == timedelta(minutes=1)
        assert minute.hits == sum(1 for r in window if minute.start <= r["date"] < minute.end), minute
    assert snap.total == len(window)
    assert snap.last_minute == sum(1 for r in window if r["date"] >= NOW - timedelta(minutes=1))
    assert snap.last_minute >= 5 and snap.per_second == snap.last_minute / 60

    reference = {name: 0 for name in live.STATUS_CLASSES}
    other = 0
    for r in window:
        name = status_class(r["status_code"])
        if name == "other":
            other += 1
        else:
            reference[name] += 1
    assert dict(snap.classes) == reference
    assert [name for name, _ in snap.classes] == list(live.STATUS_CLASSES)
    assert snap.other_status == other == 2


def test_latest_requests_are_the_newest_twenty(make_app: t.Any) -> None:
    app, *_ = make_app()
    insert(app, live_rows())
    snap = snapshot(app)
    newest = sorted(stored(app), key=lambda r: (r["date"], r["index"]), reverse=True)[: live.LATEST]
    assert [r["index"] for r in snap.latest] == [r["index"] for r in newest]
    assert snap.latest[0]["path"] == "/future"  # newest whatever the window
    assert set(snap.latest[0]) == {"index", "date", "method", "path", "status_code", "response_time"}


def test_an_empty_table(make_app: t.Any) -> None:
    app, *_ = make_app()
    snap = snapshot(app)
    assert snap.total == snap.last_minute == 0 and snap.latest == []
    html = app.test_client().get("/statistics/live").get_data(as_text=True)
    assert "No requests recorded yet." in html


# ---------------------------------------------------------------------------------
# The pages


def recent(app: t.Any) -> list[dict[str, t.Any]]:
    """Rows a few seconds and minutes old, one of them hostile."""
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    rows = [row(date=now - timedelta(seconds=5 + i), status_code=200) for i in range(7)]
    rows += [row(date=now - timedelta(minutes=10), status_code=404, path=HOSTILE_PATH)]
    rows += [row(date=now - timedelta(hours=2), path="/old")]
    insert(app, rows)
    return rows


def kpi(html: str, element_id: str) -> str:
    match = re.search(rf'id="{element_id}">([^<]*)<', html)
    assert match, element_id
    return match.group(1)


def test_live_page_shows_the_figures_and_links_each_request(make_app: t.Any) -> None:
    app, *_ = make_app()
    recent(app)
    response = app.test_client().get("/statistics/live")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert html.lstrip().lower().startswith("<!doctype html>")
    assert kpi(html, "live-last-minute") == "7"
    assert kpi(html, "live-per-second") == "0.12"
    assert kpi(html, "live-total") == "8"
    page = Page(html)
    # Every listed request links to its detail page; the hostile path is text.
    details = [a["href"] for a in page.links if a.get("class") == "detail-link"]
    assert len(details) == 9
    for href in details:
        assert re.fullmatch(r"/statistics/requests/\d+", href or ""), href
    assert "/<script>alert('p')</script>\"'&]]>" in page.all_text
    assert "<script>alert" not in html
    # The way back, and a refresh that works without JavaScript.
    hrefs = {a.get("id"): a["href"] for a in page.links}
    assert hrefs["back-to-dashboard"] == "/statistics/" and hrefs["live-refresh"] == "/statistics/live"
    assert not page.inline_scripts and not page.style_attributes and not page.handlers and not page.styles
    assert '<script defer src="/statistics/static/statistics/live.js"></script>' in html
    # The chart counts from 0 in whole numbers.
    assert "Requests per minute" in html and 'class="pygal-chart' in html


def test_the_panel_is_a_fragment_that_polls_itself(make_app: t.Any) -> None:
    app, *_ = make_app()
    recent(app)
    client = app.test_client()
    response = client.get("/statistics/live/panel", headers=HTMX)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "<html" not in html and "<body" not in html
    panel = Page(html).by_id("live-panel")
    assert panel is not None
    assert panel["hx-get"] == "/statistics/live/panel"
    assert panel["hx-trigger"] == "every 10s, live-refresh"
    assert panel["hx-swap"] == "outerHTML"
    assert kpi(html, "live-last-minute") == "7"
    assert set(response.vary) >= {"HX-Request", "HX-Request-Type"}
    assert response.headers["Cache-Control"] == "no-store"
    # History restore and plain requests get the whole page.
    for headers in (HISTORY_RESTORE, {}):
        page = client.get("/statistics/live/panel", headers=headers).get_data(as_text=True)
        assert page.lstrip().lower().startswith("<!doctype html>") and 'id="live-panel"' in page


@pytest.mark.parametrize("path", ["/statistics/live", "/statistics/live/panel"])
def test_a_refusing_guard_blocks_the_live_view(make_app: t.Any, path: str) -> None:
    app, *_ = make_app(guard=lambda: Response("keep out", status=403))
    recent(app)
    for headers in ({}, HTMX):
        response = app.test_client().get(path, headers=headers)
        assert response.status_code == 403
        assert response.get_data() == b"keep out"
        assert response.headers["Cache-Control"] == "no-store"


def test_live_chart_counts_from_zero_in_whole_numbers() -> None:
    from flask_statistics import charts
    from flask_statistics.filters import zone

    starts = live.minute_starts(NOW)
    minutes = [(start, start + timedelta(minutes=1), k % 3) for k, start in enumerate(starts)]
    svg = str(charts.live_chart(minutes, zone("Europe/Berlin"), "Europe/Berlin"))
    y_axis = svg[svg.index('class="axis y'):svg.index('class="axis x')]
    labels = re.findall(r"<text [^>]*>([^<]*)</text>", y_axis)
    assert labels == ["0", "1", "2"]  # from 0, and small counts get no 0.5 ticks
    # Each bar says which minute it is, in local time, without JavaScript too.
    assert "15:28:00 – 15:29:00: 1 request<" in svg
    assert "style=" not in svg and "<script" not in svg


# ---------------------------------------------------------------------------------
# In a real browser (fixtures shared with test_browser.py: the seeded demo app under
# both policies, watched for CSP violations and requests to other hosts)

from test_browser import browser, session, session_factory, site, tally  # noqa: E402,F401

# Lets a test hide and show the tab: Chromium keeps a headless page visible.
VISIBILITY_SCRIPT = """
window.__testHidden = false;
Object.defineProperty(Document.prototype, "hidden", {
  configurable: true, get() { return window.__testHidden; } });
Object.defineProperty(Document.prototype, "visibilityState", {
  configurable: true, get() { return window.__testHidden ? "hidden" : "visible"; } });
// Polls that came due, sent or not.
window.__liveAttempts = 0;
document.addEventListener("htmx:before:request", (event) => {
  if (event.target && event.target.id === "live-panel") window.__liveAttempts += 1;
}, true);
window.__setHidden = (hidden) => {
  window.__testHidden = hidden;
  document.dispatchEvent(new Event("visibilitychange"));
};
"""
MARK_PANEL = "document.getElementById('live-panel').dataset.old = 'yes'"
PANEL_REPLACED = "() => { const p = document.getElementById('live-panel'); return p && !p.dataset.old && !p.classList.contains('htmx-request'); }"


def record(site: t.Any, path: str) -> None:
    """A request recorded just now, straight into the demo's table."""
    state = site.app.extensions["statistics"]
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    with site.app.app_context(), state.db.engine.begin() as conn:
        conn.execute(state.table.insert(), [row(date=now, path=path, status_code=201, method="POST")])


def newest_path(page: t.Any) -> str:
    return page.locator("#live-log tbody tr.log-row >> nth=0 >> td.cell-path").inner_text().strip()


def panel_requests(session: t.Any) -> list[str]:
    seen: list[str] = []
    session.page.on("request", lambda r: seen.append(r.url) if "/statistics/live/panel" in r.url else None)
    return seen


def test_live_view_polls_every_10_seconds_under_the_csp(session: t.Any) -> None:
    page = session.page
    site = session.site
    page.clock.install()
    session.open(site.server.url + "/statistics/live")
    assert page.locator("#live-status").inner_text() == "Updates every 10 s"
    assert page.locator("#live-minutes svg.pygal-chart").count() == 1
    assert page.locator("#live-log tbody tr.log-row").count() == live.LATEST
    polls = panel_requests(session)
    page.clock.run_for(5_000)
    assert polls == []  # not before 10 s

    record(site, "/live/first")
    page.evaluate(MARK_PANEL)
    page.clock.run_for(5_500)
    page.wait_for_function(PANEL_REPLACED)
    assert len(polls) == 1
    assert newest_path(page) == "/live/first"
    # The swapped-in chart got its tooltips, like the dashboard's.
    page.wait_for_function("() => !document.querySelector('#live-minutes svg title.fs-native-tip')")

    # The new panel keeps polling.
    record(site, "/live/second")
    page.evaluate(MARK_PANEL)
    page.clock.run_for(10_500)
    page.wait_for_function(PANEL_REPLACED)
    assert len(polls) == 2 and newest_path(page) == "/live/second"

    # Each latest request opens its detail page.
    with page.expect_navigation():
        page.locator("#live-log tbody tr.log-row >> nth=0 >> a.detail-link").click()
    assert page.locator("#request-detail .detail-path").inner_text() == "/live/second"
    page.go_back()
    page.locator("#back-to-dashboard").click()
    page.wait_for_url(site.url)
    session.assert_clean()


def test_live_view_pauses_while_the_tab_is_hidden(session: t.Any) -> None:
    page = session.page
    site = session.site
    session.context.add_init_script(VISIBILITY_SCRIPT)
    page.clock.install()
    session.open(site.server.url + "/statistics/live")
    polls = panel_requests(session)

    page.evaluate("window.__setHidden(true)")
    assert page.locator("#live-status").inner_text() == "Paused while this tab is hidden"
    page.clock.run_for(35_000)  # three polls come due, and none is sent
    page.wait_for_function("() => window.__liveAttempts === 3")
    assert polls == []

    record(site, "/live/while-hidden")
    page.evaluate(MARK_PANEL)
    page.evaluate("window.__setHidden(false)")  # back: refreshed at once
    page.wait_for_function(PANEL_REPLACED)
    assert len(polls) == 1 and newest_path(page) == "/live/while-hidden"
    assert page.locator("#live-status").inner_text() == "Updates every 10 s"

    # And polling goes on as before.
    page.evaluate(MARK_PANEL)
    page.clock.run_for(10_500)
    page.wait_for_function(PANEL_REPLACED)
    assert len(polls) == 2
    session.assert_clean()


def test_live_view_without_javascript_offers_a_refresh_link(session_factory: t.Any) -> None:
    session = session_factory(java_script_enabled=False)
    page = session.page
    site = session.site
    session.open(site.server.url + "/statistics/live")
    assert page.locator("#live-status").is_hidden()  # no promise of updates
    assert page.locator("#live-noscript").is_visible()
    assert page.locator("#live-log tbody tr.log-row").count() == live.LATEST

    record(site, "/live/no-js")
    with page.expect_navigation():
        page.locator("#live-refresh").click()
    assert page.url == site.server.url + "/statistics/live"
    assert newest_path(page) == "/live/no-js"
    assert len(session.watch.full_loads) == 2
    page.locator("#live-dashboard").click()
    page.wait_for_url(site.url)
    session.assert_clean()
