"""The streamed full page in a real browser, under both policies of test_browser.py:
the header, the filters and the panels that are ready show while a slow panel is
still being read, with JavaScript and without.
"""

from __future__ import annotations

import dataclasses
import threading
import typing as t

import pytest

from browser_support import Session
from test_browser import browser, session_factory, site, tally  # noqa: F401 (fixtures)

from flask_statistics import views
from flask_statistics.panels import Panel


@pytest.mark.parametrize("javascript", [True, False], ids=["js", "no-js"])
def test_the_page_shows_before_a_slow_panel_is_read(
    session_factory: t.Callable[..., Session], monkeypatch: pytest.MonkeyPatch, javascript: bool
) -> None:
    release = threading.Event()
    partial = views.PARTIALS["top"]
    original = partial.panel.fetch

    def slow(view: t.Any) -> t.Any:
        release.wait(30)
        return original(view)

    monkeypatch.setitem(
        views.PARTIALS, "top", dataclasses.replace(partial, panel=Panel(slow, partial.panel.present))
    )
    session = session_factory(java_script_enabled=javascript)
    page = session.page
    try:
        # "commit": the response has started; the page goes on arriving meanwhile.
        page.goto(session.site.url, wait_until="commit")
        page.locator("#filters").wait_for(state="visible")
        page.locator("#panel-status").wait_for(state="visible")
        assert page.locator("#panel-kpis .kpi").count() == 9
        # The panel still being read hasn't arrived, and nothing waits in its place.
        assert page.locator("#panel-top").count() == 0
    finally:
        release.set()
    page.locator("#panel-top svg.pygal-chart").first.wait_for(state="visible")
    page.locator("#panel-requests").wait_for(state="visible")
    page.wait_for_load_state("load")
    session.assert_clean()
