"""The fenced writes made for one run, through database outages.

Every write is one statement, fenced (``leases``), on a fresh autocommit connection, retried through
transient errors (``db.retry``, the ``OUTAGE`` backoff) for up to one lease window. Retrying past the
lease's expiry is still safe: a lease reaped meanwhile makes the write come back stale. Past the window
the run gives the task up, as if its lease had expired; the reaper ends the attempt.

A write whose COMMIT went through but whose reply was lost (the connection broke in between) is retried
and comes back stale too. The run's standing, read back, tells the two apart: its run row already
shows the write's outcome (say ``succeeded``/``complete``), or it does not and the lease is lost.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from company_agents import leases
from company_agents.db.database import Database
from company_agents.db.errors import first_line, is_transient
from company_agents.db.retry import OUTAGE, retry_transient
from company_agents.errors import StaleFencingToken

log = logging.getLogger(__name__)

Work = Callable[[AsyncConnection], Awaitable[Any]]
# Does the run's standing show that this write took effect?
Applied = Callable[[leases.RunStanding], bool]
# What a write returns when an earlier try of it had committed (the reply was lost).
APPLIED_EARLIER: Any = {"applied_earlier": True}


def ended(run_status: str, exit_reason: str) -> Applied:
    """The run's standing once an ending write took effect (the reaper's ending has another reason)."""
    return lambda s: s.run_status == run_status and s.exit_reason == exit_reason


def started(standing: leases.RunStanding) -> bool:
    return standing.holds_lease and standing.task_status == "running"


class RunWrites:
    """One run's writes; ``note`` writes to its run log, ``on_lost`` says the lease is gone."""

    def __init__(
        self,
        db: Database,
        claim: leases.Claim,
        *,
        window: float,
        note: Callable[[str], None],
        on_lost: Callable[[], None],
    ) -> None:
        self.db = db
        self.claim = claim
        self.ident = claim.identity()
        self.window = window
        self.note = note
        self.on_lost = on_lost

    async def retry(self, what: str, work: Work, *, transaction: bool = False) -> Any:
        """``work`` on a fresh autocommit connection (in one transaction with ``transaction``), retried
        through transient errors for one window."""

        async def once() -> Any:
            if transaction:
                async with self.db.engine.begin() as tx:
                    return await work(tx)
            async with self.db.autocommit() as conn:
                return await work(conn)

        return await retry_transient(once, what=what, backoff=OUTAGE, deadline=self.window)

    async def write(
        self, what: str, work: Work, applied: Applied | None = None, *, transaction: bool = False
    ) -> Any:
        """One fenced write; ``None`` (and ``on_lost``) when the lease is lost or the database stayed
        away for the whole window; ``APPLIED_EARLIER`` when ``applied`` shows a lost reply's write took."""
        tries = 0

        async def counted(conn: AsyncConnection) -> Any:
            nonlocal tries
            tries += 1
            return await work(conn)

        try:
            return await self.retry(what, counted, transaction=transaction)
        except StaleFencingToken:
            if tries > 1 and applied is not None and await self._applied_earlier(what, applied):
                return APPLIED_EARLIER
            self.note(f"{what} rejected: this run no longer holds the task")
        except Exception as exc:
            if not is_transient(exc):
                raise
            self.note(
                f"{what} failed: the database stayed unavailable for {self.window:.0f}s "
                f"({first_line(exc)}); giving the task up to the reaper"
            )
            log.error(
                "run %s: %s failed, the database stayed unavailable: %s",
                self.claim.run_id,
                what,
                first_line(exc),
                extra={"action": "run_db_unavailable", "run_id": str(self.claim.run_id)},
            )
        self.on_lost()
        return None

    async def _applied_earlier(self, what: str, applied: Applied) -> bool:
        try:
            standing = await self.retry(
                f"{what} (check)",
                lambda c: leases.run_standing(c, self.ident, fencing_token=self.claim.fencing_token),
            )
        except Exception as exc:  # cannot tell: the safe answer is that the lease is lost
            self.note(f"could not check whether {what} was applied: {first_line(exc)}")
            return False
        if standing is None or not applied(standing):
            return False
        self.note(f"{what} had been applied before the connection broke")
        return True
