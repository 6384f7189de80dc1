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
import math
import os
import sys
import threading
import typing as t
from collections import OrderedDict
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone, tzinfo
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
# Series colours, for the light and the dark panel background (dashboard.css
# --surface). Each reaches 3:1 against its background (WCAG 1.4.11, graphical
# objects) even where pygal draws a series translucent (stroke-opacity .8), so light
# mode takes darker shades and dark mode lighter ones of the same hues.
_PALETTE = ("#2563eb", "#0f766e", "#b45309", "#9333ea", "#dc2626", "#64748b")
_PALETTE_DARK = ("#60a5fa", "#2dd4bf", "#fbbf24", "#c084fc", "#f87171", "#94a3b8")
#: 1xx, 2xx, 3xx, 4xx, 5xx: series index = class - 1, so colours follow the class.
_STATUS_PALETTE = ("#64748b", "#15803d", "#2563eb", "#b45309", "#dc2626")
_STATUS_PALETTE_DARK = ("#94a3b8", "#4ade80", "#60a5fa", "#fbbf24", "#f87171")
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
    dark_colors: tuple[str, ...]
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
        return _style(self.dark_colors, dark=True)


THEMES = {
    "default": Theme("default", _PALETTE, _PALETTE_DARK),
    "status": Theme("status", _STATUS_PALETTE, _STATUS_PALETTE_DARK),
    # Time charts draw each metric as a pair of series, whole and partial buckets,
    # in one colour.
    "time": Theme(
        "time",
        tuple(c for c in _PALETTE[:2] for _ in (0, 1)),
        tuple(c for c in _PALETTE_DARK[:2] for _ in (0, 1)),
    ),
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
    # Without fancy mode pygal leaves the value lines unfilled: black, unreadable on
    # the dark tooltip box.
    parts.append(f"{prefix}.tooltip .value {{ fill: {style.foreground_strong}; }}")
    return minify_css("\n".join(parts))


#: Rules of our own, for every theme: partial buckets are drawn dashed with a hollow
#: dot, and a tooltip's lines are all body-sized, the bucket's name in bold.
_OWN_CSS = """
.fs-chart .fs-partial .line { stroke-dasharray: 6 5; }
.fs-chart .fs-partial .dot { fill-opacity: .15; stroke-width: 2px; }
.fs-chart .tooltip text.label { font-weight: 600; }
.fs-chart .tooltip text.value { font-size: 1em; }
"""


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
    from pygal.util import minify_css

    blocks.append(minify_css(_OWN_CSS.strip()))
    return "\n".join(blocks) + "\n"


def write_stylesheet(path: Path = STYLESHEET) -> Path:
    path.write_text(stylesheet(), encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------
# Making pygal's SVG CSP-clean


def _csp_filter(
    title: str, description: str, partial_series: t.Collection[int] = ()
) -> t.Callable[[t.Any], t.Any]:
    partial_classes = {f"serie-{index}" for index in partial_series}

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
                elif tag == "g" and any(c.get("class") == _BRIDGE for c in child):
                    parent.remove(child)  # a bridge's dot: the whole series has one
                elif tag == "g" and partial_classes & set(child.get("class", "").split()):
                    child.set("class", child.get("class", "") + " fs-partial")
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
        # A chart with drill-down links is a figure: an image's children are hidden
        # from assistive technology, and its links would be unreachable.
        has_links = any(element.tag == "a" for element in root.iter())
        root.set("role", "figure" if has_links else "img")
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


def _render(
    chart: t.Any, title: str, description: str, partial_series: t.Collection[int] = ()
) -> Markup:
    chart.add_xml_filter(_csp_filter(clean(title), clean(description), partial_series))
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


def _local_midnight(day: date, tz: tzinfo) -> datetime:
    return buckets.first_instant(datetime.combine(day, datetime.min.time()), tz)


def _period_bounds(start: datetime, tz: tzinfo, unit: buckets.Unit) -> tuple[datetime, datetime]:
    """Where the local period of ``unit`` holding ``start`` begins and ends (naive UTC)."""
    if unit == "hour":
        hour = buckets.to_local(start, tz).replace(minute=0, second=0, microsecond=0)
        begin = hour.astimezone(timezone.utc).replace(tzinfo=None)
        return begin, begin + timedelta(hours=1)
    first, last = buckets.period_days(buckets.to_local(start, tz).date(), unit)
    return _local_midnight(first, tz), _local_midnight(last + timedelta(days=1), tz)


def _bucket_ends(series: t.Any, tz: tzinfo) -> list[datetime]:
    points = list(series.points)
    if not points:
        return []
    last = series.end if series.end is not None else _period_bounds(points[-1].start, tz, series.width)[1]
    return [p.start for p in points[1:]] + [last]


def _cut_note(start: datetime, end: datetime, tz: tzinfo, unit: buckets.Unit) -> str | None:
    """What part of its period a bucket cut short by the window holds, or None."""
    begin, finish = _period_bounds(start, tz, unit)
    if start <= begin and end >= finish:
        return None
    first = buckets.to_local(start, tz)
    last = buckets.to_local(max(start, end - timedelta(microseconds=1)), tz)
    if unit not in ("hour", "day") and (first.date(), last.date()) != buckets.period_days(first.date(), unit):
        # A week, month or year says which days it holds, so a low first or last
        # point is not read as a quiet period.
        days = _day(first) if first.date() == last.date() else f"{_day(first)} – {_day(last)}"
        return f"{days} only"
    parts = []
    if start > begin:
        parts.append(f"from {first:%H:%M}" if unit in ("hour", "day") else f"from {_day(first)} {first:%H:%M}")
    if end < finish:
        until = buckets.to_local(end, tz)
        parts.append(f"until {until:%H:%M}" if unit in ("hour", "day") else f"until {_day(until)} {until:%H:%M}")
    return " ".join(parts)


def utcnow() -> datetime:
    """The current time as naive UTC, the way the table stores it."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _progress(series: t.Any, tz: tzinfo, now: datetime) -> tuple[int, bool]:
    """How many buckets have begun by ``now`` (the rest lie ahead and are not drawn),
    and whether the last of them is still filling."""
    points = list(series.points)
    drawn = sum(1 for point in points if point.start <= now)
    still_open = drawn > 0 and now < _bucket_ends(series, tz)[drawn - 1]
    return drawn, still_open


@dataclass(frozen=True)
class _Frame:
    """A time chart's buckets: every one of the window on the x axis, drawn up to now."""

    points: list[t.Any]
    drawn: int  # buckets that have begun; later ones are in the future
    partial: list[bool]  # per bucket: still filling, or cut short by the window
    names: list[str]  # per bucket, in full, with what makes it partial
    labels: list[str]  # x axis labels
    step: int  # every step-th x label is shown


def _frame(series: t.Any, tz: tzinfo, now: datetime) -> _Frame:
    points = list(series.points)
    unit = series.width
    drawn, still_open = _progress(series, tz, now)
    step = max(1, -(-len(points) // 8))  # about eight x labels whatever the count
    moments = _bucket_moments(points, tz, unit)
    names = _bucket_names(moments, unit)
    partial = [False] * len(points)
    for index, (point, end) in enumerate(zip(points[:drawn], _bucket_ends(series, tz))):
        notes = [note for note in [_cut_note(point.start, end, tz, unit)] if note]
        if still_open and index == drawn - 1:
            notes.append("so far")
        if notes:
            partial[index] = True
            names[index] = f"{names[index]} ({', '.join(notes)})"
    return _Frame(points, drawn, partial, names, _bucket_labels(moments, unit, step), step)


#: The class of a point drawn only to join a partial bucket's dashed line to the
#: whole ones; the XML filter removes its dot, the whole series has one already.
_BRIDGE = "fs-bridge"
#: Series of partial buckets: the second of each pair a time chart adds.
_PARTIAL_SERIES = (1, 3)


def _point_values(
    frame: _Frame, values: t.Sequence[t.Any], summaries: t.Sequence[str], tips: t.Sequence[str]
) -> tuple[list[t.Any], list[t.Any]]:
    """One metric as two series: whole buckets, and partial ones (dashed).

    Each point's tooltip names the bucket (``label``) and every series at that time
    (the value text, one line each); its native <title> says the same in one line.
    Future buckets and empty ones (None) stay gaps.
    """
    shown: list[t.Any] = []
    for index, value in enumerate(values):
        if index >= frame.drawn or value is None:
            shown.append(None)
            continue
        shown.append({
            "value": value,
            "label": label(frame.names[index]),
            "tooltip": tips[index],
            "formatter": _fixed(summaries[index]),
        })
    whole = [None if part else value for value, part in zip(shown, frame.partial)]
    partial: list[t.Any] = []
    for index, (value, part) in enumerate(zip(shown, frame.partial)):
        neighbours = [j for j in (index - 1, index + 1) if 0 <= j < len(shown)]
        if part:
            partial.append(value)
        elif value is not None and any(frame.partial[j] and shown[j] is not None for j in neighbours):
            partial.append({"value": value["value"], "node": {"class": _BRIDGE}})
        else:
            partial.append(None)
    return whole, partial


def _fixed(text: str) -> t.Callable[[t.Any], str]:
    return lambda value: text


def _plural(count: int, one: str, many: str) -> str:
    return f"{number(count)} {one if count == 1 else many}"


def _nice_step(raw: float, *, integer: bool) -> float:
    """The smallest of 1, 2 and 5 times a power of ten that is at least ``raw``."""
    if raw <= 0 or (integer and raw <= 1):
        return 1
    power = 10 ** math.floor(math.log10(raw))
    # The tolerance keeps a raw step of exactly 2 × 10^k from rounding up to 5.
    factor = next((f for f in (1, 2, 5) if f * power >= raw * (1 - 1e-9)), 10)
    return float(factor * power)


def _ticks(top: float, *, integer: bool, intervals: int = 4) -> list[float]:
    """Axis ticks from 0 past ``top`` in even, round steps; integers for counts."""
    step = _nice_step(top / intervals, integer=integer)
    count = max(1, math.ceil(top / step - 1e-9))
    return [int(i * step) if integer else round(i * step, 9) for i in range(count + 1)]


def _time_chart(frame: _Frame, *, width: int, height: int) -> t.Any:
    count = len(frame.points)
    chart = _new_chart(
        _pygal().Line,
        theme="time",
        fill=False,
        width=width,
        height=height,
        x_label_rotation=0,
        show_minor_x_labels=False,
        x_labels_major_every=frame.step,
        truncate_label=-1,
        show_dots=count <= 400,
        dots_size=2.5 if count <= 96 else 1.5,
        allow_interruptions=True,
        # One line per tooltip: the bucket, then every series at that time.
        tooltip_fancy_mode=False,
        # pygal 3.1.3 reserves too little room for a one-row legend at the bottom
        # (it counts rows as series // columns, which is 0 here, and subtracts one),
        # so the legend text would be cut by the edge of the SVG.
        margin_bottom=_LEGEND_MARGIN_BOTTOM,
    )
    chart.x_labels = frame.labels
    return chart


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


def _series_key(kind: str, series: t.Any, tz: tzinfo, zone_name: str, now: datetime) -> tuple[t.Any, ...]:
    # "now" matters only through which buckets have begun and whether the last is
    # still filling: a chart of a closed period stays cached whatever the time.
    return (kind, series.width, series.end, tuple(series.points), str(tz), zone_name, _progress(series, tz, now))


def traffic_chart(series: t.Any, tz: tzinfo, zone_name: str, now: datetime | None = None) -> Markup:
    """Hits (left axis) and unique visitors (right axis) per bucket, in time order,
    up to ``now`` (naive UTC; default: the current time). Buckets still filling or
    cut short by the window are dashed, and say so in their tooltips."""
    now = utcnow() if now is None else now
    return _cached(
        _series_key("traffic", series, tz, zone_name, now),
        lambda: _traffic_chart(series, tz, zone_name, now),
    )


def response_time_chart(series: t.Any, tz: tzinfo, zone_name: str, now: datetime | None = None) -> Markup:
    """p50 and p95 response time per bucket in milliseconds, up to ``now``; empty
    buckets are gaps, partial ones dashed."""
    now = utcnow() if now is None else now
    return _cached(
        _series_key("response", series, tz, zone_name, now),
        lambda: _response_time_chart(series, tz, zone_name, now),
    )


def _traffic_chart(series: t.Any, tz: tzinfo, zone_name: str, now: datetime) -> Markup:
    frame = _frame(series, tz, now)
    points = frame.points
    drawn = points[: frame.drawn]
    chart = _time_chart(frame, width=1200, height=340)
    # Counts start at 0 in whole steps. Visitors get the right axis, with as many
    # steps as the hits axis so both share the grid lines.
    hit_ticks = _ticks(max((p.hits for p in drawn), default=0), integer=True)
    steps = len(hit_ticks) - 1
    visitor_step = _nice_step(max((p.visitors for p in drawn), default=0) / steps, integer=True)
    chart.range = (0, hit_ticks[-1])
    chart.y_labels = hit_ticks
    chart.secondary_range = (0, int(visitor_step * steps))
    chart.value_formatter = number
    summaries, tips = [], []
    for point, name in zip(points, frame.names):
        hits = _plural(point.hits, "hit", "hits")
        visitors = _plural(point.visitors, "visitor", "visitors")
        summaries.append(f"{hits}\n{visitors}")
        tips.append(f"{label(name)} — {hits}, {visitors}")
    for title, values, secondary in (
        ("Hits", [p.hits for p in points], False),
        ("Unique visitors (right axis)", [p.visitors for p in points], True),
    ):
        whole, partial = _point_values(frame, values, summaries, tips)
        chart.add(title, whole, secondary=secondary)
        chart.add(None, partial, secondary=secondary)
    total = sum(p.hits for p in points)
    peak = max(drawn, key=lambda p: p.hits, default=None)
    description = (
        f"Line chart of hits (left axis) and unique visitors (right axis) per {series.width} "
        f"({zone_name}), {len(points)} buckets, {number(total)} hits in total"
    )
    if peak is not None and peak.hits:
        description += f"; busiest {series.width}: {frame.names[points.index(peak)]} with {number(peak.hits)} hits"
    return _render(
        chart, "Traffic over time", description + _partial_description(frame) + ".", _PARTIAL_SERIES
    )


def _response_time_chart(series: t.Any, tz: tzinfo, zone_name: str, now: datetime) -> Markup:
    frame = _frame(series, tz, now)
    points = frame.points
    drawn = points[: frame.drawn]
    chart = _time_chart(frame, width=800, height=320)
    # Milliseconds from 0, so the gap between p50 and p95 is drawn to scale.
    p95s = [p.p95 for p in drawn if p.p95 is not None]
    ticks = _ticks(max((milliseconds(v) or 0 for v in p95s), default=0), integer=False)
    chart.range = (0, ticks[-1])
    chart.y_labels = ticks
    chart.value_formatter = _tick_text
    chart.y_title = "milliseconds"
    summaries, tips = [], []
    for point, name in zip(points, frame.names):
        p50, p95 = duration(point.p50), duration(point.p95)
        requests = _plural(point.hits, "request", "requests")
        summaries.append(f"p50 {p50}\np95 {p95}\n{requests}")
        tips.append(f"{label(name)} — p50 {p50}, p95 {p95} ({requests})")
    for title, values in (
        ("p50", [milliseconds(p.p50) for p in points]),
        ("p95", [milliseconds(p.p95) for p in points]),
    ):
        whole, partial = _point_values(frame, values, summaries, tips)
        chart.add(title, whole)
        chart.add(None, partial)
    description = (
        f"Line chart of the median (p50) and 95th percentile (p95) response time per "
        f"{series.width} ({zone_name}), in milliseconds from 0"
    )
    if p95s:
        description += f"; highest p95: {duration(max(p95s))}"
    return _render(
        chart, "Response time over time", description + _partial_description(frame) + ".",
        _PARTIAL_SERIES,
    )


def partial_buckets(series: t.Any, tz: tzinfo, now: datetime | None = None) -> list[str]:
    """The full names of the buckets a time chart draws dashed: the one still filling
    at ``now`` ("Thu 2 May 14:00 (so far)") and any the window cuts short."""
    frame = _frame(series, tz, utcnow() if now is None else now)
    return [frame.names[i] for i in range(frame.drawn) if frame.partial[i]]


def _partial_description(frame: _Frame) -> str:
    partial = [frame.names[i] for i in range(frame.drawn) if frame.partial[i]]
    if not partial:
        return ""
    return "; partial, drawn dashed: " + "; ".join(label(name) for name in partial)


def _tick_text(value: float) -> str:
    return f"{value:,.9g}"


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
    """A horizontal bar per value, the most frequent on top; bars link to a drill-down.
    Cached by what it shows: the values, their hits and where their bars lead."""
    rows = list(items)
    targets = [link(value) if link is not None else None for value, _ in rows]
    return _cached(
        ("top", title, tuple(rows), tuple(targets), empty),
        lambda: _top_chart(title, rows, targets, empty),
    )


def _top_chart(
    title: str, rows: list[tuple[t.Any, int]], targets: list[str | None], empty: str
) -> Markup:
    chart = _new_chart(
        _pygal().HorizontalBar,
        show_legend=False,
        width=440,
        height=max(120, 30 * len(rows) + 50),
        truncate_label=-1,
        tooltip_fancy_mode=False,  # label and value; fancy mode adds "Link >"
    )
    chart.value_formatter = number
    # Bars start at 0 and counts step by whole numbers.
    ticks = _ticks(max((hits for _, hits in rows), default=0), integer=True)
    chart.range = (0, ticks[-1])
    chart.y_labels = ticks
    labels = [label(value, empty) for value, _ in rows]
    values = []
    for (_value, hits), text, target in zip(rows, labels, targets):
        entry: dict[str, t.Any] = {
            "value": hits, "label": text, "tooltip": f"{text}: {number(hits)} hits",
        }
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
    ticks = _ticks(peak, integer=True)
    chart = _new_chart(
        _pygal().Bar, width=800, height=260, show_legend=False, range=(0, ticks[-1]),
        y_labels=ticks, x_label_rotation=0,
        show_minor_x_labels=False, x_labels_major_every=5, truncate_label=-1,
        tooltip_fancy_mode=False, margin_bottom=_LEGEND_MARGIN_BOTTOM,
    )
    chart.value_formatter = number
    chart.x_labels = [f"{end:%H:%M}" for end in ends]
    chart.add("Requests", [
        {"value": count, "label": label(name), "tooltip": f"{label(name)}: {_plural(count, 'request', 'requests')}"}
        for count, name in zip(hits, names)
    ])
    description = (
        f"Bar chart of requests per minute over the last {len(rows)} minutes "
        f"({zone_name}), {number(sum(hits))} in total"
    )
    if rows:
        description += f"; last minute: {number(hits[-1])}; busiest minute: {number(peak)}"
    return _render(chart, "Requests per minute", description + ".")


def main() -> None:
    path = write_stylesheet()
    print(f"wrote {os.path.relpath(path)} ({len(path.read_bytes()):,} bytes)")


if __name__ == "__main__":
    main()
