"""Backups across hosts (``backup.records``): every backup is recorded in the database, every home lists
all of them with the host holding each, and retention, decided over all of them, deletes only the
pruning home's own files."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from company_agents.backup import create_backup, prune_backups
from company_agents.backup.records import all_backups, this_host
from company_agents.backup.schedule import latest_backup
from company_agents.db.database import Database, open_database
from company_agents.home import ensure_home
from company_agents.settings import Settings

pytestmark = pytest.mark.timeout(180)

Home = tuple[Settings, Database]


@pytest.fixture
def home_on(db_url: str, tmp_path: Path) -> Iterator[Callable[[str], Home]]:
    opened: list[Database] = []

    def make(name: str) -> Home:
        settings = Settings(home=tmp_path / name, database_url=db_url)
        ensure_home(settings)
        opened.append(open_database(settings))
        return settings, opened[-1]

    yield make
    for db in opened:
        db.close()


def rows(url: str, sql: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql).fetchall()


def test_backups_of_two_homes_are_listed_on_both(home_on: Callable[[str], Home], db_url: str) -> None:
    (a, adb), (b, bdb) = home_on("a"), home_on("b")
    first = create_backup(a, adb)
    second = create_backup(b, bdb, include_secrets=False)
    for settings, db in ((a, adb), (b, bdb)):
        listed = all_backups(settings, db)
        assert [r.path for r in listed] == [first.path, second.path]
        assert all(r.recorded and r.host == this_host() for r in listed)
        assert [r.here for r in listed] == [settings is a, settings is b]
    recorded = rows(db_url, "SELECT name, size_bytes, includes_secrets, scheduled FROM backups ORDER BY 1")
    assert recorded == [
        (first.path.name, first.size, False, False),
        (second.path.name, second.size, False, False),
    ]
    # The newest backup of any home decides when the next scheduled one is due.
    assert latest_backup(a, adb) == second.created_at
    as_dict = all_backups(b, bdb)[0].to_dict()
    assert (
        as_dict["host"] == this_host() and as_dict["here"] is False and "database" in as_dict["contents"][0]
    )


def test_an_unrecorded_file_in_the_home_is_listed(home_on: Callable[[str], Home], tmp_path: Path) -> None:
    (a, adb), (b, bdb) = home_on("a"), home_on("b")
    made = create_backup(a, adb)
    copy = b.backups_dir / made.path.name  # a file the database has no record of (copied in by hand)
    b.backups_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(made.path, copy)
    listed = all_backups(b, bdb)
    assert [(r.path, r.recorded, r.here) for r in listed] == [(made.path, True, False), (copy, False, True)]


def test_retention_over_every_host_deletes_only_own_files(
    home_on: Callable[[str], Home], db_url: str
) -> None:
    (a, adb), (b, bdb) = home_on("a"), home_on("b")
    day = datetime(2026, 11, 30, 12, tzinfo=UTC)
    olds = [create_backup(a, adb, now=day + timedelta(minutes=i)) for i in range(3)]
    newest = create_backup(b, bdb, now=day + timedelta(hours=1))
    # A record of another host's file that happens to have a path in a's directory: never a's to delete.
    foreign = a.backups_dir / "20261130T110000Z.tar.gz"
    shutil.copyfile(olds[0].path, foreign)
    with psycopg.connect(db_url) as conn:
        conn.execute(
            "INSERT INTO backups (created_at, host, path, name, size_bytes, includes_secrets,"
            " schema_revision)"
            " VALUES (%s, 'elsewhere', %s, %s, 1, false, 'x')",
            (day - timedelta(hours=1), str(foreign), foreign.name),
        )
    # One day, one week: the newest of all (b's) represents both; a keeps none of its own.
    kept, removed = prune_backups(a, adb, dry_run=True)
    assert kept == [] and sorted(removed) == sorted([*(o.path for o in olds), foreign])
    assert all(o.path.exists() for o in olds)  # dry run
    kept, removed = prune_backups(a, adb)
    assert not any(o.path.exists() for o in olds) and newest.path.exists()
    # `foreign` was both an unrecorded file of a's directory and a record of elsewhere: a deleted its
    # own file; elsewhere's record is untouched (that host prunes its own).
    assert rows(db_url, "SELECT host, deleted_at IS NULL FROM backups WHERE host = 'elsewhere'") == [
        ("elsewhere", True)
    ]
    deleted = rows(db_url, "SELECT name FROM backups WHERE deleted_at IS NOT NULL ORDER BY name")
    assert [r[0] for r in deleted] == sorted(o.path.name for o in olds)
    assert [r.path for r in all_backups(b, bdb) if r.host == this_host()] == [newest.path]
    kept, removed = prune_backups(b, bdb)
    assert kept == [newest.path] and removed == []


def test_a_restore_keeps_the_record_of_every_backup(home_on: Callable[[str], Home], db_url: str) -> None:
    from company_agents.backup import restore_backup

    a, adb = home_on("a")
    first = create_backup(a, adb)
    second = create_backup(a, adb)
    adb.close()
    restore_backup(a, first.path, replace=True)
    names = [r[0] for r in rows(db_url, "SELECT name FROM backups ORDER BY created_at, name")]
    assert names == [first.path.name, second.path.name]
