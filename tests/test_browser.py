"""The dashboard in a real browser (Debian's Chromium driven by Playwright), under a
host app that sends Flask-Talisman's default policy and under the extension's own
strict policy. Every test ends by asserting that the page caused no CSP violation,
console error, page error, alert, or request to another host.

Screenshots land in tests/screenshots/ (gitignored).
"""

from __future__ import annotations

import re
import shutil
import typing as t
from datetime import date, datetime, timedelta

import pytest

from browser_support import (
    CHROMIUM,
    HOSTILE_BROWSER,
    HOSTILE_EXCEPTION,
    HOSTILE_HITS,
    HOSTILE_PATH,
    HOSTILE_REFERRER,
    HOSTILE_USER_AGENT,
    LAUNCH_ARGS,
    PAGE_SIZE,
    POLICIES,
    LiveServer,
    Session,
    Site,
    Tally,
    build_app,
    hits,
    kpi,
    log_column,
    log_rows,
    marker,
    query,
    seed,
    stop_app,
    today,
    wait_for_query,
)
from conftest import require_or_skip

# ---------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="module")
def tally(request: pytest.FixtureRequest) -> Tally:
    plugins = request.config.pluginmanager
    found = plugins.get_plugin("browser-csp-tally")
    if found is None:
        found = Tally()
        plugins.register(found, "browser-csp-tally")
    return t.cast(Tally, found)


@pytest.fixture(scope="module")
def browser() -> t.Iterator[t.Any]:
    if shutil.which(CHROMIUM) is None:
        require_or_skip(f"{CHROMIUM} is missing; install it with `apt-get install -y chromium`")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require_or_skip("the playwright package is missing; pip install -e '.[test]'")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module", params=sorted(POLICIES))
def site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[Site]:
    """The demo app, seeded, served on a free port, under one CSP configuration."""
    policy = request.param
    database = tmp_path_factory.mktemp(f"browser-{policy}") / "statistics.db"
    app = build_app(f"sqlite:///{database}", policy)
    seed(app)
    try:
        with LiveServer(app) as server:
            yield Site(policy, server, app)
    finally:
        stop_app(app)


@pytest.fixture
def session_factory(browser: t.Any, site: Site, tally: Tally) -> t.Iterator[t.Callable[..., Session]]:
    sessions: list[tuple[Session, bool]] = []

    def make(counted: bool = True, **options: t.Any) -> Session:
        s = Session(browser, site, **options)
        sessions.append((s, counted))
        return s

    yield make
    for s, counted in sessions:
        if counted:
            tally.add(s.watch, len(s.watch.full_loads))
        s.context.close()


@pytest.fixture
def session(session_factory: t.Callable[..., Session]) -> Session:
    return session_factory()


def count_day_range(site: Site, first: date, last: date, **where: t.Any) -> int:
    """Rows on the whole UTC days ``first`` to ``last`` with 2xx statuses and ``where``."""
    since = datetime.combine(first, datetime.min.time())
    until = datetime.combine(last + timedelta(days=1), datetime.min.time())
    return sum(site.count(since=since, until=until, status_code=code, **where) for code in (200, 201))


# ---------------------------------------------------------------------------------
# Tests


