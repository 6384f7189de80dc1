"""Turns captured records into insert parameters for one table: the user-agent
parse, the mimetype, and values cut to what each column holds."""

from __future__ import annotations

import typing as t
from datetime import datetime, timezone

import sqlalchemy as sa

from .capture import Record
from .models import OPTIONAL_COLUMNS, REQUIRED_COLUMNS
from .useragent import parse


def mimetype(content_type: str | None) -> str | None:
    if not content_type:
        return None
    return content_type.partition(";")[0].strip().lower() or None


class RowBuilder:
    """Insert parameters for ``table``, one dict per record."""

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
