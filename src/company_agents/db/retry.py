"""One place that retries transient database errors (``db.errors.is_transient``), with backoff.

Every write the orchestrator makes on an agent's behalf is one statement or one transaction that is
either wholly applied or not at all, and fenced (``leases``): retrying it after a deadlock, a
serialization failure or a lost connection is safe. A retried write that had in fact committed before
the connection broke is rejected the second time as stale (its fence has moved on), which callers that
care tell apart by re-reading (``AgentRun`` does).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from company_agents.db.errors import first_line, is_transient, sqlstate

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter: attempt n waits uniform(0, min(cap, base * 2**n))."""

    attempts: int = 8
    base: float = 0.05
    cap: float = 2.0

    def delay(self, attempt: int) -> float:
        return random.uniform(0, min(self.cap, self.base * (2**attempt)))


# Lock conflicts clear in milliseconds; an unavailable database needs seconds (a restart, a failover).
CONFLICTS = Backoff(attempts=8, base=0.01, cap=0.5)
OUTAGE = Backoff(attempts=40, base=0.1, cap=2.0)


async def retry_transient(
    work: Callable[[], Awaitable[T]],
    *,
    what: str,
    backoff: Backoff = CONFLICTS,
    deadline: float | None = None,
    retry_on: Callable[[BaseException], bool] = is_transient,
) -> T:
    """Run ``work`` (a fresh connection and transaction each time) until it succeeds or fails for good.

    Transient errors are retried up to ``backoff.attempts`` times, or until ``deadline`` seconds have
    passed when given; the last error is raised unchanged. ``work`` must be safe to run again: one
    statement, or one transaction that rolled back. ``retry_on`` narrows what is retried (e.g.
    ``errors.is_conflict`` for a write that is not idempotent: a connection lost during its COMMIT
    leaves unknown whether it was applied).
    """
    loop = asyncio.get_running_loop()
    started = loop.time()
    attempt = 0
    while True:
        try:
            return await work()
        except Exception as exc:
            if not retry_on(exc):
                raise
            attempt += 1
            out_of_time = deadline is not None and loop.time() - started >= deadline
            if (deadline is None and attempt >= backoff.attempts) or out_of_time:
                raise
            pause = backoff.delay(attempt)
            log.warning(
                "%s: transient database error (%s, %s); retry %d in %.2fs",
                what,
                sqlstate(exc) or "connection",
                first_line(exc),
                attempt,
                pause,
                extra={"action": "db_retry", "what": what},
            )
            await asyncio.sleep(pause)
