"""The dashboard's layout in a real browser, under both policies of test_browser.py:
what stays on screen while panels reload, and the phone layout (360 to 400 px),
checked by element widths and line boxes rather than screenshots.
"""

from __future__ import annotations

import time
import typing as t

import pytest

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


def opacity_reaches_one(element: t.Any, seconds: float = 5.0) -> bool:
    """Whether ``element`` is drawn fully opaque within ``seconds`` (CSS fades in)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if element.evaluate("el => getComputedStyle(el).opacity") == "1":
            return True
        time.sleep(0.05)
    return False


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
    # The progress bar fades in: it must reach full opacity while the panels load.
    assert opacity_reaches_one(page.locator("#progress"))

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
    page.wait_for_function("() => !document.getElementById('connection-error').hidden")
    page.wait_for_function("() => !document.querySelector('#panel-requests[aria-busy]')")
    state = busy_and_unclickable(page, "panel-requests")
    assert state["old"] and state["busy"] is None and not state["inert"] and state["hit"], state



# ---------------------------------------------------------------------------------
# Paging keeps the log's heading in view


def test_paging_keeps_the_log_heading_below_the_top_bar(session_factory: t.Callable[..., Session]) -> None:  # noqa: F811
    session = session_factory()
    page = session.page
    session.open()
    session.settle()
    assert "1–50 of " + hits(session.site.total) in page.locator("#panel-requests .panel-meta").inner_text()
    page.locator("#page-next").scroll_into_view_if_needed()
    session.swap(lambda: page.click("#page-next"), "panel-requests", page="2")
    assert page.locator("#panel-requests .panel-meta").inner_text().startswith("51–100 of ")
    heading, bar = page.evaluate(
        """() => [document.getElementById("panel-requests-title").getBoundingClientRect().top,
                  document.querySelector(".topbar").getBoundingClientRect().bottom]"""
    )
    assert bar <= heading <= bar + 100, (heading, bar)

    # The last page is one click away, and says where it ends.
    session.swap(lambda: page.click("#page-last"), "panel-requests")
    meta = page.locator("#panel-requests .panel-meta").inner_text()
    assert meta.split(" · ")[0].endswith(f"{hits(session.site.total)} of {hits(session.site.total)}"), meta
    assert page.locator("#page-next").count() == 0
    session.assert_clean()


# ---------------------------------------------------------------------------------
# Phones

LAYOUT_PROBLEMS = """() => {
    const problems = [];
    const root = document.documentElement;
    if (root.scrollWidth > innerWidth) problems.push(`page ${root.scrollWidth} > ${innerWidth}`);
    // No panel, and no box inside one, scrolls sideways.
    for (const el of document.querySelectorAll("#dashboard .panel, #dashboard .panel .table-scroll, #dashboard .panel .chart")) {
        if (el.scrollWidth > el.clientWidth) problems.push(`${el.id || el.className} ${el.scrollWidth} > ${el.clientWidth}`);
    }
    // Charts scale to the width of their panel.
    for (const svg of document.querySelectorAll("#dashboard svg.pygal-chart")) {
        const panel = svg.closest(".panel").getBoundingClientRect();
        const box = svg.getBoundingClientRect();
        if (box.left < panel.left || box.right > panel.right) problems.push(`chart ${svg.id} ${box.width} wide`);
    }
    return problems;
}"""

# Where a recorded path's text breaks onto a new line: the character before each break.
PATH_BREAKS = """els => els.map(el => {
    const found = [];
    const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
    let previous = null;
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        for (let i = 0; i < node.length; i++) {
            const range = document.createRange();
            range.setStart(node, i);
            range.setEnd(node, i + 1);
            const box = range.getBoundingClientRect();
            if (!box.height) continue;
            if (previous && box.top > previous.top + previous.height / 2) found.push(previous.char);
            previous = {top: box.top, height: box.height, char: node.data[i]};
        }
    }
    return [el.textContent, found];
})"""


def line_count(page: t.Any, selector: str) -> list[int]:
    return t.cast(
        list[int],
        page.locator(selector).evaluate_all(
            """els => els.filter(e => e.getClientRects().length).map(e => {
                const range = document.createRange();
                range.selectNodeContents(e);
                return new Set([...range.getClientRects()].map(box => Math.round(box.top))).size;
            })"""
        ),
    )


@pytest.mark.parametrize("width", [360, 390, 400])
def test_phone_layout_fits_the_screen(session_factory: t.Callable[..., Session], width: int) -> None:  # noqa: F811
    session = session_factory(
        viewport={"width": width, "height": 800}, device_scale_factor=2, is_mobile=True, has_touch=True
    )
    page = session.page
    session.open()
    session.settle()
    assert page.evaluate(LAYOUT_PROBLEMS) == []

    # Long paths wrap only after a "/", never inside a segment.
    breaks = page.locator("#request-log .cell-path a, #paths-table .cell-path a").evaluate_all(PATH_BREAKS)
    assert breaks, "no paths found"
    assert all(found == [] or set(found) == {"/"} for _, found in breaks), [b for b in breaks if b[1]]
    assert any(found for _, found in breaks), "no path needed to wrap: the check proves nothing"
    # Browser names stay on one line; so do the times.
    assert set(line_count(page, "#request-log .cell-browser")) == {1}
    assert set(line_count(page, "#request-log .cell-date time")) == {1}

    # KPI values line up across each row of cards, even where a label wraps.
    cards = page.locator("#panel-kpis .kpi").evaluate_all(
        """els => els.map(e => [Math.round(e.getBoundingClientRect().top),
                                Math.round(e.querySelector('.kpi-value').getBoundingClientRect().top),
                                e.querySelector('.kpi-label').getClientRects().length])"""
    )
    rows: dict[int, set[int]] = {}
    for card_top, value_top, _ in cards:
        rows.setdefault(card_top, set()).add(value_top)
    assert all(len(tops) == 1 for tops in rows.values()), cards
    assert len(rows) > 1, "the cards did not wrap into rows"

    # The time zone is said on screen, once for the log.
    zone = page.locator("#timezone")
    assert zone.is_visible() and zone.inner_text() == "Times in UTC"
    box = zone.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width
    assert "UTC" not in " ".join(log_column(page, 0))

    # Still fits after a filter change.
    session.swap(lambda: page.select_option("#method", "GET"), method="GET")
    assert page.evaluate(LAYOUT_PROBLEMS) == []
    session.screenshot(f"phone-{width}", full_page=False)
    session.assert_clean()
