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
