"""The schema check of every command: one query at head, Alembic only when the database is behind."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable

import psycopg
import pytest

from company_agents.db.database import open_database
from company_agents.db.revision import HEAD_REVISION
from company_agents.errors import SchemaOutOfDate
from company_agents.settings import Settings
from company_agents.startup import ensure_schema

PROBE = """
import json, sys
sys.argv = ["company-agents", "company", "list", "--json"]
from company_agents.cli.main import run
try:
    run()
except SystemExit as exc:
    code = exc.code
else:
    code = 0
print(json.dumps({"code": code, "alembic": "alembic" in sys.modules}))
"""


def _set_revision(url: str, revision: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE alembic_version SET version_num = %s", (revision,))


@pytest.mark.slow
def test_a_database_at_head_is_checked_without_alembic(db_url: str, cli_env: dict[str, str]) -> None:
    env = {**cli_env, "DATABASE_URL": db_url}
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120, check=True
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"code": 0, "alembic": False}, out.stderr


@pytest.mark.slow
def test_a_database_behind_is_refused_with_what_is_pending(
    db_url: str, make_settings: Callable[..., Settings]
) -> None:
    behind = f"{int(HEAD_REVISION) - 1:04d}"  # the revisions are numbered one by one (a test says so)
    _set_revision(db_url, behind)
    db = open_database(make_settings(database_url=db_url, auto_migrate=False))
    try:
        assert db.schema_revision == behind
        with pytest.raises(
            SchemaOutOfDate, match=rf"at {behind} but this version needs {HEAD_REVISION} \(1 pending\)"
        ):
            ensure_schema(db)
    finally:
        db.close()


def test_a_database_behind_is_migrated_when_auto_migrate_is_on(
    db_url: str, make_settings: Callable[..., Settings]
) -> None:
    db = open_database(make_settings(database_url=db_url, auto_migrate=True))
    try:
        # As read by a process that opened the database before another one migrated it: the check
        # hands over to Alembic, which finds nothing to do and reports the head.
        db.schema_revision = "0013"
        status = ensure_schema(db)
        assert status.up_to_date and status.current == HEAD_REVISION
    finally:
        db.close()


def test_a_never_migrated_database_reads_as_no_revision(
    db_url: str, make_settings: Callable[..., Settings]
) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("DROP TABLE alembic_version")
    db = open_database(make_settings(database_url=db_url, auto_migrate=False))
    try:
        assert db.schema_revision is None
        with pytest.raises(SchemaOutOfDate, match="at nothing"):
            ensure_schema(db)
    finally:
        db.close()
