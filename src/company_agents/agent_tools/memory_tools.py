"""``memory_read`` and ``memory_write``: the tools that take an agent identity token as well as a lease token.

With a lease token the call acts as the run's agent, may reach the run's task memory, and is fenced:
a run that lost its task is refused (``stale_fencing_token``). A refusal of a scope is audited once per
window (``memory.access_denied``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncConnection

from company_agents import leases
from company_agents.agent_tools import calls
from company_agents.agent_tools.auth import AgentPrincipal, authenticate_agent_or_run
from company_agents.agent_tools.fencing import IMPLIED, Fence, ToolEnv, check_own_task
from company_agents.audit.rejections import record_once_per_window
from company_agents.errors import InvalidInput, MemoryAccessDenied
from company_agents.memory import check_access, check_scope, read_memory, write_memory

T = TypeVar("T")
MemoryCall = calls.MemoryRead | calls.MemoryWrite
Work = Callable[[AsyncConnection, AgentPrincipal, UUID], Awaitable[T]]


def _scope_id(principal: AgentPrincipal, scope: str, given: UUID | None) -> UUID:
    """The scope id a call means: the one it gave, else the caller's own."""
    if given is not None:
        return given
    agent = principal.agent
    defaults = {
        "company": agent["company_id"],
        "team": agent["team_id"],
        "agent": agent["id"],
        "task": principal.run.task_id if principal.run is not None else None,
    }
    if scope not in defaults:
        check_scope(scope)
    value = defaults[scope]
    if value is None:
        raise InvalidInput(f"scopeId: required for {scope} memory here", field="scopeId")
    return UUID(str(value))


async def _memory_tool(
    env: ToolEnv, tool: str, token: str, call: MemoryCall, fence: Fence, work: Work[T]
) -> T:
    async with env.db.engine.connect() as conn:
        async with conn.begin():
            principal = await authenticate_agent_or_run(conn, token)
            ident = principal.run
            if ident is not None:
                fencing_token = fence.token_for(ident)
                if not await leases.lease_is_current(conn, ident, fencing_token=fencing_token):
                    raise leases.stale_error(ident, fencing_token, "memory")
        if ident is not None:
            await check_own_task(conn, ident, fence, tool=tool)
        scope_id = _scope_id(principal, call.scope, call.scope_id)
        try:
            check_access(principal.agent, call.scope, scope_id, task_ids=principal.task_ids)
        except MemoryAccessDenied:
            async with conn.begin():
                await record_once_per_window(
                    conn,
                    match={"tool": tool},
                    actor=principal.actor,
                    action="memory.access_denied",
                    subject_type="memory",
                    subject_id=f"{call.scope}:{scope_id}",
                    company_id=principal.agent["company_id"],
                    payload={"tool": tool, "scope": call.scope, "scopeId": str(scope_id)},
                )
            raise
        async with conn.begin():
            return await work(conn, principal, scope_id)


async def memory_read(
    env: ToolEnv, token: str, call: calls.MemoryRead, fence: Fence = IMPLIED
) -> dict[str, Any]:
    """Read memory in one of the caller's scopes: latest per topic, or the history."""

    async def work(conn: AsyncConnection, principal: AgentPrincipal, scope_id: UUID) -> list[dict[str, Any]]:
        return await read_memory(
            conn,
            principal.agent["company_id"],
            call.scope,
            scope_id,
            topic=call.topic,
            history=call.history,
        )

    rows = await _memory_tool(env, "memory_read", token, call, fence, work)
    entries = [
        {
            "id": r["id"],
            "topic": r["topic"],
            "body": r["body"],
            "actor": r["actor"],
            "createdAt": r["created_at"].isoformat(),
        }
        for r in rows
    ]
    return {"scope": call.scope, "entries": entries}


async def memory_write(
    env: ToolEnv, token: str, call: calls.MemoryWrite, fence: Fence = IMPLIED
) -> dict[str, Any]:
    """Append a memory entry in one of the caller's scopes (nothing is overwritten)."""

    async def work(conn: AsyncConnection, principal: AgentPrincipal, scope_id: UUID) -> dict[str, Any]:
        return await write_memory(
            conn,
            company_id=principal.agent["company_id"],
            scope=call.scope,
            scope_id=scope_id,
            topic=call.topic,
            body=call.body,
            actor=principal.actor,
            source_agent_id=principal.agent["id"],
            source_task_id=principal.run.task_id if principal.run is not None else None,
        )

    row = await _memory_tool(env, "memory_write", token, call, fence, work)
    return {"id": row["id"], "topic": row["topic"]}
