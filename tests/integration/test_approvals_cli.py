"""The approval commands and the inbox through the real CLI, with ``--json``."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from company_agents import leases, tasks
from company_agents.approvals import lifecycle, store
from company_agents.db.database import sqlalchemy_url
from tests.conftest import PgServer
from tests.integration.queue_helpers import make_world

pytestmark = pytest.mark.slow

CLI = [sys.executable, "-m", "company_agents.cli.main"]


@pytest.fixture
def url(external_pg: PgServer) -> str:
    return external_pg.create_database()  # about the CLI, not the server: one backend is enough


@pytest.fixture
async def engine(url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_async_engine(sqlalchemy_url(url), poolclass=NullPool)
    yield eng
    await eng.dispose()


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=120)


def ok_json(env: dict[str, str], *args: str) -> Any:
    result = cli(env, *args, "--json")
    assert result.returncode == 0, result.stderr or result.stdout
    return json.loads(result.stdout)


async def _ask(engine: AsyncEngine, claim: leases.Claim, action: str) -> str:
    async with engine.begin() as conn:
        row, _ = await store.request(
            conn,
            claim.identity(),
            fencing_token=claim.fencing_token,
            new=store.NewApproval(action=action, cost_usd=None),
            expiry_seconds=3600,
        )
    return str(row["id"])


async def test_hire_with_a_policy_answer_from_the_cli_and_read_the_inbox(
    engine: AsyncEngine, url: str, cli_env: dict[str, str]
) -> None:
    await make_world(engine, agent_names=("ada",))
    env = {**cli_env, "DATABASE_URL": url}
    hired = ok_json(
        env, "agent", "hire", "--company", "acme", "--name", "cy", "--role", "ops",
        "--adapter", "process", "--approvals", "spend_over:5,production_writes", "--model", "claude-sonnet-4",
        "--max-concurrent-tasks", "3",
    )  # fmt: skip
    assert hired["model"] == "claude-sonnet-4"
    assert hired["approvalPolicy"] == {"spendOverUsd": "5", "categories": ["production_writes"]}
    bad = cli(
        env,
        "agent",
        "hire",
        "--company",
        "acme",
        "--name",
        "dee",
        "--role",
        "x",
        "--adapter",
        "process",
        "--approvals",
        "wishes",
    )
    assert bad.returncode != 0 and "unknown approval category" in bad.stderr

    async with engine.begin() as conn:
        for title in ("Deploy", "Email", "Ask"):
            await tasks.create_task(conn, company="acme", title=title, agent="cy")
    claims = []
    for _ in range(3):
        async with engine.begin() as conn:
            claims += await leases.claim(conn, agent_id=hired["id"], holder="t", lease_seconds=60)
    deploy, email, ask = [await _ask(engine, c, f"do {c.title}") for c in claims]
    async with engine.begin() as conn:  # the Deploy run ends waiting: its task is blocked
        await lifecycle.park_run(conn, claims[0].identity(), fencing_token=claims[0].fencing_token)

    box = ok_json(env, "inbox", "--company", "acme")
    assert box["total"] == 3 and {a["id"] for a in box["approvals"]} == {deploy, email, ask}

    edited = ok_json(env, "approval", "approve", deploy, "--edits", '{"target": "staging"}')
    assert edited["status"] == "approved_with_edits" and edited["edits"] == {"target": "staging"}
    again = cli(env, "approval", "deny", deploy, "--reason", "changed my mind", "--json")
    assert again.returncode != 0 and json.loads(again.stdout)["error"]["code"] == "approval_closed"
    assert ok_json(env, "approval", "deny", email, "--reason", "no emails today")["status"] == "denied"
    asked = ok_json(env, "approval", "comment", ask, "--text", "Which one?")
    assert asked["status"] == "asked_question" and asked["comments"][0]["text"] == "Which one?"
    shown = ok_json(env, "approval", "show", deploy, "--company", "acme")
    assert shown["decidedBy"] == "user:local"
    listed = ok_json(env, "approval", "list", "--company", "acme", "--status", "denied")
    assert [a["id"] for a in listed] == [email]
    assert ok_json(env, "task", "show", str(claims[0].task_id))["status"] == "queued"

    box = ok_json(env, "inbox", "--company", "acme")
    assert box["approvals"] == [] and [q["id"] for q in box["questions"]] == [ask]

    rule = ok_json(
        env, "approval", "rule", "add", "--company", "acme", "--effect", "auto_deny",
        "--category", "external_send", "--reason", "quiet period",
    )  # fmt: skip
    assert [r["id"] for r in ok_json(env, "approval", "rule", "list", "--company", "acme")] == [rule["id"]]
    assert (
        ok_json(env, "approval", "rule", "remove", "--company", "acme", rule["id"])["effect"] == "auto_deny"
    )
    assert ok_json(env, "approval", "rule", "list", "--company", "acme") == []
