"""The real CLI: `budget set|show`, `costs topup`, `agent hire --task-budget`, all with `--json`."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from company_agents.db.database import sqlalchemy_url
from tests.conftest import PgServer
from tests.integration.queue_helpers import make_world

pytestmark = pytest.mark.slow  # the CLI in subprocesses

CLI = [sys.executable, "-m", "company_agents.cli.main"]


@pytest.fixture
def url(external_pg: PgServer) -> str:
    return external_pg.create_database()  # about the CLI, not the server: one backend


@pytest.fixture
async def engine(url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_async_engine(sqlalchemy_url(url), poolclass=NullPool)
    yield eng
    await eng.dispose()


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=120)


def ok_json(env: dict[str, str], *args: str) -> Any:
    result = run(env, *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


async def test_budget_set_show_topup_and_a_per_task_budget_at_hire(
    engine: AsyncEngine, url: str, cli_env: dict[str, str]
) -> None:
    await make_world(engine, agent_names=("ada",))
    env = {**cli_env, "DATABASE_URL": url}
    hired = ok_json(
        env, "agent", "hire", "--company", "acme", "--name", "bo", "--role", "r", "--adapter", "p",
        "--task-budget", "2.5",
    )  # fmt: skip
    assert hired["taskBudgetUsd"] == "2.5000"
    ok_json(env, "budget", "set", "--company", "acme", "--usd", "1000", "--period", "rolling-30d")
    ok_json(env, "budget", "set", "--company", "acme", "--team", "Design", "--usd", "150")
    shown = ok_json(env, "budget", "show", "--company", "acme")
    caps = {(b["scope"], b["name"]): b["capUsd"] for b in shown["budgets"]}
    assert caps[("company", "acme")] == "1000.0000" and shown["fiscalPeriod"] == "rolling-30d"
    assert caps[("team", "Design")] == "150.0000" and caps[("agent", "bo")] == "80"
    assert {"spentUsd", "reservedUsd", "remainingUsd", "percentUsed", "level"} <= shown["budgets"][0].keys()
    topped = ok_json(env, "costs", "topup", "--company", "acme", "--team", "Design", "--usd", "50")
    assert topped["teamCapUsd"] == "200.0000" and topped["reserveLeftUsd"] == "150.0000"
    refused = run(env, "costs", "topup", "--company", "acme", "--team", "Design", "--usd", "151", "--json")
    assert refused.returncode != 0 and json.loads(refused.stdout)["error"]["code"] == "conflict"
    ok_json(env, "budget", "set", "--company", "acme", "--period", "monthly")  # the cap stays
    shown = ok_json(env, "budget", "show", "--company", "acme")
    assert shown["fiscalPeriod"] == "monthly" and shown["budgets"][0]["capUsd"] == "1000.0000"
    assert run(env, "budget", "set", "--company", "acme").returncode != 0  # neither --usd nor --default
