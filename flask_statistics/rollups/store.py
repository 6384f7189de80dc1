"""Reading and writing rollup rows and the state row.

Writers serialise on the state row: each batch first bumps its ``version`` (a row
lock on PostgreSQL and MariaDB, the write lock on SQLite), then inserts its requests
and adds them to the rollup rows, and commits. A rebuild of a period takes the same
lock, so it either sees a batch's rows whole or not at all, and its replacement rows
then receive that batch's increments. Rollup rows are read, merged in Python and
written back; the lock makes that read-modify-write safe across processes and hosts.
"""

from __future__ import annotations

import hashlib
import logging
import typing as t
import weakref
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from operator import itemgetter

import sqlalchemy as sa

from ..bulk import ManyValues, copy_rows, copy_statement, fetch_unprepared, values_insert, values_update
from ..sketches import Histogram, Visitors
from . import counts
from .aggregate import Entry, Key, year_start
from .tables import (
    AGENT, CAPPED, DAY, GRAINS, MONTH, PATH, PATH_AGENT, QUARTER, TIERS, YEAR, rollup_table,
    state_table,
)

logger = logging.getLogger("flask_statistics")

#: Most path rows one bucket keeps; further paths are folded into "other".
PATH_CAP = {QUARTER: 1000, DAY: 5000, MONTH: 20000, YEAR: 50000}
#: Most agent rows (browser, platform, method, status) one bucket keeps.
AGENT_CAP = {QUARTER: 1000, DAY: 5000, MONTH: 20000, YEAR: 50000}
#: Most path-agent rows (path, browser, platform, method, status) one bucket keeps.
PATH_AGENT_CAP = {QUARTER: 1000, DAY: 20000, MONTH: 50000, YEAR: 100000}
_CAPS = {PATH: PATH_CAP, AGENT: AGENT_CAP, PATH_AGENT: PATH_AGENT_CAP}
_CHUNK = 500
_SUMS = ("hits", "bytes", "timed", "time_sum", "last_seen", "times", "visitors", "counts")
_INSERTED = (
    "key", "tier", "grain", "bucket", "route", "path", "other", "method", "status", "is_bot",
    "browser", "platform", *_SUMS,
)
#: The columns path-agent rows add, which a rollup table made before them lacks.
AGENT_PATH_COLUMNS = ("browser", "platform")
#: The column they add to the state table.
AGENT_STATE_COLUMNS = ("open_merged",)


def digest(key: Key) -> str:
    tier, bucket, grain, route, path, other, method, status, is_bot, browser, platform = key
    values: tuple[t.Any, ...] = (
        tier, bucket.isoformat(), grain, route, path, int(other), method, status,
        None if is_bot is None else int(is_bot),
    )
    if browser is not None or platform is not None:
        values = (*values, browser, platform)
    text = "\x1f".join("\x00" if v is None else str(v) for v in values)
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


#: How long 15-minute rollup rows are kept by default: they serve the hourly charts
#: of ranges within two days, and a day with little traffic has more of them than
#: requests. Older ranges are shown by the day.
DETAIL = timedelta(days=35)


@dataclass(frozen=True)
class State:
    zone: str
    backfill_before: datetime | None
    backfill_from: datetime | None
    stale_since: datetime | None
    open_from: datetime | None = None
    months_before: datetime | None = None
    years_before: datetime | None = None
    open_merged: datetime | None = None


def _utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


