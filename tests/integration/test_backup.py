"""Backups on real PostgreSQL: create, wipe, restore; secrets with or without the key; refusals; schedule."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import tarfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from company_agents.backup import create_backup, restore_backup, verify_backup
from company_agents.backup.bundle import AUDIT, BackupInfo
from company_agents.backup.schedule import BACKUP_LOCK_KEY, backup_once
from company_agents.db.database import ORCHESTRATOR_APP_NAME, Database, open_database
from company_agents.errors import ArchiveError, OrchestratorRunning, TargetNotEmpty
from company_agents.home import ensure_home
from company_agents.master_key import load_master_key
from company_agents.runtime import backups as runtime_backups
from company_agents.runtime.backups import run_scheduled_backups
from company_agents.settings import Settings
from tests.conftest import PgServer
from tests.integration.populate import Populated, checksums, decrypt_all, export_to, populate, query

pytestmark = pytest.mark.timeout(300)


class Instance:
    """A home with its database, populated, with run workspaces and a master key."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        ensure_home(settings)

    @property
    def url(self) -> str:
        assert self.settings.database_url is not None
        return self.settings.database_url

    def fill(self) -> Populated:
        key = load_master_key(self.settings, create=True)
        data = populate(self.url, companies=2, key=key.key, key_id=key.key_id)
        (self.settings.runs_dir / "run-1").mkdir()
        (self.settings.runs_dir / "run-1" / "out.txt").write_text("hello\n")
        (self.settings.runs_dir / "run-2" / "deep").mkdir(parents=True)
        (self.settings.runs_dir / "run-2" / "deep" / "blob.bin").write_bytes(os.urandom(5000))
        return data

    def open(self) -> Database:
        return open_database(self.settings)

    def backup(self, *, include_secrets: bool) -> BackupInfo:
        db = self.open()
        try:
            return create_backup(self.settings, db, include_secrets=include_secrets)
        finally:
            db.close()

    def runs(self) -> dict[str, bytes]:
        root = self.settings.runs_dir
        return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def instance(pg: PgServer, tmp_path: Path) -> Callable[..., Instance]:
    def factory(name: str, *, migrated: bool = True) -> Instance:
        url = pg.create_database() if migrated else pg.create_empty_database()
        return Instance(Settings(home=tmp_path / name, database_url=url))

    return factory


def test_backup_wipe_restore_loses_nothing(instance: Callable[..., Instance], tmp_path: Path) -> None:
    old = instance("old")
    data = old.fill()
    info = old.backup(include_secrets=True)
    assert info.path.parent == old.settings.backups_dir and info.includes_secrets
    assert info.path.stat().st_mode & 0o777 == 0o600
    before = checksums(export_to(old.url, tmp_path / "before.tar", tmp_path))

    new = instance("new", migrated=False)  # the wiped machine: an empty home and an empty database
    result = restore_backup(new.settings, info.path)
    assert result.key == "restored" and result.run_files == 2
    assert "decrypt with this home's master key" in result.secrets_note
    assert checksums(export_to(new.url, tmp_path / "after.tar", tmp_path)) == before
    assert new.runs() == old.runs()
    key_file = new.settings.secrets_dir / "master.key"
    assert key_file.read_bytes() == data.key and key_file.stat().st_mode & 0o777 == 0o600
    assert decrypt_all(new.url, data) == data.plaintexts


def test_backup_holds_the_audit_trail_as_json_lines(
    instance: Callable[..., Instance], tmp_path: Path
) -> None:
    inst = instance("a")
    inst.fill()
    info = inst.backup(include_secrets=False)
    with tarfile.open(info.path) as tar:
        names = tar.getnames()
        lines = tar.extractfile(AUDIT).read().splitlines()  # type: ignore[union-attr]
    assert names[0] == "backup.json" and "secrets/master.key" not in names
    events = [json.loads(line) for line in lines]
    assert [e["id"] for e in events] == [
        r[0] for r in query(inst.url, "SELECT id FROM audit_events ORDER BY id")
    ]
    assert events[0]["payload"]["backslash"] == "c\\d" and events[0]["actor"] == "user:local"
    assert verify_backup(info.path).raw["audit"]["events"] == len(events)


def test_backup_without_secrets_restores_the_rest_and_names_the_key(
    instance: Callable[..., Instance], tmp_path: Path
) -> None:
    old = instance("old")
    old.fill()
    key_id = load_master_key(old.settings, create=False).key_id
    info = old.backup(include_secrets=False)
    assert not info.includes_secrets
    assert load_master_key(old.settings, create=False).key not in info.path.read_bytes()

    new = instance("new", migrated=False)
    result = restore_backup(new.settings, info.path)
    assert result.key == "not in backup" and result.secrets == 2
    assert (
        key_id in result.secrets_note and str(new.settings.secrets_dir / "master.key") in result.secrets_note
    )
    assert not (new.settings.secrets_dir / "master.key").exists()
    assert query(new.url, "SELECT count(*) FROM companies") == [(2,)]
    assert new.runs() == old.runs()


