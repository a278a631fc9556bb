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
