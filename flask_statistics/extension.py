"""The ``Statistics`` extension object and its per-app wiring."""

from __future__ import annotations

import logging
import time
import typing as t
import dataclasses
import weakref
from dataclasses import dataclass

import sqlalchemy as sa
from flask import Blueprint, Flask, current_app, has_app_context

from . import cli, privacy, shutdown
from .capture import Capture
from .config import apply_defaults, exclude_rules
from .models import bind_key, check_columns, default_model
from .filters import zone
from .retention import Retention
from .rollups.rebuild import Backfill
from .rollups.compact import Compaction
from .rollups.retention import DetailRetention, RollupRetention
from .rollups.store import Store
from .rollups.writing import Rollups
from .writer import Writer, WriterHealth, engine_resolver

logger = logging.getLogger("flask_statistics")

EXTENSION_KEY = "statistics"
BLUEPRINT_NAME = "statistics"

Guard = t.Callable[[], t.Any]


@dataclass
class StatisticsState:
    """What one app's statistics need; lives in ``app.extensions["statistics"]``."""

    extension: Statistics
    db: t.Any
    model: type
    table: sa.Table
    writer: Writer
    guard: Guard | None
    #: The day keys of ``STATISTICS_ANONYMIZE_IP = "hash"``; None in other modes.
    keyring: privacy.KeyRing | None = None
    #: The rollup tables of ``table``.
    rollups: Store | None = None
    backfill: Backfill | None = None


class Statistics:
    """Record every request into ``model`` and serve a dashboard of them.

    ``Statistics(app, db, Request)`` as in the classic example, or ``Statistics()``
    then ``init_app(app, db=db, model=Request)``. ``model`` may be left out to use a
    built-in model. The fourth argument, ``guard``, runs before every dashboard
    request: ``None`` or ``True`` lets the request through, ``False`` answers 403
    Forbidden, and anything else Flask's ``make_response`` accepts (a response, a
    redirect, ``(body, status)``) is the response.
    ``disable_f`` runs at the end of each request; a truthy result means the request
    is not recorded.
    """

    def __init__(
        self,
        app: Flask | None = None,
        db: t.Any = None,
        model: type | None = None,
        guard: Guard | None = None,
        *,
        disable_f: t.Callable[[], t.Any] | None = None,
    ) -> None:
        self.db = db
        self.model = model
        self.guard = guard
        self.disable_f = disable_f
        self._exempt_views: set[t.Callable[..., t.Any]] = set()
        self._exempt_blueprints: set[str] = set()
        self._apps: weakref.WeakSet[Flask] = weakref.WeakSet()
        if app is not None:
            self.init_app(app)

    def init_app(
        self,
        app: Flask,
        db: t.Any = None,
        model: type | None = None,
        guard: Guard | None = None,
        *,
        disable_f: t.Callable[[], t.Any] | None = None,
    ) -> None:
        """Start recording ``app``'s requests and register the dashboard on it."""
        if EXTENSION_KEY in app.extensions:
            raise RuntimeError(
                "flask-statistics is already set up on this app; call "
                "Statistics(app, ...) or init_app(app) once per app"
            )
        db = db if db is not None else self.db
        if db is None or not hasattr(db, "Model"):
            raise RuntimeError(
                "flask-statistics needs the app's Flask-SQLAlchemy object; pass it as "
                "Statistics(app, db) or init_app(app, db=db)"
            )
        config = app.config
        apply_defaults(config)
        model = model if model is not None else self.model
        if model is None:
            model = default_model(db, config["STATISTICS_TABLE_NAME"])
        table = check_columns(model)
        key = bind_key(table)
        if key is not None and key not in config.get("SQLALCHEMY_BINDS", {}):
            raise RuntimeError(
                f"model {model.__name__} has __bind_key__ {key!r}, which is not in "
                "SQLALCHEMY_BINDS; add it there or remove __bind_key__"
            )
        guard = guard if guard is not None else self.guard
        disable_f = disable_f if disable_f is not None else self.disable_f

        address_mode = config["STATISTICS_ANONYMIZE_IP"]
        keyring = None
        maintenance: list[t.Callable[[sa.Engine], None]] = []
        if address_mode == "hash":
            keyring = privacy.KeyRing(privacy.keys_table(table))
            maintenance.append(_every(KEY_SYNC_INTERVAL, keyring.sync))
        if config["STATISTICS_RETENTION"] is not None:
            maintenance.append(Retention(table, config["STATISTICS_RETENTION"]))
        store = Store(table, config["STATISTICS_ROLLUP_DETAIL"])
        zone_name = _rollup_zone(config["STATISTICS_TIMEZONE"])
        backfill = Backfill(store, zone_name)
        maintenance.append(backfill)
        maintenance.append(Compaction(store, zone_name))
        maintenance.append(_every(ROLLUP_PRUNE_INTERVAL, DetailRetention(store)))
        if config["STATISTICS_ROLLUP_RETENTION"] is not None:
            maintenance.append(
                _every(ROLLUP_PRUNE_INTERVAL, RollupRetention(store, config["STATISTICS_ROLLUP_RETENTION"]))
            )
        writer = Writer(
            engine_resolver(app, db, table),
            table,
            mode=config["STATISTICS_WRITE_MODE"],
            batch_size=config["STATISTICS_BATCH_SIZE"],
            flush_interval=float(config["STATISTICS_FLUSH_INTERVAL"]),
            queue_size=config["STATISTICS_QUEUE_SIZE"],
            queue_bytes=config["STATISTICS_QUEUE_BYTES"],
            shutdown_timeout=float(config["STATISTICS_SHUTDOWN_TIMEOUT"]),
            sync_timeout=float(config["STATISTICS_SYNC_TIMEOUT"]),
            maintenance=maintenance,
            rollups=Rollups(store, zone_name),
        )
        prefixes, patterns = exclude_rules(config["STATISTICS_EXCLUDE"])
        Capture(
            writer.emit,
            dashboard_prefix=config["STATISTICS_URL_PREFIX"].rstrip("/"),
            exclude_prefixes=prefixes,
            exclude_patterns=patterns,
            exempt_views=self._exempt_views,
            exempt_blueprints=self._exempt_blueprints,
            disable_f=disable_f,
            address_filter=privacy.address_filter(address_mode, keyring),
            referrer_filter=privacy.referrer_filter(config["STATISTICS_REFERRER"]),
        ).install(app)
        app.extensions[EXTENSION_KEY] = StatisticsState(
            extension=self,
            db=db,
            model=model,
            table=table,
            writer=writer,
            guard=guard,
            keyring=keyring,
            rollups=store,
            backfill=backfill,
        )
        self._apps.add(app)
        from .views import register_dashboard  # views import this module

        register_dashboard(app, app.extensions[EXTENSION_KEY])
        cli.register(app)
        shutdown.install()

    def exempt(self, view: t.Any) -> t.Any:
        """Do not record requests to ``view``: a view function or a blueprint.

        Use as a decorator on a view, or call with a blueprint or its name.
        """
        if isinstance(view, Blueprint):
            self._exempt_blueprints.add(view.name)
        elif isinstance(view, str):
            self._exempt_blueprints.add(view)
        else:
            self._exempt_views.add(view)
        return view

    def flush(self, timeout: float | None = None, app: Flask | None = None) -> bool:
        """Block until every request recorded so far is written to the database.

        Returns False if ``timeout`` seconds passed first.
        """
        return self._state(app).writer.flush(timeout)

    def health(self, app: Flask | None = None) -> WriterHealth:
        """Rows written, queued and dropped, the writer's last error, and how far
        the backfill of the rollups has got."""
        state = self._state(app)
        health = state.writer.health()
        if state.backfill is not None and state.backfill.remaining is not None:
            health = dataclasses.replace(
                health,
                backfill_before=state.backfill.remaining,
                backfill_from=state.backfill.oldest,
            )
        return health

    def _state(self, app: Flask | None) -> StatisticsState:
        if app is None:
            if has_app_context():
                app = current_app._get_current_object()  # type: ignore[attr-defined]
            elif len(self._apps) == 1:
                app = next(iter(self._apps))
            else:
                raise RuntimeError(
                    "this Statistics object serves several apps; pass app=... or "
                    "call inside app.app_context()"
                )
        return state_of(app)