def test_dashboard_shows_the_data_and_escapes_hostile_values(session: Session) -> None:
    page = session.page
    session.open()
    session.settle()

    assert kpi(page, "hits") == hits(session.site.total)
    assert log_rows(page).count() == PAGE_SIZE
    # Newest first: the newest recorded request is the hostile one, shown as text.
    assert log_column(page, 2)[0] == HOSTILE_PATH
    # The busiest-routes table groups it with the other unmatched URLs; the top paths
    # list names it.
    routes = [p.strip() for p in page.locator("#paths-table tbody th").all_inner_texts()]
    assert "(no route matched)" in routes and "/products/<int:id>" in routes
    assert HOSTILE_PATH[:16] in page.locator("#top-path").inner_text()  # shown as text

    # Every chart is drawn, visible, and labelled for assistive technology.
    for panel in ("traffic", "response-times", "status", "top"):
        svg = page.locator(f"#panel-{panel} svg.pygal-chart").first
        box = svg.bounding_box()
        assert box and box["width"] > 150 and box["height"] > 100, (panel, box)
        assert svg.get_attribute("aria-labelledby")
    assert HOSTILE_BROWSER in page.locator("#top-browser svg").text_content()

    # Nothing recorded became markup: the only scripts are the static files, and no
    # link carries a javascript: URL.
    scripts = page.evaluate("[...document.scripts].map(s => s.src ? new URL(s.src).pathname : 'INLINE')")
    assert "INLINE" not in scripts and len(scripts) == 4, scripts
    assert page.locator('[href^="javascript:" i], [src^="javascript:" i]').count() == 0
    assert page.locator("#request-log b, #paths-table script, #request-log svg, #top-browser svg b").count() == 0

    # Styles applied (a blocked stylesheet would leave the page unstyled).
    assert page.evaluate("getComputedStyle(document.querySelector('.kpi-grid')).display") in ("grid", "flex")
    session.screenshot("light")
    session.assert_clean()


def test_filters_swap_partials_push_the_url_and_back_restores(session: Session) -> None:
    page = session.page
    site = session.site
    session.open()
    session.settle()
    page.evaluate("window.__marker = 1")

    # Method: choosing one swaps the dashboard in place and pushes the URL.
    session.swap(lambda: page.select_option("#method", "POST"), method="POST")
    assert set(log_column(page, 1)) == {"POST"}
    assert kpi(page, "hits") == hits(site.count(method="POST"))
    assert marker(page) == 1, "changing a filter reloaded the page"

    # Status class: typed, submitted with Enter.
    page.fill("#status", "2xx")
    session.swap(lambda: page.press("#status", "Enter"), status="2xx", method="POST")
    assert {code[0] for code in log_column(page, 3)} == {"2"}
    assert set(log_column(page, 1)) == {"POST"}
    post_2xx = site.count(method="POST", status_code=200) + site.count(method="POST", status_code=201)
    assert kpi(page, "hits") == hits(post_2xx)

    # Path, exact match: narrows further.
    page.fill("#path", "/api/items")
    session.swap(lambda: page.press("#path", "Enter"), path="/api/items", status="2xx")
    api_2xx = site.count(method="POST", status_code=201, path="/api/items") + site.count(
        method="POST", status_code=200, path="/api/items"
    )
    assert 0 < api_2xx < post_2xx
    assert kpi(page, "hits") == hits(api_2xx)
    assert set(log_column(page, 2)) == {"/api/items"}

    # Date range: the start, then the end: one whole day, yesterday (UTC), shown in
    # hour buckets.
    default_start = (today() - timedelta(days=6)).isoformat()

    def narrows(day: date) -> bool:
        # Each step below must narrow the counts: a day with such hits, after which
        # later days add some, and earlier days more. Which day that is depends on
        # the time of day the traffic was seeded at.
        tail = count_day_range(site, day, today(), method="POST", path="/api/items")
        one = count_day_range(site, day, day, method="POST", path="/api/items")
        return 0 < one < tail < api_2xx

    yesterday = next(
        (d for d in (today() - timedelta(days=n) for n in range(1, 6)) if narrows(d)),
        today() - timedelta(days=1),
    )
    # Picking a date applies it (the date input fires "change"), no submit needed.
    session.swap(lambda: page.fill("#start", yesterday.isoformat()), start=yesterday.isoformat(), end=today().isoformat())
    two_days = count_day_range(site, yesterday, today(), method="POST", path="/api/items")
    assert kpi(page, "hits") == hits(two_days)
    session.swap(lambda: page.fill("#end", yesterday.isoformat()), start=yesterday.isoformat(), end=yesterday.isoformat())
    one_day = count_day_range(site, yesterday, yesterday, method="POST", path="/api/items")
    assert 0 < one_day < two_days < api_2xx
    assert kpi(page, "hits") == hits(one_day)
    dates = log_column(page, 0)
    assert len(dates) == one_day and all(d.startswith(yesterday.isoformat()) for d in dates), dates
    assert page.locator("#panel-traffic .panel-meta").inner_text().startswith("Hits and unique visitors per hour")

    assert marker(page) == 1, "a filter change reloaded the page"
    assert len(session.watch.full_loads) == 1, session.watch.full_loads

    # Back, step by step: each previous filter comes back, form fields and content.
    session.swap(page.go_back, start=yesterday.isoformat(), end=today().isoformat(), path="/api/items")
    assert (page.input_value("#start"), page.input_value("#end")) == (yesterday.isoformat(), today().isoformat())
    assert kpi(page, "hits") == hits(two_days)

    # The default range stays out of the URL.
    session.swap(page.go_back, start=None, end=None, path="/api/items", status="2xx")
    assert (page.input_value("#start"), page.input_value("#end")) == (default_start, today().isoformat())
    assert page.input_value("#path") == "/api/items"
    assert kpi(page, "hits") == hits(api_2xx)

    session.swap(page.go_back, path=None, status="2xx", method="POST")
    assert page.input_value("#path") == ""
    assert page.input_value("#status") == "2xx"
    assert page.input_value("#method") == "POST"
    assert kpi(page, "hits") == hits(post_2xx)
    assert {code[0] for code in log_column(page, 3)} == {"2"}

    session.swap(page.go_back, status=None, method="POST")
    assert page.input_value("#status") == ""
    assert set(log_column(page, 1)) == {"POST"}

    session.swap(page.go_back, method=None, start=None)
    assert page.url == site.url
    assert page.input_value("#method") == ""
    assert kpi(page, "hits") == hits(site.total)
    assert len(set(log_column(page, 1))) > 1
    assert marker(page) == 1, "Back reloaded the page"
    session.assert_clean()


