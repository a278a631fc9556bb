"""Agent identity tokens and the memory tools: an agent acts for itself only, and refusals are audited."""

from __future__ import annotations

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from company_agents import agents, companies, leases, tasks
from company_agents.identity import authenticate_agent
from tests.integration.queue_helpers import engine, make_world, tool_url

__all__ = ["engine", "tool_url"]


def _post(base: str, tool: str, token: str, body: dict[str, object]) -> httpx.Response:
    return httpx.post(
        f"{base}/tools/{tool}", json=body, headers={"Authorization": f"Bearer {token}"}, timeout=10
    )


async def _audited(engine: AsyncEngine, action: str) -> int:
    async with engine.connect() as conn:
        return int(
            (
                await conn.execute(text("SELECT count(*) FROM audit_events WHERE action = :a"), {"a": action})
            ).scalar_one()
        )


async def test_identity_tokens_are_hashed_rotatable_and_act_only_for_their_agent(
    engine: AsyncEngine, tool_url: str
) -> None:
    world = await make_world(engine)
    ada_token = world.agents["ada"]["token"]
    bob = world.agents["bob"]
    async with engine.begin() as conn:
        stored = (await conn.execute(text("SELECT token_hash FROM agents WHERE name = 'ada'"))).scalar_one()
        assert stored and ada_token not in stored and len(stored) == 64
        assert (await authenticate_agent(conn, ada_token))["name"] == "ada"
    # ada writes and reads her own memory
    wrote = _post(tool_url, "memory_write", ada_token, {"scope": "agent", "topic": "style", "body": "terse"})
    assert wrote.status_code == 200, wrote.text
    read = _post(tool_url, "memory_read", ada_token, {"scope": "agent"})
    assert [e["body"] for e in read.json()["data"]["entries"]] == ["terse"]
    # …but never bob's, whatever she claims
    denied = _post(tool_url, "memory_read", ada_token, {"scope": "agent", "scopeId": str(bob["id"])})
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "memory_access_denied"
    denied_write = _post(
        tool_url,
        "memory_write",
        ada_token,
        {"scope": "agent", "scopeId": str(bob["id"]), "topic": "x", "body": "forged"},
    )
    assert denied_write.status_code == 403
    assert await _audited(engine, "memory.access_denied") == 2
    # an identity token is not a lease token: it cannot act for a run
    progress = _post(tool_url, "report_progress", ada_token, {"fencingToken": 1, "message": "hi"})
    assert progress.status_code == 401
    # rotation: the old token stops working at once
    async with engine.begin() as conn:
        from company_agents.identity import rotate_agent_token

        agent = await agents.get_agent(conn, world.company_id, "ada")
        new_token = await rotate_agent_token(conn, agent)
    assert _post(tool_url, "memory_read", ada_token, {"scope": "agent"}).status_code == 401
    assert _post(tool_url, "memory_read", new_token, {"scope": "agent"}).status_code == 200


async def test_another_companys_memory_is_out_of_reach(engine: AsyncEngine, tool_url: str) -> None:
    world = await make_world(engine)
    async with engine.begin() as conn:
        other = await companies.create_company(conn, name="Rival")
        await agents.hire_agent(conn, company="rival", name="eve", role="spy", adapter="process")
    eve = None
    async with engine.begin() as conn:
        eve = await agents.get_agent(conn, other["id"], "eve")
    assert eve is not None
    ada_token = world.agents["ada"]["token"]
    for scope, scope_id in (("company", other["id"]), ("agent", eve["id"])):
        resp = _post(tool_url, "memory_read", ada_token, {"scope": scope, "scopeId": str(scope_id)})
        assert resp.status_code == 403, resp.text
    async with engine.connect() as conn:
        rows = (
            (
                await conn.execute(
                    text("SELECT company_id FROM audit_events WHERE action = 'memory.access_denied'")
                )
            )
            .scalars()
            .all()
        )
    assert rows == [world.company_id, world.company_id], "refusals are audited under the caller's company"


async def test_lease_tokens_reach_task_memory_and_only_their_own_task(
    engine: AsyncEngine, tool_url: str
) -> None:
    world = await make_world(engine)
    async with engine.begin() as conn:
        mine = await tasks.create_task(conn, company="acme", title="Mine", agent="ada")
        theirs = await tasks.create_task(conn, company="acme", title="Theirs", agent="bob")
    async with engine.begin() as conn:
        (claim,) = await leases.claim(conn, agent_id=world.agents["ada"]["id"], holder="t", lease_seconds=30)
    assert claim.task_id == mine["id"]
    ok = _post(
        tool_url,
        "memory_write",
        claim.lease_token,
        {"fencingToken": claim.fencing_token, "scope": "task", "topic": "plan", "body": "step 1"},
    )
    assert ok.status_code == 200, ok.text
    other_task = _post(
        tool_url,
        "memory_read",
        claim.lease_token,
        {"fencingToken": claim.fencing_token, "scope": "task", "scopeId": str(theirs["id"])},
    )
    assert other_task.status_code == 403
    cross = _post(
        tool_url,
        "report_progress",
        claim.lease_token,
        {"fencingToken": claim.fencing_token, "message": "x", "taskId": str(theirs["id"])},
    )
    assert cross.status_code == 403
    assert await _audited(engine, "lease.cross_task_rejected") == 1
    stale = _post(tool_url, "memory_read", claim.lease_token, {"fencingToken": 99, "scope": "task"})
    assert stale.status_code == 409
