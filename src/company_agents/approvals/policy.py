"""Which requests need a person: the agent's approval policy (set at hire) and the company's rules.

A request may declare categories (``production_writes``, ``external_send``, …). It goes to a person when
its cost is over the agent's ``spend_over`` threshold, when it declares a category the agent's policy
names, when the policy says ``all``, or when it declares no category at all (an agent asking without
saying why is escalating on its own, and a person answers that). A request whose declared categories
the policy does not name and whose cost is within the threshold is approved by the policy at once.

Company rules come first: a matching ``auto_deny`` rule denies, then a matching ``auto_approve`` rule
approves, whatever the agent's policy says. A rule matches when every criterion it sets matches.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from uuid import UUID

from company_agents.costs.amounts import parse_usd
from company_agents.errors import InvalidInput

# The categories of the product's approval policies (docs/agent-protocol.md, "Approvals").
CATEGORIES = (
    "production_writes",
    "external_send",
    "resource_changes",
    "safety_bypass",
    "self_escalation",
)
ALL = "all"
DEFAULT_SPEND_OVER = Decimal("10")


@dataclass(frozen=True)
class Policy:
    """One agent's approval policy. ``spend_over_usd`` None: no spend threshold."""

    spend_over_usd: Decimal | None = DEFAULT_SPEND_OVER
    categories: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, text: str | None) -> Policy:
        """``"spend_over:10,production_writes,external_send"``. Spend over $10 stays unless the text
        sets ``spend_over:N`` or says ``none`` (no spend threshold); empty or None: the default."""
        if text is None or not text.strip():
            return cls()
        spend: Decimal | None = DEFAULT_SPEND_OVER
        categories: set[str] = set()
        for raw in text.split(","):
            item = raw.strip().lower()
            if not item:
                continue
            if item == "none":
                spend = None
                continue
            name, sep, value = item.partition(":")
            if name == "spend_over":
                if not sep:
                    raise InvalidInput("spend_over takes an amount: spend_over:10", field="approvals")
                spend = parse_usd(value, field="approvals")
            elif sep:
                raise InvalidInput(f"{name} takes no value", field="approvals")
            elif item == ALL or item in CATEGORIES:
                categories.add(item)
            else:
                known = ", ".join(("spend_over:N", ALL, *CATEGORIES))
                raise InvalidInput(f"unknown approval category {item!r} (known: {known})", field="approvals")
        return cls(spend_over_usd=spend, categories=frozenset(categories))

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Policy:
        if not data:
            return cls()
        spend = data.get("spendOverUsd")
        return cls(
            spend_over_usd=Decimal(str(spend)) if spend is not None else None,
            categories=frozenset(str(c) for c in data.get("categories") or ()),
        )

    def to_json(self) -> dict[str, Any]:
        spend = str(self.spend_over_usd) if self.spend_over_usd is not None else None
        return {"spendOverUsd": spend, "categories": sorted(self.categories)}

    def describe(self) -> str:
        parts = [f"spend_over:{self.spend_over_usd}"] if self.spend_over_usd is not None else []
        return ",".join([*parts, *sorted(self.categories)]) or "none"

    def needs_person(self, *, cost_usd: Decimal | None, categories: Iterable[str]) -> str | None:
        """Why a person must answer (None: the policy approves it)."""
        declared = set(categories)
        if ALL in self.categories:
            return "the agent's policy sends every request to a person"
        if self.spend_over_usd is not None and (cost_usd or Decimal(0)) > self.spend_over_usd:
            return f"spend over ${self.spend_over_usd}"
        named = sorted(declared & self.categories)
        if named:
            return f"the agent's policy names {', '.join(named)}"
        if not declared:
            return "the request declares no category"
        return None


@dataclass(frozen=True)
class Request:
    """What the policy and the rules look at."""

    action: str
    agent_id: UUID | None
    cost_usd: Decimal | None
    categories: frozenset[str]


def rule_matches(rule: Mapping[str, Any], request: Request) -> bool:
    pattern = rule.get("action_pattern")
    if pattern and not fnmatch.fnmatchcase(request.action.lower(), str(pattern).lower()):
        return False
    category = rule.get("category")
    if category and category not in request.categories:
        return False
    max_usd = rule.get("max_usd")
    if max_usd is not None and (request.cost_usd or Decimal(0)) > Decimal(max_usd):
        return False
    agent_id = rule.get("agent_id")
    return not (agent_id is not None and agent_id != request.agent_id)


@dataclass(frozen=True)
class Verdict:
    """``pending`` (a person answers) or an answer given at once, by whom and why."""

    status: str  # pending | approved | denied
    decided_by: str | None
    reason: str


def verdict(policy: Policy, rules: Iterable[Mapping[str, Any]], request: Request) -> Verdict:
    ordered = list(rules)
    for effect, status in (("auto_deny", "denied"), ("auto_approve", "approved")):
        for rule in ordered:
            if rule["effect"] == effect and rule_matches(rule, request):
                why = rule.get("reason") or f"company rule {effect}"
                return Verdict(status, f"rule:{rule['id']}", why)
    why = policy.needs_person(cost_usd=request.cost_usd, categories=request.categories)
    if why is None:
        return Verdict("approved", "policy:agent", "not required by the agent's approval policy")
    return Verdict("pending", None, why)
