"""Approvals: a question from an agent (or from a budget) that a person answers, once.

A decision is a conditional update from ``pending``; answering an expired or already-answered
approval is refused (``approvals/store.py``). An ``asked_question`` is answered by the agent asking again
(a new pending row). At most one pending approval per task and action.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Numeric,
    Table,
    Text,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from company_agents.db.schema.base import created_at, in_list, metadata, updated_at, uuid_pk

APPROVAL_KINDS = ("action", "budget_override")
APPROVAL_STATUSES = (
    "pending",
    "approved",
    "approved_with_edits",
    "denied",
    "expired",
    "asked_question",
)

approvals = Table(
    "approvals",
    metadata,
    uuid_pk(),
    Column("company_id", Uuid, ForeignKey("companies.id", ondelete="RESTRICT"), nullable=False),
    Column("task_id", Uuid, ForeignKey("tasks.id", ondelete="RESTRICT"), nullable=True),
    Column("run_id", Uuid, ForeignKey("runs.id", ondelete="RESTRICT"), nullable=True),
    Column("agent_id", Uuid, ForeignKey("agents.id", ondelete="RESTRICT"), nullable=True),
    Column("kind", Text, nullable=False, server_default="action"),
    # One line: what the agent (or the budget) asks to do.
    Column("action", Text, nullable=False),
    Column("reasoning", Text, nullable=False, server_default=""),
    Column("cost_usd", Numeric(18, 8), nullable=True),
    Column("cost_tokens", BigInteger, nullable=True),
    Column("side_effects", JSONB, nullable=False, server_default="[]"),
    Column("if_denied", Text, nullable=False, server_default=""),
    # For a budget_override: the scope and its cap ({"scope", "scopeId", "capUsd", "spentUsd"}).
    Column("details", JSONB, nullable=False, server_default="{}"),
    Column("status", Text, nullable=False, server_default="pending"),
    Column("edits", JSONB, nullable=True),
    Column("decision_reason", Text, nullable=True),
    # The conversation of an asked_question approval: [{"at", "by", "text"}].
    Column("comments", JSONB, nullable=False, server_default="[]"),
    Column("requested_by", Text, nullable=False),
    Column("decided_by", Text, nullable=True),
    created_at(),
    updated_at(),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("decided_at", DateTime(timezone=True), nullable=True),
    CheckConstraint(in_list("kind", APPROVAL_KINDS), name="kind"),
    CheckConstraint(in_list("status", APPROVAL_STATUSES), name="status"),
    CheckConstraint("length(action) BETWEEN 1 AND 500", name="action_length"),
    CheckConstraint("cost_usd IS NULL OR cost_usd >= 0", name="cost_usd_nonnegative"),
    CheckConstraint("(status = 'approved_with_edits') = (edits IS NOT NULL)", name="edits_with_status"),
)
Index(
    "ix_approvals_one_pending_per_task_action",
    approvals.c.task_id,
    approvals.c.action,
    unique=True,
    postgresql_where=text("status = 'pending'"),
)
Index("ix_approvals_company_id_status", approvals.c.company_id, approvals.c.status)
# The expiry sweep's read.
Index("ix_approvals_pending_expires_at", approvals.c.expires_at, postgresql_where=text("status = 'pending'"))

RULE_EFFECTS = ("auto_approve", "auto_deny")

# A company's blanket rules: a request matching every criterion given is answered at once, a deny rule
# before an approve rule (approvals/policy.py).
approval_rules = Table(
    "approval_rules",
    metadata,
    uuid_pk(),
    Column("company_id", Uuid, ForeignKey("companies.id", ondelete="RESTRICT"), nullable=False),
    Column("effect", Text, nullable=False),
    # A shell-style pattern over the request's action (fnmatch, case-insensitive).
    Column("action_pattern", Text, nullable=True),
    # One of the policy categories the request declares (production_writes, external_send, …).
    Column("category", Text, nullable=True),
    # Matches requests costing at most this much.
    Column("max_usd", Numeric(18, 8), nullable=True),
    Column("agent_id", Uuid, ForeignKey("agents.id", ondelete="RESTRICT"), nullable=True),
    Column("reason", Text, nullable=False, server_default=""),
    Column("created_by", Text, nullable=False),
    created_at(),
    CheckConstraint(in_list("effect", RULE_EFFECTS), name="effect"),
    CheckConstraint("max_usd IS NULL OR max_usd >= 0", name="max_usd_nonnegative"),
)
Index("ix_approval_rules_company_id", approval_rules.c.company_id)
