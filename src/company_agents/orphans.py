"""What a crashed orchestrator leaves behind on its host, and how the next one cleans it up.

Each run records the orchestrator process holding it (host, pid, process start time) and its agent's
process group (with the group leader's start time) as soon as the agent starts. When ``up`` starts, it
looks at the runs still held on its own host: a holder whose pid is gone, or names a process that started
at another time (a reused pid), is dead. Its agent groups are killed and its attempts ended at once, so
the tasks are queued again in seconds instead of after the lease window. Runs held on other hosts are
left to the lease and the reaper: from here we cannot tell whether their holder lives.

On Linux, agents also get ``PR_SET_PDEATHSIG(SIGKILL)``, so the agent process itself dies with the
orchestrator that started it; its own children are ended by the sweep.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any, LiteralString

import psutil
from sqlalchemy.ext.asyncio import AsyncConnection

from company_agents import leases
from company_agents.audit import SYSTEM_ACTOR
from company_agents.db import driver
from company_agents.db.database import Database
from company_agents.leases import RETRIES_LEFT_SQL
from company_agents.task_states import ACTIVE_SQL

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
# psutil derives start times from the boot time and clock ticks: stable for a process, exact to a tick.
START_TIME_TOLERANCE = 0.05


@dataclass(frozen=True)
class Holder:
    """An orchestrator process, identified so that a reused pid is not mistaken for it."""

    host: str
    pid: int
    started_at: float  # the process start time, seconds since the epoch


@cache
def this_holder() -> Holder:
    return Holder(host=socket.gethostname(), pid=os.getpid(), started_at=psutil.Process().create_time())


def holder_alive(pid: int, started_at: float | None) -> bool | None:
    """Is the holder process alive? ``None`` when it cannot be told (a live pid, no start time known)."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        created = proc.create_time()
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return None
    if started_at is None:
        return None
    return abs(created - started_at) <= START_TIME_TOLERANCE


# -- the agent side: die with the orchestrator ---------------------------------------------------------


