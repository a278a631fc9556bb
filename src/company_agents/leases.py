"""Claims, leases and every write made on behalf of a running attempt (docs/design.md §4).

The invariants, each enforced in the SQL below rather than in Python:

1. A claim increments ``fencing_token`` and inserts the run, the lease and the audit event in one
   statement (one transaction). Lease times come from the database clock.
2. Every write for an attempt matches ``task id + fencing_token + lease token + expected status`` and
   must change exactly one row, or it is rejected as stale and nothing is changed.
3. The reaper deletes a lease only while it is still expired (re-checked under the row lock), and
   re-queues the task only if the fencing token is still the one the lease carried, so a task that
   finished between its read and its write is never touched.

Lock order. Every statement or transaction that writes a leased task locks, in this order:
**the lease row, then the task row, then the run row**. Two writers of one task therefore queue on
the lease and never hold one row each while waiting for the other's (a cancel racing the reaper did
exactly that, and PostgreSQL answered ``40P01 deadlock detected``). In one statement the order is
made structural rather than left to the plan: the lease is locked in a ``lease AS MATERIALIZED
(SELECT … FOR UPDATE)`` CTE and the task update joins it, so no task row reaches the update before
its lease row is locked. The reaper's ``FOR UPDATE SKIP LOCKED`` passes over a lease someone is
working on instead of waiting. The board's moves (``tasks._move``) follow the same order in two
statements. A claim is the one exception (task, then a *new* lease row no one else can hold yet).
Serialization failures and deadlocks that remain possible (see ``tasks._lock_for_move``) are retried
whole, at the transaction boundary, by ``db.retry.retry_transient`` and nowhere else.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, LiteralString
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncConnection

from company_agents.audit.rejections import record_once_per_window
from company_agents.db import driver
from company_agents.errors import Conflict, StaleFencingToken, Unauthorized
from company_agents.settings import Settings
from company_agents.task_states import ACTIVE_SQL
from company_agents.tokens import LEASE_TOKEN_PREFIX, hash_token, new_lease_token


@dataclass(frozen=True)
class RetryBackoff:
    """How long a failed attempt's task waits before it may be claimed again.

    After the n-th failure that counts (releases do not), the wait is ``min(cap, base * 2**(n-1))``
    seconds, jittered to between half of it and all of it: a crash-looping agent no longer burns its
    attempts in seconds, and tasks that failed together do not come back together.
    """

    base_seconds: float = Settings.model_fields["retry_backoff_base_seconds"].default
    cap_seconds: float = Settings.model_fields["retry_backoff_cap_seconds"].default

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryBackoff:
        return cls(settings.retry_backoff_base_seconds, settings.retry_backoff_cap_seconds)

    def params(self) -> dict[str, float]:
        return {"backoff_base": float(self.base_seconds), "backoff_cap": float(self.cap_seconds)}


DEFAULT_BACKOFF = RetryBackoff()
# The per-run budget reservation a claim takes unless told otherwise (Settings.budget_reservation_usd).
DEFAULT_RESERVATION: Decimal = Settings.model_fields["budget_reservation_usd"].default

# The retry rule, in SQL over the task row ``t`` as it was before the statement: attempts that counted
# (claims minus releases) below the limit go back to the queue, after the backoff above. The exponent is
# bounded so that a large max_attempts cannot overflow the float.
RETRIES_LEFT_SQL = "t.attempt - t.releases < t.max_attempts"
_RETRY_AT = (
    "now() + make_interval(secs => least(%(backoff_cap)s, %(backoff_base)s"
    " * power(2, least(greatest(t.attempt - t.releases - 1, 0), 60))) * (0.5 + 0.5 * random()))"
)


@dataclass(frozen=True)
class Claim:
    """What a claimer receives: the lease record handed to the adapter."""

    task_id: UUID
    run_id: UUID
    company_id: UUID
    agent_id: UUID
    attempt: int
    fencing_token: int
    lease_token: str
    lease_expires_at: datetime
    title: str
    # The budget envelope reserved for this run (docs/budgets.md).
    reserved_usd: Decimal = Decimal(0)

    def identity(self) -> RunIdentity:
        """The claimer already knows who it is: no need to look the token up again."""
        return RunIdentity(
            run_id=self.run_id,
            task_id=self.task_id,
            agent_id=self.agent_id,
            company_id=self.company_id,
            fencing_token=self.fencing_token,
            token_hash=hash_token(self.lease_token),
        )


@dataclass(frozen=True)
class RunIdentity:
    """Who a lease token speaks for: one run of one task, for one agent."""

    run_id: UUID
    task_id: UUID
    agent_id: UUID
    company_id: UUID
    fencing_token: int
    token_hash: str


# One round trip: the whole claim runs inside ca_claim_tasks() (migration 0003), which first locks the
# agent row, then — in a second statement with a fresh snapshot, so it sees every lease a concurrent
# claim for the same agent committed — claims within the agent's remaining capacity.
# With a reservation size, the claim also reserves each task's budget envelope on its lease, in the same
# transaction (docs/budgets.md); NULL claims without budgets (the benchmark's baseline only).
CLAIM_SQL: LiteralString = """
SELECT task_id, company_id, attempt, fencing_token, title, n, run_id, expires_at, reserved_usd
FROM ca_claim_tasks(%(agent_id)s, %(limit)s, CAST(%(hashes)s AS text[]), %(holder)s, %(lease_seconds)s,
                    CAST(%(reserve)s AS numeric))
