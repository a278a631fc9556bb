-- Whether an agent in this status, in a company in this status, may take new work (shared by
-- ca_claim_tasks() and the scheduler's candidate query).
CREATE OR REPLACE FUNCTION ca_agent_can_claim(p_agent_status text, p_company_status text)
RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
    SELECT p_agent_status IN ('idle', 'running') AND p_company_status = 'active'
$$
