"""Memory entries as the API and ``memory list --json`` show them."""

from __future__ import annotations

from uuid import UUID

from company_agents.api.schemas.common import Public, UtcTime


class MemoryEntry(Public):
    id: int
    # company, team, agent or task; scope_id is that object's id.
    scope: str
    scope_id: UUID
    topic: str
    body: str
    actor: str
    source_agent_id: UUID | None
    source_task_id: UUID | None
    created_at: UtcTime
