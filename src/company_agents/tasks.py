"""Tasks from the board's side: create, list, show, and the human transitions (cancel, approve, reject,
requeue). Claims and agent-side writes live in ``leases``.

The moves lock in the order every writer of a leased task uses (``leases``' docstring): the task's
lease row first, then the task, then the run. They run in the caller's transaction; the caller's
transaction boundary (``cli.context.run_in_transaction``) retries a deadlock or serialization failure.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from company_agents import audit, ids
from company_agents.agents import get_agent, get_team
from company_agents.companies import get_company
from company_agents.db.schema import leases, runs, tasks, teams
from company_agents.errors import Conflict, InvalidInput, NotFound
from company_agents.ids import resolve_id
from company_agents.pagination import Key, newest_first
from company_agents.task_states import ACTIVE, TASK_STATUSES_ALL, check_transition

# One NOTIFY per enqueue transaction wakes idle schedulers; polling stays behind it.
TASKS_CHANNEL = "company_agents_tasks"
NOTIFY_SQL = text("SELECT pg_notify(:channel, :payload)")


async def resolve_task_id(conn: AsyncConnection, ref: str | UUID) -> UUID:
    """A task id from a full id or a unique prefix of one (``ids.resolve_id``)."""
    return await resolve_id(conn, ids.TASK, ref)


async def get_task(conn: AsyncConnection, ref: str | UUID, *, for_update: bool = False) -> dict[str, Any]:
    query = select(tasks).where(tasks.c.id == await resolve_task_id(conn, ref))
    if for_update:
        query = query.with_for_update()
    row = (await conn.execute(query)).mappings().first()
    if row is None:
        raise NotFound(f"no task {ref!s}", task=str(ref))
    return dict(row)


async def create_task(
    conn: AsyncConnection,
    *,
    company: str,
    title: str,
    body: str = "",
    agent: str | None = None,
    team: str | None = None,
    parent: str | None = None,
    budget_usd: Decimal | None = None,
    priority: int = 0,
    max_attempts: int = 3,
    keep_workspace: bool = False,
    actor: str = audit.LOCAL_USER,
) -> dict[str, Any]:
    """Queue a task for an agent, a team (an available agent of it takes it) or anyone in the company."""
    comp = await get_company(conn, company)
    title = title.strip()
    if not title:
        raise InvalidInput("a task needs a title", field="title")
    if len(title) > 500:
        raise InvalidInput("a title is one sentence (at most 500 characters)", field="title")
    if agent and team:
        raise InvalidInput("assign a task to an agent or to a team, not both", field="agent")
    if max_attempts < 1:
        raise InvalidInput("max attempts must be at least 1", field="maxAttempts")
    if budget_usd is not None and budget_usd < 0:
        raise InvalidInput("budget must not be negative", field="budget")
    agent_row = await get_agent(conn, comp["id"], agent) if agent else None
    if agent_row is not None and agent_row["status"] == "retired":
        raise InvalidInput(f"agent {agent_row['name']} is retired", field="agent")
    team_row = await get_team(conn, comp["id"], team) if team else None
    parent_row = None
    if parent:
        parent_row = await get_task(conn, parent)
        if parent_row["company_id"] != comp["id"]:
            raise InvalidInput("the parent task belongs to another company", field="parent")
        if (
            budget_usd is not None
            and parent_row["budget_usd"] is not None
            and budget_usd > parent_row["budget_usd"]
        ):
            raise InvalidInput("a sub-task's budget may not exceed its parent's", field="budget")
    row = (
        (
            await conn.execute(
                insert(tasks)
                .values(
                    company_id=comp["id"],
                    title=title,
                    body=body,
                    assigned_agent_id=agent_row["id"] if agent_row else None,
                    assigned_team_id=team_row["id"] if team_row else None,
                    parent_id=parent_row["id"] if parent_row else None,
                    budget_usd=budget_usd,
                    priority=priority,
                    max_attempts=max_attempts,
                    keep_workspace=keep_workspace,
                    created_by=actor,
                )
                .returning(tasks)
            )
        )
        .mappings()
        .one()
    )
    await audit.record(
        conn,
        actor=actor,
        action="task.created",
        subject_type="task",
        subject_id=row["id"],
        company_id=comp["id"],
        payload={
            "title": title,
            "agent": agent_row["name"] if agent_row else None,
            "team": team_row["name"] if team_row else None,
        },
    )
    await conn.execute(NOTIFY_SQL, {"channel": TASKS_CHANNEL, "payload": str(comp["id"])})
    return dict(row)


async def list_tasks(
    conn: AsyncConnection,
    *,
    company: str,
    status: list[str] | None = None,
    agent: str | None = None,
    team: str | None = None,
    parent: str | None = None,
    limit: int = 200,
    page: bool = False,
    before: Key | None = None,
) -> list[dict[str, Any]]:
    """Filters: status (several), agent, team, parent (``null`` = top-level only). Oldest first; with
    ``page``, a keyset page newest first after ``before`` with one extra row (``pagination``)."""
    comp = await get_company(conn, company)
    query = (
        select(tasks, teams.c.name.label("team_name"))
        .select_from(tasks.outerjoin(teams, teams.c.id == tasks.c.assigned_team_id))
        .where(tasks.c.company_id == comp["id"])
    )
    if page:
        query = newest_first(query, tasks.c.created_at, tasks.c.id, before, limit)
    else:
        query = query.order_by(tasks.c.created_at).limit(limit)
    if status:
        unknown = [s for s in status if s not in TASK_STATUSES_ALL]
        if unknown:
            raise InvalidInput(f"unknown status {', '.join(unknown)}", field="status")
        query = query.where(tasks.c.status.in_(status))
    if agent:
        query = query.where(tasks.c.assigned_agent_id == (await get_agent(conn, comp["id"], agent))["id"])
    if team:
        query = query.where(tasks.c.assigned_team_id == (await get_team(conn, comp["id"], team))["id"])
    if parent == "null":
        query = query.where(tasks.c.parent_id.is_(None))
    elif parent:
        query = query.where(tasks.c.parent_id == await resolve_task_id(conn, parent))
    return [dict(r) for r in (await conn.execute(query)).mappings()]


async def retry_after(conn: AsyncConnection, task: dict[str, Any]) -> datetime | None:
    """When a queued task backing off after a failed attempt may run again (None: it may run now)."""
    if task["status"] != "queued" or task["run_after"] is None:
        return None
    now: datetime = (await conn.execute(select(func.now()))).scalar_one()
    run_after: datetime = task["run_after"]
    return run_after if run_after > now else None


async def task_runs(conn: AsyncConnection, task_id: UUID) -> list[dict[str, Any]]:
    query = select(runs).where(runs.c.task_id == task_id).order_by(runs.c.attempt)
    return [dict(r) for r in (await conn.execute(query)).mappings()]


async def _move(
    conn: AsyncConnection,
    ref: str,
    target: str,
    *,
    action: str,
    actor: str,
    values: dict[str, Any] | None = None,
    payload: dict[str, Any] | None = None,
) -> dict[str, Any]:
    task = await _lock_for_move(conn, await resolve_task_id(conn, ref))
    check_transition(task["status"], target, task_id=task["id"])
    row = (
        (
            await conn.execute(
                update(tasks)
                .where(tasks.c.id == task["id"], tasks.c.status == task["status"])
                .values(status=target, updated_at=func.now(), **(values or {}))
                .returning(tasks)
            )
        )
        .mappings()
        .one()
    )
    await audit.record(
        conn,
        actor=actor,
        action=action,
        subject_type="task",
        subject_id=task["id"],
        company_id=task["company_id"],
        payload={"from": task["status"], "to": target, **(payload or {})},
    )
    if task["status"] in ACTIVE:
        await _end_active_attempt(conn, task, exit_reason="cancelled", run_status="cancelled")
    return dict(row)


async def _lock_for_move(conn: AsyncConnection, task_id: UUID) -> dict[str, Any]:
    """Lock the task's lease (if any), then the task: the one lock order (``leases``' docstring).

    ``FOR NO KEY UPDATE`` on the task, not ``FOR UPDATE``: the moves never change its key, and the
    weaker lock does not block the key-share locks that inserting a cost or a checkpoint takes on it.
    One window remains: a claim that commits between the two statements gives the task a lease this
    transaction did not lock; it is locked after the task, and should its new holder be finishing at
    that very moment, PostgreSQL breaks the deadlock and the caller's boundary retries the move.
    """
    locked = (
        await conn.execute(select(leases.c.task_id).where(leases.c.task_id == task_id).with_for_update())
    ).all()
    row = (
        (await conn.execute(select(tasks).where(tasks.c.id == task_id).with_for_update(key_share=True)))
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound(f"no task {task_id!s}", task=str(task_id))
    if row["status"] in ACTIVE and not locked:
        await conn.execute(select(leases.c.task_id).where(leases.c.task_id == task_id).with_for_update())
    return dict(row)


async def _end_active_attempt(
    conn: AsyncConnection, task: dict[str, Any], *, exit_reason: str, run_status: str
) -> None:
    """Drop the lease and end the run of the attempt in flight: its holder's next write is stale."""
    run_ids = (
        (await conn.execute(delete(leases).where(leases.c.task_id == task["id"]).returning(leases.c.run_id)))
        .scalars()
        .all()
    )
    if run_ids:
        await conn.execute(
            update(runs)
            .where(runs.c.id.in_(run_ids), runs.c.status == "running")
            .values(status=run_status, exit_reason=exit_reason, ended_at=func.now())
        )


