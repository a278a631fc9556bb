"""The delivery worker: claims due outbox rows (SKIP LOCKED), posts them signed, records the outcome.

A claim commits before the request is sent and pushes ``next_attempt_at`` past the request timeout,
so another worker (another orchestrator on the same database) cannot take the row meanwhile; a worker
that dies mid-request leaves the row to be retried after that lease. Delivery is therefore at least
once: receivers deduplicate on ``webhook-id`` (the Standard Webhooks contract).

Retries: exponential backoff with jitter, for up to three days after the event; no retry on a 4xx
except 408 and 429, and none on a 3xx (redirects are never followed: an endpoint that moved must be
changed by its owner).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, LiteralString
from uuid import UUID

from sqlalchemy import text

from company_agents import secrets_store
from company_agents.db.database import Database
from company_agents.errors import CompanyAgentsError
from company_agents.events.feed import Event
from company_agents.master_key import MasterKey
from company_agents.runtime.loop import run_loop
from company_agents.webhooks.signing import headers

log = logging.getLogger(__name__)

REQUEST_TIMEOUT_SECONDS = 10.0
CLAIM_LEASE_SECONDS = 60
RETRYABLE_4XX = frozenset({408, 429})


@dataclass(frozen=True)
class Backoff:
    base_seconds: float = 10.0
    cap_seconds: float = 6 * 3600.0
    give_up_after: timedelta = timedelta(days=3)

    def delay(self, attempts: int) -> float:
        """Seconds before attempt ``attempts + 1``: doubling from ``base``, capped, jittered ±50%."""
        raw = min(self.base_seconds * 2.0 ** max(attempts - 1, 0), self.cap_seconds)
        return float(raw * random.uniform(0.5, 1.5))


CLAIM_SQL: LiteralString = """
UPDATE webhook_deliveries d
SET attempts = d.attempts + 1, next_attempt_at = now() + make_interval(secs => :lease)
FROM (
    SELECT id FROM webhook_deliveries
    WHERE status = 'pending' AND next_attempt_at <= now()
    ORDER BY next_attempt_at, id
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
) due, webhook_endpoints w, audit_events e
WHERE d.id = due.id AND w.id = d.endpoint_id AND e.id = d.event_id
RETURNING d.id, d.attempts, d.event_type, d.created_at, d.company_id, w.url, w.secret_name,
          e.id AS e_id, e.txid, e.actor, e.action, e.subject_type, e.subject_id, e.payload,
          e.created_at AS e_created_at
"""

# Fenced by ``attempts``: a row a later claim took over (after a lease ran out) is not overwritten.
FINISH_SQL: LiteralString = """
UPDATE webhook_deliveries
SET status = :status, last_status_code = :code, last_error = :error,
    next_attempt_at = now() + make_interval(secs => :delay),
    delivered_at = CASE WHEN :status = 'succeeded' THEN now() ELSE delivered_at END
WHERE id = :id AND attempts = :attempts
"""


def body_of(row: Any) -> bytes:
    event = Event(
        id=row.e_id,
        txid=row.txid,
        company_id=row.company_id,
        actor=row.actor,
        action=row.action,
        subject_type=row.subject_type,
        subject_id=row.subject_id,
        payload=row.payload,
        created_at=row.e_created_at,
    )
    data = event.public()
    data["type"] = row.event_type
    message = {"type": row.event_type, "timestamp": data["timestamp"], "data": data}
    return json.dumps(message, separators=(",", ":"), sort_keys=True).encode()


@dataclass
class Outcome:
    status: str  # succeeded | pending (retry) | failed
    code: int | None
    error: str | None


def judge(code: int | None, error: str | None) -> Outcome:
    if code is not None and 200 <= code < 300:
        return Outcome("succeeded", code, None)
    if code is not None and 300 <= code < 400:
        return Outcome("failed", code, "redirect not followed")
    if code is not None and 400 <= code < 500 and code not in RETRYABLE_4XX:
        return Outcome("failed", code, f"HTTP {code}")
    return Outcome("pending", code, error or f"HTTP {code}")


async def deliver_due(
    db: Database, master_key: MasterKey | None, *, backoff: Backoff = Backoff(), limit: int = 20
) -> int:
    """Claim and send up to ``limit`` due deliveries; returns how many were attempted."""
    import httpx

    async with db.engine.begin() as conn:
        rows = (await conn.execute(text(CLAIM_SQL), {"lease": CLAIM_LEASE_SECONDS, "limit": limit})).all()
        keys: dict[tuple[UUID, str], str] = {}
        for row in rows:
            ref = (row.company_id, row.secret_name)
            if ref not in keys and master_key is not None:
                try:
                    keys[ref] = await secrets_store.reveal(conn, master_key, row.company_id, row.secret_name)
                except CompanyAgentsError as exc:
                    # A deleted or undecryptable key fails its own rows (retried), never the batch.
                    log.warning(
                        "webhook signing secret %s unavailable: %s",
                        row.secret_name,
                        type(exc).__name__,
                        extra={"action": "webhook_secret_unavailable"},
                    )
    if not rows:
        return 0
    async with httpx.AsyncClient(follow_redirects=False, timeout=REQUEST_TIMEOUT_SECONDS) as client:
        outcomes = await asyncio.gather(*(_send(client, row, keys) for row in rows))
    async with db.engine.begin() as conn:
        for row, outcome in zip(rows, outcomes, strict=True):
            delay = 0.0
            if outcome.status == "pending":
                delay = backoff.delay(row.attempts)
                age = time.time() - row.created_at.timestamp()
                if age + delay > backoff.give_up_after.total_seconds():
                    outcome = Outcome("failed", outcome.code, f"gave up after 3 days: {outcome.error}")
            await conn.execute(
                text(FINISH_SQL),
                {
                    "status": outcome.status,
                    "code": outcome.code,
                    "error": outcome.error,
                    "delay": delay,
                    "id": row.id,
                    "attempts": row.attempts,
                },
            )
    return len(rows)


async def _send(client: Any, row: Any, keys: dict[tuple[UUID, str], str]) -> Outcome:
    import httpx

    secret = keys.get((row.company_id, row.secret_name))
    if secret is None:
        return Outcome("pending", None, "signing secret unavailable")
    body = body_of(row)
    msg_id = f"msg_{row.e_id}"
    try:
        response = await client.post(
            row.url, content=body, headers=headers(secret, msg_id, int(time.time()), body)
        )
    except httpx.HTTPError as exc:
        return Outcome("pending", None, type(exc).__name__)
    return judge(response.status_code, None)


async def run_webhook_worker(
    db: Database, master_key: MasterKey | None, stop: asyncio.Event, *, interval: float = 2.0
) -> None:
    """The background part of ``up``: drain due deliveries, then wait ``interval``."""

    async def step() -> float | None:
        sent = await deliver_due(db, master_key)
        return 0.0 if sent else None

    await run_loop("webhook_worker", step, interval=interval, stop=stop)
