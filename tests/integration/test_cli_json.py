"""The real CLI's ``--json``: camelCase for our keys only, user data exactly as stored, and errors."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from company_agents import audit, integrations, leases, tasks
from company_agents.db.database import sqlalchemy_url
from tests.conftest import PgServer
from tests.integration.queue_helpers import make_world

pytestmark = pytest.mark.slow

CLI = [sys.executable, "-m", "company_agents.cli.main"]

# Keys a camelCase pass would rewrite (files_written -> filesWritten, ANTHROPIC_API_KEY -> ANTHROPICAPIKEY).
DATA: dict[str, Any] = {
    "files_written": ["README.md"],
    "ANTHROPIC_API_KEY": "not-a-secret",
    "nested_list": [{"snake_key": 1, "UPPER_KEY": {"deep_key": True}}],
}

# Integration config refuses credential-looking keys, so its upper-case key is another one.
CONFIG: dict[str, Any] = {
    "base_url": "https://x",
    "HTTP_HEADER_NAME": "X-Req",
    "retry_policy": {"max_tries": 3},
}


@pytest.fixture
def url(external_pg: PgServer) -> str:
    # These tests are about the CLI, not the server: one backend is enough.
    return external_pg.create_database()


@pytest.fixture
async def engine(url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_async_engine(sqlalchemy_url(url), poolclass=NullPool)
    yield eng
    await eng.dispose()


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=120)


def ok_json(env: dict[str, str], *args: str) -> Any:
    result = cli(env, *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


async def test_json_keeps_user_data_exactly_as_stored(
    engine: AsyncEngine, url: str, cli_env: dict[str, str]
) -> None:
    adapter_config = {"env": {"ANTHROPIC_API_KEY": {"secret": "anthropic_api_key"}}, "extra_args": ["-v"]}
    world = await make_world(engine, agent_names=("ada",), adapter_config=adapter_config)
    async with engine.begin() as conn:
        task = await tasks.create_task(conn, company="acme", title="Write", agent="ada")
        claims = await leases.claim(conn, agent_id=world.agents["ada"]["id"], holder="t", lease_seconds=30)
        ident = claims[0].identity()
        token = claims[0].fencing_token
        await leases.report_progress(conn, ident, fencing_token=token, checkpoint={"message": "m", **DATA})
        await leases.complete(conn, ident, fencing_token=token, output=DATA)
        await conn.execute(text("UPDATE runs SET output = CAST(:o AS jsonb)"), {"o": json.dumps(DATA)})
        await audit.record(
            conn, actor="user:test", action="test.recorded", subject_type="t", subject_id="1", payload=DATA
        )
        await integrations.add_integration(
            conn, None, company_id=world.company_id, kind="http", name="api", config=CONFIG
        )
    env = {**cli_env, "DATABASE_URL": url}

    shown = ok_json(env, "task", "show", str(task["id"]), "--json")
    assert shown["output"] == {"output": DATA, "reasoning": ""}  # as leases.complete stores it
    assert {"fencingToken", "maxAttempts", "createdAt"} <= shown.keys()  # our keys: camelCase
    assert {"fencingToken", "exitReason", "startedAt"} <= shown["runs"][0].keys()

    run = ok_json(env, "run", "show", str(claims[0].run_id), "--json")
    assert run["output"] == DATA
    assert {"taskTitle", "workspaceExists", "logPath"} <= run.keys()
    checkpoint = run["checkpoints"][0]
    assert {"fencingToken", "createdAt"} <= checkpoint.keys() and checkpoint["payload"] == {
        "message": "m",
        **DATA,
    }

    events = ok_json(env, "audit", "list", "--action", "test.recorded", "--json")
    assert events[0]["payload"] == DATA and "companyId" in events[0]

    listed = ok_json(env, "integration", "list", "--company", "acme", "--json")
    assert listed[0]["config"] == CONFIG and "credentialSecret" in listed[0]

    agent = ok_json(env, "agent", "show", "--company", "acme", "ada", "--json")
    assert agent["adapterConfig"] == adapter_config and "maxConcurrentTasks" in agent


async def test_errors_are_one_line_or_one_json_object(
    engine: AsyncEngine, url: str, cli_env: dict[str, str]
) -> None:
    await make_world(engine)
    env = {**cli_env, "DATABASE_URL": url}

    missing = cli(env, "company", "show", "nope")
    assert missing.returncode == 1 and missing.stdout == ""
    assert missing.stderr.count("\n") == 1 and missing.stderr.startswith("error: ")

    as_json = cli(env, "company", "show", "nope", "--json")
    assert as_json.returncode == 1 and as_json.stderr == ""
    body = json.loads(as_json.stdout)
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == "not_found" and "nope" in body["error"]["message"]

    usage = cli(env, "task", "list", "--json", "--bogus-flag")
    assert usage.returncode == 2 and json.loads(usage.stdout)["error"]["code"] == "usage_error"

    # A table gone from under us: one line naming the problem, never the SQL or its parameters.
    async with engine.begin() as conn:
        await conn.execute(text("DROP TABLE tasks CASCADE"))
    plain = cli(env, "task", "list", "--company", "acme")
    assert plain.returncode == 1, plain.stderr
    assert plain.stderr.count("\n") == 1, plain.stderr
    assert 'relation "tasks" does not exist' in plain.stderr
    assert "SELECT" not in plain.stderr and "[SQL" not in plain.stderr
    broken = cli(env, "task", "list", "--company", "acme", "--json")
    assert broken.returncode == 1
    error = json.loads(broken.stdout)["error"]
    assert error["code"] == "schema_out_of_date" and error["details"]["sqlstate"] == "42P01"