async def cancel_task(conn: AsyncConnection, ref: str, *, actor: str = audit.LOCAL_USER) -> dict[str, Any]:
    return await _move(
        conn, ref, "cancelled", action="task.cancelled", actor=actor, values={"finished_at": func.now()}
    )


async def approve_task(conn: AsyncConnection, ref: str, *, actor: str = audit.LOCAL_USER) -> dict[str, Any]:
    return await _move(
        conn, ref, "done", action="task.approved", actor=actor, values={"finished_at": func.now()}
    )


async def reject_task(
    conn: AsyncConnection, ref: str, *, feedback: str, actor: str = audit.LOCAL_USER
) -> dict[str, Any]:
    """Send a reviewed task back to the queue with the reviewer's feedback; the next attempt gets a new
    fencing token."""
    if not feedback.strip():
        raise InvalidInput("say what to change (--feedback)", field="feedback")
    row = await _move(
        conn,
        ref,
        "queued",
        action="task.rejected",
        actor=actor,
        values={"feedback": feedback, "output": None, "run_after": None},
        payload={"feedback": feedback},
    )
    await conn.execute(NOTIFY_SQL, {"channel": TASKS_CHANNEL, "payload": str(row["company_id"])})
    return row


async def requeue_task(conn: AsyncConnection, ref: str, *, actor: str = audit.LOCAL_USER) -> dict[str, Any]:
    """A human takes a handed-off or blocked task back to the queue."""
    row = await _move(conn, ref, "queued", action="task.requeued", actor=actor, values={"run_after": None})
    await conn.execute(NOTIFY_SQL, {"channel": TASKS_CHANNEL, "payload": str(row["company_id"])})
    return row