@cache
def _prctl() -> Any:
    # Resolved in the parent: the child between fork and exec should do as little as possible.
    return ctypes.CDLL(None, use_errno=True).prctl


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` giving the child SIGKILL when this process dies (Linux); ``None`` elsewhere.

    The signal follows the death of the forking *thread*: agents are started from the event loop's
    thread, which lives as long as the orchestrator.
    """
    if not sys.platform.startswith("linux"):
        return None
    prctl, parent = _prctl(), os.getpid()

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before the signal was armed
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


def process_started_at(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


RECORD_PROCESS_SQL: LiteralString = """
UPDATE runs r
SET holder_host = %(holder_host)s, holder_pid = %(holder_pid)s,
    holder_started_at = to_timestamp(%(holder_started_at)s),
    agent_pgid = %(agent_pgid)s, agent_started_at = to_timestamp(CAST(%(agent_started_at)s AS float8))
FROM leases l
WHERE r.id = %(run_id)s AND r.status = 'running'
  AND l.task_id = %(task_id)s AND l.run_id = r.id AND l.fencing_token = %(fencing_token)s
  AND l.token_hash = %(token_hash)s
RETURNING r.id
"""


async def record_agent_process(
    conn: AsyncConnection, ident: leases.RunIdentity, *, fencing_token: int, pgid: int
) -> None:
    """Record this orchestrator as the run's holder and the agent's process group; fenced."""
    holder = this_holder()
    row = await driver.one(
        conn,
        RECORD_PROCESS_SQL,
        {
            **leases._params(ident, fencing_token),
            "holder_host": holder.host,
            "holder_pid": holder.pid,
            "holder_started_at": holder.started_at,
            "agent_pgid": pgid,
            "agent_started_at": process_started_at(pgid),
        },
    )
    if row is None:
        raise leases.stale_error(ident, fencing_token, "record_process")


# -- the sweep at start-up ------------------------------------------------------------------------------

# Runs still held on this host. Held by the lease is the test that matters (the run of the current
# attempt); a run with no recorded holder (its orchestrator died between the claim and the agent's
# start) is matched by the claim's ``hostname:pid``.
HELD_HERE_SQL: LiteralString = """
SELECT r.id AS run_id, r.task_id, r.fencing_token, r.orchestrator_id, r.holder_pid,
       extract(epoch FROM r.holder_started_at)::float8 AS holder_started_at, r.agent_pgid,
       extract(epoch FROM r.agent_started_at)::float8 AS agent_started_at
FROM leases l JOIN runs r ON r.id = l.run_id AND r.fencing_token = l.fencing_token
WHERE r.status = 'running'
  AND (r.holder_host = CAST(%(host)s AS text)
       OR (r.holder_host IS NULL
           AND left(r.orchestrator_id, length(CAST(%(host)s AS text)) + 1) = CAST(%(host)s AS text) || ':'))
"""

# Compare-and-set like every end of an attempt: the fenced task update is the gate, so a task another
# orchestrator took (or the reaper re-queued) since it was read is never touched. It counts as an
# attempt, as a crash does, but with no backoff: the agent did not fail, its orchestrator died. The lock
# order is the one every end of an attempt follows (``leases``: lease, task, run).
END_ORPHAN_SQL: LiteralString = f"""
WITH lease AS MATERIALIZED (
    SELECT l.task_id FROM leases l
    WHERE l.task_id = %(task_id)s AND l.fencing_token = %(fencing_token)s AND l.run_id = %(run_id)s
    FOR UPDATE
),
task AS (
    UPDATE tasks t
    SET status = CASE WHEN {RETRIES_LEFT_SQL} THEN 'queued' ELSE 'failed' END,
        failure_reason = %(reason)s,
        finished_at = CASE WHEN {RETRIES_LEFT_SQL} THEN NULL ELSE now() END,
        run_after = NULL,
        updated_at = now()
    FROM lease l
    WHERE t.id = l.task_id AND t.fencing_token = %(fencing_token)s AND t.status IN {ACTIVE_SQL}
    RETURNING t.id, t.company_id, t.status, t.attempt
),
dropped AS (
    DELETE FROM leases l USING task
    WHERE l.task_id = task.id AND l.fencing_token = %(fencing_token)s AND l.run_id = %(run_id)s
    RETURNING l.run_id
),
run AS (
    UPDATE runs r
    SET status = 'failed', exit_reason = 'crash', error = %(reason)s, ended_at = now()
    FROM task
    WHERE r.id = %(run_id)s AND r.task_id = task.id AND r.status = 'running'
    RETURNING r.id
),
event AS (
    INSERT INTO audit_events (company_id, actor, action, subject_type, subject_id, payload)
    SELECT company_id, %(actor)s,
           CASE WHEN status = 'queued' THEN 'task.requeued' ELSE 'task.failed' END, 'task', id::text,
           CAST(%(payload)s AS jsonb) || jsonb_build_object('status', status, 'attempt', attempt)
    FROM task
)
SELECT t.id AS task_id, t.status, t.attempt FROM task t
"""


@dataclass(frozen=True)
class Orphan:
    run_id: Any
    task_id: Any
    fencing_token: int
    holder: str
    agent_pgid: int | None
    agent_started_at: float | None


def _holder_pid(row: dict[str, Any]) -> int | None:
    if row["holder_pid"] is not None:
        return int(row["holder_pid"])
    _, _, pid = str(row["orchestrator_id"] or "").rpartition(":")
    return int(pid) if pid.isdigit() else None


def find_orphans(rows: list[dict[str, Any]], me: Holder) -> list[Orphan]:
    """The runs whose holder is certainly dead (never ours, never a holder we cannot judge)."""
    orphans = []
    for row in rows:
        pid = _holder_pid(row)
        if pid is None or pid == me.pid:
            continue
        if holder_alive(pid, row["holder_started_at"]) is not False:
            continue
        orphans.append(
            Orphan(
                run_id=row["run_id"],
                task_id=row["task_id"],
                fencing_token=int(row["fencing_token"]),
                holder=row["orchestrator_id"] or f"{me.host}:{pid}",
                agent_pgid=row["agent_pgid"],
                agent_started_at=row["agent_started_at"],
            )
        )
    return orphans


def _group_members(pgid: int) -> list[psutil.Process]:
    members = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                members.append(proc)
        except (ProcessLookupError, psutil.Error):
            continue
    return members


def kill_agent_group(pgid: int, started_at: float | None) -> int:
    """SIGKILL the members of an agent's process group; returns how many were killed.

    Only processes that started no earlier than the agent are touched: after a reboot or a wrap-around
    the group id may name someone else's processes. Without a known start time nothing is killed.
    """
    if started_at is None:
        return 0
    killed: set[int] = set()
    for _ in range(3):  # members may fork while we look: look again for ones not yet signalled
        members = [p for p in _group_members(pgid) if p.pid not in killed and _started_since(p, started_at)]
        if not members:
            break
        for proc in members:
            with contextlib.suppress(psutil.Error):
                proc.send_signal(signal.SIGKILL)
                killed.add(proc.pid)
    return len(killed)


def _started_since(proc: psutil.Process, started_at: float) -> bool:
    try:
        return proc.create_time() >= started_at - START_TIME_TOLERANCE
    except psutil.Error:
        return False


async def end_orphan(conn: AsyncConnection, orphan: Orphan, *, killed: int) -> dict[str, Any] | None:
    """End the attempt of a dead holder (compare-and-set); ``None`` when the task moved on."""
    reason = f"its orchestrator {orphan.holder} died"
    payload = {
        "reason": "orchestrator_died",
        "runId": str(orphan.run_id),
        "fencingToken": orphan.fencing_token,
        "holder": orphan.holder,
        "killedProcesses": killed,
    }
    return await driver.one(
        conn,
        END_ORPHAN_SQL,
        {
            "task_id": orphan.task_id,
            "run_id": orphan.run_id,
            "fencing_token": orphan.fencing_token,
            "reason": reason,
            "actor": SYSTEM_ACTOR,
            "payload": json.dumps(payload),
        },
    )


async def sweep_orphans(db: Database, *, me: Holder | None = None) -> list[dict[str, Any]]:
    """End the agents and attempts of dead orchestrators on this host; returns the tasks ended.

    Never raises: a sweep that cannot run leaves the work to the lease and the reaper, as before.
    """
    me = me or this_holder()
    ended: list[dict[str, Any]] = []
    try:
        async with db.autocommit() as conn:
            rows = await driver.rows(conn, HELD_HERE_SQL, {"host": me.host})
            for orphan in find_orphans(rows, me):
                killed = (
                    kill_agent_group(orphan.agent_pgid, orphan.agent_started_at)
                    if orphan.agent_pgid is not None
                    else 0
                )
                row = await end_orphan(conn, orphan, killed=killed)
                if row is None:
                    continue
                ended.append(row)
                log.warning(
                    "task %s %s: its orchestrator %s died (%d agent processes ended)",
                    row["task_id"],
                    row["status"],
                    orphan.holder,
                    killed,
                    extra={
                        "action": "orphan_ended",
                        "task_id": str(row["task_id"]),
                        "run_id": str(orphan.run_id),
                    },
                )
    except Exception:
        log.exception("the sweep of dead orchestrators' runs failed", extra={"action": "orphan_sweep_error"})
    return ended