def test_enter_after_picking_a_date_adds_no_second_history_entry(session: Session) -> None:
    page = session.page
    session.open()
    session.settle()
    page.evaluate("window.__marker = 1")
    default_start = (today() - timedelta(days=6)).isoformat()
    yesterday = (today() - timedelta(days=1)).isoformat()

    session.swap(lambda: page.select_option("#method", "GET"), method="GET", start=None)
    # Picking a date applies it at once (its "change" event)...
    session.swap(lambda: page.fill("#start", yesterday), start=yesterday, method="GET")
    entries = page.evaluate("history.length")
    # ...so Enter sends the same filter again: the data is refreshed, but the
    # address is the same and must not become a second, identical history entry.
    session.swap(lambda: page.press("#start", "Enter"), start=yesterday, method="GET")
    assert page.evaluate("history.length") == entries, "the same URL was pushed twice"

    # One Back returns to the filter before the date was picked.
    session.swap(page.go_back, start=None, method="GET")
    assert page.input_value("#start") == default_start
    assert page.input_value("#method") == "GET"
    assert kpi(page, "hits") == hits(session.site.count(method="GET"))
    assert marker(page) == 1, "Back reloaded the page"
    session.assert_clean()


def test_request_log_paginates_and_sorts_in_place(session: Session) -> None:
    page = session.page
    session.open()
    session.settle()
    page.evaluate("window.__marker = 1")
    first_page = log_column(page, 0)
    first_indexes = set(log_rows(page).evaluate_all("rows => rows.map(r => r.dataset.index)"))
    kpis = page.locator("#panel-kpis").element_handle()

    session.swap(lambda: page.click("#page-next"), "panel-requests", page="2")
    assert page.locator("#panel-requests").get_attribute("data-page") == "2"
    second_page = log_column(page, 0)
    assert len(second_page) == PAGE_SIZE
    assert max(second_page) <= min(first_page), "page 2 is not older than page 1"
    assert not first_indexes & set(log_rows(page).evaluate_all("rows => rows.map(r => r.dataset.index)"))
    # Only the log was swapped: the KPI panel is the very same element.
    assert kpis.evaluate("el => el.isConnected")

    session.swap(lambda: page.click("#page-prev"), "panel-requests", page=None)
    assert log_column(page, 0) == first_page

    # Sorting by status: the largest first.
    session.swap(
        lambda: page.click('#request-log a.sort-link[data-sort="status_code"]'), "panel-requests", sort="status_code"
    )
    statuses = [int(s) for s in log_column(page, 3)]
    assert statuses == sorted(statuses, reverse=True) and statuses[0] == 500
    assert page.locator('#request-log th[aria-sort="descending"]').text_content().strip().startswith("Status")
    # The sort survives a filter change.
    session.swap(lambda: page.select_option("#method", "GET"), method="GET", sort="status_code")
    statuses = [int(s) for s in log_column(page, 3)]
    assert statuses == sorted(statuses, reverse=True)
    assert set(log_column(page, 1)) == {"GET"}
    session.screenshot("sorted", full_page=False)
    # Back: all methods again, still sorted by status.
    session.swap(page.go_back, method=None, sort="status_code")
    statuses = [int(s) for s in log_column(page, 3)]
    assert statuses == sorted(statuses, reverse=True)
    assert page.input_value("#method") == ""
    assert kpi(page, "hits") == hits(session.site.total)
    assert marker(page) == 1, "paginating or sorting reloaded the page"
    session.assert_clean()


