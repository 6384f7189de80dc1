"""The default request model, and the check that a user's model has the columns the
extension writes."""

from __future__ import annotations

import typing as t
import weakref

import sqlalchemy as sa

#: The columns the extension fills, in the order of the seed's contract.
REQUIRED_COLUMNS = (
    "index",
    "response_time",
    "date",
    "method",
    "size",
    "status_code",
    "path",
    "user_agent",
    "remote_address",
    "exception",
    "referrer",
    "browser",
    "platform",
    "mimetype",
)
#: Filled when the model has them (and the database table too, see :mod:`.schema`).
OPTIONAL_COLUMNS = ("is_bot", "route")

_defaults: weakref.WeakKeyDictionary[t.Any, dict[str, type]] = weakref.WeakKeyDictionary()


def default_model(db: t.Any, table_name: str) -> type:
    """Return the extension's own model for ``db``, defining it on first use.

    String columns have lengths so the table can be created on MariaDB/MySQL, and the
    indexes match the dashboard's filters.
    """
    per_db = _defaults.setdefault(db, {})
    if table_name in per_db:
        return per_db[table_name]

    big_int = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    namespace: dict[str, t.Any] = {
        "__tablename__": table_name,
        "__table_args__": (
            sa.Index(f"ix_{table_name}_date", "date"),
            sa.Index(f"ix_{table_name}_date_path", "date", "path"),
            sa.Index(f"ix_{table_name}_date_status", "date", "status_code"),
            # The filters the rollups cannot answer: one client, one user agent.
            sa.Index(f"ix_{table_name}_remote_address_date", "remote_address", "date"),
            sa.Index(f"ix_{table_name}_user_agent_date", "user_agent", "date"),
        ),
        "index": sa.Column(big_int, primary_key=True, autoincrement=True),
        "response_time": sa.Column(sa.Float),
        "date": sa.Column(sa.DateTime),
        "method": sa.Column(sa.String(16)),
        "size": sa.Column(sa.BigInteger),
        "status_code": sa.Column(sa.Integer),
        "path": sa.Column(sa.String(512)),
        "user_agent": sa.Column(sa.String(512)),
        "remote_address": sa.Column(sa.String(64)),
        "exception": sa.Column(sa.String(1024)),
        "referrer": sa.Column(sa.String(512)),
        "browser": sa.Column(sa.String(128)),
        "platform": sa.Column(sa.String(128)),
        "mimetype": sa.Column(sa.String(128)),
        "is_bot": sa.Column(sa.Boolean),
        "route": sa.Column(sa.String(512)),
    }
    class_name = "StatisticsRequest" if not per_db else f"StatisticsRequest_{table_name}"
    model = type(class_name, (db.Model,), namespace)
    per_db[table_name] = model
    return model


def model_table(model: t.Any) -> sa.Table:
    table = getattr(model, "__table__", None)
    if not isinstance(table, sa.Table):
        raise TypeError(
            f"{model!r} is not a mapped model with a table; pass a db.Model subclass, "
            "or leave model out to use the default model"
        )
    return table


def check_columns(model: t.Any) -> sa.Table:
    """Raise with the fix in the message when ``model`` lacks a required column."""
    table = model_table(model)
    missing = [name for name in REQUIRED_COLUMNS if name not in table.c]
    if missing:
        names = ", ".join(repr(m) for m in missing)
        raise RuntimeError(
            f"model {getattr(model, '__name__', model)} (table {table.name!r}) has no "
            f"column {names}; add it, or pass model=None to use the default model"
        )
    return table


def bind_key(table: sa.Table) -> str | None:
    return table.metadata.info.get("bind_key")
