"""Comments on a task: a person's (or a script's) notes in the task's thread, oldest first, audited.

A comment is append-only: the thread is a record of what was said, as the audit trail is.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from company_agents import audit
from company_agents.db.schema import task_comments
from company_agents.db.schema.task_comments import MAX_COMMENT_LENGTH
from company_agents.errors import InvalidInput
from company_agents.pagination import Key, oldest_first
from company_agents.tasks import get_task


async def add_comment(
    conn: AsyncConnection, ref: str | UUID, *, body: str, actor: str = audit.LOCAL_USER
) -> dict[str, Any]:
    """Add a comment by ``actor`` to the task ``ref`` (any status: a finished task may still be
    discussed)."""
    if not body.strip():
        raise InvalidInput("a comment needs a body", field="body")
    if len(body) > MAX_COMMENT_LENGTH:
        raise InvalidInput(f"a comment is at most {MAX_COMMENT_LENGTH} characters", field="body")
    task = await get_task(conn, ref)
    row = (
        (
            await conn.execute(
                insert(task_comments)
                .values(company_id=task["company_id"], task_id=task["id"], author=actor, body=body)
                .returning(task_comments)
            )
        )
        .mappings()
        .one()
    )
    await audit.record(
        conn,
        actor=actor,
        action="task.commented",
        subject_type="task",
        subject_id=task["id"],
        company_id=task["company_id"],
        payload={"commentId": str(row["id"])},
    )
    return dict(row)


async def list_comments(
    conn: AsyncConnection, task_id: UUID, *, limit: int = 200, after: Key | None = None
) -> list[dict[str, Any]]:
    """The task's comments oldest first after ``after``, with one extra row when another page follows
    (``pagination.split``)."""
    query = select(task_comments).where(task_comments.c.task_id == task_id)
    query = oldest_first(query, task_comments.c.created_at, task_comments.c.id, after, limit)
    return [dict(r) for r in (await conn.execute(query)).mappings()]
