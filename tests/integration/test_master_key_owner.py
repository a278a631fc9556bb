"""One master key per database (``master_key.owner``): the first key used is recorded, any other is
refused with the fix, a home attached to an owned database never creates a key, and the migration
back-fills the record of a database that already had secrets."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import psycopg
import pytest
from alembic import command
from sqlalchemy import create_engine

from company_agents.db.database import Database
from company_agents.db.migrate import alembic_config, upgrade
from company_agents.errors import MasterKeyError, MasterKeyMismatch
from company_agents.home import ensure_home
from company_agents.master_key import load_master_key
from company_agents.master_key.owner import bind_master_key
from company_agents.settings import Settings
from tests.conftest import PgServer


def a_home(tmp_path: Path, name: str, url: str) -> tuple[Settings, Database]:
    settings = Settings(home=tmp_path / name, database_url=url)
    ensure_home(settings)
    return settings, Database(settings=settings, url=url)


def recorded(url: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT key_id, recorded_by FROM database_key").fetchall()


def test_the_first_key_is_recorded_and_every_other_refused(db_url: str, tmp_path: Path) -> None:
    first, db1 = a_home(tmp_path, "first", db_url)
    key = bind_master_key(first, db1)
    assert [r[0] for r in recorded(db_url)] == [key.key_id]
    assert bind_master_key(first, db1).key_id == key.key_id  # again: the same, no second row

    wrong, db2 = a_home(tmp_path, "wrong", db_url)
    (wrong.secrets_dir / "master.key").write_bytes(os.urandom(32))
    (wrong.secrets_dir / "master.key").chmod(0o600)
    with pytest.raises(MasterKeyMismatch) as refused:
        bind_master_key(wrong, db2)
    message = refused.value.message
    assert "\n" not in message and key.key_id in message and "fix: copy key" in message
    assert load_master_key(wrong, create=False).key_id in message

    fresh, db3 = a_home(tmp_path, "fresh", db_url)
    with pytest.raises(MasterKeyError, match=f"belongs to master key {key.key_id}"):
        bind_master_key(fresh, db3)
    assert not (fresh.secrets_dir / "master.key").exists()
    assert [r[0] for r in recorded(db_url)] == [key.key_id]


def test_two_new_homes_racing_on_a_new_database_record_one_key(db_url: str, tmp_path: Path) -> None:
    homes = [a_home(tmp_path, f"h{i}", db_url) for i in range(2)]
    results: list[object] = [None, None]
    barrier = threading.Barrier(2)

    def bind(i: int) -> None:
        barrier.wait()
        try:
            results[i] = bind_master_key(*homes[i]).key_id
        except MasterKeyError as exc:
            results[i] = exc

    threads = [threading.Thread(target=bind, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    winners = [r for r in results if isinstance(r, str)]
    assert len(winners) == 1 and [r[0] for r in recorded(db_url)] == winners
    # The loser never made a key file of its own.
    assert sum((s.secrets_dir / "master.key").exists() for s, _ in homes) == 1


def test_the_migration_records_the_key_of_existing_secrets(external_pg: PgServer, tmp_path: Path) -> None:
    url = external_pg.create_empty_database()
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        upgrade(engine, "0014")
        with psycopg.connect(url) as conn:
            company = conn.execute(
                "INSERT INTO companies (slug, name) VALUES ('acme', 'Acme') RETURNING id"
            ).fetchone()
            assert company is not None
            conn.execute(
                "INSERT INTO secrets (company_id, name, value, nonce, key_id)"
                " VALUES (%s, 'T', 'x', %s, 'feedfacefeedface')",
                (company[0], os.urandom(12)),
            )
        upgrade(engine)
        assert recorded(url) == [("feedfacefeedface", "migration 0015")]
        with engine.connect() as conn:  # and the downgrade is clean
            command.downgrade(alembic_config(conn), "0014")
            conn.commit()
    finally:
        engine.dispose()
