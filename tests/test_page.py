"""The full dashboard page is streamed: the page around the panels arrives before any
panel's figures are in, every panel's queries run at the same time, and a panel that
fails, or a client that leaves, harms nothing else."""

from __future__ import annotations

import dataclasses
import gc
import logging
import threading
import time
import typing as t

import pytest
from flask import Flask, current_app
from dashboard_support import QS, insert, sample_rows

from flask_statistics import views
from flask_statistics.panels import Panel

from conftest import AppFactory

URL = f"/statistics/?{QS}"
#: Long enough for any backend here; a panel that never gets there fails the test.
PATIENCE = 20.0


@pytest.fixture
def dashboard(make_app: t.Any) -> t.Any:
    app, *_ = make_app()
    insert(app, sample_rows())
    return app


def replace_fetch(monkeypatch: pytest.MonkeyPatch, name: str, fetch: t.Callable[[t.Any], t.Any]) -> None:
    partial = views.PARTIALS[name]
    panel = Panel(fetch, partial.panel.present)
    monkeypatch.setitem(views.PARTIALS, name, dataclasses.replace(partial, panel=panel))


def panel_html(html: str, name: str) -> str:
    start = html.index(f'data-slot="{name}"')
    end = html.find('class="panel-slot"', start)
    return html[start : end if end != -1 else len(html)]


def test_the_page_arrives_before_the_panels_are_ready(dashboard: t.Any, monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    original = views.PARTIALS["kpis"].panel.fetch

    def held(view: t.Any) -> t.Any:
        assert release.wait(PATIENCE), "the page never let the kpis panel go on"
        return original(view)

    replace_fetch(monkeypatch, "kpis", held)
    response = dashboard.test_client().get(URL, buffered=False)
    assert response.status_code == 200
    body = iter(response.response)
    first = b""
    # While the first panel's figures are held back, the header and the filters are
    # already there to see.
    while b'data-slot="kpis"' not in first:
        first += next(body)
    first_text = first.decode()
    assert 'class="page-head"' in first_text and "<form" in first_text
    assert "Unique visitors" not in first_text
    release.set()
    rest = b"".join(body).decode()
    response.close()
    html = first_text + rest
    assert "Unique visitors" in html and html.rstrip().endswith("</html>")


def test_every_panel_is_fetched_at_the_same_time(dashboard: t.Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Each panel's fetch waits until every other panel's fetch has started: built one
    # after another, the first would wait in vain and its panel would fail.
    together = threading.Barrier(len(views.PARTIALS), timeout=PATIENCE)
    for name, partial in list(views.PARTIALS.items()):
        def meet(view: t.Any, original: t.Any = partial.panel.fetch) -> t.Any:
            together.wait()
            return original(view)

        replace_fetch(monkeypatch, name, meet)
    response = dashboard.test_client().get(URL)
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "could not be loaded" not in html
    for shown in ("Unique visitors", "12 hits", "/shop", "Chrome"):
        assert shown in html
    assert "/about" in panel_html(html, "requests")


def test_a_failing_panel_leaves_the_others_whole(
    dashboard: t.Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(view: t.Any) -> t.Any:
        raise RuntimeError("the database went away")

    replace_fetch(monkeypatch, "top", broken)
    with caplog.at_level(logging.ERROR, logger="flask_statistics"):
        response = dashboard.test_client().get(URL)
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    top = panel_html(html, "top")
    assert "This panel could not be loaded" in top and 'id="panel-top"' in top
    assert "Unique visitors" in html and "/about" in panel_html(html, "requests") and html.rstrip().endswith("</html>")
    assert any("top panel could not be loaded" in r.getMessage() for r in caplog.records)


def panel_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("flask-statistics-panel")]


def test_a_client_that_leaves_mid_page_leaks_no_thread_or_connection(
    dashboard: t.Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    original = views.PARTIALS["requests"].panel.fetch

    def held(view: t.Any) -> t.Any:
        release.wait(PATIENCE)
        return original(view)

    replace_fetch(monkeypatch, "requests", held)
    with dashboard.app_context():
        engine = views._engine()
    response = dashboard.test_client().get(URL, buffered=False)
    received = b""
    for chunk in response.response:
        received += chunk
        if b'data-slot="requests"' in received:
            break
    # Every panel's fetch has started and the last one is still reading when the
    # browser goes away.
    assert b'id="panel-kpis"' in received and panel_threads()
    response.close()
    release.set()
    deadline = time.monotonic() + PATIENCE
    while (panel_threads() or engine.pool.checkedout()) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert panel_threads() == []
    assert engine.pool.checkedout() == 0


def test_in_memory_sqlite_streams_the_page_without_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    factory = AppFactory("sqlite://")
    try:
        app, *_ = factory()
        insert(app, sample_rows())
        seen: list[str] = []
        original = views.PARTIALS["kpis"].panel.fetch

        def where(view: t.Any) -> t.Any:
            seen.append(threading.current_thread().name)
            return original(view)

        replace_fetch(monkeypatch, "kpis", where)
        response = app.test_client().get(URL)
        html = response.get_data(as_text=True)
    finally:
        factory.close()
    assert response.status_code == 200
    # One connection for every thread: the panels are read on the request's thread,
    # where the rows written on it are.
    assert seen == [threading.current_thread().name]
    assert "Unique visitors" in html and "12 hits" in html and "/about" in panel_html(html, "requests")


def test_a_page_never_read_leaves_the_contexts_alone(dashboard: t.Any) -> None:
    # A test that looks only at the status never reads the streamed body; when the
    # response is collected, during some other app's work, nothing of ours is popped.
    response = dashboard.test_client().get(URL)
    assert response.status_code == 200
    other = Flask("other")
    with other.app_context():
        del response
        gc.collect()
        assert current_app._get_current_object() is other
