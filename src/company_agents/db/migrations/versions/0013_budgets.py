"""Budgets: reservations on leases, top-ups and overrides, breaches once a period, the claim reserving.

- ``leases.reserved_usd``: what is left of a run's reservation (docs/budgets.md);
- ``agents.task_budget_usd``: the default budget of each task the agent runs (``agent hire --task-budget``);
- ``tasks.workflow_id`` and ``workflow_budgets``: the workflow scope's column and cap (workflows come later);
- ``budget_grants`` (top-ups from the company reserve, approved overrides) and ``budget_breaches``;
- ``ca_budget_scopes()``, ``ca_task_budget()`` and ``ca_workflow_budget()``: a scope's cap, spend and
  reservations, one rule for the claim, the check as each cost lands (``ca_budget_after_cost()``), and
  ``budget show``;
- ``ca_claim_tasks()`` recreated with a sixth argument, the per-run reservation size (NULL: no budgets).

The function texts below are frozen copies (see 0006).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02
Kind: expand (new columns with defaults, new tables, new functions; the claim function's signature
changes, so an orchestrator of the previous version cannot claim on the new schema)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

BUDGET_SCOPES = """
-- The budgets a claim or a cost of agent p_agent (team p_team, company p_company) must fit, as of now:
-- one row per scope in lock order (company, team, agent), with its period, cap, spend in the period
-- and the reservations outstanding on it (docs/budgets.md). The defaults live here and nowhere else:
-- a company $500 per fiscal period, a team equal shares of 80% of its company (20% held in reserve
-- for top-ups), an agent $80. Top-ups add to a cap; an approved override raises it for the period.
CREATE OR REPLACE FUNCTION ca_budget_scopes(p_company uuid, p_team uuid, p_agent uuid)
RETURNS TABLE (
    n integer, scope text, scope_id uuid, period_start date, today date, cap numeric, spent numeric,
    reserved numeric
) LANGUAGE sql STABLE AS $$
    WITH c AS (
        SELECT c.id, (now() AT TIME ZONE c.time_zone)::date AS today,
               CASE WHEN c.fiscal_period = 'monthly'
                    THEN date_trunc('month', now() AT TIME ZONE c.time_zone)::date
                    ELSE (now() AT TIME ZONE c.time_zone)::date - 29 END AS period_start,
               coalesce(c.budget_usd, 500) AS base
        FROM companies c WHERE c.id = p_company
    ),
    s AS (
        SELECT 1 AS n, 'company' AS scope, c.id AS scope_id, c.base FROM c
        UNION ALL
        SELECT 2, 'team', t.id,
               coalesce(t.budget_usd, round(c.base * 0.8 / (SELECT count(*) FROM teams x WHERE x.company_id = c.id), 4))
        FROM teams t CROSS JOIN c WHERE t.id = p_team AND t.company_id = c.id
        UNION ALL
        SELECT 3, 'agent', a.id, coalesce(a.budget_usd, 80)
        FROM agents a CROSS JOIN c WHERE a.id = p_agent AND a.company_id = c.id
    )
    SELECT s.n, s.scope, s.scope_id, c.period_start, c.today,
           greatest(s.base + coalesce(g.topups, 0), coalesce(g.override, 0)) AS cap,
           coalesce((SELECT sum(k.usd) FROM cost_counters k
                     WHERE k.scope = s.scope AND k.scope_id = s.scope_id AND k.day >= c.period_start), 0),
           CASE s.n WHEN 1 THEN r.company WHEN 2 THEN r.team ELSE r.agent END
    FROM s CROSS JOIN c
    -- One pass over the company's leases for the three sums of reservations.
    CROSS JOIN (
        SELECT coalesce(sum(l.reserved_usd), 0) AS company,
               coalesce(sum(l.reserved_usd) FILTER (WHERE a.team_id = p_team), 0) AS team,
               coalesce(sum(l.reserved_usd) FILTER (WHERE l.agent_id = p_agent), 0) AS agent
        FROM leases l JOIN agents a ON a.id = l.agent_id
        WHERE l.company_id = p_company
    ) r
    LEFT JOIN LATERAL (
        SELECT sum(g.usd) FILTER (WHERE g.kind = 'topup') AS topups,
               max(g.usd) FILTER (WHERE g.kind = 'override') AS override
        FROM budget_grants g
        WHERE g.scope = s.scope AND g.scope_id = s.scope_id AND g.day >= c.period_start
    ) g ON true
    ORDER BY s.n
