"""Pygal charts rendered as inline SVG that is clean under a strict CSP.

Pygal puts a ``<style>``, a config ``<script>`` and ``style=`` attributes into every
chart. An XML filter (run by pygal after it adds them) takes all three out, moves the
tooltip config into ``data-pygal-config`` on the ``<svg>`` (the static boot script
hands it to pygal-tooltips), gives the SVG a ``<title>``/``<desc>`` and turns drill-down
``xlink:href`` into plain ``href``. The CSS pygal would have inlined is generated
once per :class:`Theme` into ``static/statistics/charts.css``; regenerate it with
``python -m flask_statistics.charts`` after changing a theme.

Every label is recorded data and therefore attacker-controlled. ElementTree escapes
text and attributes; :func:`~flask_statistics.formatting.clean` removes what XML
cannot carry (control characters, lone surrogates) before pygal sees it.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import typing as t
from collections import OrderedDict
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from functools import cached_property, lru_cache
from pathlib import Path
from types import ModuleType

from markupsafe import Markup

from . import buckets
from .formatting import clean, duration, milliseconds, number, shorten

if t.TYPE_CHECKING:
    from pygal.style import Style

STYLESHEET = Path(__file__).parent / "static" / "statistics" / "charts.css"
_XLINK_HREF = "{http://www.w3.org/1999/xlink}href"
#: Tooltip settings pygal-tooltips reads from ``window.pygal.config[uuid]``.
_TOOLTIP_KEYS = ("legends", "tooltip_fancy_mode", "width", "height")
#: Labels longer than this are cut before pygal sees them; pygal cuts further for
#: display and keeps the longer text in a native <title>.
LABEL_LIMIT = 200
AXIS_LABEL_LIMIT = 24
#: Room under the x labels of a chart with a one-row legend at the bottom: the row
#: (legend_font_size 13 plus descenders) and a little air.
_LEGEND_MARGIN_BOTTOM = 28

_FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif'
_PALETTE = ("#3b82f6", "#14b8a6", "#f59e0b", "#a855f7", "#ef4444", "#64748b")
#: 1xx, 2xx, 3xx, 4xx, 5xx: series index = class - 1, so colours follow the class.
_STATUS_PALETTE = ("#94a3b8", "#22c55e", "#3b82f6", "#f59e0b", "#ef4444")
STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")


@lru_cache(maxsize=None)
def _pygal() -> ModuleType:
    """pygal, imported on first use and without its legacy import hook.

    Importing pygal appends a ``PluginImportFixer`` to ``sys.meta_path`` so that
    ``import pygal.maps.<plugin>`` works. It only has the old ``find_module``, so
    Python 3.10 and 3.11 fall back to it with an ImportWarning for every import
    that no other finder resolves: a host app testing under
    ``-W error::ImportWarning`` then gets ImportWarning instead of
    ModuleNotFoundError. Removing the hook is the least intrusive fix: Python 3.12
    no longer consults it at all, and plugin maps stay reachable the way pygal
    documents them, as attributes (``pygal.maps.world.World``). A replacement
    finder would have to impersonate the plugin modules and rewrite their
    ``__spec__``. Importing lazily keeps an app that never opens the dashboard
    free of pygal altogether.
    """
    import pygal

    fixer = getattr(pygal, "PluginImportFixer", None)
    if isinstance(fixer, type) and any(isinstance(f, fixer) for f in sys.meta_path):
        # Rebinding rather than mutating in place: an import running in another
        # thread keeps iterating the list it started with.
        sys.meta_path = [f for f in sys.meta_path if not isinstance(f, fixer)]
    return pygal


def _style(colors: tuple[str, ...], *, dark: bool) -> Style:
    _pygal()
    from pygal.style import Style

    ink, strong, subtle = (
        ("#cbd5e1", "#f8fafc", "#334155") if dark else ("#475569", "#0f172a", "#e2e8f0")
    )
    return Style(
        background="transparent",
        plot_background="transparent",
        foreground=ink,
        foreground_strong=strong,
        foreground_subtle=subtle,
        guide_stroke_color=subtle,
        major_guide_stroke_color=subtle,
        guide_stroke_dasharray="2,4",
        major_guide_stroke_dasharray="2,4",
        font_family=_FONT,
        label_font_size=12,
        major_label_font_size=12,
        legend_font_size=13,
        tooltip_font_size=13,
        value_font_size=13,
        no_data_font_size=20,
        opacity=".85",
        opacity_hover="1",
        stroke_width="2",
        stroke_width_hover="3",
        transition="120ms ease-in",
        colors=colors,
    )


@dataclass(frozen=True)
class Theme:
    """A light and a dark pygal Style sharing one CSS class."""

    name: str
    colors: tuple[str, ...]
    tooltip_light: str = "#ffffff"
    tooltip_dark: str = "#0f172a"

    @property
    def css_class(self) -> str:
        return f"fs-chart-{self.name}"

    # Built on first use, so that importing this module does not import pygal.
    @cached_property
    def light(self) -> Style:
        return _style(self.colors, dark=False)

    @cached_property
    def dark(self) -> Style:
        return _style(self.colors, dark=True)


THEMES = {
    "default": Theme("default", _PALETTE),
    "status": Theme("status", _STATUS_PALETTE),
}


# ---------------------------------------------------------------------------------
# The stylesheet


def _theme_css(theme: Theme, style: Style, tooltip_fill: str) -> str:
    css_dir = Path(t.cast(str, _pygal().__file__)).parent / "css"
    from pygal.util import minify_css, template

    prefix = f".{theme.css_class} "
    colors = style.get_colors(prefix, len(style.colors))
    parts = []
    for name in ("base.css", "style.css", "graph.css"):
        text = (css_dir / name).read_text(encoding="utf-8")
        parts.append(template(text, style=style, colors=colors, strokes="", id=prefix))
    # pygal fills the tooltip box with the plot background, which is transparent here.
    parts.append(f"{prefix}.tooltip rect {{ fill: {tooltip_fill}; }}")
    # pygal draws the series name in a tooltip in foreground_subtle, which is the grid
    # colour here: almost invisible on the tooltip box.
    parts.append(f"{prefix}.tooltip .legend {{ fill: {style.foreground}; }}")
    return minify_css("\n".join(parts))


def stylesheet() -> str:
    """The CSS for every theme, light first and dark under prefers-color-scheme."""
    blocks = [
        "/* Generated by `python -m flask_statistics.charts` from pygal "
        f"{_pygal().__version__}'s stylesheets (LGPL-3.0+, Kozea); do not edit by hand. */"
    ]
    for theme in THEMES.values():
        blocks.append(_theme_css(theme, theme.light, theme.tooltip_light))
    dark = "\n".join(_theme_css(t_, t_.dark, t_.tooltip_dark) for t_ in THEMES.values())
    blocks.append(f"@media (prefers-color-scheme: dark) {{\n{dark}\n}}")
    return "\n".join(blocks) + "\n"


def write_stylesheet(path: Path = STYLESHEET) -> Path:
    path.write_text(stylesheet(), encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------
# Making pygal's SVG CSP-clean


def _csp_filter(title: str, description: str) -> t.Callable[[t.Any], t.Any]:
    def apply(root: t.Any) -> t.Any:
        config: dict[str, t.Any] = {}
        for parent in list(root.iter()):
            for child in list(parent):
                tag = child.tag if isinstance(child.tag, str) else ""
                if tag == "script":
                    config = _tooltip_config(child.text or "") or config
                    parent.remove(child)
                elif tag == "style" or not tag:  # not tag: comments
                    parent.remove(child)
        for element in root.iter():
            element.attrib.pop("style", None)
            if element.tag == "a" and _XLINK_HREF in element.attrib:
                element.set("href", element.attrib.pop(_XLINK_HREF))
            # Native tooltips for browsers without JS; the boot script drops them
            # once the richer pygal tooltips are active.
            if any("tooltip-trigger" in c.get("class", "") for c in element):
                for tip in element.findall("title"):
                    tip.set("class", "fs-native-tip")
        chart_id = root.get("id", "chart")
        title_el = root.find("title")
        if title_el is None:
            title_el = root.makeelement("title", {})
            root.insert(0, title_el)
        title_el.text = title
        title_el.set("id", f"{chart_id}-title")
        desc = root.makeelement("desc", {"id": f"{chart_id}-desc"})
        desc.text = description
        root.insert(list(root).index(title_el) + 1, desc)
        root.set("role", "img")
        root.set("aria-labelledby", f"{chart_id}-title {chart_id}-desc")
        root.set("data-pygal-config", json.dumps(config, separators=(",", ":")))
        return root

    return apply


def _tooltip_config(script: str) -> dict[str, t.Any] | None:
    marker = "] = "
    if "window.pygal.config[" not in script or marker not in script:
        return None
    full = json.loads(script.split(marker, 1)[1])
    return {key: full.get(key) for key in _TOOLTIP_KEYS}


def _new_chart(kind: type, theme: str = "default", **config: t.Any) -> t.Any:
    chosen = THEMES[theme]
    options: dict[str, t.Any] = dict(
        style=chosen.light,
        classes=["pygal-chart", "fs-chart", chosen.css_class],
        js=[],
        css=[],
        disable_xml_declaration=True,
        width=800,
        height=320,
        legend_at_bottom=True,
        legend_at_bottom_columns=4,
        truncate_legend=40,
        tooltip_border_radius=4,
        margin=12,
        margin_right=36,
        margin_bottom=16,
        spacing=10,
        print_values=False,
        no_data_text="No requests in this range",
    )
    options.update(config)
    return kind(**options)


def _render(chart: t.Any, title: str, description: str) -> Markup:
    chart.add_xml_filter(_csp_filter(clean(title), clean(description)))
    return Markup(chart.render(is_unicode=True))


def label(value: t.Any, empty: str = "(none)") -> str:
    """A recorded value made safe and short enough to be a chart label."""
    if value is None or value == "":
        return empty
    return shorten(value, LABEL_LIMIT)


# ---------------------------------------------------------------------------------
# The dashboard's charts. Inputs are the dataclasses from queries.py.


def _bucket_moments(points: t.Sequence[t.Any], tz: tzinfo, unit: buckets.Unit) -> list[datetime]:
    # Each bucket named by its local period: a week cut short by the window is still
    # the week of its Monday.
    return [buckets.period_start(point.start, tz, unit) for point in points]


def _day(moment: date) -> str:
    return f"{moment:%a} {moment.day} {moment:%b}"  # "Mon 3 Mar"; %-d is not portable


def _bucket_labels(moments: t.Sequence[datetime], unit: str, step: int = 1) -> list[str]:
    """Axis labels ("14:00", "Mon 3 Mar", "Week of 3 Mar", "Mar 2026", "2026").

    Only every ``step``-th label is shown; a shown label carries the date (hours) or
    the year (days and weeks) when it differs from the previous shown one.
    """
    labels = []
    shown: t.Any = None
    for index, moment in enumerate(moments):
        if unit == "month":
            labels.append(f"{moment:%b %Y}")
            continue
        if unit == "year":
            labels.append(str(moment.year))
            continue
        context = moment.date() if unit == "hour" else moment.year
        visible = index % step == 0
        add_context = visible and context != shown
        if visible:
            shown = context
        if unit == "hour":
            text = moment.strftime("%H:%M")
            labels.append(f"{_day(moment)} {text}" if add_context else text)
            continue
        text = _day(moment) if unit == "day" else f"Week of {moment.day} {moment:%b}"
        labels.append(f"{text} {moment.year}" if add_context else text)
    return labels


def _bucket_names(moments: t.Sequence[datetime], unit: str) -> list[str]:
    """Each bucket named in full, for tooltips and descriptions: "Mon 3 Mar 14:00",
    "Mon 3 Mar 2025", "Week of 3 Mar 2025", "Mar 2025", "2025"."""
    names = []
    for moment in moments:
        if unit == "hour":
            names.append(f"{_day(moment)} {moment:%H:%M}")
        elif unit == "day":
            names.append(f"{_day(moment)} {moment.year}")
        elif unit == "week":
            names.append(f"Week of {moment.day} {moment:%b %Y}")
        elif unit == "month":
            names.append(f"{moment:%b %Y}")
        else:
            names.append(str(moment.year))
    return names


def _partial_names(series: t.Any, tz: tzinfo, names: list[str]) -> list[str]:
    # A week, month or year cut short by the window says which days it holds, so a
    # low first or last point is not read as a quiet period.
    unit = series.width
    points = list(series.points)
    if unit in ("hour", "day") or series.end is None or not points:
        return names
    ends = [p.start for p in points[1:]] + [series.end]
    result = []
    for name, point, end in zip(names, points, ends):
        first = buckets.to_local(point.start, tz).date()
        last = buckets.to_local(max(point.start, end - timedelta(microseconds=1)), tz).date()
        if (first, last) != buckets.period_days(first, unit):
            span = _day(first) if first == last else f"{_day(first)} – {_day(last)}"
            name = f"{name} ({span} only)"
        result.append(name)
    return result


def _titled(
    name: str, values: t.Sequence[t.Any], buckets: t.Sequence[str], fmt: t.Callable[[t.Any], str]
) -> list[t.Any]:
    """Values with a native <title> each ("Tue 24 Nov · Hits: 1,234"), the tooltip
    for browsers without JS; gaps (None) stay gaps."""
    return [
        value if value is None else {"value": value, "tooltip": f"{label(bucket)} · {name}: {fmt(value)}"}
        for value, bucket in zip(values, buckets)
    ]


def _time_axis(count: int) -> dict[str, t.Any]:
    # Show about eight labels whatever the number of buckets.
    step = max(1, -(-count // 8))
    return dict(
        x_label_rotation=0,
        show_minor_x_labels=False,
        x_labels_major_every=step,
        truncate_label=-1,
        show_dots=count <= 400,
        dots_size=2.5 if count <= 96 else 1.5,
        allow_interruptions=True,
        # pygal 3.1.3 reserves too little room for a one-row legend at the bottom
        # (it counts rows as series // columns, which is 0 here, and subtracts one),
        # so the legend text would be cut by the edge of the SVG.
        margin_bottom=_LEGEND_MARGIN_BOTTOM,
    )


def _time_line(series: t.Any, tz: tzinfo, *, width: int, height: int) -> tuple[t.Any, list[t.Any], list[str]]:
    """A line chart over the series' buckets: the chart, its points and bucket names."""
    points = list(series.points)
    axis = _time_axis(len(points))
    chart = _new_chart(_pygal().Line, fill=False, width=width, height=height, **axis)
    moments = _bucket_moments(points, tz, series.width)
    chart.x_labels = _bucket_labels(moments, series.width, axis["x_labels_major_every"])
    names = _partial_names(series, tz, _bucket_names(moments, series.width))
    return chart, points, names


