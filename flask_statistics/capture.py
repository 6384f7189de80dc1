"""Request hooks: time each request and build a plain record of what was served.

Nothing here parses or touches the database; the record goes to the writer as raw
strings, so the cost on the request path stays a few microseconds.
"""

from __future__ import annotations

import logging
import time
import typing as t
from time import perf_counter

from flask import Flask, Response, current_app, g, got_request_exception, request
from werkzeug.wsgi import ClosingIterator

logger = logging.getLogger("flask_statistics")

_G_KEY = "_flask_statistics"
_NO_BODY_STATUS = frozenset((204, 304))


class Record:
    """One served request, as captured on the request path (raw, unparsed)."""

    __slots__ = (
        "timestamp",  # arrival, seconds since the epoch (UTC)
        "start",  # perf_counter() at arrival
        "method",
        "path",
        "user_agent",
        "remote_address",
        "referrer",
        "end",  # perf_counter() when handling ended
        "status_code",
        "content_type",  # the raw Content-Type header; the writer takes the mimetype
        "size",
        "exception",
    )

    def __init__(
        self,
        timestamp: float,
        start: float,
        method: str,
        path: str,
        user_agent: str | None,
        remote_address: str | None,
        referrer: str | None,
    ) -> None:
        self.timestamp = timestamp
        self.start = start
        self.method = method
        self.path = path
        self.user_agent = user_agent
        self.remote_address = remote_address
        self.referrer = referrer
        self.end: float = start
        self.status_code: int = 500
        self.content_type: str | None = None
        self.size: int | None = None
        self.exception: str | None = None

    @property
    def response_time(self) -> float:
        return self.end - self.start


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
        disable_f: t.Callable[[], t.Any] | None,
    ) -> None:
        self._sink = sink
        self._dashboard_prefix = dashboard_prefix
        self._dashboard_sub = dashboard_prefix + "/"
        self._exclude_prefixes = exclude_prefixes
        self._exclude_patterns = exclude_patterns
        self._exempt_views = exempt_views
        self._exempt_blueprints = exempt_blueprints
        self._disable_f = disable_f

    def install(self, app: Flask) -> None:
        # A URL value preprocessor at the front runs before every other
        # preprocessor and before_request function, including for 404s.
        app.url_value_preprocessors.setdefault(None, []).insert(0, self._start)
        # after_request functions run in reverse order: first in the list runs last,
        # so this sees the response every other hook has finished with.
        app.after_request_funcs.setdefault(None, []).insert(0, self._after)
        app.teardown_request_funcs.setdefault(None, []).insert(0, self._teardown)
        got_request_exception.connect(self._on_exception, app, weak=False)

    # -- hooks ---------------------------------------------------------------------

    def _start(self, endpoint: str | None, values: t.Any) -> None:
        req = request._get_current_object()  # type: ignore[attr-defined]
        path = req.path
        if self._ignored(req, path):
            return
        environ = req.environ
        setattr(
            g,
            _G_KEY,
            Record(
                time.time(),
                perf_counter(),
                req.method,
                path,
                environ.get("HTTP_USER_AGENT"),
                environ.get("REMOTE_ADDR"),
                environ.get("HTTP_REFERER"),
            ),
        )

    def _on_exception(self, sender: Flask, exception: BaseException, **extra: t.Any) -> None:
        record: Record | None = g.get(_G_KEY)
        if record is not None:
            record.exception = repr(exception)

    def _after(self, response: Response) -> Response:
        record: Record | None = g.pop(_G_KEY, None)
        if record is None:
            return response
        record.end = perf_counter()
        status = record.status_code = response.status_code
        record.content_type = response.headers.get("Content-Type")
        if self._disable_f is not None and not self._wanted():
            return response
        if record.method == "HEAD" or status < 200 or status in _NO_BODY_STATUS:
            record.size = 0
        elif _buffered_elsewhere(response):
            # Werkzeug responses Flask converted (HTTP errors, redirects) arrive as an
            # iterator over a finished body whose length is already known.
            response.make_sequence()
            record.size = response.calculate_content_length()
        elif response.is_streamed or response.direct_passthrough:
            # The body is counted as it is sent; the row is emitted when it closes.
            response.response = _CountingBody(
                response.response, response.iter_encoded(), self._emit, record
            )
            response.direct_passthrough = False
            return response
        else:
            record.size = response.calculate_content_length()
        self._emit(record)
        return response

    def _teardown(self, exc: BaseException | None) -> None:
        record: Record | None = g.pop(_G_KEY, None)
        if record is None:
            return
        # No response reached after_request: the exception propagated (testing or
        # debug mode) or a hook failed.
        record.end = perf_counter()
        record.status_code = 500
        if exc is not None:
            record.exception = repr(exc)
        if self._wanted():
            self._emit(record)

    # -- helpers -------------------------------------------------------------------

    def _ignored(self, req: t.Any, path: str) -> bool:
        if path == self._dashboard_prefix or path.startswith(self._dashboard_sub):
            return True
        if self._exclude_prefixes and path.startswith(self._exclude_prefixes):
            return True
        for pattern in self._exclude_patterns:
            if pattern.search(path):
                return True
        if self._exempt_blueprints and not self._exempt_blueprints.isdisjoint(
            req.blueprints
        ):
            return True
        if self._exempt_views and req.endpoint is not None:
            view = current_app.view_functions.get(req.endpoint)
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

    def _emit(self, record: Record) -> None:
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

    __slots__ = ("_original", "_chunks", "_report", "_record", "_closed")

    def __init__(
        self,
        original: t.Any,
        chunks: t.Iterator[bytes],
        report: t.Callable[[Record], None],
        record: Record,
    ) -> None:
        self._original = original
        self._chunks = chunks
        self._report = report
        self._record = record
        self._closed = False
        record.size = 0

    def __iter__(self) -> t.Iterator[bytes]:
        record = self._record
        try:
            for chunk in self._chunks:
                record.size += len(chunk)  # type: ignore[operator]
                yield chunk
        except GeneratorExit:
            raise
        except BaseException as exc:
            record.exception = repr(exc)
            record.status_code = 500
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
            self._record.end = perf_counter()
            self._report(self._record)
