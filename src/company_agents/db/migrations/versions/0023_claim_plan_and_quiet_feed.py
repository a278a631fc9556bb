"""A cheaper claim, and a feed trigger that no longer sends NOTIFY.

- ``ca_claim_tasks()`` reads the agent's remaining capacity before the candidate query, so its LIMIT is
  a value the planner knows, and updates the claimed tasks by key (``= ANY`` of the candidates' ids):
  the old join was planned for a thousand candidates and answered with a scan of every task, plus JIT
  compilation once the estimate passed ``jit_above_cost`` (90 ms a claim at 100k queued tasks, 1 ms
  now). The function runs with generic plans (``plan_cache_mode``) and without JIT: its statements
  cost more to plan than to run.
- ``ca_budget_after_cost()`` (the budget check of every cost) runs with generic plans too: the check
  cost 23% of the cost path's throughput, 4% now.
- ``ca_audit_event_feed()`` keeps setting ``txid`` and writing webhook deliveries but sends no
  ``pg_notify``. PostgreSQL serializes the commits of every transaction that notifies (one lock on the
  notification queue, held through the commit's WAL flush), so every audit-writing transaction of every
  orchestrator waited on the others. Streams are woken instead by one short poll per process
  (``events/hub.py``), which reads the same table the streams do.

The function texts below are frozen copies (see 0006).

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-04
Kind: expand (functions only; an orchestrator of the previous version still works on this schema, its
streams then wake on their own poll)
"""

from __future__ import annotations

import importlib

from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

AFTER_COST = "ca_budget_after_cost(uuid, bigint, numeric)"

CLAIM_TASKS = """
-- The whole claim in one round trip. One claimer per agent at a time (a transaction-scoped advisory
-- lock), so the capacity count sees every committed lease; then, in one statement, the task update
-- with a new fencing token, the run, the lease and the audit event.
-- The task update finds its rows by key (= ANY of the candidates' ids), not by a join the planner sized
-- for a thousand candidates and answered with a scan of every task.
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
) LANGUAGE plpgsql VOLATILE
-- Generic plans: the statements below cost more to plan than to run, and their plans do not depend on
-- the values (every lookup is by key; the candidates walk ix_tasks_claimable in order). No JIT: a
-- claim touches a handful of rows, and compiling its expressions took 60 ms at 100k queued tasks.
SET plan_cache_mode = force_generic_plan
SET jit = off
AS $$
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
    -- The agent's remaining capacity, read here (a statement of its own, after the lock) so that the
    -- candidate query's LIMIT is a plain value: the planner then knows how few rows it returns.
    v_limit := LEAST(p_limit, coalesce(array_length(p_hashes, 1), 0),
                     a.max_concurrent_tasks - (SELECT count(*) FROM leases l WHERE l.agent_id = p_agent));
    IF v_limit <= 0 THEN
        RETURN;
    END IF;
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
        LIMIT v_limit
        FOR UPDATE OF t SKIP LOCKED
    ),
    claimed AS (
        UPDATE tasks t
        SET status = 'assigned', attempt = t.attempt + 1, fencing_token = t.fencing_token + 1, updated_at = now()
        WHERE t.id = ANY (ARRAY(SELECT c.id FROM candidate c))
        RETURNING t.id, t.company_id, t.attempt, t.fencing_token, t.keep_workspace, t.title
    ),
    numbered AS (
        SELECT c.*, k.task_room, row_number() OVER (ORDER BY c.id) AS n
        FROM claimed c JOIN candidate k ON k.id = c.id
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

# 0017's trigger function without the NOTIFY. Schema-qualified calls: a search_path cannot shadow them.
FEED_FUNCTION = """
CREATE OR REPLACE FUNCTION ca_audit_event_feed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    etype text;
BEGIN
    IF NEW.txid <> 0 THEN
        RETURN NEW;
    END IF;
    NEW.txid := pg_catalog.pg_current_xact_id()::text::bigint;
    IF NEW.company_id IS NULL THEN
        RETURN NEW;
    END IF;
    -- The hot path: a company without an enabled endpoint costs one index probe.
    IF NEW.action <> 'webhook.tested' AND EXISTS (
        SELECT 1 FROM public.webhook_endpoints w WHERE w.company_id = NEW.company_id AND w.enabled
    ) THEN
        etype := public.ca_event_type(NEW.action);
        INSERT INTO public.webhook_deliveries (endpoint_id, company_id, event_id, event_type)
        SELECT w.id, w.company_id, NEW.id, etype
        FROM public.webhook_endpoints w
        WHERE w.company_id = NEW.company_id AND w.enabled
          AND EXISTS (
              SELECT 1 FROM pg_catalog.unnest(w.events) p
              WHERE etype LIKE pg_catalog.replace(p, '*', '%')
          );
    END IF;
    RETURN NEW;
END
$$
"""


def upgrade() -> None:
    op.execute(CLAIM_TASKS)
    op.execute(FEED_FUNCTION)
    op.execute(f"ALTER FUNCTION {AFTER_COST} SET plan_cache_mode = force_generic_plan")


def downgrade() -> None:
    budgets = importlib.import_module("company_agents.db.migrations.versions.0013_budgets")
    feed = importlib.import_module("company_agents.db.migrations.versions.0017_event_feed_and_webhooks")
    op.execute(f"ALTER FUNCTION {AFTER_COST} RESET plan_cache_mode")
    op.execute(budgets.CLAIM_TASKS)
    op.execute(feed.FEED_FUNCTION.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1))