#: Charts rendered lately, by what they show: a closed period's chart is the same
#: every time it is asked for, and rendering one costs tens of milliseconds.
CACHE_SIZE = 64
_rendered: OrderedDict[tuple[t.Any, ...], Markup] = OrderedDict()
_rendered_lock = threading.Lock()


def _cached(key: tuple[t.Any, ...], render: t.Callable[[], Markup]) -> Markup:
    with _rendered_lock:
        found = _rendered.get(key)
        if found is not None:
            _rendered.move_to_end(key)
            return found
    made = render()
    with _rendered_lock:
        _rendered[key] = made
        while len(_rendered) > CACHE_SIZE:
            _rendered.popitem(last=False)
    return made


def _series_key(kind: str, series: t.Any, tz: tzinfo, zone_name: str) -> tuple[t.Any, ...]:
    return (kind, series.width, series.end, tuple(series.points), str(tz), zone_name)


def traffic_chart(series: t.Any, tz: tzinfo, zone_name: str) -> Markup:
    """Hits and unique visitors per bucket, every bucket in time order."""
    return _cached(
        _series_key("traffic", series, tz, zone_name), lambda: _traffic_chart(series, tz, zone_name)
    )


def response_time_chart(series: t.Any, tz: tzinfo, zone_name: str) -> Markup:
    """p50 and p95 response time per bucket in milliseconds; empty buckets are gaps."""
    return _cached(
        _series_key("response", series, tz, zone_name),
        lambda: _response_time_chart(series, tz, zone_name),
    )


