"""The time charts in a real browser (Debian's Chromium driven by Playwright), under
Flask-Talisman's default policy and under the extension's own strict policy: a
tooltip on a time point names every series at that time in readable text, the
bucket still filling says "so far", nothing is drawn ahead of now, and the page
causes no CSP violation.

Screenshots land in tests/screenshots/ (gitignored).
"""

from __future__ import annotations

import typing as t
from datetime import datetime, timezone


from browser_support import (
    Session,
    today,
)
from test_browser import browser, session_factory, site, tally  # noqa: F401 (fixtures)

#: The smallest text a tooltip line may be drawn at, in CSS pixels.
READABLE_PX = 12


def hover_tooltip(page: t.Any, trigger: t.Any) -> list[str]:
    """Hover ``trigger`` (a dot) and return the lines of the tooltip pygal-tooltips
    draws, after checking each is drawn at a readable size."""
    chart = trigger.locator("xpath=ancestor::*[local-name()='svg'][1]")
    tooltip = chart.locator("g.tooltip").first
    trigger.scroll_into_view_if_needed()
    trigger.hover(force=True)
    page.wait_for_function(
        "t => t.querySelector('text') && getComputedStyle(t).opacity === '1' && getComputedStyle(t).display !== 'none'",
        arg=tooltip.element_handle(),
    )
    lines = tooltip.locator("text")
    heights = lines.evaluate_all("els => els.map(el => el.getBoundingClientRect().height)")
    assert heights and min(heights) >= READABLE_PX, heights
    return [line.strip() for line in lines.all_text_contents()]


def dot_texts(trigger: t.Any) -> tuple[str, list[str]]:
    """The bucket name and value lines a dot carries for its tooltip."""
    return (
        trigger.evaluate("el => el.parentElement.querySelector('desc.label').textContent"),
        trigger.evaluate("el => el.parentElement.querySelector('desc.value').textContent").splitlines(),
    )


def test_tooltips_name_every_series_at_a_point(session_factory: t.Callable[..., Session]) -> None:
    session = session_factory()
    page = session.page
    session.open()
    session.settle()

    traffic = page.locator("#panel-traffic svg.pygal-chart")
    # A whole day: the bucket, then hits and visitors, one line each.
    whole = traffic.locator(".series:not(.fs-partial) .tooltip-trigger").last
    name, values = dot_texts(whole)
    shown = hover_tooltip(page, whole)
    assert shown[0] == name and not name.endswith("(so far)")
    assert len(shown) == 3 and shown[1].endswith(" hits") and shown[2].endswith((" visitors", " visitor"))
    assert shown[1:] == values
    session.screenshot("chart-tooltip", full_page=False)

    # Today is still filling: its tooltip says so.
    partial = traffic.locator(".fs-partial .tooltip-trigger").last
    shown = hover_tooltip(page, partial)
    assert shown[0] == f"{today():%a} {today().day} {today():%b} {today().year} (so far)"
    assert shown[1].endswith(" hits")

    response = page.locator("#panel-response-times svg.pygal-chart")
    shown = hover_tooltip(page, response.locator(".series:not(.fs-partial) .tooltip-trigger").last)
    assert [line.split(" ")[0] for line in shown[1:]] == ["p50", "p95", shown[3].split(" ")[0]]
    assert shown[3].endswith(("requests", "request"))
    # The script's tooltips replace the native ones (no double tooltips).
    assert page.locator("svg title.fs-native-tip").count() == 0
    session.assert_clean()


def test_today_is_drawn_up_to_the_current_hour(session_factory: t.Callable[..., Session]) -> None:
    session = session_factory()
    page = session.page
    day = today().isoformat()
    hour_before = datetime.now(timezone.utc).hour
    session.open(f"{session.site.url}?start={day}&end={day}")
    session.settle()
    hour_after = datetime.now(timezone.utc).hour

    chart = page.locator("#panel-traffic svg.pygal-chart")
    hits = chart.locator(".serie-0 .tooltip-trigger, .serie-1 .tooltip-trigger")
    assert hits.count() in {hour_before + 1, hour_after + 1}
    # Nothing lies right of the open hour, which is drawn as partial.
    xs = chart.locator(".tooltip-trigger").evaluate_all("els => els.map(el => el.getBoundingClientRect().x)")
    last = chart.locator(".fs-partial .tooltip-trigger").evaluate_all(
        "els => els.map(el => el.getBoundingClientRect().x)"
    )
    assert last and max(xs) == max(last)
    caption = page.locator("#panel-traffic figcaption").inner_text()
    assert caption.startswith("Dashed: ") and "(so far)" in caption
    session.screenshot("chart-today", full_page=False)
    session.assert_clean()


def test_without_javascript_each_point_has_a_native_title_naming_every_series(
    session_factory: t.Callable[..., Session],
) -> None:
    session = session_factory(java_script_enabled=False)
    page = session.page
    session.open()
    tips = page.locator("#panel-traffic svg g.dots > title.fs-native-tip").all_text_contents()
    assert tips and all(" hit" in tip and " visitor" in tip for tip in tips), tips[:3]
    assert sum("(so far)" in tip for tip in tips) >= 1
    tips = page.locator("#panel-response-times svg g.dots > title.fs-native-tip").all_text_contents()
    assert tips and all("p50 " in tip and "p95 " in tip for tip in tips), tips[:3]
    session.assert_clean()
