"""``STATISTICS_ROLLUP_RETENTION``: rollup rows older than the period are deleted,
in small batches, on the writer's thread. Whole local months go at once, so a month's
row and its days always count the same requests; the year row of the year holding
the cutoff is then made again from the months it keeps."""

from __future__ import annotations

import typing as t
from datetime import timedelta

import sqlalchemy as sa

from ..filters import zone
from ..retention import cutoff_before
from .aggregate import month_start
from .compact import merge_year_again
from .store import Store, _naive
from .tables import GRAINS, QUARTER, TIERS

BATCH = 1000


class DetailRetention:
    """Deletes 15-minute rollup rows older than the store's ``detail`` period."""

    __name__ = "rollup detail retention"

    def __init__(self, store: Store) -> None:
        self.store = store

    def __call__(self, engine: sa.Engine) -> None:
        cutoff = self.store.quarters_from()
        if cutoff is None or not self.store.present(engine):
            return
        with engine.connect() as conn:
            open_from = self.store.cuts(conn)[0]
        # Days without day rows yet keep their quarters: they are all they have.
        if open_from is not None:
            cutoff = min(cutoff, open_from)
        _delete(engine, self.store, [QUARTER], cutoff)


def _delete(engine: sa.Engine, store: Store, tiers: list[int], cutoff: t.Any) -> None:
    r = store.rollup.c
    while True:
        with engine.begin() as conn:
            ids = conn.execute(
                sa.select(r.id)
                .where(r.grain.in_(GRAINS), r.tier.in_(tiers), r.bucket < cutoff)
                .limit(BATCH)
            ).scalars().all()
            if not ids:
                return
            conn.execute(sa.delete(store.rollup).where(r.id.in_(ids)))


class RollupRetention:
    __name__ = "rollup retention"

    def __init__(self, store: Store, period: timedelta) -> None:
        self.store = store
        self.period = period

    def __call__(self, engine: sa.Engine) -> None:
        if not self.store.present(engine):
            return
        with engine.connect() as conn:
            state = self.store.read_state(conn)
        if state is None:
            return
        # The months that ended before the cutoff; the year holding it keeps the
        # months left.
        cutoff = month_start(_naive(cutoff_before(self.period)), zone(state.zone))
        _delete(engine, self.store, list(TIERS), cutoff)
        merge_year_again(engine, self.store, state.zone, cutoff)
