"""Tasks and runs as the API and ``task …/run … --json`` show them."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from pydantic import Field

from company_agents.api.schemas.common import MONEY_PATTERN, Body, Money, Public, UtcTime


class Task(Public):
    id: UUID
    company_id: UUID
    title: str
    body: str
    status: str
    parent_id: UUID | None
    assigned_agent_id: UUID | None
    assigned_team_id: UUID | None
    priority: int
    attempt: int
    max_attempts: int
    releases: int
    run_after: UtcTime | None
    fencing_token: int
    budget_usd: Money | None
    output: Any
    feedback: str | None
    failure_reason: str | None
    created_at: UtcTime
    updated_at: UtcTime
    finished_at: UtcTime | None


class TaskDetail(Task):
    """``task show --json``: the task, when a backing-off retry may start, and its runs."""

    retry_after: UtcTime | None = None


class TaskCreate(Body):
    title: str = Field(min_length=1, max_length=500, pattern=r"\S")
    body: str = Field(default="", max_length=100_000)
    agent: str | None = Field(default=None, min_length=1, max_length=100)
    team: str | None = Field(default=None, min_length=1, max_length=200)
    parent: str | None = Field(default=None, min_length=6, max_length=40)
    budget_usd: str | None = Field(default=None, pattern=MONEY_PATTERN.replace("-?", ""))
    priority: int = Field(default=0, ge=-1000, le=1000)
    max_attempts: int = Field(default=3, ge=1, le=100)


class TaskPatch(Body):
    title: str | None = Field(default=None, min_length=1, max_length=500, pattern=r"\S")
    body: str | None = Field(default=None, max_length=100_000)
    priority: int | None = Field(default=None, ge=-1000, le=1000)


class TaskReject(Body):
    feedback: str = Field(min_length=1, max_length=100_000, pattern=r"\S")


class Run(Public):
    id: UUID
    task_id: UUID
    agent_id: UUID
    attempt: int
    fencing_token: int
    status: str
    exit_reason: str | None
    exit_code: int | None
    error: str | None
    workspace_path: str | None
    started_at: UtcTime
    ended_at: UtcTime | None


class Checkpoint(Public):
    id: int
    run_id: UUID
    fencing_token: int
    # As the agent reported it: its keys are data.
    payload: Any
    created_at: UtcTime


class TaskAssign(Body):
    """Who takes the task: an agent (name or id) or a team, not both; neither: anyone in the company."""

    agent: str | None = Field(default=None, min_length=1, max_length=100)
    team: str | None = Field(default=None, min_length=1, max_length=200)


class TaskComment(Public):
    """A comment in a task's thread, as the API and ``task comment(s) --json`` show it."""

    id: UUID
    company_id: UUID
    task_id: UUID
    author: str
    body: str
    created_at: UtcTime


class TaskCommentCreate(Body):
    body: str = Field(min_length=1, max_length=100_000, pattern=r"\S")
