"""What keeps the dashboard safe to expose: the guard before every endpoint, strict
response headers, and the rule for which recorded URLs may become links."""

from __future__ import annotations

import typing as t
from urllib.parse import urlsplit

from flask import Blueprint, Response, abort, current_app, g, make_response, request

from .formatting import needs_cleaning

if t.TYPE_CHECKING:
    from .extension import StatisticsState

REFERRER_POLICY = "same-origin"
#: rel for every link to a recorded (attacker-chosen) URL.
EXTERNAL_REL = "noopener noreferrer nofollow"
_GUARD_ANSWERED = "_statistics_guard_answered"


def install(blueprint: Blueprint, state_of_app: t.Callable[[], StatisticsState]) -> None:
    """Run the guard before, and add the headers after, every request the blueprint
    serves: pages, partials, static files and anything added later.

    The guard is called with no arguments inside the request. What it returns
    decides:

    - ``None`` or ``True``: the request goes on to the dashboard;
    - ``False``: ``403 Forbidden`` (through the app's 403 error handler, if any);
    - anything else Flask's ``make_response`` accepts (a response, a redirect,
      ``(body, status)``...): that is the response.

    An ``abort()`` raised in the guard answers as usual. Every dashboard response
    but a static file the guard let through carries ``Cache-Control: no-store``,
    so neither recorded data nor a refusal is kept by a browser or a shared cache.
    """

    @blueprint.before_request
    def run_guard() -> t.Any:
        guard = state_of_app().guard
        if guard is None:
            return None
        # Set before the call, so that a refusal raised by the guard (abort) counts.
        setattr(g, _GUARD_ANSWERED, True)
        result = guard()
        if result is None or result is True:
            setattr(g, _GUARD_ANSWERED, False)
            return None
        if result is False:
            abort(403)
        return make_response(result)

    @blueprint.after_request
    def add_headers(response: Response) -> Response:
        policy = current_app.config.get("STATISTICS_CSP")
        if policy:
            response.headers["Content-Security-Policy"] = policy
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers.setdefault("Referrer-Policy", REFERRER_POLICY)
        # Pages show addresses and user agents, and a guard's answer depends on who
        # asked; only the package's own static files may be cached.
        static = request.endpoint == f"{request.blueprint}.static"
        if not static or g.get(_GUARD_ANSWERED, False):
            response.headers["Cache-Control"] = "no-store"
        return response


def external_url(value: t.Any) -> str | None:
    """``value`` when it is an absolute http(s) URL that is safe in an href, else None.

    Recorded referrers are attacker-controlled: ``javascript:``, ``data:`` and
    protocol-relative or malformed URLs never become links.
    """
    if not isinstance(value, str) or len(value) > 4096:
        return None
    # Spaces, controls and the invisible or reordering characters clean() would show
    # escaped: the link text must be the address the browser goes to.
    if " " in value or needs_cleaning(value):
        return None
    try:
        parts = urlsplit(value)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    if not value.lower().startswith(("http://", "https://")):
        return None
    return value