def _traffic_chart(series: t.Any, tz: tzinfo, zone_name: str) -> Markup:
    chart, points, buckets = _time_line(series, tz, width=1200, height=340)
    chart.value_formatter = number
    chart.add("Hits", _titled("Hits", [p.hits for p in points], buckets, number))
    chart.add("Unique visitors", _titled("Unique visitors", [p.visitors for p in points], buckets, number))
    total = sum(p.hits for p in points)
    peak = max(points, key=lambda p: p.hits, default=None)
    description = (
        f"Line chart of hits and unique visitors per {series.width} "
        f"({zone_name}), {len(points)} buckets, {number(total)} hits in total"
    )
    if peak is not None and peak.hits:
        description += f"; busiest {series.width}: {buckets[points.index(peak)]} with {number(peak.hits)} hits"
    return _render(chart, "Traffic over time", description + ".")


def _response_time_chart(series: t.Any, tz: tzinfo, zone_name: str) -> Markup:
    chart, points, buckets = _time_line(series, tz, width=800, height=320)
    chart.value_formatter = _milliseconds_text
    chart.y_title = "milliseconds"
    chart.add("p50", _titled("p50", [milliseconds(p.p50) for p in points], buckets, _milliseconds_text))
    chart.add("p95", _titled("p95", [milliseconds(p.p95) for p in points], buckets, _milliseconds_text))
    p95s = [p.p95 for p in points if p.p95 is not None]
    description = (
        f"Line chart of the median (p50) and 95th percentile (p95) response time per "
        f"{series.width} ({zone_name})"
    )
    if p95s:
        description += f"; highest p95: {duration(max(p95s))}"
    return _render(chart, "Response time over time", description + ".")