#: Seconds between two syncs of the hash keys with the database; tomorrow's key is
#: made a day ahead, so every worker holds it before midnight.
KEY_SYNC_INTERVAL = 300.0
RETRY_FAILED_TASK = 30.0
#: Seconds between two deletions of rollups older than STATISTICS_ROLLUP_RETENTION.
ROLLUP_PRUNE_INTERVAL = 3600.0


def _rollup_zone(name: t.Any) -> str:
    # A bad name is reported by the dashboard, with its fix; the rollups' days then
    # follow UTC until it is corrected.
    try:
        zone(name)
    except Exception:
        return "UTC"
    return t.cast(str, name)


def _every(seconds: float, task: t.Callable[[sa.Engine], None]) -> t.Callable[[sa.Engine], None]:
    """``task`` at the writer's first chance, then at most once per ``seconds``."""
    last = [float("-inf")]

    def run(engine: sa.Engine) -> None:
        now = time.monotonic()
        if now - last[0] < seconds:
            return
        try:
            task(engine)
        except Exception:
            last[0] = now - seconds + RETRY_FAILED_TASK  # try again sooner
            raise
        last[0] = now

    run.__name__ = getattr(task, "__name__", "task")
    return run


def state_of(app: Flask) -> StatisticsState:
    try:
        return app.extensions[EXTENSION_KEY]  # type: ignore[no-any-return]
    except KeyError:
        raise RuntimeError(
            "flask-statistics is not set up on this app; call init_app(app) first"
        ) from None
