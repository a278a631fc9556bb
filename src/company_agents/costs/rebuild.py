"""``cost rebuild``: recompute the daily counters from the ledger and report any drift.

The counters are written in the same statement as each entry, so drift means something wrote around
the ledger (or a bug). The rebuild locks ``cost_counters`` against writers (a cost being recorded waits
a moment), reads the ledger with the expressions of ``costs/totals.py`` (the definition of a counter
row), compares, and unless ``check_only`` replaces the rows that differ, in one transaction. A company
whose time zone changed since its entries were written moves them to the days of the new zone; that is
reported as drift too.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any, LiteralString
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncConnection

from company_agents.costs.totals import COUNTER_FIELDS, LEDGER_SUMS, Totals
from company_agents.db import driver

# EXCLUSIVE blocks every writer of the counters but not their readers (roll-ups keep working).
LOCK_SQL: LiteralString = "LOCK TABLE cost_counters IN EXCLUSIVE MODE"

# Set-based throughout: a million-entry ledger is one GROUP BY, not a million round trips.
EXPECTED_SQL: LiteralString = f"""
CREATE TEMP TABLE ca_rebuilt ON COMMIT DROP AS
SELECT s.scope, s.scope_id, (e.created_at AT TIME ZONE c.time_zone)::date AS day, e.company_id,
       {LEDGER_SUMS}
FROM cost_entries e
JOIN companies c ON c.id = e.company_id
CROSS JOIN LATERAL (VALUES ('company', e.company_id), ('team', e.team_id), ('agent', e.agent_id),
                           ('task', e.task_id), ('run', e.run_id)) AS s(scope, scope_id)
WHERE s.scope_id IS NOT NULL AND (%(company_id)s::uuid IS NULL OR e.company_id = %(company_id)s::uuid)
GROUP BY 1, 2, 3, 4
"""

FIELD_NAMES = tuple(f.name for f in fields(Totals))
_SAME: LiteralString = " AND ".join(f"coalesce(r.{n}, 0) = coalesce(c.{n}, 0)" for n in FIELD_NAMES)

DRIFT_SQL: LiteralString = f"""
CREATE TEMP TABLE ca_drifted ON COMMIT DROP AS
SELECT coalesce(r.scope, c.scope) AS scope, coalesce(r.scope_id, c.scope_id) AS scope_id,
       coalesce(r.day, c.day) AS day, coalesce(c.usd, 0) AS counter_usd, coalesce(r.usd, 0) AS ledger_usd,
       coalesce(c.entries, 0) AS counter_entries, coalesce(r.entries, 0) AS ledger_entries
FROM ca_rebuilt r
FULL JOIN (SELECT * FROM cost_counters
           WHERE %(company_id)s::uuid IS NULL OR company_id = %(company_id)s::uuid) c
  ON c.scope = r.scope AND c.scope_id = r.scope_id AND c.day = r.day
WHERE NOT ({_SAME})
"""

SUMMARY_SQL: LiteralString = """
SELECT (SELECT count(*) FROM ca_rebuilt) AS counters, (SELECT count(*) FROM ca_drifted) AS drifted
"""

REPORT_SQL: LiteralString = """
SELECT * FROM ca_drifted ORDER BY scope, scope_id::text, day LIMIT %(limit)s
"""

DELETE_SQL: LiteralString = """
DELETE FROM cost_counters c USING ca_drifted d
WHERE c.scope = d.scope AND c.scope_id = d.scope_id AND c.day = d.day
"""

INSERT_SQL: LiteralString = f"""
INSERT INTO cost_counters (scope, scope_id, day, company_id, {COUNTER_FIELDS})
SELECT r.scope, r.scope_id, r.day, r.company_id, {", ".join(f"r.{n}" for n in FIELD_NAMES)}
FROM ca_rebuilt r JOIN ca_drifted d ON d.scope = r.scope AND d.scope_id = r.scope_id AND d.day = r.day
"""

DROP_SQL: LiteralString = "DROP TABLE ca_drifted, ca_rebuilt"


async def rebuild(
    conn: AsyncConnection, *, company_id: UUID | None = None, check_only: bool = False, report: int = 1000
) -> dict[str, Any]:
    """Counters recomputed from the ledger (for one company, or all); returns the drift found (the
    first ``report`` rows of it) and, unless ``check_only``, repairs it."""
    if not check_only:
        await driver.rows(conn, LOCK_SQL, {})
    params = {"company_id": company_id}
    await driver.rows(conn, EXPECTED_SQL, params)
    await driver.rows(conn, DRIFT_SQL, params)
    summary = await driver.one(conn, SUMMARY_SQL, {})
    assert summary is not None
    drift = await driver.rows(conn, REPORT_SQL, {"limit": report})
    if not check_only and summary["drifted"]:
        await driver.rows(conn, DELETE_SQL, {})
        await driver.rows(conn, INSERT_SQL, {})
    await driver.rows(conn, DROP_SQL, {})
    return {
        "counters": summary["counters"],
        "drifted": summary["drifted"],
        "repaired": 0 if check_only else summary["drifted"],
        "drift": drift,
    }
