"""What a person has to look at in one company: pending approvals (actions and budget overrides),
handed-off tasks, and open questions (approvals a person asked about that the agent has not asked
again yet). The product's ``inbox {approvals, handoffs, questions, total}``."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from company_agents.approvals import store
from company_agents.companies import get_company
from company_agents.db.schema import tasks
from company_agents.db.schema.tasks import TERMINAL_TASK_STATUSES

# A question stays open until the agent asks the same task and action again (a newer row).
OPEN_QUESTIONS_SQL = text(
    """
    SELECT a.* FROM approvals a
    WHERE a.company_id = :company_id AND a.status = 'asked_question'
      AND NOT EXISTS (SELECT 1 FROM approvals b
                      WHERE b.task_id = a.task_id AND b.action = a.action AND b.created_at > a.created_at)
    ORDER BY a.decided_at
    LIMIT :limit
    """
)


def handoff_public(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "taskId": str(row["id"]),
        "title": row["title"],
        "reason": row["failure_reason"],
        "agentId": str(row["assigned_agent_id"]) if row["assigned_agent_id"] else None,
        "since": row["updated_at"].isoformat(),
    }


async def _finished_tasks(conn: AsyncConnection, task_ids: list[Any]) -> set[Any]:
    if not task_ids:
        return set()
    query = select(tasks.c.id).where(tasks.c.id.in_(task_ids), tasks.c.status.in_(TERMINAL_TASK_STATUSES))
    return set((await conn.execute(query)).scalars())


async def inbox(conn: AsyncConnection, *, company: str, limit: int = 200) -> dict[str, Any]:
    comp = await get_company(conn, company)
    pending = await store.list_approvals(conn, company_id=comp["id"], status=["pending"], limit=limit)
    # A request whose task was cancelled (or finished) meanwhile waits for nobody: it just expires.
    finished = await _finished_tasks(conn, [r["task_id"] for r in pending if r["task_id"] is not None])
    pending = [r for r in pending if r["task_id"] not in finished]
    handoffs = [
        dict(r)
        for r in (
            await conn.execute(
                select(tasks)
                .where(tasks.c.company_id == comp["id"], tasks.c.status == "handoff")
                .order_by(tasks.c.updated_at)
                .limit(limit)
            )
        ).mappings()
    ]
    questions = [
        dict(r)
        for r in (
            await conn.execute(OPEN_QUESTIONS_SQL, {"company_id": comp["id"], "limit": limit})
        ).mappings()
    ]
    gone = await _finished_tasks(conn, [q["task_id"] for q in questions if q["task_id"] is not None])
    questions = [q for q in questions if q["task_id"] not in gone]
    return {
        "company": comp["slug"],
        "approvals": [store.to_public(r) for r in pending],
        "handoffs": [handoff_public(r) for r in handoffs],
        "questions": [store.to_public(r) for r in questions],
        "total": len(pending) + len(handoffs) + len(questions),
    }
