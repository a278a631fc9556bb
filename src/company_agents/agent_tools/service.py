"""The agent tools, one async function each, transport-neutral: the HTTP endpoint and the MCP server are
two faces of these.

Each takes the process's ``ToolEnv``, the caller's bearer token, the validated call and (for the run
tools) the ``Fence`` the caller presented, and returns a plain JSON-ready dict. Failures are our
``errors`` hierarchy; each face translates them (HTTP status codes, MCP tool errors).
"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from company_agents import leases
from company_agents.agent_tools import calls
from company_agents.agent_tools.fencing import IMPLIED, Fence, ToolEnv, fenced
from company_agents.approvals import store as approval_store

# How often a waiting request_approval looks at its approval (a primary-key read).
APPROVAL_POLL_SECONDS = 0.25
APPROVAL_NEXT = {
    "pending": "no answer yet: call request_approval again to keep waiting, or end the run (exit 0); "
    "the task waits blocked and the answer is in task.json of the next run",
    "approved": "go ahead with the action as asked",
    "approved_with_edits": "apply edits to the action, then go ahead",
    "denied": "do not do it; the task was handed to a person: stop",
    "expired": "nobody answered in time (treated as denied); the task was handed to a person: stop",
    "asked_question": "answer the question in comments: call request_approval again with the answer "
    "added to reasoning",
}


async def renew_lease(
    env: ToolEnv, token: str, call: calls.RenewLease, fence: Fence = IMPLIED
) -> dict[str, Any]:
    """Extend the lease from the database clock."""
    del call  # no arguments beyond the fence
    expires = await fenced(
        env,
        "renew_lease",
        token,
        fence,
        lambda conn, ident, ft: leases.renew(
            conn, ident, fencing_token=ft, lease_seconds=env.settings.lease_seconds
        ),
        one_statement=True,
    )
    return {"leaseExpiresAt": expires.isoformat()}


async def report_progress(
    env: ToolEnv, token: str, call: calls.ReportProgress, fence: Fence = IMPLIED
) -> dict[str, Any]:
    """Store a structured checkpoint with the run."""
    # Only the tool's own fields: the HTTP face's body also carries the fence.
    checkpoint = call.model_dump(include=set(calls.ReportProgress.model_fields), exclude_none=True)
    checkpoint_id = await fenced(
        env,
        "report_progress",
        token,
        fence,
        lambda conn, ident, ft: leases.report_progress(conn, ident, fencing_token=ft, checkpoint=checkpoint),
        one_statement=True,
    )
    return {"checkpointId": checkpoint_id}


async def mark_complete(
    env: ToolEnv, token: str, call: calls.MarkComplete, fence: Fence = IMPLIED
) -> dict[str, Any]:
    """Finish the attempt with its output; the task goes to review."""
    row = await fenced(
        env,
        "mark_complete",
        token,
        fence,
        lambda conn, ident, ft: leases.complete(
            conn, ident, fencing_token=ft, output=call.output, reasoning=call.reasoning
        ),
        one_statement=True,
    )
    return {"status": row["status"]}


async def mark_failed(
    env: ToolEnv, token: str, call: calls.MarkFailed, fence: Fence = IMPLIED
) -> dict[str, Any]:
    """Give up on the attempt; the task is retried or failed by the retry policy."""
    row = await fenced(
        env,
        "mark_failed",
        token,
        fence,
        lambda conn, ident, ft: leases.fail(
            conn,
            ident,
            fencing_token=ft,
            reason=call.reason,
            backoff=leases.RetryBackoff.from_settings(env.settings),
        ),
        one_statement=True,
    )
    return {"status": row["status"], "attempt": row["attempt"], "maxAttempts": row["max_attempts"]}


async def request_handoff(
    env: ToolEnv, token: str, call: calls.RequestHandoff, fence: Fence = IMPLIED
) -> dict[str, Any]:
    """Hand the task to a human."""
    row = await fenced(
        env,
        "request_handoff",
        token,
        fence,
        lambda conn, ident, ft: leases.handoff(conn, ident, fencing_token=ft, reason=call.reason),
        one_statement=True,
    )
    return {"status": row["status"]}


async def request_approval(
    env: ToolEnv, token: str, call: calls.RequestApproval, fence: Fence = IMPLIED
) -> dict[str, Any]:
    """Ask a person; wait (long poll, lease renewed) for the answer up to a bounded time. A refusal
    hands the task to a person at once: the run must not go ahead."""
    new = approval_store.NewApproval(
        action=call.action,
        reasoning=call.reasoning,
        cost_usd=call.cost.usd if call.cost else None,
        cost_tokens=call.cost.tokens if call.cost else None,
        side_effects=call.side_effects,
        if_denied=call.if_denied,
        categories=frozenset(call.categories),
    )

    async def ask(
        conn: AsyncConnection, ident: leases.RunIdentity, ft: int
    ) -> tuple[dict[str, Any], bool, int]:
        row, created = await approval_store.request(
            conn, ident, fencing_token=ft, new=new, expiry_seconds=env.settings.approval_expiry_seconds
        )
        return row, created, ft

    row, created, fencing_token = await fenced(env, "request_approval", token, fence, ask)
    # Later calls present the token this one resolved, so an implied fence stays the same attempt's.
    fence = Fence(fencing_token=fencing_token, task_id=fence.task_id)
    limit = env.settings.approval_wait_seconds
    wait = limit if call.wait_seconds is None else min(call.wait_seconds, limit)
    if row["status"] == "pending" and wait > 0:
        row = await _wait_for_answer(env, token, fence, row, wait)
    task_status = None
    if row["status"] in approval_store.REFUSALS:
        reason = f"approval {row['status']}" + (
            f": {row['decision_reason']}" if row["decision_reason"] else ""
        )
        ended = await fenced(
            env,
            "request_approval",
            token,
            fence,
            lambda conn, ident, ft: leases.handoff(conn, ident, fencing_token=ft, reason=reason),
        )
        task_status = ended["status"]
    return {
        **approval_store.to_public(row),
        "created": created,
        "taskStatus": task_status,
        "next": APPROVAL_NEXT[row["status"]],
    }


async def _wait_for_answer(
    env: ToolEnv, token: str, fence: Fence, row: dict[str, Any], wait: float
) -> dict[str, Any]:
    """Poll the approval until it is answered, expires, or ``wait`` runs out, keeping the lease renewed
    (a lost lease ends the wait with ``stale_fencing_token``)."""
    settings = env.settings
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    renew_every = settings.lease_seconds * 0.3
    next_renewal = loop.time()
    while row["status"] == "pending":
        now = loop.time()
        if now >= next_renewal:
            await fenced(
                env,
                "renew_lease",
                token,
                fence,
                lambda conn, ident, ft: leases.renew(
                    conn, ident, fencing_token=ft, lease_seconds=settings.lease_seconds
                ),
            )
            next_renewal = loop.time() + renew_every
        if now >= deadline:
            break
        await asyncio.sleep(min(APPROVAL_POLL_SECONDS, deadline - now))
        async with env.db.engine.begin() as conn:
            expired = await approval_store.expire_due(conn, only=row["id"])
            row = expired[0] if expired else await approval_store.get_approval(conn, row["id"])
    return row
