"""Realistic synthetic traffic for the demo and the benchmarks.

Rows are built as the writer would store them (browser and platform parsed from the
user agent), with a daily rhythm, a lognormal response-time spread, a few slow
endpoints, some errors and some bots. :func:`live_request` draws one request of the
same mix for the demo to send itself.
"""

from __future__ import annotations

import math
import random
import typing as t
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from flask_statistics.useragent import parse

USER_AGENTS = [
    (30, "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"),
    (14, "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15"),
    (12, "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0"),
    (12, "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1"),
    (10, "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36"),
    (6, "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"),
    (5, "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0"),
    (4, "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"),
    (2, "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)"),
    (3, "curl/8.5.0"),
    (2, "python-requests/2.32.3"),
]

# (weight, method, path, median seconds, mimetype)
ENDPOINTS = [
    (30, "GET", "/", 0.012, "text/html"),
    (12, "GET", "/products", 0.035, "text/html"),
    (18, "GET", "/products/{n}", 0.028, "text/html"),
    (10, "GET", "/api/items", 0.018, "application/json"),
    (4, "POST", "/api/items", 0.045, "application/json"),
    (2, "PUT", "/api/items/{n}", 0.05, "application/json"),
    (1, "DELETE", "/api/items/{n}", 0.03, "application/json"),
    (6, "GET", "/search", 0.12, "text/html"),
    (3, "GET", "/reports/monthly", 0.6, "text/html"),
    (4, "POST", "/login", 0.09, "text/html"),
    (5, "GET", "/static/app.css", 0.002, "text/css"),
    (3, "GET", "/about", 0.01, "text/html"),
]

REFERRERS = [
    (60, None),
    (15, "https://www.google.com/"),
    (8, "https://duckduckgo.com/"),
    (6, "https://intranet.example.org/links"),
    (4, "https://news.ycombinator.com/"),
    (3, "https://www.bing.com/"),
]


SCANNER_PATHS = ["/.env", "/wp-login.php", "/admin/config.php", "/.git/config"]
CLIENTS = [f"192.0.2.{i}" for i in range(1, 255)] + [f"198.51.100.{i}" for i in range(1, 200)]


def _weighted(rng: random.Random, items: list[tuple[int, t.Any]]) -> t.Any:
    weights = [w for w, *_ in items]
    choice = rng.choices(items, weights)[0]
    return choice[1] if len(choice) == 2 else choice[1:]


def generate(
    days: float = 7, per_day: int = 2000, *, end: datetime | None = None, seed: int = 7
) -> t.Iterator[dict[str, t.Any]]:
    """Yield rows (keyed by column name) for ``days`` days up to ``end`` (naive UTC),
    oldest first, as a live table receives them."""
    rng = random.Random(seed)
    end = end or datetime.now(timezone.utc).replace(tzinfo=None)
    start = end - timedelta(days=days)
    total = int(days * per_day)
    clients = CLIENTS
    span = (end - start).total_seconds()
    # The moments first, as offsets in seconds (small to hold for 10M rows), sorted.
    offsets: list[float] = []
    while len(offsets) < total:
        # A daily rhythm: busier in the (UTC) afternoon.
        offset = rng.random() * span
        when = start + timedelta(seconds=offset)
        hour = when.hour + when.minute / 60
        if rng.random() < 0.35 + 0.65 * math.sin(math.pi * max(0.0, hour - 5) / 19) ** 2:
            offsets.append(offset)
    offsets.sort()
    for offset in offsets:
        when = start + timedelta(seconds=offset)
        method, route, median, mimetype = _weighted(rng, ENDPOINTS)
        path = route.replace("{n}", str(rng.randint(1, 120)))
        user_agent = _weighted(rng, USER_AGENTS)
        status = 200
        exception = None
        roll = rng.random()
        if method == "POST" and path == "/login" and roll < 0.2:
            status = 401
        elif roll < 0.03:
            status = 404
            if roll < 0.01:  # a scanner probing for files that are not there
                path = rng.choice(SCANNER_PATHS)
                route = None
        elif roll < 0.036:
            status = 500
            exception = rng.choice(
                ["ZeroDivisionError('division by zero')", "KeyError('user_id')", "TimeoutError()"]
            )
        elif method == "POST" and roll < 0.5:
            status = 201 if path.startswith("/api") else 302
        elif roll < 0.08:
            status = 304
        response_time = rng.lognormvariate(math.log(median), 0.6)
        size = 0 if status == 304 else int(rng.lognormvariate(math.log(9000), 0.9))
        client = parse(user_agent)
        yield {
            "response_time": round(response_time, 6),
            "date": when,
            "method": method,
            "size": size,
            "status_code": status,
            "path": path,
            "user_agent": user_agent,
            "remote_address": rng.choice(clients),
            "exception": exception,
            "referrer": _weighted(rng, REFERRERS),
            "browser": client.browser,
            "platform": client.platform,
            "mimetype": mimetype,
            "is_bot": client.is_bot,
            "route": None if route is None else route.replace("{n}", "<int:id>"),
        }


@dataclass(frozen=True)
class LiveRequest:
    """One request to send to the demo app (examples/demo.py has these routes)."""

    method: str
    path: str
    remote_address: str
    headers: dict[str, str] = field(default_factory=dict)
    data: dict[str, str] | None = None


def live_request(rng: random.Random) -> LiveRequest:
    """A request of the synthetic mix: the same paths, clients, user agents and
    referrers as :func:`generate`; failed logins, missing items, scanners and
    server errors come from the demo app's own answers."""
    method, route, _median, _mimetype = _weighted(rng, ENDPOINTS)
    if route.startswith("/static/"):
        method, route = "GET", "/"  # the demo serves no static files of its own
    path = route.replace("{n}", str(rng.randint(1, 110)))  # above 100: 404
    data = None
    roll = rng.random()
    if roll < 0.01:
        method, path = "GET", rng.choice(SCANNER_PATHS)
    elif roll < 0.04:
        method, path = "POST", "/checkout"  # fails now and then: a 503
    elif path == "/search":
        path += f"?q={rng.choice(['shoes', 'socks', 'hat', 'gift ideas'])}"
    elif path == "/login":
        data = {"user": "demo", "password": "demo" if rng.random() < 0.8 else "wrong"}
    headers = {"User-Agent": _weighted(rng, USER_AGENTS)}
    referrer = _weighted(rng, REFERRERS)
    if referrer is not None:
        headers["Referer"] = referrer
    return LiveRequest(method, path, rng.choice(CLIENTS), headers, data)


def insert(conn: sa.Connection, table: sa.Table, rows: t.Iterable[dict[str, t.Any]], batch: int = 5000) -> int:
    """Insert generated rows into ``table`` (skipping columns it lacks); returns the count."""
    names = set(table.c.keys())
    chunk: list[dict[str, t.Any]] = []
    count = 0
    for row in rows:
        chunk.append({k: v for k, v in row.items() if k in names})
        if len(chunk) >= batch:
            conn.execute(table.insert(), chunk)
            count += len(chunk)
            chunk = []
    if chunk:
        conn.execute(table.insert(), chunk)
        count += len(chunk)
    return count
