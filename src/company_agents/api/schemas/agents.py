"""Agents as the API and ``agent … --json`` show them (never the identity token's hash)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from pydantic import Field

from company_agents.api.schemas.common import MONEY_PATTERN, Body, Money, Public, UtcTime

_USD = MONEY_PATTERN.replace("-?", "")


class Agent(Public):
    id: UUID
    company_id: UUID
    team_id: UUID | None
    name: str
    role: str
    adapter: str
    # As stored: its keys (environment variable names, adapter options) are data, not ours to rename.
    adapter_config: dict[str, Any]
    reports_to: UUID | None
    status: str
    budget_usd: Money | None
    task_budget_usd: Money | None
    max_concurrent_tasks: int
    model: str | None
    approval_policy: Any
    created_at: UtcTime
    retired_at: UtcTime | None
    team: str | None = Field(default=None, validation_alias="team_name")


class AgentWithToken(Agent):
    """A hired agent or a rotated token: the identity token appears here once."""

    token: str


class AgentHire(Body):
    name: str = Field(min_length=1, max_length=100, pattern=r"\S")
    role: str = Field(min_length=1, max_length=500, pattern=r"\S")
    adapter: str | None = Field(default=None, min_length=1, max_length=100)
    team: str | None = Field(default=None, min_length=1, max_length=200)
    reports_to: str | None = Field(default=None, min_length=1, max_length=100)
    budget_usd: str | None = Field(default=None, pattern=_USD)
    task_budget_usd: str | None = Field(default=None, pattern=_USD)
    max_concurrent_tasks: int = Field(default=1, ge=1, le=1000)
    model: str | None = Field(default=None, min_length=1, max_length=200)
    approvals: str | None = Field(default=None, max_length=1000)


class AgentPatch(Body):
    """The fields to change; a field left out stays. ``team``, the budgets, ``model`` and ``approvals``
    take null (no team, no budget, no model, the default approval policy)."""

    name: str | None = Field(default=None, min_length=1, max_length=100, pattern=r"\S")
    role: str | None = Field(default=None, min_length=1, max_length=500, pattern=r"\S")
    team: str | None = Field(default=None, min_length=1, max_length=200)
    budget_usd: str | None = Field(default=None, pattern=_USD)
    task_budget_usd: str | None = Field(default=None, pattern=_USD)
    max_concurrent_tasks: int | None = Field(default=None, ge=1, le=1000)
    model: str | None = Field(default=None, min_length=1, max_length=200)
    approvals: str | None = Field(default=None, max_length=1000)
