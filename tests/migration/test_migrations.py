"""The migrations produce exactly the table definitions, and run safely in parallel."""

from __future__ import annotations

import subprocess
import sys

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from company_agents.db.database import sqlalchemy_url
from company_agents.db.migrate import head_revision, migration_status, script_directory, upgrade
from company_agents.db.schema import metadata
from tests.conftest import PgServer


def test_revisions_are_one_numbered_linear_chain() -> None:
    revisions = list(script_directory().walk_revisions())
    numbers = sorted(int(r.revision) for r in revisions)
    assert numbers == list(range(1, len(numbers) + 1))
    for rev in revisions:
        expected_down = None if rev.revision == "0001" else f"{int(rev.revision) - 1:04d}"
        assert rev.down_revision == expected_down


def test_migrations_match_metadata_exactly(pg: PgServer) -> None:
    url = pg.create_empty_database()
    engine = create_engine(sqlalchemy_url(url), poolclass=NullPool)
    status = upgrade(engine)
    assert status.current == head_revision() and status.pending == []
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
        diff = compare_metadata(ctx, metadata)
    engine.dispose()
    assert diff == []


def test_downgrade_to_base_and_back(pg: PgServer) -> None:
    from alembic import command

    from company_agents.db.migrate import alembic_config

    url = pg.create_empty_database()
    engine = create_engine(sqlalchemy_url(url), poolclass=NullPool)
    upgrade(engine)
    with engine.connect() as conn:
        command.downgrade(alembic_config(conn), "base")
        conn.commit()
    assert migration_status(engine).current is None
    assert upgrade(engine).up_to_date
    engine.dispose()


@pytest.mark.parametrize("table", ["audit_events", "cost_entries", "memory_entries", "audit_seals"])
def test_history_tables_refuse_update_delete_truncate(db_url: str, table: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        company = conn.execute(
            "INSERT INTO companies (slug, name) VALUES ('acme', 'Acme') RETURNING id"
        ).fetchone()
        assert company is not None
        inserts = {
            "audit_events": (
                "INSERT INTO audit_events (company_id, actor, action, subject_type, subject_id) "
                "VALUES (%s, 'user:test', 'company.created', 'company', 'x')"
            ),
            "cost_entries": (
                "INSERT INTO cost_entries (company_id, kind, effective_usd) VALUES (%s, 'llm', 1.5)"
            ),
            "memory_entries": (
                "INSERT INTO memory_entries (company_id, scope, scope_id, topic, body, actor) "
                "VALUES (%s, 'company', %s, 'style', 'terse', 'user:test')"
            ),
            "audit_seals": (
                "INSERT INTO audit_seals (first_event_id, last_event_id, event_count, events_hash, "
                "seal_hash, key_id, signature) VALUES (1, 1, 1, 'h', 's', 'k', %s::text)"
            ),
        }
        params = (company[0], company[0]) if table == "memory_entries" else (company[0],)
        if table == "audit_seals":
            params = ("sig",)
        conn.execute(inserts[table], params)
        for statement in (
            f"UPDATE {table} SET created_at = now()",
            f"DELETE FROM {table}",
            f"TRUNCATE {table}",
        ):
            with pytest.raises(psycopg.Error, match="append-only"):
                conn.execute(statement)
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
        assert row == (1,)


@pytest.mark.slow
def test_two_migrate_processes_at_once_on_an_empty_database(pg: PgServer, cli_env: dict[str, str]) -> None:
    url = pg.create_empty_database()
    env = {**cli_env, "DATABASE_URL": url}
    cmd = [sys.executable, "-m", "company_agents.cli.main", "db", "migrate", "--json"]
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    results = [p.communicate(timeout=120) for p in procs]
    for proc, (out, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err.decode()
        assert b'"upToDate": true' in out
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [(head_revision(),)]
        tables = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public' "
            "AND table_name <> 'alembic_version'"
        ).fetchone()
    assert tables == (len(metadata.tables),)
