"""The http adapter (ca-http-v1) on real PostgreSQL against the reference remote agent over real HTTP
(uvicorn): a task to review, a dropped event stream resumed with each event applied once, a malformed
event, a stream that does not come back, cancel and timeout reaching the remote agent, and the bearer
kept out of every log and reason."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from company_agents import leases, secrets_store, tasks
from company_agents.adapters.config import AdapterConfig
from company_agents.adapters.runner import AgentRun, RunState
from company_agents.db.database import Database
from company_agents.examples.remote_agent import RemoteAgent, Session
from company_agents.master_key import MasterKey
from company_agents.pricing.overrides import Rates, set_override
from company_agents.settings import Settings
from company_agents.workspaces import run_log_path
from tests.integration.queue_helpers import ThreadedServer, engine, free_port, make_world, tool_url

__all__ = ["engine", "tool_url"]

pytestmark = pytest.mark.slow

TOKEN = "ra_secret_bearer_0123456789abcdef"
KEY = MasterKey(key=bytes(32), source="test")


@dataclass
class Remote:
    url: str
    agent: RemoteAgent


@pytest.fixture(scope="module")
def remote() -> Iterator[Remote]:
    agent = RemoteAgent(TOKEN)
    port = free_port()
    server = ThreadedServer(uvicorn.Config(agent.app(), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "the remote agent did not start"
        time.sleep(0.01)
    yield Remote(f"http://127.0.0.1:{port}", agent)
    server.should_exit = True
    thread.join(timeout=10)


@dataclass
class Done:
    state: RunState
    claim: leases.Claim
    session: Session | None
    log: str


def adapter_for(remote: Remote, **kw: Any) -> AdapterConfig:
    return AdapterConfig(
        name="remote",
        type="http",
        binary="",
        protocol="ca-http-v1",
        base_url=remote.url,
        auth_secret="REMOTE_AGENT_TOKEN",
        gateway=False,
        **kw,
    )


async def run_task(
    engine: AsyncEngine,
    db_url: str,
    home: Path,
    remote: Remote,
    body: str,
    *,
    secret: str | None = TOKEN,
    max_attempts: int = 2,
    budget_usd: Decimal | None = None,
    during: Any = None,
    settings: dict[str, Any] | None = None,
    **adapter: Any,
) -> Done:
    world = await make_world(engine, agent_names=("ada",))
    async with engine.begin() as conn:
        await tasks.create_task(
            conn,
            company="acme",
            title="Count the words",
            body=body,
            agent="ada",
            max_attempts=max_attempts,
            budget_usd=budget_usd,
        )
        # The reference agent's pretend model, priced so that its one cost event can overrun a budget.
        await set_override(
            conn, world.company_id, "demo-remote-model", Rates(Decimal(1000), Decimal(1000)), set_by="t"
        )
        if secret is not None:
            await secrets_store.create_secret(
                conn, KEY, company_id=world.company_id, name="REMOTE_AGENT_TOKEN", value=secret
            )
    async with engine.begin() as conn:
        (claim,) = await leases.claim(conn, agent_id=world.agents["ada"]["id"], holder="t", lease_seconds=30)
    options: dict[str, Any] = {"lease_seconds": 30, "shutdown_grace_seconds": 2, **(settings or {})}
    config = Settings(home=home, database_url=db_url, **options)
    db = Database(settings=config, url=db_url)
    run = AgentRun(config, db, claim, adapter_for(remote, **adapter), asyncio.Event(), KEY)
    try:
        execution = asyncio.create_task(run.execute())
        if during is not None:
            await during(claim)
        state = await asyncio.wait_for(execution, timeout=30)
    finally:
        await db.dispose()
    sid = remote.agent.by_run.get(str(claim.run_id))
    log = run_log_path(config, claim.run_id).read_text()
    return Done(state, claim, remote.agent.sessions[sid] if sid else None, log)


async def run_row(engine: AsyncEngine, claim: leases.Claim) -> Any:
    async with engine.connect() as conn:
        return (
            await conn.execute(
                text(
                    "SELECT r.status, r.exit_reason, r.error, t.status AS task_status, t.output,"
                    " (SELECT count(*) FROM run_checkpoints c WHERE c.run_id = r.id) AS checkpoints,"
                    " (SELECT count(*) FROM cost_entries e WHERE e.run_id = r.id) AS costs"
                    " FROM runs r JOIN tasks t ON t.id = r.task_id WHERE r.id = :id"
                ),
                {"id": claim.run_id},
            )
        ).one()


async def test_a_remote_agent_does_a_task_to_review(
    engine: AsyncEngine, db_url: str, home: Path, remote: Remote, tool_url: str, caplog: Any
) -> None:
    done = await run_task(
        engine,
        db_url,
        home,
        remote,
        "tool: progress\nsteps: 2\n\nsome words to count",
        settings={"mcp_server_url": tool_url},
    )
    row = await run_row(engine, done.claim)
    assert (row.status, row.exit_reason, row.task_status) == ("succeeded", "complete", "review"), row.error
    output = row.output["output"]
    assert output["words"] == 8 and output["session"] == done.session.id  # type: ignore[union-attr]
    # 3 progress events over SSE and one through the tool endpoint, fenced by the lease token it was sent.
    assert row.checkpoints == 4 and row.costs == 1
    session = done.session
    assert session is not None
    assert session.lease_token == done.claim.lease_token
    assert session.request["fencingToken"] == done.claim.fencing_token
    assert session.request["task"]["title"] == "Count the words"
    assert session.deleted == "ended"
    assert remote.agent.refused == 0
    # The bearer went in a header only: never in the run log, the orchestrator's log or the run's row.
    assert TOKEN not in done.log and TOKEN not in caplog.text and TOKEN not in str(row)
    assert done.claim.lease_token not in done.log


async def test_a_dropped_stream_resumes_and_each_event_is_applied_once(
    engine: AsyncEngine, db_url: str, home: Path, remote: Remote
) -> None:
    # The first connection drops after two events; the resumed one replays everything from event 1.
    done = await run_task(
        engine, db_url, home, remote, "drop-after: 2\nreplay: all\nsteps: 3\n\nfour words right here"
    )
    row = await run_row(engine, done.claim)
    assert (row.status, row.task_status) == ("succeeded", "review"), row.error
    assert done.session is not None and done.session.connects == [None, "2"]
    assert row.checkpoints == 4 and row.costs == 1  # 4 progress, 1 cost: none twice
    assert "reconnecting with Last-Event-ID 2 (1/5)" in done.log


async def test_a_malformed_event_fails_the_run_clearly_and_keeps_what_came_before(
    engine: AsyncEngine, db_url: str, home: Path, remote: Remote
) -> None:
    done = await run_task(engine, db_url, home, remote, "malformed-at: 3\nsteps: 3\n\nx")
    row = await run_row(engine, done.claim)
    assert (row.status, row.exit_reason) == ("failed", "failed")
    assert "malformed event (after event 2)" in row.error and "not JSON" in row.error
    assert row.task_status == "queued"  # retried by policy (2 attempts)
    assert row.checkpoints == 2  # the two events before it were applied
    assert done.session is not None and done.session.deleted == "failed"


async def test_a_stream_that_does_not_come_back_fails_the_run_and_is_retried(
    engine: AsyncEngine, db_url: str, home: Path, remote: Remote
) -> None:
    done = await run_task(engine, db_url, home, remote, "drop-after: 1\n\nx", reconnects=0)
    row = await run_row(engine, done.claim)
    assert (row.status, row.exit_reason, row.task_status) == ("failed", "crash", "queued")
    assert "did not come back after 0 reconnects" in row.error
    assert row.checkpoints == 1


async def test_a_cancel_reaches_the_remote_agent_at_once(
    engine: AsyncEngine, db_url: str, home: Path, remote: Remote
) -> None:
    async def cancel(claim: leases.Claim) -> None:
        await asyncio.sleep(0.5)
        async with engine.begin() as conn:
            await tasks.cancel_task(conn, str(claim.task_id))

    # A cancelled task: the next renewal is refused, and the remote agent is told at once (no grace).
    cancelled = await run_task(
        engine, db_url, home, remote, "hang: yes\n\nx", during=cancel, settings={"lease_seconds": 2}
    )
    assert cancelled.state.lost_lease
    assert cancelled.session is not None and cancelled.session.deleted == "lease lost"
    assert cancelled.session.inputs == []


async def test_a_timeout_asks_the_remote_agent_to_stop_then_ends_its_session(
    engine: AsyncEngine, db_url: str, home: Path, remote: Remote
) -> None:
    done = await run_task(engine, db_url, home, remote, "hang: yes\n\nx", timeout_seconds=1)
    row = await run_row(engine, done.claim)
    assert (row.status, row.exit_reason) == ("failed", "timeout")
    assert done.session is not None
    assert done.session.inputs == [{"type": "shutdown", "reason": "timeout", "graceSeconds": 2.0}]
    assert done.session.deleted == "timeout"


async def test_a_wrong_or_missing_bearer_fails_clearly_without_the_secret(
    engine: AsyncEngine, db_url: str, home: Path, remote: Remote
) -> None:
    wrong = "ra_wrong_bearer_9876543210"
    done = await run_task(engine, db_url, home, remote, "x", secret=wrong, max_attempts=1)
    row = await run_row(engine, done.claim)
    assert (row.status, row.task_status) == ("failed", "failed")
    assert row.error == "the remote agent refused our credentials (401)"
    assert wrong not in done.log and done.session is None


async def test_a_missing_bearer_secret_fails_clearly(
    engine: AsyncEngine, db_url: str, home: Path, remote: Remote
) -> None:
    done = await run_task(engine, db_url, home, remote, "x", secret=None, max_attempts=1)
    row = await run_row(engine, done.claim)
    assert row.status == "failed" and "no secret REMOTE_AGENT_TOKEN" in row.error


def test_adapter_check_finds_the_remote_agent_and_names_the_secret_only(remote: Remote) -> None:
    from company_agents.adapters.remote.check import check

    findings = {f.name: f for f in check(adapter_for(remote), company_secrets={"REMOTE_AGENT_TOKEN"})}
    assert all(f.ok for f in findings.values()), findings
    assert "REMOTE_AGENT_TOKEN" in findings["auth"].detail and TOKEN not in str(findings)
    gone = check(adapter_for(Remote(f"http://127.0.0.1:{free_port()}", remote.agent)), company_secrets=set())
    assert [f.ok for f in gone] == [True, False, False]


async def test_a_budget_far_overrun_ends_the_remote_session_at_once(
    engine: AsyncEngine, db_url: str, home: Path, remote: Remote
) -> None:
    # One cost event of ~$0.03 against a $0.001 task budget: a catastrophic breach, no grace.
    done = await run_task(
        engine, db_url, home, remote, "delay: 1\nsteps: 0\n\n" + "word " * 10, budget_usd=Decimal("0.001")
    )
    row = await run_row(engine, done.claim)
    assert done.state.budget_stop == "catastrophic"
    assert (row.status, row.exit_reason, row.task_status) == ("cancelled", "budget", "blocked")
    assert row.costs == 1
    assert done.session is not None and done.session.deleted == "budget" and done.session.inputs == []


def test_doctor_has_a_line_per_http_adapter(remote: Remote, tmp_path: Path) -> None:
    import json

    from company_agents.doctor import _agent_clis

    down = f"http://127.0.0.1:{free_port()}"
    entries = {"up": {"type": "http", "baseUrl": remote.url}, "down": {"type": "http", "baseUrl": down}}
    (tmp_path / "config.json").write_text(json.dumps({"adapters": entries}))
    checks = {c.name: c for c in _agent_clis(Settings(home=tmp_path))}
    assert checks["adapter up"].ok and not checks["adapter up"].warning
    assert checks["adapter down"].ok and checks["adapter down"].warning  # a warning, not a failure
