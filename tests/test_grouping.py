"""Top lists grouped by referrer host and browser family, the filters that drill into
one group, and the bots filter, on SQLite, PostgreSQL and MariaDB.

Every figure is checked against a reference computed here from the same rows, with
the groups written out by hand, from the raw rows and from rollups alike.
"""

from __future__ import annotations

import typing as t
from collections import Counter
from datetime import date, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa

from dashboard_support import HTMX, NOON, QS, Page, Tables, insert, row
from flask_statistics import figures, grouping, queries
from flask_statistics.filters import Filters

DAYS = (date(2024, 5, 1), date(2024, 5, 3))
GOOGLE = "www.google.com"
LONG_HOST = "h" * 180 + ".example"  # the URL still fits a 255-character column

#: Each recorded referrer and the group the top list must show it in (None: direct).
REFERRERS: dict[str | None, str | None] = {
    None: None,
    "": None,
    "https://www.google.com/": GOOGLE,
    "https://www.google.com/search?q=flask": GOOGLE,
    "http://www.google.com": GOOGLE,
    "https://www.google.com?x=1": GOOGLE,
    "https://www.google.com#top": GOOGLE,
    "https://www.google.com/100%_sure": GOOGLE,
    "www.google.com": GOOGLE,  # no scheme: only its own value, which names the host
    "https://www.google.com.evil.example/": "www.google.com.evil.example",
    "https://www.google.com /": "www.google.com ",  # a trailing space is another host
    "https://WWW.GOOGLE.COM/": "WWW.GOOGLE.COM",
    "HTTPS://www.google.com/": "HTTPS://www.google.com/",  # not as a browser sends it
    "https://user:pw@www.google.com/": "https://user:pw@www.google.com/",
    "https://www.google.com@evil.example/": "https://www.google.com@evil.example/",
    "javascript:alert(1)": "javascript:alert(1)",
    "http:///nohost": "http:///nohost",
    "ftp://files.example/": "ftp://files.example/",
    "http://localhost:5000/page": "localhost:5000",
    "https://[::1]:8080/x": "[::1]:8080",
    "https://bücher.de/straße": "bücher.de",
    "https://a_b%.example/x": "a_b%.example",
    "https://aXbYY.example/x": "aXbYY.example",  # what a_b% would match as a pattern
    "https://evil.example/<script>alert('r')</script>": "evil.example",
    "https://<img src=x onerror=alert(1)>/": "<img src=x onerror=alert(1)>",
    f"https://{LONG_HOST}/" + "p" * 40: LONG_HOST,
}

#: Each recorded browser and its family.
BROWSERS: dict[str | None, str | None] = {
    None: None,
    "Firefox 133.0": "Firefox",
    "Firefox 134.0": "Firefox",
    "Firefox": "Firefox",
    "firefox 133.0": "firefox",
    "Firefox Beta 134.0.b5": "Firefox Beta",
    "Firefox  133.0": "Firefox ",
    "Firefox x133": "Firefox x133",
    "Chrome 131.0.0": "Chrome",
    "Chrome Mobile 131.0.0": "Chrome Mobile",
    "Fire_fox 1.0": "Fire_fox",
    "Foo 1 2": "Foo",
    "Other": "Other",
    "<svg onload=alert('b')> 1.0": "<svg onload=alert('b')>",
}
PLATFORMS = ["Windows", "Mac OS X", "Nokia Series 40", None]


def sample() -> list[dict[str, t.Any]]:
    """Rows with every referrer and browser above, each a different number of times
    (1 to 5; direct visits most of all), across the three days."""
    referrers = [None] * 6 + [v for i, v in enumerate(REFERRERS) for _ in range(1 + i % 5)]
    browsers = [v for i, v in enumerate(BROWSERS) for _ in range(1 + (i * 3) % 5)]
    return [
        row(
            date=NOON + timedelta(hours=(i * 7) % 60 - 30, minutes=i % 60),
            referrer=referrer,
            browser=browsers[i % len(browsers)],
            platform=PLATFORMS[i % 3 if i % 11 else 3],
            remote_address=f"198.51.100.{i % 9}",
        )
        for i, referrer in enumerate(referrers)
    ]


