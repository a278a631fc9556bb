"""One lock order for every write on a leased task: the lease row first, then the task, then the run.

Two kinds of tests, both with real transactions held open at a chosen point:

- the order itself: while another transaction holds the lease row, each write must wait for it
  *before* it has locked the task (a probe with NOWAIT still gets the task row);
- the pairs that deadlocked or could (cancel vs reaper, completion vs reaper, cancel vs completion,
  renewal vs cancel), in both orders: no deadlock error, the side that committed first wins, and the
  other side either applies after it or changes nothing at all.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast
from uuid import UUID

import pytest
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from company_agents import leases, tasks
from company_agents.db.retry import retry_transient
from company_agents.db.schema import leases as leases_table
from company_agents.errors import StaleFencingToken
from tests.integration.queue_helpers import engine, make_world

__all__ = ["engine"]

WAIT = 30.0  # generous: the machine is shared


@dataclass
class Leased:
    task_id: UUID
    claim: leases.Claim

    @property
    def ident(self) -> leases.RunIdentity:
        return self.claim.identity()

    @property
    def fence(self) -> int:
        return self.claim.fencing_token


async def _leased(engine: AsyncEngine, *, expired: bool = False) -> Leased:
    world = await make_world(engine, agent_names=("ada",))
    async with engine.begin() as conn:
        task = await tasks.create_task(conn, company="acme", title="Contended", agent="ada")
    async with engine.begin() as conn:
        (claim,) = await leases.claim(conn, agent_id=world.agents["ada"]["id"], holder="t", lease_seconds=60)
    if expired:
        async with engine.begin() as conn:
            await conn.execute(
                update(leases_table)
                .where(leases_table.c.task_id == task["id"])
                .values(
                    acquired_at=text("now() - interval '2 seconds'"),
                    renewed_at=text("now() - interval '2 seconds'"),
                    expires_at=text("now() - interval '1 second'"),
                )
            )
    return Leased(task_id=task["id"], claim=claim)


async def _pid(conn: AsyncConnection) -> int:
    return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def _wait_until_blocked(engine: AsyncEngine, pid: int, job: asyncio.Task[Any]) -> None:
    """Poll until backend ``pid`` waits on a lock (a finished job fails the test with its result)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while loop.time() < deadline:
        if job.done():
            raise AssertionError(f"expected it to wait for the lock, but it finished: {job.result()!r}")
        async with engine.connect() as conn:
            waiting = (
                await conn.execute(
                    text("SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = :p"), {"p": pid}
                )
            ).scalar()
        if waiting:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("it never waited for the lock")


async def _row_is_free(engine: AsyncEngine, table: str, row_id: UUID) -> bool:
    """Whether a write lock on the row can be taken right now (no one else holds one)."""
    sql = f"SELECT 1 FROM {table} WHERE id = :id FOR NO KEY UPDATE NOWAIT"
    async with engine.connect() as conn:
        try:
            await conn.execute(text(sql), {"id": row_id})
        except Exception as exc:
            if "55P03" in repr(getattr(exc, "orig", exc)) or "could not obtain lock" in str(exc):
                return False
            raise
        finally:
            await conn.rollback()
    return True


Write = Callable[[AsyncConnection, Leased], Awaitable[Any]]

WRITES: dict[str, Write] = {
    "complete": lambda c, s: leases.complete(c, s.ident, fencing_token=s.fence, output="x"),
    "fail": lambda c, s: leases.fail(c, s.ident, fencing_token=s.fence, reason="boom"),
    "handoff": lambda c, s: leases.handoff(c, s.ident, fencing_token=s.fence, reason="help"),
    "release": lambda c, s: leases.release(c, s.ident, fencing_token=s.fence, reason="bye"),
    "renew": lambda c, s: leases.renew(c, s.ident, fencing_token=s.fence, lease_seconds=60),
    "progress": lambda c, s: leases.report_progress(c, s.ident, fencing_token=s.fence, checkpoint={}),
    "start": lambda c, s: leases.start(c, s.ident, fencing_token=s.fence, workspace_path="/w"),
    "cancel": lambda c, s: tasks.cancel_task(c, str(s.task_id)),
}


@pytest.mark.parametrize("write", sorted(WRITES))
async def test_every_write_waits_for_the_lease_before_it_locks_the_task(
    engine: AsyncEngine, write: str
) -> None:
    s = await _leased(engine)
    run_id = s.claim.run_id
    async with engine.connect() as holder:
        await holder.begin()
        await holder.execute(text("SELECT 1 FROM leases WHERE task_id = :t FOR UPDATE"), {"t": s.task_id})

        async def go() -> Any:
            async with engine.begin() as conn:
                started.set_result(await _pid(conn))
                return await WRITES[write](conn, s)

        started: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        job = asyncio.create_task(go())
        await _wait_until_blocked(engine, await started, job)
        task_free = await _row_is_free(engine, "tasks", s.task_id)
        run_free = await _row_is_free(engine, "runs", run_id)
        await holder.rollback()
    await asyncio.wait_for(job, WAIT)
    assert task_free, f"{write} locked the task before the lease"
    assert run_free, f"{write} locked the run before the lease"


