"""Approvals as the API, the agent tool and ``approval … --json`` show them (``approvals.store.to_public``).

Times are the store's ISO strings, so the three can never disagree; money is a string.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from company_agents.api.schemas.common import Body, Public


class ApprovalCost(Public):
    usd: str | None
    tokens: int | None


class Approval(Public):
    id: str
    company_id: str
    task_id: str | None
    run_id: str | None
    agent_id: str | None
    kind: str
    status: str
    action: str
    reasoning: str | None
    cost: ApprovalCost
    side_effects: list[Any]
    if_denied: str | None
    details: dict[str, Any]
    edits: Any
    decision_reason: str | None
    comments: list[Any]
    requested_by: str | None
    decided_by: str | None
    requested_at: str | None
    expires_at: str | None
    decided_at: str | None


class ApprovalApprove(Body):
    # Changes the agent must apply; given, the decision is "approved with edits".
    edits: dict[str, Any] | None = Field(default=None, min_length=1)
    reason: str | None = Field(default=None, max_length=10_000)


class ApprovalDeny(Body):
    reason: str = Field(min_length=1, max_length=10_000, pattern=r"\S")
