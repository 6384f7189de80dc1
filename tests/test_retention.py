from __future__ import annotations

import time
import typing as t
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from conftest import AppFactory, rows, unique_table

from flask_statistics.retention import (
    Retention,
    count_older_than,
    cutoff_before,
    delete_older_than,
    parse_duration,
)

NOW = datetime.now(timezone.utc).replace(microsecond=0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30d", timedelta(days=30)),
        ("12h", timedelta(hours=12)),
        ("6w", timedelta(weeks=6)),
        ("90m", timedelta(minutes=90)),
        (" 7D ", timedelta(days=7)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "30", "d", "30 days", "-3d", "1.5d", "3y", "0d", "30d7h", "999999999w"])
def test_parse_duration_names_the_format(text: str) -> None:
    with pytest.raises(ValueError, match=r"e\.g\. 30d"):
        parse_duration(text)


def test_cutoff_before_reaches_back_at_most_to_year_one() -> None:
    assert cutoff_before(timedelta(days=2), NOW) == NOW - timedelta(days=2)
    assert cutoff_before(parse_duration("99999999d"), NOW).year == 1


@pytest.fixture(params=[False, True], ids=["naive", "aware"])
def table(request: pytest.FixtureRequest, database_url: str) -> t.Iterator[tuple[sa.Engine, sa.Table]]:
    engine = sa.create_engine(database_url)
    table = sa.Table(
        unique_table(),
        sa.MetaData(),
        sa.Column("index", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("date", sa.DateTime(timezone=request.param)),
        sa.Column("remote_address", sa.String(64)),
    )
    table.create(engine)
    yield engine, table
    table.drop(engine)
    engine.dispose()


def insert_ages(engine: sa.Engine, table: sa.Table, hours: list[float]) -> None:
    aware = table.c.date.type.timezone
    values = []
    for age in hours:
        moment = NOW - timedelta(hours=age)
        values.append({"date": moment if aware else moment.replace(tzinfo=None)})
    with engine.begin() as conn:
        conn.execute(table.insert(), values)


def ages_left(engine: sa.Engine, table: sa.Table) -> list[int]:
    with engine.connect() as conn:
        dates = conn.scalars(sa.select(table.c.date).order_by(table.c.date.desc())).all()
    result = []
    for moment in dates:
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        result.append(round((NOW - moment).total_seconds() / 3600))
    return result


def test_old_rows_are_deleted_in_batches_and_new_ones_kept(table: tuple[sa.Engine, sa.Table]) -> None:
    engine, tbl = table
    insert_ages(engine, tbl, [1, 2, 23] + [25 + n for n in range(11)])
    cutoff = NOW - timedelta(hours=24)
    assert count_older_than(engine, tbl, cutoff) == 11
    batches: list[int] = []
    deleted = delete_older_than(engine, tbl, cutoff, batch_size=4, on_batch=batches.append)
    assert deleted == 11
    assert batches == [4, 4, 3]
    assert ages_left(engine, tbl) == [1, 2, 23]
    assert count_older_than(engine, tbl, cutoff) == 0


def test_delete_stops_when_asked(table: tuple[sa.Engine, sa.Table]) -> None:
    engine, tbl = table
    insert_ages(engine, tbl, [48] * 10)
    answers = iter([False, False, True])
    deleted = delete_older_than(
        engine, tbl, NOW - timedelta(hours=24), batch_size=3, should_stop=lambda: next(answers)
    )
    assert deleted == 6
    assert len(ages_left(engine, tbl)) == 4


def test_cutoff_must_say_its_zone(table: tuple[sa.Engine, sa.Table]) -> None:
    engine, tbl = table
    with pytest.raises(ValueError, match="aware"):
        count_older_than(engine, tbl, datetime(2020, 1, 1))


def test_retention_task_waits_its_interval(table: tuple[sa.Engine, sa.Table]) -> None:
    engine, tbl = table
    clock = [1000.0]
    task = Retention(tbl, timedelta(days=1), interval=60.0, clock=lambda: clock[0])
    insert_ages(engine, tbl, [1, 30])
    task(engine)  # the first call runs at once
    assert ages_left(engine, tbl) == [1]
    insert_ages(engine, tbl, [40])
    clock[0] += 59
    task(engine)
    assert ages_left(engine, tbl) == [1, 40]
    clock[0] += 2
    task(engine)
    assert ages_left(engine, tbl) == [1]


def test_retention_task_deletes_a_bounded_amount_per_run(table: tuple[sa.Engine, sa.Table]) -> None:
    engine, tbl = table
    clock = [0.0]
    task = Retention(
        tbl, timedelta(days=1), interval=10.0, max_batches=2, batch_size=3, clock=lambda: clock[0]
    )
    insert_ages(engine, tbl, [30] * 10)
    task(engine)
    assert len(ages_left(engine, tbl)) == 4
    clock[0] += 10
    task(engine)
    assert ages_left(engine, tbl) == []


def test_retention_period_must_be_positive() -> None:
    table = sa.Table("t", sa.MetaData(), sa.Column("index", sa.Integer, primary_key=True))
    with pytest.raises(ValueError, match="timedelta"):
        Retention(table, timedelta(0))


def test_writer_prunes_with_statistics_retention(make_app: AppFactory) -> None:
    app, _db, _model, statistics = make_app(
        model="default", config={"STATISTICS_RETENTION": timedelta(days=30)}
    )

    @app.route("/")
    def index() -> str:
        return "ok"

    state = app.extensions["statistics"]
    with app.app_context():
        engine = state.db.engine
    with engine.begin() as conn:
        conn.execute(
            state.table.insert(),
            [{"date": (NOW - timedelta(days=days)).replace(tzinfo=None), "path": "/old"} for days in (31, 45, 400)],
        )
    app.test_client().get("/")
    deadline = time.monotonic() + 20  # an upper bound only: the writer prunes after its drain
    paths = [r.path for r in rows(app, statistics)]
    while "/old" in paths and time.monotonic() < deadline:
        time.sleep(0.05)
        paths = [r.path for r in rows(app, statistics)]
    assert paths == ["/"]
