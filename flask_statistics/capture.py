"""Request hooks: time each request and build a plain record of what was served.

Nothing here parses or touches the database; the record goes to the writer as raw
strings, so the cost on the request path stays a few microseconds.
"""

from __future__ import annotations

import logging
import time
import typing as t
from time import perf_counter

from flask import Flask, Response, current_app, g, request
from werkzeug.wsgi import ClosingIterator

logger = logging.getLogger("flask_statistics")

_G_KEY = "_flask_statistics"
_NO_BODY_STATUS = frozenset((204, 304))


class Record(t.NamedTuple):
    """One served request, as captured on the request path."""

    timestamp: float  # arrival, seconds since the epoch (UTC)
    response_time: float  # seconds, monotonic clock
    method: str
    size: int | None
    status_code: int
    path: str
    user_agent: str | None
    remote_address: str | None
    exception: str | None
    referrer: str | None
    mimetype: str | None


class _Pending:
    __slots__ = ("start", "timestamp", "end", "status", "mimetype", "size", "exception")

    def __init__(self) -> None:
        self.timestamp = time.time()
        self.start = perf_counter()
        self.end: float | None = None
        self.status: int | None = None
        self.mimetype: str | None = None
        self.size: int | None = None
        self.exception: str | None = None


class Capture:
    """The hooks one app uses; ``sink`` receives every finished :class:`Record`."""

    def __init__(
        self,
        sink: t.Callable[[Record], None],
        *,
        dashboard_prefix: str,
        exclude_prefixes: tuple[str, ...],
        exclude_patterns: tuple[t.Any, ...],
        exempt_views: set[t.Callable[..., t.Any]],
        exempt_blueprints: set[str],
        dashboard_blueprint: str,
        disable_f: t.Callable[[], t.Any] | None,
    ) -> None:
        self._sink = sink
        self._dashboard_prefix = dashboard_prefix
        self._dashboard_sub = dashboard_prefix.rstrip("/") + "/"
        self._exclude_prefixes = exclude_prefixes
        self._exclude_patterns = exclude_patterns
        self._exempt_views = exempt_views
        self._exempt_blueprints = exempt_blueprints
        self._dashboard_blueprint = dashboard_blueprint
        self._disable_f = disable_f

    def install(self, app: Flask) -> None:
        # A URL value preprocessor at the front runs before every other
        # preprocessor and before_request function, including for 404s.
        app.url_value_preprocessors.setdefault(None, []).insert(0, self._start)
        # after_request functions run in reverse order: first in the list runs last,
        # so this sees the response every other hook has finished with.
        app.after_request_funcs.setdefault(None, []).insert(0, self._after)
        app.teardown_request_funcs.setdefault(None, []).insert(0, self._teardown)

    # -- hooks ---------------------------------------------------------------------

    def _start(self, endpoint: str | None, values: t.Any) -> None:
        if self._ignored():
            g.pop(_G_KEY, None)
            return
        setattr(g, _G_KEY, _Pending())

    def _after(self, response: Response) -> Response:
        pending: _Pending | None = g.get(_G_KEY)
        if pending is None or pending.end is not None:
            return response
        pending.end = perf_counter()
        pending.status = response.status_code
        pending.mimetype = response.mimetype
        if not self._wanted():
            g.pop(_G_KEY, None)
            return response
        if request.method == "HEAD" or response.status_code in _NO_BODY_STATUS or (
            100 <= response.status_code < 200
        ):
            pending.size = 0
        elif _buffered_elsewhere(response):
            # Werkzeug responses Flask converted (HTTP errors, redirects) arrive as an
            # iterator over a finished body whose length is already known.
            response.make_sequence()
            pending.size = response.calculate_content_length()
        elif response.is_streamed or response.direct_passthrough:
            # The body is counted as it is sent; the row is emitted when it closes.
            g.pop(_G_KEY, None)
            meta = self._meta()
            body = _CountingBody(
                response.response,
                response.iter_encoded(),
                lambda p: self._emit(p, meta),
                pending,
            )
            response.response = body
            response.direct_passthrough = False
        else:
            pending.size = response.calculate_content_length()
        return response

    def _teardown(self, exc: BaseException | None) -> None:
        pending: _Pending | None = g.pop(_G_KEY, None)
        if pending is None:
            return
        if pending.end is None:
            # No response reached after_request: the exception propagated (testing or
            # debug mode) or another hook failed.
            pending.end = perf_counter()
            if not self._wanted():
                return
        if exc is not None:
            pending.exception = repr(exc)
            pending.status = 500
        elif pending.status is None:
            pending.status = 500
        self._emit(pending, self._meta())

    # -- helpers -------------------------------------------------------------------

    def _ignored(self) -> bool:
        path = request.path
        if path == self._dashboard_prefix or path.startswith(self._dashboard_sub):
            return True
        if self._exclude_prefixes and path.startswith(self._exclude_prefixes):
            return True
        for pattern in self._exclude_patterns:
            if pattern.search(path):
                return True
        blueprints = request.blueprints
        if self._dashboard_blueprint in blueprints:
            return True
        if self._exempt_blueprints and not self._exempt_blueprints.isdisjoint(blueprints):
            return True
        if self._exempt_views and request.endpoint is not None:
            view = current_app.view_functions.get(request.endpoint)
            if view in self._exempt_views:
                return True
        return False

    def _wanted(self) -> bool:
        if self._disable_f is None:
            return True
        try:
            return not self._disable_f()
        except Exception:
            # An opt-out check that fails must not record the request it guards.
            logger.exception("disable_f raised; this request is not recorded")
            return False

    @staticmethod
    def _meta() -> tuple[str, str, str | None, str | None, str | None]:
        headers = request.headers
        return (
            request.method,
            request.path,
            headers.get("User-Agent"),
            request.remote_addr,
            headers.get("Referer"),
        )

    def _emit(
        self, pending: _Pending, meta: tuple[str, str, str | None, str | None, str | None]
    ) -> None:
        method, path, user_agent, remote_address, referrer = meta
        record = Record(
            pending.timestamp,
            pending.end - pending.start,  # type: ignore[operator]
            method,
            pending.size,
            pending.status,  # type: ignore[arg-type]
            path,
            user_agent,
            remote_address,
            pending.exception,
            referrer,
            pending.mimetype,
        )
        try:
            self._sink(record)
        except Exception:
            logger.exception("could not hand a request record to the writer")


def _buffered_elsewhere(response: Response) -> bool:
    return (
        type(response.response) is ClosingIterator
        and response.content_length is not None
        and not response.direct_passthrough
    )


class _CountingBody:
    """Wraps a streamed body, counts the bytes sent and reports once on close."""

    __slots__ = ("_original", "_chunks", "_report", "_pending", "_closed")

    def __init__(
        self,
        original: t.Any,
        chunks: t.Iterator[bytes],
        report: t.Callable[[_Pending], None],
        pending: _Pending,
    ) -> None:
        self._original = original
        self._chunks = chunks
        self._report = report
        self._pending = pending
        self._closed = False
        pending.size = 0

    def __iter__(self) -> t.Iterator[bytes]:
        pending = self._pending
        try:
            for chunk in self._chunks:
                pending.size += len(chunk)  # type: ignore[operator]
                yield chunk
        except GeneratorExit:
            raise
        except BaseException as exc:
            pending.exception = repr(exc)
            pending.status = 500
            raise

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._chunks.close()  # type: ignore[attr-defined]
            close = getattr(self._original, "close", None)
            if close is not None:
                close()
        finally:
            self._pending.end = perf_counter()
            self._report(self._pending)
