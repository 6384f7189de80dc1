"""What each dashboard partial shows. One builder per partial turns query results
into template context; links are built here so templates stay declarative."""

from __future__ import annotations

import threading
import typing as t
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo

import sqlalchemy as sa
from flask import url_for

from . import charts, figures, grouping, queries
from .buckets import to_local
from .filters import METHODS, PRESETS, Filters
from .formatting import (
    Change,
    attribute,
    change,
    clean,
    duration,
    filesize,
    number,
    path_breaks,
    percent,
    shorten,
    timestamp,
)
from .rollups.read import OTHER
from .rollups.store import Store
from .schema import present_columns
from .security import EXTERNAL_REL, external_url

#: Longest value a drill-down link may carry; the form rejects longer ones.
MAX_FILTER_TEXT = 2048
TOP_LIMIT = 10
TOP_PATHS_LIMIT = 20


class _OtherLabel(str):
    """The folded long tail of a top list: shown, never a filter."""


class Links:
    """URLs for one set of filters: the page, each partial, drill-downs, sorting and
    pagination. Every link keeps the current filters unless told otherwise."""

    def __init__(self, filters: Filters | None) -> None:
        self.filters = filters

    def args(self, **changes: t.Any) -> dict[str, str]:
        if self.filters is None:
            return {k: str(v) for k, v in changes.items() if v not in (None, "")}
        return self.filters.query_args(**changes)

    def index(self, **changes: t.Any) -> str:
        return url_for(".index", **self.args(**changes))

    def partial(self, endpoint: str, **changes: t.Any) -> str:
        return url_for(f".{endpoint}", **self.args(**changes))

    def detail(self, index: t.Any) -> str:
        return url_for(".detail", index=index, **self.args())

    def drill(self, **changes: t.Any) -> str | None:
        """The dashboard narrowed by ``changes`` (back to page 1), or None when a value
        cannot be a filter (NULL, too long, not a known method...)."""
        for name, value in changes.items():
            if value is not None and not _filterable(name, value):
                return None
        if "path" in changes and "path_match" not in changes:
            changes["path_match"] = None  # a clicked path is an exact path
        return self.index(page=None, **changes)

    def sort(self, key: str) -> SortLink:
        """Sorting the log by ``key``: newest/largest first, a second click flips it."""
        current = self.filters is not None and self.filters.sort == key
        descending = self.filters.descending if self.filters is not None else True
        order = ("asc" if descending else "desc") if current else "desc"
        changes = {"sort": key, "order": order, "page": None}
        state = ("descending" if descending else "ascending") if current else None
        return SortLink(
            href=self.index(**changes),
            hx=self.partial("requests", **changes),
            state=state,
        )

    def presets(self) -> list[PresetLink]:
        """One link per range preset, keeping the other filters (back to page 1)."""
        current = self.filters.range if self.filters is not None else None
        out = []
        for name, label in PRESETS.items():
            changes = {"range": name, "page": None}
            out.append(
                PresetLink(
                    name=name, label=label, href=self.index(**changes),
                    current=name == current,
                )
            )
        return out

    def page(self, number_: int) -> PageLink:
        page = None if number_ == 1 else number_
        return PageLink(
            href=self.index(page=page), hx=self.partial("requests", page=page), number=number_
        )


@dataclass(frozen=True)
class SortLink:
    href: str
    hx: str
    state: str | None  # "ascending"/"descending" when the log is sorted by this column


@dataclass(frozen=True)
class PresetLink:
    name: str
    label: str
    href: str
    current: bool  # the window shown is this preset


@dataclass(frozen=True)
class PageLink:
    href: str
    hx: str
    number: int


def _filterable(name: str, value: t.Any) -> bool:
    if name == "status":
        return isinstance(value, str) or (isinstance(value, int) and 100 <= value <= 599)
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_FILTER_TEXT:
        return False
    if "\x00" in value or any(0xD800 <= ord(c) <= 0xDFFF for c in value):
        return False
    if name == "method":
        return value in METHODS
    return True


