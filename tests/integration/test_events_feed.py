"""The event feed: exactly once and in order across reconnects and concurrent writers, NOTIFY wakes."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from company_agents import tasks
from company_agents.db.database import Database
from company_agents.events import feed, stream
from company_agents.events.feed import Position
from company_agents.events.hub import FeedHub
from company_agents.events.types import event_type
from company_agents.settings import Settings
from tests.integration.queue_helpers import engine, make_world

__all__ = ["engine"]

ACTIONS = [
    "task.created", "task.claimed", "task.started", "task.completed", "task.failed", "task.requeued",
    "task.handoff_requested", "task.cancelled", "run.stopped", "approval.requested", "approval.decided",
    "approval.expired", "approval.rule_added", "budget.breach.hard", "budget.set", "budget.topup",
    "cost.adjusted", "agent.hired", "agent.paused", "agent.token_rotated", "webhook.added", "secret.created",
    "team.created", "company.created", "system.database_restarted",
]  # fmt: skip


@pytest.fixture
def db(db_url: str, tmp_path: Path) -> Database:
    return Database(settings=Settings(home=tmp_path / "home", database_url=db_url), url=db_url)


async def test_the_database_maps_actions_as_python_does(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text("SELECT a, ca_event_type(a) FROM unnest(CAST(:a AS text[])) a"), {"a": ACTIONS}
            )
        ).all()
    assert dict(rows) == {a: event_type(a) for a in ACTIONS}


async def _ids_after(engine: AsyncEngine, company_id: UUID, start: Position) -> list[int]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT id FROM audit_events WHERE company_id = :c AND (txid, id) > (:t, :i)"
                " ORDER BY txid, id"
            ),
            {"c": company_id, "t": start.txid, "i": start.id},
        )
        return [int(r[0]) for r in rows]


async def test_a_late_commit_is_held_back_not_skipped(engine: AsyncEngine) -> None:
    world = await make_world(engine)
    async with engine.connect() as conn:
        start = await feed.tail(conn)
    slow = await engine.connect()
    slow_tx = await slow.begin()
    # The slow transaction takes the lower event id first, and commits last.
    await tasks.create_task(slow, company="acme", title="slow", team="Engineering")
    async with engine.begin() as fast:
        await tasks.create_task(fast, company="acme", title="fast", team="Engineering")
    async with engine.connect() as conn:
        held = await feed.read_after(conn, world.company_id, start)
    # An `id > last` reader would have returned "fast" now and skipped "slow" for ever.
    assert [e for e in held if e.action == "task.created"] == []
    await slow_tx.commit()
    await slow.close()
    events: list[feed.Event] = []
    while len(events) < 2:  # other transactions on a shared server may hold the horizon a moment
        async with engine.connect() as conn:
            events = [
                e for e in await feed.read_after(conn, world.company_id, start) if e.action == "task.created"
            ]
        await asyncio.sleep(0.05)
    assert sorted(str(e.payload.get("title")) for e in events) == ["fast", "slow"] and len(events) == 2
    assert events[0].id < events[1].id  # here the slow transaction also got the lower txid


async def test_reconnecting_reader_gets_every_event_once_in_order_under_concurrent_writers(
    engine: AsyncEngine, db: Database
) -> None:
    world = await make_world(engine)
    async with engine.connect() as conn:
        start = await feed.tail(conn)
    writers, per_writer = 5, 100  # 500 task changes

    async def writer(w: int) -> None:
        rng = random.Random(w)
        for i in range(per_writer):
            async with engine.begin() as conn:
                await tasks.create_task(conn, company="acme", title=f"w{w}-{i}", team="Engineering")
                # Hold the transaction open a little: commits land out of id order.
                await asyncio.sleep(rng.random() / 500)

    hub = FeedHub(db)
    seen: list[feed.Event] = []
    writing = asyncio.gather(*(writer(w) for w in range(writers)))
    cursor: str | None = None
    connections = 0
    try:
        while sum(e.action == "task.created" for e in seen) < writers * per_writer:
            connections += 1
            # What the route does with Last-Event-ID: resume after that event.
            async with engine.connect() as conn:
                after = (
                    start if cursor is None else await feed.position_of(conn, world.company_id, int(cursor))
                )
            follower = stream.follow(db, hub, world.company_id, after, page=37)
            try:
                async for event in follower:
                    seen.append(event)
                    cursor = str(event.id)
                    created = sum(e.action == "task.created" for e in seen)
                    if len(seen) % 61 == 0 or created == writers * per_writer:
                        break  # the client drops mid-burst
            finally:
                await follower.aclose()
        await writing
    finally:
        await hub.close()
        await db.dispose()
    ids = [e.id for e in seen]
    assert len(ids) == len(set(ids)), "every event exactly once"
    assert sum(e.action == "task.created" for e in seen) == writers * per_writer
    # The same events, in the same order, as the table holds after everything committed.
    assert ids == await _ids_after(engine, world.company_id, start)
    assert connections > 5
    titles = [e.payload["title"] for e in seen]
    for w in range(writers):  # each writer's changes arrive in the order it committed them
        mine = [t for t in titles if t.startswith(f"w{w}-")]
        assert mine == [f"w{w}-{i}" for i in range(per_writer)]


async def test_a_waiting_stream_is_woken_by_the_hub(
    engine: AsyncEngine, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The stream's own polling off: only the hub's wake-up can deliver the event to the waiting stream.
    monkeypatch.setattr(stream, "POLL_SECONDS", 3600.0)
    monkeypatch.setattr(stream, "RECHECK_SECONDS", 3600.0)
    world = await make_world(engine)
    async with engine.connect() as conn:
        start = await feed.tail(conn)
    hub = FeedHub(db)
    follower = stream.follow(db, hub, world.company_id, start)
    try:
        first = asyncio.ensure_future(follower.__anext__())
        await asyncio.wait_for(hub.watching.wait(), 30)
        await asyncio.sleep(0.1)  # let the stream finish its first (empty) read and start waiting
        async with engine.begin() as conn:
            task = await tasks.create_task(conn, company="acme", title="wake up", team="Engineering")
        event = await asyncio.wait_for(first, 60)
        while event.action != "task.created":  # events written just before the stream began
            event = await asyncio.wait_for(follower.__anext__(), 60)
        assert event.type == "task.created" and event.subject_id == str(task["id"])
    finally:
        await follower.aclose()
        await hub.close()
        await db.dispose()


async def test_a_cursor_from_another_company_is_refused(engine: AsyncEngine) -> None:
    from company_agents.errors import InvalidInput

    world = await make_world(engine)
    async with engine.connect() as conn:
        last = (
            await conn.execute(
                text("SELECT max(id) FROM audit_events WHERE company_id = :c"), {"c": world.company_id}
            )
        ).scalar_one()
        own = await feed.position_of(conn, world.company_id, last)
        assert own.id == last and own.txid > 0
        with pytest.raises(InvalidInput):
            await feed.position_of(conn, UUID(int=1), last)
        assert feed.parse_cursor(" 42 ") == 42 and feed.parse_cursor(None) is None
        with pytest.raises(InvalidInput):
            feed.parse_cursor("12; DROP")


async def test_streams_in_two_orchestrators_on_one_database_each_get_every_event(
    engine: AsyncEngine, db_url: str, tmp_path: Path
) -> None:
    world = await make_world(engine)
    async with engine.connect() as conn:
        start = await feed.tail(conn)
    dbs = [
        Database(settings=Settings(home=tmp_path / f"o{i}", database_url=db_url), url=db_url)
        for i in range(2)
    ]
    hubs = [FeedHub(d) for d in dbs]
    followers = [stream.follow(d, h, world.company_id, start) for d, h in zip(dbs, hubs, strict=True)]

    async def take(follower: Any, n: int) -> list[int]:
        ids, created = [], 0
        while created < n:
            event = await follower.__anext__()
            ids.append(event.id)
            created += event.action == "task.created"
        return ids

    try:
        readers = [asyncio.ensure_future(take(f, 30)) for f in followers]
        for i in range(30):
            async with engine.begin() as conn:
                await tasks.create_task(conn, company="acme", title=f"t{i}", team="Engineering")
        first, second = await asyncio.wait_for(asyncio.gather(*readers), 120)
    finally:
        for f in followers:
            await f.aclose()
        for h, d in zip(hubs, dbs, strict=True):
            await h.close()
            await d.dispose()
    assert first == second == await _ids_after(engine, world.company_id, start)
