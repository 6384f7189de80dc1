"""Support for the browser tests: the demo app seeded with a week of traffic (and some
hostile values), served from a thread, and a watcher that records everything a
strict-CSP page must never do: policy violations, console errors, page errors,
requests to other hosts and alert dialogs.
"""

from __future__ import annotations

import importlib
import sys
import threading
import typing as t
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import sqlalchemy as sa
from flask import Flask
from werkzeug.serving import make_server

from flask_statistics.config import DEFAULTS

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"

#: Flask-Talisman's default policy, as a host app would send it on every response.
TALISMAN_CSP = "default-src 'self'; object-src 'none'"
#: The policy the browser must see in each configuration.
POLICIES = {"talisman": TALISMAN_CSP, "strict": DEFAULTS["STATISTICS_CSP"]}
PAGE_SIZE = DEFAULTS["STATISTICS_PAGE_SIZE"]
TIMEOUT_MS = 10_000

# The dashboard is idle when no panel is loading and no htmx request is in flight.
SETTLED = """() => !document.querySelector(
  '#dashboard .is-loading, #dashboard [aria-busy="true"], .htmx-request, .htmx-swapping, .htmx-settling')"""

# Recorded values are attacker-controlled; these must show up as text, never run.
HOSTILE_PATH = "/<script>alert(1)</script>"
HOSTILE_USER_AGENT = "Evil \"agent\" 'x' ]]> <svg onload=alert(1)>"
HOSTILE_BROWSER = 'Evil "Browser" ]]> <b>1</b>'
HOSTILE_REFERRER = "javascript:alert(1)"
HOSTILE_EXCEPTION = "ValueError('<img src=x onerror=alert(1)>')"
HOSTILE_HITS = 40

# Five days, so every row stays inside the default seven-day window when the date
# changes (UTC midnight) between seeding and a test: seeded at 23:58 on day D, the
# oldest row is from 23:58 on D-5, and from midnight the window starts at D-5 00:00.
SEED_DAYS = 5
SEED_PER_DAY = 300

# Reported by the page itself; the binding survives full navigations, the array is
# what the brief asks for and is checked on the final document too.
WATCH_SCRIPT = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  const item = {
    directive: event.violatedDirective,
    blocked: event.blockedURI,
    sample: event.sample,
    source: event.sourceFile + ":" + event.lineNumber,
    page: location.href,
  };
  window.__cspViolations.push(item);
  if (window.__statisticsReportCsp) window.__statisticsReportCsp(item);
}, true);
"""


def load_demo() -> t.Any:
    """``examples/demo.py`` as a module (it imports ``examples/traffic.py`` itself)."""
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    return importlib.import_module("demo")


def hostile_rows(now: datetime) -> list[dict[str, t.Any]]:
    """Enough rows for the hostile path to rank among the top paths; the newest row
    of all is hostile, so it opens the request log."""
    rows = []
    for i in range(HOSTILE_HITS):
        rows.append(
            {
                "response_time": 0.004 + i / 1000,
                "date": now - timedelta(seconds=30 + i * 3600),
                "method": "GET",
                "size": 321,
                "status_code": 404 if i % 4 else 500,
                "path": HOSTILE_PATH,
                "user_agent": HOSTILE_USER_AGENT,
                "remote_address": "203.0.113.66",
                "exception": None if i % 4 else HOSTILE_EXCEPTION,
                "referrer": HOSTILE_REFERRER,
                "browser": HOSTILE_BROWSER,
                "platform": "<i>Plan 9</i>",
                "mimetype": "text/html",
                "is_bot": False,
            }
        )
    return rows


def seed(app: Flask, *, now: datetime | None = None, days: float = SEED_DAYS, per_day: int = SEED_PER_DAY) -> int:
    """Fill the app's table with a week of realistic traffic plus hostile rows."""
    demo = load_demo()
    traffic = importlib.import_module("traffic")
    now = now or datetime.now(timezone.utc).replace(tzinfo=None)
    # The synthetic rows end a few minutes ago so the hostile row stays the newest.
    synthetic = traffic.generate(days, per_day, end=now - timedelta(minutes=5), seed=11)
    state = app.extensions["statistics"]
    with app.app_context(), demo.db.engine.begin() as conn:
        count = traffic.insert(conn, state.table, synthetic)
        count += traffic.insert(conn, state.table, hostile_rows(now))
    return count


