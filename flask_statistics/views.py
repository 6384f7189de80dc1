"""The dashboard blueprint: the full page, one endpoint per htmx partial, the
request detail page and the static files, all behind the guard.

htmx requests (``HX-Request: true``) get the partial; htmx 4's history restore
(``HX-Request-Type: full``) and every request without htmx get a whole page, so
every view works without JavaScript and Back restores the previous filters.
"""

from __future__ import annotations

import dataclasses
import logging
import typing as t
from dataclasses import dataclass
from datetime import date

from flask import (
    Blueprint, Flask, Response, current_app, make_response, redirect, render_template, request,
)

from . import export, figures, live, models, page, panels, queries, security
from .buckets import to_local
from .config import ConfigError
from .dialects import reading_connection
from .extension import BLUEPRINT_NAME, StatisticsState, state_of
from .filters import Filters, zone
from .forms import FilterForm, parse_filters
from .models import bind_key

logger = logging.getLogger("flask_statistics")

#: The largest primary key a detail URL may ask for (BIGINT); larger ones are 404s.
MAX_INDEX = 2**63 - 1
HTMX_VARY = ("HX-Request", "HX-Request-Type", "HX-History-Restore-Request")


@dataclass(frozen=True)
class Partial:
    """One htmx target: its endpoint, element id, heading, template and data."""

    name: str
    title: str
    panel: panels.Panel

    def build(self, view: panels.View) -> dict[str, t.Any]:
        return self.panel.build(view)

    @property
    def template(self) -> str:
        return f"statistics/partials/{self.name}.html"

    @property
    def element_id(self) -> str:
        return f"panel-{self.name.replace('_', '-')}"

    @property
    def rule(self) -> str:
        return f"/partials/{self.name.replace('_', '-')}"


PARTIALS = {
    p.name: p
    for p in (
        Partial("kpis", "Key figures", panels.PANELS["kpis"]),
        Partial("traffic", "Traffic", panels.PANELS["traffic"]),
        Partial("response_times", "Response time", panels.PANELS["response_times"]),
        Partial("status", "Status classes", panels.PANELS["status"]),
        Partial("top", "Top values", panels.PANELS["top"]),
        Partial("paths", "Top paths", panels.PANELS["paths"]),
        Partial("requests", "Requests", panels.PANELS["requests"]),
    )
}


def create_blueprint() -> Blueprint:
    """A fresh dashboard blueprint; ``register_dashboard`` mounts it on an app."""
    bp = Blueprint(
        BLUEPRINT_NAME,
        __name__,
        template_folder="templates",
        static_folder="static",
        static_url_path="/static",
    )
    security.install(bp, _state)
    bp.add_url_rule("/", "index", index)
    for partial in PARTIALS.values():
        bp.add_url_rule(partial.rule, partial.name, _partial_view(partial))
    bp.add_url_rule(f"/requests/<int(max={MAX_INDEX}):index>", "detail", detail)
    export.register(bp, _state)
    live.register(bp, _state)
    bp.after_request(_vary)
    bp.context_processor(_template_globals)
    return bp


def register_dashboard(app: Flask, state: StatisticsState) -> None:
    """Mount the dashboard at ``STATISTICS_URL_PREFIX``; warn when nothing guards it."""
    config = app.config
    name = config["STATISTICS_TIMEZONE"]
    try:
        zone(name)
    except (KeyError, ValueError, TypeError):
        raise ConfigError(
            f"STATISTICS_TIMEZONE must be an IANA time zone name such as 'UTC' or "
            f"'Europe/Berlin', got {name!r}; if the name is right, install 'tzdata'"
        ) from None
    prefix = config["STATISTICS_URL_PREFIX"].rstrip("/")
    app.register_blueprint(create_blueprint(), url_prefix=prefix)
    if state.guard is None and not app.debug:
        logger.warning(
            "the statistics dashboard at %s/ has no guard, so anyone who can reach "
            "this app can read its traffic; pass a guard, e.g. %s",
            prefix,
            _guard_example(state.model),
        )


def _guard_example(model: type) -> str:
    """How this app would pass a guard: with its own model, or with the default one."""
    guard = "lambda: current_user.is_authenticated and current_user.is_admin"
    # The default model is defined in our models module; a user's model never is.
    if model.__module__ == models.__name__:
        return f"Statistics(app, db, guard={guard})"
    return f"Statistics(app, db, {model.__name__}, {guard})"


# ---------------------------------------------------------------------------------
# Views


