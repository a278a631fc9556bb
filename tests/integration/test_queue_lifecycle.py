"""The whole task lifecycle through the real tool endpoint, and its error answers."""

from __future__ import annotations

from uuid import UUID

import httpx
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from company_agents import leases, tasks
from company_agents.db.schema import audit_events, run_checkpoints, runs
from tests.integration.queue_helpers import engine, make_world, tool_url

__all__ = ["engine", "tool_url"]


async def _claim(engine: AsyncEngine, agent_id: UUID) -> list[leases.Claim]:
    async with engine.begin() as conn:
        return await leases.claim(conn, agent_id=agent_id, holder="test", lease_seconds=30)


def _call(base: str, tool: str, token: str, body: dict[str, object]) -> httpx.Response:
    return httpx.post(
        f"{base}/tools/{tool}", json=body, headers={"Authorization": f"Bearer {token}"}, timeout=10
    )


async def _status(engine: AsyncEngine, task_id: object) -> str:
    async with engine.connect() as conn:
        return str((await tasks.get_task(conn, str(task_id)))["status"])


async def test_create_claim_progress_complete_review_approve_done(engine: AsyncEngine, tool_url: str) -> None:
    world = await make_world(engine)
    async with engine.begin() as conn:
        task = await tasks.create_task(conn, company="acme", title="Write the README", team="Engineering")
    (claim,) = await _claim(engine, world.agents["ada"]["id"])
    assert claim.task_id == task["id"] and claim.attempt == 1 and claim.fencing_token == 1
    assert await _status(engine, task["id"]) == "assigned"

    progress = _call(
        tool_url,
        "report_progress",
        claim.lease_token,
        {"fencingToken": 1, "message": "read the brief", "step": "plan", "percent": 10},
    )
    assert progress.status_code == 200, progress.text
    renew = _call(tool_url, "renew_lease", claim.lease_token, {"fencingToken": 1})
    assert renew.status_code == 200 and "leaseExpiresAt" in renew.json()["data"]
    done = _call(
        tool_url,
        "mark_complete",
        claim.lease_token,
        {"fencingToken": 1, "output": {"file": "README.md"}, "reasoning": "wrote it"},
    )
    assert done.status_code == 200 and done.json()["data"]["status"] == "review"
    assert await _status(engine, task["id"]) == "review"

    async with engine.begin() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM leases"))).scalar_one() == 0
        run = (await conn.execute(select(runs))).mappings().one()
        assert (run["status"], run["exit_reason"], run["attempt"]) == ("succeeded", "complete", 1)
        checkpoint = (await conn.execute(select(run_checkpoints))).mappings().one()
        assert checkpoint["payload"] == {"message": "read the brief", "step": "plan", "percent": 10.0}
        await tasks.approve_task(conn, str(task["id"]))
    assert await _status(engine, task["id"]) == "done"
    async with engine.connect() as conn:
        actions = (
            (
                await conn.execute(
                    select(audit_events.c.action)
                    .where(audit_events.c.subject_id == str(task["id"]))
                    .order_by(audit_events.c.id)
                )
            )
            .scalars()
            .all()
        )
    assert actions == ["task.created", "task.claimed", "task.completed", "task.approved"]


async def test_reject_requeues_and_the_second_attempt_has_a_higher_token(
    engine: AsyncEngine, tool_url: str
) -> None:
    world = await make_world(engine)
    async with engine.begin() as conn:
        task = await tasks.create_task(conn, company="acme", title="Draft the logo", agent="ada")
    (first,) = await _claim(engine, world.agents["ada"]["id"])
    assert (
        _call(tool_url, "mark_complete", first.lease_token, {"fencingToken": 1, "output": "v1"}).status_code
        == 200
    )
    async with engine.begin() as conn:
        rejected = await tasks.reject_task(conn, str(task["id"]), feedback="make it blue")
    assert rejected["status"] == "queued" and rejected["feedback"] == "make it blue"
    assert await _claim(engine, world.agents["bob"]["id"]) == [], "assigned to ada: bob may not take it"
    (second,) = await _claim(engine, world.agents["ada"]["id"])
    assert (second.attempt, second.fencing_token) == (2, 2)
    # The first attempt's token is dead now.
    stale = _call(tool_url, "mark_complete", first.lease_token, {"fencingToken": 1, "output": "v1 again"})
    assert stale.status_code == 409 and stale.json()["error"]["code"] == "stale_fencing_token"
    ok = _call(tool_url, "mark_complete", second.lease_token, {"fencingToken": 2, "output": "v2"})
    assert ok.status_code == 200
    async with engine.connect() as conn:
        row = await tasks.get_task(conn, str(task["id"]))
    assert row["output"] == {"output": "v2", "reasoning": ""}


