"""Retry backoff and one eligibility rule for claims.

- tasks.releases: attempts given back at a graceful shutdown, which do not count against
  max_attempts (a release used to raise max_attempts by one instead);
- ca_task_claimable() and ca_agent_can_claim(): the claim eligibility rule as SQL functions, shared by
  ca_claim_tasks() and the scheduler's candidate query;
- ca_claim_tasks() recreated on them.

The function texts below are frozen copies: a migration never changes meaning later. The current
definitions live in company_agents/db/sql/*.sql, and a test requires those to equal what the database
holds after migrating to head; change them only together with a new migration.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
Kind: expand (a new column with a default, new functions)
"""

from __future__ import annotations

import importlib

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TASK_CLAIMABLE = """
-- Whether task t may be claimed now by agent p_agent of team p_team in company p_company: the one
-- eligibility rule, shared by ca_claim_tasks() and the scheduler's candidate query. A plain SQL
-- expression, so the planner inlines it and the partial index ix_tasks_claimable still serves it.
CREATE OR REPLACE FUNCTION ca_task_claimable(t tasks, p_company uuid, p_agent uuid, p_team uuid)
RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT t.status = 'queued'
       AND t.company_id = p_company
       AND (t.run_after IS NULL OR t.run_after <= now())
       AND (t.assigned_agent_id = p_agent
            OR (t.assigned_agent_id IS NULL
                AND (t.assigned_team_id IS NULL OR t.assigned_team_id = p_team)))
$$
"""

AGENT_CAN_CLAIM = """
-- Whether an agent in this status, in a company in this status, may take new work (shared by
-- ca_claim_tasks() and the scheduler's candidate query).
CREATE OR REPLACE FUNCTION ca_agent_can_claim(p_agent_status text, p_company_status text)
RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
    SELECT p_agent_status IN ('idle', 'running') AND p_company_status = 'active'
$$
"""

CLAIM_TASKS = """
-- The whole claim in one round trip. One claimer per agent at a time (a transaction-scoped advisory
-- lock), so the capacity count sees every committed lease; then, in one statement, the task update
-- with a new fencing token, the run, the lease and the audit event.
CREATE OR REPLACE FUNCTION ca_claim_tasks(
    p_agent uuid, p_limit integer, p_hashes text[], p_holder text, p_lease_seconds double precision
) RETURNS TABLE (
    task_id uuid, company_id uuid, attempt integer, fencing_token bigint, title text, n bigint,
    run_id uuid, expires_at timestamptz
) LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
    a record;
BEGIN
    -- One claimer per agent at a time, so the capacity count below sees every committed lease.
    PERFORM pg_advisory_xact_lock(hashtextextended(p_agent::text, 4242));
    SELECT ag.id, ag.company_id, ag.team_id, ag.status, ag.max_concurrent_tasks, c.status AS company_status
    INTO a
    FROM agents ag JOIN companies c ON c.id = ag.company_id
    WHERE ag.id = p_agent;
    IF NOT FOUND OR NOT ca_agent_can_claim(a.status, a.company_status) THEN
        RETURN;
    END IF;
    RETURN QUERY
    WITH candidate AS (
        -- SKIP LOCKED: concurrent claimers never wait on, nor take, the same task; the partial index
        -- ix_tasks_claimable covers queued rows only.
        SELECT t.id
        FROM tasks t
        WHERE ca_task_claimable(t, a.company_id, p_agent, a.team_id)
        ORDER BY t.priority DESC, t.created_at
        LIMIT GREATEST(0, LEAST(p_limit, coalesce(array_length(p_hashes, 1), 0),
                                a.max_concurrent_tasks - (SELECT count(*) FROM leases l WHERE l.agent_id = p_agent)))
        FOR UPDATE SKIP LOCKED
    ),
    claimed AS (
        UPDATE tasks t
        SET status = 'assigned', attempt = t.attempt + 1, fencing_token = t.fencing_token + 1, updated_at = now()
        FROM candidate c
        WHERE t.id = c.id
        RETURNING t.id, t.company_id, t.attempt, t.fencing_token, t.keep_workspace, t.title
    ),
    numbered AS (
        SELECT c.*, row_number() OVER (ORDER BY c.id) AS n FROM claimed c
    ),
    new_runs AS (
        INSERT INTO runs (task_id, company_id, agent_id, attempt, fencing_token, keep_workspace,
                          orchestrator_id, lease_token_hash)
        SELECT x.id, x.company_id, p_agent, x.attempt, x.fencing_token, x.keep_workspace, p_holder,
               p_hashes[x.n]
        FROM numbered x
        RETURNING id, task_id, lease_token_hash
    ),
    new_leases AS (
        INSERT INTO leases (task_id, run_id, agent_id, company_id, fencing_token, token_hash, holder, expires_at)
        SELECT x.id, r.id, p_agent, x.company_id, x.fencing_token, r.lease_token_hash, p_holder,
               now() + make_interval(secs => p_lease_seconds)
        FROM numbered x JOIN new_runs r ON r.task_id = x.id
        RETURNING task_id, expires_at
    ),
    events AS (
        INSERT INTO audit_events (company_id, actor, action, subject_type, subject_id, payload)
        SELECT x.company_id, 'system:' || p_holder, 'task.claimed', 'task', x.id::text,
               jsonb_build_object('agentId', p_agent, 'runId', r.id, 'attempt', x.attempt,
                                  'fencingToken', x.fencing_token)
        FROM numbered x JOIN new_runs r ON r.task_id = x.id
    )
    SELECT x.id, x.company_id, x.attempt, x.fencing_token, x.title, x.n, r.id, l.expires_at
    FROM numbered x JOIN new_runs r ON r.task_id = x.id JOIN new_leases l ON l.task_id = x.id
    ORDER BY x.n;
END
$$
"""


def upgrade() -> None:
    op.add_column("tasks", sa.Column("releases", sa.Integer(), server_default="0", nullable=False))
    op.create_check_constraint(
        op.f("ck_tasks_releases_within_attempts"), "tasks", "releases BETWEEN 0 AND attempt"
    )
    op.execute(TASK_CLAIMABLE)
    op.execute(AGENT_CAN_CLAIM)
    op.execute(CLAIM_TASKS)


def downgrade() -> None:
    previous = importlib.import_module("company_agents.db.migrations.versions.0004_lighter_hot_path")
    op.execute(previous._function(previous.LOCK_ADVISORY))
    op.execute("DROP FUNCTION ca_agent_can_claim(text, text)")
    op.execute("DROP FUNCTION ca_task_claimable(tasks, uuid, uuid, uuid)")
    op.drop_constraint(op.f("ck_tasks_releases_within_attempts"), "tasks", type_="check")
    op.drop_column("tasks", "releases")
