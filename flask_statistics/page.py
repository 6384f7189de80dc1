"""The full dashboard page, streamed: the page around the panels is sent at once,
then each panel as soon as its figures are in.

Every panel's queries start together, each panel on a thread and a connection of
its own, so no panel waits for another's queries; a panel is then presented (links,
charts, template) on the request's thread, in page order. A panel whose queries
fail shows that it could not be loaded, and the rest of the page still arrives.

Pools that hand every thread the same connection, or a database of its own
(in-memory SQLite), get no threads: their panels are fetched in turn while the page
streams.
"""

from __future__ import annotations

import logging
import re
import secrets
import threading
import typing as t
from concurrent.futures import Future

import sqlalchemy as sa
from flask import Response, get_template_attribute, render_template
from flask.globals import _cv_app, _cv_request
from markupsafe import Markup

from .dialects import reading_connection
from .panels import Panel, Shared, View

logger = logging.getLogger("flask_statistics")

#: Pools whose connections can't be used from several threads at once, or whose
#: threads would each see a different in-memory database.
_SINGLE_THREADED = (sa.pool.StaticPool, sa.pool.SingletonThreadPool)


class Slot(t.Protocol):
    name: str
    template: str


def stream(
    engine: sa.Engine,
    slots: t.Sequence[tuple[Slot, Panel]],
    make_view: t.Callable[[sa.Connection | None, Shared], View],
    context: dict[str, t.Any],
) -> Response:
    """The page (``statistics/index.html``) with ``slots``' panels streamed into it."""
    token = secrets.token_hex(8)
    html = render_template(
        "statistics/index.html", lazy=False, slot=lambda name: Markup(f"<!--{token}:{name}-->"), **context
    )
    # The page splits into [before, name, between, name, …, after]. The markers can't
    # come from recorded data: that is escaped, and can't guess the token.
    pieces = re.split(rf"<!--{token}:(\w+)-->", html)
    shared = Shared()
    panels = dict((slot.name, (slot, panel)) for slot, panel in slots)
    fetches = _Fetches(engine, make_view, shared)
    threaded = not isinstance(engine.pool, _SINGLE_THREADED)

    def generate() -> t.Iterator[str]:
        yield pieces[0]
        # Started once the first part is on its way: seven threads starting at once
        # would hold the GIL while the request thread still has the first part to send.
        if threaded:
            for name in pieces[1::2]:
                fetches.start(name, panels[name][1])
        presenting = make_view(None, shared)
        for name, after in zip(pieces[1::2], pieces[2::2]):
            slot, panel = panels[name]
            if not threaded:
                fetches.run(name, panel)
            yield _present(slot, panel, presenting, fetches.result(name), context)
            yield after

    return Response(_in_context(generate()), 200, mimetype="text/html")


def _in_context(body: t.Iterator[str]) -> t.Iterator[str]:
    """``body``, each part made with the request's contexts current. They are made
    current only while a part is made, never between parts: a page that is never
    read to its end (a test that looks only at the status, a client that leaves) is
    collected later, during other work, and must not pop anything then. Flask's
    ``stream_with_context`` keeps them pushed between parts. The context variables
    are set directly, so the app's teardown functions don't run once per part."""
    app, req = _cv_app.get(), _cv_request.get()

    def read() -> t.Iterator[str]:
        try:
            while True:
                app_token, req_token = _cv_app.set(app), _cv_request.set(req)
                try:
                    part = next(body, None)
                finally:
                    _cv_request.reset(req_token)
                    _cv_app.reset(app_token)
                if part is None:
                    return
                yield part
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()

    return read()


def _present(slot: Slot, panel: Panel, view: View, fetched: Future[t.Any], context: dict[str, t.Any]) -> str:
    # The response has begun: a failure can only be shown in the panel's place.
    try:
        return render_template(slot.template, **context, **panel.present(view, fetched.result()))
    except Exception:
        logger.exception("statistics dashboard: the %s panel could not be loaded", slot.name)
        failed = get_template_attribute("statistics/_macros.html", "failed_panel")
        return str(failed(context["partials"][slot.name]))


class _Fetches:
    """Each panel's figures, fetched on its own connection; one thread per panel."""

    def __init__(
        self,
        engine: sa.Engine,
        make_view: t.Callable[[sa.Connection | None, Shared], View],
        shared: Shared,
    ) -> None:
        self._engine = engine
        self._make_view = make_view
        self._shared = shared
        self._results: dict[str, Future[t.Any]] = {}

    def start(self, name: str, panel: Panel) -> None:
        thread = threading.Thread(
            target=self.run, args=(name, panel), name=f"flask-statistics-panel-{name}", daemon=True
        )
        self._results[name] = Future()
        thread.start()

    def run(self, name: str, panel: Panel) -> None:
        result = self._results.setdefault(name, Future())
        try:
            with reading_connection(self._engine) as conn:
                result.set_result(panel.fetch(self._make_view(conn, self._shared)))
        except BaseException as exc:  # handed to the page, which logs it
            result.set_exception(exc)

    def result(self, name: str) -> Future[t.Any]:
        return self._results[name]
