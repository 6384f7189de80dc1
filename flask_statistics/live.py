"""The live view at ``/statistics/live``: requests per minute over the last 30
minutes, the current rate, status classes and the latest requests.

Every figure comes from the raw rows of the last half hour, which the date index
finds directly; the page polls ``/statistics/live/panel`` every 10 seconds through
htmx, and ``static/statistics/live.js`` pauses the polling while the tab is hidden.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from flask import Response, current_app, make_response, render_template, request
from sqlalchemy.engine import RowMapping

from . import charts
from .dialects import as_double, bucket_index, int_div, reading_connection
from .filters import zone
from .models import bind_key

if t.TYPE_CHECKING:
    from flask import Blueprint

    from .extension import StatisticsState

#: The minutes the chart and the status classes cover.
WINDOW_MINUTES = 30
#: How many of the newest requests are listed.
LATEST = 20
#: Seconds between two refreshes of the panel.
REFRESH_SECONDS = 10
STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")
_MINUTE = timedelta(minutes=1)


@dataclass(frozen=True)
class Minute:
    """Requests with ``start <= date < end``: one whole minute, the last ending now."""

    start: datetime
    end: datetime
    hits: int


@dataclass(frozen=True)
class Snapshot:
    """What the live panel shows, as of ``now`` (naive UTC)."""

    now: datetime
    minutes: list[Minute]
    #: Requests per status class in the window, every class listed.
    classes: list[tuple[str, int]]
    #: Requests in the window whose status is missing or outside 100-599.
    other_status: int
    latest: list[RowMapping]

    @property
    def total(self) -> int:
        return sum(m.hits for m in self.minutes)

    @property
    def last_minute(self) -> int:
        """Requests in the last 60 seconds: the current rate."""
        return self.minutes[-1].hits if self.minutes else 0

    @property
    def per_second(self) -> float:
        return self.last_minute / 60


def minute_starts(now: datetime, minutes: int = WINDOW_MINUTES) -> list[datetime]:
    """The starts of ``minutes`` rolling one-minute windows, the last ending at ``now``."""
    since = now - minutes * _MINUTE
    return [since + k * _MINUTE for k in range(minutes)]


def snapshot(conn: sa.Connection, table: sa.Table, now: datetime | None = None) -> Snapshot:
    """The live figures for the ``WINDOW_MINUTES`` minutes before ``now``.

    One grouped query counts the requests per minute and status class; a second
    reads the ``LATEST`` newest rows.
    """
    if now is None:
        now = datetime.now(timezone.utc).replace(tzinfo=None)
    d = conn.dialect
    c = table.c
    starts = minute_starts(now)
    status = c.status_code
    known = sa.and_(status >= 100, status < 600)
    base = (
        sa.select(
            bucket_index(d, c.date, starts, now).label("minute"),
            sa.case((known, int_div(d, status, 100)), else_=0).label("cls"),
        )
        .where(c.date >= starts[0], c.date < now)
        .subquery("recent")
    )
    query = sa.select(base.c.minute, base.c.cls, sa.func.count().label("hits")).group_by(
        base.c.minute, base.c.cls
    )
    per_minute = [0] * len(starts)
    per_class = dict.fromkeys(range(1, 6), 0)
    other = 0
    for row in conn.execute(query):
        hits = int(row.hits)
        per_minute[int(row.minute)] += hits
        cls = int(row.cls)
        if cls in per_class:
            per_class[cls] += hits
        else:
            other += hits
    ends = [*starts[1:], now]
    minutes = [Minute(s, e, h) for s, e, h in zip(starts, ends, per_minute)]
    classes = [(name, per_class[k]) for k, name in enumerate(STATUS_CLASSES, start=1)]
    return Snapshot(now, minutes, classes, other, latest(conn, table))


def latest(conn: sa.Connection, table: sa.Table, limit: int = LATEST) -> list[RowMapping]:
    """The ``limit`` newest requests: index, date, method, path, status, time."""
    c = table.c
    query = (
        sa.select(
            c["index"], c.date, c.method, c.path, c.status_code,
            as_double(conn.dialect, c.response_time).label("response_time"),
        )
        .order_by(c.date.desc(), c["index"].desc())
        .limit(limit)
    )
    return list(conn.execute(query).mappings())


# ---------------------------------------------------------------------------------
# The views


def register(blueprint: Blueprint, state_of_app: t.Callable[[], StatisticsState]) -> None:
    """Add ``/live`` (the page) and ``/live/panel`` (the fragment htmx polls)."""

    def live() -> Response:
        return _render(state_of_app(), fragment=False)

    def live_panel() -> Response:
        # htmx's history restore asks for the whole page (HX-Request-Type: full), and
        # without htmx this URL is a page of its own.
        wants_fragment = (
            request.headers.get("HX-Request") == "true"
            and request.headers.get("HX-Request-Type", "partial") != "full"
        )
        return _render(state_of_app(), fragment=wants_fragment)

    blueprint.add_url_rule("/live", "live", live)
    blueprint.add_url_rule("/live/panel", "live_panel", live_panel)


def _render(state: StatisticsState, *, fragment: bool) -> Response:
    tz_name = str(current_app.config["STATISTICS_TIMEZONE"])
    tz = zone(tz_name)
    engine = state.db.engines[bind_key(state.table)]
    with reading_connection(engine) as conn:
        snap = snapshot(conn, state.table)
    context = {
        "live": snap,
        "live_chart": charts.live_chart(
            [(m.start, m.end, m.hits) for m in snap.minutes], tz, tz_name
        ),
        "refresh_seconds": REFRESH_SECONDS,
        "window_minutes": WINDOW_MINUTES,
    }
    template = "statistics/partials/live_panel.html" if fragment else "statistics/live.html"
    return make_response(render_template(template, **context), 200)
