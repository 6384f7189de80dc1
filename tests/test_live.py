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
    assert labels == ["0", "1", "2", "3", "4"]  # small counts get no 0.5 ticks
    # Each bar says which minute it is, in local time, without JavaScript too.
    assert "15:28:00 – 15:29:00 · Requests: 1" in svg
    assert "style=" not in svg and "<script" not in svg
