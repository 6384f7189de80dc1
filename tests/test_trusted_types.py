"""Trusted Types in a real browser: under the dashboard's own policy, which requires
them, the dashboard still swaps panels, pages the log and shows tooltips with no
violation, and htmx parses only HTML that the dashboard's own endpoints returned.
"""

from __future__ import annotations

import typing as t

import pytest

from browser_support import PAGE_SIZE, LiveServer, Session, Site, build_app, hits, kpi, log_column, seed, stop_app
from test_browser import browser, session_factory, tally  # noqa: F401 (fixtures)

TRUSTED_TYPES = ("require-trusted-types-for 'script'", "trusted-types flask-statistics")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[Site]:
    """The seeded demo app under the extension's own (strict) policy only."""
    app = build_app(f"sqlite:///{tmp_path_factory.mktemp('trusted-types') / 'statistics.db'}", "strict")
    seed(app)
    try:
        with LiveServer(app) as server:
            yield Site("strict", server, app)
    finally:
        stop_app(app)


def hover_tooltip(page: t.Any, panel: str) -> str:
    """Hover a point of a chart and return the text its tooltip then shows."""
    chart = page.locator(f"#panel-{panel} svg.pygal-chart").first
    chart.scroll_into_view_if_needed()
    tooltip = chart.locator("g.tooltip").first
    trigger = chart.locator(".tooltip-trigger").nth(-3)
    trigger.hover(force=True)
    page.wait_for_function(
        "t => t.querySelector('text.value') && getComputedStyle(t).opacity === '1'",
        arg=tooltip.element_handle(),
    )
    return t.cast(str, tooltip.text_content())


def test_the_dashboard_works_when_trusted_types_are_required(session_factory: t.Callable[..., Session]) -> None:  # noqa: F811
    session = session_factory()
    page = session.page
    response = session.open()
    policy = response.headers["content-security-policy"]
    assert all(directive in policy for directive in TRUSTED_TYPES), policy
    session.settle()
    page.evaluate("window.__marker = 1")

    # A filter change is parsed by htmx and swaps every panel.
    session.swap(lambda: page.select_option("#method", "POST"), method="POST")
    assert set(log_column(page, 1)) == {"POST"}
    assert kpi(page, "hits") == hits(session.site.count(method="POST"))

    # The request log pages in place.
    session.swap(lambda: page.click("#page-next"), "panel-requests", page="2")
    assert page.locator("#panel-requests").get_attribute("data-page") == "2"
    assert set(log_column(page, 1)) == {"POST"}
    assert len(log_column(page, 1)) <= PAGE_SIZE

    # Tooltips: on a chart of the first page and on one htmx swapped in.
    assert hover_tooltip(page, "traffic").strip()
    assert page.evaluate("window.__marker") == 1, "the page reloaded"
    session.assert_clean()



def test_htmx_parses_only_what_the_dashboard_returned(session_factory: t.Callable[..., Session]) -> None:  # noqa: F811
    session = session_factory(counted=False)
    page = session.page
    session.open()
    session.settle()
    page.evaluate(
        """() => {
            window.__htmxErrors = [];
            document.addEventListener("htmx:error", (event) => window.__htmxErrors.push(String(event.detail.error)));
            document.getElementById("panel-kpis").setAttribute("data-original", "");
        }"""
    )

    # The app's own home page is HTML from the same origin, but not the dashboard's.
    page.evaluate("""htmx.ajax("GET", "/", {target: "#panel-kpis", swap: "innerHTML"}).catch(() => {})""")
    page.wait_for_function("() => window.__htmxErrors.length > 0")
    assert "refused to parse HTML" in page.evaluate("window.__htmxErrors[0]")
    assert page.locator("#panel-kpis[data-original] .kpi").count() > 0, "foreign HTML was swapped in"
    assert "Demo shop" not in page.locator("#panel-kpis").inner_text()

    # A dashboard partial, asked for the same way, is admitted.
    page.evaluate(
        """htmx.ajax("GET", "/statistics/partials/kpis?method=PUT", {target: "#panel-kpis", swap: "outerHTML"})"""
    )
    page.wait_for_function("() => !document.querySelector('#panel-kpis[data-original]')")
    # PUT: the GET to "/" above is recorded too, so GET counts may still move.
    assert kpi(page, "hits") == hits(session.site.count(method="PUT"))
    assert page.evaluate("window.__htmxErrors.length") == 1
    assert session.watch.violation_count() == 0

    # The policy is really enforced: a plain string given to an HTML sink is refused
    # and reported, so a clean run is not a vacuous one.
    refused = page.evaluate(
        """() => { try { document.createElement("div").innerHTML = "<b>x</b>"; return false; }
                   catch (error) { return error instanceof TypeError; } }"""
    )
    assert refused
    page.wait_for_function("() => window.__cspViolations.length > 0")
    directives = {v["directive"] for v in session.watch.page_violations(page)}
    assert directives == {"require-trusted-types-for"}, directives
