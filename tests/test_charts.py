"""Pygal charts as inline SVG: clean under a strict CSP, accessible, escaped, and
faithful to the data (every bucket, in time order)."""

from __future__ import annotations

import json
import math
import re
import typing as t
from dataclasses import dataclass
import xml.etree.ElementTree as ET
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from flask_statistics import charts, queries
from flask_statistics.filters import Filters
from flask_statistics.queries import Point, Series

SVG = "{http://www.w3.org/2000/svg}"
UTC = timezone.utc
HOSTILE = [
    "<script>alert(1)</script>",
    "\"quoted\" 'single' `back`",
    "]]><![CDATA[<x>]]>",
    "Tom & Jerry &amp; &#60;",
    "bell\x07 escape\x1b[31m nul\x00 del\x7f c1\x85",
    "lone \ud800 surrogate \udfff",
    "RTL \u202e gnp.exe emoji 😀 ZWJ 👩‍💻 combining é",
    "x" * 10_000,
]


@pytest.fixture(autouse=True)
def _fresh_chart_cache() -> t.Iterator[None]:
    # Several tests patch what a chart is drawn with: never hand them an earlier one.
    charts._rendered.clear()
    yield
    charts._rendered.clear()


def parse(svg: str) -> ET.Element:
    """The chart must be well-formed XML: every label escaped."""
    return ET.fromstring(svg)


def texts(root: ET.Element, tag: str) -> list[str]:
    return [el.text or "" for el in root.iter(f"{SVG}{tag}")]


def series(width: str, start: datetime, hits: list[int]) -> Series:
    step = timedelta(hours=1) if width == "hour" else timedelta(days=1)
    points = [
        Point(start + i * step, h, min(h, 3), 0.02 * h if h else None, 0.05 * h if h else None)
        for i, h in enumerate(hits)
    ]
    return Series(width, points)  # type: ignore[arg-type]


def calendar_series(f: Filters) -> Series:
    """The series the dashboard would chart for ``f``, one hit per bucket."""
    starts = queries.bucket_starts(f)
    points = [Point(start, 1, 1, 0.02, 0.05) for start in starts]
    return Series(queries.bucket_width(f), points, f.until)


@dataclass(frozen=True)
class Dot:
    """One drawn point of a time chart, as a reader (or pygal-tooltips) finds it."""

    series: int  # pygal's series index: 0/1 the first metric (whole/partial), 2/3 the second
    x: float
    y: float
    x_label: str
    value: str  # the tooltip's value lines
    label: str  # the tooltip's first line: the bucket
    title: str  # the native <title>
    partial: bool  # drawn in a series marked partial (dashed)


def dots(root: ET.Element) -> list[Dot]:
    """Every drawn dot, left to right (series order at the same x)."""
    found = []
    for group in root.iter(f"{SVG}g"):
        classes = (group.get("class") or "").split()
        if "series" not in classes:
            continue
        index = int(next(c[6:] for c in classes if c.startswith("serie-")))
        for dot in group.iter(f"{SVG}g"):
            if dot.get("class") != "dots":
                continue
            circle = dot.find(f"{SVG}circle")
            assert circle is not None

            def text(cls: str, tag: str = "desc", dot: ET.Element = dot) -> str:
                el = next((e for e in dot.iter(f"{SVG}{tag}") if e.get("class") == cls), None)
                return (el.text or "") if el is not None else ""

            found.append(Dot(
                index, float(circle.get("cx", "nan")), float(circle.get("cy", "nan")),
                text("x_label"), text("value"), text("label"), text("fs-native-tip", "title"),
                "fs-partial" in classes,
            ))
    return sorted(found, key=lambda d: (d.x, d.series))


def metric(root: ET.Element, first_series: int = 0) -> list[Dot]:
    """The dots of one metric, whole and partial buckets, left to right."""
    return [d for d in dots(root) if d.series in (first_series, first_series + 1)]


def x_labels(root: ET.Element, count: int) -> list[str]:
    return [d.x_label for d in metric(root)][:count]


def tooltips(root: ET.Element) -> list[str]:
    return [el.text or "" for el in root.iter(f"{SVG}title") if el.get("class") == "fs-native-tip"]


def axis(root: ET.Element, name: str) -> list[str]:
    """The tick labels of an axis: "y" (left), "y2" (right) or "x"."""
    for group in root.iter(f"{SVG}g"):
        classes = (group.get("class") or "").split()
        if "axis" in classes and name in classes:
            return [el.text or "" for el in group.iter(f"{SVG}text")]
    return []


def all_charts() -> dict[str, str]:
    hourly = series("hour", datetime(2024, 5, 2), [3, 0, 0, 5, 1, 0])
    return {
        "traffic": charts.traffic_chart(hourly, UTC, "UTC"),
        "response_times": charts.response_time_chart(hourly, UTC, "UTC"),
        "status": charts.status_chart([("2xx", 10), ("4xx", 2)], lambda c: f"/statistics/?status={c}"),
        "top": charts.top_chart("Top paths", [("/a", 5), ("/b", 3), (None, 1)], lambda v: f"/statistics/?path={v}"),
    }