def _milliseconds_text(ms: float | None) -> str:
    return duration(ms / 1000) if ms is not None else "no requests"


def status_chart(
    classes: t.Sequence[tuple[str, int]], link: t.Callable[[str], str | None] | None = None
) -> Markup:
    """A donut of status classes; each slice links to requests of that class."""
    counts = dict(classes)
    chart = _new_chart(
        _pygal().Pie, theme="status", inner_radius=0.55, width=400, height=280,
        show_legend=False, margin=8, margin_right=8, margin_bottom=8,
        tooltip_fancy_mode=False,  # label and value; fancy mode adds "Link >"
    )
    chart.value_formatter = number
    total = sum(counts.values())
    for name in STATUS_CLASSES:
        count = counts.get(name, 0)
        value: dict[str, t.Any] = {"value": count or None, "label": name}
        if count:
            share = count / total
            value["tooltip"] = f"{name}: {number(count)} ({share:.1%})"
            target = link(name) if link is not None else None
            if target:
                value["xlink"] = _drill(target)
        chart.add(f"{name} · {number(count)}", [value])
    parts = ", ".join(f"{name}: {number(counts.get(name, 0))}" for name in STATUS_CLASSES)
    return _render(chart, "Status classes", f"Donut chart of responses by status class; {parts}.")