class Paused:
    """A connection proxy that stops before each ``execute`` numbered in ``before`` until told to go
    on, so a multi-statement transaction can be held between its locks."""

    def __init__(self, conn: AsyncConnection, *before: int) -> None:
        self._conn = conn
        self.calls = 0
        self.paused = {n: asyncio.Event() for n in before}
        self.resume = {n: asyncio.Event() for n in before}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls in self.paused:
            self.paused[self.calls].set()
            await self.resume[self.calls].wait()
        return await self._conn.execute(*args, **kwargs)


async def test_cancel_racing_the_reaper_mid_cancel_does_not_deadlock(engine: AsyncEngine) -> None:
    """The reproduced deadlock: the cancel has taken its first lock when the reaper comes."""
    s = await _leased(engine, expired=True)
    async with engine.connect() as raw:
        await raw.begin()
        paused = Paused(raw, 2)
        cancel = asyncio.create_task(tasks.cancel_task(cast(AsyncConnection, paused), str(s.task_id)))
        await asyncio.wait_for(paused.paused[2].wait(), WAIT)

        async def reap() -> list[dict[str, Any]]:
            async with engine.begin() as conn:
                return await leases.reap_expired(conn)

        reaper = asyncio.create_task(reap())
        # Let the reaper reach (and, with the old order, wait on) the task row before the cancel goes on.
        done, _ = await asyncio.wait({reaper}, timeout=1.0)
        paused.resume[2].set()
        row = await asyncio.wait_for(cancel, WAIT)
        await raw.commit()
    reaped = await asyncio.wait_for(reaper, WAIT)
    assert row["status"] == "cancelled"
    assert reaped == [], "the reaper skips a lease a cancel holds"
    assert done == {reaper}, "the reaper never waits on a lease someone else holds"
    await _assert_settled(engine, s, status="cancelled", run_status="cancelled")


async def test_a_claim_landing_mid_cancel_cannot_surface_a_deadlock(engine: AsyncEngine) -> None:
    """The one window the lock order leaves: the cancel found no lease, a claim then commits, and the
    new holder finishes while the cancel holds the task. PostgreSQL breaks the deadlock; the
    transaction boundaries (retry_transient, as in the CLI and the tool endpoint) run the loser again."""
    world = await make_world(engine, agent_names=("ada",))
    async with engine.begin() as conn:
        task = await tasks.create_task(conn, company="acme", title="Contended", agent="ada")
    first_try: list[Paused] = []

    async def cancel_once() -> dict[str, Any]:
        async with engine.begin() as conn:
            if first_try:
                return await tasks.cancel_task(conn, str(task["id"]))
            first_try.append(Paused(conn, 2, 3))
            return await tasks.cancel_task(cast(AsyncConnection, first_try[0]), str(task["id"]))

    cancel = asyncio.create_task(retry_transient(cancel_once, what="cancel"))
    while not first_try:
        await asyncio.sleep(0.01)
    paused = first_try[0]
    await asyncio.wait_for(paused.paused[2].wait(), WAIT)  # it locked no lease: there was none
    async with engine.begin() as conn:
        (claim,) = await leases.claim(conn, agent_id=world.agents["ada"]["id"], holder="t", lease_seconds=60)
    paused.resume[2].set()
    await asyncio.wait_for(paused.paused[3].wait(), WAIT)  # it holds the task, now assigned

    async def complete_once() -> Any:
        async with engine.begin() as conn:
            if not started.done():  # the first try's backend is the one that blocks
                started.set_result(await _pid(conn))
            try:
                return await leases.complete(
                    conn, claim.identity(), fencing_token=claim.fencing_token, output=1
                )
            except StaleFencingToken as exc:
                return exc

    started: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    completion = asyncio.create_task(retry_transient(complete_once, what="complete"))
    await _wait_until_blocked(engine, await started, completion)  # it holds the lease, wants the task
    paused.resume[3].set()  # the cancel now wants the lease: a deadlock, broken by the server
    row = await asyncio.wait_for(cancel, WAIT)
    done = await asyncio.wait_for(completion, WAIT)
    assert row["status"] == "cancelled"
    s = Leased(task_id=task["id"], claim=claim)
    if isinstance(done, StaleFencingToken):  # the completion lost and was rejected when run again
        await _assert_settled(engine, s, status="cancelled", run_status="cancelled")
    else:  # the cancel lost, and cancelled the reviewed task when run again
        assert done["status"] == "review"
        await _assert_settled(engine, s, status="cancelled", run_status="succeeded")


async def _assert_settled(engine: AsyncEngine, s: Leased, *, status: str, run_status: str) -> None:
    """The task ended in ``status``, its one run in ``run_status``, and nothing was left half-done."""
    async with engine.connect() as conn:
        task = await tasks.get_task(conn, str(s.task_id))
        runs = (
            await conn.execute(text("SELECT status FROM runs WHERE task_id = :t"), {"t": s.task_id})
        ).all()
        lease_count = (
            await conn.execute(text("SELECT count(*) FROM leases WHERE task_id = :t"), {"t": s.task_id})
        ).scalar_one()
    assert task["status"] == status
    assert [r[0] for r in runs] == [run_status]
    assert lease_count == 0


