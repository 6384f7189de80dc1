"""What the rollup tasks the writer runs after each drain have in common: they run
only when due, and report a failure once per kind of failure.

A task that fails while, say, the database is down fails the same way at every try;
the outage is the writer's to report, so the task logs it once, and again only when
the reason changes or after a run that succeeded.
"""

from __future__ import annotations

import logging
import time

import sqlalchemy as sa

from .. import faults
from .store import Store

logger = logging.getLogger("flask_statistics")


class MaintenanceTask:
    """A writer maintenance task, called as ``task(engine)``, that does :meth:`run`
    when it is due.

    Each run is due ``retry_after`` seconds after the last one started, or as many
    seconds after it ended as a successful :meth:`run` returns.
    """

    __name__ = "rollup maintenance"
    #: Seconds before the next try after a failure (and after a run that returns None).
    retry_after = 60.0
    #: What a failure stopped, for the log: "flask-statistics could not <doing>: <reason>".
    doing = "maintain the rollups"

    def __init__(self, store: Store) -> None:
        self.store = store
        self._next = 0.0
        self._failure: str | None = None

    def __call__(self, engine: sa.Engine) -> None:
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + self.retry_after
        try:
            wait = self.run(engine)
        except Exception as exc:
            reason = faults.describe(exc, self.store.table)
            if reason != self._failure:
                self._failure = reason
                logger.error("flask-statistics could not %s: %s", self.doing, reason)
            return
        self._failure = None
        if wait is not None:
            self._next = time.monotonic() + wait

    def run(self, engine: sa.Engine) -> float | None:
        """One run; the seconds until the next, or None for ``retry_after`` from this
        run's start."""
        raise NotImplementedError