@pytest.mark.parametrize("name", ["traffic", "response_times", "status", "top"])
def test_chart_svg_is_clean_under_a_strict_csp(name: str) -> None:
    svg = all_charts()[name]
    assert svg.startswith("<svg") and "<?xml" not in svg
    for forbidden in ("<script", "<style", "style=", "javascript:", "kozea.github.io", "xlink:href", "<!--"):
        assert forbidden not in svg, forbidden
    root = parse(svg)
    assert not [el for el in root.iter() if "style" in el.attrib]


@pytest.mark.parametrize("name", ["traffic", "response_times", "status", "top"])
def test_tooltip_config_moves_to_a_data_attribute(name: str) -> None:
    root = parse(all_charts()[name])
    assert root.get("id", "").startswith("chart-")
    assert {"pygal-chart", "fs-chart"} <= set(root.get("class", "").split())
    config = json.loads(root.get("data-pygal-config", ""))
    assert set(config) == {"legends", "tooltip_fancy_mode", "width", "height"}
    assert isinstance(config["legends"], list) and config["width"] > 0


@pytest.mark.parametrize("name", ["traffic", "response_times", "status", "top"])
def test_chart_has_an_accessible_title_and_description(name: str) -> None:
    root = parse(all_charts()[name])
    # Charts with drill-down links are figures, so that the links stay reachable.
    assert root.get("role") == ("figure" if root.find(f".//{SVG}a") is not None else "img")
    title_id, desc_id = root.get("aria-labelledby", "").split()
    title = root.find(f"{SVG}title")
    desc = root.find(f"{SVG}desc")
    assert title is not None and title.get("id") == title_id and title.text
    assert desc is not None and desc.get("id") == desc_id and len(desc.text or "") > 20


def test_traffic_chart_plots_every_bucket_in_time_order() -> None:
    hits = [0, 4, 0, 0, 7, 2, 0, 0, 0, 1]
    start = datetime(2024, 5, 1)
    root = parse(charts.traffic_chart(series("day", start, hits), UTC, "UTC"))
    # Each bucket is one point of the hits line, zeros included, left to right.
    points = metric(root)
    assert [d.value.splitlines()[0] for d in points] == [f"{h} {'hit' if h == 1 else 'hits'}" for h in hits]
    assert len({d.x for d in points}) == len(hits)
    labels = [d.x_label for d in points]
    assert labels == ["Wed 1 May 2024", "Thu 2 May", "Fri 3 May", "Sat 4 May", "Sun 5 May",
                      "Mon 6 May", "Tue 7 May", "Wed 8 May", "Thu 9 May", "Fri 10 May"]


def test_hour_buckets_are_labelled_in_the_dashboard_time_zone() -> None:
    hourly = series("hour", datetime(2024, 5, 1, 22), [1, 2, 3])
    root = parse(charts.traffic_chart(hourly, ZoneInfo("Europe/Berlin"), "Europe/Berlin"))
    labels = [el.text for el in root.iter(f"{SVG}desc") if el.get("class") == "x_label"][:3]
    # 22:00 UTC is midnight in Berlin (CEST): a new day gets its date.
    assert labels == ["Thu 2 May 00:00", "01:00", "02:00"]
    assert "Europe/Berlin" in (root.find(f"{SVG}desc").text or "")


def test_weeks_are_named_by_their_monday_and_cut_weeks_say_so() -> None:
    # 3 January 2024 is a Wednesday; 28 December 2024 a Saturday.
    f = Filters.between(date(2024, 1, 3), date(2024, 12, 28), tz="Europe/Berlin")
    root = parse(charts.traffic_chart(calendar_series(f), f_tz(f), f.tz))
    labels = x_labels(root, 52)
    assert labels[:3] == ["Week of 1 Jan 2024", "Week of 8 Jan", "Week of 15 Jan"]
    assert len(labels) == 52 and labels[-1] == "Week of 23 Dec"
    hits = [d.title for d in metric(root)]
    assert hits[0] == "Week of 1 Jan 2024 (Wed 3 Jan – Sun 7 Jan only) — 1 hit, 1 visitor"
    assert hits[1] == "Week of 8 Jan 2024 — 1 hit, 1 visitor"
    assert hits[-1] == "Week of 23 Dec 2024 (Mon 23 Dec – Sat 28 Dec only) — 1 hit, 1 visitor"
    # The cut weeks at either end are drawn as partial buckets, the others whole.
    assert [d.partial for d in metric(root)] == [True] + [False] * 50 + [True]
    assert "per week (Europe/Berlin)" in (root.find(f"{SVG}desc").text or "")


def test_months_and_years_are_named_by_the_calendar() -> None:
    # Ten years in Kathmandu (+5:45): each month starts at 18:15 UTC the day before.
    f = Filters.between(date(2015, 1, 1), date(2024, 12, 31), tz="Asia/Kathmandu")
    root = parse(charts.traffic_chart(calendar_series(f), f_tz(f), f.tz))
    labels = x_labels(root, 120)
    assert len(labels) == 120 and labels[:3] == ["Jan 2015", "Feb 2015", "Mar 2015"]
    assert labels[-1] == "Dec 2024"
    assert metric(root)[1].title == "Feb 2015 — 1 hit, 1 visitor"
    decades = Filters.between(date(1990, 6, 1), date(2024, 12, 31), tz="UTC")
    root = parse(charts.traffic_chart(calendar_series(decades), f_tz(decades), "UTC"))
    assert x_labels(root, 3) == ["1990", "1991", "1992"]
    assert metric(root)[0].title == "1990 (Fri 1 Jun – Mon 31 Dec only) — 1 hit, 1 visitor"