def test_restore_over_data_needs_replace(instance: Callable[..., Instance], tmp_path: Path) -> None:
    inst = instance("a")
    inst.fill()
    info = inst.backup(include_secrets=True)
    before = checksums(export_to(inst.url, tmp_path / "before.tar", tmp_path))
    populate(inst.url, companies=1, tag="later")  # work done after the backup
    (inst.settings.runs_dir / "run-3").mkdir()
    with pytest.raises(TargetNotEmpty, match="--replace"):
        restore_backup(inst.settings, info.path)
    result = restore_backup(inst.settings, info.path, replace=True)
    assert result.key == "matches"
    assert checksums(export_to(inst.url, tmp_path / "after.tar", tmp_path)) == before
    assert not (inst.settings.runs_dir / "run-3").exists()
    assert not list(inst.settings.home.glob(".runs-before-restore-*"))


def test_restore_refused_while_an_orchestrator_uses_the_target(
    instance: Callable[..., Instance], tmp_path: Path
) -> None:
    old = instance("old")
    old.fill()
    info = old.backup(include_secrets=False)
    new = instance("new")
    with psycopg.connect(new.url, application_name=ORCHESTRATOR_APP_NAME):
        with pytest.raises(OrchestratorRunning):
            restore_backup(new.settings, info.path, replace=True)
    assert new.runs() == {} and query(new.url, "SELECT count(*) FROM companies") == [(0,)]


@pytest.mark.parametrize("damage", ["truncated", "bit flip"])
def test_damaged_backup_is_refused_before_anything_is_written(
    damage: str, instance: Callable[..., Instance], tmp_path: Path
) -> None:
    old = instance("old")
    old.fill()
    info = old.backup(include_secrets=True)
    raw = bytearray(info.path.read_bytes())
    if damage == "truncated":
        raw = raw[: len(raw) * 3 // 4]
    else:
        raw[len(raw) // 2] ^= 0x01
    info.path.write_bytes(bytes(raw))
    with pytest.raises(ArchiveError):
        verify_backup(info.path)
    new = instance("new", migrated=False)
    with pytest.raises(ArchiveError):
        restore_backup(new.settings, info.path)
    assert query(new.url, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == [(0,)]
    assert new.runs() == {} and not (new.settings.secrets_dir / "master.key").exists()


def test_scheduled_backup_skips_while_another_holds_the_lock(instance: Callable[..., Instance]) -> None:
    inst = instance("a")
    inst.fill()
    db = inst.open()
    try:
        with psycopg.connect(inst.url) as other:
            other.execute("SELECT pg_advisory_lock(%s)", (BACKUP_LOCK_KEY,))
            assert backup_once(inst.settings, db) is None
            other.execute("SELECT pg_advisory_unlock(%s)", (BACKUP_LOCK_KEY,))
        assert list(inst.settings.backups_dir.iterdir()) == []
        name = backup_once(inst.settings, db)
        assert name is not None
        assert backup_once(inst.settings, db) is None, "a current backup exists: nothing is due"
    finally:
        db.close()


async def test_two_orchestrators_schedule_backups_one_at_a_time(
    instance: Callable[..., Instance], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two scheduling loops on one database and home: their backups never overlap, and a round they are
    both due in gives one backup, not two (the other skips, on the lock or on the fresh backup)."""
    from datetime import timedelta

    from company_agents.backup import schedule

    monkeypatch.setattr(schedule, "FIRST_BACKUP_DELAY", timedelta(0))
    inst = instance("a")
    inst.fill()
    settings = inst.settings.model_copy(update={"backup_interval_seconds": 0.5})
    attempts: dict[int, int] = {}
    written: list[tuple[float, float, Path]] = []  # (start, end, archive) of each backup taken
    real_backup_once = schedule.backup_once

    def counted_backup_once(
        settings: Settings, db: Database, cancel: threading.Event | None = None
    ) -> str | None:
        attempts[id(db)] = attempts.get(id(db), 0) + 1
        return real_backup_once(settings, db, cancel)

    def observed_create(settings: Settings, db: Database, **kwargs: Any) -> BackupInfo:
        start = time.monotonic()
        time.sleep(0.3)  # widen the window: a second backup not kept out by the lock would overlap this
        info = create_backup(settings, db, **kwargs)
        verify_backup(info.path)  # whole, before pruning can remove it
        written.append((start, time.monotonic(), info.path))
        return info

    monkeypatch.setattr(runtime_backups, "backup_once", counted_backup_once)
    monkeypatch.setattr(schedule, "create_backup", observed_create)
    stop = asyncio.Event()
    dbs = [open_database(settings), open_database(settings)]
    try:
        loops = [asyncio.create_task(run_scheduled_backups(settings, db, stop)) for db in dbs]
        deadline = time.monotonic() + 90
        while not (len(written) >= 3 and all(attempts.get(id(db), 0) >= 3 for db in dbs)):
            assert time.monotonic() < deadline, f"{len(written)} backups, attempts {list(attempts.values())}"
            await asyncio.sleep(0.1)
        stop.set()
        await asyncio.wait_for(asyncio.gather(*loops), timeout=30)
    finally:
        for db in dbs:
            db.close()
    spans = sorted(written)
    for (_, end, first), (start, _, second) in itertools.pairwise(spans):
        assert start >= end, f"{second.name} was started while {first.name} was being written"
    assert len(written) < sum(attempts.values()), "every due round gave a backup from each orchestrator"
    backups = sorted(settings.backups_dir.glob("*.tar.gz"))
    # Every backup of the day but the newest is pruned (keep 7 daily keeps one per day).
    assert len(backups) == 1
    verify_backup(backups[0])
    assert not [p for p in settings.backups_dir.iterdir() if p.name.startswith(".")]
