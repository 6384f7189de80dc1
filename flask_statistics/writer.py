"""Writes captured records into the model's table.

Both modes hand records to one background thread per app and process, which writes
them in batches on its own connection and transaction on the model's engine, never
the app's ``db.session``. ``buffered`` returns at once; ``sync`` waits until the row
is committed, for at most ``STATISTICS_SYNC_TIMEOUT`` seconds.

The thread holds only a weak reference to the :class:`Writer` an app keeps, and the
engine is found through a weak reference to the app, so an app that is dropped is
garbage-collected: its thread writes what is left, releases the engine and ends.
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
from functools import partial

import sqlalchemy as sa
from sqlalchemy.pool import SingletonThreadPool, StaticPool

from . import faults
from .capture import Record, footprint
from .models import bind_key
from .rollups.aggregate import Totals
from .rollups.writing import Cuts, RollupFailed, Rollups
from .rows import RowBuilder
from .schema import present_columns

__all__ = ["Writer", "WriterHealth", "engine_resolver", "stop_all"]

logger = logging.getLogger("flask_statistics")

_FIRST_BACKOFF = 0.5
# Rows built between two chances for request threads to run: a fraction of a
# millisecond of work.
_ROWS_PER_SLICE = 100
_MAX_BACKOFF = 30.0

Task = t.Callable[[sa.Engine], None]


@dataclass(frozen=True)
class WriterHealth:
    """A snapshot of one app's writer.

    ``dropped`` counts rows never written (queue full, database unreachable at exit or
    in sync mode); ``rejected`` counts rows the database refused.
    """

    mode: str
    running: bool
    written: int
    queued: int
    dropped: int
    last_error: str | None
    last_error_at: datetime | None
    rejected: int = 0
    #: While rows recorded before the rollups existed are being counted into them:
    #: the rows dated before this instant (naive UTC) still wait. None when done.
    backfill_before: datetime | None = None
    #: The oldest row's date when the backfill began, for progress.
    backfill_from: datetime | None = None


class _GiveUp(Exception):
    """The rows of the current batch cannot be written now and are not retried."""


class _Core:
    """The queue, the counters and the write path; shared by the app's Writer and
    the background thread, and holding no reference to the app."""

    def __init__(
        self,
        resolve_engine: t.Callable[[], sa.Engine],
        table: sa.Table,
        *,
        mode: str,
        batch_size: int,
        flush_interval: float,
        queue_size: int,
        queue_bytes: int = 16 * 1024 * 1024,
        shutdown_timeout: float,
        sync_timeout: float = 2.0,
        maintenance: t.Sequence[Task] = (),
        rollups: Rollups | None = None,
    ) -> None:
        self._resolve_engine = resolve_engine
        self._rollups = rollups
        self._rows = RowBuilder(table)
        self._table = table
        self.mode = mode
        self._batch_size = batch_size
        # Wake well before the queue is full, whatever the batch size.
        self._wake_at = max(1, min(batch_size, queue_size // 5))
        self._flush_interval = flush_interval
        self._queue_size = queue_size
        self._queue_bytes = queue_bytes
        self._shutdown_timeout = shutdown_timeout
        self._sync_timeout = sync_timeout
        self._maintenance = tuple(maintenance)
        self._owner: weakref.ref[Writer] | None = None
        self._reset()
        _cores.add(self)

    def _reset(self) -> None:
        self._engine: sa.Engine | None = None
        self._unsafe: str | None = None
        self._queue: deque[Record | threading.Event] = deque()
        self._held_bytes = 0
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._busy = 0
        self._busy_since: float | None = None
        self._deadline = float("inf")
        self.written = 0
        self.dropped = 0
        self.rejected = 0
        self.last_error: str | None = None
        self.last_error_at: datetime | None = None
        self._failing = False
        self._drop_logged = False
        self._abandoned = 0
        self._last_row_error: BaseException | None = None

    # -- request path --------------------------------------------------------------

    def enqueue(self, record: Record) -> None:
        if not self._admit(record):
            return
        if self._thread is None:
            self._start()
        elif len(self._queue) >= self._wake_at and not self._wake.is_set():
            # Setting an Event takes its lock and notifies: only when it would wake.
            self._wake.set()

    def write_now(self, record: Record) -> None:
        if not self._admit(record):
            return
        done = threading.Event()
        self._queue.append(done)
        if self._thread is None:
            self._start()
        self._wake.set()
        since = self._busy_since
        if since is not None and time.monotonic() - since > self._sync_timeout:
            return  # the database already hangs on an earlier row: don't wait too
        done.wait(self._sync_timeout)

    def _admit(self, record: Record) -> bool:
        cost = record.cost = footprint(record)
        with self._lock:
            if len(self._queue) >= self._queue_size or self._held_bytes + cost > self._queue_bytes:
                self.dropped += 1
                return False
            self._held_bytes += cost
            self._queue.append(record)
        return True

    # -- control -------------------------------------------------------------------

    def flush(self, timeout: float | None) -> bool:
        if self._thread is None:
            return True
        done = threading.Event()
        self._queue.append(done)
        self._wake.set()
        return done.wait(timeout)

    def begin_stop(self, deadline: float) -> threading.Thread | None:
        thread = self._thread
        if thread is None:
            return None
        self._deadline = deadline
        self._stopping.set()
        self._wake.set()
        return thread

    def stop(self, timeout: float | None) -> None:
        limit = self._shutdown_timeout if timeout is None else timeout
        thread = self.begin_stop(time.monotonic() + limit)
        if thread is not None:
            thread.join(limit + 1.0)
            self._thread = None

    def health(self) -> WriterHealth:
        thread = self._thread
        return WriterHealth(
            mode=self.mode,
            running=thread is not None and thread.is_alive(),
            written=self.written,
            queued=self.unwritten(),
            dropped=self.dropped,
            last_error=self.last_error,
            last_error_at=self.last_error_at,
            rejected=self.rejected,
        )

    def owner_gone(self, _ref: t.Any = None) -> None:
        # The app was garbage-collected: write what is left, then end.
        self.begin_stop(time.monotonic() + self._shutdown_timeout)

    # -- background thread ---------------------------------------------------------

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._stopping.clear()
            self._deadline = float("inf")
            thread = threading.Thread(target=self._run, name="flask-statistics-writer", daemon=True)
            self._thread = thread
            thread.start()

    def _run(self) -> None:
        self._maintain()
        while True:
            stopping = self._stopping.is_set()
            try:
                self._drain()
                if not stopping:
                    self._maintain()
            except Exception:  # never let the thread die
                logger.exception("statistics writer failed")
            if stopping:
                if self._abandoned:
                    logger.error(
                        "statistics writer stopped with %d row(s) not written (%s)",
                        self._abandoned,
                        self.last_error or "out of time",
                    )
                    self._abandoned = 0
                if self._owner is not None and self._owner() is None:
                    self._release_engine()
                return
            self._wake.wait(self._flush_interval)
            self._wake.clear()

    def _drain(self) -> None:
        queue = self._queue
        # Only what is queued now: rows that arrive meanwhile wait for the next wake,
        # so a busy app gets one large batch per interval, not a stream of small ones
        # (each batch costs a transaction and thread switches in the request threads).
        # A flush or a full queue sets the wake event, so they don't wait.
        pending = len(queue)
        while queue and (pending > 0 or self._stopping.is_set()):
            if self._stopping.is_set() and time.monotonic() >= self._deadline:
                self._drop_queue()
                return
            records: list[Record] = []
            markers: list[threading.Event] = []
            while queue and len(records) < self._batch_size:
                item = queue.popleft()
                pending -= 1
                if isinstance(item, threading.Event):
                    markers.append(item)
                    break
                records.append(item)
            self._busy = len(records)
            try:
                if records:
                    self._write_batch(records)
            finally:
                # A batch held for a retry still counts against the byte bound.
                freed = sum(r.cost for r in records)
                with self._lock:
                    self._held_bytes -= freed
                self._busy = 0
                for marker in markers:
                    marker.set()

    def _write_batch(self, records: list[Record]) -> None:
        try:
            self._engine_or_give_up()
        except _GiveUp:
            self._count_dropped(len(records))
            return
        facts: list[t.Any] | None = [] if self._rollups is not None else None
        batch = _Batch(self._rows, records, facts)
        # Streamed to PostgreSQL, the rows are made as the COPY sends them, while the
        # server stores the ones before.
        rows: list[t.Any] | _Batch = batch if self._rows.streams else batch.complete()
        # A stack of chunks: a chunk the database refuses is split in two until the
        # refused rows stand alone; the others are written.
        chunks: list[tuple[list[t.Any] | _Batch, list[t.Any] | None]] = [(rows, facts)]
        delay = _FIRST_BACKOFF
        table_ok = False
        while chunks:
            chunk, chunk_facts = chunks[-1]
            try:
                kind = self._insert(chunk, chunk_facts, check_table=not table_ok)
            except _GiveUp:
                self._count_dropped(sum(len(c) for c, _ in chunks))
                return
            if kind is None:
                chunks.pop()
                self.written += len(chunk)
                if self._failing:
                    self._failing = self._drop_logged = False
                    logger.warning("statistics writer recovered")
                continue
            if kind == faults.ROW:
                if not table_ok:
                    # The table takes inserts now, but it may have been created just
                    # after the insert failed: try the chunk once more before
                    # blaming its rows.
                    table_ok = True
                    continue
                chunks.pop()
                if isinstance(chunk, _Batch):
                    chunk = chunk.complete()
                if len(chunk) == 1:
                    self._reject(chunk[0])
                else:
                    middle = len(chunk) // 2
                    halves = [(chunk[middle:], None), (chunk[:middle], None)]
                    if chunk_facts is not None:
                        halves = [(chunk[middle:], chunk_facts[middle:]), (chunk[:middle], chunk_facts[:middle])]
                    chunks += halves
                continue
            if not self._wait_to_retry(kind, delay):
                self._count_dropped(sum(len(c) for c, _ in chunks))
                return
            delay = min(delay * 2, _MAX_BACKOFF)

    def _insert(
        self, rows: list[t.Any] | _Batch, facts: list[t.Any] | None, *, check_table: bool
    ) -> str | None:
        """Insert ``rows`` in one transaction, adding ``facts`` to the rollups there;
        None on success, else the kind of failure."""
        engine = self._engine_or_give_up()
        rollups = self._rollups if facts is not None else None
        if rollups is not None and not rollups.ready(engine):
            rollups = None
        entries: t.Any = None
        if rollups is not None and rows:
            # Summing the batch is the costly part; streamed to PostgreSQL, it is done
            # while the server stores the rows (see Rows.insert). ``facts`` is complete
            # by then, made with the rows.
            entries = _Entries(rollups, facts)
            if not self._rows.streams:
                entries.compute()
        self._busy_since = time.monotonic()
        try:
            try:
                conn = engine.connect()
            except Exception as exc:
                self._note_error(exc)
                return faults.CONNECTION
            with conn:
                try:
                    locked = self._write(conn, rows, rollups, entries)
                    if rollups is not None and not locked:
                        # No state row yet: it is made now, and the rows just written
                        # are counted by the backfill it asks for.
                        rollups.create_state(engine)
                    return None
                except RollupFailed as failed:
                    cause = failed.__cause__ or failed
                    if faults.is_connection_failure(cause):
                        self._note_error(cause)
                        return faults.CONNECTION
                    assert rollups is not None and facts is not None
                    try:
                        self._write(conn, rows, None, None)
                    except Exception as exc:
                        error: BaseException = exc
                    else:
                        rollups.failed(engine, facts, failed)
                        return None
                except Exception as exc:
                    error = exc
                if faults.is_connection_failure(error):
                    self._note_error(error)
                    return faults.CONNECTION
                if not check_table:
                    self._last_row_error = error
                    return faults.ROW
                try:
                    with conn.begin():
                        conn.execute(faults.accepts_inserts_probe(self._rows.table))
                except Exception as exc:
                    self._note_error(exc)
                    return faults.CONNECTION if faults.is_connection_failure(exc) else faults.TABLE
                self._last_row_error = error
                return faults.ROW
        finally:
            self._busy_since = None

    def _write(
        self, conn: sa.Connection, rows: list[t.Any] | _Batch, rollups: Rollups | None, entries: t.Any
    ) -> bool:
        """One transaction: the writers' lock, the rows, their rollups. Returns whether
        the lock (and so the rollups) was taken."""
        with conn.begin():
            locked = rollups is not None and rollups.lock(conn)
            cuts = rollups.cuts(conn) if rollups is not None and locked and entries is not None else None
            self._rows.insert(conn, rows, None if entries is None else partial(entries.compute, cuts))
            if cuts is not None:
                assert rollups is not None
                rollups.apply(conn, entries.keyed(cuts))
        return locked

    def _wait_to_retry(self, kind: str, delay: float) -> bool:
        """Sleep before the next try; False when the rows are to be given up instead."""
        if self.mode == "sync":
            return False  # sync mode does not keep requests' rows for later
        if self._stopping.is_set():
            if kind == faults.TABLE:
                return False  # a missing table will not appear during exit
            remaining = self._deadline - time.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(delay, remaining))
            return True
        self._stopping.wait(delay)
        return True

    def _engine_or_give_up(self) -> sa.Engine:
        engine = self._engine
        if engine is None:
            try:
                engine = self._resolve_engine()
            except Exception as exc:
                self._note_error(exc)
                raise _GiveUp from exc
            self._unsafe = _shared_connection(engine)
            present = None
            if self._unsafe is not None:
                logger.warning(
                    "flask-statistics does not write to %s: the app's db.session shares "
                    "that connection, and committing rows there would commit the app's "
                    "own unfinished work. Rows are counted as dropped; use a database "
                    "file, e.g. sqlite:///statistics.db, to keep them.",
                    self._unsafe,
                )
            else:
                self._busy_since = time.monotonic()  # a hang here also stops sync waits
                try:
                    present = present_columns(engine, self._table)
                finally:
                    self._busy_since = None
            self._rows.prepare(engine.dialect, present)
            # Until the table can be inspected, ask again each time (rows are written
            # with all the model's columns meanwhile).
            if present is not None or self._unsafe is not None:
                self._engine = engine
        if self._unsafe is not None:
            self.last_error = f"not written: {self._unsafe} shares the app's connection"
            raise _GiveUp
        return engine

    def _maintain(self) -> None:
        if not self._maintenance:
            return
        try:
            engine = self._engine_or_give_up()
        except _GiveUp:
            return
        for task in self._maintenance:
            self._busy_since = time.monotonic()  # a hang here also stops sync waits
            try:
                task(engine)
            except Exception as exc:
                logger.error(
                    "statistics maintenance (%s) failed: %s",
                    getattr(task, "__name__", type(task).__name__),
                    faults.describe(exc, self._table),
                )
            finally:
                self._busy_since = None

    def _release_engine(self) -> None:
        engine, self._engine = self._engine, None
        if engine is not None:
            engine.dispose()

    def _drop_queue(self) -> None:
        left = 0
        freed = 0
        while self._queue:
            item = self._queue.popleft()
            if isinstance(item, threading.Event):
                item.set()
            else:
                left += 1
                freed += item.cost
        with self._lock:
            self._held_bytes -= freed
        if left:
            self._count_dropped(left)

    # -- accounting ----------------------------------------------------------------

    def _note_error(self, exc: BaseException) -> None:
        self.last_error = faults.describe(exc, self._table)
        self.last_error_at = datetime.now(timezone.utc)
        if not self._failing:
            self._failing = True
            logger.error("statistics writer could not write: %s", self.last_error)

    def _reject(self, row: t.Any) -> None:
        error = self._last_row_error
        reason = faults.describe(error, self._table)
        self.last_error = f"row rejected: {reason}"
        self.last_error_at = datetime.now(timezone.utc)
        with self._lock:
            self.rejected += 1
        logger.error("statistics writer: the database rejected a row: %s", reason)

    def _count_dropped(self, count: int) -> None:
        with self._lock:
            self.dropped += count
        if self._stopping.is_set():
            self._abandoned += count  # logged once, as a total, when the thread ends
        elif not self._drop_logged:  # once per outage, not once per request
            self._drop_logged = True
            logger.error(
                "statistics writer dropped %d row(s): %s; health() counts the rest",
                count,
                self.last_error,
            )

    def unwritten(self) -> int:
        return sum(1 for item in list(self._queue) if isinstance(item, Record)) + self._busy

    def _after_fork(self) -> None:
        # The child must not write the parent's queue, nor talk through connections
        # it inherited: forget the pooled ones without closing them (closing would
        # also end them for the parent).
        try:
            engine = self._engine or self._resolve_engine()
            engine.dispose(close=False)
        except Exception:
            pass
        self._reset()


class _Batch:
    """The rows (and rollup facts) of a batch of records, made a slice at a time as
    they are first iterated, then kept for another try."""

    def __init__(self, builder: RowBuilder, records: list[Record], facts: list[t.Any] | None) -> None:
        self._builder = builder
        self._records = records
        self._facts = facts
        self._rows: list[t.Any] = []

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> t.Iterator[t.Any]:
        done = 0
        while True:
            yield from self._rows[done:]
            done = len(self._rows)
            if not self._more():
                return

    def _more(self) -> bool:
        made = len(self._rows)
        if made >= len(self._records):
            return False
        self._rows += self._builder.rows(self._records[made : made + _ROWS_PER_SLICE], self._facts)
        time.sleep(0)  # let request threads take the GIL between slices
        return True

    def complete(self) -> list[t.Any]:
        while self._more():
            pass
        return self._rows


class _Entries:
    """A batch's rollup entries, summed once, then keyed once the cuts are known:
    the writer's costliest work, done by :meth:`compute` while PostgreSQL stores
    the batch's rows."""

    def __init__(self, rollups: Rollups, facts: list[t.Any]) -> None:
        self._rollups = rollups
        self._facts = facts
        self._totals: Totals | None = None
        self._keyed: dict[t.Any, t.Any] | None = None
        self._error: BaseException | None = None

    def compute(self, cuts: Cuts | None = None) -> None:
        # Runs inside a COPY: a failure is kept for keyed() to raise, after it.
        if self._error is not None:
            return
        try:
            if self._totals is None:
                self._totals = self._rollups.entries(self._facts)
            if cuts is not None and self._keyed is None:
                self._keyed = self._rollups.keyed(self._totals, cuts)
        except Exception as exc:
            self._error = exc

    def keyed(self, cuts: Cuts) -> dict[t.Any, t.Any]:
        self.compute(cuts)
        if self._error is not None:
            raise RollupFailed from self._error
        assert self._keyed is not None
        return self._keyed


