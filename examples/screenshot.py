"""Make the README's screenshot of the dashboard. Run it from the project root:

    python examples/screenshot.py [--out docs/dashboard.png]

It starts the demo app (examples/demo.py) on a temporary SQLite file seeded with a
week of synthetic traffic, serves it on a free port, opens /statistics in Chromium
through Playwright and saves a 1280px-wide PNG of the page down to the top values (--full-page for all). Needs the test extras
(`pip install -e '.[test]'`) and Debian's Chromium (`apt-get install -y chromium`);
it never downloads a browser.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import threading
from pathlib import Path

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("docs/dashboard.png"))
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument(
        "--until", default="#panel-top", help="save the page down to the end of this element (default: the top values)"
    )
    parser.add_argument("--full-page", action="store_true", help="save the whole page")
    parser.add_argument("--dark", action="store_true", help="prefers-color-scheme: dark")
    parser.add_argument("--days", type=float, default=7, help="days of synthetic traffic")
    parser.add_argument("--per-day", type=int, default=3000, help="synthetic requests per day")
    parser.add_argument("--chromium", default="/usr/bin/chromium", help="the Chromium executable")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    logging.getLogger("flask_statistics").setLevel(logging.ERROR)  # the demo has no guard
    with tempfile.TemporaryDirectory() as tmp:
        app = demo.create_app(f"sqlite:///{Path(tmp) / 'screenshot.db'}")
        seeded = demo.seed_if_empty(app, args.days, args.per_day)
        server = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        url = f"http://127.0.0.1:{server.server_port}/statistics/"
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=args.chromium, args=LAUNCH_ARGS)
                page = browser.new_page(
                    viewport={"width": args.width, "height": 900},
                    color_scheme="dark" if args.dark else "light",
                )
                response = page.goto(url, wait_until="networkidle")
                if response is None or not response.ok:
                    raise SystemExit(f"{url} answered {response and response.status}")
                args.out.parent.mkdir(parents=True, exist_ok=True)
                clip = None
                if not args.full_page:
                    box = page.locator(args.until).bounding_box()
                    if box is None:
                        raise SystemExit(f"{args.until} is not on the page; pass --full-page or another --until")
                    clip = {"x": 0, "y": 0, "width": args.width, "height": box["y"] + box["height"] + 24}
                page.screenshot(path=str(args.out), full_page=True, clip=clip)
                browser.close()
        finally:
            server.shutdown()
            thread.join()
            server.server_close()
            app.extensions["statistics"].writer.stop(timeout=2)
            with app.app_context():
                demo.db.engine.dispose()
    size = args.out.stat().st_size
    print(f"{args.out}: {args.width}px wide, {size / 1024:,.0f} KB, {seeded:,} seeded requests")


if __name__ == "__main__":
    main()
