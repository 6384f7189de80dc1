from __future__ import annotations

import re
import threading
import typing as t
from datetime import date, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from flask_statistics.privacy import (
    KeyRing,
    address_filter,
    address_forms,
    keys_table,
    referrer_filter,
    truncate_address,
)

from conftest import AppFactory, rows, unique_table

DAY = 86400.0


def now() -> float:
    return datetime.now(timezone.utc).timestamp()


# -- truncation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "stored"),
    [
        ("203.0.113.7", "203.0.113.0"),
        ("10.0.0.255", "10.0.0.0"),
        ("0.0.0.0", "0.0.0.0"),
        ("2001:db8:1234:5678:9abc:def0:1234:5678", "2001:db8:1234::"),
        ("2001:0db8:1234:ffff:0000:0000:0000:0001", "2001:db8:1234::"),
        ("2001:db8:1234::1", "2001:db8:1234::"),
        ("2001:db8::1", "2001:db8::"),
        ("::1", "::"),
        ("fe80::1%eth0", "fe80::"),
        ("::ffff:203.0.113.7", "203.0.113.0"),
    ],
)
def test_truncate_keeps_only_the_network(address: str, stored: str) -> None:
    assert truncate_address(address) == stored


@pytest.mark.parametrize(
    "garbage",
    [None, "", "localhost", "unix:/run/app.sock", "999.1.1.1", "1.2.3", "01.2.3.4",
     "203.0.113.7 ", "1.2.3.4.5", "2001:db8::1::2", "<script>"],
)
def test_truncate_stores_nothing_for_what_is_not_an_address(garbage: str | None) -> None:
    assert truncate_address(garbage) is None


def test_address_forms_cover_canonical_and_mapped_spellings() -> None:
    assert set(address_forms("2001:DB8::0001")) == {"2001:DB8::0001", "2001:db8::1"}
    assert set(address_forms("203.0.113.7")) == {"203.0.113.7", "::ffff:203.0.113.7"}
    assert "203.0.113.7" in address_forms("::ffff:203.0.113.7")
    assert address_forms("not an address") == ["not an address"]


def test_address_filter_per_mode() -> None:
    assert address_filter(None, None) is None
    truncate = address_filter("truncate", None)
    assert truncate is not None and truncate("198.51.100.20", now()) == "198.51.100.0"
    with pytest.raises(ValueError, match="KeyRing"):
        address_filter("hash", None)
    with pytest.raises(ValueError, match="'truncate' or 'hash'"):
        address_filter("scramble", None)


# -- hashing without a database --------------------------------------------------------


def test_hash_is_stable_within_a_day_and_changes_across_days() -> None:
    ring = KeyRing(keys_table(sa.Table(unique_table(), sa.MetaData())))
    today = now()
    midnight = today // DAY * DAY
    first = ring.hash("203.0.113.7", midnight + 1)
    assert ring.hash("203.0.113.7", midnight + DAY - 1) == first
    assert ring.hash("203.0.113.7", midnight + DAY) != first
    assert ring.hash("203.0.113.7", midnight - 1) != first
    assert ring.hash("203.0.113.8", midnight + 1) != first
    assert ring.hash(None, today) is None


def test_hash_reveals_nothing_of_the_address() -> None:
    ring = KeyRing(keys_table(sa.Table(unique_table(), sa.MetaData())))
    value = ring.hash("203.0.113.7", now())
    assert value is not None and len(value) == 16
    int(value, 16)  # hex only
    assert "203" not in value and "113" not in value
    # A second process without the key cannot reproduce it.
    other = KeyRing(keys_table(sa.Table(unique_table(), sa.MetaData())))
    assert other.hash("203.0.113.7", now()) != value


def test_keys_table_is_defined_once_on_the_same_metadata() -> None:
    metadata = sa.MetaData()
    table = sa.Table("requests", metadata, sa.Column("index", sa.Integer, primary_key=True))
    keys = keys_table(table)
    assert keys.name == "requests_keys" and keys.metadata is metadata
    assert keys_table(table) is keys


# -- hashing against a database --------------------------------------------------------


@pytest.fixture
def engine(database_url: str) -> t.Iterator[sa.Engine]:
    engine = sa.create_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def keys(engine: sa.Engine) -> t.Iterator[sa.Table]:
    metadata = sa.MetaData()
    table = sa.Table(unique_table(), metadata, sa.Column("index", sa.Integer, primary_key=True))
    keys = keys_table(table)
    yield keys
    keys.drop(engine, checkfirst=True)