SAMPLE_SIZE = len(sample())


def ranked(counts: t.Mapping[t.Any, int], limit: int = 100) -> list[tuple[t.Any, int]]:
    # Most hits first, ties by value in code point order, None (direct) last.
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0] is None, kv[0] or ""))[:limit]


def window(**extra: t.Any) -> Filters:
    return Filters.between(*DAYS, **extra)


@pytest.fixture
def tables(make_app: t.Any) -> t.Iterator[Tables]:
    app, db, _model, _statistics = make_app(config={"STATISTICS_ROLLUP_DETAIL": None})
    found = Tables(app, db)
    found.insert(sample())
    yield found
    found.drop()


def read_rows(tables: Tables) -> list[t.Any]:
    with tables.engine.connect() as conn:
        return [r._mapping for r in conn.execute(sa.select(tables.table))]


# ---------------------------------------------------------------------------------
# The rules, without a database


def test_hosts_and_families_follow_the_written_rules() -> None:
    for value, expected in REFERRERS.items():
        assert grouping.referrer_group(value) == expected, value
    for value, expected in BROWSERS.items():
        assert grouping.browser_family(value) == expected, value
    # A family's name selects the family, not one version of it.
    assert all(v is None or grouping.is_family(v) for v in BROWSERS.values())
    assert not grouping.is_family("Firefox 133.0")
    assert grouping.is_host(GOOGLE) and not grouping.is_host("https://www.google.com/")


def test_the_sql_text_does_not_depend_on_the_value() -> None:
    column = sa.column("referrer", sa.String())
    from sqlalchemy.dialects import mysql, postgresql, sqlite

    for dialect in (sqlite.dialect(), postgresql.dialect(), mysql.dialect()):
        texts = {
            str(grouping.referrer_condition(dialect, column, host).compile(dialect=dialect))
            for host in ("a.example", "a_b%.example", "bücher.de:8080")
        }
        assert len(texts) == 1
        families = {
            str(grouping.browser_condition(dialect, column, name).compile(dialect=dialect))
            for name in ("Firefox", "Fire_fox%", "Chrome Mobile")
        }
        assert len(families) == 1


# ---------------------------------------------------------------------------------
# Every backend, from raw rows and from rollups


