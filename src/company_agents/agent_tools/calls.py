"""The agent tools' arguments, one Pydantic model per tool, shared by the HTTP endpoint and the MCP server.

The field descriptions are read by a model (they become the MCP tools' JSON schemas), so they say what
to put in a field and why, in the agent's terms. Names are camelCase on the wire (``scopeId``), as
everywhere in our JSON; the snake_case spelling is accepted too. Unknown fields are refused, so a typo
is an error rather than a silently dropped value.

None of these carries the fencing token: over MCP the lease token implies it, and the HTTP endpoint
adds it (``api/tools.py``).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from company_agents.approvals import policy as approval_policy


class Call(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class RenewLease(Call):
    """Extend this run's lease. The orchestrator renews it while your process runs; call this only if
    you run for a long time without any other tool call."""


class ReportProgress(Call):
    """Record a checkpoint of your work on the task (shown to people watching the run)."""

    message: str = Field(
        min_length=1, max_length=10_000, description="What you did or found since the last report."
    )
    step: str | None = Field(
        default=None, max_length=200, description="A short name for the current step, e.g. 'tests'."
    )
    percent: float | None = Field(
        default=None, ge=0, le=100, description="How far along the task is, 0 to 100, if you can tell."
    )
    data: dict[str, Any] | None = Field(
        default=None, description="Any structured details worth keeping with the checkpoint."
    )


class MarkComplete(Call):
    """Finish the task with its result. The task goes to review; stop working after this call."""

    output: Any = Field(
        description="The task's result: text, or a JSON object when the task asks for structured output."
    )
    reasoning: str = Field(
        default="", max_length=20_000, description="A short summary of what you did and why (optional)."
    )


class MarkFailed(Call):
    """Give up on this attempt. The task is retried later or marked failed; stop working after this."""

    reason: str = Field(
        min_length=1, max_length=10_000, description="Why the task could not be done, for the next attempt."
    )


class RequestHandoff(Call):
    """Hand the task to a person (you are stuck, or it needs a human decision); stop working after this."""

    reason: str = Field(min_length=1, max_length=10_000, description="What the person has to do or decide.")


class ApprovalCost(BaseModel):
    model_config = ConfigDict(extra="forbid")

    usd: Decimal | None = Field(
        default=None, ge=0, max_digits=18, decimal_places=8, description="Expected cost in US dollars."
    )
    tokens: int | None = Field(default=None, ge=0, description="Expected model tokens.")


class RequestApproval(Call):
    """Ask a person before an action your approval policy names (docs/agent-protocol.md, "Approvals").
    Waits a while for the answer; act only on ``status`` and ``next`` in the result."""

    action: str = Field(min_length=1, max_length=500, description="The action, in one line.")
    reasoning: str = Field(default="", max_length=20_000, description="Why it is needed.")
    cost: ApprovalCost | None = Field(default=None, description="What the action will cost, if known.")
    side_effects: list[str] = Field(
        default_factory=list, max_length=50, description="What the action changes outside the workspace."
    )
    if_denied: str = Field(default="", max_length=10_000, description="What you will do if it is denied.")
    categories: list[str] = Field(
        default_factory=list,
        max_length=10,
        description="Which kinds of action this is: " + ", ".join(approval_policy.CATEGORIES) + ".",
    )
    # How long to wait for the answer here; at most (and by default) approval_wait_seconds.
    wait_seconds: float | None = Field(
        default=None, ge=0, description="How long to wait for the answer in this call (capped)."
    )

    @field_validator("action")
    @classmethod
    def _one_line(cls, value: str) -> str:
        if "\n" in value or "\r" in value or not value.strip():
            raise ValueError("one line, not empty")
        return value.strip()

    @field_validator("categories")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        unknown = [c for c in value if c not in approval_policy.CATEGORIES]
        if unknown:
            raise ValueError(f"unknown {unknown}; known: {', '.join(approval_policy.CATEGORIES)}")
        return value


_SCOPE = "One of company, team, agent, task."
_SCOPE_ID = "Which company/team/agent/task; leave it out for your own (your run's task for 'task')."


class MemoryRead(Call):
    """Read shared memory in one of your scopes: the latest entry per topic, or a topic's history."""

    scope: str = Field(min_length=1, max_length=20, description=_SCOPE)
    scope_id: UUID | None = Field(default=None, description=_SCOPE_ID)
    topic: str | None = Field(default=None, max_length=200, description="Only this topic.")
    history: bool = Field(default=False, description="Every entry, oldest first, not only the latest.")


class MemoryWrite(Call):
    """Add an entry to shared memory in one of your scopes (entries are appended, never overwritten)."""

    scope: str = Field(min_length=1, max_length=20, description=_SCOPE)
    scope_id: UUID | None = Field(default=None, description=_SCOPE_ID)
    topic: str = Field(min_length=1, max_length=200, description="A short key, e.g. 'conventions'.")
    body: str = Field(min_length=1, max_length=100_000, description="What to remember.")


class CreateSubtask(Call):
    """Create a child task of your task, for your own team or for a named agent of your company. Its
    budget comes out of what your task has left."""

    title: str = Field(min_length=1, max_length=500, description="One sentence saying what is to be done.")
    body: str = Field(default="", max_length=100_000, description="The details the assignee needs.")
    agent: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="The agent (name) to do it; leave it out to give it to your own team.",
    )
    budget_usd: Decimal | None = Field(
        default=None,
        ge=0,
        max_digits=14,
        decimal_places=4,
        description="The child's budget in US dollars, at most what your task has left; "
        "by default all of that.",
    )
    priority: int = Field(default=0, ge=-100, le=100, description="Higher runs first.")


class UploadAsset(Call):
    """Keep a file from your workspace as a company asset (reports, images, builds)."""

    path: str = Field(
        min_length=1,
        max_length=4096,
        description="The file's path relative to your workspace, e.g. 'out/report.pdf'.",
    )


__all__ = [
    "ApprovalCost",
    "Call",
    "CreateSubtask",
    "MarkComplete",
    "MarkFailed",
    "MemoryRead",
    "MemoryWrite",
    "RenewLease",
    "ReportProgress",
    "RequestApproval",
    "RequestHandoff",
    "UploadAsset",
]