class Writer:
    """One app's write path. ``emit`` is what the request hooks call."""

    def __init__(
        self, resolve_engine: t.Callable[[], sa.Engine], table: sa.Table, **settings: t.Any
    ) -> None:
        # settings: mode, batch_size, flush_interval, queue_size, queue_bytes,
        # shutdown_timeout, sync_timeout, maintenance (see _Core).
        core = _Core(resolve_engine, table, **settings)
        core._owner = weakref.ref(self, core.owner_gone)
        self._core = core
        self.mode = core.mode
        self.emit: t.Callable[[Record], None] = (
            core.write_now if core.mode == "sync" else core.enqueue
        )

    @property
    def written(self) -> int:
        return self._core.written

    @property
    def dropped(self) -> int:
        return self._core.dropped

    def flush(self, timeout: float | None = None) -> bool:
        """Block until every record queued before this call is written or dropped.

        Returns False if ``timeout`` seconds passed first.
        """
        return self._core.flush(timeout)

    def stop(self, timeout: float | None = None) -> None:
        """Write what is queued (for at most ``timeout`` seconds) and stop the thread."""
        self._core.stop(timeout)

    def health(self) -> WriterHealth:
        return self._core.health()


def _shared_connection(engine: sa.Engine) -> str | None:
    """Why writing on ``engine`` would share the app session's connection, or None."""
    pool = engine.pool
    if isinstance(pool, StaticPool):
        return f"{engine.url.render_as_string(hide_password=True)} (one connection for all threads)"
    if isinstance(pool, SingletonThreadPool) and engine.url.database in (None, "", ":memory:"):
        return "an in-memory SQLite database (each thread sees its own)"
    return None


