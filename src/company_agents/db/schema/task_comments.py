"""Comments on a task: a thread people (and their scripts) write; append-only, read oldest first."""

from __future__ import annotations

from sqlalchemy import CheckConstraint, Column, ForeignKey, Index, Table, Text, Uuid

from company_agents.db.schema.base import created_at, metadata, uuid_pk

# One comment is a note, not a document: the same bound as a task's body.
MAX_COMMENT_LENGTH = 100_000

task_comments = Table(
    "task_comments",
    metadata,
    uuid_pk(),
    Column("company_id", Uuid, ForeignKey("companies.id", ondelete="RESTRICT"), nullable=False),
    Column("task_id", Uuid, ForeignKey("tasks.id", ondelete="RESTRICT"), nullable=False),
    # The audit actor who wrote it (``user:local``, ``user:token:<id>``).
    Column("author", Text, nullable=False),
    Column("body", Text, nullable=False),
    created_at(),
    CheckConstraint(f"length(body) BETWEEN 1 AND {MAX_COMMENT_LENGTH}", name="body_length"),
)
# The thread of one task, a keyset page at a time.
Index(
    "ix_task_comments_task_id_created_at_id",
    task_comments.c.task_id,
    task_comments.c.created_at,
    task_comments.c.id,
)
