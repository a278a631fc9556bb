"""Approval policies and company rules: which requests need a person."""

from __future__ import annotations

from decimal import Decimal
from uuid import uuid4

import pytest

from company_agents.approvals.policy import Policy, Request, verdict
from company_agents.errors import InvalidInput


def _req(cost: str | None = None, *categories: str, action: str = "Send the report") -> Request:
    return Request(
        action=action,
        agent_id=None,
        cost_usd=Decimal(cost) if cost is not None else None,
        categories=frozenset(categories),
    )


def test_parsing_keeps_the_default_threshold_unless_told() -> None:
    assert Policy.parse(None) == Policy.parse("") == Policy(Decimal(10), frozenset())
    assert Policy.parse("production_writes").spend_over_usd == Decimal(10)
    assert Policy.parse("spend_over:2.5, External_Send") == Policy(
        Decimal("2.5"), frozenset({"external_send"})
    )
    assert Policy.parse("none").spend_over_usd is None
    policy = Policy.parse("spend_over:10,production_writes,external_send")
    assert Policy.from_json(policy.to_json()) == policy
    assert policy.describe() == "spend_over:10,external_send,production_writes"


@pytest.mark.parametrize("text", ["wishes", "spend_over", "spend_over:-1", "spend_over:ten", "all:1"])
def test_bad_policies_are_refused(text: str) -> None:
    with pytest.raises(InvalidInput):
        Policy.parse(text)


def test_who_answers_by_the_agent_policy() -> None:
    policy = Policy.parse("spend_over:10,production_writes")
    assert verdict(policy, [], _req("5", "external_send")).status == "approved"
    assert verdict(policy, [], _req("10", "external_send")).status == "approved"  # over, not at
    assert verdict(policy, [], _req("10.01", "external_send")).status == "pending"
    assert verdict(policy, [], _req("0", "production_writes")).status == "pending"
    assert verdict(policy, [], _req("0")).status == "pending"  # no category: a person answers
    assert verdict(Policy.parse("all"), [], _req("0", "external_send")).status == "pending"


def test_company_rules_come_first_deny_before_approve() -> None:
    policy = Policy.parse("all")
    approve = {"id": uuid4(), "effect": "auto_approve", "action_pattern": "send *", "max_usd": Decimal(20)}
    deny = {"id": uuid4(), "effect": "auto_deny", "category": "external_send", "reason": "quiet period"}
    assert verdict(policy, [approve], _req("15")).decided_by == f"rule:{approve['id']}"
    assert verdict(policy, [approve], _req("25")).status == "pending"  # over the rule's max
    assert verdict(policy, [approve], _req("1", action="Book a room")).status == "pending"
    denied = verdict(policy, [approve, deny], _req("1", "external_send"))
    assert (denied.status, denied.reason) == ("denied", "quiet period")
    mine = {"id": uuid4(), "effect": "auto_approve", "agent_id": uuid4()}
    assert verdict(policy, [mine], _req("1")).status == "pending"  # another agent's rule
