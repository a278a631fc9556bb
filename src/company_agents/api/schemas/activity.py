"""Activity entries (the audit trail's events, as ``audit list --json`` shows them) and the trail's
seal verification status (``audit verify --json``)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from company_agents.api.schemas.common import Public, UtcTime


class ActivitySubject(Public):
    type: str
    id: str


class ActivityEntry(Public):
    id: int
    company_id: UUID | None
    at: UtcTime
    # user:…, agent:<id> or system:<component>
    actor: str
    action: str
    # The action's first part: task, approval, budget, run…
    category: str
    subject: ActivitySubject
    payload: dict[str, Any]


class AuditProblem(Public):
    kind: str
    message: str
    event_id: int | None
    seal_id: int | None
    company_id: UUID | None


class AuditAnchor(Public):
    seal_id: int
    seal_hash: str
    status: str


class AuditStatus(Public):
    """What ``audit verify`` checks: every seal, every event's MAC and this home's anchor."""

    ok: bool
    events_checked: int
    seals_checked: int
    sealed_through: int | None
    sealed_events: int
    unsealed_events: int
    mac_verified: int
    unsealed_mac_verified: int
    unproven: int
    head_seal_hash: str | None
    key_ids: list[str]
    anchor: AuditAnchor | None
    first_problem: AuditProblem | None
    problems: list[AuditProblem]
