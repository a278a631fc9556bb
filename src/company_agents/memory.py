"""Memory: event-sourced notes. Every write appends; a read returns the latest entry per topic.

Scopes are ``company``, ``team``, ``agent`` and ``task``; ``scope_id`` is that object's id. Nothing is
overwritten or deleted (the table refuses UPDATE and DELETE): the history of a topic is its entries.

Agents reach memory through the tool endpoint (``memory_read``/``memory_write``), which must call
``check_access`` first: an agent may use only the scopes listed in its ``memory_scopes``, and in each
only its own company, its own team, itself, or the tasks it is working on.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import UTC
from typing import Any
from uuid import UUID

from sqlalchemy import insert, select
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.ext.asyncio import AsyncConnection

from company_agents import audit
from company_agents.db.schema import agents, memory_entries, tasks, teams
from company_agents.db.schema.memory import MEMORY_SCOPES
from company_agents.errors import InvalidInput, MemoryAccessDenied, NotFound

SEED_TOPIC = "seed-notes"
_SCOPE_TABLES = {"team": teams, "agent": agents, "task": tasks}
_SCOPE_ORDER = {scope: i for i, scope in enumerate(MEMORY_SCOPES)}


def check_scope(scope: str) -> str:
    if scope not in MEMORY_SCOPES:
        raise InvalidInput(f"scope must be one of {', '.join(MEMORY_SCOPES)}", field="scope")
    return scope


async def _check_scope_id(conn: AsyncConnection, company_id: UUID, scope: str, scope_id: UUID) -> None:
    """``scope_id`` must name an object of that kind in this company."""
    if scope == "company":
        if scope_id != company_id:
            raise InvalidInput("company memory is kept under the company's own id", field="scopeId")
        return
    table = _SCOPE_TABLES[scope]
    found = (
        await conn.execute(select(table.c.id).where(table.c.id == scope_id, table.c.company_id == company_id))
    ).first()
    if found is None:
        raise NotFound(f"no {scope} {scope_id} in this company", scope=scope, scope_id=str(scope_id))


async def resolve_scope_id(conn: AsyncConnection, company_id: UUID, scope: str, ref: str | None) -> UUID:
    """The id a scope reference names: the company itself, a team or agent by name or id, a task id."""
    from company_agents import ids

    check_scope(scope)
    if scope == "company":
        return company_id
    if not ref:
        raise InvalidInput(f"{scope} memory needs a scope id", field="scopeId")
    noun = {"team": ids.TEAM, "agent": ids.AGENT, "task": ids.TASK}[scope]
    key = await ids.resolve_id(conn, noun, ref, company_id=company_id)
    table = _SCOPE_TABLES[scope]
    query = select(table.c.id).where(table.c.id == key, table.c.company_id == company_id)
    if (await conn.execute(query)).scalar() is None:
        raise NotFound(f"no {scope} {ref!r} in this company", scope=scope)
    return key


async def write_memory(
    conn: AsyncConnection,
    *,
    company_id: UUID,
    scope: str,
    scope_id: UUID,
    topic: str,
    body: str,
    actor: str = audit.LOCAL_USER,
    source_agent_id: UUID | None = None,
    source_task_id: UUID | None = None,
) -> dict[str, Any]:
    """Append one entry (a new version of ``topic`` in that scope); returns the row."""
    check_scope(scope)
    topic = topic.strip()
    if not 1 <= len(topic) <= 200:
        raise InvalidInput("a topic is 1 to 200 characters", field="topic")
    await _check_scope_id(conn, company_id, scope, scope_id)
    row = (
        (
            await conn.execute(
                insert(memory_entries)
                .values(
                    company_id=company_id,
                    scope=scope,
                    scope_id=scope_id,
                    topic=topic,
                    body=body,
                    actor=actor,
                    source_agent_id=source_agent_id,
                    source_task_id=source_task_id,
                )
                .returning(memory_entries)
            )
        )
        .mappings()
        .one()
    )
    return dict(row)


async def list_memory(
    conn: AsyncConnection,
    company_id: UUID,
    *,
    scope: str | None = None,
    scope_id: UUID | None = None,
    topic: str | None = None,
    history: bool = False,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """The latest entry per (scope, scope id, topic) — or, with ``history``, every entry, newest first;
    with ``limit``, at most that many (the first in the query's scope-name order)."""
    m = memory_entries.c
    query = select(memory_entries).where(m.company_id == company_id)
    if scope is not None:
        query = query.where(m.scope == check_scope(scope))
    if scope_id is not None:
        query = query.where(m.scope_id == scope_id)
    if topic is not None:
        query = query.where(m.topic == topic)
    if history:
        query = query.order_by(m.scope, m.scope_id, m.topic, m.id.desc())
    else:
        # One row per topic: the newest (ids follow insertion order within a topic's writers).
        query = query.ext(distinct_on(m.scope, m.scope_id, m.topic)).order_by(
            m.scope, m.scope_id, m.topic, m.id.desc()
        )
    if limit is not None:
        query = query.limit(limit)
    rows = [dict(r) for r in (await conn.execute(query)).mappings()]
    rows.sort(key=lambda r: (_SCOPE_ORDER[r["scope"]], str(r["scope_id"]), r["topic"], -r["id"]))
    return rows


async def read_memory(
    conn: AsyncConnection,
    company_id: UUID,
    scope: str,
    scope_id: UUID,
    topic: str | None = None,
    history: bool = False,
) -> list[dict[str, Any]]:
    """One scope's memory: the latest entry per topic, or every entry with ``history``."""
    return await list_memory(conn, company_id, scope=scope, scope_id=scope_id, topic=topic, history=history)


# --- agents' access ------------------------------------------------------------------------------


def allowed_scopes(agent: Mapping[str, Any], task_ids: Collection[UUID] = ()) -> dict[str, set[UUID]]:
    """The scope ids ``agent`` may use, per scope: its company, its team, itself, ``task_ids``
    (the tasks it is running), restricted to the scopes its ``memory_scopes`` lists.
    """
    listed = set(agent.get("memory_scopes") or [])
    own: dict[str, set[UUID]] = {
        "company": {agent["company_id"]},
        "team": {agent["team_id"]} if agent.get("team_id") else set(),
        "agent": {agent["id"]},
        "task": set(task_ids),
    }
    return {scope: ids for scope, ids in own.items() if scope in listed and ids}


def check_access(
    agent: Mapping[str, Any], scope: str, scope_id: UUID, *, task_ids: Collection[UUID] = ()
) -> None:
    """Raise ``MemoryAccessDenied`` unless ``agent`` may read and write ``(scope, scope_id)``.

    The tool endpoint calls this before every ``memory_read``/``memory_write`` and audits refusals.
    """
    check_scope(scope)
    if scope_id not in allowed_scopes(agent, task_ids).get(scope, set()):
        raise MemoryAccessDenied(
            f"agent {agent['id']} may not use {scope} memory {scope_id}",
            agent_id=str(agent["id"]),
            scope=scope,
            scope_id=str(scope_id),
        )


async def seed_memory(
    conn: AsyncConnection, agent: Mapping[str, Any], notes: str, *, actor: str = audit.LOCAL_USER
) -> dict[str, Any] | None:
    """Seed notes given at hire: the agent's first memory entry (topic ``seed-notes``)."""
    if not notes.strip():
        return None
    return await write_memory(
        conn,
        company_id=agent["company_id"],
        scope="agent",
        scope_id=agent["id"],
        topic=SEED_TOPIC,
        body=notes.strip(),
        actor=actor,
    )


# --- the workspace snapshot ----------------------------------------------------------------------


def render_memory_md(sections: Sequence[tuple[str, Sequence[Mapping[str, Any]]]]) -> str:
    """``MEMORY.md``: one section per scope, one subsection per topic (latest entry)."""
    lines = [
        "# Memory",
        "",
        "A snapshot of the memory you can use, latest entry per topic. Write with the memory_write tool;",
        "edits to this file are not saved.",
    ]
    for title, entries in sections:
        lines += ["", f"## {title}"]
        if not entries:
            lines += ["", "_(nothing yet)_"]
        for entry in entries:
            when = entry["created_at"].astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
            lines += [
                "",
                f"### {entry['topic']}",
                "",
                entry["body"].rstrip(),
                "",
                f"_{when}, {entry['actor']}_",
            ]
    return "\n".join(lines) + "\n"


async def memory_snapshot(
    conn: AsyncConnection, agent: Mapping[str, Any], *, task_ids: Collection[UUID] = ()
) -> str:
    """The ``MEMORY.md`` an agent's workspace gets: every scope it may use, latest entries."""
    titles = {"company": "Company", "team": "Team", "agent": "Your notes", "task": "This task"}
    sections: list[tuple[str, Sequence[Mapping[str, Any]]]] = []
    for scope, ids in sorted(allowed_scopes(agent, task_ids).items(), key=lambda kv: _SCOPE_ORDER[kv[0]]):
        for scope_id in sorted(ids, key=str):
            entries = await read_memory(conn, agent["company_id"], scope, scope_id)
            sections.append((titles[scope], entries))
    return render_memory_md(sections)
