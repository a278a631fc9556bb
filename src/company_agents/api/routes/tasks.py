"""``/v1/companies/{company}/tasks`` and ``/v1/tasks/{task}``: list (keyset pages), create, show,
assign, the human transitions (cancel, approve, reject with feedback, requeue) and a task's runs.
Comments are in ``task_comments``."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request

from company_agents.api.deps import (
    CompanyRef,
    CursorQuery,
    Db,
    LimitQuery,
    Principal,
    Reader,
    Writer,
    actor_of,
    check_company,
    company_for,
)
from company_agents.api.middleware import request_id_of
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
from company_agents.api.schemas.tasks import Run, Task, TaskAssign, TaskCreate, TaskPatch, TaskReject

router = APIRouter(tags=["tasks"])

ID_PATTERN = r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$"
TaskRef = Annotated[str, Path(pattern=ID_PATTERN, description="The task's id.")]
Status = Literal[
    "queued", "assigned", "running", "review", "handoff", "blocked", "done", "failed", "cancelled"
]
NAME = r"^[A-Za-z0-9][A-Za-z0-9._ -]{0,199}$"


@router.get(
    "/companies/{company}/tasks",
    operation_id="listTasks",
    response_model=ListEnvelope[Task],
    responses=error_responses(403, 404),
)
async def list_tasks(
    request: Request,
    company: CompanyRef,
    principal: Reader,
    db: Db,
    status: Annotated[list[Status] | None, Query(description="One or more statuses.")] = None,
    agent: Annotated[str | None, Query(pattern=NAME, description="Assigned agent (name or id).")] = None,
    team: Annotated[str | None, Query(pattern=NAME, description="Assigned team (name or id).")] = None,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> Any:
    """The company's tasks, newest first, a keyset page at a time."""
    from company_agents import pagination, tasks

    before = decode_cursor(cursor)
    async with db.engine.connect() as conn:
        current = await company_for(conn, principal, company)
        rows = await tasks.list_tasks(
            conn,
            company=str(current["id"]),
            status=list(status) if status else None,
            agent=agent,
            team=team,
            limit=limit,
            page=True,
            before=before,
        )
    items, last = pagination.split(rows, limit, "created_at")
    next_cursor = encode_cursor(*last) if last else None
    return page(request_id_of(request), [Task.of(r) for r in items], next_cursor)


@router.post(
    "/companies/{company}/tasks",
    operation_id="createTask",
    status_code=201,
    response_model=Envelope[Task],
    responses=error_responses(403, 404, 409, 413),
)
async def create_task(
    request: Request, company: CompanyRef, body: TaskCreate, principal: Writer, db: Db
) -> Any:
    """Queue a task for an agent, a team, or anyone in the company."""
    from company_agents import tasks

    async with db.engine.begin() as conn:
        current = await company_for(conn, principal, company)
        row = await tasks.create_task(
            conn,
            company=str(current["id"]),
            title=body.title,
            body=body.body,
            agent=body.agent,
            team=body.team,
            parent=body.parent,
            budget_usd=Decimal(body.budget_usd) if body.budget_usd is not None else None,
            priority=body.priority,
            max_attempts=body.max_attempts,
            actor=actor_of(principal),
        )
    return one(request_id_of(request), Task.of(row))


async def visible_task(conn: Any, principal: Principal, ref: str) -> dict[str, Any]:
    from company_agents import tasks

    return check_company(principal, await tasks.get_task(conn, ref), "task", ref)


@router.get(
    "/tasks/{task}",
    operation_id="getTask",
    response_model=Envelope[Task],
    responses=error_responses(403, 404),
)
async def get_task(request: Request, task: TaskRef, principal: Reader, db: Db) -> Any:
    """One task."""
    async with db.engine.connect() as conn:
        row = await visible_task(conn, principal, task)
    return one(request_id_of(request), Task.of(row))


@router.patch(
    "/tasks/{task}",
    operation_id="updateTask",
    response_model=Envelope[Task],
    responses=error_responses(403, 404, 409, 413),
)
async def update_task(request: Request, task: TaskRef, body: TaskPatch, principal: Writer, db: Db) -> Any:
    """Change title, body or priority of a task nobody is working on (queued, blocked, handed off)."""
    from company_agents import tasks

    async with db.engine.begin() as conn:
        row = await visible_task(conn, principal, task)
        updated = await tasks.update_task(
            conn, str(row["id"]), body.model_dump(exclude_unset=True), actor=actor_of(principal)
        )
    return one(request_id_of(request), Task.of(updated))


@router.post(
    "/tasks/{task}/assign",
    operation_id="assignTask",
    response_model=Envelope[Task],
    responses=error_responses(403, 404, 409, 413),
)
async def assign_task(request: Request, task: TaskRef, body: TaskAssign, principal: Writer, db: Db) -> Any:
    """Assign or reassign a queued, blocked or handed-off task to an agent or a team of its company
    (neither: anyone). The status stays. A task an attempt holds (assigned, running), one in review and
    a finished one are 409, and a running attempt keeps its lease: cancel it first, or wait for it to
    end. A retired agent is 422; another company's agent or team is 404."""
    from company_agents import tasks

    async with db.engine.begin() as conn:
        row = await visible_task(conn, principal, task)
        moved = await tasks.assign_task(
            conn, str(row["id"]), agent=body.agent, team=body.team, actor=actor_of(principal)
        )
    return one(request_id_of(request), Task.of(moved))


def _move_route(move: str, doc: str) -> None:
    async def route(request: Request, task: TaskRef, principal: Writer, db: Db) -> Any:
        from company_agents import tasks

        moves = {"cancel": tasks.cancel_task, "approve": tasks.approve_task, "requeue": tasks.requeue_task}
        async with db.engine.begin() as conn:
            row = await visible_task(conn, principal, task)
            moved = await moves[move](conn, str(row["id"]), actor=actor_of(principal))
        return one(request_id_of(request), Task.of(moved))

    route.__doc__ = doc
    route.__name__ = f"{move}_task"
    router.add_api_route(
        f"/tasks/{{task}}/{move}",
        route,
        methods=["POST"],
        operation_id=f"{move}Task",
        response_model=Envelope[Task],
        responses=error_responses(403, 404, 409),
    )


_move_route("cancel", "Cancel the task (a running attempt is stopped).")
_move_route("approve", "Accept a reviewed task: it is done.")
_move_route("requeue", "Take a handed-off or blocked task back to the queue.")


@router.post(
    "/tasks/{task}/reject",
    operation_id="rejectTask",
    response_model=Envelope[Task],
    responses=error_responses(403, 404, 409, 413),
)
async def reject_task(request: Request, task: TaskRef, body: TaskReject, principal: Writer, db: Db) -> Any:
    """Send a reviewed task back to the queue with the reviewer's feedback."""
    from company_agents import tasks

    async with db.engine.begin() as conn:
        row = await visible_task(conn, principal, task)
        moved = await tasks.reject_task(
            conn, str(row["id"]), feedback=body.feedback, actor=actor_of(principal)
        )
    return one(request_id_of(request), Task.of(moved))


@router.get(
    "/tasks/{task}/runs",
    operation_id="listTaskRuns",
    response_model=ListEnvelope[Run],
    responses=error_responses(403, 404),
)
async def list_task_runs(request: Request, task: TaskRef, principal: Reader, db: Db) -> Any:
    """The task's attempts, first to last."""
    from company_agents import tasks

    async with db.engine.connect() as conn:
        row = await visible_task(conn, principal, task)
        rows = await tasks.task_runs(conn, row["id"])
    return page(request_id_of(request), [Run.of(r) for r in rows], None)
