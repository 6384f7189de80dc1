"""Writes captured records into the model's table.

``sync`` inserts inside the request's teardown. ``buffered`` appends to a bounded queue
that one background thread per process drains in batches, doing the user-agent parsing
and truncation there, off the request path. Writes use their own connection and
transaction on the model's engine, never the app's ``db.session``.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import typing as t
import weakref
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from .capture import Record
from .models import OPTIONAL_COLUMNS, REQUIRED_COLUMNS, bind_key
from .useragent import parse

logger = logging.getLogger("flask_statistics")

# Errors that say nothing about the rows themselves (server down, table not created
# yet, permissions): keep the batch and retry. Anything else is a bad row.
_TRANSIENT = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.ProgrammingError,
    sa_exc.TimeoutError,
)
_MAX_BACKOFF = 30.0


@dataclass(frozen=True)
class WriterHealth:
    """A snapshot of one app's writer."""

    mode: str
    running: bool
    written: int
    queued: int
    dropped: int
    last_error: str | None
    last_error_at: datetime | None


def mimetype(content_type: str | None) -> str | None:
    if not content_type:
        return None
    return content_type.partition(";")[0].strip().lower() or None


class RowBuilder:
    """Turns raw records into insert parameters for one table."""

    def __init__(self, table: sa.Table) -> None:
        self.table = table
        self.insert = table.insert()
        names = [n for n in REQUIRED_COLUMNS if n != "index"]
        names += [n for n in OPTIONAL_COLUMNS if n in table.c]
        self._keys = {name: table.c[name].key for name in names}
        self._limits = {
            table.c[name].key: table.c[name].type.length
            for name in names
            if isinstance(table.c[name].type, sa.String) and table.c[name].type.length
        }
        date_type = table.c["date"].type
        self._aware = bool(getattr(date_type, "timezone", False))
        self._is_bot = "is_bot" in table.c

    def row(self, record: Record) -> dict[str, t.Any]:
        client = parse(record.user_agent)
        date = datetime.fromtimestamp(record.timestamp, timezone.utc)
        values: dict[str, t.Any] = {
            "response_time": record.end - record.start,
            "date": date if self._aware else date.replace(tzinfo=None),
            "method": record.method,
            "size": record.size,
            "status_code": record.status_code,
            "path": record.path,
            "user_agent": record.user_agent,
            "remote_address": record.remote_address,
            "exception": record.exception,
            "referrer": record.referrer,
            "browser": client.browser,
            "platform": client.platform,
            "mimetype": mimetype(record.content_type),
        }
        if self._is_bot:
            values["is_bot"] = client.is_bot
        keys = self._keys
        row = {keys[name]: value for name, value in values.items()}
        for key, limit in self._limits.items():
            value = row[key]
            if value is not None and len(value) > limit:
                row[key] = value[:limit]
        for key, value in row.items():
            # PostgreSQL rejects NUL in text; a request can carry one in its path.
            if type(value) is str and "\x00" in value:
                row[key] = value.replace("\x00", "\ufffd")
        return row


