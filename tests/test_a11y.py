"""Accessibility: axe-core (through the axe-playwright-python package) on the
dashboard, the live view, a request's detail page and the 400 page, each in the
light and the dark theme, under the extension's own strict CSP. No page may have a
serious or critical violation; the counts for every impact are printed in the test
summary.

The browser fixtures are the ones test_browser.py uses: the demo app seeded with a
week of traffic and hostile values, served on a free port.
"""

from __future__ import annotations

import typing as t
from collections import Counter
from dataclasses import dataclass, field

import pytest
import sqlalchemy as sa

from browser_support import Session, Site
from conftest import require_or_skip
from test_browser import browser, session_factory, site, tally  # noqa: F401

IMPACTS = ("critical", "serious", "moderate", "minor")
BLOCKING = ("critical", "serious")
SCHEMES = ("light", "dark")
PAGES = ("dashboard", "live", "detail", "400")

# The strict policy is the one the extension sends itself; axe is injected through
# Playwright's evaluate, which the policy does not block, so the pages are checked
# exactly as a user gets them (and the watch still reports any violation).
pytestmark = pytest.mark.parametrize("site", ["strict"], indirect=True)


@dataclass
class AxeTally:
    """Violations per impact for every page checked, for the summary."""

    counts: dict[str, Counter[str]] = field(default_factory=dict)
    elements: dict[str, int] = field(default_factory=dict)

    def add(self, name: str, violations: list[dict[str, t.Any]]) -> None:
        self.counts[name] = Counter(v["impact"] or "unknown" for v in violations)
        self.elements[name] = sum(len(v["nodes"]) for v in violations)

    def pytest_terminal_summary(self, terminalreporter: t.Any) -> None:
        if not self.counts:
            return
        terminalreporter.write_sep("-", "browser tests: accessibility (axe-core)")
        for name, counts in sorted(self.counts.items()):
            figures = ", ".join(f"{counts[impact]} {impact}" for impact in IMPACTS)
            terminalreporter.write_line(
                f"{name}: {figures} (rules violated, by impact; {self.elements[name]} elements in all)"
            )


@pytest.fixture(scope="module")
def axe_tally(request: pytest.FixtureRequest) -> AxeTally:
    plugins = request.config.pluginmanager
    found = plugins.get_plugin("browser-axe-tally")
    if found is None:
        found = AxeTally()
        plugins.register(found, "browser-axe-tally")
    return t.cast(AxeTally, found)


@pytest.fixture(scope="module")
def axe() -> t.Any:
    try:
        from axe_playwright_python.sync_playwright import Axe
    except ImportError:
        require_or_skip("the axe-playwright-python package is missing; pip install -e '.[test]'")
    return Axe()


def newest_index(site: Site) -> int:
    """The newest request (a hostile one), so its detail page shows every field."""
    state = site.app.extensions["statistics"]
    table = state.table
    query = sa.select(table.c.index).order_by(table.c.date.desc()).limit(1)
    with site.app.app_context(), state.db.engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def open_page(session: Session, name: str) -> None:
    base = session.site.server.url + "/statistics"
    page = session.page
    if name == "dashboard":
        session.open(base + "/")
        session.settle()
    elif name == "live":
        session.open(base + "/live")
        page.locator("#live-minutes svg.pygal-chart").wait_for()
    elif name == "detail":
        session.open(f"{base}/requests/{newest_index(session.site)}")
    elif name == "400":
        response = page.goto(base + "/?status=abc")
        assert response is not None and response.status == 400
        assert page.locator("#panel-errors").is_visible()
        # The browser logs every 4xx document as a failed load; that one is expected.
        errors = session.watch.console_errors
        errors[:] = [e for e in errors if "status of 400" not in e]
    else:
        raise ValueError(name)


def describe(violations: list[dict[str, t.Any]]) -> str:
    lines = []
    for v in violations:
        lines.append(f"{v['id']} ({v['impact']}): {v['help']}")
        for node in v["nodes"][:5]:
            lines.append(f"    {', '.join(map(str, node['target']))}: {node['failureSummary']}".replace("\n", " / "))
    return "\n".join(lines)


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("name", PAGES)
def test_no_serious_or_critical_violations(
    session_factory: t.Callable[..., Session], axe: t.Any, axe_tally: AxeTally, name: str, scheme: str
) -> None:
    session = session_factory(color_scheme=scheme)
    open_page(session, name)
    results = axe.run(session.page).response
    violations = results["violations"]
    axe_tally.add(f"{name} ({scheme})", violations)
    # axe really looked: the rules this page needs most ran and found something to check.
    checked = {rule["id"] for rule in results["passes"]} | {v["id"] for v in violations}
    assert {"color-contrast", "document-title", "html-has-lang"} <= checked, sorted(checked)
    blocking = [v for v in violations if v["impact"] in BLOCKING]
    assert not blocking, f"{name} in the {scheme} theme:\n{describe(blocking)}"
    session.assert_clean()
