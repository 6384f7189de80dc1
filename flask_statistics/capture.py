"""Request hooks: time each request and build a plain record of what was served.

Nothing here parses or touches the database; the record goes to the writer as raw
strings, so the cost on the request path stays a few microseconds. Strings are cut to
the maximums below before anything is queued, so a queued record is small whatever a
client sends, and the address and referrer are minimised here when the app asks for it.
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
# The app context's real ``g``: going through the proxy for each access cost more
# than the rest of a hook.
_g = g._get_current_object
_NO_BODY_STATUS = frozenset((204, 304))

#: The most characters kept of each recorded string, whatever its column allows.
MAX_PATH = 2048
MAX_USER_AGENT = 512
MAX_REFERRER = 2048
MAX_EXCEPTION = 4096
MAX_ADDRESS = 128
MAX_METHOD = 32
MAX_CONTENT_TYPE = 256
MAX_ROUTE = 512
#: What a queued record costs beside its strings (object, slots, numbers), in bytes.
RECORD_OVERHEAD = 400

AddressFilter = t.Callable[[t.Optional[str], float], t.Optional[str]]
ReferrerFilter = t.Callable[[t.Optional[str]], t.Optional[str]]


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
        "route",  # the matched URL rule, e.g. "/items/<int:id>"; None when none matched
        "end",  # perf_counter() when handling ended
        "status_code",
        "content_type",  # the raw Content-Type header; the writer takes the mimetype
        "size",
        "exception",
        "cost",  # bytes held while queued, set by the writer's queue
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
        route: str | None = None,
    ) -> None:
        self.timestamp = timestamp
        self.start = start
        self.method = method
        self.path = path
        self.user_agent = user_agent
        self.remote_address = remote_address
        self.referrer = referrer
        self.route = route
        self.end: float = start
        self.status_code: int = 500
        self.content_type: str | None = None
        self.size: int | None = None
        self.exception: str | None = None
        self.cost = 0

    @property
    def response_time(self) -> float:
        return self.end - self.start


def footprint(record: Record) -> int:
    """About how many bytes ``record`` holds; the queue's byte bound counts these.

    The route is left out: it is the app's own rule string, shared, not a copy.
    """
    return (
        RECORD_OVERHEAD
        + len(record.path)
        + len(record.user_agent or "")
        + len(record.referrer or "")
        + len(record.exception or "")
    )


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
        address_filter: AddressFilter | None = None,
        referrer_filter: ReferrerFilter | None = None,
    ) -> None:
        self._sink = sink
        self._address_filter = address_filter
        self._referrer_filter = referrer_filter
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
        # Weak, so the signal never keeps this app (and its writer) alive.
        got_request_exception.connect(self._on_exception, app, weak=True)

    # -- hooks ---------------------------------------------------------------------

    def _start(self, endpoint: str | None, values: t.Any) -> None:
        req = request._get_current_object()  # type: ignore[attr-defined]
        path = req.path
        if self._ignored(req, path):
            return
        environ = req.environ
        user_agent = environ.get("HTTP_USER_AGENT")
        address = environ.get("REMOTE_ADDR")
        referrer = environ.get("HTTP_REFERER")
        rule = req.url_rule
        _g().__dict__[_G_KEY] = Record(
            time.time(),
            perf_counter(),
            req.method[:MAX_METHOD],
            path[:MAX_PATH],
            user_agent[:MAX_USER_AGENT] if user_agent else user_agent,
            address[:MAX_ADDRESS] if address else address,
            referrer[:MAX_REFERRER] if referrer else referrer,
            rule.rule[:MAX_ROUTE] if rule is not None else None,
        )

    def _on_exception(self, sender: Flask, exception: BaseException, **extra: t.Any) -> None:
        record: Record | None = _g().__dict__.get(_G_KEY)
        if record is not None:
            record.exception = repr(exception)[:MAX_EXCEPTION]

    def _after(self, response: Response) -> Response:
        record: Record | None = _g().__dict__.pop(_G_KEY, None)
        if record is None:
            return response
        record.end = perf_counter()
        status = record.status_code = response.status_code
        content_type = response.headers.get("Content-Type")
        record.content_type = content_type[:MAX_CONTENT_TYPE] if content_type else None
        if self._disable_f is not None and not self._wanted():
            return response
        body = response.response
        if record.method == "HEAD" or status < 200 or status in _NO_BODY_STATUS:
            record.size = 0
        elif type(body) is list and len(body) == 1 and type(body[0]) is bytes:
            # What set_data() leaves: the usual body of a view's return value.
            record.size = len(body[0])
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
        record: Record | None = _g().__dict__.pop(_G_KEY, None)
        if record is None:
            return
        # No response reached after_request: the exception propagated (testing or
        # debug mode) or a hook failed.
        record.end = perf_counter()
        record.status_code = 500
        if exc is not None:
            record.exception = repr(exc)[:MAX_EXCEPTION]
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
            self._minimise(record)
            self._sink(record)
        except Exception:
            logger.exception("could not hand a request record to the writer")


    def _minimise(self, record: Record) -> None:
        address_filter = self._address_filter
        if address_filter is not None:
            try:
                record.remote_address = address_filter(record.remote_address, record.timestamp)
            except Exception:
                record.remote_address = None  # never store what could not be minimised
                logger.exception("could not anonymise a client address")
        referrer_filter = self._referrer_filter
        if referrer_filter is not None and record.referrer is not None:
            try:
                record.referrer = referrer_filter(record.referrer)
            except Exception:
                record.referrer = None
                logger.exception("could not shorten a referrer")


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
            record.exception = repr(exc)[:MAX_EXCEPTION]
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