def top_chart(
    title: str,
    items: t.Sequence[tuple[t.Any, int]],
    link: t.Callable[[t.Any], str | None] | None = None,
    *,
    empty: str = "(none)",
) -> Markup:
    """A horizontal bar per value, the most frequent on top; bars link to a drill-down."""
    rows = list(items)
    chart = _new_chart(
        _pygal().HorizontalBar,
        show_legend=False,
        width=440,
        height=max(120, 30 * len(rows) + 50),
        truncate_label=-1,
        max_scale=5,
        tooltip_fancy_mode=False,  # label and value; fancy mode adds "Link >"
    )
    chart.value_formatter = number
    labels = [label(value, empty) for value, _ in rows]
    values = []
    for (value, hits), text in zip(rows, labels):
        entry: dict[str, t.Any] = {
            "value": hits, "label": text, "tooltip": f"{text}: {number(hits)} hits",
        }
        target = link(value) if link is not None else None
        if target:
            entry["xlink"] = _drill(target)
        values.append(entry)
    # HorizontalBar draws the first value at the bottom. pygal sizes the margin to
    # the longest label, so axis labels are cut short; the tooltips keep more.
    chart.x_labels = [shorten(text, AXIS_LABEL_LIMIT) for text in reversed(labels)]
    chart.add("Hits", list(reversed(values)))
    listing = "; ".join(f"{text}: {number(hits)}" for (_, hits), text in zip(rows[:10], labels))
    description = f"Bar chart of the {len(rows)} most frequent values by hits. {listing}"
    return _render(chart, title, shorten(description, 2000))


