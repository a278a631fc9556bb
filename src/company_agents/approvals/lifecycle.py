"""The task while it waits for an approval, and when the answer comes.

A run that asked and was told ``pending`` may end (its process exits): ``park_run`` then ends the
attempt according to the approval it asked in that run, in one fenced statement — still pending: the
task waits ``blocked`` (reason ``approval``); denied or expired: ``handoff`` to a person; answered
otherwise (approved, with edits, a question): straight back to the queue. Waiting on a person is not a
failure: the attempt does not count against the retry limit (it is counted in ``releases``).

When a person answers an approval of a ``blocked`` task (``after_decision``, in the decision's
transaction) the task is re-queued — or handed off, for a denial or an expiry — once no other approval
of it is pending. The next run finds the answers in ``task.json`` (``decisions_for_task``).
A ``budget_override`` approval is the budgets' business (the seam in ``after_decision``).
"""

from __future__ import annotations

import json
from typing import Any, LiteralString
from uuid import UUID

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from company_agents import audit, leases
from company_agents.db import driver
from company_agents.task_states import ACTIVE_SQL
from company_agents.tasks import NOTIFY_SQL, TASKS_CHANNEL

# Lock order (``leases``): the lease CTE is materialised first; the approval is locked by a CTE that
# joins it, so it is reached only once the lease is held; the task update follows. A decision racing
# this statement either committed first (the locked row is re-read: the task goes where the answer
# says) or waits on the lease and then finds the task blocked (``after_decision`` re-queues it).
PARK_SQL: LiteralString = f"""
WITH lease AS MATERIALIZED (
    SELECT l.task_id FROM leases l
    WHERE l.task_id = %(task_id)s AND l.fencing_token = %(fencing_token)s AND l.token_hash = %(token_hash)s
    FOR UPDATE
),
asked AS MATERIALIZED (
    SELECT a.id, a.status, a.decision_reason FROM approvals a JOIN lease l ON l.task_id = a.task_id
    WHERE a.run_id = %(run_id)s AND a.kind = 'action'
    ORDER BY (a.status = 'pending') DESC, a.created_at DESC
    LIMIT 1
    FOR UPDATE OF a
),
task AS (
    UPDATE tasks t
    SET status = CASE a.status WHEN 'pending' THEN 'blocked'
                               WHEN 'denied' THEN 'handoff' WHEN 'expired' THEN 'handoff'
                               ELSE 'queued' END,
        blocked_reason = CASE WHEN a.status = 'pending' THEN 'approval' END,
        failure_reason = CASE WHEN a.status = 'denied' OR a.status = 'expired'
                              THEN 'approval ' || a.status || coalesce(': ' || a.decision_reason, '')
                              ELSE t.failure_reason END,
        releases = t.releases + 1,
        run_after = NULL, updated_at = now()
    FROM lease l, asked a
    WHERE t.id = l.task_id AND t.fencing_token = %(fencing_token)s AND t.status IN {ACTIVE_SQL}
    RETURNING t.id, t.company_id, t.status, t.attempt, a.id AS approval_id, a.status AS approval_status
),
dropped AS (
    DELETE FROM leases l USING task
    WHERE l.task_id = task.id AND l.fencing_token = %(fencing_token)s AND l.token_hash = %(token_hash)s
    RETURNING l.run_id
),
run AS (
    UPDATE runs r
    SET status = 'handed_off', exit_reason = 'approval', ended_at = now(),
        exit_code = CAST(%(exit_code)s AS integer)
    FROM task
    WHERE r.id = %(run_id)s AND r.task_id = task.id AND r.status = 'running'
    RETURNING r.id
),
event AS (
    INSERT INTO audit_events (company_id, actor, action, subject_type, subject_id, payload)
    SELECT company_id, %(actor)s,
           CASE status WHEN 'blocked' THEN 'task.blocked' WHEN 'handoff' THEN 'task.handoff_requested'
                       ELSE 'task.requeued' END,
           'task', id::text,
           jsonb_build_object('reason', 'approval', 'approvalId', approval_id::text,
                              'approvalStatus', approval_status, 'runId', CAST(%(run_id)s AS text),
                              'fencingToken', %(fencing_token)s, 'status', status, 'attempt', attempt)
    FROM task
)
SELECT t.id, t.company_id, t.status, t.approval_id, t.approval_status FROM task t
"""