def count_rows(app: Flask, since: datetime | None = None, until: datetime | None = None, **where: t.Any) -> int:
    """Rows with ``since <= date < until`` and columns equal to ``where``."""
    state = app.extensions["statistics"]
    table = state.table
    query = sa.select(sa.func.count()).select_from(table)
    if since is not None:
        query = query.where(table.c.date >= since)
    if until is not None:
        query = query.where(table.c.date < until)
    for name, value in where.items():
        query = query.where(table.c[name] == value)
    with app.app_context(), state.db.engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def build_app(database_url: str, policy: str) -> Flask:
    """The demo app under ``policy``: "talisman" (the host app sends Talisman's
    default CSP on every response, replacing the dashboard's, as Talisman does) or
    "strict" (only the extension's own STATISTICS_CSP)."""
    demo = load_demo()
    app = demo.create_app(database_url)
    app.testing = True
    if policy == "talisman":

        @app.after_request
        def talisman_policy(response: t.Any) -> t.Any:
            response.headers["Content-Security-Policy"] = TALISMAN_CSP
            return response

    elif policy != "strict":
        raise ValueError(policy)
    return app


def stop_app(app: Flask) -> None:
    state = app.extensions["statistics"]
    state.writer.stop(timeout=2)
    with app.app_context():
        for engine in state.db.engines.values():
            engine.dispose()


