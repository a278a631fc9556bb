"""Master-key rotation: one transaction, a dated backup, crash recovery, audit verify across it."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from uuid import UUID

import pytest
from sqlalchemy import select

from company_agents import audit, companies, secrets_store
from company_agents.audit.seal import seal_pending
from company_agents.audit.verify import verify_trail
from company_agents.db.database import Database
from company_agents.db.schema import secrets
from company_agents.errors import MasterKeyMismatch
from company_agents.home import ensure_home
from company_agents.master_key import MasterKey, load_master_key
from company_agents.master_key.rotation import (
    known_keys,
    pending_path,
    recover_pending_rotation,
    rotate_master_key,
)
from company_agents.settings import Settings
from company_agents.startup import instance

VALUES = {"anthropic_api_key": "sk-ant-one-111", "github_token": "ghp-two-222"}


class SimulatedCrash(BaseException):
    """Raised by a hook: like a crash, it bypasses ``except Exception`` clean-ups."""


@pytest.fixture
def settings(make_settings: Callable[..., Settings], db_url: str) -> Settings:
    s = make_settings(database_url=db_url)
    ensure_home(s)
    return s


@pytest.fixture
def db(settings: Settings, db_url: str) -> Iterator[Database]:
    database = Database(settings=settings, url=db_url)
    yield database
    asyncio.run(database.dispose())


def key_path(settings: Settings) -> Path:
    return settings.secrets_dir / "master.key"


async def populate(db: Database, key: MasterKey) -> list[UUID]:
    ids = []
    async with db.engine.begin() as conn:
        for name in ("Acme", "Globex"):
            company_id = (await companies.create_company(conn, name=name))["id"]
            ids.append(company_id)
            for secret, value in VALUES.items():
                await secrets_store.create_secret(conn, key, company_id=company_id, name=secret, value=value)
    return ids


async def reveal_all(db: Database, key: MasterKey, company_ids: list[UUID]) -> dict[str, str]:
    out = {}
    async with db.engine.begin() as conn:
        for company_id in company_ids:
            for name in VALUES:
                out[name] = await secrets_store.reveal(conn, key, company_id, name)
    return out


async def key_ids_in_db(db: Database) -> set[str]:
    async with db.engine.connect() as conn:
        return set((await conn.execute(select(secrets.c.key_id))).scalars())


async def test_rotation_reencrypts_backs_up_and_audit_verifies_across_it(
    settings: Settings, db: Database
) -> None:
    old = load_master_key(settings, create=True)
    company_ids = await populate(db, old)
    async with db.engine.begin() as conn:
        assert await seal_pending(conn, old) > 0
    result = await rotate_master_key(settings, db.engine, old)
    new = load_master_key(settings, create=False)
    assert new.key_id == result.new_key_id != old.key_id and result.reencrypted == 4
    assert result.backup is not None and result.backup.read_bytes() == old.key
    assert stat.S_IMODE(result.backup.stat().st_mode) == 0o600
    assert result.backup.name.startswith("master.key.") and result.backup.name.endswith(".bak")
    assert not pending_path(key_path(settings)).exists()
    assert await key_ids_in_db(db) == {new.key_id}
    assert await reveal_all(db, new, company_ids) == VALUES
    with pytest.raises(MasterKeyMismatch):
        await reveal_all(db, old, company_ids)
    # Seals from before (old key) and after (new key) the rotation both verify.
    async with db.engine.begin() as conn:
        await audit.record(conn, actor="user:t", action="task.created", subject_type="task", subject_id="x")
        assert await seal_pending(conn, new) > 0
    ring = known_keys(settings, new)
    assert set(ring) == {old.key_id, new.key_id}
    async with db.engine.connect() as conn:
        report = await verify_trail(conn, ring)
        assert report.ok and set(report.key_ids) == {old.key_id, new.key_id}
        without_backup = await verify_trail(conn, {new.key_id: new})
    assert [p.kind for p in without_backup.problems] == ["seal_unknown_key"]


@pytest.mark.parametrize(
    ("step", "outcome"),
    [
        ("new_key_written", "old"),
        ("reencrypted", "old"),
        ("committed", "new"),
        ("backed_up", "new"),
    ],
)
async def test_a_crash_at_any_step_leaves_the_old_or_the_new_state(
    settings: Settings, db: Database, step: str, outcome: str
) -> None:
    old = load_master_key(settings, create=True)
    company_ids = await populate(db, old)

    def hook(at: str) -> None:
        if at == step:
            raise SimulatedCrash(at)

    with pytest.raises(SimulatedCrash):
        await rotate_master_key(settings, db.engine, old, hook=hook)
    assert pending_path(key_path(settings)).exists()
    await db.dispose()
    done = recover_pending_rotation(settings, db)
    assert done == ("completed" if outcome == "new" else "rolled back")
    assert not pending_path(key_path(settings)).exists()
    assert recover_pending_rotation(settings, db) is None  # idempotent
    current = load_master_key(settings, create=False)
    assert (current.key_id == old.key_id) == (outcome == "old")
    assert await key_ids_in_db(db) == {current.key_id}
    assert await reveal_all(db, current, company_ids) == VALUES
    if outcome == "new":
        assert old.key_id in known_keys(settings, current)  # backed up exactly once
        assert len(list(settings.secrets_dir.glob("master.key.*.bak"))) == 1


async def test_an_ordinary_failure_before_commit_changes_nothing(settings: Settings, db: Database) -> None:
    old = load_master_key(settings, create=True)
    company_ids = await populate(db, old)

    def hook(at: str) -> None:
        if at == "reencrypted":
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        await rotate_master_key(settings, db.engine, old, hook=hook)
    assert not pending_path(key_path(settings)).exists()
    assert load_master_key(settings, create=False).key_id == old.key_id
    assert await reveal_all(db, old, company_ids) == VALUES


async def test_rotation_with_the_wrong_key_changes_nothing(settings: Settings, db: Database) -> None:
    right = load_master_key(settings, create=True)
    company_ids = await populate(db, right)
    path = key_path(settings)
    path.write_bytes(os.urandom(32))
    wrong = load_master_key(settings, create=False)
    with pytest.raises(MasterKeyMismatch, match=r"is not this database.s master key .*fix: copy key"):
        await rotate_master_key(settings, db.engine, wrong)
    assert not pending_path(path).exists() and not list(settings.secrets_dir.glob("*.bak"))
    assert await key_ids_in_db(db) == {right.key_id}
    assert await reveal_all(db, right, company_ids) == VALUES
    # Starting up with that key is refused too, before anything runs.
    with pytest.raises(MasterKeyMismatch), instance(settings):
        pass


CRASHER = textwrap.dedent(
    """
    import asyncio, os, sys
    from company_agents.db.database import Database
    from company_agents.master_key import load_master_key
    from company_agents.master_key.rotation import rotate_master_key
    from company_agents.settings import Settings

    settings = Settings(home=sys.argv[1], database_url=sys.argv[2])
    step = sys.argv[3]

    def hook(at):
        if at == step:
            os._exit(9)  # no clean-up at all: a kill -9 at this point

    async def main():
        db = Database(settings=settings, url=settings.database_url)
        await rotate_master_key(settings, db.engine, load_master_key(settings, create=False), hook=hook)

    asyncio.run(main())
    """
)


@pytest.mark.parametrize(("step", "outcome"), [("new_key_written", "old"), ("committed", "new")])
@pytest.mark.slow
async def test_a_killed_process_mid_rotation_is_recovered(
    settings: Settings, db: Database, db_url: str, step: str, outcome: str
) -> None:
    old = load_master_key(settings, create=True)
    company_ids = await populate(db, old)
    await db.dispose()
    proc = subprocess.run(
        [sys.executable, "-c", CRASHER, str(settings.home), db_url, step],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 9, proc.stderr
    # The next start (startup.instance) recovers before it loads the key.
    with instance(settings) as inst:
        current = inst.master_key
    assert (current.key_id == old.key_id) == (outcome == "old")
    assert await key_ids_in_db(db) == {current.key_id}
    assert await reveal_all(db, current, company_ids) == VALUES
