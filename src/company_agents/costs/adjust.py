"""``cost adjust``: an offsetting ``adjustment`` entry, audited; the ledger is never changed.

An adjustment adds a signed amount to the entry it corrects (a refund is negative; pricing an unpriced
entry is its price). It belongs to the same company, team, agent, task and run, counts in the same
bucket (``details.adjustsKind``), and is booked today in the company's time zone, with its counters, in
one statement (the order of ``ledger.record``: counters in scope order). The first adjustment of an
unpriced entry takes it off the unpriced count (``details.reprices``). An entry's corrected amount never
goes below zero.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any, LiteralString
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncConnection

from company_agents import audit
from company_agents.costs.ledger import COUNTER_COLUMNS, COUNTER_UPSERT, SCOPES_OF_ENTRY, Usage
from company_agents.db import driver
from company_agents.errors import InvalidInput, NotFound
from company_agents.pricing.book import quantize

MAX_ADJUST_USD = Decimal("1000000")
MAX_REASON = 500

# The target is locked (FOR UPDATE is a row lock, not an UPDATE: the append-only trigger allows it), so
# two adjustments of one entry see each other's amounts.
TARGET_SQL: LiteralString = """
SELECT e.id, e.kind, e.billing, e.unpriced, e.effective_usd, e.company_id,
       coalesce((SELECT sum(a.effective_usd) FROM cost_entries a WHERE a.adjusts_entry_id = e.id), 0)
           AS adjusted_usd,
       EXISTS (SELECT 1 FROM cost_entries a WHERE a.adjusts_entry_id = e.id) AS adjusted
FROM cost_entries e WHERE e.id = %(entry_id)s
FOR UPDATE OF e
"""

ENTRY_SQL: LiteralString = """
SELECT e.*,
       coalesce((SELECT sum(a.effective_usd) FROM cost_entries a WHERE a.adjusts_entry_id = e.id), 0)
           AS adjusted_usd
