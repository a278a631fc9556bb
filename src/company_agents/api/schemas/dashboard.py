"""The dashboard read models (``/v1/companies/{company}/dashboard/…``): what each dashboard page
shows, from the same domain reads, cached a few seconds per company (``api.read_cache``)."""

from __future__ import annotations

from typing import Any

from company_agents.api.schemas.approvals import Approval
from company_agents.api.schemas.common import Public, UtcTime
from company_agents.api.schemas.overview import (
    ActivityEvent,
    AgentHealth,
    AgentOverview,
    OverviewCompany,
    TeamOverview,
)


class Handoff(Public):
    """A task handed to a human: the reason, and since when it waits."""

    task_id: str
    title: str
    reason: str | None
    agent_id: str | None
    since: str


class DashboardInbox(Public):
    """What waits for a person: pending approvals, handoffs and agents' open questions (200 of each
    at most, oldest first)."""

    generated_at: UtcTime
    approvals: list[Approval]
    handoffs: list[Handoff]
    questions: list[Approval]
    total: int


class DashboardHealth(Public):
    generated_at: UtcTime
    health: AgentHealth
    # Every agent not retired, with its health and the tasks it holds.
    agents: list[AgentOverview]


class DashboardCost(Public):
    """The company's roll-up this fiscal period and today (as ``GET …/costs`` answers it)."""

    generated_at: UtcTime
    period: dict[str, Any]
    today: dict[str, Any]


class DashboardOrg(Public):
    generated_at: UtcTime
    company: OverviewCompany
    teams: list[TeamOverview]
    agents_without_team: list[AgentOverview]


class DashboardActivity(Public):
    """The newest activity (a bounded list; ``GET …/activity`` searches all of it)."""

    generated_at: UtcTime
    events: list[ActivityEvent]
