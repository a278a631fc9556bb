"""Initial schema: the ten domains, and the triggers that keep history append-only.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
Kind: expand
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# History tables: the database itself refuses UPDATE, DELETE and TRUNCATE, for every role.
APPEND_ONLY_TABLES = ("audit_events", "audit_seals", "cost_entries", "memory_entries")

REFUSE_CHANGE_FUNCTION = """
CREATE FUNCTION ca_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'CA001', HINT = 'history is never rewritten; append a correcting row instead';
END
$$
"""


def upgrade() -> None:
    op.create_table(
        "audit_events",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("company_id", sa.Uuid(), nullable=True),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("subject_type", sa.Text(), nullable=False),
        sa.Column("subject_id", sa.Text(), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("action ~ '^[a-z_]+(\\.[a-z_]+)+$'", name=op.f("ck_audit_events_action_format")),
        sa.CheckConstraint("actor ~ '^(user|agent|system):.+'", name=op.f("ck_audit_events_actor_format")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
    )
    op.create_index("ix_audit_events_action", "audit_events", ["action"], unique=False)
    op.create_index(
        "ix_audit_events_company_id_created_at", "audit_events", ["company_id", "created_at"], unique=False
    )
    op.create_index("ix_audit_events_subject", "audit_events", ["subject_type", "subject_id"], unique=False)
    op.create_table(
        "audit_seals",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("first_event_id", sa.BigInteger(), nullable=False),
        sa.Column("last_event_id", sa.BigInteger(), nullable=False),
        sa.Column("event_count", sa.Integer(), nullable=False),
        sa.Column("events_hash", sa.Text(), nullable=False),
        sa.Column("prev_seal_hash", sa.Text(), nullable=True),
        sa.Column("seal_hash", sa.Text(), nullable=False),
        sa.Column("key_id", sa.Text(), nullable=False),
        sa.Column("signature", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("event_count >= 1", name=op.f("ck_audit_seals_event_count_positive")),
        sa.CheckConstraint("last_event_id >= first_event_id", name=op.f("ck_audit_seals_range_order")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_seals")),
    )
    op.create_table(
        "companies",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("slug", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("budget_usd", sa.Numeric(precision=14, scale=4), nullable=True),
        sa.Column("fiscal_period", sa.Text(), server_default="monthly", nullable=False),
        sa.Column("default_adapter", sa.Text(), nullable=True),
        sa.Column("status", sa.Text(), server_default="active", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "fiscal_period IN ('monthly', 'rolling-30d')", name=op.f("ck_companies_fiscal_period")
        ),
        sa.CheckConstraint("slug ~ '^[a-z0-9][a-z0-9-]{0,62}$'", name=op.f("ck_companies_slug_format")),
        sa.CheckConstraint("status IN ('active', 'archived')", name=op.f("ck_companies_status")),
        sa.CheckConstraint(
            "budget_usd IS NULL OR budget_usd >= 0", name=op.f("ck_companies_budget_nonnegative")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_companies")),
        sa.UniqueConstraint("slug", name=op.f("uq_companies_slug")),
    )
    op.create_table(
        "secrets",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("value", sa.LargeBinary(), nullable=False),
        sa.Column("nonce", sa.LargeBinary(), nullable=False),
        sa.Column("key_id", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("name ~ '^[A-Za-z_][A-Za-z0-9_.-]{0,127}$'", name=op.f("ck_secrets_name_format")),
        sa.CheckConstraint("octet_length(nonce) = 12", name=op.f("ck_secrets_nonce_length")),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            name=op.f("fk_secrets_company_id_companies"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_secrets")),
        sa.UniqueConstraint("company_id", "id", name=op.f("uq_secrets_company_id_id")),
        sa.UniqueConstraint("company_id", "name", name=op.f("uq_secrets_company_id_name")),
    )
    op.create_table(
        "teams",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("manager_agent_id", sa.Uuid(), nullable=True),
        sa.Column("budget_usd", sa.Numeric(precision=14, scale=4), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("budget_usd IS NULL OR budget_usd >= 0", name=op.f("ck_teams_budget_nonnegative")),
        sa.ForeignKeyConstraint(
            ["company_id"], ["companies.id"], name=op.f("fk_teams_company_id_companies"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_teams")),
        sa.UniqueConstraint("company_id", "id", name=op.f("uq_teams_company_id_id")),
        sa.UniqueConstraint("company_id", "name", name=op.f("uq_teams_company_id_name")),
    )
    op.create_table(
        "agents",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("team_id", sa.Uuid(), nullable=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("adapter", sa.Text(), nullable=False),
        sa.Column(
            "adapter_config", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False
        ),
        sa.Column("reports_to", sa.Uuid(), nullable=True),
        sa.Column("status", sa.Text(), server_default="idle", nullable=False),
        sa.Column("budget_usd", sa.Numeric(precision=14, scale=4), nullable=True),
        sa.Column("max_concurrent_tasks", sa.Integer(), server_default="1", nullable=False),
        sa.Column(
            "memory_scopes",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default='["company", "team", "agent", "task"]',
            nullable=False,
        ),
        sa.Column("token_hash", sa.Text(), nullable=True),
        sa.Column("token_rotated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('idle', 'running', 'paused', 'retired')", name=op.f("ck_agents_status")
        ),
        sa.CheckConstraint(
            "budget_usd IS NULL OR budget_usd >= 0", name=op.f("ck_agents_budget_nonnegative")
        ),
        sa.CheckConstraint("max_concurrent_tasks >= 1", name=op.f("ck_agents_max_concurrent_positive")),
        sa.CheckConstraint("reports_to IS NULL OR reports_to <> id", name=op.f("ck_agents_not_own_manager")),
        sa.ForeignKeyConstraint(
            ["company_id", "reports_to"],
            ["agents.company_id", "agents.id"],
            name="fk_agents_reports_to",
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["company_id", "team_id"],
            ["teams.company_id", "teams.id"],
            name="fk_agents_team",
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["company_id"], ["companies.id"], name=op.f("fk_agents_company_id_companies"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agents")),
        sa.UniqueConstraint("company_id", "id", name=op.f("uq_agents_company_id_id")),
        sa.UniqueConstraint("company_id", "name", name=op.f("uq_agents_company_id_name")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_agents_token_hash")),
    )
    op.create_index("ix_agents_team_id", "agents", ["team_id"], unique=False)
    # teams and agents refer to each other: the manager FK can only exist once agents does.
    op.create_foreign_key(
        "fk_teams_manager_agent", "teams", "agents", ["manager_agent_id"], ["id"], ondelete="SET NULL"
    )
    op.create_table(
        "integrations",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("config", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False),
        sa.Column("scopes", postgresql.JSONB(astext_type=sa.Text()), server_default="[]", nullable=False),
        sa.Column("secret_id", sa.Uuid(), nullable=True),
        sa.Column("status", sa.Text(), server_default="active", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("kind ~ '^[a-z][a-z0-9_-]{0,31}$'", name=op.f("ck_integrations_kind_format")),
        sa.CheckConstraint("status IN ('active', 'disabled', 'error')", name=op.f("ck_integrations_status")),
        sa.ForeignKeyConstraint(
            ["company_id", "secret_id"],
            ["secrets.company_id", "secrets.id"],
            name="fk_integrations_secret",
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            name=op.f("fk_integrations_company_id_companies"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_integrations")),
        sa.UniqueConstraint("company_id", "name", name=op.f("uq_integrations_company_id_name")),
    )
    op.create_table(
        "tasks",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), server_default="", nullable=False),
        sa.Column("status", sa.Text(), server_default="queued", nullable=False),
        sa.Column("parent_id", sa.Uuid(), nullable=True),
        sa.Column("assigned_agent_id", sa.Uuid(), nullable=True),
        sa.Column("assigned_team_id", sa.Uuid(), nullable=True),
        sa.Column("priority", sa.Integer(), server_default="0", nullable=False),
        sa.Column("attempt", sa.Integer(), server_default="0", nullable=False),
        sa.Column("max_attempts", sa.Integer(), server_default="3", nullable=False),
        sa.Column("fencing_token", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("budget_usd", sa.Numeric(precision=14, scale=4), nullable=True),
        sa.Column("keep_workspace", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("run_after", sa.DateTime(timezone=True), nullable=True),
        sa.Column("output", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("feedback", sa.Text(), nullable=True),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column("created_by", sa.Text(), server_default="user:local", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('queued', 'assigned', 'running', 'review', 'done', 'failed', 'cancelled', 'handoff', 'blocked')",
            name=op.f("ck_tasks_status"),
        ),
        sa.CheckConstraint("attempt >= 0", name=op.f("ck_tasks_attempt_nonnegative")),
        sa.CheckConstraint("budget_usd IS NULL OR budget_usd >= 0", name=op.f("ck_tasks_budget_nonnegative")),
        sa.CheckConstraint("fencing_token >= 0", name=op.f("ck_tasks_fencing_token_nonnegative")),
        sa.CheckConstraint("length(title) BETWEEN 1 AND 500", name=op.f("ck_tasks_title_length")),
        sa.CheckConstraint("max_attempts >= 1", name=op.f("ck_tasks_max_attempts_positive")),
        sa.CheckConstraint("parent_id IS NULL OR parent_id <> id", name=op.f("ck_tasks_not_own_parent")),
        sa.ForeignKeyConstraint(
            ["company_id", "assigned_agent_id"],
            ["agents.company_id", "agents.id"],
            name="fk_tasks_assigned_agent",
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["company_id", "assigned_team_id"],
            ["teams.company_id", "teams.id"],
            name="fk_tasks_assigned_team",
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["company_id", "parent_id"],
            ["tasks.company_id", "tasks.id"],
            name="fk_tasks_parent",
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["company_id"], ["companies.id"], name=op.f("fk_tasks_company_id_companies"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tasks")),
        sa.UniqueConstraint("company_id", "id", name=op.f("uq_tasks_company_id_id")),
    )
    op.create_index("ix_tasks_assigned_agent_id", "tasks", ["assigned_agent_id"], unique=False)
    op.create_index(
        "ix_tasks_claimable",
        "tasks",
        ["company_id", sa.literal_column("priority DESC"), "created_at"],
        unique=False,
        postgresql_where=sa.text("status = 'queued'"),
    )
    op.create_index("ix_tasks_company_id_status", "tasks", ["company_id", "status"], unique=False)
    op.create_index("ix_tasks_parent_id", "tasks", ["parent_id"], unique=False)
    op.create_table(
        "memory_entries",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("scope_id", sa.Uuid(), nullable=False),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("source_agent_id", sa.Uuid(), nullable=True),
        sa.Column("source_task_id", sa.Uuid(), nullable=True),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "scope IN ('company', 'team', 'agent', 'task')", name=op.f("ck_memory_entries_scope")
        ),
        sa.CheckConstraint("length(topic) BETWEEN 1 AND 200", name=op.f("ck_memory_entries_topic_length")),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            name=op.f("fk_memory_entries_company_id_companies"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["source_agent_id"],
            ["agents.id"],
            name=op.f("fk_memory_entries_source_agent_id_agents"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["source_task_id"],
            ["tasks.id"],
            name=op.f("fk_memory_entries_source_task_id_tasks"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_memory_entries")),
    )
    op.create_index("ix_memory_entries_company_id", "memory_entries", ["company_id"], unique=False)
    op.create_index(
        "ix_memory_entries_scope_topic",
        "memory_entries",
        ["scope", "scope_id", "topic", sa.literal_column("id DESC")],
        unique=False,
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("task_id", sa.Uuid(), nullable=False),
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("agent_id", sa.Uuid(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("fencing_token", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.Text(), server_default="running", nullable=False),
        sa.Column("exit_reason", sa.Text(), nullable=True),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("output", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("workspace_path", sa.Text(), nullable=True),
        sa.Column("keep_workspace", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("workspace_deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("orchestrator_id", sa.Text(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "(status = 'running') = (ended_at IS NULL)", name=op.f("ck_runs_ended_iff_not_running")
        ),
        sa.CheckConstraint(
            "exit_reason IS NULL OR exit_reason IN ('complete', 'failed', 'crash', 'timeout', 'lease_expired', 'killed', 'cancelled', 'handoff', 'shutdown')",
            name=op.f("ck_runs_exit_reason"),
        ),
        sa.CheckConstraint(
            "status IN ('running', 'succeeded', 'failed', 'cancelled', 'handed_off')",
            name=op.f("ck_runs_status"),
        ),
        sa.CheckConstraint("attempt >= 1", name=op.f("ck_runs_attempt_positive")),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agents.id"], name=op.f("fk_runs_agent_id_agents"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["company_id"], ["companies.id"], name=op.f("fk_runs_company_id_companies"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["task_id"], ["tasks.id"], name=op.f("fk_runs_task_id_tasks"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runs")),
        sa.UniqueConstraint("task_id", "attempt", name=op.f("uq_runs_task_id_attempt")),
    )
    op.create_index("ix_runs_agent_id", "runs", ["agent_id"], unique=False)
    op.create_index("ix_runs_company_id_started_at", "runs", ["company_id", "started_at"], unique=False)
    op.create_table(
        "cost_entries",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("team_id", sa.Uuid(), nullable=True),
        sa.Column("agent_id", sa.Uuid(), nullable=True),
        sa.Column("task_id", sa.Uuid(), nullable=True),
        sa.Column("run_id", sa.Uuid(), nullable=True),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("model", sa.Text(), nullable=True),
        sa.Column("input_tokens", sa.BigInteger(), nullable=True),
        sa.Column("output_tokens", sa.BigInteger(), nullable=True),
        sa.Column("amount_usd", sa.Numeric(precision=18, scale=8), nullable=True),
        sa.Column("fencing_token", sa.BigInteger(), nullable=True),
        sa.Column("adjusts_entry_id", sa.Uuid(), nullable=True),
        sa.Column("details", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "(kind = 'adjustment') = (adjusts_entry_id IS NOT NULL)",
            name=op.f("ck_cost_entries_adjustment_target"),
        ),
        sa.CheckConstraint(
            "kind IN ('llm', 'tool', 'runtime', 'adjustment')", name=op.f("ck_cost_entries_kind")
        ),
        sa.CheckConstraint(
            "input_tokens IS NULL OR input_tokens >= 0", name=op.f("ck_cost_entries_input_tokens_nonnegative")
        ),
        sa.CheckConstraint(
            "output_tokens IS NULL OR output_tokens >= 0",
            name=op.f("ck_cost_entries_output_tokens_nonnegative"),
        ),
        sa.ForeignKeyConstraint(
            ["adjusts_entry_id"],
            ["cost_entries.id"],
            name=op.f("fk_cost_entries_adjusts_entry_id_cost_entries"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agents.id"], name=op.f("fk_cost_entries_agent_id_agents"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            name=op.f("fk_cost_entries_company_id_companies"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_cost_entries_run_id_runs"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["task_id"], ["tasks.id"], name=op.f("fk_cost_entries_task_id_tasks"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["team_id"], ["teams.id"], name=op.f("fk_cost_entries_team_id_teams"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cost_entries")),
    )
    op.create_index("ix_cost_entries_agent_id", "cost_entries", ["agent_id"], unique=False)
    op.create_index(
        "ix_cost_entries_company_id_created_at", "cost_entries", ["company_id", "created_at"], unique=False
    )
    op.create_index("ix_cost_entries_task_id", "cost_entries", ["task_id"], unique=False)
    op.create_table(
        "leases",
        sa.Column("task_id", sa.Uuid(), nullable=False),
        sa.Column("run_id", sa.Uuid(), nullable=False),
        sa.Column("agent_id", sa.Uuid(), nullable=False),
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("fencing_token", sa.BigInteger(), nullable=False),
        sa.Column("token_hash", sa.Text(), nullable=False),
        sa.Column("holder", sa.Text(), nullable=True),
        sa.Column("acquired_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("renewed_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("expires_at > acquired_at", name=op.f("ck_leases_expires_after_acquired")),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agents.id"], name=op.f("fk_leases_agent_id_agents"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["company_id"], ["companies.id"], name=op.f("fk_leases_company_id_companies"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_leases_run_id_runs"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["task_id"], ["tasks.id"], name=op.f("fk_leases_task_id_tasks"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("task_id", name=op.f("pk_leases")),
        sa.UniqueConstraint("run_id", name=op.f("uq_leases_run_id")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_leases_token_hash")),
    )
    op.create_index("ix_leases_agent_id", "leases", ["agent_id"], unique=False)
    op.create_index("ix_leases_expires_at", "leases", ["expires_at"], unique=False)
    op.create_table(
        "run_checkpoints",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("run_id", sa.Uuid(), nullable=False),
        sa.Column("fencing_token", sa.BigInteger(), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_run_checkpoints_run_id_runs"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_run_checkpoints")),
    )
    op.create_index("ix_run_checkpoints_run_id", "run_checkpoints", ["run_id", "id"], unique=False)

    op.execute(REFUSE_CHANGE_FUNCTION)
    for table in APPEND_ONLY_TABLES:
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION ca_refuse_change()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION ca_refuse_change()"
        )


def downgrade() -> None:
    op.drop_constraint("fk_teams_manager_agent", "teams", type_="foreignkey")
    op.drop_index("ix_run_checkpoints_run_id", table_name="run_checkpoints")
    op.drop_table("run_checkpoints")
    op.drop_index("ix_leases_expires_at", table_name="leases")
    op.drop_index("ix_leases_agent_id", table_name="leases")
    op.drop_table("leases")
    op.drop_index("ix_cost_entries_task_id", table_name="cost_entries")
    op.drop_index("ix_cost_entries_company_id_created_at", table_name="cost_entries")
    op.drop_index("ix_cost_entries_agent_id", table_name="cost_entries")
    op.drop_table("cost_entries")
    op.drop_index("ix_runs_company_id_started_at", table_name="runs")
    op.drop_index("ix_runs_agent_id", table_name="runs")
    op.drop_table("runs")
    op.drop_index("ix_memory_entries_scope_topic", table_name="memory_entries")
    op.drop_index("ix_memory_entries_company_id", table_name="memory_entries")
    op.drop_table("memory_entries")
    op.drop_index("ix_tasks_parent_id", table_name="tasks")
    op.drop_index("ix_tasks_company_id_status", table_name="tasks")
    op.drop_index("ix_tasks_claimable", table_name="tasks", postgresql_where=sa.text("status = 'queued'"))
    op.drop_index("ix_tasks_assigned_agent_id", table_name="tasks")
    op.drop_table("tasks")
    op.drop_table("integrations")
    op.drop_index("ix_agents_team_id", table_name="agents")
    op.drop_table("agents")
    op.drop_table("teams")
    op.drop_table("secrets")
    op.drop_table("companies")
    op.drop_table("audit_seals")
    op.drop_index("ix_audit_events_subject", table_name="audit_events")
    op.drop_index("ix_audit_events_company_id_created_at", table_name="audit_events")
    op.drop_index("ix_audit_events_action", table_name="audit_events")
    op.drop_table("audit_events")
    op.execute("DROP FUNCTION ca_refuse_change()")
