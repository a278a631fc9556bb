"""The ledger: one fenced statement writes a cost entry and bumps its scopes' daily counters.

Only the orchestrator writes costs (docs/design.md §6): an agent reports usage through its process
protocol or its tool endpoint, and the entry is written here, for the run that holds the lease. The
entry and the five counter rows (company, team, agent, task, run — for the day in the company's time
zone) are one statement, so the counters never drift from the ledger (``cost rebuild`` proves it).

A replayed event (the same idempotency key for the same run) writes nothing and returns the entry that
is already there, marked ``duplicate``.

Lock order: the lease row (``FOR SHARE``, as every fenced write), then the counter rows in scope order
(company, team, agent, task, run), the same order in every statement, so two costs never deadlock.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any, LiteralString
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncConnection

from company_agents.db import driver
from company_agents.errors import InvalidInput
from company_agents.leases import RunIdentity, lease_is_current, stale_error

ENTRY_KINDS = ("llm", "tool", "runtime")
BILLING = ("api", "subscription")


@dataclass(frozen=True)
class Usage:
    """Tokens as providers quote them: ``input_tokens`` is uncached input only."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_5m_tokens: int = 0
    cache_write_1h_tokens: int = 0
    reasoning_tokens: int = 0

    def __post_init__(self) -> None:
        for name, value in self.__dict__.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise InvalidInput(f"{name} must be a whole number ≥ 0, not {value!r}")

    @property
    def cache_write_tokens(self) -> int:
        return self.cache_write_5m_tokens + self.cache_write_1h_tokens


@dataclass(frozen=True)
class Amounts:
    """What an entry costs: billed (what the provider charges), imputed (list price), effective (what
    budgets count: billed for ``api``, imputed for ``subscription``). All ``None`` when unpriced."""

    billed_usd: Decimal | None
    imputed_usd: Decimal | None
    effective_usd: Decimal | None
    price_source: str | None
    unpriced: bool = False

    @classmethod
    def unpriced_usage(cls) -> Amounts:
        return cls(None, None, None, None, unpriced=True)


@dataclass(frozen=True)
class NewCost:
    kind: str
    usage: Usage
    amounts: Amounts
    model: str | None = None
    provider: str | None = None
    billing: str = "api"
    idempotency_key: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in ENTRY_KINDS:
            raise InvalidInput(f"cost kind must be one of {', '.join(ENTRY_KINDS)}, not {self.kind!r}")
        if self.billing not in BILLING:
            raise InvalidInput(f"billing must be 'api' or 'subscription', not {self.billing!r}")


@dataclass(frozen=True)
class RecordedCost:
    id: UUID
    company_id: UUID
    team_id: UUID | None
    agent_id: UUID | None
    task_id: UUID
    run_id: UUID
    kind: str
    effective_usd: Decimal | None
    unpriced: bool
    day: date
    duplicate: bool = False


# The counter columns bumped per entry, with the expression each takes from the new entry ``e``.
_COUNTER_VALUES: LiteralString = """
    coalesce(e.effective_usd, 0), coalesce(e.billed_usd, 0),
    coalesce(e.input_tokens, 0), coalesce(e.output_tokens, 0), coalesce(e.cache_read_tokens, 0),
    coalesce(e.cache_write_5m_tokens, 0) + coalesce(e.cache_write_1h_tokens, 0),
    CASE WHEN e.kind = 'llm' THEN coalesce(e.effective_usd, 0) ELSE 0 END,
    CASE WHEN e.kind = 'tool' THEN coalesce(e.effective_usd, 0) ELSE 0 END,
    CASE WHEN e.kind = 'runtime' THEN coalesce(e.effective_usd, 0) ELSE 0 END,
    1, CASE WHEN e.unpriced THEN 1 ELSE 0 END
"""

COUNTER_COLUMNS: LiteralString = """
    usd, billed_usd, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens,
    llm_usd, tool_usd, runtime_usd, entries, unpriced_entries
"""

