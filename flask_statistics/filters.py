"""The validated dashboard filters: a date window (whole local days, or the rolling
last 24 hours) plus optional narrowing by path, status, method and client, and the
request log's sort and page."""

from __future__ import annotations

import dataclasses
import typing as t
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

from .buckets import first_instant, to_local

SORTS = ("date", "response_time", "size", "status_code")
PATH_MATCHES = ("exact", "prefix")
#: The bots filter: keep every row (the default), leave rows marked as bots out, or
#: keep only them. Visitor counts leave bots out whatever the filter.
BOTS = ("include", "exclude", "only")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
#: Text columns that narrow the rows, in query-string order: by exact match, except
#: that a browser family or a referrer host selects its whole group (see grouping).
TEXT_FILTERS = ("method", "browser", "platform", "remote_address", "user_agent", "referrer")

#: The range presets, in the order the dashboard shows them, with their labels.
PRESETS = {
    "today": "Today",
    "yesterday": "Yesterday",
    "24h": "24 hours",
    "7d": "7 days",
    "30d": "30 days",
    "90d": "90 days",
    "365d": "365 days",
    "all": "All",
}
#: Presets of whole local days ending today: how many days they hold.
PRESET_DAYS = {"today": 1, "7d": 7, "30d": 30, "90d": 90, "365d": 365}
#: The rolling preset: this many hours, the last of them the current local hour.
ROLLING = "24h"
ROLLING_HOURS = 24

_HOUR = timedelta(hours=1)

# Query-string values that are the defaults and so are left out of links.
_DEFAULT_ARGS = {"path_match": "exact", "sort": "date", "order": "desc", "page": "1"}
_ARG_NAMES = (
    "range", "start", "end", "path", "path_match", "route", "status", *TEXT_FILTERS, "bots", "sort",
    "order", "page",
)


def zone(name: str) -> tzinfo:
    """The ``tzinfo`` for an IANA name; "UTC" works even without tz data installed."""
    if isinstance(name, str) and name.upper() == "UTC":
        return timezone.utc
    return ZoneInfo(name)


def local_midnight_utc(day: date, tz: tzinfo) -> datetime:
    """The naive UTC instant at which ``day`` begins in ``tz``: its first instant,
    also where the clocks skip midnight itself (e.g. America/Santiago in September)."""
    return first_instant(datetime.combine(day, time()), tz)


def hour_start(now: datetime, tz: tzinfo) -> datetime:
    """The naive UTC instant at which the local hour holding ``now`` (naive UTC)
    began: the second occurrence of a repeated hour when ``now`` is in it, and the
    jump where the clocks skipped part of the hour (e.g. Lord Howe's half hour)."""
    wall = to_local(now, tz).replace(minute=0, second=0, microsecond=0, tzinfo=None)
    found = first_instant(wall, tz)
    again = wall.replace(tzinfo=tz, fold=1).astimezone(timezone.utc).replace(tzinfo=None)
    if found < again <= now and to_local(again, tz).replace(tzinfo=None) == wall:
        found = again
    return found


def _days_of(since: datetime, until: datetime, tz: tzinfo) -> tuple[date, date]:
    # The first and last local day that the window [since, until) touches.
    first = to_local(since, tz).date()
    last = to_local(max(since, until - timedelta(microseconds=1)), tz).date()
    return first, last