FROM cost_entries e WHERE e.id = %(entry_id)s
"""

ADJUST_SQL: LiteralString = f"""
WITH t AS MATERIALIZED (
    SELECT e.*, (now() AT TIME ZONE c.time_zone)::date AS day
    FROM cost_entries e JOIN companies c ON c.id = e.company_id
    WHERE e.id = %(entry_id)s
),
e AS (
    INSERT INTO cost_entries (
        company_id, team_id, agent_id, task_id, run_id, kind, model, provider, billing,
        billed_usd, imputed_usd, effective_usd, price_source, unpriced, adjusts_entry_id, details)
    SELECT company_id, team_id, agent_id, task_id, run_id, 'adjustment', model, provider, billing,
           %(billed_usd)s, %(usd)s, %(usd)s, 'adjustment', false, id, CAST(%(details)s AS jsonb)
    FROM t
    RETURNING *
),
bump AS (
    INSERT INTO cost_counters (scope, scope_id, day, company_id, {COUNTER_COLUMNS})
    SELECT s.scope, s.scope_id, t.day, e.company_id,
           e.effective_usd, e.billed_usd, 0, 0, 0, 0,
           CASE WHEN t.kind = 'llm' THEN e.effective_usd ELSE 0 END,
           CASE WHEN t.kind = 'tool' THEN e.effective_usd ELSE 0 END,
           CASE WHEN t.kind = 'runtime' THEN e.effective_usd ELSE 0 END,
           1, %(unpriced_delta)s
    FROM e CROSS JOIN t {SCOPES_OF_ENTRY}
    WHERE s.scope_id IS NOT NULL
    ORDER BY s.n
    {COUNTER_UPSERT}
)
SELECT e.id, e.adjusts_entry_id, e.effective_usd, e.billed_usd, e.created_at, t.day FROM e CROSS JOIN t
"""


async def adjust(
    conn: AsyncConnection,
    entry_id: UUID,
    usd: Decimal,
    *,
    reason: str,
    actor: str = audit.LOCAL_USER,
    company_id: UUID | None = None,
) -> dict[str, Any]:
    """Book ``usd`` (signed) against entry ``entry_id`` (of ``company_id`` when given: another
    company's entry is ``NotFound``); returns the adjustment."""
    reason = reason.strip()
    if not reason or len(reason) > MAX_REASON:
        raise InvalidInput(f"give a reason of 1 to {MAX_REASON} characters", field="reason")
    if not usd.is_finite() or abs(usd) > MAX_ADJUST_USD or usd == 0:
        raise InvalidInput(f"the amount must be non-zero and within ±{MAX_ADJUST_USD} USD", field="usd")
    usd = quantize(usd)
    target = await driver.one(conn, TARGET_SQL, {"entry_id": entry_id})
    if target is None or (company_id is not None and target["company_id"] != company_id):
        raise NotFound(f"no cost entry {entry_id}", entry=str(entry_id))
    if target["kind"] == "adjustment":
        raise InvalidInput("adjust the original entry, not an adjustment", field="entry")
    corrected = (target["effective_usd"] or Decimal(0)) + target["adjusted_usd"] + usd
    if corrected < 0:
        raise InvalidInput(f"the entry would be corrected to {corrected} USD, below zero", field="usd")
    reprices = bool(target["unpriced"]) and not target["adjusted"]
    details: dict[str, Any] = {"reason": reason, "by": actor, "adjustsKind": target["kind"]}
    if reprices:
        details["reprices"] = True
    row = await driver.one(
        conn,
        ADJUST_SQL,
        {
            "entry_id": entry_id,
            "usd": usd,
            "billed_usd": Decimal(0) if target["billing"] == "subscription" else usd,
            "details": json.dumps(details),
            "unpriced_delta": -1 if reprices else 0,
        },
    )
    assert row is not None
    await audit.record(
        conn,
        actor=actor,
        action="cost.adjusted",
        subject_type="cost_entry",
        subject_id=entry_id,
        company_id=target["company_id"],
        payload={"adjustmentId": str(row["id"]), "usd": str(usd), "reason": reason, "reprices": reprices},
    )
    return {**row, "reason": reason, "reprices": reprices, "corrected_usd": corrected}


async def reprice(
    conn: AsyncConnection,
    entry_id: UUID,
    *,
    reason: str | None = None,
    actor: str = audit.LOCAL_USER,
    company_id: UUID | None = None,
) -> dict[str, Any] | None:
    """Price an ``llm`` entry again with today's override or book, as of the entry's own time, and book
    the difference as an adjustment. ``None`` when the price is unchanged; refused when still unknown."""
    from company_agents import pricing

    entry = await driver.one(conn, ENTRY_SQL, {"entry_id": entry_id})
    if entry is None or (company_id is not None and entry["company_id"] != company_id):
        raise NotFound(f"no cost entry {entry_id}", entry=str(entry_id))
    if entry["kind"] != "llm" or entry["model"] is None:
        raise InvalidInput("only an llm entry with a model can be re-priced", field="entry")
    usage = Usage(
        **{
            name: entry[name] or 0
            for name in (
                "input_tokens",
                "output_tokens",
                "cache_read_tokens",
                "cache_write_5m_tokens",
                "cache_write_1h_tokens",
                "reasoning_tokens",
            )
        }
    )
    found = await pricing.quote(
        conn, entry["company_id"], entry["model"], entry["provider"], usage, at=entry["created_at"]
    )
    if found is None:
        raise InvalidInput(
            f"no price for model {entry['model']!r}: set one with `pricing set` first", field="entry"
        )
    delta = found.usd - (entry["effective_usd"] or Decimal(0)) - entry["adjusted_usd"]
    if delta == 0:
        return None
    why = reason or f"re-priced from {found.source}"
    out = await adjust(conn, entry_id, delta, reason=why, actor=actor, company_id=company_id)
    return {**out, "price_source": found.source, "price_usd": found.usd}


async def correct(
    conn: AsyncConnection,
    entry: str,
    *,
    usd: Decimal | None = None,
    reprice_it: bool = False,
    reason: str | None = None,
    actor: str = audit.LOCAL_USER,
    company_id: UUID | None = None,
) -> dict[str, Any]:
    """``cost adjust`` and ``POST …/costs/adjust``: the entry ``entry`` (an id or a unique prefix; of
    ``company_id`` when given, else ``NotFound``) adjusted by ``usd`` (with a ``reason``) or re-priced.
    The answer has ``adjusted`` (false when a re-price found nothing to change) and
    ``adjusts_entry_id``, with the adjustment's fields when one was booked."""
    from company_agents import ids
    from company_agents.db.schema import cost_entries

    if (usd is None) == (not reprice_it):
        raise InvalidInput("give either usd (with a reason) or reprice", field="usd")
    if usd is not None and reason is None:
        raise InvalidInput("give a reason for the adjustment", field="reason")
    kind = ids.IdKind("cost entry", cost_entries, label="model")
    entry_id = await ids.resolve_id(conn, kind, entry, company_id=company_id)
    if usd is None:
        row = await reprice(conn, entry_id, reason=reason, actor=actor, company_id=company_id)
    else:
        assert reason is not None
        row = await adjust(conn, entry_id, usd, reason=reason, actor=actor, company_id=company_id)
    if row is None:
        return {"adjusted": False, "adjusts_entry_id": entry_id}
    return {**row, "adjusted": True}