class Shared:
    """Figures more than one panel uses, computed once per request by whichever
    panel asks first; the others wait for that result. Safe across threads, so
    panels built at the same time on their own connections share them too."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._futures: dict[str, Future[t.Any]] = {}

    def get(self, key: str, compute: t.Callable[[], t.Any]) -> t.Any:
        with self._lock:
            future = self._futures.get(key)
            owner = future is None
            if future is None:
                future = self._futures[key] = Future()
        if owner:
            try:
                future.set_result(compute())
            except BaseException as exc:
                future.set_exception(exc)
                raise
        return future.result()


#: What each chart shows of a series besides hits.
_SERIES_PARTS = {"traffic": frozenset(("visitors",)), "response_times": frozenset(("times",))}


@dataclass
class View:
    """Everything a builder needs for one request. ``conn`` is None while a panel is
    presented from figures fetched elsewhere (see :class:`Panel`)."""

    conn: sa.Connection
    table: sa.Table
    filters: Filters
    tz: tzinfo
    zone_name: str
    page_size: int
    links: Links
    store: Store | None = None
    shared: Shared = field(default_factory=Shared)
    #: The one panel a partial builds; None on the full page, which builds them all.
    only: str | None = None

    def series(self) -> queries.Series:
        # The traffic and response-time charts share one query on the full page; a
        # partial of one of them reads only what its chart shows.
        parts = _SERIES_PARTS.get(self.only, queries.SERIES_PARTS)
        return t.cast(queries.Series, self.shared.get(
            "series",
            lambda: figures.timeseries(self.conn, self.store, self.table, self.filters, parts),
        ))

    def kpis(self) -> queries.Kpis:
        """The KPIs of the view's filters, read once per request."""
        return t.cast(queries.Kpis, self.shared.get(
            "kpis", lambda: figures.kpis(self.conn, self.store, self.table, self.filters)
        ))

    @property
    def approximate(self) -> bool:
        """Whether percentiles and visitors come from rollup sketches."""
        source = self.shared.get("source", lambda: figures.source(self.conn, self.store, self.filters))
        return bool(source == "rollups")

    @property
    def routes(self) -> bool:
        """Whether the table records routes (the column exists in the database)."""
        if "route" not in self.table.c:
            return False
        present = present_columns(self.conn.engine, self.table)
        return present is None or "route" in present

    @property
    def visitors_hint(self) -> str:
        if "is_bot" in self.table.c:
            return "distinct client addresses, bots left out"
        return "distinct client addresses"


@dataclass(frozen=True)
class Panel:
    """What one panel shows, in two steps: ``fetch`` reads its figures on the view's
    connection (no request context needed, so it can run on another thread) and
    ``present`` turns them into template context (links, charts), touching no
    connection."""

    fetch: t.Callable[[View], t.Any]
    present: t.Callable[[View, t.Any], dict[str, t.Any]]

    def build(self, view: View) -> dict[str, t.Any]:
        return self.present(view, self.fetch(view))


# ---------------------------------------------------------------------------------
# KPI cards


@dataclass(frozen=True)
class Card:
    key: str
    label: str
    value: str
    change: Change
    hint: str = ""


def _short_day(day: date) -> str:
    return f"{day.day} {day:%b}"


def _period_name(filters: Filters, whole_days: bool) -> str:
    """How long the window is, for "no data in the previous …"."""
    if not whole_days:
        hours = round((filters.until - filters.since).total_seconds() / 3600)
        return f"{hours} hours"
    return "day" if filters.days == 1 else f"{filters.days} days"


def _period_dates(filters: Filters, tz: tzinfo, whole_days: bool) -> str:
    """The window's dates as a reader says them: "Sat 9 Mar 2024",
    "26 Feb – 3 Mar 2024", or local hours for the rolling range."""
    if not whole_days:
        def moment(at: datetime) -> str:
            local = to_local(at, tz)
            return f"{_short_day(local.date())} {local:%H:%M}"

        return f"{moment(filters.since)} – {moment(filters.until)}"
    first, last = filters.start_day, filters.end_day
    if first == last:
        return f"{first:%a} {_short_day(first)} {first.year}"
    if first.year == last.year:
        return f"{_short_day(first)} – {_short_day(last)} {last.year}"
    return f"{_short_day(first)} {first.year} – {_short_day(last)} {last.year}"


@dataclass(frozen=True)
class KpiFigures:
    current: queries.Kpis
    before: queries.Kpis
    approximate: bool


def fetch_kpis(view: View) -> KpiFigures:
    before = figures.kpis(view.conn, view.store, view.table, view.filters.previous())
    return KpiFigures(view.kpis(), before, view.approximate)


