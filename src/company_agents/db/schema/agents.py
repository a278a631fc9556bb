"""Teams and agents. Reporting lines form a tree inside one company (checked by the service layer)."""

from __future__ import annotations

from sqlalchemy import (
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    Numeric,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from company_agents.db.schema.base import created_at, in_list, metadata, updated_at, uuid_pk

AGENT_STATUSES = ("idle", "running", "paused", "retired")

teams = Table(
    "teams",
    metadata,
    uuid_pk(),
    Column("company_id", Uuid, ForeignKey("companies.id", ondelete="RESTRICT"), nullable=False),
    Column("name", Text, nullable=False),
    # Teams and agents refer to each other; the manager FK is added after both tables exist.
    Column("manager_agent_id", Uuid, nullable=True),
    Column("budget_usd", Numeric(14, 4), nullable=True),
    created_at(),
    updated_at(),
    UniqueConstraint("company_id", "name"),
    # Lets agents carry a composite FK (company_id, team_id) so an agent can never sit in another
    # company's team.
    UniqueConstraint("company_id", "id"),
    ForeignKeyConstraint(
        ["manager_agent_id"],
        ["agents.id"],
        ondelete="SET NULL",
        use_alter=True,
        name="fk_teams_manager_agent",
    ),
    CheckConstraint("budget_usd IS NULL OR budget_usd >= 0", name="budget_nonnegative"),
)

agents = Table(
    "agents",
    metadata,
    uuid_pk(),
    Column("company_id", Uuid, ForeignKey("companies.id", ondelete="RESTRICT"), nullable=False),
    Column("team_id", Uuid, nullable=True),
    Column("name", Text, nullable=False),
    Column("role", Text, nullable=False),
    Column("adapter", Text, nullable=False),
    Column("adapter_config", JSONB, nullable=False, server_default="{}"),
    Column("reports_to", Uuid, nullable=True),
    Column("status", Text, nullable=False, server_default="idle"),
    Column("budget_usd", Numeric(14, 4), nullable=True),
    # The budget of each task this agent runs, unless the task has its own (``agent hire --task-budget``).
    Column("task_budget_usd", Numeric(14, 4), nullable=True),
    # How many tasks this agent may hold at once (one unless configured otherwise).
    Column("max_concurrent_tasks", Integer, nullable=False, server_default="1"),
    # Memory scopes the agent may read and write beyond its own (e.g. ["company", "team"]).
    Column("memory_scopes", JSONB, nullable=False, server_default='["company", "team", "agent", "task"]'),
    # Which requests of this agent need a person (approvals/policy.py); set at hire.
    Column(
        "approval_policy",
        JSONB,
        nullable=False,
        server_default=text("""'{"spendOverUsd": "10", "categories": []}'::jsonb"""),
    ),
    # The model the agent was hired with (recorded; adapters may pass it on).
    Column("model", Text, nullable=True),
    # Identity token: only a hash is kept; the token itself is shown once.
    Column("token_hash", Text, nullable=True, unique=True),
    Column("token_rotated_at", DateTime(timezone=True), nullable=True),
    created_at(),
    updated_at(),
    Column("retired_at", DateTime(timezone=True), nullable=True),
    UniqueConstraint("company_id", "name"),
    UniqueConstraint("company_id", "id"),
    ForeignKeyConstraint(
        ["company_id", "team_id"],
        ["teams.company_id", "teams.id"],
        ondelete="RESTRICT",
        name="fk_agents_team",
    ),
    ForeignKeyConstraint(
        ["company_id", "reports_to"],
        ["agents.company_id", "agents.id"],
        ondelete="RESTRICT",
        name="fk_agents_reports_to",
    ),
    CheckConstraint(in_list("status", AGENT_STATUSES), name="status"),
    CheckConstraint("reports_to IS NULL OR reports_to <> id", name="not_own_manager"),
    CheckConstraint("max_concurrent_tasks >= 1", name="max_concurrent_positive"),
    CheckConstraint("budget_usd IS NULL OR budget_usd >= 0", name="budget_nonnegative"),
    CheckConstraint("task_budget_usd IS NULL OR task_budget_usd >= 0", name="task_budget_nonnegative"),
)

Index("ix_agents_team_id", agents.c.team_id)
