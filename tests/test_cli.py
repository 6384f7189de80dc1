from __future__ import annotations

import re
import typing as t
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from click.testing import Result
from conftest import AppFactory, rows
from flask import Flask

from flask_statistics.cli import register, statistics_cli
from flask_statistics.privacy import keys_table

NOW = datetime.now(timezone.utc).replace(microsecond=0, tzinfo=None)


class Cli:
    """An app recording into a fresh default-model table, and its command line."""

    def __init__(self, make_app: AppFactory, config: dict[str, t.Any] | None = None) -> None:
        self.app, _db, _model, self.statistics = make_app(model="default", config=config)
        register(self.app)
        self.state = self.app.extensions["statistics"]
        self.table = self.state.table
        with self.app.app_context():
            self.engine: sa.Engine = self.state.db.engine

        @self.app.route("/")
        def index() -> str:
            return "ok"

    def visit(self, *addresses: str) -> None:
        client = self.app.test_client()
        for address in addresses:
            client.get("/", environ_base={"REMOTE_ADDR": address})
        assert self.statistics.flush(timeout=10, app=self.app)

    def insert(self, *values: dict[str, t.Any]) -> None:
        with self.engine.begin() as conn:
            conn.execute(self.table.insert(), list(values))

    def addresses(self) -> list[str]:
        return sorted(r.remote_address for r in rows(self.app, self.statistics))

    def run(self, *args: str) -> Result:
        return self.app.test_cli_runner().invoke(args=["statistics", *args])

    def drop_keys(self) -> None:
        self.state.writer.stop(timeout=5)  # no key sync may run after the drop
        keys_table(self.table).drop(self.engine, checkfirst=True)


def aged(*days: int) -> list[dict[str, t.Any]]:
    return [{"date": NOW - timedelta(days=d), "path": f"/{d}d"} for d in days]


def test_register_is_idempotent(make_app: AppFactory) -> None:
    app: Flask = make_app(model="default")[0]
    register(app)
    register(app)
    assert app.cli.commands["statistics"] is statistics_cli


# -- prune ---------------------------------------------------------------------------


