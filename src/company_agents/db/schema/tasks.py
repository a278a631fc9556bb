"""The task queue. ``status``, ``attempt`` and ``fencing_token`` are the state-machine columns.

``fencing_token`` only ever grows: every claim increments it, and every write on behalf of an attempt
must match it (docs/design.md §4).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
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

TASK_STATUSES = (
    "queued",
    "assigned",
    "running",
    "review",
    "done",
    "failed",
    "cancelled",
    "handoff",
    "blocked",
)
TERMINAL_TASK_STATUSES = ("done", "failed", "cancelled")
BLOCKED_REASONS = ("approval", "budget", "manual")

tasks = Table(
    "tasks",
    metadata,
    uuid_pk(),
    Column("company_id", Uuid, ForeignKey("companies.id", ondelete="RESTRICT"), nullable=False),
    Column("title", Text, nullable=False),
    Column("body", Text, nullable=False, server_default=""),
    Column("status", Text, nullable=False, server_default="queued"),
    Column("parent_id", Uuid, nullable=True),
    Column("assigned_agent_id", Uuid, nullable=True),
    Column("assigned_team_id", Uuid, nullable=True),
    Column("priority", Integer, nullable=False, server_default="0"),
    # Number of claims so far; a claim makes it attempt + 1 and inserts runs(task_id, attempt).
    Column("attempt", Integer, nullable=False, server_default="0"),
    Column("max_attempts", Integer, nullable=False, server_default="3"),
    # Attempts given back unfinished at a graceful shutdown: they do not count against max_attempts
    # (the retry rule is attempt - releases < max_attempts).
    Column("releases", Integer, nullable=False, server_default="0"),
    Column("fencing_token", BigInteger, nullable=False, server_default="0"),
    Column("budget_usd", Numeric(14, 4), nullable=True),
    # The workflow this task belongs to (workflows come later; its budget is in workflow_budgets).
    Column("workflow_id", Uuid, nullable=True),
    Column("keep_workspace", Boolean, nullable=False, server_default="false"),
    # Not claimable before this time (retry backoff, written by a failed or reaped attempt); NULL: now.
    Column("run_after", DateTime(timezone=True), nullable=True),
    Column("output", JSONB, nullable=True),
    Column("feedback", Text, nullable=True),
    Column("failure_reason", Text, nullable=True),
    # What a blocked task waits for; NULL in every other state.
    Column("blocked_reason", Text, nullable=True),
    Column("created_by", Text, nullable=False, server_default="user:local"),
    created_at(),
    updated_at(),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    ForeignKeyConstraint(
        ["company_id", "parent_id"],
        ["tasks.company_id", "tasks.id"],
        ondelete="RESTRICT",
        name="fk_tasks_parent",
    ),
    ForeignKeyConstraint(
        ["company_id", "assigned_agent_id"],
        ["agents.company_id", "agents.id"],
        ondelete="RESTRICT",
        name="fk_tasks_assigned_agent",
    ),
    ForeignKeyConstraint(
        ["company_id", "assigned_team_id"],
        ["teams.company_id", "teams.id"],
        ondelete="RESTRICT",
        name="fk_tasks_assigned_team",
    ),
    UniqueConstraint("company_id", "id"),
    CheckConstraint(in_list("status", TASK_STATUSES), name="status"),
    CheckConstraint("attempt >= 0", name="attempt_nonnegative"),
    CheckConstraint("max_attempts >= 1", name="max_attempts_positive"),
    CheckConstraint("releases BETWEEN 0 AND attempt", name="releases_within_attempts"),
    CheckConstraint("fencing_token >= 0", name="fencing_token_nonnegative"),
    CheckConstraint("parent_id IS NULL OR parent_id <> id", name="not_own_parent"),
    CheckConstraint("budget_usd IS NULL OR budget_usd >= 0", name="budget_nonnegative"),
    CheckConstraint("length(title) BETWEEN 1 AND 500", name="title_length"),
    CheckConstraint(
        "blocked_reason IS NULL OR blocked_reason IN ('approval', 'budget', 'manual')",
        name="blocked_reason",
    ),
)

# The claim index covers runnable rows only, so finished history never slows claiming (docs/design.md §4.5).
Index(
    "ix_tasks_claimable",
    tasks.c.company_id,
    tasks.c.priority.desc(),
    tasks.c.created_at,
    postgresql_where=text("status = 'queued'"),
)
# Partial: a task update is never HOT (status is indexed), so every index gets a new entry on every
# transition; most tasks have no parent and many no named agent, and those rows now cost nothing here.
Index("ix_tasks_parent_id", tasks.c.parent_id, postgresql_where=text("parent_id IS NOT NULL"))
Index("ix_tasks_workflow_id", tasks.c.workflow_id, postgresql_where=text("workflow_id IS NOT NULL"))
Index(
    "ix_tasks_assigned_agent_id",
    tasks.c.assigned_agent_id,
    postgresql_where=text("assigned_agent_id IS NOT NULL"),
)
# The API's task list pages newest first by (created_at, id) within a company (pagination.py).
Index("ix_tasks_company_id_created_at_id", tasks.c.company_id, tasks.c.created_at, tasks.c.id)
# The overview (overview.py): counts by state index-only; today's finishes; the few tasks in flight.
# The first one is also the tasks board's: a column is one state's tasks newest first (0020).
Index(
    "ix_tasks_company_id_status_created_at_id",
    tasks.c.company_id,
    tasks.c.status,
    tasks.c.created_at,
    tasks.c.id,
)
Index(
    "ix_tasks_company_id_finished_at",
    tasks.c.company_id,
    tasks.c.finished_at,
    postgresql_include=["status"],
    postgresql_where=text("finished_at IS NOT NULL"),
)
Index(
    "ix_tasks_in_flight",
    tasks.c.company_id,
    tasks.c.created_at,
    tasks.c.id,
    # The overview's in-flight states (overview.IN_FLIGHT): keep the two equal.
    postgresql_where=text(in_list("status", ("assigned", "running", "review", "handoff", "blocked"))),
)
