"""A remote agent under a real `company-agents up`: the http adapter from config.json, its bearer from
the secret store, the reference remote agent in a process of its own; a task to review, another whose
event stream drops mid-run and is resumed; the bearer in no argv and no log."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from tests.acceptance.orchestrator import Orchestrator, add_task, cli, query, set_secret, wait_for
from tests.conftest import PgServer
from tests.integration.queue_helpers import free_port

pytestmark = pytest.mark.slow  # real `up` and a remote agent process

TOKEN = "ra_acceptance_bearer_5f0c1e2d3b4a"


@pytest.fixture
def db_url(external_pg: PgServer) -> str:
    return external_pg.create_database()


@pytest.fixture
def remote_url() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "company_agents.examples.remote_agent", "--port", str(port)],
        env={**os.environ, "REMOTE_AGENT_TOKEN": TOKEN},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline and proc.poll() is None, "the remote agent did not start"
        time.sleep(0.05)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


def test_a_remote_agent_runs_tasks_to_review_under_up(
    cli_env: dict[str, str], db_url: str, home: Path, remote_url: str
) -> None:
    env = {
        **cli_env,
        "DATABASE_URL": db_url,
        "COMPANY_AGENTS_SCHEDULER_POLL_SECONDS": "0.2",
        "COMPANY_AGENTS_SHUTDOWN_GRACE_SECONDS": "2",
    }
    home.mkdir(parents=True, exist_ok=True)
    cli(env, "new", "--name", "Acme", "--teams", "Eng")
    (home / "config.json").write_text(
        json.dumps(
            {
                "adapters": {
                    "remote": {
                        "type": "http",
                        "baseUrl": remote_url,
                        "auth": {"type": "bearer", "secret": "REMOTE_AGENT_TOKEN"},
                    }
                }
            }
        )
    )
    set_secret(env, "REMOTE_AGENT_TOKEN", TOKEN)
    cli(
        env,
        "agent",
        "hire",
        "--company",
        "acme",
        "--name",
        "pi",
        "--role",
        "t",
        "--adapter",
        "remote",
        "--team",
        "Eng",
    )
    listed = {a["name"]: a for a in cli(env, "adapter", "list")}
    assert listed["remote"]["type"] == "http" and listed["remote"]["baseUrl"] == remote_url
    checked = cli(env, "adapter", "check", "remote", "--company", "acme")
    assert all(f["ok"] for f in checked) and TOKEN not in json.dumps(checked)

    plain = add_task(env, "steps: 1\n\nthree small words")
    dropped = add_task(env, "drop-after: 2\nsteps: 3\n\nx")
    orch = Orchestrator(env)
    try:

        def both_in_review() -> bool:
            rows = query(db_url, "SELECT status FROM tasks WHERE id IN (%s, %s)", plain, dropped)
            return [r[0] for r in rows] == ["review", "review"]

        try:
            wait_for(both_in_review, timeout=30, what="both tasks in review")
        except AssertionError:
            runs = query(db_url, "SELECT task_id, status, exit_reason, error FROM runs")
            raise AssertionError(f"runs: {runs}; up: {orch.terminate()[-3000:]}") from None
        argv = [" ".join(p.info["cmdline"] or []) for p in psutil.process_iter(["cmdline"])]
        assert not any(TOKEN in a for a in argv)
    finally:
        orch.terminate()
    ((output,),) = query(db_url, "SELECT output FROM tasks WHERE id = %s", plain)
    assert output["output"]["words"] == 5  # "steps: 1" counts too
    ((run_id, checkpoints),) = query(
        db_url,
        "SELECT r.id, (SELECT count(*) FROM run_checkpoints c WHERE c.run_id = r.id) FROM runs r"
        " WHERE r.task_id = %s",
        dropped,
    )
    assert checkpoints == 4  # each progress once, across the drop
    run_log = (home / "logs" / "runs" / f"{run_id}.log").read_text()
    assert "reconnecting with Last-Event-ID 2" in run_log
    logs = "".join(p.read_text() for p in (home / "logs").rglob("*.log"))
    assert TOKEN not in logs