_cores: weakref.WeakSet[_Core] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for core in list(_cores):
        core._after_fork()


def stop_all(timeout: float | None = None) -> None:
    """Write every app's queue and stop the threads, within one shared deadline: the
    longest ``STATISTICS_SHUTDOWN_TIMEOUT`` (or ``timeout``), however many apps."""
    cores = [core for core in list(_cores) if core._thread is not None]
    if not cores:
        return
    limit = timeout if timeout is not None else max(core._shutdown_timeout for core in cores)
    deadline = time.monotonic() + limit
    threads = [(core, core.begin_stop(deadline)) for core in cores]
    for core, thread in threads:
        if thread is not None:
            thread.join(max(0.0, deadline - time.monotonic()) + 0.5)
            if thread.is_alive():  # stuck in a database call that never returns
                left = core.unwritten()
                if left:
                    logger.error(
                        "statistics writer stopped with %d row(s) not written: the "
                        "database did not answer within %.1f s",
                        left,
                        limit,
                    )
            core._thread = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(stop_all)


def engine_resolver(app: t.Any, db: t.Any, table: sa.Table) -> t.Callable[[], sa.Engine]:
    """Finds the model's engine through a weak reference, so the writer never keeps
    the app alive."""
    key = bind_key(table)
    app_ref = weakref.ref(app)

    def resolve() -> sa.Engine:
        app = app_ref()
        if app is None:
            raise RuntimeError("the app was garbage-collected")
        with app.app_context():
            try:
                return db.engines[key]  # type: ignore[no-any-return]
            except KeyError:
                raise RuntimeError(
                    f"the statistics table {table.name!r} uses bind key {key!r}, which "
                    "is not in SQLALCHEMY_BINDS; add it there or remove __bind_key__"
                ) from None

    return resolve