def test_days_after_a_daylight_saving_change_are_named_by_their_date() -> None:
    # Local midnights: 23:00 UTC before 31 March, 22:00 UTC after it.
    f = Filters.between(date(2024, 3, 29), date(2024, 4, 2), tz="Europe/Berlin")
    root = parse(charts.traffic_chart(calendar_series(f), f_tz(f), f.tz))
    assert x_labels(root, 5) == ["Fri 29 Mar 2024", "Sat 30 Mar", "Sun 31 Mar", "Mon 1 Apr", "Tue 2 Apr"]


@pytest.mark.parametrize(
    ("first", "last"),
    [(date(2024, 5, 1), date(2024, 5, 2)), (date(2024, 1, 1), date(2024, 12, 31)),
     (date(2015, 1, 1), date(2024, 12, 31)), (date(1990, 1, 1), date(2024, 12, 31))],
    ids=["hour", "week", "month", "year"],
)
def test_every_unit_is_clean_under_a_strict_csp(first: date, last: date) -> None:
    f = Filters.between(first, last, tz="Asia/Kolkata")
    for chart in (charts.traffic_chart, charts.response_time_chart):
        svg = chart(calendar_series(f), f_tz(f), f.tz)
        for forbidden in ("<script", "<style", "style=", "kozea.github.io", "xlink:href"):
            assert forbidden not in svg, forbidden
        assert len(tooltips(parse(svg))) == 2 * len(queries.bucket_starts(f))


def f_tz(f: Filters) -> t.Any:
    return ZoneInfo(f.tz) if f.tz != "UTC" else UTC


def test_response_time_chart_leaves_empty_buckets_as_gaps() -> None:
    root = parse(charts.response_time_chart(series("hour", datetime(2024, 5, 2), [3, 0, 5]), UTC, "UTC"))
    p50 = [d.value.splitlines()[0] for d in metric(root)]
    assert p50 == ["p50 60 ms", "p50 100 ms"]  # no dot for the empty hour


def test_dense_hourly_series_shows_few_labels_but_every_point() -> None:
    hits = [i % 5 for i in range(48)]
    root = parse(charts.traffic_chart(series("hour", datetime(2024, 5, 1), hits), UTC, "UTC"))
    axis_labels = [t_ for t_ in texts(root, "text") if re.match(r"^(\w{3} \d\d? \w{3} )?\d\d:00$", t_)]
    assert 4 <= len(axis_labels) <= 12
    assert len(metric(root)) == 48


@pytest.mark.parametrize("label", HOSTILE)
def test_hostile_labels_are_escaped_in_the_svg(label: str) -> None:
    svg = charts.top_chart("Top paths", [(label, 3), ("/safe", 1)], lambda v: "/statistics/?path=x")
    root = parse(svg)  # well-formed: nothing broke out of a text node or attribute
    assert "<script>" not in svg and "<![CDATA[" not in svg and "]]>" not in svg
    assert not re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]", svg)
    assert not re.search("[\ud800-\udfff]", svg)
    assert all(not el.tag.endswith(("script", "style", "foreignObject")) for el in root.iter())
    shown = " ".join(texts(root, "text") + texts(root, "title") + texts(root, "desc"))
    expected = charts.label(label)
    assert expected[:20] in shown
    assert len(svg) < 20_000  # a 10 KB label is cut, not repeated everywhere


def test_control_characters_stay_visible_as_escapes() -> None:
    svg = charts.top_chart("Top", [("/a\x1b[31mred", 1)])
    assert "/a\\x1b[31mred" in " ".join(texts(parse(svg), "title"))


def test_bidi_and_zero_width_characters_are_shown_escaped() -> None:
    # U+202E would draw "/admin" + "gpj.exe" reversed; U+200B would hide a split.
    svg = str(charts.top_chart("Top", [("/admin\u202egpj.exe\u200b\u2066x", 1)]))
    assert not any(c in svg for c in "\u202e\u200b\u2066")
    root = parse(svg)
    shown = " ".join(texts(root, "text") + texts(root, "title") + texts(root, "desc"))
    assert "/admin\\u202egpj.exe\\u200b\\u2066x" in shown


def test_hostile_labels_in_the_config_attribute_are_escaped() -> None:
    svg = charts.traffic_chart(series("day", datetime(2024, 5, 1), [1, 2]), UTC, '"><script>alert(1)</script>')
    root = parse(svg)
    assert "<script>" not in svg
    assert "alert(1)" in (root.find(f"{SVG}desc").text or "")


