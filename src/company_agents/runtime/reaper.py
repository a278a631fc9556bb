"""The lease reaper loop: safe on every orchestrator at once, because each step is a compare-and-set."""

from __future__ import annotations

import asyncio
import logging

from company_agents import leases
from company_agents.db.database import Database
from company_agents.db.retry import retry_transient
from company_agents.runtime.loop import run_loop

log = logging.getLogger(__name__)

BATCH = 100


async def reap_once(
    db: Database, *, batch: int = BATCH, backoff: leases.RetryBackoff = leases.DEFAULT_BACKOFF
) -> list[dict[str, object]]:
    """One reaper transaction, retried whole on a deadlock or serialization failure."""

    async def once() -> list[dict[str, object]]:
        async with db.engine.begin() as conn:
            return await leases.reap_expired(conn, batch=batch, backoff=backoff)

    reaped = await retry_transient(once, what="reaper")
    for row in reaped:
        log.warning(
            "lease expired: task %s %s (attempt %s)",
            row["task_id"],
            row["status"],
            row["attempt"],
            extra={"action": "lease_expired", "task_id": str(row["task_id"])},
        )
    return reaped


async def run_reaper(
    db: Database,
    *,
    interval: float,
    stop: asyncio.Event,
    backoff: leases.RetryBackoff = leases.DEFAULT_BACKOFF,
) -> None:
    """Reap every ``interval`` seconds until ``stop``."""

    async def step() -> None:
        while len(await reap_once(db, backoff=backoff)) == BATCH:
            pass  # a full batch: there may be more right away

    await run_loop("reaper", step, interval=interval, stop=stop)