# What a person may change on a task nobody is working on (a running attempt keeps the brief it got).
EDITABLE = ("title", "body", "priority")
EDITABLE_STATUSES = ("queued", "blocked", "handoff")


async def update_task(
    conn: AsyncConnection, ref: str, changes: dict[str, Any], *, actor: str = audit.LOCAL_USER
) -> dict[str, Any]:
    """Change title, body or priority of a queued, blocked or handed-off task; ``Conflict`` otherwise."""
    task = await _lock_for_move(conn, await resolve_task_id(conn, ref))
    values = {k: v for k, v in changes.items() if k in EDITABLE and v is not None}
    if "title" in values:
        values["title"] = str(values["title"]).strip()
        if not values["title"] or len(values["title"]) > 500:
            raise InvalidInput("a title is one sentence (1 to 500 characters)", field="title")
    if not values:
        return task
    if task["status"] not in EDITABLE_STATUSES:
        raise Conflict(
            f"task is {task['status']}: only a queued, blocked or handed-off task can be edited",
            task=str(task["id"]),
        )
    row = (
        (
            await conn.execute(
                update(tasks)
                .where(tasks.c.id == task["id"])
                .values(**values, updated_at=func.now())
                .returning(tasks)
            )
        )
        .mappings()
        .one()
    )
    await audit.record(
        conn,
        actor=actor,
        action="task.updated",
        subject_type="task",
        subject_id=task["id"],
        company_id=task["company_id"],
        payload={"fields": sorted(values)},
    )
    return dict(row)


