"""What keeps the dashboard safe to expose: the guard before every endpoint, strict
response headers, and the rule for which recorded URLs may become links."""

from __future__ import annotations

import typing as t
from urllib.parse import urlsplit

from flask import Blueprint, Response, current_app, make_response

if t.TYPE_CHECKING:
    from .extension import StatisticsState

REFERRER_POLICY = "same-origin"
#: rel for every link to a recorded (attacker-chosen) URL.
EXTERNAL_REL = "noopener noreferrer nofollow"


def install(blueprint: Blueprint, state_of_app: t.Callable[[], StatisticsState]) -> None:
    """Run the guard before, and add the headers after, every request the blueprint
    serves: pages, partials, static files and anything added later."""

    @blueprint.before_request
    def run_guard() -> t.Any:
        guard = state_of_app().guard
        if guard is None:
            return None
        result = guard()
        if result is None:
            return None
        return make_response(result)

    @blueprint.after_request
    def add_headers(response: Response) -> Response:
        policy = current_app.config.get("STATISTICS_CSP")
        if policy:
            response.headers["Content-Security-Policy"] = policy
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers.setdefault("Referrer-Policy", REFERRER_POLICY)
        return response


def external_url(value: t.Any) -> str | None:
    """``value`` when it is an absolute http(s) URL that is safe in an href, else None.

    Recorded referrers are attacker-controlled: ``javascript:``, ``data:`` and
    protocol-relative or malformed URLs never become links.
    """
    if not isinstance(value, str) or len(value) > 4096:
        return None
    if any(ord(c) < 0x21 or 0x7F <= ord(c) <= 0x9F or 0xD800 <= ord(c) <= 0xDFFF for c in value):
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
