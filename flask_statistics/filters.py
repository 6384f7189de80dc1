"""The validated dashboard filters: a date window in whole local days plus optional
narrowing by path, status, method and client, and the request log's sort and page."""

from __future__ import annotations

import dataclasses
import typing as t
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

from .buckets import first_instant

SORTS = ("date", "response_time", "size", "status_code")
PATH_MATCHES = ("exact", "prefix")
#: The bots filter: keep every row (the default), leave rows marked as bots out, or
#: keep only them. Visitor counts leave bots out whatever the filter.
BOTS = ("include", "exclude", "only")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
#: Text columns that narrow the rows, in query-string order: by exact match, except
#: that a browser family or a referrer host selects its whole group (see grouping).
TEXT_FILTERS = ("method", "browser", "platform", "remote_address", "user_agent", "referrer")

# Query-string values that are the defaults and so are left out of links.
_DEFAULT_ARGS = {"path_match": "exact", "sort": "date", "order": "desc", "page": "1"}
_ARG_NAMES = (
    "start", "end", "path", "path_match", "route", "status", *TEXT_FILTERS, "bots", "sort",
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


@dataclass(frozen=True)
class Filters:
    """What the dashboard shows: rows with ``since <= date < until`` narrowed by the
    optional filters, and which page of the request log, sorted how.

    ``since`` and ``until`` are naive UTC and bound whole days in ``tz``:
    ``start_day`` and ``end_day`` are both included.
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

    @property
    def days(self) -> int:
        """The number of whole days in the window."""
        return (self.end_day - self.start_day).days + 1

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
        """The same filters over the period of equal length just before this one."""
        end_day = self.start_day - timedelta(days=1)
        start_day = end_day - timedelta(days=self.days - 1)
        info = zone(self.tz)
        return dataclasses.replace(
            self,
            start_day=start_day,
            end_day=end_day,
            since=local_midnight_utc(start_day, info),
            until=local_midnight_utc(end_day + timedelta(days=1), info),
            page=1,
            start_explicit=True,
            end_explicit=True,
        )

    def query_args(self, **changes: t.Any) -> dict[str, str]:
        """The query string for these filters with ``changes`` applied, leaving out
        empty and default values; a change to None removes that argument.

        Keys are the form's field names: start, end, path, path_match, route, status, method,
        browser, platform, remote_address, user_agent, referrer, bots, sort, order, page.
        """
        args: dict[str, t.Any] = {
            "start": self.start_day if self.start_explicit else None,
            "end": self.end_day if self.end_explicit else None,
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
