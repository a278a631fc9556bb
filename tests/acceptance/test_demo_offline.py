"""The offline demo end to end: `demo`, then `up` runs every task to review with the example agent."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from company_agents.demo import DEMO_TASKS
from tests.acceptance.test_cli_up import CLI, free_port, run_cli, wait_healthy
from tests.conftest import ProductDb

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("git") is None, reason="needs git")]


def test_demo_tasks_reach_review_with_committed_files(
    product_db: ProductDb, cli_env: dict[str, str], home: Path
) -> None:
    """In each of the product's database modes: its default (no DATABASE_URL) and a URL."""
    db_url = product_db.url
    api_port = free_port()
    env = {
        **cli_env,
        **product_db.env,
        "COMPANY_AGENTS_API_PORT": str(api_port),
        "COMPANY_AGENTS_TOOL_PORT": str(free_port()),
        "COMPANY_AGENTS_DASHBOARD_PORT": str(free_port()),
    }
    assert run_cli("demo", env=env).returncode == 0
    up = subprocess.Popen([*CLI, "up"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_healthy(api_port, up)
        deadline = time.monotonic() + 60
        while True:
            with psycopg.connect(db_url) as conn:
                statuses = [r[0] for r in conn.execute("SELECT status FROM tasks")]
            if statuses and all(s == "review" for s in statuses):
                break
            assert time.monotonic() < deadline, f"tasks still {statuses}"
            time.sleep(0.25)
    finally:
        up.send_signal(signal.SIGTERM)
        up.communicate(timeout=60)
    assert len(statuses) == len(DEMO_TASKS)

    runs = json.loads(run_cli("run", "list", "--company", "demo", "--json", env=env).stdout)
    assert len(runs) == len(DEMO_TASKS)
    for run in runs:
        assert (run["status"], run["exitReason"]) == ("succeeded", "complete")
        output = run["output"]["output"]
        workspace = Path(run["workspacePath"])  # kept: the demo asks for it
        for name in output["files"]:
            assert (workspace / name).read_text().startswith(output["content"][:50])
        log = subprocess.run(
            ["git", "log", "--format=%H %an", "-1"], cwd=workspace, capture_output=True, text=True, check=True
        )
        assert log.stdout.split(" ", 1) == [output["commit"], "Company Agents writer\n"]
        logs = run_cli("run", "logs", run["id"], env=env)
        assert logs.returncode == 0 and '"type": "complete"' in logs.stdout

    # Each run reported a cost for the pretend model, priced through the runner by the demo's override.
    costs = json.loads(run_cli("costs", "show", "--company", "demo", "--json", env=env).stdout)
    assert costs["total"]["entries"] == len(DEMO_TASKS) and costs["unpriced"]["entries"] == 0
    assert 0 < Decimal(costs["total"]["usd"]) < Decimal("0.01")  # small, and clearly a demo price
    entries = json.loads(run_cli("costs", "entries", "--company", "demo", "--json", env=env).stdout)
    assert {e["priceSource"].split(":")[0] for e in entries} == {"override"}
    assert {e["model"] for e in entries} == {"demo-offline-writer"}

    by_title = {r["taskTitle"]: r for r in runs}
    readme = Path(by_title["Write the project README"]["workspacePath"]) / "README.md"
    assert readme.read_text().startswith("# Demo Co\n")
    summary = by_title["Summarise the files in .company-agents"]["output"]["output"]
    assert summary["files"] == ["docs/context-summary.md"] and "task.json" in summary["content"]
    approved = run_cli("task", "approve", by_title["Write the project README"]["taskId"], env=env)
    assert approved.returncode == 0 and "is done" in approved.stdout
