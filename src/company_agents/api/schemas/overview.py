"""The company overview: what the dashboard's home of a company, ``watch`` and
``GET /v1/companies/{company}/overview`` show at a glance (``company_agents.overview``).

Every list here is bounded (the newest few); counts are exact. Money is a string, times are UTC.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from company_agents.api.schemas.common import Money, Public, UtcTime


class OverviewCompany(Public):
    id: UUID
    slug: str
    name: str
    status: str
    time_zone: str
    fiscal_period: str


class TaskCounts(Public):
    """Tasks by state (every state, zeros included), and what finished today in the company's zone."""

    by_state: dict[str, int]
    total: int
    # assigned, running, review, handoff and blocked: started and not finished.
    in_flight: int
    done_today: int
    failed_today: int


class TaskInFlight(Public):
    id: UUID
    title: str
    status: str
    priority: int
    attempt: int
    blocked_reason: str | None
    assigned_agent_id: UUID | None
    assigned_agent_name: str | None
    assigned_team_id: UUID | None
    created_at: UtcTime
    updated_at: UtcTime


class RunningTask(Public):
    """A task an agent holds a lease on, with the run's latest progress report, if any."""

    task_id: UUID
    title: str
    status: str
    run_id: UUID
    started_at: UtcTime
    step: str | None
    message: str | None
    percent: float | None
    reported_at: UtcTime | None


class AgentOverview(Public):
    id: UUID
    name: str
    role: str
    status: str
    # ok, degraded (its last finished run failed), failing (its last three all failed), paused.
    health: str
    team_id: UUID | None
    running_tasks: list[RunningTask]


class TeamOverview(Public):
    id: UUID
    name: str
    agent_count: int
    tasks_in_flight: int
    agents: list[AgentOverview]


class InboxCounts(Public):
    approvals: int
    handoffs: int
    questions: int
    total: int


class CostOverview(Public):
    """Spend from the daily counters: today, the fiscal period so far, against the company's cap."""

    today: Money
    this_period: Money
    period_start: UtcTime
    period_end: UtcTime | None
    budget: Money
    reserved: Money
    remaining: Money
    percent_used: str | None
    # soft, hard or catastrophic once reached (budgets.levels), else null.
    level: str | None
    # The period's run rate carried to its end (null for a rolling period, which has no end).
    forecast_end_of_period: Money | None
    run_rate_per_day: Money
    # Entries whose model has no price (this period), still unpriced: spend the figures leave out.
    unpriced_entries: int


class AgentHealth(Public):
    """Agents that are not retired, by what they are doing and how their recent runs went."""

    total: int
    running: int
    idle: int
    paused: int
    degraded: int
    failing: int


class ActivityEvent(Public):
    id: int
    at: UtcTime
    actor: str
    action: str
    category: str
    subject_type: str
    subject_id: str
    payload: dict[str, Any]


class OverviewPublic(Public):
    company: OverviewCompany
    generated_at: UtcTime
    tasks: TaskCounts
    tasks_in_flight: list[TaskInFlight]
    teams: list[TeamOverview]
    agents_without_team: list[AgentOverview]
    inbox: InboxCounts
    cost: CostOverview
    health: AgentHealth
    recent_activity: list[ActivityEvent]