async def _race(
    engine: AsyncEngine,
    s: Leased,
    first: Write,
    second: Write,
    *,
    second_waits: bool,
) -> tuple[Any, Any]:
    """Run ``first`` and hold its transaction open; run ``second`` meanwhile; then commit ``first``.

    Returns both results (or the ``StaleFencingToken`` a side got). ``second_waits`` says whether
    ``second`` must block on ``first``'s locks (or go through without waiting, like the reaper's SKIP
    LOCKED)."""

    async def attempt(write: Write, conn: AsyncConnection) -> Any:
        try:
            return await write(conn, s)
        except StaleFencingToken as exc:
            return exc

    async with engine.connect() as conn1:
        await conn1.begin()
        first_result = await attempt(first, conn1)

        async def run_second() -> Any:
            async with engine.begin() as conn2:
                started.set_result(await _pid(conn2))
                return await attempt(second, conn2)

        started: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        job = asyncio.create_task(run_second())
        if second_waits:
            await _wait_until_blocked(engine, await started, job)
        else:
            await asyncio.wait_for(asyncio.shield(job), WAIT)
        await conn1.commit()
    return first_result, await asyncio.wait_for(job, WAIT)


def _reap(conn: AsyncConnection, _: Leased) -> Awaitable[list[dict[str, Any]]]:
    return leases.reap_expired(conn)


async def _events(engine: AsyncEngine, task_id: UUID) -> list[str]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT action FROM audit_events WHERE subject_id = :t ORDER BY id"), {"t": str(task_id)}
        )
        return [r[0] for r in rows]


@pytest.mark.parametrize("first", ["cancel", "reaper"])
async def test_cancel_and_reaper_in_both_orders(engine: AsyncEngine, first: str) -> None:
    s = await _leased(engine, expired=True)
    cancel = WRITES["cancel"]
    if first == "cancel":
        row, reaped = await _race(engine, s, cancel, _reap, second_waits=False)
        assert row["status"] == "cancelled" and reaped == []
        await _assert_settled(engine, s, status="cancelled", run_status="cancelled")
        assert (await _events(engine, s.task_id))[-1] == "task.cancelled"
    else:
        reaped, row = await _race(engine, s, _reap, cancel, second_waits=True)
        assert [r["status"] for r in reaped] == ["queued"]
        assert row["status"] == "cancelled", "the cancel applies after the re-queue"
        await _assert_settled(engine, s, status="cancelled", run_status="failed")
        assert (await _events(engine, s.task_id))[-2:] == ["task.requeued", "task.cancelled"]


@pytest.mark.parametrize("first", ["completion", "reaper"])
async def test_completion_and_reaper_in_both_orders(engine: AsyncEngine, first: str) -> None:
    s = await _leased(engine, expired=True)
    complete = WRITES["complete"]
    if first == "completion":
        done, reaped = await _race(engine, s, complete, _reap, second_waits=False)
        assert done["status"] == "review" and reaped == []
        await _assert_settled(engine, s, status="review", run_status="succeeded")
    else:
        reaped, done = await _race(engine, s, _reap, complete, second_waits=True)
        assert [r["status"] for r in reaped] == ["queued"]
        assert isinstance(done, StaleFencingToken), "a reaped attempt cannot complete"
        await _assert_settled(engine, s, status="queued", run_status="failed")
        assert "task.completed" not in await _events(engine, s.task_id)


@pytest.mark.parametrize("first", ["cancel", "completion"])
async def test_cancel_and_completion_in_both_orders(engine: AsyncEngine, first: str) -> None:
    s = await _leased(engine)
    cancel, complete = WRITES["cancel"], WRITES["complete"]
    if first == "cancel":
        row, done = await _race(engine, s, cancel, complete, second_waits=True)
        assert row["status"] == "cancelled"
        assert isinstance(done, StaleFencingToken), "a cancelled attempt cannot complete"
        await _assert_settled(engine, s, status="cancelled", run_status="cancelled")
        assert "task.completed" not in await _events(engine, s.task_id)
    else:
        done, row = await _race(engine, s, complete, cancel, second_waits=True)
        assert done["status"] == "review"
        assert row["status"] == "cancelled", "a task in review can still be cancelled"
        await _assert_settled(engine, s, status="cancelled", run_status="succeeded")


@pytest.mark.parametrize("first", ["renewal", "cancel"])
async def test_renewal_and_cancel_in_both_orders(engine: AsyncEngine, first: str) -> None:
    s = await _leased(engine)
    cancel, renew = WRITES["cancel"], WRITES["renew"]
    if first == "renewal":
        _, row = await _race(engine, s, renew, cancel, second_waits=True)
        assert row["status"] == "cancelled"
    else:
        row, renewed = await _race(engine, s, cancel, renew, second_waits=True)
        assert row["status"] == "cancelled"
        assert isinstance(renewed, StaleFencingToken), "a cancelled attempt cannot renew"
    await _assert_settled(engine, s, status="cancelled", run_status="cancelled")