def test_request_detail_and_drill_downs(session: Session) -> None:
    page = session.page
    site = session.site
    session.open()
    session.settle()

    # The newest request is the hostile one; its detail shows every field as text.
    with page.expect_navigation():
        log_rows(page).first.locator("a.detail-link").click()
    assert re.search(r"/statistics/requests/\d+", page.url)
    detail = page.locator("#request-detail")
    assert detail.locator(".detail-path").inner_text() == HOSTILE_PATH
    assert detail.locator('[data-field="user_agent"] dd').inner_text() == HOSTILE_USER_AGENT
    assert detail.locator('[data-field="browser"] dd').inner_text() == HOSTILE_BROWSER
    assert detail.locator('[data-field="referrer"] dd').inner_text() == HOSTILE_REFERRER
    assert detail.locator('[data-field="referrer"] a').count() == 0, "a javascript: referrer became a link"
    assert detail.locator('[data-field="exception"] dd').inner_text() == HOSTILE_EXCEPTION
    assert page.locator('#request-detail img, #request-detail svg, #request-detail b').count() == 0
    session.screenshot("detail", full_page=False)

    # "Requests with this path" narrows the dashboard to it.
    with page.expect_navigation():
        page.click("#related-path")
    wait_for_query(page, path=HOSTILE_PATH)
    session.settle()
    assert page.input_value("#path") == HOSTILE_PATH
    assert kpi(page, "hits") == hits(HOSTILE_HITS)
    assert set(log_column(page, 2)) == {HOSTILE_PATH}

    # A route in the top-routes table drills down in place, to the route's paths.
    session.open()
    session.settle()
    page.evaluate("window.__marker = 1")
    link = page.locator("#paths-table tbody th a.drill", has_text=re.compile(r"^/login$"))
    session.swap(link.click, route="/login")
    assert page.input_value("#route") == "/login"
    assert kpi(page, "hits") == hits(site.count(path="/login"))
    assert set(log_column(page, 2)) == {"/login"}
    assert page.locator('#active-filters [data-filter="route"]').count() == 1
    assert [p.strip() for p in page.locator("#paths-table tbody th").all_inner_texts()] == ["/login"]

    # A status class in the status panel drills down too, keeping the route.
    session.swap(page.locator('#panel-status [data-status="4xx"] a').click, status="4xx", route="/login")
    statuses = set(log_column(page, 3))
    assert statuses and statuses <= {"401", "404"}, statuses
    assert kpi(page, "hits") == hits(site.count(path="/login", status_code=401) + site.count(path="/login", status_code=404))
    assert page.input_value("#route") == "/login"
    assert page.input_value("#status") == "4xx"
    assert marker(page) == 1, "a drill-down reloaded the page"

    # A bar of the methods chart is a drill-down link as well.
    session.open()
    session.settle()
    page.evaluate("window.__marker = 1")
    bar = page.locator('#top-method svg a.fs-drill[href*="method=PUT"]')
    session.swap(bar.click, method="PUT")
    assert page.input_value("#method") == "PUT"
    assert set(log_column(page, 1)) == {"PUT"}
    assert kpi(page, "hits") == hits(site.count(method="PUT"))
    assert marker(page) == 1, "a drill-down reloaded the page"
    session.assert_clean()