@pytest.mark.parametrize("source", ["rows", "rollups"])
def test_grouped_top_lists_and_their_drill_downs_match_the_reference(
    tables: Tables, source: str
) -> None:
    if source == "rollups":
        tables.rebuild()
    recorded = read_rows(tables)
    assert len(recorded) == SAMPLE_SIZE
    expected_groups = {"referrer": REFERRERS, "browser": BROWSERS}
    with tables.engine.connect() as conn:
        everything = window()
        assert figures.source(conn, tables.store, everything) == source

        def top(filters: Filters, column: str, limit: int = 100) -> list[tuple[t.Any, int]]:
            found = figures.top(conn, tables.store, tables.table, filters, column, limit, grouped=True)
            if source == "rollups":
                # The same list from the raw rows.
                assert found == queries.top(conn, tables.table, filters, column, limit, grouped=True)
            return found

        for column, groups in expected_groups.items():
            want = ranked(Counter(groups[r[column]] for r in recorded))
            assert top(everything, column) == want, column
            assert top(everything, column, 3) == want[:3], column
            # Drilling into each group: exactly its rows, listed value by value.
            for name, hits in want:
                if name is None:
                    continue
                narrowed = window(**{column: name})
                # Rollups keep browsers, not referrers.
                assert figures.source(conn, tables.store, narrowed) == ("rows" if column == "referrer" else source)
                members = [r[column] for r in recorded if groups[r[column]] == name]
                assert figures.kpis(conn, tables.store, tables.table, narrowed).hits == hits == len(members)
                assert top(narrowed, column) == ranked(Counter(members)), (column, name)

        # Platforms have no version: each value is its own family.
        assert top(everything, "platform") == ranked(Counter(r["platform"] for r in recorded))
        # Ungrouped, the lists stay value by value.
        assert figures.top(conn, tables.store, tables.table, everything, "browser", 100) == ranked(
            Counter(r["browser"] for r in recorded)
        )

        # A value with a version, or a whole referrer, matches itself only.
        for column, value in (
            ("browser", "Firefox 133.0"),
            ("browser", "Foo 1 2"),
            ("referrer", "https://www.google.com/search?q=flask"),
            ("referrer", "https://www.google.com/"),
            ("referrer", "https://user:pw@www.google.com/"),
        ):
            exact = sum(1 for r in recorded if r[column] == value)
            assert exact > 0, value
            hits = figures.kpis(conn, tables.store, tables.table, window(**{column: value})).hits
            assert hits == exact, value
        # Patterns and case are literal: none of these is a group that was recorded.
        for column, value in (
            ("referrer", "www.google"), ("referrer", "%"), ("referrer", "a_b_.example"),
            ("referrer", "www.google.co_"), ("browser", "Fire"), ("browser", "FIREFOX"),
            ("browser", "Fire%"), ("browser", "Firefox 13"),
        ):
            assert figures.kpis(conn, tables.store, tables.table, window(**{column: value})).hits == 0, value


def test_a_host_filter_with_other_filters_on_every_figure(tables: Tables) -> None:
    recorded = read_rows(tables)
    chosen = [r for r in recorded if REFERRERS[r["referrer"]] == GOOGLE and BROWSERS[r["browser"]] == "Firefox"]
    assert chosen
    filters = window(referrer=GOOGLE, browser="Firefox")
    with tables.engine.connect() as conn:
        kpis = queries.kpis(conn, tables.table, filters)
        assert kpis.hits == len(chosen)
        assert kpis.visitors == len({r["remote_address"] for r in chosen})
        series = queries.timeseries(conn, tables.table, filters)
        assert sum(p.hits for p in series.points) == len(chosen)
        log = queries.request_page(conn, tables.table, filters, 500)
        assert sorted(r["index"] for r in log.rows) == sorted(r["index"] for r in chosen)


# ---------------------------------------------------------------------------------
# The dashboard


def block_of(html: str, key: str) -> str:
    """The HTML of one top list."""
    start = html.index(f'id="top-{key}"')
    return html[start:html.index("</article>", start)]


def drill_values(block: str, name: str) -> set[str]:
    """The values of ``name`` the block's drill-down links narrow to."""
    found = set()
    for tag, attrs in Page(block).elements:
        if tag == "a" and attrs.get("href") and "external" not in (attrs.get("class") or ""):
            found.update(parse_qs(urlsplit(attrs["href"]).query).get(name, []))
    return found


