"""``/v1/companies/{company}/memory``: the latest entry per topic (with scope filters), and one
topic's history (every entry, newest first). Memory is written by agents and ``memory write``; the
API reads it."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request

from company_agents.api.deps import CompanyRef, Db, Reader, company_for
from company_agents.api.middleware import request_id_of
from company_agents.api.schemas.common import ListEnvelope, error_responses, page
from company_agents.api.schemas.memory import MemoryEntry

router = APIRouter(tags=["memory"])

Scope = Literal["company", "team", "agent", "task"]
# A team or agent by name or id, a task by id (memory list --scope-id).
SCOPE_REF = r"^[A-Za-z0-9][A-Za-z0-9._ -]{0,199}$"
ScopeRef = Annotated[
    str | None,
    Query(pattern=SCOPE_REF, description="The team or agent (name or id) or task id; company: omit."),
]
Topic = Annotated[str, Query(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")]


@router.get(
    "/companies/{company}/memory",
    operation_id="listMemory",
    response_model=ListEnvelope[MemoryEntry],
    responses=error_responses(403, 404),
)
async def list_memory(
    request: Request,
    company: CompanyRef,
    principal: Reader,
    db: Db,
    scope: Annotated[Scope | None, Query(description="Only this scope.")] = None,
    scope_id: Annotated[ScopeRef, Query(alias="scopeId")] = None,
    topic: Annotated[Topic | None, Query(description="Only this topic.")] = None,
) -> Any:
    """The latest entry of every topic, by scope (the whole list: one row per topic)."""
    from company_agents import memory

    async with db.engine.connect() as conn:
        current = await company_for(conn, principal, company)
        sid = None
        if scope is not None and (scope == "company" or scope_id):
            sid = await memory.resolve_scope_id(conn, current["id"], scope, scope_id)
        rows = await memory.list_memory(conn, current["id"], scope=scope, scope_id=sid, topic=topic)
    return page(request_id_of(request), [MemoryEntry.of(r) for r in rows], None)


@router.get(
    "/companies/{company}/memory/history",
    operation_id="getMemoryHistory",
    response_model=ListEnvelope[MemoryEntry],
    responses=error_responses(403, 404),
)
async def memory_history(
    request: Request,
    company: CompanyRef,
    principal: Reader,
    db: Db,
    scope: Annotated[Scope, Query(description="The topic's scope.")],
    topic: Annotated[Topic, Query(description="The topic.")],
    scope_id: Annotated[ScopeRef, Query(alias="scopeId")] = None,
) -> Any:
    """Every entry of one topic, newest first: memory is appended, never overwritten."""
    from company_agents import memory

    async with db.engine.connect() as conn:
        current = await company_for(conn, principal, company)
        sid = await memory.resolve_scope_id(conn, current["id"], scope, scope_id)
        rows = await memory.read_memory(conn, current["id"], scope, sid, topic=topic, history=True)
    return page(request_id_of(request), [MemoryEntry.of(r) for r in rows], None)