def test_prune_dry_run_only_counts(make_app: AppFactory) -> None:
    cli = Cli(make_app)
    cli.insert(*aged(1, 40, 50))
    result = cli.run("prune", "--older-than", "30d", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "Would delete 2 rows recorded before" in result.output
    assert len(rows(cli.app, cli.statistics)) == 3


def test_prune_deletes_older_rows(make_app: AppFactory) -> None:
    cli = Cli(make_app)
    cli.insert(*aged(1, 29, 40, 50, 400))
    result = cli.run("prune", "--older-than", "30d", "--batch-size", "2")
    assert result.exit_code == 0, result.output
    assert "Deleted 3 rows recorded before" in result.stdout
    assert sorted(r.path for r in rows(cli.app, cli.statistics)) == ["/1d", "/29d"]
    again = cli.run("prune", "--older-than", "5w")
    assert again.exit_code == 0 and "Nothing to delete" in again.output


@pytest.mark.parametrize("duration", ["30", "thirty days", "-1d", "0h", "3y"])
def test_prune_rejects_a_bad_duration(make_app: AppFactory, duration: str) -> None:
    cli = Cli(make_app)
    cli.insert(*aged(40))
    result = cli.run("prune", "--older-than", duration)
    assert result.exit_code == 2
    assert "--older-than" in result.output and "e.g. 30d" in result.output
    assert len(rows(cli.app, cli.statistics)) == 1


def test_prune_needs_a_duration(make_app: AppFactory) -> None:
    result = Cli(make_app).run("prune")
    assert result.exit_code == 2 and "--older-than" in result.output


# -- forget --------------------------------------------------------------------------


def test_forget_erases_one_clients_rows(make_app: AppFactory) -> None:
    cli = Cli(make_app)
    cli.visit("203.0.113.7", "203.0.113.8", "203.0.113.7", "::ffff:203.0.113.7", "2001:db8::7")
    result = cli.run("forget", "203.0.113.7")
    assert result.exit_code == 0, result.output
    assert "Erased 3 rows of 203.0.113.7." in result.output
    assert cli.addresses() == ["2001:db8::7", "203.0.113.8"]
    # Another spelling of the same IPv6 address.
    result = cli.run("forget", "2001:0DB8:0:0::0007")
    assert "Erased 1 row of" in result.output
    assert cli.addresses() == ["203.0.113.8"]


def test_forget_with_truncated_addresses_erases_the_network(make_app: AppFactory) -> None:
    cli = Cli(make_app, {"STATISTICS_ANONYMIZE_IP": "truncate"})
    cli.visit("203.0.113.7", "203.0.113.8", "198.51.100.1")
    cli.insert({"date": NOW, "remote_address": "203.0.113.7"})  # from before truncation
    result = cli.run("forget", "203.0.113.7")
    assert result.exit_code == 0, result.output
    assert "Erased 3 rows of 203.0.113.7" in result.output
    assert "203.0.113.0/24" in result.output
    assert cli.addresses() == ["198.51.100.0"]


def test_forget_with_hashed_addresses(make_app: AppFactory) -> None:
    cli = Cli(make_app, {"STATISTICS_ANONYMIZE_IP": "hash"})
    try:
        cli.visit("203.0.113.7", "198.51.100.1", "203.0.113.7")
        cli.insert({"date": NOW, "remote_address": "203.0.113.7"})  # from before hashing
        other = sorted(set(cli.addresses()) - {"203.0.113.7"})
        result = cli.run("forget", "203.0.113.7")
        assert result.exit_code == 0, result.output
        assert "Erased 3 rows of 203.0.113.7" in result.output
        remaining = cli.addresses()
        assert len(remaining) == 1 and remaining[0] in other
    finally:
        cli.drop_keys()


def test_forget_from_another_process_reads_the_keys_from_the_database(make_app: AppFactory) -> None:
    cli = Cli(make_app, {"STATISTICS_ANONYMIZE_IP": "hash"})
    try:
        cli.visit("203.0.113.7", "198.51.100.1")
        cli.state.writer.stop(timeout=5)
        # The command line runs in a process of its own, which holds no keys yet.
        cli.state.keyring = None
        result = cli.run("forget", "203.0.113.7")
        assert result.exit_code == 0, result.output
        assert "Erased 1 row of 203.0.113.7" in result.output
        assert len(cli.addresses()) == 1
    finally:
        cli.drop_keys()


def test_forget_needs_an_address(make_app: AppFactory) -> None:
    result = Cli(make_app).run("forget", " ")
    assert result.exit_code == 2 and "ADDRESS" in result.output


# -- status --------------------------------------------------------------------------


def test_status_reports_rows_dates_and_size(make_app: AppFactory) -> None:
    cli = Cli(make_app, {"STATISTICS_RETENTION": timedelta(days=90)})
    cli.insert(
        {"date": datetime(2024, 3, 1, 8, 30), "path": "/a"},
        {"date": datetime(2024, 3, 9, 17, 5, 2), "path": "/b"},
        {"date": datetime(2024, 3, 5), "path": "/c"},
    )
    result = cli.run("status")
    assert result.exit_code == 0, result.output
    lines = dict(
        (label.strip(), value.strip())
        for label, _, value in (line.partition(":") for line in result.output.splitlines())
    )
    assert lines["rows"] == "3"
    assert lines["oldest"] == "2024-03-01 08:30:00 UTC"
    assert lines["newest"] == "2024-03-09 17:05:02 UTC"
    assert re.match(r"[\d.,]+ (B|KB|MB)\b", lines["size"]), lines["size"]
    assert lines["retention"] == "delete rows older than 90 days"
    assert lines["addresses"] == "stored as they are"
    assert lines["dropped"] == "0" and lines["last error"] == "none"
    # Rows inserted behind the writer's back wait for the backfill (or a rebuild).
    assert lines["rollups"].startswith("0 rows"), lines["rollups"]
    assert cli.run("rebuild").exit_code == 0
    result = cli.run("status")
    rollups = next(line for line in result.output.splitlines() if line.startswith("rollups:"))
    assert re.match(r"rollups: +[1-9][\d,]* rows$", rollups), rollups


def test_status_of_an_empty_table(make_app: AppFactory) -> None:
    result = Cli(make_app).run("status")
    assert result.exit_code == 0, result.output
    assert re.search(r"^rows: +0$", result.output, re.M)
    assert re.search(r"^oldest: +none$", result.output, re.M)


def test_status_fails_when_the_table_cannot_be_read(make_app: AppFactory) -> None:
    cli = Cli(make_app)
    cli.table.drop(cli.engine)
    result = cli.run("status")
    assert result.exit_code == 1
    assert f"could not read table {cli.table.name!r}" in result.output
    cli.table.create(cli.engine)  # for the fixture's clean-up
