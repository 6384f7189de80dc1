"""What is kept of a client's address and referrer.

The filters here run on the request path, before a record is queued, so they do no
I/O, never block and cost a few microseconds. Addresses can be truncated to their
network (IPv4 /24, IPv6 /48) or replaced by a keyed hash whose key changes every UTC
day and is deleted after the next day: visitors can be counted within a day, but not
followed from one day to the next, and once a key is gone its hashes cannot be
reversed. The day keys live in a table next to the statistics table, so every worker
and host writing to the same database hashes with the same key.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
import socket
import threading
import typing as t
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

ADDRESS_MODES = (None, "truncate", "hash")
REFERRER_MODES = ("full", "path", "origin")

AddressFilter = t.Callable[[t.Optional[str], float], t.Optional[str]]
ReferrerFilter = t.Callable[[t.Optional[str]], t.Optional[str]]

_SECONDS_PER_DAY = 86400
_EPOCH = date(1970, 1, 1)
_KEY_BYTES = 32
_HASH_BYTES = 8  # 16 hex characters: fits any address column

# Dotted-quad without leading zeros, as ipaddress accepts it; checked with a regex
# because ipaddress costs several microseconds per call.
_IPV4 = re.compile(
    r"(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)",
    re.ASCII,
)
_IPV4_MAPPED = bytes(10) + b"\xff\xff"


# -- addresses -----------------------------------------------------------------------


def truncate_address(address: str | None) -> str | None:
    """``203.0.113.7`` → ``203.0.113.0``; ``2001:db8:1234:5678::1`` → ``2001:db8:1234::``.

    An IPv4-mapped IPv6 address is truncated as the IPv4 address it is. Anything
    that is not an IP address gives None: it cannot be shortened safely.
    """
    if not address:
        return None
    if _IPV4.fullmatch(address):
        return address[: address.rfind(".")] + ".0"
    if ":" not in address:
        return None
    try:
        # The C parser: ipaddress takes ten times as long. A zone ("%eth0") goes.
        packed = socket.inet_pton(socket.AF_INET6, address.partition("%")[0])
    except (OSError, ValueError):
        return None
    if packed[:12] == _IPV4_MAPPED:
        return socket.inet_ntop(socket.AF_INET, packed[12:15] + b"\0")
    return socket.inet_ntop(socket.AF_INET6, packed[:6] + bytes(10))


def address_forms(address: str) -> list[str]:
    """The ways one client's address can have been recorded: as given, in canonical
    form, and as IPv4 or IPv4-mapped IPv6 when it is one of those."""
    forms = [address]
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return forms
    forms.append(str(ip))
    if isinstance(ip, ipaddress.IPv4Address):
        forms.append(f"::ffff:{ip}")
    elif ip.ipv4_mapped is not None:
        forms.append(str(ip.ipv4_mapped))
        forms.append(f"::ffff:{ip.ipv4_mapped}")
    return list(dict.fromkeys(forms))


def keys_table(table: sa.Table) -> sa.Table:
    """The table of day keys for ``table``: ``<table name>_keys`` on the same metadata,
    so ``db.create_all()`` creates it on the same database. Defined once."""
    name = f"{table.name}_keys"
    existing = table.metadata.tables.get(f"{table.schema}.{name}" if table.schema else name)
    if existing is not None:
        return existing
    return sa.Table(
        name,
        table.metadata,
        sa.Column("day", sa.Date, primary_key=True, autoincrement=False),
        sa.Column("secret", sa.String(64), nullable=False),
        sa.Column("created", sa.DateTime, nullable=False),
        schema=table.schema,
    )


class KeyRing:
    """Day keys for hashing addresses, shared through a database table.

    :meth:`hash` runs on the request path and only reads memory. When a day's key is
    not known yet it makes one up locally; :meth:`sync`, run on the writer thread,
    offers it to the database, where the first key stored for a day wins and every
    process adopts it.
    """

    def __init__(self, keys_table: sa.Table) -> None:
        self.table = keys_table
        # Day number (days since the epoch, UTC) → key. Read without the lock on the
        # request path; entries are only ever added or replaced one at a time.
        self._keys: dict[int, bytes] = {}
        # Days whose key in memory is the one stored in the database.
        self._stored: set[int] = set()
        self._lock = threading.Lock()

    def hash(self, address: str | None, timestamp: float) -> str | None:
        """The address hashed with the key of the UTC day of ``timestamp``."""
        if address is None:
            return None
        day = int(timestamp // _SECONDS_PER_DAY)
        key = self._keys.get(day)
        if key is None:
            key = self._local_key(day)
        return hashlib.blake2b(
            address.encode("utf-8", "surrogatepass"), key=key, digest_size=_HASH_BYTES
        ).hexdigest()

    def hashes_of(self, address: str) -> list[str]:
        """The hash of ``address`` under every key still kept, newest day first."""
        with self._lock:
            days = sorted(self._keys, reverse=True)
        return [t.cast(str, self.hash(address, day * _SECONDS_PER_DAY)) for day in days]

    def days(self) -> list[date]:
        """The days whose key this process holds, oldest first."""
        return [_EPOCH + timedelta(days=d) for d in sorted(self._keys)]

    def sync(self, engine: sa.Engine) -> None:
        """Agree on keys with the database; run on the writer thread, never on a request.

        Creates the keys table if it is missing, stores today's and tomorrow's keys
        when no other process has (the first one stored wins), adopts the stored keys
        and deletes those older than yesterday, from the table and from memory.
        Several processes may run it at once.
        """
        today = int(datetime.now(timezone.utc).timestamp() // _SECONDS_PER_DAY)
        oldest = today - 1
        for day in (today, today + 1):
            if day not in self._keys:
                self._local_key(day)
        with self._lock:
            offers = {d: k for d, k in self._keys.items() if d not in self._stored and d >= oldest}

        try:
            stored = self._exchange(engine, offers, oldest)
        except sa_exc.StatementError as exc:
            # The statement's parameters hold the keys: never let them reach a log.
            cause = exc.orig if exc.orig is not None else exc
            reason = (str(cause).splitlines() or [""])[0]
            raise RuntimeError(
                f"could not sync the address-hash keys in table {self.table.name!r}: "
                f"{type(cause).__name__}: {reason}"
            ) from None

        with self._lock:
            for day_value, secret in stored:
                day = _to_day(day_value)
                try:
                    key = bytes.fromhex(secret)
                except (TypeError, ValueError):
                    continue  # not a key this code wrote; keep using our own
                self._keys[day] = key
                self._stored.add(day)
            for day in [d for d in self._keys if d < oldest]:
                del self._keys[day]
                self._stored.discard(day)

    def _exchange(
        self, engine: sa.Engine, offers: dict[int, bytes], oldest: int
    ) -> list[sa.Row[t.Any]]:
        table = self.table
        try:
            table.create(engine, checkfirst=True)
        except sa_exc.DBAPIError:
            # Another process created it between the check and the CREATE.
            if not sa.inspect(engine).has_table(table.name, schema=table.schema):
                raise
        now = datetime.now(timezone.utc).replace(tzinfo=None)
        for day, key in sorted(offers.items()):
            try:
                with engine.begin() as conn:
                    conn.execute(
                        table.insert().values(
                            {table.c["day"].key: _to_date(day), table.c["secret"].key: key.hex(),
                             table.c["created"].key: now}
                        )
                    )
            except sa_exc.IntegrityError:
                pass  # another process stored its key first; adopted below
        with engine.begin() as conn:
            conn.execute(table.delete().where(table.c["day"] < _to_date(oldest)))
            return list(
                conn.execute(
                    sa.select(table.c["day"], table.c["secret"]).where(
                        table.c["day"] >= _to_date(oldest)
                    )
                )
            )

    def _local_key(self, day: int) -> bytes:
        with self._lock:
            key = self._keys.get(day)
            if key is None:
                key = self._keys[day] = os.urandom(_KEY_BYTES)
            return key


def _to_date(day: int) -> date:
    return _EPOCH + timedelta(days=day)


def _to_day(value: date | datetime | str) -> int:
    # SQLite can hand back text for a DATE column written by another client.
    if isinstance(value, str):
        value = date.fromisoformat(value[:10])
    if isinstance(value, datetime):
        value = value.date()
    return (value - _EPOCH).days


def address_filter(mode: str | None, keyring: KeyRing | None) -> AddressFilter | None:
    """What the request path applies to ``remote_address`` (None: keep it as is)."""
    if mode is None:
        return None
    if mode == "truncate":
        return _truncate_filter
    if mode == "hash":
        if keyring is None:
            raise ValueError(
                "STATISTICS_ANONYMIZE_IP='hash' needs a KeyRing; pass "
                "KeyRing(keys_table(table)) as keyring"
            )
        return keyring.hash
    raise ValueError(
        f"STATISTICS_ANONYMIZE_IP must be None, 'truncate' or 'hash', got {mode!r}"
    )


def _truncate_filter(address: str | None, timestamp: float) -> str | None:
    return truncate_address(address)


# -- referrers -----------------------------------------------------------------------

# A host name (letters of any script, digits, dots, hyphens, underscores) or an IPv6
# literal. Anything else in the host position is not kept.
_HOST = re.compile(r"[\w.-]+|\[[0-9A-Fa-f:.]+\]")
_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*", re.ASCII)
_WEB_SCHEMES = frozenset(("http", "https"))


def referrer_filter(mode: str) -> ReferrerFilter | None:
    """What the request path applies to the Referer header (None: keep it as is).

    ``"path"`` keeps scheme, host, port and path; ``"origin"`` keeps scheme, host and
    port. Query strings, fragments, user names, passwords and ``;parameters`` (where
    session ids hide) are never kept. Referrers that are not ``http(s)`` URLs keep at
    most their scheme and host (``android-app://com.example``); those without a host
    (``data:``, ``file:``, ``javascript:``, relative or garbled ones) give None.
    """
    if mode == "full":
        return None
    if mode == "path":
        return referrer_path
    if mode == "origin":
        return referrer_origin
    raise ValueError(
        f"STATISTICS_REFERRER must be 'full', 'path' or 'origin', got {mode!r}"
    )


# Referrers repeat (the app's own pages, a few search engines): a cache makes the
# request-path cost a dictionary lookup. Bounded, so unique referrers cannot grow it.
@lru_cache(maxsize=1024)
def referrer_origin(referrer: str | None) -> str | None:
    parts = _split(referrer)
    return None if parts is None else parts[0]


@lru_cache(maxsize=1024)
def referrer_path(referrer: str | None) -> str | None:
    parts = _split(referrer)
    if parts is None:
        return None
    origin, path = parts
    if path is None:
        return origin
    return origin + path


def _split(referrer: str | None) -> tuple[str, str | None] | None:
    """``(scheme://host[:port], path)``; the path is None for non-web schemes."""
    if not referrer:
        return None
    try:
        parts = urlsplit(referrer.strip())
        host = parts.hostname
        port = parts.port
    except ValueError:  # bad port, unbalanced brackets
        return None
    scheme = parts.scheme.lower()
    if not host or not _SCHEME.fullmatch(scheme) or "\\" in parts.netloc:
        return None
    if ":" in host:
        host = f"[{host}]"
    if not _HOST.fullmatch(host):
        return None
    origin = f"{scheme}://{host}" if port is None else f"{scheme}://{host}:{port}"
    if scheme not in _WEB_SCHEMES:
        return origin, None
    path = parts.path.split(";", 1)[0]
    if not path.startswith("/"):
        path = "/" + path
    return origin, path
