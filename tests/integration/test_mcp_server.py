"""The MCP server on the real tool endpoint (uvicorn, real PostgreSQL), driven by the SDK's own client."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from company_agents import leases, tasks
from company_agents.db.schema import run_checkpoints, runs
from tests.integration.mcp_helpers import MODES, error_code, mcp_client, payload
from tests.integration.queue_helpers import engine, make_world, serve_tool_endpoint, tool_url
from tests.integration.test_tool_endpoint_limits import _zombie

__all__ = ["engine", "tool_url"]

pytestmark = pytest.mark.slow

RUN_TOOLS = {"report_progress", "mark_complete", "mark_failed", "request_handoff", "request_approval"}
ALL_TOOLS = RUN_TOOLS | {"memory_read", "memory_write", "create_subtask", "upload_asset", "renew_lease"}


async def _claim(engine: AsyncEngine, title: str = "Write the README") -> tuple[Any, leases.Claim]:
    world = await make_world(engine)
    async with engine.begin() as conn:
        await tasks.create_task(conn, company="acme", title=title, agent="ada")
        (claim,) = await leases.claim(conn, agent_id=world.agents["ada"]["id"], holder="t", lease_seconds=60)
    return world, claim


async def _status(engine: AsyncEngine, task_id: object) -> str:
    async with engine.connect() as conn:
        return str((await tasks.get_task(conn, str(task_id)))["status"])


async def _count(engine: AsyncEngine, sql: str) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text(sql))).scalar_one())


async def test_every_tool_is_listed_with_a_schema_and_a_description(
    engine: AsyncEngine, tool_url: str
) -> None:
    _, claim = await _claim(engine)
    async with mcp_client(tool_url, claim.lease_token) as client:
        listed = {t.name: t for t in (await client.list_tools()).tools}
    assert set(listed) == ALL_TOOLS
    for tool in listed.values():
        assert tool.description and len(tool.description) > 20, tool.name
        assert tool.input_schema["type"] == "object"
        assert "fencingToken" not in tool.input_schema.get("properties", {}), tool.name
        assert "$ref" not in json.dumps(tool.input_schema), tool.name
    complete = listed["mark_complete"].input_schema
    assert complete["required"] == ["output"]
    assert set(complete["properties"]) == {"output", "reasoning"}
    assert complete["additionalProperties"] is False
    assert listed["report_progress"].input_schema["required"] == ["message"]
    assert listed["memory_read"].annotations is not None and listed["memory_read"].annotations.read_only_hint
    cost = listed["request_approval"].input_schema["properties"]["cost"]
    assert {"usd", "tokens"} <= set(cost["anyOf"][0]["properties"])


@pytest.mark.parametrize("mode", MODES)
async def test_a_run_reports_renews_and_completes_over_mcp(
    engine: AsyncEngine, tool_url: str, mode: str
) -> None:
    _, claim = await _claim(engine)
    async with mcp_client(tool_url, claim.lease_token, mode) as client:
        progress = await client.call_tool("report_progress", {"message": "read the brief", "percent": 10})
        assert not progress.is_error, progress
        assert isinstance(payload(progress)["checkpointId"], int)
        renewed = await client.call_tool("renew_lease", {})
        assert "leaseExpiresAt" in payload(renewed)
        done = await client.call_tool(
            "mark_complete", {"output": {"file": "README.md"}, "reasoning": "wrote it"}
        )
        assert payload(done) == {"status": "review"}
        # The run is over: a second completion is a stale write, told as a tool error.
        again = await client.call_tool("mark_complete", {"output": "twice"})
        assert error_code(again) == "stale_fencing_token"
    assert await _status(engine, claim.task_id) == "review"
    async with engine.connect() as conn:
        task = await tasks.get_task(conn, str(claim.task_id))
        assert task["output"] == {"output": {"file": "README.md"}, "reasoning": "wrote it"}
        run = (await conn.execute(select(runs))).mappings().one()
        assert (run["status"], run["exit_reason"]) == ("succeeded", "complete")
        checkpoint = (await conn.execute(select(run_checkpoints))).mappings().one()
        assert checkpoint["payload"] == {"message": "read the brief", "percent": 10.0}
        assert checkpoint["fencing_token"] == claim.fencing_token


async def test_mark_failed_and_handoff_over_mcp(engine: AsyncEngine, tool_url: str) -> None:
    _, claim = await _claim(engine)
    async with mcp_client(tool_url, claim.lease_token) as client:
        failed = payload(await client.call_tool("mark_failed", {"reason": "the build is broken"}))
    assert failed == {"status": "queued", "attempt": 1, "maxAttempts": 3}
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE tasks SET run_after = NULL"))
        (second,) = await leases.claim(conn, agent_id=claim.agent_id, holder="t", lease_seconds=60)
    async with mcp_client(tool_url, second.lease_token) as client:
        handed = payload(await client.call_tool("request_handoff", {"reason": "needs a password"}))
    assert handed == {"status": "handoff"}
    assert await _status(engine, claim.task_id) == "handoff"


async def test_requests_without_a_known_bearer_are_401(engine: AsyncEngine, tool_url: str) -> None:
    world, claim = await _claim(engine)
    hello = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    headers = {"Accept": "application/json, text/event-stream"}
    for auth in (None, "Bearer", "Basic abc", "Bearer ca_lease_not-a-real-one", "Bearer nonsense"):
        sent = {**headers, "Authorization": auth} if auth else headers
        answer = httpx.post(f"{tool_url}/mcp", json=hello, headers=sent, timeout=10)
        assert answer.status_code == 401, (auth, answer.text)
        assert answer.json()["error"]["code"] == "unauthorized"
        assert answer.headers["www-authenticate"].startswith("Bearer")
    for method in ("GET", "DELETE"):
        assert httpx.request(method, f"{tool_url}/mcp", timeout=10).status_code == 401
    # The SDK's client cannot connect with a forged token (it reports the refusal as an error response).
    with pytest.raises(Exception, match=r"unhandled errors|error response"):
        async with mcp_client(tool_url, "ca_lease_forged") as client:
            await client.list_tools()
    # Bound to loopback, the server refuses another Host (DNS rebinding), even with a known token.
    rebound = httpx.post(
        f"{tool_url}/mcp",
        json=hello,
        headers={**headers, "Authorization": f"Bearer {claim.lease_token}", "Host": "evil.example"},
        timeout=10,
    )
    assert rebound.status_code == 421
    # A known token is let in, and nothing was written by the refused ones.
    async with mcp_client(tool_url, world.agents["ada"]["token"]) as client:
        assert len((await client.list_tools()).tools) == len(ALL_TOOLS)
    assert await _count(engine, "SELECT count(*) FROM run_checkpoints") == 0
    assert claim.fencing_token == 1


async def test_an_identity_token_cannot_act_for_a_run(engine: AsyncEngine, tool_url: str) -> None:
    world, claim = await _claim(engine)
    async with mcp_client(tool_url, world.agents["ada"]["token"]) as client:
        refused = await client.call_tool("mark_complete", {"output": "forged"})
    assert error_code(refused) == "unauthorized"
    assert await _status(engine, claim.task_id) == "assigned"


@pytest.mark.parametrize("mode", MODES)
async def test_a_zombie_gets_stale_fencing_token_and_is_audited(
    engine: AsyncEngine, tool_url: str, mode: str
) -> None:
    zombie, fresh = await _zombie(engine)
    async with mcp_client(tool_url, zombie.lease_token, mode) as client:
        for tool, args in (
            ("report_progress", {"message": "still here"}),
            ("mark_complete", {"output": "late"}),
            ("renew_lease", {}),
        ):
            result = await client.call_tool(tool, args)
            assert error_code(result) == "stale_fencing_token", tool
            error = payload(result)["error"]
            assert error["details"]["fencingToken"] == zombie.fencing_token
            assert "stale" in error["message"]
    rows = await _count(
        engine, "SELECT count(*) FROM audit_events WHERE action = 'lease.stale_write_rejected'"
    )
    assert rows == 3
    async with engine.connect() as conn:
        presented = (
            await conn.execute(
                text("SELECT payload->>'presentedFencingToken' FROM audit_events WHERE action = :a"),
                {"a": "lease.stale_write_rejected"},
            )
        ).scalars()
        assert set(presented) == {str(zombie.fencing_token)}
    # The task is the fresh attempt's, untouched.
    assert await _status(engine, fresh.task_id) == "assigned"
    assert await _count(engine, "SELECT count(*) FROM run_checkpoints") == 0
    async with mcp_client(tool_url, fresh.lease_token, mode) as client:
        assert payload(await client.call_tool("mark_complete", {"output": "real"})) == {"status": "review"}


async def test_malformed_arguments_are_a_clear_error_and_write_nothing(
    engine: AsyncEngine, tool_url: str
) -> None:
    _, claim = await _claim(engine)
    async with mcp_client(tool_url, claim.lease_token) as client:
        cases: list[tuple[str, dict[str, Any], str]] = [
            ("report_progress", {}, "message"),
            ("report_progress", {"message": "x", "percent": 250}, "percent"),
            ("report_progress", {"message": "x", "fencingToken": 7}, "fencingToken"),
            ("mark_complete", {"outptu": "typo"}, "output"),
            ("mark_failed", {"reason": ""}, "reason"),
            ("request_approval", {"action": "two\nlines"}, "action"),
        ]
        for tool, args, field in cases:
            result = await client.call_tool(tool, args)
            assert error_code(result) == "invalid_input", (tool, args)
            error = payload(result)["error"]
            assert field in {e["field"] for e in error["details"]["errors"]}, (tool, error)
        unknown = await client.call_tool("launch_missiles", {})
        assert unknown.is_error
    assert await _count(engine, "SELECT count(*) FROM run_checkpoints") == 0
    assert await _status(engine, claim.task_id) == "assigned"


@pytest.fixture
def down_url(tmp_path: Path) -> Iterator[str]:
    """A tool endpoint whose database is not there (nothing listens on port 1)."""
    yield from serve_tool_endpoint("postgresql://nobody@127.0.0.1:1/none", tmp_path / "home")


def test_a_database_outage_is_503_with_retry_after(down_url: str) -> None:
    # The bearer cannot be checked: the client is told to come back rather than that it is refused.
    answer = httpx.post(
        f"{down_url}/mcp",
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        headers={
            "Authorization": "Bearer ca_lease_whatever",
            "Accept": "application/json, text/event-stream",
        },
        timeout=30,
    )
    assert answer.status_code == 503, answer.text
    assert answer.headers["retry-after"] == "5"
    assert answer.json()["error"]["code"].startswith("database")