def stored_days(engine: sa.Engine, keys: sa.Table) -> list[date]:
    with engine.connect() as conn:
        return sorted(conn.scalars(sa.select(keys.c.day)))


def test_sync_creates_the_table_and_stores_today_and_tomorrow(
    engine: sa.Engine, keys: sa.Table
) -> None:
    ring = KeyRing(keys)
    ring.sync(engine)
    today = datetime.now(timezone.utc).date()
    assert stored_days(engine, keys) == [today, today + timedelta(days=1)]
    with engine.connect() as conn:
        secrets = list(conn.scalars(sa.select(keys.c.secret)))
    assert all(len(s) == 64 for s in secrets) and len(set(secrets)) == 2


def test_two_processes_end_up_with_the_same_keys(engine: sa.Engine, keys: sa.Table) -> None:
    worker_a, worker_b = KeyRing(keys), KeyRing(keys)
    stamp = now()
    # Both hash before their first sync, each with a key of its own.
    assert worker_a.hash("203.0.113.7", stamp) != worker_b.hash("203.0.113.7", stamp)
    worker_a.sync(engine)
    worker_b.sync(engine)  # A stored first: B adopts A's keys
    assert worker_a.hash("203.0.113.7", stamp) == worker_b.hash("203.0.113.7", stamp)
    tomorrow = stamp + DAY
    assert worker_a.hash("203.0.113.7", tomorrow) == worker_b.hash("203.0.113.7", tomorrow)
    assert worker_a.hashes_of("203.0.113.7") == worker_b.hashes_of("203.0.113.7")


def test_concurrent_first_syncs_agree(engine: sa.Engine, keys: sa.Table) -> None:
    rings = [KeyRing(keys) for _ in range(4)]
    errors: list[BaseException] = []
    start = threading.Barrier(len(rings))

    def run(ring: KeyRing) -> None:
        start.wait()
        try:
            ring.sync(engine)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(r,)) for r in rings]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    stamp = now()
    assert len({ring.hash("198.51.100.1", stamp) for ring in rings}) == 1
    assert len(stored_days(engine, keys)) == 2


def test_keys_older_than_yesterday_are_destroyed(engine: sa.Engine, keys: sa.Table) -> None:
    today = datetime.now(timezone.utc).date()
    keys.create(engine)
    with engine.begin() as conn:
        conn.execute(
            keys.insert(),
            [
                {"day": today - timedelta(days=n), "secret": "ab" * 32, "created": datetime(2020, 1, 1)}
                for n in (1, 2, 5)
            ],
        )
    ring = KeyRing(keys)
    old = ring.hash("203.0.113.7", now() - 3 * DAY)  # a key this process made up
    ring.sync(engine)
    assert stored_days(engine, keys) == [today - timedelta(days=1), today, today + timedelta(days=1)]
    assert ring.days() == [today - timedelta(days=1), today, today + timedelta(days=1)]
    # Yesterday's stored key was adopted; the 3-day-old one is gone from memory too.
    assert old not in ring.hashes_of("203.0.113.7")
    assert len(ring.hashes_of("203.0.113.7")) == 3


def test_sync_errors_do_not_carry_the_keys(engine: sa.Engine, keys: sa.Table) -> None:
    # A keys table of another shape (no "created" column): the insert fails, and the
    # error must not show the statement's parameters, which hold the key.
    name = engine.dialect.identifier_preparer.format_table(keys)
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE {name} (day DATE PRIMARY KEY, secret VARCHAR(64))"))
    with pytest.raises(RuntimeError, match="could not sync the address-hash keys") as info:
        KeyRing(keys).sync(engine)
    assert not re.search("[0-9a-f]{64}", str(info.value))
    assert info.value.__suppress_context__


# -- referrers -----------------------------------------------------------------------

SECRET_REFERRER = "https://app.example/reset?token=SECRET123&email=alice@example.org#step2"


