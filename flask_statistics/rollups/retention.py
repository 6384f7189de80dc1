"""``STATISTICS_ROLLUP_RETENTION``: rollup rows older than the period are deleted,
in small batches, on the writer's thread."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from ..retention import cutoff_before
from .store import Store
from .tables import DAY, GRAINS, QUARTER

BATCH = 1000


class RollupRetention:
    __name__ = "rollup retention"

    def __init__(self, store: Store, period: timedelta) -> None:
        self.store = store
        self.period = period

    def __call__(self, engine: sa.Engine) -> None:
        if not self.store.present(engine):
            return
        cutoff = cutoff_before(self.period)
        r = self.store.rollup.c
        while True:
            with engine.begin() as conn:
                ids = conn.execute(
                    sa.select(r.id)
                    .where(r.grain.in_(GRAINS), r.tier.in_((QUARTER, DAY)), r.bucket < cutoff)
                    .limit(BATCH)
                ).scalars().all()
                if not ids:
                    return
                conn.execute(sa.delete(self.store.rollup).where(r.id.in_(ids)))
