"""create_subtask, upload_asset, memory and approvals through the MCP server (and the HTTP face of the
new tools), on the real tool endpoint and real PostgreSQL."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from company_agents import leases, tasks
from company_agents.costs import ledger
from company_agents.costs.events import cost_from_event
from tests.integration.mcp_helpers import error_code, mcp_client, payload
from tests.integration.queue_helpers import engine, make_world, serve_tool_endpoint
from tests.integration.test_tool_endpoint_limits import _zombie

__all__ = ["engine"]

pytestmark = pytest.mark.slow

ASSET_CAP = 1000


@pytest.fixture
def tool_url(db_url: str, home: Path) -> Iterator[str]:
    yield from serve_tool_endpoint(db_url, home, asset_max_bytes=ASSET_CAP, retry_backoff_base_seconds=0)


async def _running(
    engine: AsyncEngine, workspace: Path | None = None, *, budget: str | None = None
) -> tuple[Any, leases.Claim]:
    """A running attempt of a task for ada (with that budget), in ``workspace``."""
    world = await make_world(engine)
    async with engine.begin() as conn:
        await tasks.create_task(
            conn,
            company="acme",
            title="Parent",
            agent="ada",
            budget_usd=Decimal(budget) if budget else None,
        )
        (claim,) = await leases.claim(conn, agent_id=world.agents["ada"]["id"], holder="t", lease_seconds=60)
        if workspace is not None:
            workspace.mkdir(parents=True, exist_ok=True)
            await leases.start(
                conn, claim.identity(), fencing_token=claim.fencing_token, workspace_path=str(workspace)
            )
    return world, claim


async def _rows(engine: AsyncEngine, sql: str, **params: Any) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        return [dict(r) for r in (await conn.execute(text(sql), params)).mappings()]


async def test_subtasks_go_to_the_team_or_a_named_agent_within_the_parents_budget(
    engine: AsyncEngine, tool_url: str
) -> None:
    world, claim = await _running(engine, budget="5")
    async with mcp_client(tool_url, claim.lease_token) as client:
        team_child = payload(
            await client.call_tool("create_subtask", {"title": "Write tests", "budgetUsd": "3"})
        )
        assert team_child["parentTaskId"] == str(claim.task_id) and team_child["status"] == "queued"
        assert team_child["assignedAgentId"] is None and team_child["budgetUsd"] == "3.0000"
        # 5 - 3 promised = 2 left: 2.5 is refused, and nothing is created.
        over = await client.call_tool("create_subtask", {"title": "Too big", "budgetUsd": 2.5})
        assert error_code(over) == "invalid_input"
        assert payload(over)["error"]["details"] == {"field": "budgetUsd", "leftUsd": "2.0000"}
        # The parent spends 0.75: 1.25 is left, and a child without a budget gets all of it.
        async with engine.begin() as conn:
            cost = cost_from_event({"type": "cost", "kind": "tool", "usd": "0.75", "name": "search"})
            await ledger.record(conn, claim.identity(), fencing_token=claim.fencing_token, cost=cost)
        bob_child = payload(await client.call_tool("create_subtask", {"title": "Review", "agent": "bob"}))
        assert bob_child["assignedAgentId"] == str(world.agents["bob"]["id"])
        assert bob_child["budgetUsd"] == "1.2500"
        empty = await client.call_tool("create_subtask", {"title": "One more"})
        assert error_code(empty) == "invalid_input"
        assert "no budget left" in payload(empty)["error"]["message"]
        # Someone who is not in the company is not found, and a typo in an argument is refused.
        assert error_code(await client.call_tool("create_subtask", {"title": "x", "agent": "mallory"})) == (
            "not_found"
        )
        assert error_code(await client.call_tool("create_subtask", {"titel": "x"})) == "invalid_input"
    children = await _rows(
        engine,
        "SELECT title, created_by, budget_usd, assigned_team_id FROM tasks WHERE parent_id = :p "
        "ORDER BY title",
        p=claim.task_id,
    )
    assert [(c["title"], c["budget_usd"]) for c in children] == [
        ("Review", Decimal("1.2500")),
        ("Write tests", Decimal("3.0000")),
    ]
    assert {c["created_by"] for c in children} == {f"agent:{claim.agent_id}"}
    assert children[1]["assigned_team_id"] == world.agents["ada"]["team_id"]
    created = await _rows(engine, "SELECT actor FROM audit_events WHERE action = 'task.created'")
    assert [r["actor"] for r in created].count(f"agent:{claim.agent_id}") == 2


async def test_concurrent_subtasks_never_share_the_same_dollars(engine: AsyncEngine, tool_url: str) -> None:
    _, claim = await _running(engine, budget="5")

    async def ask(i: int) -> str:
        async with mcp_client(tool_url, claim.lease_token) as client:
            result = await client.call_tool("create_subtask", {"title": f"part {i}", "budgetUsd": "2"})
            return error_code(result) if result.is_error else "created"

    answers = await asyncio.gather(*(ask(i) for i in range(6)))
    assert sorted(answers) == ["created"] * 2 + ["invalid_input"] * 4
    (promised,) = await _rows(
        engine, "SELECT sum(budget_usd) AS usd FROM tasks WHERE parent_id = :p", p=claim.task_id
    )
    assert promised["usd"] == Decimal("4.0000")


async def test_a_parent_without_a_budget_gives_what_is_asked(engine: AsyncEngine, tool_url: str) -> None:
    _, claim = await _running(engine)
    async with mcp_client(tool_url, claim.lease_token) as client:
        child = payload(await client.call_tool("create_subtask", {"title": "Free", "priority": 5}))
    assert child["budgetUsd"] is None


async def test_create_subtask_on_the_http_face_and_for_a_zombie(engine: AsyncEngine, tool_url: str) -> None:
    zombie, fresh = await _zombie(engine)
    headers = {"Authorization": f"Bearer {fresh.lease_token}"}
    ok = httpx.post(
        f"{tool_url}/tools/create_subtask",
        json={"fencingToken": fresh.fencing_token, "title": "Split the work"},
        headers=headers,
        timeout=10,
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["data"]["parentTaskId"] == str(fresh.task_id)
    other = httpx.post(
        f"{tool_url}/tools/create_subtask",
        json={"fencingToken": fresh.fencing_token, "title": "x", "taskId": ok.json()["data"]["taskId"]},
        headers=headers,
        timeout=10,
    )
    assert other.status_code == 403 and other.json()["error"]["code"] == "forbidden"
    async with mcp_client(tool_url, zombie.lease_token) as client:
        stale = await client.call_tool("create_subtask", {"title": "From the past"})
    assert error_code(stale) == "stale_fencing_token"
    assert len(await _rows(engine, "SELECT id FROM tasks WHERE parent_id IS NOT NULL")) == 1
    rejected = await _rows(
        engine, "SELECT payload FROM audit_events WHERE action = 'lease.stale_write_rejected'"
    )
    assert [r["payload"]["tool"] for r in rejected] == ["create_subtask"]


def _assets(home: Path) -> list[Path]:
    root = home / "data" / "storage" / "companies"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


async def test_upload_asset_stores_a_workspace_file_and_records_it(
    engine: AsyncEngine, tool_url: str, tmp_path: Path, home: Path
) -> None:
    workspace = tmp_path / "ws"
    world, claim = await _running(engine, workspace)
    (workspace / "out").mkdir()
    (workspace / "out" / "report.txt").write_bytes(b"quarterly numbers\n")
    async with mcp_client(tool_url, claim.lease_token) as client:
        stored = payload(await client.call_tool("upload_asset", {"path": "out/./report.txt"}))
    asset = home / "data" / "storage" / stored["path"]
    assert stored["path"] == f"companies/{world.company_id}/assets/{stored['assetId']}/report.txt"
    assert asset.read_bytes() == b"quarterly numbers\n" and stored["bytes"] == 18
    assert _assets(home) == [asset]
    (event,) = await _rows(
        engine, "SELECT actor, subject_id, payload FROM audit_events WHERE action = 'asset.uploaded'"
    )
    assert event["actor"] == f"agent:{claim.agent_id}" and event["subject_id"] == stored["assetId"]
    assert event["payload"]["sha256"] == stored["sha256"] and event["payload"]["path"] == "out/report.txt"
    # The same through the HTTP face.
    over_http = httpx.post(
        f"{tool_url}/tools/upload_asset",
        json={"fencingToken": claim.fencing_token, "path": "out/report.txt"},
        headers={"Authorization": f"Bearer {claim.lease_token}"},
        timeout=10,
    )
    assert over_http.status_code == 200, over_http.text
    assert len(_assets(home)) == 2


async def test_upload_asset_refuses_paths_that_leave_the_workspace_and_large_files(
    engine: AsyncEngine, tool_url: str, tmp_path: Path, home: Path
) -> None:
    workspace = tmp_path / "ws"
    _, claim = await _running(engine, workspace)
    secret = tmp_path / "secret.txt"
    secret.write_text("the master key")
    (workspace / "link.txt").symlink_to(secret)
    (workspace / "linkdir").symlink_to(tmp_path)
    (workspace / "sub").mkdir()
    os.mkfifo(workspace / "pipe")
    os.link(secret, workspace / "hard.txt")
    (workspace / "big.bin").write_bytes(b"x" * (ASSET_CAP + 1))
    (workspace / "fits.bin").write_bytes(b"x" * ASSET_CAP)
    refused = {
        "../secret.txt": "..",
        "sub/../../secret.txt": "..",
        str(secret): "relative",
        "link.txt": "symlink",
        "linkdir/secret.txt": "symlink",
        "sub": "regular file",
        "pipe": "regular file",
        "hard.txt": "hard links",
        "missing.txt": "does not exist",
        "sub/missing/x": "does not exist",
        ".": "names no file",
    }
    async with mcp_client(tool_url, claim.lease_token) as client:
        for path, why in refused.items():
            result = await client.call_tool("upload_asset", {"path": path})
            assert error_code(result) == "invalid_input", path
            assert why in payload(result)["error"]["message"], (path, payload(result))
        too_big = await client.call_tool("upload_asset", {"path": "big.bin"})
        assert error_code(too_big) == "payload_too_large"
        assert _assets(home) == []
        assert payload(await client.call_tool("upload_asset", {"path": "fits.bin"}))["bytes"] == ASSET_CAP
    assert len(_assets(home)) == 1
    assert len(await _rows(engine, "SELECT id FROM audit_events WHERE action = 'asset.uploaded'")) == 1


async def test_a_zombie_uploads_nothing(engine: AsyncEngine, tool_url: str, home: Path) -> None:
    zombie, _ = await _zombie(engine)
    async with mcp_client(tool_url, zombie.lease_token) as client:
        assert error_code(await client.call_tool("upload_asset", {"path": "a.txt"})) == "stale_fencing_token"
    assert _assets(home) == []


async def test_memory_over_mcp_with_an_identity_token_and_a_lease_token(
    engine: AsyncEngine, tool_url: str
) -> None:
    world, claim = await _running(engine)
    async with mcp_client(tool_url, world.agents["ada"]["token"]) as client:
        wrote = payload(
            await client.call_tool("memory_write", {"scope": "agent", "topic": "style", "body": "terse"})
        )
        assert wrote["topic"] == "style"
        read = payload(await client.call_tool("memory_read", {"scope": "agent"}))
        assert [e["body"] for e in read["entries"]] == ["terse"]
        # Not bob's, and an identity token has no task memory.
        bob = str(world.agents["bob"]["id"])
        denied = await client.call_tool("memory_read", {"scope": "agent", "scopeId": bob})
        assert error_code(denied) == "memory_access_denied"
        assert error_code(await client.call_tool("memory_read", {"scope": "task"})) == "invalid_input"
    async with mcp_client(tool_url, claim.lease_token) as client:
        payload(await client.call_tool("memory_write", {"scope": "task", "topic": "plan", "body": "step 1"}))
        task_memory = payload(await client.call_tool("memory_read", {"scope": "task"}))
        assert [e["body"] for e in task_memory["entries"]] == ["step 1"]
        agent_memory = payload(await client.call_tool("memory_read", {"scope": "agent"}))
        assert [e["body"] for e in agent_memory["entries"]] == ["terse"]
        # Another task's memory is out of reach of this run's lease token.
        async with engine.begin() as conn:
            theirs = await tasks.create_task(conn, company="acme", title="Not mine", agent="bob")
        cross = await client.call_tool("memory_read", {"scope": "task", "scopeId": str(theirs["id"])})
        assert error_code(cross) == "memory_access_denied"
    denials = await _rows(engine, "SELECT actor FROM audit_events WHERE action = 'memory.access_denied'")
    assert [d["actor"] for d in denials] == [f"agent:{world.agents['ada']['id']}"] * 2


async def test_request_approval_over_mcp(engine: AsyncEngine, tool_url: str) -> None:
    _, claim = await _running(engine)
    async with mcp_client(tool_url, claim.lease_token) as client:
        asked = {"action": "Send the newsletter", "categories": ["external_send"], "waitSeconds": 0}
        first = payload(await client.call_tool("request_approval", asked))
        again = payload(await client.call_tool("request_approval", asked))
    # ada's policy asks for nothing, so the approval is granted at once (approvals/policy.py).
    assert first["status"] == "approved" and first["created"] is True
    assert first["next"] == "go ahead with the action as asked" and first["taskStatus"] is None
    assert again["status"] == "approved"