def test_bars_link_to_a_drill_down_with_plain_href() -> None:
    svg = charts.top_chart("Top paths", [("/a", 5), ("/b&c", 3)], lambda v: f"/statistics/?path={v}&x=1")
    root = parse(svg)
    links = [el for el in root.iter(f"{SVG}a")]
    assert {a.get("href") for a in links} == {"/statistics/?path=/a&x=1", "/statistics/?path=/b&c&x=1"}
    for a in links:
        assert a.get("hx-get") == a.get("href") and a.get("hx-target") == "#dashboard"
        assert "fs-drill" in a.get("class", "")


def test_values_without_a_link_are_not_links() -> None:
    svg = charts.top_chart("Top referrers", [("https://example.com/", 2)], lambda v: None)
    assert not list(parse(svg).iter(f"{SVG}a"))


def test_most_frequent_value_is_drawn_on_top() -> None:
    root = parse(charts.top_chart("Top", [("/first", 9), ("/second", 5), ("/third", 1)]))
    # Horizontal bars: the y axis lists labels bottom to top.
    axis = [t_ for t_ in texts(root, "text") if t_.startswith("/")]
    assert axis == ["/third", "/second", "/first"]


def test_native_titles_are_a_js_free_tooltip_fallback() -> None:
    root = parse(charts.top_chart("Top", [("/a", 5)]))
    tips = [el for el in root.iter(f"{SVG}title") if el.get("class") == "fs-native-tip"]
    assert [t_.text for t_ in tips] == ["/a: 5 hits"]


@pytest.mark.parametrize("name", ["traffic", "response_times"])
def test_every_time_chart_point_has_a_native_title_naming_every_series(name: str) -> None:
    root = parse(all_charts()[name])
    points = dots(root)
    # Two series of six hours; response times have no dot for the three empty hours.
    assert len(points) == (12 if name == "traffic" else 6)
    for dot in root.iter(f"{SVG}g"):
        if dot.get("class") == "dots":
            assert len([el for el in dot.findall(f"{SVG}title") if el.get("class") == "fs-native-tip"]) == 1
    hits = [3, 0, 0, 5, 1, 0]
    for point in points:
        hour = int(point.x_label[-5:-3])
        bucket = f"Thu 2 May {hour:02d}:00"
        h = hits[hour]
        if name == "traffic":
            counts = f"{h} {'hit' if h == 1 else 'hits'}, {min(h, 3)} {'visitor' if min(h, 3) == 1 else 'visitors'}"
            assert point.title == f"{bucket} — {counts}"
            # The script's tooltip: the bucket, then one line per series.
            assert point.value.splitlines() == counts.split(", ")
        else:
            p50, p95 = charts.duration(0.02 * h), charts.duration(0.05 * h)
            requests = f"{h} {'request' if h == 1 else 'requests'}"
            assert point.title == f"{bucket} — p50 {p50}, p95 {p95} ({requests})"
            assert point.value.splitlines() == [f"p50 {p50}", f"p95 {p95}", requests]
        assert point.label == bucket
    first = next(t_ for t_ in texts(root, "title") if " — " in t_)
    assert first == (
        "Thu 2 May 00:00 — 3 hits, 3 visitors" if name == "traffic"
        else "Thu 2 May 00:00 — p50 60 ms, p95 150 ms (3 requests)"
    )


@pytest.mark.parametrize("chart", [charts.traffic_chart, charts.response_time_chart])
@pytest.mark.parametrize("hostile", HOSTILE)
def test_native_titles_of_time_charts_are_escaped(
    chart: t.Callable[..., str], hostile: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Bucket names are dates today; the titles must stay safe if that ever changes.
    monkeypatch.setattr(charts, "_bucket_names", lambda moments, width: [hostile] * len(moments))
    svg = chart(series("day", datetime(2024, 5, 1), [1, 2]), UTC, "UTC")
    root = parse(svg)
    assert "<script>" not in svg and "]]>" not in svg
    assert not re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]", svg)
    assert not re.search("[\ud800-\udfff]", svg)
    tips = [el.text or "" for el in root.iter(f"{SVG}title") if el.get("class") == "fs-native-tip"]
    assert len(tips) == 4 and all(tip.startswith(charts.label(hostile)[:20]) for tip in tips)


@pytest.mark.parametrize("name", ["traffic", "response_times"])
def test_legend_fits_inside_the_chart(name: str) -> None:
    root = parse(all_charts()[name])
    height = float(root.get("viewBox", "").split()[3])
    legends = next(g for g in root.iter(f"{SVG}g") if g.get("class") == "legends")
    top = float(re.search(r"translate\(\s*[\d.]+\s*,\s*([\d.]+)\s*\)", legends.get("transform", "")).group(1))
    font_size = charts.THEMES["default"].light.legend_font_size
    baselines = [float(el.get("y", 0)) for el in legends.iter(f"{SVG}text")]
    assert len(baselines) == 2
    # Descenders ("Unique", "p95") reach about a third of the font size below the
    # baseline; they must stay clear of the SVG's bottom edge.
    assert top + max(baselines) + font_size / 3 + 2 <= height