async def test_mark_failed_retries_then_fails_and_handoff_waits_for_a_human(
    engine: AsyncEngine, tool_url: str
) -> None:
    world = await make_world(engine)
    ada = world.agents["ada"]["id"]
    async with engine.begin() as conn:
        task = await tasks.create_task(conn, company="acme", title="Flaky job", agent="ada", max_attempts=2)
        other = await tasks.create_task(conn, company="acme", title="Needs a human", agent="bob")
    (c1,) = await _claim(engine, ada)
    r1 = _call(tool_url, "mark_failed", c1.lease_token, {"fencingToken": c1.fencing_token, "reason": "boom"})
    assert r1.json()["data"] == {"status": "queued", "attempt": 1, "maxAttempts": 2}
    (c2,) = await _claim(engine, ada)
    r2 = _call(tool_url, "mark_failed", c2.lease_token, {"fencingToken": c2.fencing_token, "reason": "boom"})
    assert r2.json()["data"]["status"] == "failed"
    assert await _status(engine, task["id"]) == "failed"
    assert await _claim(engine, ada) == []
    (c3,) = await _claim(engine, world.agents["bob"]["id"])
    assert c3.task_id == other["id"]
    h = _call(tool_url, "request_handoff", c3.lease_token, {"fencingToken": 1, "reason": "need credentials"})
    assert h.status_code == 200 and await _status(engine, other["id"]) == "handoff"


async def test_bad_calls_are_refused_and_change_nothing(engine: AsyncEngine, tool_url: str) -> None:
    world = await make_world(engine)
    async with engine.begin() as conn:
        t1 = await tasks.create_task(conn, company="acme", title="One", agent="ada")
        t2 = await tasks.create_task(conn, company="acme", title="Two", agent="bob")
    (c1,) = await _claim(engine, world.agents["ada"]["id"])
    (c2,) = await _claim(engine, world.agents["bob"]["id"])
    assert {c1.task_id, c2.task_id} == {t1["id"], t2["id"]}

    cases = [
        (None, {"fencingToken": 1, "output": 1}, 401, "unauthorized"),
        ("lt_unknown-token", {"fencingToken": 1, "output": 1}, 401, "unauthorized"),
        ("not-a-lease-token", {"fencingToken": 1, "output": 1}, 401, "unauthorized"),
        (c1.lease_token, {"fencingToken": 1, "output": 1, "taskId": str(c2.task_id)}, 403, "forbidden"),
        (c1.lease_token, {"output": 1}, 422, "invalid_input"),
        (c1.lease_token, {"fencingToken": "x", "output": 1}, 422, "invalid_input"),
        (c1.lease_token, {"fencingToken": 7, "output": 1}, 409, "stale_fencing_token"),
    ]
    for token, body, status, code in cases:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        resp = httpx.post(f"{tool_url}/tools/mark_complete", json=body, headers=headers, timeout=10)
        assert resp.status_code == status, (body, resp.text)
        assert resp.json()["error"]["code"] == code
    missing = httpx.post(
        f"{tool_url}/tools/mark_complete",
        json={"output": 1},
        headers={"Authorization": f"Bearer {c1.lease_token}"},
        timeout=10,
    )
    assert missing.json()["error"]["details"]["field"] == "fencingToken"
    malformed = httpx.post(
        f"{tool_url}/tools/report_progress",
        content=b"{not json",
        headers={"Authorization": f"Bearer {c1.lease_token}", "Content-Type": "application/json"},
        timeout=10,
    )
    assert malformed.status_code == 422 and malformed.json()["error"]["details"]["field"] == "body"
    unknown = _call(tool_url, "launch_missiles", c1.lease_token, {"fencingToken": 1})
    assert unknown.status_code == 404
    assert await _status(engine, t1["id"]) == "assigned" and await _status(engine, t2["id"]) == "assigned"
    async with engine.connect() as conn:
        leases_left = (await conn.execute(text("SELECT count(*) FROM leases"))).scalar_one()
        rejections = (
            await conn.execute(
                text("SELECT count(*) FROM audit_events WHERE action = 'lease.stale_write_rejected'")
            )
        ).scalar_one()
    assert leases_left == 2
    assert rejections == 1