def present_kpis(view: View, fetched: KpiFigures) -> dict[str, t.Any]:
    current, before = fetched.current, fetched.before
    earlier = view.filters.previous()
    about = "≈ " if fetched.approximate else ""
    within = " (within 1 %)" if fetched.approximate else ""
    # In words of the window shown: the hours before the rolling range are hours,
    # also when they happen to make one local day.
    whole_days = view.filters.whole_days
    period = _period_name(earlier, whole_days)
    dates = _period_dates(earlier, view.tz, whole_days)
    # Without a single request to compare with, every card says so in words rather
    # than "new" or a dash, which read as a fault.
    nothing_before = before.hits == 0
    when = "the day before" if period == "day" else f"in the previous {period}"
    no_data = Change(
        f"no data {when}", "none", "neutral", f"no requests {when} ({dates}) to compare with"
    )

    def rate_change(now: float | None, then: float | None) -> Change:
        return change(now, then, higher_is="bad", points=True)

    cards = [
        Card("hits", "Hits", number(current.hits), change(current.hits, before.hits)),
        Card("visitors", "Unique visitors", about + number(current.visitors),
             change(current.visitors, before.visitors), view.visitors_hint),
        Card("avg", "Average time", duration(current.avg),
             change(current.avg, before.avg, higher_is="bad")),
        Card("p50", "p50 time", about + duration(current.p50),
             change(current.p50, before.p50, higher_is="bad"), "median response time" + within),
        Card("p95", "p95 time", about + duration(current.p95),
             change(current.p95, before.p95, higher_is="bad"), within.strip()),
        Card("p99", "p99 time", about + duration(current.p99),
             change(current.p99, before.p99, higher_is="bad"), within.strip()),
        Card("rate_4xx", "4xx rate", percent(current.rate_4xx),
             rate_change(current.rate_4xx, before.rate_4xx), "client errors"),
        Card("rate_5xx", "5xx rate", percent(current.rate_5xx),
             rate_change(current.rate_5xx, before.rate_5xx), "server errors"),
        Card("bytes_sent", "Bytes sent", filesize(current.bytes_sent),
             change(current.bytes_sent, before.bytes_sent), f"{number(current.bytes_sent)} bytes"),
    ]
    if nothing_before:
        cards = [
            Card(card.key, card.label, card.value, no_data, card.hint) for card in cards
        ]
    return {
        "kpi_cards": cards,
        "previous_filters": earlier,
        "comparison": f"Change against {dates}",
        "nothing_before": nothing_before,
    }


# ---------------------------------------------------------------------------------
# Charts


def fetch_series(view: View) -> queries.Series:
    return view.series()


def present_traffic(view: View, series: queries.Series) -> dict[str, t.Any]:
    now = charts.utcnow()  # one instant for the chart and its caption
    return {
        "traffic_chart": charts.traffic_chart(series, view.tz, view.zone_name, now),
        "traffic_width": series.width,
        "traffic_total": sum(p.hits for p in series.points),
        "traffic_partial": charts.partial_buckets(series, view.tz, now),
    }


def present_response_times(view: View, series: queries.Series) -> dict[str, t.Any]:
    now = charts.utcnow()
    return {
        "response_chart": charts.response_time_chart(series, view.tz, view.zone_name, now),
        "response_width": series.width,
        "response_partial": charts.partial_buckets(series, view.tz, now),
    }


@dataclass(frozen=True)
class Ranked:
    """One row of a top list: what to show, how often, and where a click goes."""

    text: str
    full: str  # more of the value, for the title attribute (cut to ATTRIBUTE_LIMIT)
    hits: int
    drill: str | None = None
    external: str | None = None


def fetch_status(view: View) -> list[tuple[str, int]]:
    return figures.status_classes(view.conn, view.store, view.table, view.filters)


def present_status(view: View, classes: list[tuple[str, int]]) -> dict[str, t.Any]:
    total = sum(hits for _, hits in classes)
    items = [
        Ranked(name, name, hits, view.links.drill(status=name)) for name, hits in classes
    ]
    chart = charts.status_chart(classes, lambda name: view.links.drill(status=name))
    return {"status_chart": chart, "status_items": items, "status_total": total}


@dataclass(frozen=True)
class TopBlock:
    key: str
    title: str
    chart: t.Any
    items: list[Ranked]
    #: What the list groups by and where a click leads, when it groups.
    note: str | None = None


_TOPS = (
    ("path", "Top paths"),
    ("browser", "Top browsers"),
    ("platform", "Top platforms"),
    ("referrer", "Top referrers"),
    ("method", "Methods"),
)
_GROUPED_NOTES = {
    "browser": "By family; click one for its versions.",
    "referrer": "By host; click one for its full addresses.",
}


def fetch_top(view: View) -> list[list[tuple[t.Any, int]]]:
    """Each top list of ``_TOPS``, in order."""
    columns = [column for column, _ in _TOPS]
    return figures.top_lists(
        view.conn, view.store, view.table, view.filters, columns, TOP_LIMIT,
        grouped=[c for c in columns if grouping.key_for(c, view.filters) is not None],
    )