class Store:
    """The rollup and state tables of one request table."""

    def __init__(self, table: sa.Table, detail: timedelta | None = DETAIL) -> None:
        self.table = table
        #: How long 15-minute rows are kept (None: as long as day rows).
        self.detail = detail
        self.rollup = rollup_table(table)
        self.state = state_table(table)
        self._present: weakref.WeakKeyDictionary[sa.Engine, bool] = weakref.WeakKeyDictionary()
        #: Engines whose rollup table lacks columns (said once, by :meth:`present`).
        self.incomplete: weakref.WeakKeyDictionary[sa.Engine, bool] = weakref.WeakKeyDictionary()
        self._writes: _Writes | None = None

    # -- existence ------------------------------------------------------------------

    def present(self, engine: sa.Engine) -> bool:
        """Whether both tables exist in the database (asked once per engine)."""
        found = self._present.get(engine)
        if found is None:
            inspector = sa.inspect(engine)
            found = all(
                inspector.has_table(t.name, schema=t.schema) for t in (self.rollup, self.state)
            )
            if found:
                found = self._complete(engine, inspector)
            self._present[engine] = found
        return found

    def _complete(self, engine: sa.Engine, inspector: t.Any) -> bool:
        """Whether the rollup and state tables have the columns of path-agent rows;
        says how to add them when they do not (tables made before them)."""
        missing: list[sa.Column[t.Any]] = []
        for table, wanted in ((self.rollup, AGENT_PATH_COLUMNS), (self.state, AGENT_STATE_COLUMNS)):
            names = {c["name"].lower() for c in inspector.get_columns(table.name, schema=table.schema)}
            missing += [table.c[name] for name in wanted if name not in names]
        if not missing:
            return True
        self.incomplete[engine] = True
        preparer = engine.dialect.identifier_preparer
        statements = "; ".join(
            f"ALTER TABLE {preparer.format_table(t.cast(sa.Table, column.table))} ADD COLUMN "
            f"{preparer.format_column(column)} {column.type.compile(dialect=engine.dialect)}"
            for column in missing
        )
        logger.warning(
            "flask-statistics keeps no rollups for table %r: its rollup tables %r and %r "
            "lack the column(s) %s. Add them (%s), then run `flask statistics rebuild`; "
            "until then the dashboard reads every raw row.",
            self.table.name, self.rollup.name, self.state.name,
            ", ".join(f"{column.table.name}.{column.name}" for column in missing),  # type: ignore[attr-defined]
            statements,
        )
        return False

    def forget(self, engine: sa.Engine) -> None:
        self._present.pop(engine, None)

    def create(self, engine: sa.Engine) -> None:
        self.rollup.create(engine, checkfirst=True)
        self.state.create(engine, checkfirst=True)
        self.forget(engine)

    # -- state ----------------------------------------------------------------------

    def lock(self, conn: sa.Connection) -> bool:
        """Take the writers' lock for the current transaction; False if there is no
        state row yet (see :meth:`ensure_state`)."""
        s = self.state.c
        result = conn.execute(
            sa.update(self.state).where(s.id == 1).values(version=s.version + 1)
        )
        return bool(result.rowcount)

    def read_state(self, conn: sa.Connection) -> State | None:
        s = self.state.c
        row = conn.execute(
            sa.select(
                s.zone, s.backfill_before, s.backfill_from, s.stale_since, s.open_from,
                s.months_before, s.years_before, s.open_merged,
            ).where(s.id == 1)
        ).first()
        if row is None:
            return None
        return State(*(value if value is None or i == 0 else _naive(value) for i, value in enumerate(row)))

    def cuts(
        self, conn: sa.Connection
    ) -> tuple[datetime | None, datetime | None, datetime | None, datetime | None]:
        """The first local day without day rows, the first local month without month
        rows, the first local year without year rows and the first quarter without
        path-agent rows (see the state table); read under :meth:`lock` so that a
        compaction cannot move them before the batch commits."""
        s = self.state.c
        found = conn.execute(
            sa.select(s.open_from, s.months_before, s.years_before, s.open_merged).where(s.id == 1)
        ).first()
        if found is None:
            return None, None, None, None
        return tuple(None if v is None else _naive(v) for v in found)  # type: ignore[return-value]

    def reopen_months(self, conn: sa.Connection, since: datetime | None, tz: t.Any = None) -> None:
        """Drop the month rows of the local months from ``since`` (None: all), whose
        days are about to change, and the year rows of the local years (of zone ``tz``)
        from the one holding it; a compaction merges them again. Call under
        :meth:`lock`."""
        year = None if since is None else year_start(since, tz)
        for tier, column, start in ((MONTH, "months_before", since), (YEAR, "years_before", year)):
            s, r = self.state.c, self.rollup.c
            where = [r.grain.in_(GRAINS), r.tier == tier]
            moved = sa.update(self.state).where(s.id == 1)
            if start is None:
                moved = moved.values({column: None})
            else:
                where.append(r.bucket >= start)
                moved = moved.where(s[column] > start).values({column: start})
            if conn.execute(moved).rowcount:
                conn.execute(sa.delete(self.rollup).where(*where))

    def ensure_state(
        self, engine: sa.Engine, zone: str, first_day_after: t.Callable[[datetime], datetime],
        open_from: datetime | None = None,
    ) -> None:
        """Create the state row if it is missing. Rows already in the table then wait
        for the backfill: everything before the local day after the newest of them.
        Days from ``open_from`` (today's first instant) on get no day rows until they
        are over."""
        with engine.begin() as conn:
            if self.read_state(conn) is not None:
                return
            c = self.table.c
            first, last = conn.execute(sa.select(sa.func.min(c.date), sa.func.max(c.date))).one()
        before = None if last is None else first_day_after(_naive(last))
        try:
            with engine.begin() as conn:
                conn.execute(
                    sa.insert(self.state).values(
                        id=1, version=0, zone=zone, backfill_before=before,
                        backfill_from=None if first is None else _naive(first),
                        stale_since=None, created=_utcnow(), open_from=open_from,
                    )
                )
        except sa.exc.IntegrityError:
            pass  # another process created it first

    def set_state(self, conn: sa.Connection, **values: t.Any) -> None:
        conn.execute(sa.update(self.state).where(self.state.c.id == 1).values(**values))

    def mark_stale(self, conn: sa.Connection, since: datetime) -> None:
        s = self.state.c
        conn.execute(
            sa.update(self.state)
            .where(s.id == 1, sa.or_(s.stale_since.is_(None), s.stale_since > since))
            .values(stale_since=since)
        )

    # -- rollup rows ----------------------------------------------------------------

    def apply(self, conn: sa.Connection, entries: dict[Key, Entry]) -> None:
        """Add ``entries`` to their rollup rows, creating missing ones and folding
        paths beyond a bucket's cap into its "other" row. Call under :meth:`lock`."""
        if not entries:
            return
        keyed = {digest(k): (k, e) for k, e in entries.items()}
        existing = self._existing(conn, list(keyed))
        new_paths = [
            k for d, (k, _) in keyed.items() if d not in existing and k[2] in CAPPED and not k[5]
        ]
        if new_paths:
            folded = self._fold(conn, new_paths, entries)
            if folded:
                keyed = {digest(k): (k, e) for k, e in entries.items()}
                missing = [d for d in keyed if d not in existing]
                existing.update(self._existing(conn, missing))
        updates, inserts = [], []
        for d, (key, entry) in keyed.items():
            row = existing.get(d)
            if row is not None:
                updates.append(_merged(row, entry))
            else:
                inserts.append(_new_row(d, key, entry))
        writes = self._writes_for(conn.dialect)
        if updates:
            writes.update(conn, updates)
        if inserts:
            # In the order the dashboard reads them, so that a rebuilt day or a closed
            # one keeps each grain's rows together in the table, not spread between
            # its other rows (on PostgreSQL, pages read per row).
            inserts.sort(key=_PLACE)
            writes.insert(conn, inserts)

    def _writes_for(self, dialect: t.Any) -> _Writes:
        writes = self._writes
        if writes is None or writes.dialect is not dialect:
            writes = self._writes = _Writes(self.rollup, dialect)
        return writes

    def _existing(self, conn: sa.Connection, digests: list[str]) -> dict[str, t.Any]:
        """The stored rows among ``digests``: key, id, then the sums in ``_SUMS`` order."""
        r = self.rollup.c
        found: dict[str, t.Any] = {}
        select_any = self._writes_for(conn.dialect).select_any
        if select_any is not None:
            for row in fetch_unprepared(conn, select_any, (digests,)):
                found[row[0]] = row
            return found
        for start in range(0, len(digests), _CHUNK):
            part = digests[start : start + _CHUNK]
            query = sa.select(r.key, r.id, *(r[name] for name in _SUMS)).where(r.key.in_(part))
            for row in conn.execute(query):
                found[row[0]] = row
        return found

    def _fold(self, conn: sa.Connection, new: list[Key], entries: dict[Key, Entry]) -> int:
        # Rows each bucket already has, then the busiest new values up to the cap.
        r = self.rollup.c
        buckets = {(k[0], k[1]) for k in new}
        counts: dict[tuple[int, datetime, int], int] = {}
        for tier in TIERS:
            times = sorted(b for t_, b in buckets if t_ == tier)
            if not times:
                continue
            query = (
                sa.select(r.bucket, r.grain, sa.func.count())
                .where(r.grain.in_(CAPPED), r.tier == tier, r.bucket.in_(times))
                .group_by(r.bucket, r.grain)
            )
            for bucket, grain, count in conn.execute(query):
                counts[(tier, _naive(bucket), int(grain))] = int(count)
        per_bucket: dict[tuple[int, datetime, int], list[Key]] = {}
        for key in new:
            per_bucket.setdefault((key[0], key[1], key[2]), []).append(key)
        folded = 0
        for place, keys in per_bucket.items():
            room = _CAPS[place[2]][place[0]] - counts.get(place, 0)
            if len(keys) <= room:
                continue
            keys.sort(key=lambda k: (-entries[k].hits, k[4] or ""))
            for key in keys[max(room, 0):]:
                entry = entries.pop(key)
                tier, bucket, grain, route, _path, _other, method, status, is_bot, browser, platform = key
                other: Key = (
                    tier, bucket, grain, route, None, True, method, status, is_bot, browser, platform
                )
                target = entries.get(other)
                if target is None:
                    entries[other] = entry
                else:
                    target.merge(entry)
                folded += 1
        return folded

    def delete_period(self, conn: sa.Connection, since: datetime, until: datetime) -> None:
        """Remove every rollup row whose bucket starts in ``[since, until)``: for a
        local day, its quarters and its day rows."""
        r = self.rollup.c
        # Grain and tier first, so each delete reads only its range of the index.
        conn.execute(
            sa.delete(self.rollup).where(
                r.grain.in_(GRAINS), r.tier.in_((QUARTER, DAY)), r.bucket >= since, r.bucket < until
            )
        )

    def quarters_from(self, now: datetime | None = None) -> datetime | None:
        """The oldest 15-minute bucket kept, or None when all are."""
        if self.detail is None:
            return None
        return (now or _utcnow()) - self.detail


