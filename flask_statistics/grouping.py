"""How the top lists group recorded values, and the filters that select one group.

- **Referrers by host.** An ``http://`` or ``https://`` referrer (scheme in lower case,
  as browsers send it) belongs to its host: the text between ``//`` and the first
  ``/``, ``?`` or ``#``, port included ("localhost:5000"). A referrer without such a
  host (no scheme, ``javascript:``, an empty host, or user info before an ``@``) is
  its own group, named by its whole value. No referrer is "(direct)".
- **Browsers by family.** A stored browser is "<family> <version>", e.g.
  "Chrome Mobile 131.0.0": the family ends before the first space followed by a
  digit. A value without one is its own family ("Other").
- **Platforms** are stored without a version ("Windows", "Mac OS X", "Nokia Series
  40"): each value is its own family.

The ``referrer`` and ``browser`` filters select exactly one such group: a value
shaped like a group's name (a host; a family) matches every value of that group, any
other value matches itself only, so a link to "Firefox 133.0" or to a full referrer
URL keeps meaning that value. Grouping is done here in Python, for the raw rows and
the rollups alike; the SQL conditions below select the same rows on SQLite,
PostgreSQL and MariaDB, case-sensitively, with ``%`` and ``_`` taken literally.
"""

from __future__ import annotations

import re
import typing as t

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.elements import ColumnElement

from .dialects import exact_text, text_equals, text_startswith

if t.TYPE_CHECKING:
    from .filters import Filters

Value = t.Optional[str]
Key = t.Callable[[Value], Value]

_SCHEMES = ("http://", "https://")
# Where a URL's authority ends; "@" marks user info, which hides the real host.
_AUTHORITY_END = re.compile(r"[/?#]")
_NOT_A_HOST = re.compile(r"[/?#@]")
_VERSION_START = re.compile(r" [0-9]")
_DIGITS = tuple("0123456789")


def referrer_host(value: Value) -> Value:
    """The host of an http(s) referrer, e.g. "www.google.com" or "localhost:5000";
    None when it has none that a filter could name (see the module docs)."""
    if not value:
        return None
    for scheme in _SCHEMES:
        if value.startswith(scheme):
            rest = value[len(scheme):]
            end = _AUTHORITY_END.search(rest)
            authority = rest if end is None else rest[: end.start()]
            return authority if is_host(authority) else None
    return None


def is_host(value: str) -> bool:
    """Whether ``value`` can name a host: not empty, without ``/ ? # @``."""
    return bool(value) and _NOT_A_HOST.search(value) is None


def referrer_group(value: Value) -> Value:
    """The group of a referrer in the top list: its host, else the whole value;
    None (direct) for no referrer."""
    if not value:
        return None
    return referrer_host(value) or value


def browser_family(value: Value) -> Value:
    """The family of a stored browser: "Firefox" for "Firefox 133.0"."""
    if not value:
        return value or None
    found = _VERSION_START.search(value, 1)  # a family is never empty
    return value if found is None else value[: found.start()]


def is_family(value: str) -> bool:
    """Whether ``value`` names a browser family rather than one version of it."""
    return browser_family(value) == value


#: How each groupable column's values are grouped.
KEYS: dict[str, Key] = {"referrer": referrer_group, "browser": browser_family}


def key_for(column: str, filters: Filters) -> Key | None:
    """The grouping of ``column``'s top list under ``filters``: by host or family
    until that column is filtered; then the values themselves (a host's URLs, a
    family's versions). None for columns listed value by value."""
    if column not in KEYS or getattr(filters, column, None) is not None:
        return None
    return KEYS[column]


def group(counts: t.Iterable[tuple[t.Any, int]], key: Key) -> dict[t.Any, int]:
    """Hits per group. Keys that are not text or None (a folded long tail) are kept
    as they are."""
    out: dict[t.Any, int] = {}
    for value, hits in counts:
        name = key(value) if value is None or isinstance(value, str) else value
        out[name] = out.get(name, 0) + hits
    return out


def rank(counts: t.Mapping[t.Any, int], limit: int) -> list[tuple[t.Any, int]]:
    """The ``limit`` values with most hits; ties by value in code point order (as
    the databases order exact text), then None, then a folded tail."""

    def order(item: tuple[t.Any, int]) -> tuple[int, int, str]:
        value, hits = item
        if isinstance(value, str):
            return (-hits, 0, value)
        return (-hits, 1 if value is None else 2, "")

    return sorted(counts.items(), key=order)[:limit]


# ---------------------------------------------------------------------------------
# Filters


def referrer_condition(
    dialect: Dialect, column: ColumnElement[t.Any], value: str
) -> ColumnElement[bool]:
    """Referrers in the group ``value``: with that host (any scheme of http and
    https, any path) or equal to it; a value that is not a host matches itself."""
    conditions = [text_equals(dialect, column, value)]
    if is_host(value):
        for scheme in _SCHEMES:
            origin = scheme + value
            conditions.append(text_equals(dialect, column, origin))
            conditions += [text_startswith(dialect, column, origin + end) for end in "/?#"]
    return sa.or_(*conditions)


def browser_condition(
    dialect: Dialect, column: ColumnElement[t.Any], value: str
) -> ColumnElement[bool]:
    """Browsers of the family ``value`` (itself, or it followed by a space and a
    digit); a value with a version matches itself only."""
    same = text_equals(dialect, column, value)
    if not is_family(value):
        return same
    after = exact_text(dialect, sa.func.substr(column, len(value) + 2, 1))
    version = sa.and_(text_startswith(dialect, column, value + " "), after.in_(_DIGITS))
    return sa.or_(same, version)