class Writer:
    """One app's write path. ``emit`` is what the request hooks call."""

    def __init__(
        self,
        resolve_engine: t.Callable[[], sa.Engine],
        table: sa.Table,
        *,
        mode: str,
        batch_size: int,
        flush_interval: float,
        queue_size: int,
        shutdown_timeout: float,
    ) -> None:
        self._resolve_engine = resolve_engine
        self._engine: sa.Engine | None = None
        self._rows = RowBuilder(table)
        self.mode = mode
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._queue_size = queue_size
        self._shutdown_timeout = shutdown_timeout
        self.emit: t.Callable[[Record], None] = (
            self._write_now if mode == "sync" else self._enqueue
        )
        self._reset()
        _writers.add(self)

    def _reset(self) -> None:
        self._queue: deque[Record | threading.Event] = deque()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._busy = 0
        self._deadline = float("inf")
        self.written = 0
        self.dropped = 0
        self.last_error: str | None = None
        self.last_error_at: datetime | None = None

    # -- request path --------------------------------------------------------------

    def _enqueue(self, record: Record) -> None:
        queue = self._queue
        if len(queue) >= self._queue_size:
            with self._lock:
                self.dropped += 1
            return
        queue.append(record)
        if self._thread is None:
            self._start()
        elif len(queue) >= self._batch_size:
            self._wake.set()

    def _write_now(self, record: Record) -> None:
        try:
            self._insert([self._rows.row(record)])
        except Exception as exc:
            self._count_dropped(1, exc)
        else:
            self.written += 1

    # -- public --------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Block until every record queued before this call is written or dropped.

        Returns False if ``timeout`` seconds passed first.
        """
        if self.mode == "sync" or self._thread is None:
            return True
        done = threading.Event()
        self._queue.append(done)
        self._wake.set()
        return done.wait(timeout)

    def stop(self, timeout: float | None = None) -> None:
        """Write what is queued (for at most ``timeout`` seconds) and stop the thread."""
        thread = self._thread
        if thread is None:
            return
        limit = self._shutdown_timeout if timeout is None else timeout
        self._deadline = time.monotonic() + limit
        self._stopping.set()
        self._wake.set()
        thread.join(limit + 1.0)
        self._thread = None

    def health(self) -> WriterHealth:
        queued = sum(1 for item in list(self._queue) if isinstance(item, Record))
        thread = self._thread
        return WriterHealth(
            mode=self.mode,
            running=thread is not None and thread.is_alive(),
            written=self.written,
            queued=queued + self._busy,
            dropped=self.dropped,
            last_error=self.last_error,
            last_error_at=self.last_error_at,
        )

    # -- background thread ---------------------------------------------------------

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._stopping.clear()
            self._deadline = float("inf")
            thread = threading.Thread(
                target=self._run, name="flask-statistics-writer", daemon=True
            )
            self._thread = thread
            thread.start()

    def _run(self) -> None:
        while True:
            stopping = self._stopping.is_set()
            try:
                self._drain()
            except Exception:  # never let the thread die
                logger.exception("statistics writer failed")
            if stopping:
                return
            self._wake.wait(self._flush_interval)
            self._wake.clear()

    def _drain(self) -> None:
        queue = self._queue
        while queue:
            if self._stopping.is_set() and time.monotonic() >= self._deadline:
                self._drop_queue()
                return
            records: list[Record] = []
            markers: list[threading.Event] = []
            while queue and len(records) < self._batch_size:
                item = queue.popleft()
                if isinstance(item, threading.Event):
                    markers.append(item)
                    break
                records.append(item)
            self._busy = len(records)
            try:
                if records:
                    self._write_batch(records)
            finally:
                self._busy = 0
                for marker in markers:
                    marker.set()

    def _write_batch(self, records: list[Record]) -> None:
        rows = [self._rows.row(r) for r in records]
        delay = 0.5
        while True:
            try:
                self._insert(rows)
            except _TRANSIENT as exc:
                self._note_error(exc)
                if self._stopping.is_set():
                    if time.monotonic() >= self._deadline:
                        self._count_dropped(len(rows), exc)
                        return
                    time.sleep(min(delay, max(0.0, self._deadline - time.monotonic())))
                else:
                    self._stopping.wait(delay)
                delay = min(delay * 2, _MAX_BACKOFF)
                continue
            except Exception as exc:
                # Not a connection problem: some row is bad. Keep the rest.
                self._note_error(exc)
                self._write_one_by_one(rows)
                return
            self.written += len(rows)
            if self.last_error is not None and delay > 0.5:
                logger.warning("statistics writer recovered")
            return

    def _write_one_by_one(self, rows: list[dict[str, t.Any]]) -> None:
        for row in rows:
            try:
                self._insert([row])
            except Exception as exc:
                self._count_dropped(1, exc)
            else:
                self.written += 1

    def _insert(self, rows: list[dict[str, t.Any]]) -> None:
        engine = self._engine
        if engine is None:
            engine = self._engine = self._resolve_engine()
        with engine.begin() as conn:
            conn.execute(self._rows.insert, rows)

    def _drop_queue(self) -> None:
        left = 0
        while self._queue:
            item = self._queue.popleft()
            if isinstance(item, threading.Event):
                item.set()
            else:
                left += 1
        if left:
            with self._lock:
                self.dropped += left
            logger.error("statistics writer stopped with %d row(s) unwritten", left)

    def _note_error(self, exc: BaseException) -> None:
        first = self.last_error is None
        self.last_error = f"{type(exc).__name__}: {exc}"[:2000]
        self.last_error_at = datetime.now(timezone.utc)
        if first:
            logger.error("statistics writer could not write: %s", self.last_error)

    def _count_dropped(self, count: int, exc: BaseException) -> None:
        self._note_error(exc)
        with self._lock:
            self.dropped += count
        logger.error("statistics writer dropped %d row(s): %s", count, self.last_error)

    def _after_fork(self) -> None:
        # The child must not write the parent's queue, nor talk through connections
        # it inherited: forget the pooled ones without closing them (closing would
        # also end them for the parent).
        try:
            engine = self._engine or self._resolve_engine()
            engine.dispose(close=False)
        except Exception:
            self._engine = None
        self._reset()


_writers: weakref.WeakSet[Writer] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for writer in list(_writers):
        writer._after_fork()


def _stop_all() -> None:
    for writer in list(_writers):
        writer.stop()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_stop_all)


def engine_resolver(app: t.Any, db: t.Any, table: sa.Table) -> t.Callable[[], sa.Engine]:
    key = bind_key(table)

    def resolve() -> sa.Engine:
        with app.app_context():
            try:
                return db.engines[key]
            except KeyError:
                raise RuntimeError(
                    f"the statistics table {table.name!r} uses bind key {key!r}, which "
                    "is not in SQLALCHEMY_BINDS; add it there or remove __bind_key__"
                ) from None

    return resolve