# A task may change hands only while no attempt holds it: an attempt in flight keeps its lease, and
# the work under review or finished is the assignee's record.
ASSIGNABLE_STATUSES = ("queued", "blocked", "handoff")


async def assign_task(
    conn: AsyncConnection,
    ref: str,
    *,
    agent: str | None = None,
    team: str | None = None,
    actor: str = audit.LOCAL_USER,
) -> dict[str, Any]:
    """Assign (or reassign) a queued, blocked or handed-off task to an agent of its company, to a team,
    or with neither to anyone in the company. The status stays (requeue a blocked or handed-off task to
    have it run). A task an attempt holds (assigned, running) is refused with ``Conflict`` and its lease
    is left alone: cancel it, or wait for the attempt to end; so are a task in review and a finished
    one. A retired agent is ``InvalidInput``; an agent or team of another company is ``NotFound``."""
    if agent and team:
        raise InvalidInput("assign a task to an agent or to a team, not both", field="agent")
    task = await _lock_for_move(conn, await resolve_task_id(conn, ref))
    agent_row = await get_agent(conn, task["company_id"], agent) if agent else None
    if agent_row is not None and agent_row["status"] == "retired":
        raise InvalidInput(f"agent {agent_row['name']} is retired", field="agent")
    team_row = await get_team(conn, task["company_id"], team) if team else None
    if task["status"] not in ASSIGNABLE_STATUSES:
        raise Conflict(
            f"task is {task['status']}: only a queued, blocked or handed-off task can be assigned",
            task=str(task["id"]),
        )
    agent_id = agent_row["id"] if agent_row else None
    team_id = team_row["id"] if team_row else None
    if (task["assigned_agent_id"], task["assigned_team_id"]) == (agent_id, team_id):
        return task
    row = (
        (
            await conn.execute(
                update(tasks)
                .where(tasks.c.id == task["id"], tasks.c.status == task["status"])
                .values(assigned_agent_id=agent_id, assigned_team_id=team_id, updated_at=func.now())
                .returning(tasks)
            )
        )
        .mappings()
        .one()
    )
    await audit.record(
        conn,
        actor=actor,
        action="task.assigned",
        subject_type="task",
        subject_id=task["id"],
        company_id=task["company_id"],
        payload={
            "agent": agent_row["name"] if agent_row else None,
            "team": team_row["name"] if team_row else None,
            "fromAgentId": str(task["assigned_agent_id"]) if task["assigned_agent_id"] else None,
            "fromTeamId": str(task["assigned_team_id"]) if task["assigned_team_id"] else None,
        },
    )
    if row["status"] == "queued":
        await conn.execute(NOTIFY_SQL, {"channel": TASKS_CHANNEL, "payload": str(row["company_id"])})
    return dict(row)
