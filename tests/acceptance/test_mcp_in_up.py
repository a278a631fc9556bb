"""The MCP server inside a real `company-agents up`: an agent that speaks only MCP runs a task to review,
and `up` still stops promptly while an MCP client holds a session open."""

from __future__ import annotations

import asyncio
import sys
import threading
from pathlib import Path

import httpx
import pytest

from tests.acceptance.orchestrator import Orchestrator, add_task, cli, query, setup_company, wait_for
from tests.conftest import ProductDb
from tests.integration.mcp_helpers import mcp_client, payload

pytestmark = pytest.mark.slow  # real `up` and agent processes

AGENT = Path(__file__).parent / "agents" / "mcp_agent.py"


@pytest.fixture
def db_url(product_db: ProductDb) -> str:
    return product_db.url


@pytest.fixture
def env(cli_env: dict[str, str], product_db: ProductDb) -> dict[str, str]:
    return {
        **cli_env,
        **product_db.env,
        "COMPANY_AGENTS_SCHEDULER_POLL_SECONDS": "0.2",
        "COMPANY_AGENTS_SHUTDOWN_GRACE_SECONDS": "2",
        "COMPANY_AGENTS_RETRY_BACKOFF_BASE_SECONDS": "0",
        # The agent imports the SDK from this interpreter's site-packages; isolation is tested elsewhere.
        "COMPANY_AGENTS_ISOLATION": "none",
    }


def _mcp_company(env: dict[str, str], home: Path, go_file: Path | None = None) -> None:
    extra_env = {"GO_FILE": str(go_file)} if go_file else {}
    setup_company(env, home, adapter_extra={"binary": sys.executable, "args": [str(AGENT)], "env": extra_env})


def _status(db_url: str, task_id: str) -> str:
    return str(query(db_url, "SELECT status FROM tasks WHERE id = %s", task_id)[0][0])


def test_an_agent_completes_its_task_over_mcp_inside_up(env: dict[str, str], home: Path, db_url: str) -> None:
    _mcp_company(env, home)
    task_id = add_task(env, "complete")
    failing = add_task(env, "fail", "--max-attempts", "1")
    orch = Orchestrator(env)
    try:
        assert httpx.get(f"http://127.0.0.1:{orch.tool_port}/healthz", timeout=5).json() == {"status": "ok"}
        wait_for(lambda: _status(db_url, task_id) == "review", what="review over MCP")
        wait_for(lambda: _status(db_url, failing) == "failed", what="failed over MCP")
    finally:
        orch.terminate()
    ((output,),) = query(db_url, "SELECT output FROM tasks WHERE id = %s", task_id)
    assert output == {"output": {"file": "result.txt"}, "reasoning": "via MCP"}
    ((payload_,),) = query(
        db_url,
        "SELECT c.payload FROM run_checkpoints c JOIN runs r ON r.id = c.run_id WHERE r.task_id = %s",
        task_id,
    )
    assert payload_ == {"message": "started", "step": "begin"}
    ((reason,),) = query(db_url, "SELECT failure_reason FROM tasks WHERE id = %s", failing)
    assert reason == "scripted failure"


def test_up_stops_with_mcp_sessions_open(
    env: dict[str, str], home: Path, db_url: str, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    _mcp_company(env, home, go_file=go)
    token = cli(env, "agent", "rotate-token", "--company", "acme", "agent0")["token"]
    task_id = add_task(env, "hold")
    orch = Orchestrator(env)
    base = f"http://127.0.0.1:{orch.tool_port}"
    opened = threading.Event()
    release = threading.Event()

    async def outsider() -> None:
        # A client of its own, not an agent of this `up`, with a session (and its event stream) open.
        async with mcp_client(base, token) as client:
            answer = payload(
                await client.call_tool("memory_write", {"scope": "agent", "topic": "t", "body": "b"})
            )
            assert answer["topic"] == "t"
            opened.set()
            while not release.is_set():
                await asyncio.sleep(0.05)

    holder = threading.Thread(target=lambda: asyncio.run(outsider()), daemon=True)
    holder.start()
    try:
        # The agent holds its own MCP session open, waiting for the go file that never comes.
        wait_for(lambda: _status(db_url, task_id) == "running", what="running")
        checkpoints = (
            "SELECT count(*) FROM run_checkpoints c JOIN runs r ON r.id = c.run_id WHERE r.task_id = %s"
        )
        wait_for(lambda: query(db_url, checkpoints, task_id)[0][0] == 1, what="the agent's session")
        wait_for(opened.is_set, what="the outside session")
    finally:
        err = orch.terminate(timeout=60)  # raises if `up` hangs on the open sessions
        release.set()
        holder.join(timeout=30)
    assert orch.proc.returncode == 0, err
    # The held run was shut down and its lease released.
    assert _status(db_url, task_id) == "queued"
    assert query(db_url, "SELECT count(*) FROM leases")[0][0] == 0