def present_top(view: View, lists: list[list[tuple[t.Any, int]]]) -> dict[str, t.Any]:
    blocks = []
    for (column, title), values in zip(_TOPS, lists):
        grouped = grouping.key_for(column, view.filters) is not None
        other = _OtherLabel(f"(other {column}s)")
        values = [(other if v is OTHER else v, hits) for v, hits in values]
        # A referrer host (or a referrer without one) narrows the dashboard; the full
        # addresses listed once it does are links out instead.
        urls = column == "referrer" and not grouped

        def link(value: t.Any, column: str = column, urls: bool = urls) -> str | None:
            if urls or value is None or isinstance(value, _OtherLabel):
                return None
            return view.links.drill(**{column: value})

        empty = "(direct)" if column == "referrer" else "(unknown)"
        items = [
            Ranked(
                charts.label(value, empty),
                attribute(value) if value is not None else empty,
                hits,
                link(value),
                external_url(value) if urls else None,
            )
            for value, hits in values
        ]
        chart = charts.top_chart(title, values, link, empty=empty) if values else None
        note = _GROUPED_NOTES.get(column) if grouped and values else None
        blocks.append(TopBlock(column, title, chart, items, note))
    return {"top_blocks": blocks}


# ---------------------------------------------------------------------------------
# Tables


def fetch_paths(view: View) -> dict[str, t.Any]:
    # Routes first where the table has them; a route's drill-down lists its paths.
    by = "route" if view.routes and view.filters.route is None and view.filters.path is None else "path"
    rows = figures.top_paths(view.conn, view.store, view.table, view.filters, TOP_PATHS_LIMIT, by)
    return {"path_rows": rows, "approximate": view.approximate, "paths_by": by}


def present_paths(view: View, fetched: dict[str, t.Any]) -> dict[str, t.Any]:
    return fetched


def fetch_requests(view: View) -> dict[str, t.Any]:
    page = queries.request_page(view.conn, view.table, view.filters, view.page_size)
    pruned = figures.pruned_before(view.conn, view.store, view.table, view.filters)
    total: int | None
    if page.page == 1 and not page.has_next:
        total = len(page.rows)  # the whole log is on this page
    elif pruned is not None:
        total = None  # the hits count rows the log no longer has
    else:
        # The hits KPI counts exactly the rows the log lists (same filters); the
        # count alone, without the KPIs' sketches.
        total = figures.hits(view.conn, view.store, view.table, view.filters)
    return {"log": page, "pruned_before": pruned, "log_total": total}


def present_requests(view: View, fetched: dict[str, t.Any]) -> dict[str, t.Any]:
    page, total = fetched["log"], fetched["log_total"]
    last = max(1, -(-total // view.page_size)) if total is not None else None
    first_row = (page.page - 1) * view.page_size + 1
    return {
        **fetched,
        "log_last_page": last,
        "log_first_row": first_row,
        "log_last_row": first_row + len(page.rows) - 1,
    }


PANELS = {
    "kpis": Panel(fetch_kpis, present_kpis),
    "traffic": Panel(fetch_series, present_traffic),
    "response_times": Panel(fetch_series, present_response_times),
    "status": Panel(fetch_status, present_status),
    "top": Panel(fetch_top, present_top),
    "paths": Panel(fetch_paths, present_paths),
    "requests": Panel(fetch_requests, present_requests),
}


class Formatter:
    """The formatting helpers templates use, with the dashboard's time zone bound."""

    external_rel = EXTERNAL_REL

    def __init__(self, tz: tzinfo) -> None:
        self.tz = tz

    number = staticmethod(number)
    duration = staticmethod(duration)
    filesize = staticmethod(filesize)
    percent = staticmethod(percent)
    clean = staticmethod(clean)
    shorten = staticmethod(shorten)
    attribute = staticmethod(attribute)
    external_url = staticmethod(external_url)

    path_breaks = staticmethod(path_breaks)

    def time(self, moment: t.Any, seconds: bool = True, label: bool = True) -> str:
        return timestamp(moment, self.tz, seconds=seconds, label=label)

    def iso(self, moment: t.Any) -> str:
        """Machine-readable UTC for ``<time datetime>``."""
        if moment is None:
            return ""
        return moment.isoformat(timespec="seconds") + "Z" if moment.tzinfo is None else moment.isoformat()

    def status_class(self, code: t.Any) -> str:
        if isinstance(code, int) and 100 <= code <= 599:
            return f"s{code // 100}xx"
        return "sunknown"