def index() -> Response:
    filters, form = request_filters()
    partial = _wants_partial()
    context = _context(filters, form)
    if filters is not None and request.headers.get("HX-Request") != "true":
        # A form sent without JS carries every field, empty or not: answer with the
        # canonical URL, so the address bar and bookmarks hold only what was chosen.
        canonical = context["links"].args()
        if sorted(request.args.items(multi=True)) != sorted(canonical.items()):
            return t.cast(Response, redirect(context["links"].index(), 302))
    if filters is None:
        if partial:
            response = _html("statistics/partials/dashboard.html", 400, lazy=True, **context)
            response.headers["HX-Push-Url"] = "false"
            return response
        return _html("statistics/index.html", 400, lazy=False, **context)
    if partial:
        # Each panel then loads from its own endpoint, in parallel, with its own
        # loading state. The pushed URL is the canonical one, without empty fields.
        response = _html("statistics/partials/dashboard.html", 200, lazy=True, **context)
        response.headers["HX-Push-Url"] = context["links"].index()
        return response
    if request.headers.get("HX-History-Restore-Request") == "true":
        # htmx restoring history (Back): the page at once, each panel then reloading
        # itself in place, rather than every panel computed before the first byte.
        return _html("statistics/index.html", 200, lazy=True, **context)
    # The page at once, each panel streamed in as soon as its figures are in; every
    # panel's queries start together, each on its own connection.
    # The view is made here, where the app's config can be read; threads get copies.
    base = _view(None, filters, context["links"])
    return page.stream(
        _engine(),
        [(p, p.panel) for p in PARTIALS.values()],
        lambda conn, shared: dataclasses.replace(base, conn=conn, shared=shared),
        context,
    )


def _partial_view(partial: Partial) -> t.Callable[[], Response]:
    def view() -> Response:
        filters, form = request_filters()
        context = _context(filters, form, partial=partial)
        wants_partial = _wants_partial()
        if filters is None:
            template = "statistics/partials/errors.html" if wants_partial else "statistics/partial_page.html"
            return _html(template, 400, error_id=partial.element_id, **context)
        with _connect() as conn:
            context.update(partial.build(_view(conn, filters, context["links"], only=partial.name)))
        template = partial.template if wants_partial else "statistics/partial_page.html"
        return _html(template, 200, **context)

    view.__name__ = f"{partial.name}_partial"
    view.__doc__ = f"The {partial.title.lower()} partial."
    return view


def detail(index: int) -> Response:
    filters, form = request_filters()
    context = _context(filters, form)
    if filters is None:
        return _html("statistics/detail.html", 400, row=None, **context)
    state = _state()
    with _connect() as conn:
        row = queries.request_detail(conn, state.table, index)
    status = 200 if row is not None else 404
    columns = [column.name for column in state.table.columns]
    return _html("statistics/detail.html", status, row=row, columns=columns, index=index, **context)


# ---------------------------------------------------------------------------------
# Helpers


def _state() -> StatisticsState:
    return state_of(current_app)


def _engine() -> t.Any:
    state = _state()
    return state.db.engines[bind_key(state.table)]


def _connect() -> t.Any:
    return reading_connection(_engine())


def request_filters() -> tuple[Filters | None, FilterForm]:
    """The filters of the current request's query string (see :func:`.forms.parse_filters`)."""
    return parse_filters(request.args, current_app.config, first_day=_first_day)


def _first_day() -> date | None:
    # The first local day with requests, for the "all" range; asked only for it.
    state = _state()
    with _connect() as conn:
        first = figures.first_recorded(conn, getattr(state, "rollups", None), state.table)
    return None if first is None else to_local(first, zone(_zone_name())).date()


def _wants_partial() -> bool:
    return (
        request.headers.get("HX-Request") == "true"
        and request.headers.get("HX-Request-Type", "partial") != "full"
    )


def _zone_name() -> str:
    return str(current_app.config["STATISTICS_TIMEZONE"])


def _context(
    filters: t.Any, form: FilterForm, *, partial: Partial | None = None
) -> dict[str, t.Any]:
    return {
        "filters": filters,
        "form": form,
        "links": panels.Links(filters),
        "partial": partial,
        "partials": PARTIALS,
    }


def _view(conn: t.Any, filters: t.Any, links: panels.Links, only: str | None = None) -> panels.View:
    config = current_app.config
    return panels.View(
        conn=conn,
        table=_state().table,
        filters=filters,
        tz=zone(_zone_name()),
        zone_name=_zone_name(),
        page_size=config["STATISTICS_PAGE_SIZE"],
        links=links,
        store=getattr(_state(), "rollups", None),
        only=only,
    )


def _template_globals() -> dict[str, t.Any]:
    tz = zone(_zone_name())
    return {"fmt": panels.Formatter(tz), "zone_name": _zone_name()}


def _html(template: str, status: int, **context: t.Any) -> Response:
    # Cache-Control: no-store is added by security.install for every dashboard page.
    return make_response(render_template(template, **context), status)


def _vary(response: Response) -> Response:
    if request.endpoint != f"{BLUEPRINT_NAME}.static":
        for header in HTMX_VARY:
            response.vary.add(header)
    return response
