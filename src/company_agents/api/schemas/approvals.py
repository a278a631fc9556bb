"""Approvals as the API, the agent tool and ``approval … --json`` show them (``approvals.store.to_public``).

Times are the store's ISO strings, so the three can never disagree; money is a string.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from company_agents.api.schemas.common import MONEY_PATTERN, Body, Public


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


class ApprovalComment(Body):
    # The question for the agent: the approval becomes ``asked_question`` and the agent asks again.
    text: str = Field(min_length=1, max_length=10_000, pattern=r"\S")


class ApprovalRule(Public):
    """A company's blanket rule, as the API and ``approval rule … --json`` show it
    (``approvals.store.rule_public``)."""

    id: str
    company_id: str
    effect: str
    action: str | None
    category: str | None
    max_usd: str | None
    agent_id: str | None
    reason: str
    created_by: str
    created_at: str


class ApprovalRuleCreate(Body):
    """A request matching every criterion given (at least one) is answered at once; deny rules first."""

    effect: Literal["auto_approve", "auto_deny"]
    action: str | None = Field(
        default=None, min_length=1, max_length=200, description="An action, or a glob such as `deploy.*`."
    )
    category: (
        Literal["production_writes", "external_send", "resource_changes", "safety_bypass", "self_escalation"]
        | None
    ) = None
    max_usd: str | None = Field(default=None, pattern=MONEY_PATTERN.replace("-?", ""))
    agent: str | None = Field(default=None, min_length=1, max_length=100, description="Agent name or id.")
    reason: str = Field(default="", max_length=10_000)