def _drill(url: str) -> dict[str, str]:
    # Plain navigation without JS; with htmx the same URL swaps #dashboard.
    return {
        "href": url,
        "hx-get": url,
        "hx-target": "#dashboard",
        "hx-swap": "innerHTML",
        "hx-push-url": "true",
        "hx-indicator": "#dashboard",
        "class_": "fs-drill",
    }


def main() -> None:
    path = write_stylesheet()
    print(f"wrote {os.path.relpath(path)} ({len(path.read_bytes()):,} bytes)")


if __name__ == "__main__":
    main()


def live_chart(minutes: t.Sequence[tuple[datetime, datetime, int]], tz: tzinfo, zone_name: str) -> Markup:
    """Requests per minute for the live view: one bar per ``(start, end, hits)``
    (naive UTC), each a whole minute, the last ending now; counts from 0 in whole
    numbers. Not cached: it changes with every refresh."""
    rows = list(minutes)
    ends = [buckets.to_local(end, tz) for _, end, _ in rows]
    names = [
        f"{buckets.to_local(start, tz):%H:%M:%S} – {end:%H:%M:%S}"
        for (start, _, _), end in zip(rows, ends)
    ]
    hits = [count for _, _, count in rows]
    peak = max(hits, default=0)
    # Whole-number steps, about four of them, so small counts get no 0.5 ticks.
    step = max(1, -(-peak // 4))
    top = max(step * 4, step * -(-peak // step))
    chart = _new_chart(
        _pygal().Bar, width=800, height=260, show_legend=False, range=(0, top),
        y_labels=list(range(0, top + 1, step)), x_label_rotation=0,
        show_minor_x_labels=False, x_labels_major_every=5, truncate_label=-1,
        tooltip_fancy_mode=False, margin_bottom=_LEGEND_MARGIN_BOTTOM,
    )
    chart.value_formatter = number
    chart.x_labels = [f"{end:%H:%M}" for end in ends]
    chart.add("Requests", _titled("Requests", hits, names, number))
    description = (
        f"Bar chart of requests per minute over the last {len(rows)} minutes "
        f"({zone_name}), {number(sum(hits))} in total"
    )
    if rows:
        description += f"; last minute: {number(hits[-1])}; busiest minute: {number(peak)}"
    return _render(chart, "Requests per minute", description + ".")
