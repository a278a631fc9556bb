"""Budgets beyond the caps stored on their scopes (docs/budgets.md).

A scope's cap is its ``budget_usd`` (companies, teams, agents, tasks) or the default. ``budget_grants``
raises it for one period: a ``topup`` moves the company's reserve into a team (added to the team's cap),
an ``override`` is an approved ``budget_override`` (the cap becomes at least ``usd``). ``day`` is the
company-local day of the grant: it applies in the period that contains that day.

``budget_breaches`` records each breach level a scope reached, once per period and cap: the row is the
"once" of "warn once a period" and of each audit event ``budget.breach.*``.
"""

from __future__ import annotations

from sqlalchemy import (
    CheckConstraint,
    Column,
    Date,
    ForeignKey,
    Index,
    Numeric,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
)

from company_agents.db.schema.base import created_at, in_list, metadata, uuid_pk

BUDGET_SCOPES = ("company", "team", "agent", "workflow", "task")
GRANT_KINDS = ("topup", "override")
BREACH_LEVELS = ("soft", "hard", "catastrophic")

# A workflow's cap per fiscal period of its company (workflows come later: the column and the check now).
workflow_budgets = Table(
    "workflow_budgets",
    metadata,
    Column("workflow_id", Uuid, primary_key=True),
    Column("company_id", Uuid, ForeignKey("companies.id", ondelete="RESTRICT"), nullable=False),
    Column("budget_usd", Numeric(14, 4), nullable=False),
    created_at(),
    CheckConstraint("budget_usd >= 0", name="budget_nonnegative"),
)

budget_grants = Table(
    "budget_grants",
    metadata,
    uuid_pk(),
    Column("company_id", Uuid, ForeignKey("companies.id", ondelete="RESTRICT"), nullable=False),
    Column("scope", Text, nullable=False),
    Column("scope_id", Uuid, nullable=False),
    Column("kind", Text, nullable=False),
    Column("usd", Numeric(14, 4), nullable=False),
    Column("day", Date, nullable=False),
    Column("approval_id", Uuid, ForeignKey("approvals.id", ondelete="RESTRICT"), nullable=True),
    Column("reason", Text, nullable=False, server_default=""),
    Column("created_by", Text, nullable=False),
    created_at(),
    CheckConstraint(in_list("scope", BUDGET_SCOPES), name="scope"),
    CheckConstraint(in_list("kind", GRANT_KINDS), name="kind"),
    CheckConstraint("usd > 0", name="usd_positive"),
)
Index(
    "ix_budget_grants_scope_scope_id_day",
    budget_grants.c.scope,
    budget_grants.c.scope_id,
    budget_grants.c.day,
)

budget_breaches = Table(
    "budget_breaches",
    metadata,
    uuid_pk(),
    Column("company_id", Uuid, ForeignKey("companies.id", ondelete="RESTRICT"), nullable=False),
    Column("scope", Text, nullable=False),
    Column("scope_id", Uuid, nullable=False),
    # The first day of the period; NULL for a task (its budget spans all its attempts).
    Column("period_start", Date, nullable=True),
    Column("level", Text, nullable=False),
    Column("cap_usd", Numeric(18, 8), nullable=False),
    Column("spent_usd", Numeric(18, 8), nullable=False),
    Column("task_id", Uuid, nullable=True),
    Column("run_id", Uuid, nullable=True),
    created_at(),
    CheckConstraint(in_list("scope", BUDGET_SCOPES), name="scope"),
    CheckConstraint(in_list("level", BREACH_LEVELS), name="level"),
    UniqueConstraint(
        "scope", "scope_id", "period_start", "level", "cap_usd", postgresql_nulls_not_distinct=True
    ),
)
Index("ix_budget_breaches_company_id_created_at", budget_breaches.c.company_id, budget_breaches.c.created_at)