@pytest.mark.parametrize(
    ("referrer", "path", "origin"),
    [
        (SECRET_REFERRER, "https://app.example/reset", "https://app.example"),
        ("https://user:pass@host.example/a/b", "https://host.example/a/b", "https://host.example"),
        ("https://shop.example/cart#payment", "https://shop.example/cart", "https://shop.example"),
        ("HTTPS://Shop.Example:8443/Cart?x=1", "https://shop.example:8443/Cart", "https://shop.example:8443"),
        ("https://shop.example", "https://shop.example/", "https://shop.example"),
        ("https://shop.example?q=secret", "https://shop.example/", "https://shop.example"),
        ("http://[2001:db8::1]:8080/x?y", "http://[2001:db8::1]:8080/x", "http://[2001:db8::1]:8080"),
        ("https://a.example/app;jsessionid=ABC123/x", "https://a.example/app", "https://a.example"),
        ("android-app://com.google.android.gm/", "android-app://com.google.android.gm", "android-app://com.google.android.gm"),
        ("https://bücher.example/ä", "https://bücher.example/ä", "https://bücher.example"),
    ],
)
def test_referrer_keeps_only_what_the_mode_allows(referrer: str, path: str, origin: str) -> None:
    keep_path = referrer_filter("path")
    keep_origin = referrer_filter("origin")
    assert keep_path is not None and keep_origin is not None
    assert keep_path(referrer) == path
    assert keep_origin(referrer) == origin


@pytest.mark.parametrize(
    "referrer",
    [
        None,
        "",
        "file:///home/alice/Documents/offer.html",
        "data:text/html,<h1>hi</h1>",
        "javascript:alert(document.cookie)",
        "about:blank",
        "/relative/path?token=x",
        "//no-scheme.example/x",
        "http://[broken",
        "http://host.example:99999/",
        "https://exa mple.com/",
        "https://evil.example\\@good.example/",
        "https://<script>/",
        "\x00\x01garbage",
    ],
)
def test_referrer_garbage_is_not_kept(referrer: str | None) -> None:
    for mode in ("path", "origin"):
        keep = referrer_filter(mode)
        assert keep is not None and keep(referrer) is None


def test_full_referrer_is_not_filtered_and_bad_modes_are_named() -> None:
    assert referrer_filter("full") is None
    with pytest.raises(ValueError, match="'full', 'path' or 'origin'"):
        referrer_filter("host")


def test_tokens_never_survive_any_minimising_mode() -> None:
    for mode in ("path", "origin"):
        keep = referrer_filter(mode)
        assert keep is not None
        kept = keep(SECRET_REFERRER) or ""
        assert "SECRET123" not in kept and "alice" not in kept and "step2" not in kept


# -- through the app -----------------------------------------------------------------


def record_visits(make_app: AppFactory, config: dict[str, t.Any]) -> tuple[list[t.Any], t.Any]:
    app, _db, _model, statistics = make_app(model="default", config=config)

    @app.route("/")
    def index() -> str:
        return "ok"

    client = app.test_client()
    for address in ("203.0.113.7", "203.0.113.7", "203.0.113.99", "2001:db8:1234:5678::1"):
        client.get("/", environ_base={"REMOTE_ADDR": address}, headers={"Referer": SECRET_REFERRER})
    recorded = rows(app, statistics)
    state = app.extensions["statistics"]
    if state.keyring is not None:
        state.writer.stop(timeout=5)  # no key sync may run after the drop below
        with app.app_context():
            keys_table(state.table).drop(state.db.engine, checkfirst=True)
    return recorded, state


def test_addresses_are_stored_as_they_are_by_default(make_app: AppFactory) -> None:
    recorded, _ = record_visits(make_app, {})
    assert [r.remote_address for r in recorded] == [
        "203.0.113.7", "203.0.113.7", "203.0.113.99", "2001:db8:1234:5678::1"
    ]
    # The default referrer mode drops the query string and fragment.
    assert {r.referrer for r in recorded} == {"https://app.example/reset"}


def test_truncated_addresses_through_the_app(make_app: AppFactory) -> None:
    recorded, _ = record_visits(
        make_app, {"STATISTICS_ANONYMIZE_IP": "truncate", "STATISTICS_REFERRER": "origin"}
    )
    assert [r.remote_address for r in recorded] == [
        "203.0.113.0", "203.0.113.0", "203.0.113.0", "2001:db8:1234::"
    ]
    assert {r.referrer for r in recorded} == {"https://app.example"}


def test_hashed_addresses_through_the_app(make_app: AppFactory) -> None:
    recorded, state = record_visits(
        make_app, {"STATISTICS_ANONYMIZE_IP": "hash", "STATISTICS_REFERRER": "full"}
    )
    stored = [r.remote_address for r in recorded]
    assert stored[0] == stored[1]  # one visitor within a day
    assert len(set(stored)) == 3
    assert not any("203.0.113" in s or "2001:db8" in s for s in stored)
    # The key the requests used is the one agreed with the database.
    assert stored[0] in state.keyring.hashes_of("203.0.113.7")
    assert {r.referrer for r in recorded} == {SECRET_REFERRER}