COUNTER_UPSERT: LiteralString = """
ON CONFLICT (scope, scope_id, day) DO UPDATE SET
    usd = cost_counters.usd + EXCLUDED.usd,
    billed_usd = cost_counters.billed_usd + EXCLUDED.billed_usd,
    input_tokens = cost_counters.input_tokens + EXCLUDED.input_tokens,
    output_tokens = cost_counters.output_tokens + EXCLUDED.output_tokens,
    cache_read_tokens = cost_counters.cache_read_tokens + EXCLUDED.cache_read_tokens,
    cache_write_tokens = cost_counters.cache_write_tokens + EXCLUDED.cache_write_tokens,
    llm_usd = cost_counters.llm_usd + EXCLUDED.llm_usd,
    tool_usd = cost_counters.tool_usd + EXCLUDED.tool_usd,
    runtime_usd = cost_counters.runtime_usd + EXCLUDED.runtime_usd,
    entries = cost_counters.entries + EXCLUDED.entries,
    unpriced_entries = cost_counters.unpriced_entries + EXCLUDED.unpriced_entries
"""

# Scope order is the lock order of the counter rows (see the module docstring).
SCOPES_OF_ENTRY: LiteralString = """
CROSS JOIN LATERAL (VALUES (1, 'company', e.company_id), (2, 'team', e.team_id), (3, 'agent', e.agent_id),
                           (4, 'task', e.task_id), (5, 'run', e.run_id)) AS s(n, scope, scope_id)
"""

# The entry and its counters, written from the fenced ``lease`` row the statements below select.
_ENTRY_FROM_LEASE: LiteralString = f"""
e AS (
    INSERT INTO cost_entries (
        company_id, team_id, agent_id, task_id, run_id, kind, model, provider, billing,
        input_tokens, output_tokens, cache_read_tokens, cache_write_5m_tokens, cache_write_1h_tokens,
        reasoning_tokens, billed_usd, imputed_usd, effective_usd, price_source, unpriced,
        idempotency_key, fencing_token, details)
    SELECT company_id, team_id, agent_id, task_id, run_id, %(kind)s, %(model)s, %(provider)s, %(billing)s,
           %(input_tokens)s, %(output_tokens)s, %(cache_read_tokens)s, %(cache_write_5m_tokens)s,
           %(cache_write_1h_tokens)s, %(reasoning_tokens)s, %(billed_usd)s, %(imputed_usd)s,
           %(effective_usd)s, %(price_source)s, %(unpriced)s, %(idempotency_key)s, fencing_token,
           CAST(%(details)s AS jsonb)
    FROM lease
    ON CONFLICT (run_id, idempotency_key) DO NOTHING
    RETURNING *
),
bump AS (
    INSERT INTO cost_counters (scope, scope_id, day, company_id, {COUNTER_COLUMNS})
    SELECT s.scope, s.scope_id, lease.day, e.company_id, {_COUNTER_VALUES}
    FROM e CROSS JOIN lease {SCOPES_OF_ENTRY}
    WHERE s.scope_id IS NOT NULL
    ORDER BY s.n
    {COUNTER_UPSERT}
)
SELECT e.id, e.company_id, e.team_id, e.agent_id, e.task_id, e.run_id, e.kind, e.effective_usd,
       e.unpriced, lease.day
FROM e CROSS JOIN lease
"""

RECORD_SQL: LiteralString = f"""
WITH lease AS MATERIALIZED (
    SELECT l.company_id, a.team_id, l.agent_id, l.task_id, l.run_id, l.fencing_token,
           (now() AT TIME ZONE c.time_zone)::date AS day
    FROM leases l
    JOIN agents a ON a.id = l.agent_id
    JOIN companies c ON c.id = l.company_id
    WHERE l.task_id = %(task_id)s AND l.fencing_token = %(fencing_token)s AND l.token_hash = %(token_hash)s
    FOR SHARE OF l
),
{_ENTRY_FROM_LEASE}"""

# The same entry for a run that has just ended (an agent CLI that called ``mark_complete`` over MCP
# reports the usage of its last request afterwards): matched on the run row by its own lease token's hash
# and fencing token, so only the holder of that attempt can write it, and only once it has ended.
RECORD_AFTER_END_SQL: LiteralString = f"""
WITH lease AS MATERIALIZED (
    SELECT r.company_id, a.team_id, r.agent_id, r.task_id, r.id AS run_id, r.fencing_token,
           (now() AT TIME ZONE c.time_zone)::date AS day
    FROM runs r
    JOIN agents a ON a.id = r.agent_id
    JOIN companies c ON c.id = r.company_id
    WHERE r.id = %(run_id)s AND r.task_id = %(task_id)s AND r.fencing_token = %(fencing_token)s
      AND r.lease_token_hash = %(token_hash)s AND r.status <> 'running'
    FOR SHARE OF r
),
{_ENTRY_FROM_LEASE}"""

