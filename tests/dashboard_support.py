"""Helpers the dashboard tests share: deterministic rows inserted straight into the
statistics table, the dashboard's URLs, and an HTML parser that collects what the
security tests look for."""

from __future__ import annotations

import typing as t
from datetime import datetime, timedelta
from html.parser import HTMLParser

import sqlalchemy as sa
from flask import Flask

from flask_statistics.filters import zone
from flask_statistics.rollups.compact import close_periods
from flask_statistics.rollups.rebuild import days_with_rows, rebuild_day, today_start
from flask_statistics.rollups.store import Store

#: The window most tests look at, as query arguments, and a moment inside it.
WINDOW = {"start": "2024-05-01", "end": "2024-05-03"}
QS = "start=2024-05-01&end=2024-05-03"
NOON = datetime(2024, 5, 2, 12, 0, 0)
HTMX = {"HX-Request": "true", "HX-Request-Type": "partial"}
HISTORY_RESTORE = {"HX-Request": "true", "HX-Request-Type": "full"}

PARTIAL_ENDPOINTS = ("kpis", "traffic", "response_times", "status", "top", "paths", "requests")

HOSTILE_PATH = "/<script>alert('p')</script>\"'&]]>\x1b[31m"
HOSTILE_UA = "<img src=x onerror=alert('ua')>\" onmouseover=\"alert(1)"
HOSTILE_BROWSER = "<svg onload=alert('b')>"
HOSTILE_PLATFORM = "]]><script>alert('pl')</script>"
HOSTILE_EXCEPTION = "ZeroDivisionError('</pre><script>alert(\"e\")</script>')"


def row(**values: t.Any) -> dict[str, t.Any]:
    """A complete row; ``values`` override the defaults."""
    base: dict[str, t.Any] = {
        "response_time": 0.05,
        "date": NOON,
        "method": "GET",
        "size": 1000,
        "status_code": 200,
        "path": "/",
        "user_agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/125.0",
        "remote_address": "203.0.113.1",
        "exception": None,
        "referrer": None,
        "browser": "Firefox 125.0",
        "platform": "Linux",
        "mimetype": "text/html",
    }
    base.update(values)
    return base


def sample_rows() -> list[dict[str, t.Any]]:
    """Twelve requests in the window (one a minute from noon on 2 May 2024) and
    three in the three days before it, for the change against the previous period."""
    rows = []
    for i in range(12):
        rows.append(
            row(
                date=NOON + timedelta(minutes=i),
                path="/about" if i % 3 == 0 else "/shop",
                status_code=404 if i % 4 == 0 else 200,
                method="POST" if i % 2 == 0 else "GET",
                response_time=0.010 * (i + 1),
                size=1024 * (i + 1),
                browser="Chrome 124.0" if i % 2 == 0 else "Firefox 125.0",
                platform="Windows" if i % 2 == 0 else "Linux",
                remote_address=f"203.0.113.{i % 4}",
                referrer="https://example.com/from" if i == 0 else None,
            )
        )
    for day in (28, 29, 30):
        rows.append(row(date=datetime(2024, 4, day, 9, 0), path="/old"))
    return rows


def insert(app: Flask, rows: list[dict[str, t.Any]]) -> None:
    state = app.extensions["statistics"]
    columns = set(state.table.c.keys())
    rows = [{k: v for k, v in r.items() if k in columns} for r in rows]
    with app.app_context():
        engine = state.db.engines[state.table.metadata.info.get("bind_key")]
        with engine.begin() as conn:
            conn.execute(state.table.insert(), rows)


def indexes(app: Flask) -> list[int]:
    """Primary keys of every row, in insertion order."""
    state = app.extensions["statistics"]
    with app.app_context():
        engine = state.db.engines[state.table.metadata.info.get("bind_key")]
        with engine.connect() as conn:
            query = sa.select(state.table.c["index"]).order_by(state.table.c["index"])
            return [r[0] for r in conn.execute(query)]


def dashboard_urls(app: Flask, detail_index: int = 1, query: str = QS) -> dict[str, str]:
    """Every dashboard endpoint except static, by endpoint name."""
    with app.test_request_context():
        from flask import url_for

        urls = {"index": url_for("statistics.index")}
        for name in PARTIAL_ENDPOINTS:
            urls[name] = url_for(f"statistics.{name}")
        urls["detail"] = url_for("statistics.detail", index=detail_index)
    return {name: f"{url}?{query}" if query else url for name, url in urls.items()}


class Page(HTMLParser):
    """What a rendered page contains, for assertions: scripts, styles, inline
    handlers, links and their rel, text."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.scripts: list[dict[str, str | None]] = []
        self.inline_scripts: list[str] = []
        self.styles = 0
        self.style_attributes: list[str] = []
        self.handlers: list[tuple[str, str]] = []
        self.links: list[dict[str, str | None]] = []
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self._in_script = False
        self._glue = False  # after <wbr>: the text goes on without a space
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.elements.append((tag, attributes))
        if tag == "script":
            self.scripts.append(attributes)
            self._in_script = True
        if tag == "style":
            self.styles += 1
        if "style" in attributes:
            self.style_attributes.append(tag)
        for name, value in attrs:
            if name.startswith("on") or name.startswith("hx-on") or name.startswith("data-hx-on"):
                self.handlers.append((tag, name))
        if tag == "a":
            self.links.append(attributes)
        if tag == "wbr":
            self._glue = True

    handle_startendtag = handle_starttag

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_scripts.append(data)
        if self._glue and self.text:
            self.text[-1] += data
        else:
            self.text.append(data)
        self._glue = False

    @property
    def all_text(self) -> str:
        return " ".join(" ".join(self.text).split())

    def by_id(self, element_id: str) -> dict[str, str | None] | None:
        for _, attributes in self.elements:
            if attributes.get("id") == element_id:
                return attributes
        return None


class Tables:
    """The statistics table of an app and its rollups, with rows inserted straight
    into it and the rollups rebuilt from them."""

    def __init__(self, app: t.Any, db: t.Any) -> None:
        state = app.extensions["statistics"]
        self.table: sa.Table = state.table
        self.store: Store = getattr(state, "rollups", None) or Store(self.table)
        with app.app_context():
            self.engine: sa.Engine = db.engines[self.table.metadata.info.get("bind_key")]
        self.store.create(self.engine)

    def insert(self, rows: list[dict[str, t.Any]]) -> None:
        with self.engine.begin() as conn:
            conn.execute(self.table.insert(), rows)

    def rebuild(self, tz_name: str = "UTC", months: bool = True) -> None:
        """The rollups of every row, as `flask statistics rebuild` leaves them: today
        in 15-minute rows, earlier days in day rows, months and years that are over
        in month and year rows (unless ``months`` is false)."""
        tz = zone(tz_name)
        self.store.ensure_state(self.engine, tz_name, lambda m: m, open_from=today_start(tz))
        for day in days_with_rows(self.engine, self.table, tz, None, None):
            rebuild_day(self.engine, self.store, day, tz)
        with self.engine.begin() as conn:
            self.store.set_state(conn, backfill_before=None, zone=tz_name)
        if months:
            close_periods(self.engine, self.store, tz_name)

    def drop(self) -> None:
        self.store.rollup.drop(self.engine, checkfirst=True)
        self.store.state.drop(self.engine, checkfirst=True)
