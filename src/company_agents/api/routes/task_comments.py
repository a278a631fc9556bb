"""``/v1/tasks/{task}/comments``: a task's thread, oldest first a keyset page at a time, and a new
comment (its author is the token's audit actor)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request

from company_agents.api.deps import CursorQuery, Db, LimitQuery, Reader, Writer, actor_of
from company_agents.api.middleware import request_id_of
from company_agents.api.routes.tasks import ID_PATTERN, visible_task
from company_agents.api.schemas.common import (
    DEFAULT_LIMIT,
    Envelope,
    ListEnvelope,
    decode_cursor,
    encode_cursor,
    error_responses,
    one,
    page,
)
from company_agents.api.schemas.tasks import TaskComment, TaskCommentCreate

router = APIRouter(tags=["tasks"])

TaskRef = Annotated[str, Path(pattern=ID_PATTERN, description="The task's id.")]


@router.get(
    "/tasks/{task}/comments",
    operation_id="listTaskComments",
    response_model=ListEnvelope[TaskComment],
    responses=error_responses(403, 404),
)
async def list_task_comments(
    request: Request,
    task: TaskRef,
    principal: Reader,
    db: Db,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> Any:
    """The task's comments, oldest first (a thread reads top down), a keyset page at a time."""
    from company_agents import pagination, task_comments

    after = decode_cursor(cursor)
    async with db.engine.connect() as conn:
        row = await visible_task(conn, principal, task)
        rows = await task_comments.list_comments(conn, row["id"], limit=limit, after=after)
    items, last = pagination.split(rows, limit, "created_at")
    next_cursor = encode_cursor(*last) if last else None
    return page(request_id_of(request), [TaskComment.of(r) for r in items], next_cursor)


@router.post(
    "/tasks/{task}/comments",
    operation_id="addTaskComment",
    status_code=201,
    response_model=Envelope[TaskComment],
    responses=error_responses(403, 404, 413),
)
async def add_task_comment(
    request: Request, task: TaskRef, body: TaskCommentCreate, principal: Writer, db: Db
) -> Any:
    """Comment on a task (in any status: a finished task may still be discussed)."""
    from company_agents import task_comments

    async with db.engine.begin() as conn:
        row = await visible_task(conn, principal, task)
        added = await task_comments.add_comment(conn, row["id"], body=body.body, actor=actor_of(principal))
    return one(request_id_of(request), TaskComment.of(added))
