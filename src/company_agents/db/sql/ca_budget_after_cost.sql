-- The check's read as a cost of p_usd lands for the run holding task p_task under fencing token
-- p_fencing (budgets/check.py, docs/budgets.md): lower the run's envelope by the cost, then every scope
-- of the run with its cap, spend (this cost included) and reservations (the lowered envelope included),
-- in lock order (company, team, agent, workflow, task), each row with the envelope as it was before.
-- PL/pgSQL so that its plans are cached per session: planned as one statement, this costs more to plan
-- than to run. No rows when the lease is gone. Generic plans (migration 0023): PL/pgSQL otherwise
-- re-plans its statements on every call whenever a custom plan looks cheaper, which is always here.
CREATE OR REPLACE FUNCTION ca_budget_after_cost(p_task uuid, p_fencing bigint, p_usd numeric)
RETURNS TABLE (
    n integer, scope text, scope_id uuid, period_start date, cap numeric, spent numeric, reserved numeric,
    envelope numeric
) LANGUAGE plpgsql VOLATILE
SET plan_cache_mode = force_generic_plan
AS $$
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