def test_the_top_panel_drills_from_hosts_to_urls_and_from_families_to_versions(make_app: t.Any) -> None:
    app, *_ = make_app()
    insert(app, sample())
    client = app.test_client()
    html = client.get(f"/statistics/partials/top?{QS}", headers=HTMX).get_data(as_text=True)
    page = Page(html)
    shown = page.all_text
    assert "(direct)" in shown and "By host; click one for its full addresses." in shown
    assert "By family; click one for its versions." in shown
    # Hostile hosts are text, never markup; no link leaves the site from the grouped list.
    assert "<img src=x" not in html and "<svg onload" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    # Each group shown (the ten busiest) drills into itself; the other filters stay.
    rows = sample()
    for key, groups in (("referrer", REFERRERS), ("browser", BROWSERS)):
        block = block_of(html, key)
        assert 'class="external"' not in block  # no link leaves the site from groups
        shown_groups = [g for g, _ in ranked(Counter(groups[r[key]] for r in rows), 10)]
        assert drill_values(block, key) == {g for g in shown_groups if g is not None}, key
        for tag, attrs in Page(block).elements:
            if tag == "a" and attrs.get("href"):
                assert parse_qs(urlsplit(attrs["href"]).query)["start"] == ["2024-05-01"]
    assert GOOGLE in drill_values(block_of(html, "referrer"), "referrer")
    assert "Firefox" in drill_values(block_of(html, "browser"), "browser")

    # Into google: its full addresses, links out to them, and the chip to undo it.
    drilled = client.get(f"/statistics/?{QS}&referrer={GOOGLE}").get_data(as_text=True)
    block = block_of(drilled, "referrer")
    outside = {attrs["href"] for tag, attrs in Page(block).elements if tag == "a" and "external" in (attrs.get("class") or "")}
    assert outside == {
        "https://www.google.com/", "https://www.google.com/search?q=flask", "http://www.google.com",
        "https://www.google.com?x=1", "https://www.google.com#top", "https://www.google.com/100%_sure",
    }
    assert "www.google.com" in Page(block).all_text  # the value without a scheme, as text
    chip = drilled[drilled.index('data-filter="referrer"'):]
    assert "Referrer" in chip[:300] and GOOGLE in chip[:300]

    # Into Firefox: its versions, each a link to that version.
    drilled = client.get(f"/statistics/partials/top?{QS}&browser=Firefox", headers=HTMX).get_data(as_text=True)
    block = block_of(drilled, "browser")
    versions = drill_values(block, "browser")
    assert versions == {"Firefox 133.0", "Firefox 134.0", "Firefox"}
    assert "By family" not in Page(block).all_text


# ---------------------------------------------------------------------------------
# The filters


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("referrer=" + "x" * 3000, "Use at most 2048 characters."),
        ("referrer=a%00b", "Remove the NUL or invalid characters from this field."),
        ("bots=all", "Not a valid choice."),
    ],
)
def test_bad_referrer_or_bots_input_is_a_400_with_the_message(make_app: t.Any, query: str, message: str) -> None:
    app, *_ = make_app()
    for headers in ({}, HTMX):
        response = app.test_client().get(f"/statistics/?{QS}&{query}", headers=headers)
        assert response.status_code == 400
        assert message in Page(response.get_data(as_text=True)).all_text


def test_bots_include_exclude_and_only(make_app: t.Any) -> None:
    app, *_ = make_app(model="default")
    people = [row(remote_address=f"192.0.2.{i}", is_bot=False) for i in range(5)]
    unknown = [row(remote_address="192.0.2.50", is_bot=None)]
    bots = [row(remote_address=f"198.51.100.{i}", is_bot=True, browser="Googlebot 2.1") for i in range(3)]
    insert(app, people + unknown + bots)
    client = app.test_client()

    def kpi(query: str, key: str) -> str:
        html = client.get(f"/statistics/partials/kpis?{QS}{query}", headers=HTMX).get_data(as_text=True)
        start = html.index(f'data-kpi="{key}"')
        value = html.index('class="kpi-value"', start)
        return html[html.index(">", value) + 1:html.index("<", value)].strip()

    # Visitors leave bots out whatever the filter; hits follow it.
    assert kpi("", "hits") == kpi("&bots=include", "hits") == "9"
    assert kpi("&bots=exclude", "hits") == "6"
    assert kpi("&bots=only", "hits") == "3"
    assert kpi("", "visitors") == kpi("&bots=include", "visitors") == kpi("&bots=exclude", "visitors") == "6"
    assert kpi("&bots=only", "visitors") == "0"
    # "include" is the default: links leave it out, the form shows it chosen.
    response = client.get(f"/statistics/?{QS}&bots=include")
    assert response.status_code == 302 and "bots=" not in response.location
    page = client.get(response.location).get_data(as_text=True)
    assert "bots=include" not in page
    assert '<option selected value="include">' in page or 'value="include" selected' in page