@dataclass(frozen=True)
class Filters:
    """What the dashboard shows: rows with ``since <= date < until`` narrowed by the
    optional filters, and which page of the request log, sorted how.

    ``since`` and ``until`` are naive UTC. They bound whole days in ``tz``
    (``start_day`` and ``end_day`` both included), except for the rolling ``24h``
    range, whose bounds are local hour starts; its ``start_day`` and ``end_day`` are
    then the days it touches, for display.
    """

    start_day: date
    end_day: date
    since: datetime
    until: datetime
    path: str | None = None
    path_match: str = "exact"
    #: The matched URL rule, e.g. "/products/<int:id>" (tables with a route column).
    route: str | None = None
    status: int | None = None
    status_class: int | None = None
    method: str | None = None
    #: A family ("Firefox": every version) or one version ("Firefox 133.0").
    browser: str | None = None
    platform: str | None = None
    remote_address: str | None = None
    user_agent: str | None = None
    #: A referrer host ("www.google.com": every URL of it) or one whole referrer.
    referrer: str | None = None
    #: "exclude" or "only" the rows marked as bots (tables with an is_bot column).
    bots: str | None = None
    sort: str = "date"
    descending: bool = True
    page: int = 1
    tz: str = "UTC"
    #: Whether the dates came from the query string; defaults stay out of links so a
    #: bookmark keeps meaning "the last N days".
    start_explicit: bool = False
    end_explicit: bool = False
    #: The range preset this window is (see :data:`PRESETS`), None for chosen dates.
    range: str | None = None
    #: Whether the preset came from the query string (the default range does not).
    range_explicit: bool = False

    @classmethod
    def between(
        cls, start_day: date, end_day: date, *, tz: str = "UTC", **fields: t.Any
    ) -> Filters:
        """Filters for the whole days ``start_day`` to ``end_day`` (inclusive) in ``tz``."""
        info = zone(tz)
        fields.setdefault("start_explicit", True)
        fields.setdefault("end_explicit", True)
        return cls(
            start_day=start_day,
            end_day=end_day,
            since=local_midnight_utc(start_day, info),
            until=local_midnight_utc(end_day + timedelta(days=1), info),
            tz=tz,
            **fields,
        )

    @classmethod
    def last_hours(
        cls, now: datetime, hours: int = ROLLING_HOURS, *, tz: str = "UTC", **fields: t.Any
    ) -> Filters:
        """Filters for the ``hours`` local hours up to the one holding ``now`` (naive
        UTC), that one included: a window that ends with the current hour."""
        info = zone(tz)
        current = hour_start(now, info)
        since, until = current - (hours - 1) * _HOUR, current + _HOUR
        start_day, end_day = _days_of(since, until, info)
        fields.setdefault("start_explicit", False)
        fields.setdefault("end_explicit", False)
        return cls(start_day=start_day, end_day=end_day, since=since, until=until, tz=tz, **fields)

    @property
    def days(self) -> int:
        """The number of local days the window touches (whole days but for ``24h``)."""
        return (self.end_day - self.start_day).days + 1

    @property
    def whole_days(self) -> bool:
        """Whether the window is made of whole local days (all but the rolling range,
        also in the hour when its 24 hours are one local day)."""
        if self.range == ROLLING:
            return False
        info = zone(self.tz)
        return (
            self.since == local_midnight_utc(self.start_day, info)
            and self.until == local_midnight_utc(self.end_day + timedelta(days=1), info)
        )

    @property
    def is_filtered(self) -> bool:
        """True when anything beyond the date window narrows the rows."""
        return any(
            value is not None
            for value in (
                self.path, self.route, self.status, self.status_class, self.bots,
                *(getattr(self, name) for name in TEXT_FILTERS),
            )
        )

    @property
    def status_arg(self) -> str | None:
        """The status filter as typed in the form: "404", "4xx" or None."""
        if self.status is not None:
            return str(self.status)
        if self.status_class is not None:
            return f"{self.status_class}xx"
        return None

    def previous(self) -> Filters:
        """The same filters over the period of equal length just before this one: the
        same number of local days before a window of whole days ("today" compares
        with yesterday, the last 7 days with the 7 before), the same number of hours
        before the rolling range."""
        info = zone(self.tz)
        if self.whole_days:
            end_day = self.start_day - timedelta(days=1)
            start_day = end_day - timedelta(days=self.days - 1)
            since = local_midnight_utc(start_day, info)
            until = local_midnight_utc(end_day + timedelta(days=1), info)
        else:
            length = self.until - self.since
            since, until = self.since - length, self.since
            start_day, end_day = _days_of(since, until, info)
        return dataclasses.replace(
            self,
            start_day=start_day,
            end_day=end_day,
            since=since,
            until=until,
            page=1,
            start_explicit=True,
            end_explicit=True,
            range=None,
            range_explicit=False,
        )

    def query_args(self, **changes: t.Any) -> dict[str, str]:
        """The query string for these filters with ``changes`` applied, leaving out
        empty and default values; a change to None removes that argument.

        Keys are the form's field names: range, start, end, path, path_match, route,
        status, method, browser, platform, remote_address, user_agent, referrer, bots,
        sort, order, page. A preset stands for its dates, so a link keeps meaning "the
        last 7 days": changing ``range`` drops the dates, changing a date drops the preset.
        """
        preset = self.range is not None
        args: dict[str, t.Any] = {
            "range": self.range if preset and self.range_explicit else None,
            "start": self.start_day if self.start_explicit and not preset else None,
            "end": self.end_day if self.end_explicit and not preset else None,
            "path": self.path,
            "path_match": self.path_match,
            "route": self.route,
            "status": self.status_arg,
            **{name: getattr(self, name) for name in TEXT_FILTERS},
            "bots": self.bots,
            "sort": self.sort,
            "order": "desc" if self.descending else "asc",
            "page": self.page,
        }
        unknown = set(changes) - set(_ARG_NAMES)
        if unknown:
            raise TypeError(
                f"unknown filter argument(s) {sorted(unknown)}; use {', '.join(_ARG_NAMES)}"
            )
        if changes.get("range"):
            args["start"] = args["end"] = None
        elif changes.get("start") or changes.get("end"):
            args["range"] = None
        args.update(changes)
        if args["path"] is None or args["path"] == "":
            args["path_match"] = None
        result: dict[str, str] = {}
        for name in _ARG_NAMES:
            value = args[name]
            if value is None:
                continue
            text = value.isoformat() if isinstance(value, date) else str(value)
            if text != "" and _DEFAULT_ARGS.get(name) != text:
                result[name] = text
        return result