def test_status_colours_follow_the_class() -> None:
    root = parse(charts.status_chart([("5xx", 3)], lambda c: f"/s?status={c}"))
    slices = [el for el in root.iter(f"{SVG}path") if "slice" in (el.get("class") or "")]
    assert len(slices) == 1
    series_of_slice = [g for g in root.iter(f"{SVG}g") if slices[0] in list(g.iter())
                       and "series" in (g.get("class") or "")]
    assert "color-4" in series_of_slice[0].get("class", "")  # the red of 5xx


def test_committed_chart_stylesheet_is_current() -> None:
    committed = charts.STYLESHEET.read_text(encoding="utf-8")
    # The first line names the pygal release it was generated from; the rules are the
    # same for every release we support (checked again at the lowest bounds).
    header, rules = committed.split("\n", 1)
    assert header.startswith("/* Generated by `python -m flask_statistics.charts` from pygal ")
    assert rules == charts.stylesheet().split("\n", 1)[1], "run: python -m flask_statistics.charts"
    assert "#chart-" not in committed
    assert ".fs-chart-default .color-0" in committed
    assert ".fs-chart-status .color-4" in committed
    assert "@media (prefers-color-scheme: dark)" in committed
    assert "transparent" in committed  # the page's background shows through, light or dark


@pytest.mark.parametrize("theme", list(charts.THEMES.values()), ids=list(charts.THEMES))
@pytest.mark.parametrize("dark", [False, True], ids=["light", "dark"])
def test_series_name_in_a_tooltip_is_readable(theme: charts.Theme, dark: bool) -> None:
    light_css, dark_css = charts.STYLESHEET.read_text(encoding="utf-8").split("@media (prefers-color-scheme: dark)")
    style = theme.dark if dark else theme.light
    # The last rule wins; pygal's own fills the series name with the grid colour.
    fills = re.findall(
        rf"\.{theme.css_class} \.tooltip \.legend\{{[^}}]*fill:\s*([^;}}]+)", dark_css if dark else light_css
    )
    assert fills and fills[-1].strip() == style.foreground != style.foreground_subtle


def _panel_backgrounds() -> tuple[str, str]:
    # Charts are transparent on the panel: --surface, light, then in the dark block.
    css = (charts.STYLESHEET.parent / "dashboard.css").read_text(encoding="utf-8")
    light, dark = re.findall(r"--surface:\s*(#[0-9a-fA-F]{6})", css)[:2]
    return light, dark


def _rgb(color: str) -> tuple[float, float, float]:
    return tuple(int(color[i : i + 2], 16) / 255 for i in (1, 3, 5))  # type: ignore[return-value]