def _naive(moment: datetime) -> datetime:
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment


def _merged(row: t.Any, entry: Entry) -> tuple[t.Any, ...]:
    """The stored ``row`` (from :meth:`Store._existing`) plus ``entry``: id, then the
    sums in ``_SUMS`` order."""
    _key, row_id, hits, size, timed, time_sum, last, times, visitors, counted = row
    # Sketches are decoded and written again only when the entry adds to them.
    if entry.times.count:
        merged = Histogram.from_bytes(times)
        merged.merge(entry.times)
        times = merged.to_bytes()
    if not entry.visitors.empty:
        seen = Visitors.from_bytes(visitors)
        seen.merge(entry.visitors)
        visitors = seen.to_bytes()
    if last is None or (entry.last_seen is not None and entry.last_seen > _naive(last)):
        last = entry.last_seen
    if entry.counts or entry.counts_other:
        values, other = counts.decode(counted)
        counts.add(values, entry.counts or {})
        counted = counts.encode(values, other + entry.counts_other)
    return (
        row_id, int(hits) + entry.hits, int(size) + entry.bytes, int(timed) + entry.timed,
        float(time_sum) + entry.time_sum, last, times, visitors, counted,
    )


#: Grain, tier and bucket of a :func:`_new_row`.
_PLACE = itemgetter(2, 1, 3)