def test_chart_tooltips_appear_on_hover(session: Session) -> None:
    page = session.page
    session.open()
    session.settle()

    def hover_shows_tooltip(panel: str) -> None:
        chart = page.locator(f"#panel-{panel} svg.pygal-chart").first
        chart.scroll_into_view_if_needed()
        tooltip = chart.locator("g.tooltip").first
        assert tooltip.locator("text").count() == 0, "a tooltip shows before any hover"
        # A point in the busiest part of the chart (the last one is today).
        trigger = chart.locator(".tooltip-trigger").nth(-3)
        expected = trigger.evaluate("el => el.parentElement.querySelector('.value').textContent")
        trigger.hover(force=True)
        page.wait_for_function(
            "t => t.querySelector('text.value') && getComputedStyle(t).opacity === '1' && getComputedStyle(t).display !== 'none'",
            arg=tooltip.element_handle(),
        )
        shown = tooltip.text_content()
        assert expected.splitlines()[0] in shown, (expected, shown)
        box = tooltip.locator("rect").first.bounding_box()
        assert box and box["width"] > 10 and box["height"] > 10, box

    hover_shows_tooltip("traffic")
    # The script's tooltips replace the native <title> ones (no double tooltips).
    assert page.locator("svg title.fs-native-tip").count() == 0
    session.screenshot("tooltip", full_page=False)

    # Charts that htmx swapped in get tooltips too.
    session.swap(lambda: page.select_option("#method", "GET"), method="GET")
    hover_shows_tooltip("response-times")
    assert page.locator("svg title.fs-native-tip").count() == 0
    session.assert_clean()


def test_without_javascript_the_data_and_the_form_work(session_factory: t.Callable[..., Session]) -> None:
    session = session_factory(java_script_enabled=False)
    page = session.page
    site = session.site
    session.open()
    assert kpi(page, "hits") == hits(site.total)
    assert log_rows(page).count() == PAGE_SIZE
    assert page.locator("#panel-traffic svg.pygal-chart").count() == 1
    # Without the tooltip script, the charts keep their native <title> tooltips.
    assert page.locator("#panel-top svg title.fs-native-tip").count() > 0
    for panel in ("traffic", "response-times"):
        dots = page.locator(f"#panel-{panel} svg g.dots")
        assert dots.count() > 0
        assert page.locator(f"#panel-{panel} svg g.dots > title.fs-native-tip").count() == dots.count(), panel

    # The form submits as a plain GET.
    page.select_option("#method", "DELETE")
    with page.expect_navigation():
        page.click("#apply-filters")
    assert query(page)["method"] == ["DELETE"]
    assert set(log_column(page, 1)) == {"DELETE"}
    assert kpi(page, "hits") == hits(site.count(method="DELETE"))
    assert page.input_value("#method") == "DELETE"

    # Plain links: a drill-down, the pager and the detail page.
    with page.expect_navigation():
        page.locator("#paths-table tbody th a.drill").first.click()
    assert query(page)["method"] == ["DELETE"] and "route" in query(page)
    session.open()
    with page.expect_navigation():
        page.click("#page-next")
    assert query(page)["page"] == ["2"]
    assert log_rows(page).count() == PAGE_SIZE
    with page.expect_navigation():
        log_rows(page).first.locator("a.detail-link").click()
    assert page.locator("#request-detail .detail-path").count() == 1
    session.screenshot("no-javascript", full_page=False)
    assert len(session.watch.full_loads) >= 5
    session.assert_clean()


