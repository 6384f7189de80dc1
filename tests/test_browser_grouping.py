"""Referrer hosts and browser families in a real browser (Debian's Chromium driven by
Playwright), under Flask-Talisman's default policy and the extension's strict one:
clicking a host or a family narrows the dashboard in place and lists its addresses
or versions, with JavaScript and without, and causes no CSP violation.
"""

from __future__ import annotations

import importlib
import typing as t
from datetime import datetime, timedelta, timezone

import pytest

from browser_support import (
    HOSTILE_REFERRER,
    POLICIES,
    LiveServer,
    Session,
    Site,
    build_app,
    hits,
    kpi,
    load_demo,
    marker,
    seed,
    stop_app,
)
from test_browser import browser, session_factory, tally  # noqa: F401 (fixtures)

GOOGLE_URLS = ("https://www.google.com/", "https://www.google.com/search?q=flask+statistics")
NEW_FIREFOX = "Firefox 134.0"


def more_rows(now: datetime) -> list[dict[str, t.Any]]:
    """A second address on google and a newer Firefox, beside the demo's traffic."""
    return [
        {
            "response_time": 0.02, "date": now - timedelta(hours=2 + i), "method": "GET",
            "size": 100, "status_code": 200, "path": "/", "user_agent": "Mozilla/5.0",
            "remote_address": f"192.0.2.{i}", "exception": None,
            "referrer": GOOGLE_URLS[1], "browser": NEW_FIREFOX, "platform": "Linux",
            "mimetype": "text/html", "is_bot": False,
        }
        for i in range(30)
    ]


@pytest.fixture(scope="module", params=sorted(POLICIES))
def site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[Site]:
    policy = request.param
    database = tmp_path_factory.mktemp(f"browser-grouping-{policy}") / "statistics.db"
    app = build_app(f"sqlite:///{database}", policy)
    seed(app)
    traffic = importlib.import_module("traffic")
    state = app.extensions["statistics"]
    with app.app_context(), load_demo().db.engine.begin() as conn:
        traffic.insert(conn, state.table, more_rows(datetime.now(timezone.utc).replace(tzinfo=None)))
    try:
        with LiveServer(app) as server:
            yield Site(policy, server, app)
    finally:
        stop_app(app)


def listed(page: t.Any, key: str) -> list[str]:
    """The names in one top list's "Show as list", in order."""
    items = page.locator(f"#top-{key} ol.ranked .ranked-label").all_text_contents()
    return [item.strip() for item in items]


def test_clicking_a_host_lists_its_addresses(session_factory: t.Callable[..., Session]) -> None:
    session = session_factory()
    page, site = session.page, session.site
    session.open()
    session.settle()
    assert "www.google.com" in listed(page, "referrer") and "(direct)" in listed(page, "referrer")
    page.evaluate("window.__marker = 1")

    bar = page.locator('#top-referrer svg a.fs-drill[href$="referrer=www.google.com"]')
    session.swap(bar.click, referrer="www.google.com")
    assert set(listed(page, "referrer")) == set(GOOGLE_URLS)
    assert page.locator("#top-referrer ol.ranked a.external").count() == len(GOOGLE_URLS)
    assert page.input_value("#referrer") == "www.google.com"
    assert page.locator('#active-filters [data-filter="referrer"]').count() == 1
    assert kpi(page, "hits") == hits(sum(site.count(referrer=url) for url in GOOGLE_URLS))
    assert marker(page) == 1, "a drill-down reloaded the page"

    # A hostile referrer is a group of its own; narrowing to it runs nothing.
    session.open()
    session.settle()
    page.locator("#top-referrer summary").click()
    link = page.locator("#top-referrer ol.ranked a.drill", has_text=HOSTILE_REFERRER)
    session.swap(link.click, referrer=HOSTILE_REFERRER)
    assert listed(page, "referrer") == [HOSTILE_REFERRER]
    assert kpi(page, "hits") == hits(site.count(referrer=HOSTILE_REFERRER))
    session.assert_clean()


def test_clicking_a_family_lists_its_versions(session_factory: t.Callable[..., Session]) -> None:
    session = session_factory()
    page, site = session.page, session.site
    session.open()
    session.settle()
    families = listed(page, "browser")
    assert "Firefox" in families and not any(name.startswith("Firefox 1") for name in families)
    page.evaluate("window.__marker = 1")

    session.swap(page.locator('#top-browser svg a.fs-drill[href$="browser=Firefox"]').click, browser="Firefox")
    assert set(listed(page, "browser")) == {"Firefox 133.0", NEW_FIREFOX}
    assert kpi(page, "hits") == hits(site.count(browser="Firefox 133.0") + site.count(browser=NEW_FIREFOX))

    # Then one version.
    page.locator("#top-browser summary").click()
    session.swap(page.locator("#top-browser ol.ranked a.drill", has_text=NEW_FIREFOX).click, browser=NEW_FIREFOX)
    assert listed(page, "browser") == [NEW_FIREFOX]
    assert kpi(page, "hits") == hits(site.count(browser=NEW_FIREFOX))
    assert marker(page) == 1, "a drill-down reloaded the page"
    session.assert_clean()


def test_without_javascript_a_host_is_a_plain_link(session_factory: t.Callable[..., Session]) -> None:
    session = session_factory(java_script_enabled=False)
    page = session.page
    session.open()
    page.locator("#top-referrer summary").click()
    page.locator("#top-referrer ol.ranked a.drill", has_text="www.google.com").click()
    page.wait_for_url("**referrer=www.google.com*")
    assert set(listed(page, "referrer")) == set(GOOGLE_URLS)
    session.assert_clean()
