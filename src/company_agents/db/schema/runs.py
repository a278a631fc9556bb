"""Runs: one row per attempt at a task, unique per ``(task_id, attempt)``; and their checkpoints."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from company_agents.db.schema.base import created_at, in_list, metadata, uuid_pk

RUN_STATUSES = ("running", "succeeded", "failed", "cancelled", "handed_off")
# Why a run ended: the agent's own outcome, or what the orchestrator observed.
EXIT_REASONS = (
    "complete",
    "failed",
    "crash",
    "timeout",
    "lease_expired",
    "killed",
    "cancelled",
    "handoff",
    "shutdown",
    # The agent ended its run to wait for an approval (the task is blocked until it is answered).
    "approval",
    # Stopped by a budget (docs/budgets.md): a hard or catastrophic breach, or the loop budget.
    "budget",
    "loop_budget",
    # The agent exceeded one of its resource limits (company_agents.isolation.limits).
    "resource_limit",
    # The model gateway saw the same request repeated (docs/gateway.md, the loop rule).
    "loop_detected",
)
# How the run's agent was isolated (company_agents.isolation); NULL for runs from before it was recorded.
ISOLATION_MODES = ("user", "sandbox", "none")

runs = Table(
    "runs",
    metadata,
    uuid_pk(),
    Column("task_id", Uuid, ForeignKey("tasks.id", ondelete="RESTRICT"), nullable=False),
    Column("company_id", Uuid, ForeignKey("companies.id", ondelete="RESTRICT"), nullable=False),
    Column("agent_id", Uuid, ForeignKey("agents.id", ondelete="RESTRICT"), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("fencing_token", BigInteger, nullable=False),
    Column("status", Text, nullable=False, server_default="running"),
    Column("exit_reason", Text, nullable=True),
    Column("exit_code", Integer, nullable=True),
    Column("error", Text, nullable=True),
    Column("output", JSONB, nullable=True),
    Column("workspace_path", Text, nullable=True),
    Column("keep_workspace", Boolean, nullable=False, server_default="false"),
    Column("workspace_deleted_at", DateTime(timezone=True), nullable=True),
    # SHA-256 of the run's lease token: outlives the lease row, so a zombie presenting it after its lease
    # was reaped is recognised (409 stale) rather than treated as a stranger (401).
    Column("lease_token_hash", Text, nullable=True, unique=True),
    # Which orchestrator process ran it (hostname:pid), for operators.
    Column("orchestrator_id", Text, nullable=True),
    # The orchestrator process holding the run (its host, pid and process start time, so a reused pid is
    # not mistaken for it) and the agent's process group with its leader's start time: an orchestrator
    # starting on the same host ends the groups of a dead holder and re-queues its tasks at once.
    Column("holder_host", Text, nullable=True),
    Column("holder_pid", Integer, nullable=True),
    Column("holder_started_at", DateTime(timezone=True), nullable=True),
    Column("agent_pgid", Integer, nullable=True),
    Column("agent_started_at", DateTime(timezone=True), nullable=True),
    Column("isolation", Text, nullable=True),
    # An agent CLI's own session id (Claude's session_id, Codex's thread_id, Gemini's session_id): the
    # next run of the task resumes it after an approval or a rejection (docs/adapters.md §Sessions).
    Column("cli_session", Text, nullable=True),
    Column("started_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    Column("ended_at", DateTime(timezone=True), nullable=True),
    UniqueConstraint("task_id", "attempt"),
    CheckConstraint(in_list("status", RUN_STATUSES), name="status"),
    CheckConstraint(f"exit_reason IS NULL OR {in_list('exit_reason', EXIT_REASONS)}", name="exit_reason"),
    CheckConstraint(f"isolation IS NULL OR {in_list('isolation', ISOLATION_MODES)}", name="isolation"),
    CheckConstraint("attempt >= 1", name="attempt_positive"),
    CheckConstraint("(status = 'running') = (ended_at IS NULL)", name="ended_iff_not_running"),
)
# An agent's runs newest first (the overview's agent health reads its last three).
Index("ix_runs_agent_id_started_at", runs.c.agent_id, runs.c.started_at)
Index("ix_runs_company_id_started_at", runs.c.company_id, runs.c.started_at)

run_checkpoints = Table(
    "run_checkpoints",
    metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column("run_id", Uuid, ForeignKey("runs.id", ondelete="RESTRICT"), nullable=False),
    Column("fencing_token", BigInteger, nullable=False),
    Column("payload", JSONB, nullable=False),
    created_at(),
)
Index("ix_run_checkpoints_run_id", run_checkpoints.c.run_id, run_checkpoints.c.id)