$$
"""

WORKFLOW_BUDGET = """
-- A workflow's budget (workflow_budgets) and, over the company's fiscal period from p_period_start,
-- what its tasks spent and what their running attempts have reserved; no row when the workflow has no
-- budget. Workflows come later: today the check is of the tasks that name one (tasks.workflow_id).
CREATE OR REPLACE FUNCTION ca_workflow_budget(p_workflow uuid, p_period_start date)
RETURNS TABLE (cap numeric, spent numeric, reserved numeric) LANGUAGE sql STABLE AS $$
    SELECT w.budget_usd,
           coalesce((SELECT sum(k.usd) FROM tasks t JOIN cost_counters k
                         ON k.scope = 'task' AND k.scope_id = t.id AND k.day >= p_period_start
                     WHERE t.workflow_id = p_workflow), 0),
           coalesce((SELECT sum(l.reserved_usd) FROM tasks t JOIN leases l ON l.task_id = t.id
                     WHERE t.workflow_id = p_workflow), 0)
    FROM workflow_budgets w WHERE w.workflow_id = p_workflow
$$
"""

AFTER_COST = """
-- The check's read as a cost of p_usd lands for the run holding task p_task under fencing token
-- p_fencing (budgets/check.py, docs/budgets.md): lower the run's envelope by the cost, then every scope
-- of the run with its cap, spend (this cost included) and reservations (the lowered envelope included),
-- in lock order (company, team, agent, workflow, task), each row with the envelope as it was before.
-- PL/pgSQL so that its plans are cached per session: planned as one statement, this costs more to plan
-- than to run. No rows when the lease is gone.
CREATE OR REPLACE FUNCTION ca_budget_after_cost(p_task uuid, p_fencing bigint, p_usd numeric)
RETURNS TABLE (
    n integer, scope text, scope_id uuid, period_start date, cap numeric, spent numeric, reserved numeric,
    envelope numeric
) LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
    v_envelope numeric;
    v_period date;
    w record;
BEGIN
    SELECT l.reserved_usd INTO v_envelope FROM leases l
    WHERE l.task_id = p_task AND l.fencing_token = p_fencing;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    UPDATE leases l SET reserved_usd = greatest(l.reserved_usd - p_usd, 0)
    WHERE l.task_id = p_task AND l.fencing_token = p_fencing;
    SELECT l.company_id, l.agent_id, a.team_id, t.workflow_id, t.budget_usd AS task_cap,
           a.task_budget_usd AS agent_task_cap
    INTO w
    FROM leases l JOIN agents a ON a.id = l.agent_id JOIN tasks t ON t.id = l.task_id
    WHERE l.task_id = p_task AND l.fencing_token = p_fencing;
    RETURN QUERY
    SELECT b.n, b.scope, b.scope_id, b.period_start, b.cap, b.spent, b.reserved, v_envelope
    FROM ca_budget_scopes(w.company_id, w.team_id, w.agent_id) b;
    IF w.workflow_id IS NOT NULL THEN
        SELECT b.period_start INTO v_period FROM ca_budget_scopes(w.company_id, NULL, NULL) b;
        RETURN QUERY
        SELECT 4, 'workflow'::text, w.workflow_id, v_period, wb.cap, wb.spent, wb.reserved, v_envelope
        FROM ca_workflow_budget(w.workflow_id, v_period) wb;
    END IF;
    IF coalesce(w.task_cap, w.agent_task_cap) IS NOT NULL THEN
        RETURN QUERY
        SELECT 5, 'task'::text, p_task, NULL::date, tb.cap, tb.spent, greatest(v_envelope - p_usd, 0),
               v_envelope
        FROM ca_task_budget(p_task, w.task_cap, w.agent_task_cap) tb;
    END IF;
END
$$
"""

TASK_BUDGET = """
-- A task's own budget (its budget_usd, else the default task budget of the agent that runs it) and
-- what it has spent across all its attempts; cap NULL: the task has no budget of its own.
CREATE OR REPLACE FUNCTION ca_task_budget(p_task uuid, p_task_cap numeric, p_agent_task_cap numeric)
RETURNS TABLE (cap numeric, spent numeric) LANGUAGE sql STABLE AS $$
    SELECT coalesce(p_task_cap, p_agent_task_cap),
           CASE WHEN coalesce(p_task_cap, p_agent_task_cap) IS NULL THEN 0
                ELSE coalesce((SELECT sum(k.usd) FROM cost_counters k
                               WHERE k.scope = 'task' AND k.scope_id = p_task), 0) END