class LiveServer:
    """``app`` served by Werkzeug on 127.0.0.1 and a free port, in a thread."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self._server = make_server("127.0.0.1", 0, app, threaded=True)
        self.port = self._server.server_port
        self.host = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.host}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> LiveServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: t.Any) -> None:
        self._server.shutdown()
        self._thread.join(timeout=5)
        self._server.server_close()


@dataclass
class Watch:
    """Everything a browser context did that a strict-CSP dashboard must not do."""

    host: str
    csp_events: list[dict[str, t.Any]] = field(default_factory=list)
    csp_console: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    foreign_requests: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    full_loads: list[str] = field(default_factory=list)

    def attach(self, context: t.Any) -> None:
        context.add_init_script(WATCH_SCRIPT)
        context.expose_binding("__statisticsReportCsp", lambda source, item: self.csp_events.append(item))
        context.on("request", self._on_request)
        context.on("page", self._on_page)

    def _on_page(self, page: t.Any) -> None:
        page.on("console", self._on_console)
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))
        page.on("load", lambda p: self.full_loads.append(p.url))

        def dialog(d: t.Any) -> None:
            self.dialogs.append(f"{d.type}: {d.message}")
            d.dismiss()

        page.on("dialog", dialog)

    def _on_console(self, message: t.Any) -> None:
        if message.type != "error":
            return
        text = f"{message.text} ({message.location.get('url')})"
        if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text:
            self.csp_console.append(text)
        self.console_errors.append(text)

    def _on_request(self, request: t.Any) -> None:
        parts = urlsplit(request.url)
        if parts.scheme in ("data", "blob"):
            return
        if parts.scheme not in ("http", "https") or parts.netloc != self.host:
            self.foreign_requests.append(request.url)

    def page_violations(self, page: t.Any) -> list[dict[str, t.Any]]:
        """The violations the current document recorded itself (JS pages only)."""
        try:
            return list(page.evaluate("window.__cspViolations || []"))
        except Exception:  # JavaScript disabled: the page cannot report
            return []

    def problems(self, page: t.Any | None = None) -> dict[str, list[t.Any]]:
        found = {
            "securitypolicyviolation events": list(self.csp_events),
            "CSP messages in the console": list(self.csp_console),
            "console errors": list(self.console_errors),
            "page errors": list(self.page_errors),
            "requests to other hosts": list(self.foreign_requests),
            "dialogs (script ran)": list(self.dialogs),
        }
        if page is not None:
            own = [v for v in self.page_violations(page) if v not in self.csp_events]
            found["securitypolicyviolation events"] += own
        return {name: items for name, items in found.items() if items}

    def violation_count(self) -> int:
        return len(self.csp_events)


@dataclass
class Tally:
    """CSP violations counted across the whole browser run, for the summary."""

    pages: int = 0
    events: int = 0
    console: int = 0
    tests: int = 0

    def add(self, watch: Watch, pages: int) -> None:
        self.tests += 1
        self.pages += pages
        self.events += len(watch.csp_events)
        self.console += len(watch.csp_console)

    def pytest_terminal_summary(self, terminalreporter: t.Any) -> None:
        terminalreporter.write_sep("-", "browser tests: Content-Security-Policy")
        terminalreporter.write_line(
            f"{self.events} securitypolicyviolation events and {self.console} CSP console "
            f"messages in {self.tests} watched browser contexts ({self.pages} documents loaded)"
        )


class Site:
    """The served app under one policy, and counts straight from its table."""

    def __init__(self, policy: str, server: LiveServer, app: t.Any) -> None:
        self.policy = policy
        self.server = server
        self.app = app
        self.url = server.url + "/statistics/"
        self.total = count_rows(app)

    def count(self, **where: t.Any) -> int:
        return count_rows(self.app, **where)


class Session:
    """A browser context on the site, watched from its first request."""

    def __init__(self, browser: t.Any, site: Site, **options: t.Any) -> None:
        options.setdefault("viewport", {"width": 1280, "height": 900})
        self.site = site
        self.javascript = options.get("java_script_enabled", True)
        self.context = browser.new_context(**options)
        self.context.set_default_timeout(TIMEOUT_MS)
        self.watch = Watch(site.server.host)
        self.watch.attach(self.context)
        self.page = self.context.new_page()

    def open(self, url: str | None = None) -> t.Any:
        response = self.page.goto(url or self.site.url)
        assert response is not None and response.ok, f"{url or self.site.url}: {response and response.status}"
        # The policy the browser enforced is the one this configuration is about.
        assert response.headers.get("content-security-policy") == POLICIES[self.site.policy]
        return response

    def settle(self) -> None:
        self.page.wait_for_function(SETTLED)

    def swap(self, action: t.Callable[[], t.Any], *panels: str, **query: str | None) -> None:
        """Do ``action`` and wait until htmx has replaced ``panels`` (element ids;
        default: every panel), the address bar shows ``query`` and nothing loads."""
        self.page.evaluate(
            """ids => (ids.length ? ids.map(id => document.getElementById(id))
                : [...document.querySelectorAll("[data-partial]")])
                .forEach(el => el && el.setAttribute("data-before-swap", ""))""",
            list(panels),
        )
        action()
        wait_for_query(self.page, **query)
        self.page.wait_for_function("() => !document.querySelector('[data-before-swap]')")
        self.settle()

    def assert_clean(self) -> None:
        problems = self.watch.problems(self.page if self.javascript else None)
        assert not problems, f"the dashboard misbehaved under the {self.site.policy} policy: {problems}"

    def screenshot(self, name: str, full_page: bool = True) -> Path:
        SCREENSHOTS.mkdir(exist_ok=True)
        path = SCREENSHOTS / f"{self.site.policy}-{name}.png"
        self.page.screenshot(path=str(path), full_page=full_page)
        return path


# ---------------------------------------------------------------------------------
# Page reading helpers


def kpi(page: t.Any, key: str) -> str:
    return page.locator(f'#panel-kpis [data-kpi="{key}"] .kpi-value').inner_text().strip()


def log_rows(page: t.Any) -> t.Any:
    return page.locator("#request-log tbody tr.log-row")


def log_column(page: t.Any, index: int) -> list[str]:
    """The text of one column of the request log (0 = date, 1 = method, 2 = path...)."""
    return [c.strip() for c in page.locator(f"#request-log tbody tr.log-row > :nth-child({index + 1})").all_inner_texts()]


def query(page: t.Any) -> dict[str, list[str]]:
    return parse_qs(urlsplit(page.url).query)


def wait_for_query(page: t.Any, /, **expected: str | None) -> None:
    """Wait until the address bar's query has these values (None: absent), whether
    htmx pushed it or the browser navigated."""

    def matches(url: str) -> bool:
        found = parse_qs(urlsplit(url).query)
        return all(
            (name not in found) if value is None else found.get(name) == [value]
            for name, value in expected.items()
        )

    page.wait_for_url(matches, wait_until="commit")


def hits(n: int) -> str:
    return f"{n:,}"


def marker(page: t.Any) -> t.Any:
    return page.evaluate("window.__marker")


def today() -> date:
    return datetime.now(timezone.utc).date()