def _luminance(rgb: tuple[float, ...]) -> float:
    """WCAG 2 relative luminance."""
    r, g, b = (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def _contrast(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    darker, lighter = sorted((_luminance(a), _luminance(b)))
    return (lighter + 0.05) / (darker + 0.05)


def _lab(rgb: tuple[float, ...]) -> tuple[float, float, float]:
    r, g, b = (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb)
    x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047
    y = 0.2126 * r + 0.7152 * g + 0.0722 * b
    z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883
    fx, fy, fz = (v ** (1 / 3) if v > 216 / 24389 else (24389 / 27 * v + 16) / 116 for v in (x, y, z))
    return 116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)


@pytest.mark.parametrize("theme", list(charts.THEMES.values()), ids=list(charts.THEMES))
@pytest.mark.parametrize("dark", [False, True], ids=["light", "dark"])
def test_series_colours_stand_out_from_the_background(theme: charts.Theme, dark: bool) -> None:
    # WCAG 1.4.11: graphical objects need 3:1 against what is next to them, here the
    # panel. pygal draws series translucent, so the colour on screen is the series
    # colour at that opacity over the background.
    background = _rgb(_panel_backgrounds()[dark])
    style = theme.dark if dark else theme.light
    alpha = min(float(style.opacity), float(style.stroke_opacity))
    low = {}
    for color in style.colors:
        shown = tuple(alpha * c + (1 - alpha) * b for c, b in zip(_rgb(color), background))
        ratio = _contrast(shown, background)
        if ratio < 3:
            low[color] = round(ratio, 2)
    assert not low, f"below 3:1 against {_panel_backgrounds()[dark]}: {low}"
    # And the series of one chart are told apart (CIELAB distance; about 2 is just
    # noticeable). The time theme repeats each colour on purpose (whole and partial).
    distinct = list(dict.fromkeys(style.colors))
    for i, a in enumerate(distinct):
        for b in distinct[i + 1 :]:
            distance = math.dist(_lab(_rgb(a)), _lab(_rgb(b)))
            assert distance >= 25, f"{a} and {b} are hard to tell apart ({distance:.0f})"


def test_a_chart_of_the_same_data_is_rendered_once(monkeypatch):
    from flask_statistics import charts as module
    from flask_statistics.queries import Point, Series

    calls = []
    real = module._traffic_chart
    monkeypatch.setattr(module, "_traffic_chart", lambda *a: calls.append(a) or real(*a))
    start = datetime(2024, 3, 4)
    points = [Point(start + timedelta(hours=h), h, h, None, None) for h in range(24)]
    series = Series("hour", points, start + timedelta(days=1))
    first = module.traffic_chart(series, timezone.utc, "UTC")
    again = module.traffic_chart(Series("hour", list(points), start + timedelta(days=1)), timezone.utc, "UTC")
    assert again == first and len(calls) == 1
    changed = points[:-1] + [Point(points[-1].start, 99, 1, None, None)]
    other = module.traffic_chart(Series("hour", changed, start + timedelta(days=1)), timezone.utc, "UTC")
    assert other != first and len(calls) == 2


# ---------------------------------------------------------------------------------
# Honest charts: nothing drawn ahead of now, partial buckets marked, axes from 0

DAY = datetime(2024, 5, 2)
AT_1420 = DAY + timedelta(hours=14, minutes=20)


def today_series(hits: list[int] | None = None) -> Series:
    """2 May 2024 by the hour, as the dashboard charts a one-day window."""
    f = Filters.between(DAY.date(), DAY.date())
    starts = queries.bucket_starts(f)
    counts = hits or [5 + i for i in range(len(starts))]
    points = [Point(s, h, max(1, h // 3), 0.02, 0.1) for s, h in zip(starts, counts)]
    return Series(queries.bucket_width(f), points, f.until)


def line_xs(root: ET.Element, *, partial: bool | None = None) -> list[float]:
    """The x coordinate of every vertex of every drawn line (of partial series only,
    or whole ones only)."""
    xs = []
    for group in root.iter(f"{SVG}g"):
        classes = (group.get("class") or "").split()
        if "series" not in classes or (partial is not None and ("fs-partial" in classes) != partial):
            continue
        for path in group.iter(f"{SVG}path"):
            if "line" in (path.get("class") or "").split():
                numbers = [float(n) for n in re.findall(r"-?[\d.]+", path.get("d", ""))]
                xs += numbers[0::2]  # "M x y L x y x y ...": every other number is an x
    return xs


def height_of(root: ET.Element, dot: Dot, reference: list[Dot], values: list[float]) -> float:
    """What ``dot`` measures on the scale of ``reference`` (dots of known ``values``):
    from where that scale draws 0 and how many pixels one unit is."""
    (a, va), (b, vb) = sorted(zip(reference, values), key=lambda p: p[1])[:: len(values) - 1]
    per_unit = (a.y - b.y) / (vb - va)
    zero = a.y + va * per_unit
    return (zero - dot.y) / per_unit


@pytest.mark.parametrize("chart", [charts.traffic_chart, charts.response_time_chart])
def test_no_bucket_after_the_current_one_is_drawn(chart: t.Callable[..., str]) -> None:
    root = parse(chart(today_series(), UTC, "UTC", AT_1420))
    first = metric(root)
    # The hours 15:00-23:00 have not happened: no dot, no line, not even at 0.
    assert [d.x_label[-5:] for d in first] == [f"{h:02d}:00" for h in range(15)]
    last_x = first[-1].x
    assert max(d.x for d in dots(root)) == last_x
    assert max(line_xs(root)) == pytest.approx(last_x)
    # The axis still spans the whole day, so the chart shows how much of it is left.
    assert axis(root, "x")[-1] == "21:00"
    # The next hour draws one more bucket.
    later = parse(chart(today_series(), UTC, "UTC", DAY + timedelta(hours=15, minutes=1)))
    assert len(metric(later)) == 16


def test_a_window_that_has_not_begun_draws_nothing() -> None:
    root = parse(charts.traffic_chart(today_series(), UTC, "UTC", DAY - timedelta(minutes=1)))
    assert dots(root) == [] and line_xs(root) == []


def test_the_bucket_still_filling_is_dashed_and_says_so_far() -> None:
    root = parse(charts.traffic_chart(today_series(), UTC, "UTC", AT_1420))
    hits, visitors = metric(root, 0), metric(root, 2)
    for points in (hits, visitors):
        assert [d.partial for d in points] == [False] * 14 + [True]
        assert points[-1].label == "Thu 2 May 14:00 (so far)"
        assert all("so far" not in d.title for d in points[:-1])
    assert hits[-1].title == "Thu 2 May 14:00 (so far) — 19 hits, 6 visitors"
    assert hits[-1].value.splitlines() == ["19 hits", "6 visitors"]
    # The dashed stretch joins the last whole hour to the one still filling; the
    # whole line stops at the last whole hour.
    assert sorted(set(line_xs(root, partial=True))) == pytest.approx([hits[-2].x, hits[-1].x])
    assert max(line_xs(root, partial=False)) == pytest.approx(hits[-2].x)
    stylesheet = charts.STYLESHEET.read_text(encoding="utf-8")
    assert ".fs-chart .fs-partial .line{stroke-dasharray:" in stylesheet
    assert ".fs-chart .fs-partial .dot{fill-opacity:.15" in stylesheet
    assert "so far" in (root.find(f"{SVG}desc").text or "")
    assert charts.partial_buckets(today_series(), UTC, AT_1420) == ["Thu 2 May 14:00 (so far)"]
    # Once the day is over, every hour is whole.
    closed = parse(charts.traffic_chart(today_series(), UTC, "UTC", DAY + timedelta(days=1, hours=1)))
    assert len(metric(closed)) == 24 and not any(d.partial for d in dots(closed))
    assert not any("so far" in d.title for d in dots(closed))


def test_response_times_mark_the_open_bucket_too() -> None:
    root = parse(charts.response_time_chart(today_series(), UTC, "UTC", AT_1420))
    for points in (metric(root, 0), metric(root, 2)):
        assert [d.partial for d in points] == [False] * 14 + [True]
        assert points[-1].title == "Thu 2 May 14:00 (so far) — p50 20 ms, p95 100 ms (19 requests)"


def test_days_the_window_cuts_short_are_partial_too() -> None:
    # A window from 14:00 on 1 May to 14:00 on 5 May, by the day, seen afterwards.
    since, until = datetime(2024, 5, 1, 14), datetime(2024, 5, 5, 14)
    starts = [since] + [datetime(2024, 5, day) for day in (2, 3, 4, 5)]
    cut = Series("day", [Point(s, 10, 5, 0.02, 0.05) for s in starts], until)
    root = parse(charts.traffic_chart(cut, UTC, "UTC", until + timedelta(days=1)))
    hits = metric(root)
    assert [d.partial for d in hits] == [True, False, False, False, True]
    assert hits[0].label == "Wed 1 May 2024 (from 14:00)"
    assert hits[-1].label == "Sun 5 May 2024 (until 14:00)"


def test_today_in_a_week_is_partial_and_earlier_days_whole() -> None:
    f = Filters.between(date(2024, 4, 26), DAY.date(), tz="Europe/Berlin")
    week = calendar_series(f)
    # 16:00 in Berlin on the last day of the window.
    root = parse(charts.traffic_chart(week, f_tz(f), f.tz, DAY + timedelta(hours=14)))
    hits = metric(root)
    assert len(hits) == 7 and [d.partial for d in hits] == [False] * 6 + [True]
    assert hits[-1].label == "Thu 2 May 2024 (so far)"


@pytest.mark.parametrize(
    ("hits", "ticks"),
    [
        ([0, 1, 2, 1], ["0", "1", "2"]),
        ([1, 3, 2], ["0", "1", "2", "3"]),
        ([0, 0, 0], ["0", "1"]),
        ([5, 9, 7], ["0", "5", "10"]),
        ([12, 2, 7], ["0", "5", "10", "15"]),
        ([400, 3000, 1200], ["0", "1,000", "2,000", "3,000"]),
    ],
)
def test_count_axes_start_at_0_with_whole_number_ticks(hits: list[int], ticks: list[str]) -> None:
    root = parse(charts.traffic_chart(series("day", datetime(2024, 5, 1), hits), UTC, "UTC"))
    assert axis(root, "y") == ticks
    right = axis(root, "y2")
    assert right[0] == "0" and all(re.fullmatch(r"\d[\d,]*", tick) for tick in right), right
    # The busiest bucket is drawn below the top tick, the emptiest at or above 0.
    top = max(hits)
    assert int(ticks[-1].replace(",", "")) >= top


@pytest.mark.parametrize(("counts", "ticks"), [([3, 1], ["0", "1", "2", "3"]), ([1], ["0", "1"])])
def test_bar_chart_counts_start_at_0_with_whole_number_ticks(counts: list[int], ticks: list[str]) -> None:
    root = parse(charts.top_chart("Top", [(f"/{i}", c) for i, c in enumerate(counts)]))
    assert axis(root, "x") == ticks


def test_visitors_have_a_scale_of_their_own() -> None:
    hits, visitors = [3000, 2800, 3100], [30, 25, 35]
    points = [Point(DAY + timedelta(days=i), h, v, None, None) for i, (h, v) in enumerate(zip(hits, visitors))]
    root = parse(charts.traffic_chart(Series("day", points, DAY + timedelta(days=3)), UTC, "UTC"))
    assert axis(root, "y") == ["0", "1,000", "2,000", "3,000", "4,000"]
    assert axis(root, "y2") == ["0", "10", "20", "30", "40"]
    legends = json.loads(root.get("data-pygal-config", ""))["legends"]
    assert "Unique visitors (right axis)" in legends
    # On the hits scale 35 visitors would be a flat line at the floor; on their own
    # scale the busiest bucket is drawn most of the way up (35 of 40).
    hit_dots, visitor_dots = metric(root, 0), metric(root, 2)
    peak = max(visitor_dots, key=lambda d: -d.y)
    assert height_of(root, peak, hit_dots, hits) == pytest.approx(35 / 40 * 4000, rel=0.02)


def test_response_time_axis_starts_at_0() -> None:
    p95s = [0.2, 3.0, 1.1]
    points = [Point(DAY + timedelta(days=i), 10, 5, 0.04, p) for i, p in enumerate(p95s)]
    root = parse(charts.response_time_chart(Series("day", points, DAY + timedelta(days=3)), UTC, "UTC"))
    assert axis(root, "y") == ["0", "1,000", "2,000", "3,000"]
    p95_dots = metric(root, 2)
    # The p50 line sits at 40 ms above 0, on the same linear scale as p95.
    p50 = metric(root, 0)[0]
    assert height_of(root, p50, p95_dots, [p * 1000 for p in p95s]) == pytest.approx(40, abs=15)
    small = [Point(DAY, 3, 1, 0.0004, 0.0009)]
    root = parse(charts.response_time_chart(Series("day", small, DAY + timedelta(days=1)), UTC, "UTC"))
    assert axis(root, "y")[0] == "0" and axis(root, "y")[-1] == "1"


def test_a_cached_chart_never_shows_a_stale_open_bucket(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = charts._traffic_chart
    monkeypatch.setattr(charts, "_traffic_chart", lambda *a: calls.append(a) or real(*a))
    day = today_series()
    first = charts.traffic_chart(day, UTC, "UTC", AT_1420)
    # Later in the same hour the chart is the same and comes from the cache...
    assert charts.traffic_chart(day, UTC, "UTC", AT_1420 + timedelta(minutes=39)) == first
    assert len(calls) == 1
    # ...the next hour draws the 15:00 bucket as the open one.
    next_hour = charts.traffic_chart(day, UTC, "UTC", AT_1420 + timedelta(minutes=41))
    assert len(calls) == 2 and next_hour != first
    assert metric(parse(next_hour))[-1].label == "Thu 2 May 15:00 (so far)"
    # A closed day is the same chart whatever the time.
    closed = charts.traffic_chart(day, UTC, "UTC", DAY + timedelta(days=1))
    assert charts.traffic_chart(day, UTC, "UTC", DAY + timedelta(days=30)) == closed
    assert len(calls) == 3


def test_top_charts_are_cached_by_what_they_show(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = charts._top_chart
    monkeypatch.setattr(charts, "_top_chart", lambda *a: calls.append(a) or real(*a))
    rows = [("/cache-a", 5), ("/cache-b", 3)]

    def link(value: str) -> str:
        return f"/statistics/?path={value}"

    first = charts.top_chart("Paths", rows, link)
    assert charts.top_chart("Paths", list(rows), link) == first and len(calls) == 1
    # Other hits, or bars that lead elsewhere (another filter), are drawn anew.
    more = charts.top_chart("Paths", [("/cache-a", 6), ("/cache-b", 3)], link)
    assert len(calls) == 2 and "/cache-a: 6 hits" in more
    elsewhere = charts.top_chart("Paths", rows, lambda value: f"/statistics/?status=404&path={value}")
    assert len(calls) == 3 and "status=404" in elsewhere and "status=404" not in first


# ---------------------------------------------------------------------------------
# The dashboard's chart panels, on every backend


def _panel_svg(app: t.Any, endpoint: str, query: str) -> tuple[str, ET.Element]:
    from dashboard_support import dashboard_urls

    html = app.test_client().get(dashboard_urls(app, query=query)[endpoint]).get_data(as_text=True)
    found = re.search(r"<svg\b.*?</svg>", html, re.S)
    assert found, html[:500]
    return html, parse(found.group(0))


def test_chart_panels_of_today_stop_at_now_and_mark_the_open_hour(
    make_app: t.Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dashboard_support import insert, row

    app, *_ = make_app()
    rows = [row(date=DAY + timedelta(minutes=10), remote_address="203.0.113.1") for _ in range(2)]
    rows += [row(date=DAY + timedelta(hours=9, minutes=30 + i), remote_address=f"203.0.113.{i}",
                 response_time=0.1 * (i + 1)) for i in range(3)]
    rows += [row(date=DAY + timedelta(hours=14, minutes=i), remote_address=f"198.51.100.{i % 2}")
             for i in range(4)]
    insert(app, rows)
    monkeypatch.setattr(charts, "utcnow", lambda: AT_1420)
    query = "start=2024-05-02&end=2024-05-02"

    html, root = _panel_svg(app, "traffic", query)
    hits = metric(root)
    assert [d.x_label[-5:] for d in hits] == [f"{h:02d}:00" for h in range(15)]
    assert [d.value.splitlines()[0] for d in hits][:1] + [hits[9].value.splitlines()[0]] == ["2 hits", "3 hits"]
    assert [d.partial for d in hits] == [False] * 14 + [True]
    assert hits[-1].title == "Thu 2 May 14:00 (so far) — 4 hits, 2 visitors"
    assert axis(root, "y") == ["0", "1", "2", "3", "4"]
    assert axis(root, "y2")[0] == "0"
    assert "Dashed: Thu 2 May 14:00 (so far), not a whole hour." in html

    html, root = _panel_svg(app, "response_times", query)
    assert axis(root, "y")[0] == "0"
    p50 = metric(root, 0)
    assert [d.x_label[-5:] for d in p50] == ["00:00", "09:00", "14:00"]  # empty hours are gaps
    assert p50[-1].partial and p50[-1].title.startswith("Thu 2 May 14:00 (so far) — p50 ")
    assert max(d.x for d in dots(root)) == p50[-1].x

    # The same window seen the next day: every hour whole, no caption.
    monkeypatch.setattr(charts, "utcnow", lambda: DAY + timedelta(days=1, hours=3))
    html, root = _panel_svg(app, "traffic", query)
    assert len(metric(root)) == 24 and not any(d.partial for d in dots(root))
    assert "Dashed:" not in html