$$
"""

CLAIM_TASKS = """
-- The whole claim in one round trip. One claimer per agent at a time (a transaction-scoped advisory
-- lock), so the capacity count sees every committed lease; then, in one statement, the task update
-- with a new fencing token, the run, the lease and the audit event.
--
-- Budgets (docs/budgets.md): with p_reserve (the per-run reservation size) given, the room is the
-- smallest (cap - spent - reserved) among the agent's company, team and agent; each claimed task
-- reserves least(p_reserve, what is left of the room, its own task and workflow budgets' room) on its
-- lease, and
-- nothing is claimed once the room is gone. The room must not be handed out twice by concurrent
-- claims. Claimers of a company share an advisory lock while the room is ample: at least what every
-- agent of the company could reserve at once (its "demand"), so all of them together cannot take more
-- than there is. When it is tight, a claimer must hold that lock alone: it tries to take it
-- exclusively (without waiting, as it already shares it), reads the room again (every sharer before
-- it has committed, so their reservations are seen) and claims within it exactly; when others share
-- the lock at that moment it claims nothing this time.
-- p_reserve NULL claims without budgets (the benchmark's baseline).
CREATE OR REPLACE FUNCTION ca_claim_tasks(
    p_agent uuid, p_limit integer, p_hashes text[], p_holder text, p_lease_seconds double precision,
    p_reserve numeric
) RETURNS TABLE (
    task_id uuid, company_id uuid, attempt integer, fencing_token bigint, title text, n bigint,
    run_id uuid, expires_at timestamptz, reserved_usd numeric
) LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
    a record;
    v_room numeric;
    v_demand numeric;
    v_period date;
    v_limit integer;
BEGIN
    -- One claimer per agent at a time, so the capacity count below sees every committed lease.
    PERFORM pg_advisory_xact_lock(hashtextextended(p_agent::text, 4242));
    SELECT ag.id, ag.company_id, ag.team_id, ag.status, ag.max_concurrent_tasks, ag.task_budget_usd,
           c.status AS company_status
    INTO a
    FROM agents ag JOIN companies c ON c.id = ag.company_id
    WHERE ag.id = p_agent;
    IF NOT FOUND OR NOT ca_agent_can_claim(a.status, a.company_status) THEN
        RETURN;
    END IF;
    v_limit := LEAST(p_limit, coalesce(array_length(p_hashes, 1), 0));
    IF p_reserve IS NOT NULL THEN
        PERFORM pg_advisory_xact_lock_shared(hashtextextended(a.company_id::text, 4243));
        SELECT min(b.cap - b.spent - b.reserved), min(b.period_start) INTO v_room, v_period
        FROM ca_budget_scopes(a.company_id, a.team_id, p_agent) b;
        IF v_room <= 0 THEN
            RETURN;
        END IF;
        SELECT p_reserve * coalesce(sum(x.max_concurrent_tasks), 0) INTO v_demand
        FROM agents x WHERE x.company_id = a.company_id AND ca_agent_can_claim(x.status, 'active');
        IF v_room < v_demand THEN
            IF NOT pg_try_advisory_xact_lock(hashtextextended(a.company_id::text, 4243)) THEN
                RETURN;
            END IF;
            -- Alone now: a new statement, a new snapshot, with every sharer's reservations.
            SELECT min(b.cap - b.spent - b.reserved) INTO v_room
            FROM ca_budget_scopes(a.company_id, a.team_id, p_agent) b;
            IF v_room <= 0 THEN
                RETURN;
            END IF;
        END IF;
        v_limit := LEAST(v_limit, ceil(v_room / p_reserve)::integer);
    END IF;
    RETURN QUERY
    WITH candidate AS (
        -- SKIP LOCKED: concurrent claimers never wait on, nor take, the same task; the partial index
        -- ix_tasks_claimable covers queued rows only.
        -- The task's own room: the least of its task budget's and its workflow's (NULL: neither).
        SELECT t.id, LEAST(tb.cap - tb.spent, wb.cap - wb.spent - wb.reserved) AS task_room
        FROM tasks t
        CROSS JOIN LATERAL ca_task_budget(t.id, t.budget_usd, a.task_budget_usd) tb
        LEFT JOIN LATERAL ca_workflow_budget(t.workflow_id, v_period) wb ON true
        WHERE ca_task_claimable(t, a.company_id, p_agent, a.team_id)
          AND (p_reserve IS NULL OR ((tb.cap IS NULL OR tb.spent < tb.cap)
                                     AND (wb.cap IS NULL OR wb.spent + wb.reserved < wb.cap)))
        ORDER BY t.priority DESC, t.created_at
        LIMIT GREATEST(0, LEAST(v_limit,
                                a.max_concurrent_tasks - (SELECT count(*) FROM leases l WHERE l.agent_id = p_agent)))
        FOR UPDATE OF t SKIP LOCKED
    ),
    claimed AS (
        UPDATE tasks t
        SET status = 'assigned', attempt = t.attempt + 1, fencing_token = t.fencing_token + 1, updated_at = now()
        FROM candidate c
        WHERE t.id = c.id
        RETURNING t.id, t.company_id, t.attempt, t.fencing_token, t.keep_workspace, t.title, c.task_room
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
        INSERT INTO leases (task_id, run_id, agent_id, company_id, fencing_token, token_hash, holder, expires_at,
                            reserved_usd)
        SELECT x.id, r.id, p_agent, x.company_id, x.fencing_token, r.lease_token_hash, p_holder,
               now() + make_interval(secs => p_lease_seconds),
               CASE WHEN p_reserve IS NULL THEN 0
                    ELSE LEAST(p_reserve, v_room - (x.n - 1) * p_reserve, coalesce(x.task_room, p_reserve)) END
        FROM numbered x JOIN new_runs r ON r.task_id = x.id
        RETURNING task_id, expires_at, reserved_usd
    ),
    events AS (
        INSERT INTO audit_events (company_id, actor, action, subject_type, subject_id, payload)
        SELECT x.company_id, 'system:' || p_holder, 'task.claimed', 'task', x.id::text,
               jsonb_build_object('agentId', p_agent, 'runId', r.id, 'attempt', x.attempt,
                                  'fencingToken', x.fencing_token)
        FROM numbered x JOIN new_runs r ON r.task_id = x.id
    )
    SELECT x.id, x.company_id, x.attempt, x.fencing_token, x.title, x.n, r.id, l.expires_at, l.reserved_usd
    FROM numbered x JOIN new_runs r ON r.task_id = x.id JOIN new_leases l ON l.task_id = x.id
    ORDER BY x.n;
END
$$
"""

PREVIOUS_CLAIM_TASKS = """
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

OLD_SIGNATURE = "ca_claim_tasks(uuid, integer, text[], text, double precision)"
NEW_SIGNATURE = "ca_claim_tasks(uuid, integer, text[], text, double precision, numeric)"
# As migration 0011 left them.
EXIT_REASONS = (
    "'complete', 'failed', 'crash', 'timeout', 'lease_expired', 'killed', 'cancelled', 'handoff', 'shutdown',"
    " 'approval'"
)


def upgrade() -> None:
    op.add_column("leases", sa.Column("reserved_usd", sa.Numeric(18, 8), nullable=False, server_default="0"))
    op.add_column("agents", sa.Column("task_budget_usd", sa.Numeric(14, 4), nullable=True))
    op.create_check_constraint(
        op.f("ck_agents_task_budget_nonnegative"),
        "agents",
        "task_budget_usd IS NULL OR task_budget_usd >= 0",
    )
    op.add_column("tasks", sa.Column("workflow_id", sa.Uuid(), nullable=True))
    op.create_index(
        op.f("ix_tasks_workflow_id"),
        "tasks",
        ["workflow_id"],
        postgresql_where=sa.text("workflow_id IS NOT NULL"),
    )
    op.create_table(
        "workflow_budgets",
        sa.Column("workflow_id", sa.Uuid(), nullable=False),
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("budget_usd", sa.Numeric(14, 4), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("workflow_id", name=op.f("pk_workflow_budgets")),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            ondelete="RESTRICT",
            name=op.f("fk_workflow_budgets_company_id_companies"),
        ),
        sa.CheckConstraint("budget_usd >= 0", name=op.f("ck_workflow_budgets_budget_nonnegative")),
    )
    op.create_table(
        "budget_grants",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("scope_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("usd", sa.Numeric(14, 4), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("approval_id", sa.Uuid(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False, server_default=""),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_budget_grants")),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            ondelete="RESTRICT",
            name=op.f("fk_budget_grants_company_id_companies"),
        ),
        sa.ForeignKeyConstraint(
            ["approval_id"],
            ["approvals.id"],
            ondelete="RESTRICT",
            name=op.f("fk_budget_grants_approval_id_approvals"),
        ),
        sa.CheckConstraint(
            "scope IN ('company', 'team', 'agent', 'workflow', 'task')", name=op.f("ck_budget_grants_scope")
        ),
        sa.CheckConstraint("kind IN ('topup', 'override')", name=op.f("ck_budget_grants_kind")),
        sa.CheckConstraint("usd > 0", name=op.f("ck_budget_grants_usd_positive")),
    )
    op.create_index(
        op.f("ix_budget_grants_scope_scope_id_day"), "budget_grants", ["scope", "scope_id", "day"]
    )
    op.create_table(
        "budget_breaches",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("scope_id", sa.Uuid(), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=True),
        sa.Column("level", sa.Text(), nullable=False),
        sa.Column("cap_usd", sa.Numeric(18, 8), nullable=False),
        sa.Column("spent_usd", sa.Numeric(18, 8), nullable=False),
        sa.Column("task_id", sa.Uuid(), nullable=True),
        sa.Column("run_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_budget_breaches")),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            ondelete="RESTRICT",
            name=op.f("fk_budget_breaches_company_id_companies"),
        ),
        sa.CheckConstraint(
            "scope IN ('company', 'team', 'agent', 'workflow', 'task')", name=op.f("ck_budget_breaches_scope")
        ),
        sa.CheckConstraint(
            "level IN ('soft', 'hard', 'catastrophic')", name=op.f("ck_budget_breaches_level")
        ),
        sa.UniqueConstraint(
            "scope",
            "scope_id",
            "period_start",
            "level",
            "cap_usd",
            name=op.f("uq_budget_breaches_scope_scope_id_period_start_level_cap_usd"),
            postgresql_nulls_not_distinct=True,
        ),
    )
    op.create_index(
        op.f("ix_budget_breaches_company_id_created_at"), "budget_breaches", ["company_id", "created_at"]
    )
    op.drop_constraint(op.f("ck_runs_exit_reason"), "runs", type_="check")
    op.create_check_constraint(
        op.f("ck_runs_exit_reason"),
        "runs",
        f"exit_reason IS NULL OR exit_reason IN ({EXIT_REASONS}, 'budget', 'loop_budget')",
    )
    op.execute(BUDGET_SCOPES)
    op.execute(TASK_BUDGET)
    op.execute(WORKFLOW_BUDGET)
    op.execute(AFTER_COST)
    op.execute(f"DROP FUNCTION {OLD_SIGNATURE}")
    op.execute(CLAIM_TASKS)


