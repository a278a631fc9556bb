"""Memory: event-sourced. Every write appends; the latest entry per (scope, scope id, topic) wins."""

from __future__ import annotations

from sqlalchemy import BigInteger, CheckConstraint, Column, ForeignKey, Identity, Index, Table, Text, Uuid

from company_agents.db.schema.base import created_at, in_list, metadata

MEMORY_SCOPES = ("company", "team", "agent", "task")

memory_entries = Table(
    "memory_entries",
    metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column("company_id", Uuid, ForeignKey("companies.id", ondelete="RESTRICT"), nullable=False),
    Column("scope", Text, nullable=False),
    Column("scope_id", Uuid, nullable=False),
    Column("topic", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("source_agent_id", Uuid, ForeignKey("agents.id", ondelete="RESTRICT"), nullable=True),
    Column("source_task_id", Uuid, ForeignKey("tasks.id", ondelete="RESTRICT"), nullable=True),
    Column("actor", Text, nullable=False),
    created_at(),
    CheckConstraint(in_list("scope", MEMORY_SCOPES), name="scope"),
    CheckConstraint("length(topic) BETWEEN 1 AND 200", name="topic_length"),
)
Index(
    "ix_memory_entries_scope_topic",
    memory_entries.c.scope,
    memory_entries.c.scope_id,
    memory_entries.c.topic,
    memory_entries.c.id.desc(),
)
Index("ix_memory_entries_company_id", memory_entries.c.company_id)