def _new_row(key_digest: str, key: Key, entry: Entry) -> tuple[t.Any, ...]:
    """A new row for ``entry``: its values in ``_INSERTED`` order."""
    tier, bucket, grain, route, path, other, method, status, is_bot, browser, platform = key
    return (
        key_digest, tier, grain, bucket, route, path, other, method, status, is_bot, browser,
        platform,
        entry.hits, entry.bytes, entry.timed, entry.time_sum, entry.last_seen,
        entry.times.to_bytes() if entry.times.count else None,
        None if entry.visitors.empty else entry.visitors.to_bytes(),
        (
            counts.encode(entry.counts or {}, entry.counts_other)
            if entry.counts or entry.counts_other else None
        ),
    )


class _Writes:
    """How rollup rows are written on one dialect. Where it can, the driver gets the
    rows straight: through SQLAlchemy's executemany, the parameter handling of each
    row cost as much as merging it. Elsewhere SQLAlchemy's statements remain."""

    def __init__(self, rollup: sa.Table, dialect: t.Any) -> None:
        self.dialect = dialect
        self._rollup = rollup
        sums = [rollup.c[name] for name in _SUMS]
        inserted = [rollup.c[name] for name in _INSERTED]
        self._update = values_update(rollup, rollup.c.id, sums, dialect)
        self._update_processors = _processors([rollup.c.id, *sums], dialect)
        self._copy = copy_statement(rollup, inserted, dialect)
        self._values: ManyValues | None = None
        if self._copy is None:
            compiled = sa.insert(rollup).values(
                {c.key: sa.bindparam(f"p{i}", type_=c.type) for i, c in enumerate(inserted)}
            ).compile(dialect=dialect)
            if compiled.positional and list(compiled.positiontup or ()) == [f"p{i}" for i in range(len(inserted))]:
                self._values = values_insert(str(compiled), len(inserted), dialect)
        self._insert_processors = _processors(inserted, dialect)
        #: On PostgreSQL, the rows whose key is in one array parameter, sent in binary:
        #: one statement text, where an IN list is new text (parsed by the driver) for
        #: every number of keys.
        self.select_any: str | None = None
        if dialect.name == "postgresql" and dialect.driver == "psycopg":
            quote = dialect.identifier_preparer
            columns = ", ".join(quote.format_column(rollup.c[name]) for name in ("key", "id", *_SUMS))
            key = rollup.c.key
            self.select_any = (
                f"SELECT {columns} FROM {quote.format_table(rollup)} WHERE "
                f"{quote.format_column(key)} = ANY(%b::{dialect.type_compiler_instance.process(key.type)}[])"
            )

    def update(self, conn: sa.Connection, rows: list[tuple[t.Any, ...]]) -> None:
        if self._update is not None:
            self._update.update(conn, _processed(rows, self._update_processors))
            return
        r = self._rollup
        conn.execute(
            sa.update(r)
            .where(r.c.id == sa.bindparam("row_id"))
            .values({name: sa.bindparam(f"new_{name}") for name in _SUMS}),
            [dict(zip(_UPDATE_PARAMETERS, row)) for row in rows],
        )

    def insert(self, conn: sa.Connection, rows: list[tuple[t.Any, ...]]) -> None:
        if self._copy is not None:
            copy_rows(conn, self._copy, rows)
        elif self._values is not None:
            self._values.insert(conn, _processed(rows, self._insert_processors))
        else:
            conn.execute(sa.insert(self._rollup), [dict(zip(_INSERTED, row)) for row in rows])


_UPDATE_PARAMETERS = ("row_id", *(f"new_{name}" for name in _SUMS))


def _processors(
    columns: t.Sequence[sa.Column[t.Any]], dialect: t.Any
) -> list[tuple[int, t.Callable[[t.Any], t.Any]]]:
    # The conversions SQLAlchemy would apply to each column's values.
    return [
        (i, processor)
        for i, c in enumerate(columns)
        if (processor := c.type.dialect_impl(dialect).bind_processor(dialect)) is not None
    ]


def _processed(
    rows: list[tuple[t.Any, ...]], processors: list[tuple[int, t.Callable[[t.Any], t.Any]]]
) -> list[t.Sequence[t.Any]]:
    if not processors:
        return rows  # type: ignore[return-value]
    out: list[t.Sequence[t.Any]] = []
    for row in rows:
        values = list(row)
        for i, process in processors:
            value = values[i]
            if value is not None:
                values[i] = process(value)
        out.append(values)
    return out