def _luminance(page: t.Any, selector: str) -> float:
    rgb = page.evaluate(f"getComputedStyle(document.querySelector({selector!r})).backgroundColor")
    r, g, b = (int(x) for x in re.findall(r"\d+", rgb)[:3])
    return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255


def test_dark_theme_and_phone_layout(session_factory: t.Callable[..., Session]) -> None:
    dark = session_factory(color_scheme="dark")
    dark.open()
    dark.settle()
    assert _luminance(dark.page, "body") < 0.25, "prefers-color-scheme: dark is not honoured"
    assert kpi(dark.page, "hits") == hits(dark.site.total)
    dark.screenshot("dark")
    dark.assert_clean()

    light = session_factory(color_scheme="light")
    light.open()
    assert _luminance(light.page, "body") > 0.75
    light.assert_clean()

    phone = session_factory(
        viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True, has_touch=True
    )
    page = phone.page
    phone.open()
    phone.settle()
    assert kpi(page, "hits") == hits(phone.site.total)
    # Readable on a phone: no sideways scrolling of the page (wide tables scroll
    # inside their own box), and the KPI cards fit the screen.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    for box in page.locator("#panel-kpis .kpi").evaluate_all("els => els.map(e => e.getBoundingClientRect().right)"):
        assert box <= 390
    # The content starts below the sticky top bar, not flush against it.
    gap = page.evaluate(
        "document.querySelector('#filters').getBoundingClientRect().top"
        " - document.querySelector('.topbar').getBoundingClientRect().bottom"
    )
    assert gap >= 12, gap
    # A panel's description is the last line of its head: no empty line under it.
    assert page.evaluate(
        """() => [...document.querySelectorAll('#dashboard .panel-head')].every(head => {
            const meta = head.querySelector('.panel-meta');
            return !meta || head.getBoundingClientRect().bottom - meta.getBoundingClientRect().bottom <= 1;
        })"""
    )
    # Short paths and figures are not broken over several lines (columns a phone
    # hides are left out).
    for selector in ("#paths-table .cell-path a", "#request-log .cell-path a", "#paths-table td.num"):
        lines = page.locator(selector).evaluate_all(
            """els => els.filter(e => e.getClientRects().length && e.textContent.trim().length <= 12).map(e => {
                const range = document.createRange();
                range.selectNodeContents(e);
                return new Set([...range.getClientRects()].map(box => Math.round(box.top))).size;
            })"""
        )
        assert lines and set(lines) == {1}, (selector, lines)
    phone.screenshot("phone", full_page=False)
    phone.swap(lambda: page.select_option("#method", "GET"), method="GET")
    assert set(log_column(page, 1)) == {"GET"}
    phone.assert_clean()


def test_the_watch_sees_what_it_must_report(session_factory: t.Callable[..., Session]) -> None:
    """The checks above would pass vacuously if the browser stopped reporting; prove
    that a violation, a script error and a foreign request are all caught."""
    session = session_factory(counted=False)
    page = session.page
    session.open()
    assert session.watch.problems(page) == {}
    page.evaluate("document.body.setAttribute('style', 'outline: 1px solid red')")
    page.evaluate("setTimeout(() => { throw new Error('boom') })")
    page.evaluate("fetch('http://192.0.2.1:9/x').catch(() => {})")
    page.wait_for_function("() => window.__cspViolations.length > 0")
    page.wait_for_timeout(200)
    problems = session.watch.problems(page)
    assert problems["securitypolicyviolation events"][0]["directive"] in ("style-src-attr", "style-src")
    assert any("style" in m for m in problems["CSP messages in the console"])
    assert any("boom" in e for e in problems["page errors"])
    assert any("connect-src" in v["directive"] or "default-src" in v["directive"] for v in session.watch.csp_events)
    # CSP stops that fetch before it leaves; a navigation it does not stop.
    session.context.route(re.compile(r"^http://192\.0\.2\.1"), lambda route: route.abort())
    page.evaluate("location.href = 'http://192.0.2.1:9/elsewhere'")
    page.wait_for_timeout(300)
    assert session.watch.problems()["requests to other hosts"] == ["http://192.0.2.1:9/elsewhere"]