async def park_run(
    conn: AsyncConnection, ident: leases.RunIdentity, *, fencing_token: int, exit_code: int | None = None
) -> dict[str, Any] | None:
    """End a run that asked for an approval (see the module docstring); None when the run asked none,
    or no longer holds its task. One statement: safe in autocommit mode."""
    row = await driver.one(
        conn,
        PARK_SQL,
        {
            "task_id": ident.task_id,
            "run_id": ident.run_id,
            "fencing_token": fencing_token,
            "token_hash": ident.token_hash,
            "actor": f"agent:{ident.agent_id}",
            "exit_code": exit_code,
        },
    )
    if row is not None and row["status"] == "queued":
        await conn.execute(NOTIFY_SQL, {"channel": TASKS_CHANNEL, "payload": str(row["company_id"])})
    return row


PENDING_OTHERS_SQL = text(
    "SELECT count(*) FROM approvals WHERE task_id = :task_id AND status = 'pending' AND id <> :id"
)


def decider_actor(row: dict[str, Any]) -> str:
    """The audit actor of a decision: the person, or the system for a policy or rule (``decided_by``
    keeps which one: ``policy:agent``, ``rule:<id>``)."""
    decided_by = row["decided_by"] or ""
    return decided_by if decided_by.startswith(("user:", "agent:", "system:")) else "system:approval_rules"


async def after_decision(conn: AsyncConnection, row: dict[str, Any]) -> dict[str, Any] | None:
    """Move the approval's task, if it waits for it; returns the task's new row (None: unchanged)."""
    if row["kind"] == "budget_override":
        # The budget raises its cap and re-queues what it blocked (approved), or leaves it (otherwise).
        from company_agents import budgets

        await budgets.apply_override_decision(conn, row)
        return None
    if row["task_id"] is None:
        return None
    task = (
        (
            await conn.execute(
                text("SELECT id, status, blocked_reason FROM tasks WHERE id = :id FOR NO KEY UPDATE"),
                {"id": row["task_id"]},
            )
        )
        .mappings()
        .first()
    )
    if task is None or task["status"] != "blocked" or task["blocked_reason"] != "approval":
        return None  # running (the waiting call or the run's end picks the answer up), or moved by a person
    others = (
        await conn.execute(PENDING_OTHERS_SQL, {"task_id": row["task_id"], "id": row["id"]})
    ).scalar_one()
    if others:
        return None
    refused = row["status"] in ("denied", "expired")
    target = "handoff" if refused else "queued"
    reason = f"approval {row['status']}" + (f": {row['decision_reason']}" if row["decision_reason"] else "")
    moved = (
        (
            await conn.execute(
                text(
                    """
                    UPDATE tasks SET status = :target, blocked_reason = NULL, run_after = NULL,
                        failure_reason = CASE WHEN :refused THEN :reason ELSE failure_reason END,
                        updated_at = now()
                    WHERE id = :id AND status = 'blocked'
                    RETURNING *
                    """
                ),
                {"target": target, "refused": refused, "reason": reason, "id": row["task_id"]},
            )
        )
        .mappings()
        .one()
    )
    await audit.record(
        conn,
        actor=decider_actor(row),
        action="task.handoff_requested" if refused else "task.unblocked",
        subject_type="task",
        subject_id=row["task_id"],
        company_id=row["company_id"],
        payload={
            "from": "blocked",
            "to": target,
            "approvalId": str(row["id"]),
            "approvalStatus": row["status"],
        },
    )
    if not refused:
        await conn.execute(NOTIFY_SQL, {"channel": TASKS_CHANNEL, "payload": str(row["company_id"])})
    return dict(moved)


async def decisions_for_task(conn: AsyncConnection, task_id: UUID) -> list[dict[str, Any]]:
    """The latest approval per action of a task, for ``task.json``: what the next run must honour."""
    query = text(
        "SELECT DISTINCT ON (action) * FROM approvals WHERE task_id = :task_id AND kind = 'action'"
        " ORDER BY action, created_at DESC"
    )
    rows = [dict(r) for r in (await conn.execute(query, {"task_id": task_id})).mappings()]
    return [
        {
            "approvalId": str(r["id"]),
            "action": r["action"],
            "status": r["status"],
            "edits": r["edits"],
            "reason": r["decision_reason"],
            "comments": json.loads(json.dumps(r["comments"] or [], default=str)),
            "decidedAt": r["decided_at"].isoformat() if r["decided_at"] else None,
        }
        for r in rows
    ]
