"""The dashboard's layout in a real browser, under both policies of test_browser.py:
what stays on screen while panels reload, and the phone layout (360 to 400 px),
checked by element widths and line boxes rather than screenshots.
"""

from __future__ import annotations

import typing as t

from browser_support import Session, hits, kpi, log_column, wait_for_query
from test_browser import browser, session_factory, site, tally  # noqa: F401 (fixtures)

# ---------------------------------------------------------------------------------
# Reloading in place


class Held:
    """Requests for panel partials, held back until released."""

    def __init__(self, session: Session, pattern: str = "**/statistics/partials/**") -> None:
        self.session = session
        self.pattern = pattern
        self.routes: list[t.Any] = []
        session.page.route(pattern, self._hold)

    def _hold(self, route: t.Any) -> None:
        self.routes.append(route)

    def wait(self, count: int) -> None:
        """Wait until ``count`` requests are held (the page keeps running meanwhile)."""
        page = self.session.page
        for _ in range(500):  # up to about 10 s, the tests' usual timeout
            if len(self.routes) >= count:
                return
            page.wait_for_timeout(20)
        raise AssertionError(f"{count} panel requests expected, {[r.request.url for r in self.routes]} came")

    def release(self) -> None:
        for route in self.routes:
            route.continue_()
        self.routes.clear()
        self.session.page.unroute(self.pattern, self._hold)


def busy_and_unclickable(page: t.Any, panel: str) -> dict[str, t.Any]:
    """How the panel looks and answers a click at its first link (or its middle)."""
    return t.cast(
        dict[str, t.Any],
        page.evaluate(
            """id => {
                const panel = document.getElementById(id);
                const target = panel.querySelector("a[href]") || panel;
                const box = target.getBoundingClientRect();
                target.scrollIntoView({block: "center"});
                const again = target.getBoundingClientRect();
                const hit = document.elementFromPoint(again.left + again.width / 2, again.top + again.height / 2);
                const body = panel.querySelector(":scope > :not(.panel-head)");
                return {
                    old: panel.hasAttribute("data-old"),
                    busy: panel.getAttribute("aria-busy"),
                    inert: panel.inert,
                    visible: box.height > 0 && getComputedStyle(panel).visibility === "visible",
                    dimmed: Number(getComputedStyle(body).opacity) < 1,
                    hit: panel.contains(hit),
                    placeholders: document.querySelectorAll("#dashboard .skeleton").length,
                };
            }""",
            panel,
        ),
    )


def test_panels_stay_until_their_replacement_arrives(session_factory: t.Callable[..., Session]) -> None:  # noqa: F811
    session = session_factory()
    page = session.page
    site = session.site
    session.open()
    session.settle()
    before = kpi(page, "hits")
    page.evaluate("document.querySelectorAll('[data-partial]').forEach(el => el.setAttribute('data-old', ''))")

    # A filter change: the panels' own requests are held, so what is on screen is
    # what a user sees while they load.
    held = Held(session)
    page.select_option("#method", "POST")
    wait_for_query(page, method="POST")
    held.wait(7)
    for panel in ("panel-kpis", "panel-requests", "panel-traffic"):
        state = busy_and_unclickable(page, panel)
        assert state == {
            "old": True, "busy": "true", "inert": True, "visible": True, "dimmed": True,
            "hit": False, "placeholders": 0,
        }, (panel, state)
    assert kpi(page, "hits") == before, "the old figures left before the new ones came"
    assert page.locator("#progress").evaluate("el => getComputedStyle(el).opacity") == "1"

    held.release()
    session.settle()
    assert page.locator("[data-old]").count() == 0
    assert page.locator("#dashboard .panel[aria-busy], #dashboard .panel[inert]").count() == 0
    assert kpi(page, "hits") == hits(site.count(method="POST"))
    assert set(log_column(page, 1)) == {"POST"}

    # Back: the same, while htmx restores the previous page.
    page.evaluate("document.querySelectorAll('[data-partial]').forEach(el => el.setAttribute('data-old', ''))")
    held = Held(session)
    page.go_back()
    wait_for_query(page, method=None)
    held.wait(7)
    state = busy_and_unclickable(page, "panel-requests")
    assert state["old"] and state["busy"] == "true" and not state["hit"] and state["placeholders"] == 0, state
    assert set(log_column(page, 1)) == {"POST"}, "the old rows left before the new ones came"
    held.release()
    session.settle()
    assert page.locator("[data-old]").count() == 0
    assert kpi(page, "hits") == hits(site.total)
    assert page.input_value("#method") == ""
    session.assert_clean()


def test_a_failed_reload_leaves_the_panel_usable(session_factory: t.Callable[..., Session]) -> None:  # noqa: F811
    session = session_factory(counted=False)
    page = session.page
    session.open()
    session.settle()
    page.evaluate("document.getElementById('panel-requests').setAttribute('data-old', '')")
    page.route("**/statistics/partials/requests**", lambda route: route.abort())
    page.click("#page-next")
    page.wait_for_function("!document.getElementById('connection-error').hidden")
    page.wait_for_function("!document.querySelector('#panel-requests[aria-busy]')")
    state = busy_and_unclickable(page, "panel-requests")
    assert state["old"] and state["busy"] is None and not state["inert"] and state["hit"], state

