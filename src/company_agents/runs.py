"""Runs as the board sees them: list, show, checkpoints (the log path is ``workspaces.run_log_path``)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy import Select, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from company_agents import ids
from company_agents.companies import get_company
from company_agents.db.schema import agents, companies, run_checkpoints, runs, tasks
from company_agents.db.schema.runs import RUN_STATUSES
from company_agents.errors import InvalidInput, NotFound
from company_agents.ids import resolve_id
from company_agents.pagination import Key, newest_first
from company_agents.tasks import resolve_task_id


async def resolve_run_id(conn: AsyncConnection, ref: str | UUID) -> UUID:
    """A run id (a UUID, optionally written ``run_<uuid>``, or a unique prefix of one)."""
    return await resolve_id(conn, ids.RUN, ref)


def _runs_query() -> Select[Any]:
    return (
        select(
            runs,
            tasks.c.title.label("task_title"),
            agents.c.name.label("agent_name"),
            companies.c.slug.label("company_slug"),
        )
        .join(tasks, tasks.c.id == runs.c.task_id)
        .join(agents, agents.c.id == runs.c.agent_id)
        .join(companies, companies.c.id == runs.c.company_id)
    )


async def list_runs(
    conn: AsyncConnection,
    *,
    company: str | None = None,
    task: str | None = None,
    agent_id: UUID | None = None,
    status: list[str] | None = None,
    limit: int = 200,
    page: bool = False,
    before: Key | None = None,
) -> list[dict[str, Any]]:
    """Runs, newest first, with their task title, agent name and company slug; with ``page``, a keyset
    page after ``before`` with one extra row (``pagination``)."""
    query = _runs_query()
    if company is not None:
        query = query.where(runs.c.company_id == (await get_company(conn, company))["id"])
    if task is not None:
        query = query.where(runs.c.task_id == await resolve_task_id(conn, task))
    if agent_id is not None:
        query = query.where(runs.c.agent_id == agent_id)
    if status:
        unknown = [s for s in status if s not in RUN_STATUSES]
        if unknown:
            raise InvalidInput(
                f"unknown status {', '.join(unknown)}; use {', '.join(RUN_STATUSES)}", field="status"
            )
        query = query.where(runs.c.status.in_(status))
    if limit < 1:
        raise InvalidInput("limit must be at least 1", field="limit")
    if page:
        query = newest_first(query, runs.c.started_at, runs.c.id, before, limit)
    else:
        query = query.order_by(runs.c.started_at.desc(), runs.c.id).limit(limit)
    return [dict(r) for r in (await conn.execute(query)).mappings()]


async def get_run(conn: AsyncConnection, ref: str | UUID) -> dict[str, Any]:
    """One run with its task title, agent name and company slug; raises ``NotFound``."""
    run_id = await resolve_run_id(conn, ref)
    row = (await conn.execute(_runs_query().where(runs.c.id == run_id))).mappings().first()
    if row is None:
        raise NotFound(f"no run {ref!s}", run=str(ref))
    return dict(row)


async def list_checkpoints(conn: AsyncConnection, run_id: UUID) -> list[dict[str, Any]]:
    """The run's checkpoints in the order they were written."""
    query = select(run_checkpoints).where(run_checkpoints.c.run_id == run_id).order_by(run_checkpoints.c.id)
    return [dict(r) for r in (await conn.execute(query)).mappings()]


async def run_has_ended(conn: AsyncConnection, run_id: UUID) -> bool:
    """True once the run is no longer ``running`` (or does not exist)."""
    status = (await conn.execute(select(runs.c.status).where(runs.c.id == run_id))).scalar_one_or_none()
    return status != "running"


# The run of the task before this one (the highest fencing token below it): whether its CLI session
# is one to resume (docs/adapters.md §Sessions).
PREVIOUS_RUN_SQL = text(
    """
    SELECT r.id, r.agent_id, r.status, r.exit_reason, r.cli_session FROM runs r
    WHERE r.task_id = :task_id AND r.id <> :run_id
    ORDER BY r.fencing_token DESC, r.started_at DESC
    LIMIT 1
    """
)


async def session_to_resume(
    conn: AsyncConnection, *, task_id: UUID, run_id: UUID, agent_id: UUID, feedback: str | None
) -> tuple[str, str] | None:
    """The CLI session this run of the task should resume, and why (``approval``: the previous run
    ended waiting on an approval; ``feedback``: it finished and the reviewer rejected it with
    feedback); None: a fresh session (no session recorded, another agent's, or it ended otherwise)."""
    row = (await conn.execute(PREVIOUS_RUN_SQL, {"task_id": task_id, "run_id": run_id})).mappings().first()
    if row is None or not row["cli_session"] or row["agent_id"] != agent_id:
        return None
    if row["exit_reason"] == "approval":
        return str(row["cli_session"]), "approval"
    if row["status"] == "succeeded" and (feedback or "").strip():
        return str(row["cli_session"]), "feedback"
    return None


async def record_cli_session(conn: AsyncConnection, run_id: UUID, session_id: str) -> None:
    """The agent CLI's session id of a run (its first, or a new one it switched to)."""
    await conn.execute(
        update(runs)
        .where(runs.c.id == run_id, runs.c.cli_session.is_distinct_from(session_id))
        .values(cli_session=session_id)
    )
