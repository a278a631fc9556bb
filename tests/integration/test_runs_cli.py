"""`company-agents run list|show|logs` over runs made by real claims, and `logs --follow` on a live run."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from company_agents import leases, tasks
from tests.integration.queue_helpers import engine, make_world

__all__ = ["engine"]

pytestmark = pytest.mark.slow

CLI = [sys.executable, "-m", "company_agents.cli.main"]


async def claim_one(engine: AsyncEngine, agent_id: uuid.UUID) -> leases.Claim:
    async with engine.begin() as conn:
        claims = await leases.claim(conn, agent_id=agent_id, holder="t", lease_seconds=30)
    assert len(claims) == 1
    return claims[0]


async def test_run_list_show_and_logs(
    engine: AsyncEngine, db_url: str, cli_env: dict[str, str], home: Path
) -> None:
    world = await make_world(engine)
    ada, bob = world.agents["ada"], world.agents["bob"]
    async with engine.begin() as conn:
        first = await tasks.create_task(conn, company="acme", title="Write the README", agent="ada")
        await tasks.create_task(conn, company="acme", title="Draft the plan", agent="bob")
    done = await claim_one(engine, ada["id"])
    live = await claim_one(engine, bob["id"])
    workspace = home / "runs" / str(done.run_id)
    workspace.mkdir(parents=True)
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE runs SET workspace_path = :p WHERE id = :id"),
            {"p": str(workspace), "id": done.run_id},
        )
        ident = done.identity()
        await leases.report_progress(
            conn, ident, fencing_token=done.fencing_token, checkpoint={"message": "wrote it", "percent": 60}
        )
        await leases.complete(conn, ident, fencing_token=done.fencing_token, output={"files": ["README.md"]})
    log = home / "logs" / "runs" / f"{done.run_id}.log"
    log.parent.mkdir(parents=True)
    log.write_text("[orchestrator] started\n[stdout] hello\n[stderr] warning: none\n")

    env = {**cli_env, "DATABASE_URL": db_url, "COLUMNS": "200"}  # tables unwrapped

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=60)

    listed = json.loads(run("run", "list", "--json").stdout)
    assert [r["id"] for r in listed] == [str(live.run_id), str(done.run_id)]  # newest first
    assert {"taskTitle", "agentName", "companySlug", "exitReason", "workspacePath"} <= set(listed[0])
    running = json.loads(run("run", "list", "--company", "acme", "--status", "running", "--json").stdout)
    assert [(r["id"], r["agentName"]) for r in running] == [(str(live.run_id), "bob")]
    by_task = json.loads(run("run", "list", "--task", str(first["id"]), "--json").stdout)
    assert [(r["status"], r["exitReason"]) for r in by_task] == [("succeeded", "complete")]
    table = run("run", "list", "--company", "acme")
    assert table.returncode == 0 and "Write the README" in table.stdout and "succeeded" in table.stdout
    bad = run("run", "list", "--status", "bogus")
    assert bad.returncode == 1 and "unknown status bogus" in bad.stderr and bad.stderr.count("\n") == 1

    shown = json.loads(run("run", "show", str(done.run_id), "--json").stdout)
    assert shown["status"] == "succeeded" and shown["taskTitle"] == "Write the README"
    assert shown["workspacePath"] == str(workspace) and shown["workspaceExists"] is True
    assert shown["logPath"] == str(log) and shown["logExists"] is True
    assert [c["payload"]["message"] for c in shown["checkpoints"]] == ["wrote it"]
    human = run("run", "show", str(done.run_id))
    assert human.returncode == 0 and "wrote it" in human.stdout and str(log) in human.stdout

    logs = run("run", "logs", str(done.run_id))
    assert logs.returncode == 0 and logs.stdout == log.read_text()
    no_log = run("run", "logs", str(live.run_id))
    assert no_log.returncode == 1 and "has no log yet" in no_log.stderr
    unknown = run("run", "logs", str(uuid.uuid4()))
    assert unknown.returncode == 1 and "no run" in unknown.stderr and unknown.stderr.count("\n") == 1
    assert run("run", "show", "nope").returncode == 1


async def test_logs_follow_returns_once_the_run_has_ended(
    engine: AsyncEngine, db_url: str, cli_env: dict[str, str], home: Path
) -> None:
    world = await make_world(engine)
    async with engine.begin() as conn:
        await tasks.create_task(conn, company="acme", title="Take a while", agent="ada")
    live = await claim_one(engine, world.agents["ada"]["id"])
    log = home / "logs" / "runs" / f"{live.run_id}.log"
    log.parent.mkdir(parents=True)
    log.write_text("[orchestrator] started\n")

    follower = subprocess.Popen(
        [*CLI, "run", "logs", str(live.run_id), "--follow"],
        env={**cli_env, "DATABASE_URL": db_url},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        await asyncio.sleep(2.0)
        assert follower.poll() is None, follower.communicate()
        with log.open("a") as fh:
            fh.write('[stdout] {"type":"progress","message":"half way"}\n')
        async with engine.begin() as conn:
            await leases.complete(conn, live.identity(), fencing_token=live.fencing_token, output="ok")
        ended = time.monotonic()
        with log.open("a") as fh:  # the adapter's last words, written just after the run ended
            fh.write("[orchestrator] run ended: complete\n")
        out, err = follower.communicate(timeout=20)
        took = time.monotonic() - ended
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()
    assert follower.returncode == 0, err
    assert out == log.read_text()
    assert out.endswith("[orchestrator] run ended: complete\n")
    assert took < 5
