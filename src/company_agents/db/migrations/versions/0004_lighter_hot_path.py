"""A lighter claim/complete path: fewer index writes and locks per task, no row lock on the agent.

- leases: drop the unique indexes on run_id and token_hash (writes match on task_id, the primary key,
  and authentication goes through runs.lease_token_hash) and the foreign keys of its copied agent_id and
  company_id columns (the run row carries that integrity);
- tasks: drop ix_tasks_company_id_status (listing by status is served by the company's rows);
- audit_events: drop ix_audit_events_action (audit queries narrow by company and time first);
- ca_claim_tasks serialises claims per agent with a transaction-scoped advisory lock instead of a row
  lock (which dirtied the agent row and wrote WAL on every claim).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
Kind: contract (drops indexes nothing reads on the hot path)
"""

from __future__ import annotations

import importlib

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_claim = importlib.import_module("company_agents.db.migrations.versions.0003_claim_function")

LOCK_ROW = """    SELECT ag.id, ag.company_id, ag.team_id, ag.status, ag.max_concurrent_tasks, c.status AS company_status
    INTO a
    FROM agents ag JOIN companies c ON c.id = ag.company_id
    WHERE ag.id = p_agent
    FOR UPDATE OF ag;"""

LOCK_ADVISORY = """    -- One claimer per agent at a time, so the capacity count below sees every committed lease.
    PERFORM pg_advisory_xact_lock(hashtextextended(p_agent::text, 4242));
    SELECT ag.id, ag.company_id, ag.team_id, ag.status, ag.max_concurrent_tasks, c.status AS company_status
    INTO a
    FROM agents ag JOIN companies c ON c.id = ag.company_id
    WHERE ag.id = p_agent;"""


def _function(lock: str) -> str:
    body: str = _claim.CLAIM_FUNCTION
    if LOCK_ROW not in body:
        raise RuntimeError("0003's claim function changed; update 0004")
    return body.replace(LOCK_ROW, lock).replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)


def upgrade() -> None:
    op.drop_constraint("uq_leases_run_id", "leases", type_="unique")
    op.drop_constraint("uq_leases_token_hash", "leases", type_="unique")
    op.drop_constraint("fk_leases_agent_id_agents", "leases", type_="foreignkey")
    op.drop_constraint("fk_leases_company_id_companies", "leases", type_="foreignkey")
    op.drop_index("ix_tasks_company_id_status", table_name="tasks")
    op.drop_index("ix_audit_events_action", table_name="audit_events")
    op.execute(_function(LOCK_ADVISORY))


def downgrade() -> None:
    op.execute(_function(LOCK_ROW))
    op.create_index("ix_audit_events_action", "audit_events", ["action"], unique=False)
    op.create_index("ix_tasks_company_id_status", "tasks", ["company_id", "status"], unique=False)
    op.create_foreign_key(
        "fk_leases_company_id_companies", "leases", "companies", ["company_id"], ["id"], ondelete="RESTRICT"
    )
    op.create_foreign_key(
        "fk_leases_agent_id_agents", "leases", "agents", ["agent_id"], ["id"], ondelete="RESTRICT"
    )
    op.create_unique_constraint("uq_leases_token_hash", "leases", ["token_hash"])
    op.create_unique_constraint("uq_leases_run_id", "leases", ["run_id"])
