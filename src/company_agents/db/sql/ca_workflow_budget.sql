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
