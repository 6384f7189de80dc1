"""Make the README's screenshots. Run it from the project root:

    python examples/screenshot.py [--only NAME] [--out-dir docs]

It starts the demo app (examples/demo.py) on a temporary SQLite file seeded with
synthetic traffic, serves it on a free port, opens it in Chromium through Playwright
and saves, in one run:

    dashboard.png        the dashboard, light theme, 1280 px wide, down to the top values
    dashboard-dark.png   the same in the dark theme
    dashboard-phone.png  the dashboard on a 390 px wide phone, the first screens of it
    live.png             the live view (/statistics/live)
    detail.png           the detail page of one recorded request

Needs the test extras (`pip install -e '.[test]'`) and Debian's Chromium
(`apt-get install -y chromium`); it never downloads a browser.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import threading
import typing as t
from dataclasses import dataclass, field, replace
from pathlib import Path

import sqlalchemy as sa
from werkzeug.serving import make_server

sys.path.insert(0, str(Path(__file__).parent))
import demo  # noqa: E402

LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
# Every panel loaded and no htmx request in flight.
SETTLED = """() => !document.querySelector(
  '.is-loading, [aria-busy="true"], .htmx-request, .htmx-swapping, .htmx-settling')"""


@dataclass(frozen=True)
class Shot:
    """One screenshot: which page, in which browser, cut where."""

    path: str  # under /statistics; "{detail}" is the newest request's detail page
    color_scheme: str = "light"
    viewport: dict[str, int] = field(default_factory=lambda: dict(DESKTOP))
    phone: bool = False
    # Cut below the end of this element, or at ``max_height`` CSS pixels of the
    # full page, whichever comes first; neither: the viewport.
    until: str | None = None
    max_height: int | None = None


SHOTS: dict[str, Shot] = {
    "dashboard": Shot("/", until="#panel-top"),
    "dashboard-dark": Shot("/", color_scheme="dark", until="#panel-top"),
    "dashboard-phone": Shot("/", viewport=dict(PHONE), phone=True, max_height=2000),
    "live": Shot("/live", until="#live"),
    "detail": Shot("/requests/{detail}", until="footer"),
}


def newest_request(app: t.Any) -> int:
    """The newest recorded request that a browser made: a detail page with every field."""
    table = app.extensions["statistics"].table
    query = (
        sa.select(table.c.index)
        .where(table.c.browser.is_not(None), table.c.referrer.is_not(None))
        .order_by(table.c.date.desc())
        .limit(1)
    )
    with app.app_context(), demo.db.engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def take(browser: t.Any, base: str, shot: Shot, out: Path) -> None:
    options: dict[str, t.Any] = {"viewport": shot.viewport, "color_scheme": shot.color_scheme}
    if shot.phone:
        options.update(device_scale_factor=2, is_mobile=True, has_touch=True)
    context = browser.new_context(**options)
    try:
        page = context.new_page()
        url = base + shot.path
        response = page.goto(url, wait_until="networkidle")
        if response is None or not response.ok:
            raise SystemExit(f"{url} answered {response and response.status}")
        page.wait_for_function(SETTLED)
        width = shot.viewport["width"]
        height = float(shot.viewport["height"])
        if shot.until or shot.max_height:
            height = page.evaluate("document.documentElement.scrollHeight")
            if shot.until:
                box = page.locator(shot.until).first.bounding_box()
                if box is None:
                    raise SystemExit(f"{shot.until} is not on {url}")
                height = min(height, box["y"] + box["height"] + 24)
            if shot.max_height:
                height = min(height, shot.max_height)
        clip = {"x": 0, "y": 0, "width": width, "height": height}
        page.screenshot(path=str(out), full_page=True, clip=clip)
    finally:
        context.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=sorted(SHOTS), action="append", help="make only this one (repeatable)")
    parser.add_argument("--out-dir", type=Path, default=Path("docs"))
    # Two weeks, so the default seven-day range has a previous period to compare with.
    parser.add_argument("--days", type=float, default=15, help="days of synthetic traffic")
    parser.add_argument("--per-day", type=int, default=3000, help="synthetic requests per day")
    parser.add_argument("--chromium", default="/usr/bin/chromium", help="the Chromium executable")
    args = parser.parse_args()
    names = args.only or list(SHOTS)

    from playwright.sync_api import sync_playwright

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    logging.getLogger("flask_statistics").setLevel(logging.ERROR)  # the demo has no guard
    args.out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        app = demo.create_app(f"sqlite:///{Path(tmp) / 'screenshot.db'}")
        seeded = demo.seed_if_empty(app, args.days, args.per_day)
        detail = newest_request(app)
        server = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        base = f"http://127.0.0.1:{server.server_port}/statistics"
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=args.chromium, args=LAUNCH_ARGS)
                try:
                    for name in names:
                        shot = SHOTS[name]
                        shot = replace(shot, path=shot.path.format(detail=detail))
                        out = args.out_dir / f"{name}.png"
                        take(browser, base, shot, out)
                        print(f"{out}: {shot.viewport['width']} px wide, {out.stat().st_size / 1024:,.0f} KB")
                finally:
                    browser.close()
        finally:
            server.shutdown()
            thread.join()
            server.server_close()
            app.extensions["statistics"].writer.stop(timeout=2)
            with app.app_context():
                demo.db.engine.dispose()
    print(f"{seeded:,} seeded requests")


if __name__ == "__main__":
    main()
