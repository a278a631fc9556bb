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
