"""The one way a tool writes on behalf of a run: authenticated, fenced, retried, rejections audited.

docs/design.md §4: every write for an attempt matches task id + fencing token + lease token + expected
status in its own SQL (``leases``). This module decides *which* fencing token a call presents (the one
the HTTP body names, or, over MCP, the one the lease token implies), refuses a call that names another
task, retries the write's transaction on a deadlock or serialization failure, and audits a stale write.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncConnection

from company_agents import leases
from company_agents.agent_tools.auth import authenticate_run
from company_agents.audit.rejections import record_once_per_window
from company_agents.db.database import Database
from company_agents.db.errors import is_conflict
from company_agents.db.retry import retry_transient
from company_agents.errors import Conflict, Forbidden
from company_agents.settings import Settings

T = TypeVar("T")


@dataclass(frozen=True)
class ToolEnv:
    """What every tool call needs from the process serving it."""

    db: Database
    settings: Settings


@dataclass(frozen=True)
class Fence:
    """What a caller presents besides its bearer token.

    ``fencing_token`` None means the lease token's own (MCP clients never send one); ``task_id``, when
    given, must be the token's own task (a mismatch is 403 and audited).
    """

    fencing_token: int | None = None
    task_id: UUID | None = None

    def token_for(self, ident: leases.RunIdentity) -> int:
        return ident.fencing_token if self.fencing_token is None else self.fencing_token


IMPLIED = Fence()

Write = Callable[[AsyncConnection, leases.RunIdentity, int], Awaitable[T]]


async def check_own_task(
    conn: AsyncConnection, ident: leases.RunIdentity, fence: Fence, *, tool: str
) -> None:
    """``Forbidden`` (audited once per run and tool per window) when the call names another task."""
    if fence.task_id is None or fence.task_id == ident.task_id:
        return
    # The record is read-then-write: a real transaction, also on a connection ``fenced`` put in autocommit.
    conn = await conn.execution_options(isolation_level=conn.default_isolation_level)
    async with conn.begin():
        await record_once_per_window(
            conn,
            match={"tool": tool, "runId": str(ident.run_id)},
            actor=f"agent:{ident.agent_id}",
            action="lease.cross_task_rejected",
            subject_type="task",
            subject_id=fence.task_id,
            company_id=ident.company_id,
            payload={"tool": tool, "runId": str(ident.run_id), "ownTaskId": str(ident.task_id)},
        )
    raise Forbidden("this lease token does not act for that task", task=str(fence.task_id))


async def fenced(
    env: ToolEnv, tool: str, token: str, fence: Fence, write: Write[T], *, one_statement: bool = False
) -> T:
    """Run ``write(conn, ident, fencing_token)`` for the run ``token`` speaks for, in its own transaction.

    ``one_statement``: the write is a single statement (``leases`` says which are), so it runs in
    autocommit mode and is its own transaction: the lookup and the write cost two round trips instead
    of six (BEGIN and COMMIT around each). The hot tools (renew, progress, the ends of a run) take it.

    Raises:
        Unauthorized: the token is not a known lease token.
        Forbidden: the call names another task.
        StaleFencingToken: the run no longer holds its task (audited, then raised).
    """
    async with env.db.engine.connect() as conn:
        if one_statement:
            # Reset to the pool's default when the connection goes back (SQLAlchemy's isolation reset).
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        async with conn.begin():
            ident = await authenticate_run(conn, token)
        await check_own_task(conn, ident, fence, tool=tool)
        fencing_token = fence.token_for(ident)

        async def once() -> T:
            async with conn.begin():
                return await write(conn, ident, fencing_token)

        try:
            # The write's own transaction is the boundary: a deadlock or serialization failure rolled
            # it back whole, so it is run again (a stale token is a Conflict, not retried). Not a lost
            # connection: the write may have committed, and the agent must be told.
            return await retry_transient(once, what=tool, retry_on=is_conflict)
        except Conflict as exc:
            conn = await conn.execution_options(isolation_level=conn.default_isolation_level)
            async with conn.begin():
                await leases.record_rejection(conn, ident, tool=tool, error=exc, presented=fencing_token)
            raise