"""

AUTHENTICATE_SQL: LiteralString = """
SELECT id AS run_id, task_id, agent_id, company_id, fencing_token
FROM runs WHERE lease_token_hash = %(token_hash)s
"""

# Locks the lease row only; the task is read, not locked.
RENEW_SQL: LiteralString = f"""
UPDATE leases l
SET expires_at = now() + make_interval(secs => %(lease_seconds)s), renewed_at = now()
FROM tasks t
WHERE l.task_id = %(task_id)s AND l.fencing_token = %(fencing_token)s AND l.token_hash = %(token_hash)s
  AND t.id = l.task_id AND t.fencing_token = %(fencing_token)s AND t.status IN {ACTIVE_SQL}
RETURNING l.expires_at
"""

# The lease row is locked first: a reaper or a completion deleting it concurrently makes this match nothing.
PROGRESS_SQL: LiteralString = f"""
WITH lease AS (
    SELECT task_id, run_id FROM leases
    WHERE task_id = %(task_id)s AND fencing_token = %(fencing_token)s AND token_hash = %(token_hash)s
    FOR UPDATE
),
task AS (
    SELECT t.id FROM tasks t JOIN lease l ON l.task_id = t.id
    WHERE t.fencing_token = %(fencing_token)s AND t.status IN {ACTIVE_SQL}
),
checkpoint AS (
    INSERT INTO run_checkpoints (run_id, fencing_token, payload)
    SELECT l.run_id, %(fencing_token)s, CAST(%(payload)s AS jsonb) FROM lease l JOIN task ON true
    RETURNING id
)
SELECT (SELECT id FROM checkpoint) AS checkpoint_id
"""

# The run's workspace path is recorded in the same statement (unconditionally: it is the orchestrator's
# own bookkeeping, so a workspace made for a run that lost its lease is still found by housekeeping).
# Lock order holds: PostgreSQL runs a data-modifying CTE the main query does not read after the main
# query, so the run row is locked after the lease and the task (test_lock_order checks it).
START_SQL: LiteralString = """
WITH workspace AS (
    UPDATE runs SET workspace_path = %(workspace_path)s, isolation = %(isolation)s
    WHERE id = %(run_id)s RETURNING id
),
lease AS (
    SELECT task_id, run_id FROM leases
    WHERE task_id = %(task_id)s AND fencing_token = %(fencing_token)s AND token_hash = %(token_hash)s
    FOR UPDATE
),
task AS (
    UPDATE tasks t SET status = 'running', updated_at = now()
    FROM lease l
    WHERE t.id = l.task_id AND t.fencing_token = %(fencing_token)s AND t.status = 'assigned'
    RETURNING t.id, t.company_id
),
event AS (
    INSERT INTO audit_events (company_id, actor, action, subject_type, subject_id, payload)
    SELECT company_id, %(actor)s, 'task.started', 'task', id::text,
           jsonb_build_object('runId', CAST(%(run_id)s AS text), 'fencingToken', %(fencing_token)s)
    FROM task
)
SELECT count(*) AS started FROM task
"""

# One template for every way an attempt ends (complete, fail, handoff, release), as ONE statement that is
# all-or-nothing by construction. Lock order (module docstring): the lease CTE locks the lease row first;
# the fenced task update joins it, so it only reaches the task once the lease is held; the lease delete,
# the run update and the audit insert only act on the row the task update returns. A concurrent reaper
# or cancel that got the lease first has deleted it when this one gets the lock: nothing matches and
# nothing at all is written.
_END_TEMPLATE = """
WITH lease AS MATERIALIZED (
    SELECT l.task_id FROM leases l
    WHERE l.task_id = %(task_id)s AND l.fencing_token = %(fencing_token)s AND l.token_hash = %(token_hash)s
    FOR UPDATE
),
task AS (
    UPDATE tasks t
    SET status = {task_status}, updated_at = now(), {task_extra}
    FROM lease l
    WHERE t.id = l.task_id AND t.fencing_token = %(fencing_token)s AND t.status IN {active}
    RETURNING t.id, t.company_id, t.status, t.attempt, t.max_attempts, t.releases, t.run_after
),
dropped AS (
    DELETE FROM leases l USING task
    WHERE l.task_id = task.id AND l.fencing_token = %(fencing_token)s AND l.token_hash = %(token_hash)s
    RETURNING l.run_id
),
run AS (
    UPDATE runs r
    SET status = {run_status}, exit_reason = %(exit_reason)s, ended_at = now(), {run_extra}
    FROM task
    WHERE r.id = %(run_id)s AND r.task_id = task.id AND r.status = 'running'
    RETURNING r.id
),
event AS (
    INSERT INTO audit_events (company_id, actor, action, subject_type, subject_id, payload)
    SELECT company_id, %(actor)s, {action}, 'task', id::text,
           CAST(%(event_payload)s AS jsonb) || jsonb_build_object('status', status, 'attempt', attempt)
    FROM task
)
SELECT t.status, t.attempt, t.max_attempts, t.releases, t.run_after, (SELECT count(*) FROM dropped) AS leases
FROM task t
"""

COMPLETE_SQL: LiteralString = _END_TEMPLATE.format(
    task_status="'review'",
    task_extra="output = CAST(%(output)s AS jsonb), failure_reason = NULL",
    run_status="'succeeded'",
    run_extra="output = CAST(%(output)s AS jsonb)",
    action="'task.completed'",
    active=ACTIVE_SQL,
)

# Retry policy: back to the queue, after the backoff, while attempts remain; otherwise failed (terminal).
FAIL_SQL: LiteralString = _END_TEMPLATE.format(
    task_status=f"CASE WHEN {RETRIES_LEFT_SQL} THEN 'queued' ELSE 'failed' END",
    task_extra=(
        "failure_reason = %(reason)s, "
        f"finished_at = CASE WHEN {RETRIES_LEFT_SQL} THEN NULL ELSE now() END, "
        f"run_after = CASE WHEN {RETRIES_LEFT_SQL} THEN {_RETRY_AT} END"
    ),
    run_status="'failed'",
    run_extra="error = %(reason)s, exit_code = CAST(%(exit_code)s AS integer)",
    action="CASE WHEN status = 'queued' THEN 'task.requeued' ELSE 'task.failed' END",
    active=ACTIVE_SQL,
)

HANDOFF_SQL: LiteralString = _END_TEMPLATE.format(
    task_status="'handoff'",
    task_extra="failure_reason = %(reason)s",
    run_status="'handed_off'",
    run_extra="error = %(reason)s",
    action="'task.handoff_requested'",
    active=ACTIVE_SQL,
)

# A graceful stop of the orchestrator: the task goes straight back to the queue (no backoff) and the
# attempt does not count against the retry limit (it is counted in ``releases``).
RELEASE_SQL: LiteralString = _END_TEMPLATE.format(
    task_status="'queued'",
    task_extra="releases = t.releases + 1, run_after = NULL",
    run_status="'cancelled'",
    run_extra="error = %(reason)s",
    action="'task.released'",
    active=ACTIVE_SQL,
)

# A hard or catastrophic budget breach stops the attempt (docs/budgets.md): the task waits as blocked
# (reason budget) for a budget_override or a top-up; the attempt does not count against the retry
# limit (it is counted in ``releases``), as the agent did nothing wrong.
BLOCK_SQL: LiteralString = _END_TEMPLATE.format(
    task_status="'blocked'",
    task_extra=(
        "blocked_reason = 'budget', failure_reason = %(reason)s, releases = t.releases + 1, run_after = NULL"
    ),
    run_status="'cancelled'",
    run_extra="error = %(reason)s",
    action="'task.blocked'",
    active=ACTIVE_SQL,
)

# Compare-and-set (invariant 3): the inner SELECT locks expired leases (skipping any being renewed right
# now); the outer condition is re-checked on the locked row version. An expired lease is a failed
# attempt: the same retry rule and backoff as FAIL_SQL.
REAP_SQL: LiteralString = f"""
WITH expired AS (
    DELETE FROM leases l
    WHERE l.task_id IN (
        SELECT task_id FROM leases WHERE expires_at < now()
        ORDER BY expires_at LIMIT %(batch)s FOR UPDATE SKIP LOCKED
    ) AND l.expires_at < now()
    RETURNING l.task_id, l.run_id, l.fencing_token
),
task AS (
    UPDATE tasks t
    SET status = CASE WHEN {RETRIES_LEFT_SQL} THEN 'queued' ELSE 'failed' END,
        failure_reason = 'lease_expired',
        finished_at = CASE WHEN {RETRIES_LEFT_SQL} THEN NULL ELSE now() END,
        run_after = CASE WHEN {RETRIES_LEFT_SQL} THEN {_RETRY_AT} END,
        updated_at = now()
    FROM expired e
    WHERE t.id = e.task_id AND t.fencing_token = e.fencing_token AND t.status IN {ACTIVE_SQL}
    RETURNING t.id, t.company_id, t.status, t.attempt, t.fencing_token
),
run AS (
    UPDATE runs r
    SET status = 'failed', exit_reason = 'lease_expired', error = 'lease expired', ended_at = now()
    FROM expired e
    WHERE r.id = e.run_id AND r.status = 'running'
    RETURNING r.id
),
event AS (
    INSERT INTO audit_events (company_id, actor, action, subject_type, subject_id, payload)
    SELECT company_id, 'system:reaper',
           CASE WHEN status = 'queued' THEN 'task.requeued' ELSE 'task.failed' END, 'task', id::text,
           jsonb_build_object('reason', 'lease_expired', 'attempt', attempt, 'fencingToken', fencing_token)
    FROM task
)
SELECT t.id AS task_id, t.status, t.attempt FROM task t
"""


async def claim(
    conn: AsyncConnection,
    *,
    agent_id: UUID,
    holder: str,
    lease_seconds: float,
    limit: int = 1,
    reserve_usd: Decimal | None = DEFAULT_RESERVATION,
) -> list[Claim]:
    """Claim up to ``limit`` runnable tasks for one agent, within its capacity. Empty when the agent is
    unknown, paused, retired, at capacity, its company is archived, nothing is runnable, or a budget of
    the agent's company, team or the agent itself has no room left. Each claim reserves up to
    ``reserve_usd`` of that room (``None``: no budgets, for the benchmark's baseline only).

    A single statement: safe in autocommit mode (the fast path) or inside a caller's transaction."""
    if reserve_usd is not None and reserve_usd <= 0:
        # The claim divides the room by it; settings refuse it too (budget_reservation_usd > 0).
        raise ValueError(f"reserve_usd must be positive or None, not {reserve_usd}")
    tokens = [new_lease_token() for _ in range(limit)]
    rows = await driver.rows(
        conn,
        CLAIM_SQL,
        {
            "agent_id": agent_id,
            "limit": limit,
            "hashes": [hash_token(t) for t in tokens],
            "holder": holder,
            "lease_seconds": float(lease_seconds),
            "reserve": reserve_usd,
        },
    )
    return [
        Claim(
            task_id=r["task_id"],
            run_id=r["run_id"],
            company_id=r["company_id"],
            agent_id=agent_id,
            attempt=r["attempt"],
            fencing_token=r["fencing_token"],
            lease_token=tokens[r["n"] - 1],
            lease_expires_at=r["expires_at"],
            title=r["title"],
            reserved_usd=r["reserved_usd"],
        )
        for r in rows
    ]


async def authenticate(conn: AsyncConnection, lease_token: str) -> RunIdentity:
    """The run a lease token belongs to (it outlives the lease); ``Unauthorized`` when unknown."""
    if not lease_token.startswith(LEASE_TOKEN_PREFIX):
        raise Unauthorized("not a lease token")
    token_hash = hash_token(lease_token)
    row = await driver.one(conn, AUTHENTICATE_SQL, {"token_hash": token_hash})
    if row is None:
        raise Unauthorized("unknown lease token")
    return RunIdentity(token_hash=token_hash, **row)


def _params(ident: RunIdentity, fencing_token: int) -> dict[str, Any]:
    return {
        "task_id": ident.task_id,
        "run_id": ident.run_id,
        "fencing_token": fencing_token,
        "token_hash": ident.token_hash,
        "actor": f"agent:{ident.agent_id}",
    }


LEASE_CURRENT_SQL: LiteralString = """
SELECT 1 AS current FROM leases
WHERE task_id = %(task_id)s AND fencing_token = %(fencing_token)s AND token_hash = %(token_hash)s
"""


async def lease_is_current(conn: AsyncConnection, ident: RunIdentity, *, fencing_token: int) -> bool:
    """The run still holds its task under this fencing token (for reads made on its behalf)."""
    row = await driver.one(conn, LEASE_CURRENT_SQL, _params(ident, fencing_token))
    return row is not None


# Where one run stands, for telling "my retried write had already committed" from "I lost the lease"
# when a write retried after a broken connection comes back stale.
RUN_STANDING_SQL: LiteralString = """
SELECT r.status AS run_status, r.exit_reason, t.status AS task_status,
       EXISTS (SELECT 1 FROM leases l
               WHERE l.task_id = t.id AND l.fencing_token = %(fencing_token)s
                 AND l.token_hash = %(token_hash)s) AS holds_lease
FROM runs r JOIN tasks t ON t.id = r.task_id AND t.fencing_token = %(fencing_token)s
WHERE r.id = %(run_id)s
"""


@dataclass(frozen=True)
class RunStanding:
    run_status: str
    exit_reason: str | None
    task_status: str
    holds_lease: bool


async def run_standing(
    conn: AsyncConnection, ident: RunIdentity, *, fencing_token: int
) -> RunStanding | None:
    """The run's status and whether it holds its lease; None when the task's fence has moved on."""
    row = await driver.one(conn, RUN_STANDING_SQL, _params(ident, fencing_token))
    return RunStanding(**row) if row is not None else None


def stale_error(ident: RunIdentity, fencing_token: int, tool: str) -> StaleFencingToken:
    return StaleFencingToken(
        f"{tool} rejected: fencing token {fencing_token} is stale for task {ident.task_id}",
        task=str(ident.task_id),
        run=str(ident.run_id),
        fencingToken=fencing_token,
    )


async def renew(
    conn: AsyncConnection, ident: RunIdentity, *, fencing_token: int, lease_seconds: float
) -> datetime:
    """Extend the lease from the database clock."""
    row = await driver.one(
        conn, RENEW_SQL, {**_params(ident, fencing_token), "lease_seconds": float(lease_seconds)}
    )
    if row is None:
        raise stale_error(ident, fencing_token, "renew_lease")
    expires: datetime = row["expires_at"]
    return expires


async def start(
    conn: AsyncConnection,
    ident: RunIdentity,
    *,
    fencing_token: int,
    workspace_path: str,
    isolation: str | None = None,
) -> None:
    """``assigned → running``: the adapter is launching the agent process in ``workspace_path``,
    isolated as ``isolation`` (``user``, ``sandbox``, ``none``)."""
    params = {**_params(ident, fencing_token), "workspace_path": workspace_path, "isolation": isolation}
    row = await driver.one(conn, START_SQL, params)
    if row is None or row["started"] != 1:
        raise stale_error(ident, fencing_token, "start_run")


async def report_progress(
    conn: AsyncConnection, ident: RunIdentity, *, fencing_token: int, checkpoint: dict[str, Any]
) -> int:
    """Store a structured checkpoint with the run; returns its id."""
    row = await driver.one(
        conn, PROGRESS_SQL, {**_params(ident, fencing_token), "payload": json.dumps(checkpoint)}
    )
    if row is None or row["checkpoint_id"] is None:
        raise stale_error(ident, fencing_token, "report_progress")
    return int(row["checkpoint_id"])


async def _end(
    conn: AsyncConnection,
    sql: LiteralString,
    ident: RunIdentity,
    *,
    fencing_token: int,
    tool: str,
    exit_reason: str,
    extra: dict[str, Any],
    event_payload: dict[str, Any],
) -> dict[str, Any]:
    params = {
        **_params(ident, fencing_token),
        "exit_reason": exit_reason,
        "event_payload": json.dumps(
            {"runId": str(ident.run_id), "fencingToken": fencing_token, **event_payload}
        ),
        **extra,
    }
    row = await driver.one(conn, sql, params)
    if row is None:
        raise stale_error(ident, fencing_token, tool)
    return row


async def complete(
    conn: AsyncConnection, ident: RunIdentity, *, fencing_token: int, output: Any, reasoning: str = ""
) -> dict[str, Any]:
    """``→ review`` with the output; releases the lease."""
    body = json.dumps({"output": output, "reasoning": reasoning})
    return await _end(
        conn,
        COMPLETE_SQL,
        ident,
        fencing_token=fencing_token,
        tool="mark_complete",
        exit_reason="complete",
        extra={"output": body},
        event_payload={"reasoning": reasoning[:500]},
    )


# Several completions (of several runs) in ONE statement: each row is fenced exactly as COMPLETE_SQL
# fences one — its lease row (task, fencing token, token hash) locked first, the task updated only under
# its own token and an active status — and each is answered on its own (a stale one matches nothing and
# comes back missing). Leases are locked in task-id order, so two batches never deadlock on each other.
COMPLETE_MANY_SQL: LiteralString = f"""
WITH input AS (
    SELECT * FROM unnest(CAST(%(task_ids)s AS uuid[]), CAST(%(run_ids)s AS uuid[]),
                         CAST(%(fencing_tokens)s AS bigint[]), CAST(%(token_hashes)s AS text[]),
                         CAST(%(outputs)s AS jsonb[]), CAST(%(actors)s AS text[]),
                         CAST(%(event_payloads)s AS jsonb[]))
        AS i(task_id, run_id, fencing_token, token_hash, output, actor, event_payload)
),
lease AS MATERIALIZED (
    SELECT l.task_id, i.run_id, i.fencing_token, i.token_hash, i.output, i.actor, i.event_payload
    FROM leases l JOIN input i
      ON l.task_id = i.task_id AND l.fencing_token = i.fencing_token AND l.token_hash = i.token_hash
    ORDER BY l.task_id
    FOR UPDATE OF l
),
task AS (
    UPDATE tasks t
    SET status = 'review', updated_at = now(), output = l.output, failure_reason = NULL
    FROM lease l
    WHERE t.id = l.task_id AND t.fencing_token = l.fencing_token AND t.status IN {ACTIVE_SQL}
    RETURNING t.id, t.company_id, t.status, t.attempt, t.max_attempts, t.releases, t.run_after
),
dropped AS (
    DELETE FROM leases l USING task, lease x
    WHERE l.task_id = task.id AND x.task_id = task.id
      AND l.fencing_token = x.fencing_token AND l.token_hash = x.token_hash
    RETURNING l.task_id
),
run AS (
    UPDATE runs r
    SET status = 'succeeded', exit_reason = 'complete', ended_at = now(), output = x.output
    FROM task JOIN lease x ON x.task_id = task.id
    WHERE r.id = x.run_id AND r.task_id = task.id AND r.status = 'running'
    RETURNING r.id
),
event AS (
    INSERT INTO audit_events (company_id, actor, action, subject_type, subject_id, payload)
    SELECT task.company_id, x.actor, 'task.completed', 'task', task.id::text,
           x.event_payload || jsonb_build_object('status', task.status, 'attempt', task.attempt)
    FROM task JOIN lease x ON x.task_id = task.id
    ORDER BY task.id
)
SELECT t.id AS task_id, t.status, t.attempt, t.max_attempts, t.releases, t.run_after,
       (SELECT count(*) FROM dropped d WHERE d.task_id = t.id) AS leases
FROM task t
"""


@dataclass(frozen=True)
class Completion:
    """One run's ``complete`` for :func:`complete_many`."""

    ident: RunIdentity
    fencing_token: int
    output: Any
    reasoning: str = ""


async def complete_many(
    conn: AsyncConnection, completions: Sequence[Completion]
) -> list[dict[str, Any] | StaleFencingToken]:
    """``complete`` for several runs in one statement; one answer per completion, in order.

    Each is fenced on its own: a stale one changes nothing and is answered with its
    ``StaleFencingToken`` (returned, not raised, so the others' answers are not lost). In autocommit
    mode the statement is its own transaction: all of the current ones are committed together.
    """
    if not completions:
        return []
    if len({c.ident.task_id for c in completions}) != len(completions):
        raise ValueError("complete_many: one completion per task")
    params: dict[str, list[Any]] = {
        key: []
        for key in (
            "task_ids",
            "run_ids",
            "fencing_tokens",
            "token_hashes",
            "outputs",
            "actors",
            "event_payloads",
        )
    }
    for c in completions:
        p = _params(c.ident, c.fencing_token)
        params["task_ids"].append(c.ident.task_id)
        params["run_ids"].append(c.ident.run_id)
        params["fencing_tokens"].append(c.fencing_token)
        params["token_hashes"].append(c.ident.token_hash)
        params["outputs"].append(json.dumps({"output": c.output, "reasoning": c.reasoning}))
        params["actors"].append(p["actor"])
        params["event_payloads"].append(
            json.dumps(
                {
                    "runId": str(c.ident.run_id),
                    "fencingToken": c.fencing_token,
                    "reasoning": c.reasoning[:500],
                }
            )
        )
    found = {row.pop("task_id"): row for row in await driver.rows(conn, COMPLETE_MANY_SQL, params)}
    return [
        found.get(c.ident.task_id) or stale_error(c.ident, c.fencing_token, "mark_complete")
        for c in completions
    ]


async def fail(
    conn: AsyncConnection,
    ident: RunIdentity,
    *,
    fencing_token: int,
    reason: str,
    exit_reason: str = "failed",
    exit_code: int | None = None,
    backoff: RetryBackoff = DEFAULT_BACKOFF,
) -> dict[str, Any]:
    """End the attempt as failed; the task is re-queued (after ``backoff``) or failed by the retry
    policy."""
    return await _end(
        conn,
        FAIL_SQL,
        ident,
        fencing_token=fencing_token,
        tool="mark_failed",
        exit_reason=exit_reason,
        extra={"reason": reason, "exit_code": exit_code, **backoff.params()},
        event_payload={"reason": reason[:500], "exitReason": exit_reason},
    )


async def handoff(
    conn: AsyncConnection, ident: RunIdentity, *, fencing_token: int, reason: str
) -> dict[str, Any]:
    """``→ handoff``: waiting for a human; releases the lease."""
    return await _end(
        conn,
        HANDOFF_SQL,
        ident,
        fencing_token=fencing_token,
        tool="request_handoff",
        exit_reason="handoff",
        extra={"reason": reason},
        event_payload={"reason": reason[:500]},
    )


async def release(
    conn: AsyncConnection,
    ident: RunIdentity,
    *,
    fencing_token: int,
    reason: str,
    exit_reason: str = "shutdown",
) -> dict[str, Any]:
    """Give the task back to the queue at once (orchestrator shutdown, or no budget room left for the
    run: ``exit_reason`` ``budget``); the attempt is not counted."""
    return await _end(
        conn,
        RELEASE_SQL,
        ident,
        fencing_token=fencing_token,
        tool="release",
        exit_reason=exit_reason,
        extra={"reason": reason},
        event_payload={"reason": reason[:500]},
    )


async def block_for_budget(
    conn: AsyncConnection, ident: RunIdentity, *, fencing_token: int, reason: str, exit_reason: str = "budget"
) -> dict[str, Any]:
    """End the attempt because a budget stopped it: the task waits as ``blocked`` (reason ``budget``)."""
    return await _end(
        conn,
        BLOCK_SQL,
        ident,
        fencing_token=fencing_token,
        tool="budget_stop",
        exit_reason=exit_reason,
        extra={"reason": reason},
        event_payload={"reason": reason[:500], "blockedReason": "budget"},
    )


async def reap_expired(
    conn: AsyncConnection, *, batch: int = 100, backoff: RetryBackoff = DEFAULT_BACKOFF
) -> list[dict[str, Any]]:
    """Remove expired leases; re-queue their tasks after ``backoff`` (or fail them past the retry
    limit)."""
    return await driver.rows(conn, REAP_SQL, {"batch": batch, **backoff.params()})


async def record_rejection(
    conn: AsyncConnection,
    ident: RunIdentity | None,
    *,
    tool: str,
    error: Conflict | Unauthorized,
    presented: Any,
) -> None:
    """Audit a rejected write (in its own transaction: the rejected one changed nothing).

    At most one row per run and tool per minute (``audit.rejections``): a zombie retrying in a loop is
    told 409 every time but recorded once.
    """
    run_id = str(ident.run_id) if ident else None
    await record_once_per_window(
        conn,
        match={"tool": tool, "runId": run_id},
        actor=f"agent:{ident.agent_id}" if ident else "system:tool_endpoint",
        action="lease.stale_write_rejected" if ident else "lease.unauthorized_write_rejected",
        subject_type="task" if ident else "tool",
        subject_id=ident.task_id if ident else tool,
        company_id=ident.company_id if ident else None,
        payload={"tool": tool, "code": error.code, "presentedFencingToken": presented, "runId": run_id},
    )
