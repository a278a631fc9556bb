"""Capped before the call: a request's worst case, reserved against every budget of its run.

The worst case prices the input as if every byte of the request body were one token at the dearest
input rate (a 1-hour cache write), plus the request's output cap (``max_tokens``; the configured
default when it names none) at the output rate. A token is at least a byte for the providers' byte-pair
tokenizers, so the real cost of a call that honours its cap is below its worst case.

A request fits when, for each scope of the run that has a cap (company, team, agent, workflow, task):
``spent + reserved by other runs + in flight here + worst case ≤ cap``, where *in flight here* is the
worst case of the requests this gateway forwarded and has not metered yet. The run's own claim-time
envelope is not counted twice: its requests' worst cases stand in for it.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, LiteralString
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncConnection

from company_agents import pricing
from company_agents.costs.ledger import Usage
from company_agents.db import driver
from company_agents.leases import RunIdentity

# The scopes of the run as the check after a cost reads them (db/sql/ca_budget_after_cost.sql), with
# a cost of 0: the envelope is left as it is. No rows: the run no longer holds its lease.
SCOPES_SQL: LiteralString = """
WITH held AS (
    SELECT 1 AS held FROM leases
    WHERE task_id = %(task_id)s AND fencing_token = %(fencing_token)s AND token_hash = %(token_hash)s
      AND expires_at > now()
)
SELECT held.held, s.scope, s.scope_id, s.cap, s.spent, s.reserved, s.envelope
FROM (SELECT 1) one
LEFT JOIN held ON true
LEFT JOIN LATERAL (SELECT * FROM ca_budget_after_cost(%(task_id)s, %(fencing_token)s, 0)
                   WHERE held.held IS NOT NULL) s ON true
"""


MTOK = 1_000_000
# How long a model's rates are reused for worst cases (a price override takes effect within it; the
# entry itself is always priced as it lands, by the ledger's path).
RATES_TTL_SECONDS = 30.0


@dataclass(frozen=True)
class Rates:
    """USD per million tokens: the dearest input (plain or a 1-hour cache write) and the output."""

    input: Decimal
    output: Decimal

    def worst_case(self, body_bytes: int, max_tokens: int) -> Decimal:
        return (self.input * body_bytes + self.output * max_tokens) / MTOK


async def rates(conn: AsyncConnection, company_id: UUID, model: str, provider: str) -> Rates | None:
    """The model's rates for worst cases; None when neither the book nor an override prices it."""
    plain = await pricing.quote(conn, company_id, model, provider, Usage(input_tokens=MTOK))
    if plain is None:
        return None
    write = await pricing.quote(conn, company_id, model, provider, Usage(cache_write_1h_tokens=MTOK))
    output = await pricing.quote(conn, company_id, model, provider, Usage(output_tokens=MTOK))
    return Rates(
        input=max(plain.usd, write.usd if write is not None else Decimal(0)),
        output=output.usd if output is not None else Decimal(0),
    )


class RateCache:
    def __init__(self) -> None:
        self._cache: dict[tuple[UUID, str, str], tuple[float, Rates | None]] = {}

    async def get(self, conn: AsyncConnection, company_id: UUID, model: str, provider: str) -> Rates | None:
        key = (company_id, model, provider)
        now = time.monotonic()
        cached = self._cache.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        found = await rates(conn, company_id, model, provider)
        self._cache[key] = (now + RATES_TTL_SECONDS, found)
        return found


@dataclass(frozen=True)
class Refusal:
    scope: str
    cap: Decimal
    spent: Decimal
    committed: Decimal  # reserved by others and in flight here


class InFlight:
    """The worst cases forwarded and not yet metered, per budget scope (this process only)."""

    def __init__(self) -> None:
        self._by_scope: dict[UUID, Decimal] = defaultdict(Decimal)

    def admit(self, rows: list[dict[str, Any]], worst: Decimal) -> tuple[list[UUID], Refusal | None]:
        """Reserve ``worst`` in every capped scope of ``rows`` when it fits them all (no await between
        the check and the reservation, so two calls of this process never both take the last room)."""
        scopes: list[UUID] = []
        for row in rows:
            if row["cap"] is None:
                continue
            others = max(Decimal(row["reserved"] or 0) - Decimal(row["envelope"] or 0), Decimal(0))
            if row["scope"] == "task":
                others = Decimal(0)  # the task's reservation is this run's envelope
            committed = others + self._by_scope[row["scope_id"]]
            if row["spent"] + committed + worst > row["cap"]:
                return [], Refusal(row["scope"], row["cap"], row["spent"], committed)
            scopes.append(row["scope_id"])
        for scope in scopes:
            self._by_scope[scope] += worst
        return scopes, None

    def release(self, scopes: list[UUID], worst: Decimal) -> None:
        for scope in scopes:
            left = self._by_scope[scope] - worst
            if left > 0:
                self._by_scope[scope] = left
            else:
                self._by_scope.pop(scope, None)


async def scopes(
    conn: AsyncConnection, ident: RunIdentity, fencing_token: int
) -> list[dict[str, Any]] | None:
    """The run's budget scopes, None when it no longer holds its lease; one round trip (in a
    transaction the caller rolls back)."""
    found = await driver.rows(
        conn,
        SCOPES_SQL,
        {"task_id": ident.task_id, "fencing_token": fencing_token, "token_hash": ident.token_hash},
    )
    if not found or found[0]["held"] is None:
        return None
    return [r for r in found if r["scope"] is not None]