DUPLICATE_SQL: LiteralString = """
SELECT e.id, e.company_id, e.team_id, e.agent_id, e.task_id, e.run_id, e.kind, e.effective_usd,
       e.unpriced, (e.created_at AT TIME ZONE c.time_zone)::date AS day
FROM cost_entries e JOIN companies c ON c.id = e.company_id
WHERE e.run_id = %(run_id)s AND e.idempotency_key = %(idempotency_key)s
"""


def _params(ident: RunIdentity, fencing_token: int, cost: NewCost) -> dict[str, Any]:
    u, a = cost.usage, cost.amounts
    return {
        "task_id": ident.task_id,
        "run_id": ident.run_id,
        "fencing_token": fencing_token,
        "token_hash": ident.token_hash,
        "kind": cost.kind,
        "model": cost.model,
        "provider": cost.provider,
        "billing": cost.billing,
        "input_tokens": u.input_tokens,
        "output_tokens": u.output_tokens,
        "cache_read_tokens": u.cache_read_tokens,
        "cache_write_5m_tokens": u.cache_write_5m_tokens,
        "cache_write_1h_tokens": u.cache_write_1h_tokens,
        "reasoning_tokens": u.reasoning_tokens,
        "billed_usd": a.billed_usd,
        "imputed_usd": a.imputed_usd,
        "effective_usd": a.effective_usd,
        "price_source": a.price_source,
        "unpriced": a.unpriced,
        "idempotency_key": cost.idempotency_key,
        "details": json.dumps(cost.details),
    }


def _recorded(m: dict[str, Any], *, duplicate: bool) -> RecordedCost:
    return RecordedCost(
        id=m["id"],
        company_id=m["company_id"],
        team_id=m["team_id"],
        agent_id=m["agent_id"],
        task_id=m["task_id"],
        run_id=m["run_id"],
        kind=m["kind"],
        effective_usd=m["effective_usd"],
        unpriced=m["unpriced"],
        day=m["day"],
        duplicate=duplicate,
    )


async def record(
    conn: AsyncConnection, ident: RunIdentity, *, fencing_token: int, cost: NewCost
) -> RecordedCost:
    """Write one cost for the run holding the lease, and its counters; fenced.

    Raises ``StaleFencingToken`` when the lease is gone or newer. A replay of an idempotency key returns
    the entry already written, with ``duplicate=True``, and counts nothing.
    """
    params = _params(ident, fencing_token, cost)
    row = await driver.one(conn, RECORD_SQL, params)
    if row is not None:
        return _recorded(row, duplicate=False)
    if cost.idempotency_key is not None and await lease_is_current(conn, ident, fencing_token=fencing_token):
        existing = await driver.one(conn, DUPLICATE_SQL, params)
        if existing is not None:
            return _recorded(existing, duplicate=True)
    raise stale_error(ident, fencing_token, "cost")


async def record_after_end(
    conn: AsyncConnection, ident: RunIdentity, *, fencing_token: int, cost: NewCost
) -> RecordedCost:
    """Write one cost for a run that has ended (its attempt's own token and fencing token), and its
    counters. Money spent is recorded even when it arrives after the run's final transition: an agent
    CLI reports its last request's usage after the ``mark_complete`` it made over MCP. Needs an
    idempotency key (the line may be replayed); raises ``StaleFencingToken`` for a run still running
    or another attempt's token. No budget check: the run is over, and the next claim sees the counters.
    """
    if cost.idempotency_key is None:
        raise InvalidInput("a cost recorded after the run ended needs an idempotency key")
    params = _params(ident, fencing_token, cost)
    row = await driver.one(conn, RECORD_AFTER_END_SQL, params)
    if row is not None:
        return _recorded(row, duplicate=False)
    existing = await driver.one(conn, DUPLICATE_SQL, params)
    if existing is not None and existing["run_id"] == ident.run_id:
        return _recorded(existing, duplicate=True)
    raise stale_error(ident, fencing_token, "cost")
