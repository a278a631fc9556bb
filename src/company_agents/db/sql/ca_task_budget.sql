-- A task's own budget (its budget_usd, else the default task budget of the agent that runs it) and
-- what it has spent across all its attempts; cap NULL: the task has no budget of its own.
CREATE OR REPLACE FUNCTION ca_task_budget(p_task uuid, p_task_cap numeric, p_agent_task_cap numeric)
RETURNS TABLE (cap numeric, spent numeric) LANGUAGE sql STABLE AS $$
    SELECT coalesce(p_task_cap, p_agent_task_cap),
           CASE WHEN coalesce(p_task_cap, p_agent_task_cap) IS NULL THEN 0
                ELSE coalesce((SELECT sum(k.usd) FROM cost_counters k
                               WHERE k.scope = 'task' AND k.scope_id = p_task), 0) END
$$
