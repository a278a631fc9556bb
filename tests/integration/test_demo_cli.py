"""`company-agents demo`: the example adapter in config.json, a company, agents, queued tasks; idempotent."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from company_agents.demo import DEMO_TASKS

pytestmark = pytest.mark.slow

CLI = [sys.executable, "-m", "company_agents.cli.main"]


def test_demo_registers_the_adapter_and_queues_work_once(
    db_url: str, cli_env: dict[str, str], home: Path
) -> None:
    env = {**cli_env, "DATABASE_URL": db_url}
    home.mkdir(parents=True)
    config_path = home / "config.json"
    # Somebody's own settings and adapters must survive.
    config_path.write_text(
        json.dumps({"fiscalPeriod": "rolling-30d", "adapters": {"mine": {"type": "process", "binary": "x"}}})
    )

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=60)

    first = run("demo", "--json")
    assert first.returncode == 0, first.stderr
    data = json.loads(first.stdout)
    assert data["created"] is True and data["adapterChanged"] is True
    assert data["company"]["slug"] == "demo"
    assert len(data["agents"]) == 3 and {a["adapter"] for a in data["agents"]} == {"example"}
    assert len(data["tasks"]) == len(DEMO_TASKS) >= 4
    assert {t["status"] for t in data["tasks"]} == {"queued"}
    assert data["next"][0] == "company-agents up"

    config = json.loads(config_path.read_text())
    assert config["fiscalPeriod"] == "rolling-30d"
    assert config["adapters"]["mine"] == {"type": "process", "binary": "x"}
    assert config["adapters"]["example"] == {
        "type": "process",
        "binary": sys.executable,
        "args": ["-m", "company_agents.examples.writer_agent"],
        "env": {},
        "protocol": "json-lines",
    }

    again = run("demo")
    assert again.returncode == 0, again.stderr
    assert "already exists" in again.stdout and "company-agents up" in again.stdout
    assert json.loads(run("demo", "--json").stdout)["adapterChanged"] is False

    listed = run("task", "list", "--company", "demo", "--json")
    assert len(json.loads(listed.stdout)) == len(DEMO_TASKS)
    with psycopg.connect(db_url) as conn:
        counts = conn.execute(
            "SELECT (SELECT count(*) FROM companies), (SELECT count(*) FROM agents),"
            " (SELECT count(*) FROM tasks WHERE keep_workspace AND status = 'queued')"
        ).fetchone()
        actions = [r[0] for r in conn.execute("SELECT action FROM audit_events")]
    assert counts == (1, 3, len(DEMO_TASKS))
    assert actions.count("company.created") == 1 and actions.count("task.created") == len(DEMO_TASKS)