def downgrade() -> None:
    op.execute(f"DROP FUNCTION {NEW_SIGNATURE}")
    op.execute(PREVIOUS_CLAIM_TASKS)
    op.execute("DROP FUNCTION ca_task_budget(uuid, numeric, numeric)")
    op.execute("DROP FUNCTION ca_budget_after_cost(uuid, bigint, numeric)")
    op.execute("DROP FUNCTION ca_workflow_budget(uuid, date)")
    op.execute("DROP FUNCTION ca_budget_scopes(uuid, uuid, uuid)")
    op.drop_constraint(op.f("ck_runs_exit_reason"), "runs", type_="check")
    op.create_check_constraint(
        op.f("ck_runs_exit_reason"), "runs", f"exit_reason IS NULL OR exit_reason IN ({EXIT_REASONS})"
    )
    op.drop_index("ix_budget_breaches_company_id_created_at", table_name="budget_breaches")
    op.drop_table("budget_breaches")
    op.drop_index("ix_budget_grants_scope_scope_id_day", table_name="budget_grants")
    op.drop_table("budget_grants")
    op.drop_table("workflow_budgets")
    op.drop_index("ix_tasks_workflow_id", table_name="tasks")
    op.drop_column("tasks", "workflow_id")
    op.drop_constraint(op.f("ck_agents_task_budget_nonnegative"), "agents", type_="check")
    op.drop_column("agents", "task_budget_usd")
    op.drop_column("leases", "reserved_usd")
