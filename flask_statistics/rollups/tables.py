"""The rollup tables of one request table, on the same metadata (so
``db.create_all()`` creates them with the model) and the same bind."""

from __future__ import annotations

import sqlalchemy as sa

#: Tiers: the width of a row's time bucket.
QUARTER = 0  # 15 minutes, starting on a UTC quarter hour
DAY = 1  # a local day of the zone recorded in the state row
MONTH = 2  # a local month of that zone, once all its days are over
YEAR = 3  # a local year of that zone, once all its months have month rows
TIERS = (QUARTER, DAY, MONTH, YEAR)
#: Grains: which dimensions a row keeps (the others are NULL).
CLASS = 0  # status class (in ``status``: 1-5, 0 for codes outside 100-599), is_bot
STATUS = 1  # method, status, is_bot
#: route, path (or other), method, status, is_bot, with the hits of each browser and
#: platform pair and each referrer in ``counts`` (see ``aggregate.path_count_key``).
PATH = 2
#: The referrer top list: method, status, is_bot, with the hits of each referrer in
#: ``counts`` (see :mod:`.counts`). Grains 3 and 4 are not used.
REFERRER = 5
ROUTE = 6  # route, method, status, is_bot
#: browser (in ``path``), platform (in ``route``), method, status, is_bot, with the
#: hits of each referrer in ``counts``: the browser and platform filters, and the
#: browser and platform lists.
AGENT = 7
#: route, path (or other), method, status, is_bot, browser and platform: the paths of a
#: browser or platform filter. Day, month and year rows only, made from the raw rows
#: by the writer task (see ``compact``): an open day's rows count its quarters that
#: are over (before the state's ``open_merged``); the rest is read from the raw rows.
PATH_AGENT = 8
#: route, method, status, is_bot, browser and platform: the routes of a browser or
#: platform filter, made with the path-agent rows (the same rows without the path,
#: which a route's figures would otherwise merge across every path of it).
ROUTE_AGENT = 9
#: The grains made from the raw rows by the writer task, not by writers.
AGENT_PATH_GRAINS = (PATH_AGENT, ROUTE_AGENT)
GRAINS = (CLASS, STATUS, PATH, REFERRER, ROUTE, AGENT, PATH_AGENT, ROUTE_AGENT)
#: The dimensions each grain of the figures keeps.
DIMENSIONS = {
    CLASS: frozenset(("class", "is_bot")),
    STATUS: frozenset(("class", "method", "status", "is_bot")),
    ROUTE: frozenset(("class", "method", "status", "is_bot", "route")),
    PATH: frozenset(("class", "method", "status", "is_bot", "route", "path")),
    AGENT: frozenset(("class", "method", "status", "is_bot", "browser", "platform")),
    PATH_AGENT: frozenset(
        ("class", "method", "status", "is_bot", "route", "path", "browser", "platform")
    ),
    ROUTE_AGENT: frozenset(("class", "method", "status", "is_bot", "route", "browser", "platform")),
}
#: The columns of agent rows that hold each top list's values.
AGENT_COLUMNS = {"browser": "path", "platform": "route"}
#: Grains whose distinct values a client controls: capped per bucket. A folded row
#: keeps its ``route`` (a path's route, a browser's platform).
CAPPED = (PATH, AGENT, PATH_AGENT)

#: Longest path and route kept in a rollup row.
PATH_LENGTH = 2048
ROUTE_LENGTH = 512
METHOD_LENGTH = 16


def _existing(metadata: sa.MetaData, name: str, schema: str | None) -> sa.Table | None:
    return metadata.tables.get(f"{schema}.{name}" if schema else name)


def rollup_table(table: sa.Table) -> sa.Table:
    """``<table>_rollup``: one row per bucket, tier, grain and combination of values."""
    name = f"{table.name}_rollup"
    found = _existing(table.metadata, name, table.schema)
    if found is not None:
        return found
    big = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    return sa.Table(
        name,
        table.metadata,
        sa.Column("id", big, primary_key=True, autoincrement=True),
        # A digest of tier, bucket, grain and the dimensions: the row's identity.
        sa.Column("key", sa.String(32), nullable=False),
        sa.Column("tier", sa.SmallInteger, nullable=False),
        sa.Column("grain", sa.SmallInteger, nullable=False),
        sa.Column("bucket", sa.DateTime, nullable=False),  # naive UTC start
        sa.Column("route", sa.String(ROUTE_LENGTH)),
        sa.Column("path", sa.String(PATH_LENGTH)),
        sa.Column("other", sa.Boolean, nullable=False, default=False),
        sa.Column("method", sa.String(METHOD_LENGTH)),
        sa.Column("status", sa.Integer),
        sa.Column("is_bot", sa.Boolean),
        # Path-agent rows only (the agent rows keep theirs in path and route).
        sa.Column("browser", sa.String(PATH_LENGTH)),
        sa.Column("platform", sa.String(ROUTE_LENGTH)),
        sa.Column("hits", sa.BigInteger, nullable=False),
        sa.Column("bytes", sa.BigInteger, nullable=False),
        sa.Column("timed", sa.BigInteger, nullable=False),  # hits with a response time
        sa.Column("time_sum", sa.Float(precision=53), nullable=False),
        sa.Column("last_seen", sa.DateTime),
        sa.Column("times", sa.LargeBinary),  # sketches.Histogram
        sa.Column("visitors", sa.LargeBinary),  # sketches.Visitors, bots left out
        sa.Column("counts", sa.LargeBinary),  # counts.encode, top-list grains only
        sa.Index(f"ux_{name}_key", "key", unique=True),
        # ``other`` last: whether a window has folded rows is read from the index alone.
        sa.Index(f"ix_{name}_scan", "grain", "tier", "bucket", "other"),
        schema=table.schema,
    )


def state_table(table: sa.Table) -> sa.Table:
    """``<table>_rollup_state``: one row (id 1). Writers lock it for each batch; it
    holds the zone of the day tier and how far the backfill of older rows has got."""
    name = f"{table.name}_rollup_state"
    found = _existing(table.metadata, name, table.schema)
    if found is not None:
        return found
    return sa.Table(
        name,
        table.metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("zone", sa.String(64), nullable=False),
        # Rows dated before this are not in the rollups yet (None: all are).
        sa.Column("backfill_before", sa.DateTime),
        # The oldest date of the rows still to backfill, for progress.
        sa.Column("backfill_from", sa.DateTime),
        # Rows dated from this on may be missing from the rollups (a failed update).
        sa.Column("stale_since", sa.DateTime),
        # Local days starting from this on are open: they are counted in 15-minute
        # rows, and in day rows only for their quarters before ``open_merged``; the
        # rest is added to their day rows once over (None: every day has its day
        # rows). Writers then touch one tier, not two, for most rows.
        sa.Column("open_from", sa.DateTime),
        # Local months starting before this have month rows, the merge of their day
        # rows, which writers keep adding late rows to (None: no month has them yet).
        sa.Column("months_before", sa.DateTime),
        # Local years starting before this have year rows, the merge of their month
        # rows (None: no year has them yet); never after ``months_before``.
        sa.Column("years_before", sa.DateTime),
        # The open day's day rows count its quarters before this, merged by the writer
        # task as they end (None or not after ``open_from``: none).
        sa.Column("open_merged", sa.DateTime),
        sa.Column("created", sa.DateTime, nullable=False),
        schema=table.schema,
    )
