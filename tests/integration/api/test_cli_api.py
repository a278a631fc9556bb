"""The CLI and the API print the same JSON for the same object; ``token`` commands end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from company_agents.api.app import create_app
from company_agents.db.database import Database
from company_agents.settings import Settings
from tests.conftest import PgServer

pytestmark = pytest.mark.slow

CLI = [sys.executable, "-m", "company_agents.cli.main"]


def ok_json(env: dict[str, str], *args: str) -> Any:
    result = subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


async def _get(url: str, home: Path, token: str, path: str) -> httpx.Response:
    settings = Settings(home=home, database_url=url)
    db = Database(settings=settings, url=url)
    try:
        transport = httpx.ASGITransport(app=create_app(db, settings))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:3100") as client:
            return await client.get(path, headers={"Authorization": f"Bearer {token}"})
    finally:
        await db.dispose()


async def test_cli_and_api_agree_and_tokens_rotate_and_revoke(
    external_pg: PgServer, cli_env: dict[str, str], tmp_path: Path
) -> None:
    url = external_pg.create_database()
    env = {**cli_env, "DATABASE_URL": url}
    created = ok_json(env, "token", "create", "--name", "ci", "--scopes", "read,write", "--json")
    token = created["token"]
    assert token.startswith("ca_dev_") and "tokenHash" not in created
    ok_json(env, "company", "create", "--name", "Acme", "--budget", "12.5", "--json")
    task = ok_json(env, "task", "create", "--company", "acme", "--title", "Write it", "--json")

    for cli_args, path in (
        (("company", "show", "acme", "--json"), "/v1/companies/acme"),
        (("task", "show", task["id"], "--json"), f"/v1/tasks/{task['id']}"),
    ):
        from_cli = ok_json(env, *cli_args)
        response = await _get(url, tmp_path, token, path)
        assert response.status_code == 200, response.text
        from_api = response.json()["data"]
        assert {k: from_cli[k] for k in from_api} == from_api, path
    listed_cli = ok_json(env, "task", "list", "--company", "acme", "--json")
    listed_api = (await _get(url, tmp_path, token, "/v1/companies/acme/tasks")).json()["data"]
    assert listed_cli == listed_api

    listed = ok_json(env, "token", "list", "--json")
    assert [t["id"] for t in listed] == [created["id"]] and token not in json.dumps(listed)
    rotated = ok_json(env, "token", "rotate", created["id"], "--json")
    assert rotated["id"] == created["id"] and rotated["token"] != token
    assert (await _get(url, tmp_path, token, "/v1/whoami")).status_code == 401
    assert (await _get(url, tmp_path, rotated["token"], "/v1/whoami")).status_code == 200
    ok_json(env, "token", "revoke", created["id"][:8], "--json")
    assert (await _get(url, tmp_path, rotated["token"], "/v1/whoami")).status_code == 401


async def _call(url: str, home: Path, token: str, method: str, path: str, body: Any) -> httpx.Response:
    settings = Settings(home=home, database_url=url)
    db = Database(settings=settings, url=url)
    try:
        transport = httpx.ASGITransport(app=create_app(db, settings))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:3100") as client:
            headers = {"Authorization": f"Bearer {token}"}
            return await client.request(method, path, headers=headers, json=body)
    finally:
        await db.dispose()


async def test_cli_and_api_agree_on_comments_assignment_and_a_patched_agent(
    external_pg: PgServer, cli_env: dict[str, str], tmp_path: Path
) -> None:
    url = external_pg.create_database()
    env = {**cli_env, "DATABASE_URL": url}
    token = ok_json(env, "token", "create", "--name", "ci", "--scopes", "read,write", "--json")["token"]
    ok_json(env, "company", "create", "--name", "Acme", "--json")
    ok_json(
        env,
        "agent",
        "hire",
        "--company",
        "acme",
        "--name",
        "ada",
        "--role",
        "dev",
        "--adapter",
        "x",
        "--json",
    )
    task = ok_json(env, "task", "create", "--company", "acme", "--title", "Write it", "--json")

    assigned = ok_json(env, "task", "assign", task["id"], "--agent", "ada", "--json")
    from_api = (await _get(url, tmp_path, token, f"/v1/tasks/{task['id']}")).json()["data"]
    assert assigned == from_api and assigned["assignedAgentId"] is not None

    by_cli = ok_json(env, "task", "comment", task["id"], "--body", "from the CLI", "--json")
    by_api = await _call(url, tmp_path, token, "POST", f"/v1/tasks/{task['id']}/comments", {"body": "hi"})
    assert by_api.status_code == 201, by_api.text
    listed_api = (await _get(url, tmp_path, token, f"/v1/tasks/{task['id']}/comments")).json()["data"]
    listed_cli = ok_json(env, "task", "comments", task["id"], "--json")
    assert listed_cli == listed_api == [by_cli, by_api.json()["data"]]
    assert by_cli["author"] == "user:local" and by_api.json()["data"]["author"].startswith("user:token:")

    patch = {"role": "lead", "budgetUsd": "3.5", "model": "m1"}
    patched = await _call(url, tmp_path, token, "PATCH", "/v1/companies/acme/agents/ada", patch)
    assert patched.status_code == 200, patched.text
    shown = ok_json(env, "agent", "show", "ada", "--company", "acme", "--json")
    assert shown == patched.json()["data"]
    updated = ok_json(
        env, "agent", "update", "ada", "--company", "acme", "--name", "ada2", "--no-budget", "--json"
    )
    assert updated["name"] == "ada2" and updated["budgetUsd"] is None and updated["role"] == "lead"
    from_api = (await _get(url, tmp_path, token, "/v1/companies/acme/agents/ada2")).json()["data"]
    assert updated == from_api
    clash = subprocess.run(
        [*CLI, "agent", "update", "ada2", "--company", "acme", "--team", "x", "--no-team"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert clash.returncode != 0 and "not both" in clash.stderr


async def test_cli_and_api_agree_on_approval_rules_and_a_commented_approval(
    external_pg: PgServer, cli_env: dict[str, str], tmp_path: Path
) -> None:
    from decimal import Decimal

    from company_agents import leases
    from company_agents.approvals import store

    url = external_pg.create_database()
    env = {**cli_env, "DATABASE_URL": url}
    token = ok_json(env, "token", "create", "--name", "ci", "--scopes", "admin", "--json")["token"]
    ok_json(env, "company", "create", "--name", "Acme", "--json")
    hired = ok_json(
        env, "agent", "hire", "--company", "acme", "--name", "ada", "--role", "d", "--adapter", "x", "--json"
    )
    ok_json(env, "task", "create", "--company", "acme", "--title", "Buy", "--agent", "ada", "--json")
    by_cli = ok_json(
        env,
        "approval",
        "rule",
        "add",
        "--company",
        "acme",
        "--effect",
        "auto_deny",
        "--action",
        "rm *",
        "--json",
    )
    by_api = await _call(
        url,
        tmp_path,
        token,
        "POST",
        "/v1/companies/acme/approval-rules",
        {"effect": "auto_approve", "maxUsd": "1"},
    )
    assert by_api.status_code == 201, by_api.text
    listed_api = (await _get(url, tmp_path, token, "/v1/companies/acme/approval-rules")).json()["data"]
    listed_cli = ok_json(env, "approval", "rule", "list", "--company", "acme", "--json")
    assert listed_cli == listed_api == [by_cli, by_api.json()["data"]]

    settings = Settings(home=tmp_path, database_url=url)
    db = Database(settings=settings, url=url)
    try:
        async with db.engine.begin() as conn:
            (claim,) = await leases.claim(conn, agent_id=hired["id"], holder="t", lease_seconds=60)
            row, _ = await store.request(
                conn,
                claim.identity(),
                fencing_token=claim.fencing_token,
                new=store.NewApproval(action="buy.domain", reasoning="needed", cost_usd=Decimal("25")),
                expiry_seconds=600,
            )
    finally:
        await db.dispose()
    asked = await _call(url, tmp_path, token, "POST", f"/v1/approvals/{row['id']}/comment", {"text": "why?"})
    assert asked.status_code == 200, asked.text
    shown = ok_json(env, "approval", "show", str(row["id"]), "--json")
    assert shown == asked.json()["data"] and shown["status"] == "asked_question"


async def test_cli_and_api_agree_on_cost_entries_export_and_adjust(
    external_pg: PgServer, cli_env: dict[str, str], tmp_path: Path
) -> None:
    from tests.integration.test_costs_cli import _workload

    url = external_pg.create_database()
    env = {**cli_env, "DATABASE_URL": url}
    token = ok_json(env, "token", "create", "--name", "ci", "--scopes", "admin", "--json")["token"]
    settings = Settings(home=tmp_path, database_url=url)
    db = Database(settings=settings, url=url)
    try:
        await _workload(db.engine)
    finally:
        await db.dispose()
    from_cli = ok_json(env, "costs", "entries", "--company", "acme", "--json")
    from_api = (await _get(url, tmp_path, token, "/v1/companies/acme/costs/entries")).json()["data"]
    assert from_cli == from_api and len(from_api) == 3
    for fmt in ("csv", "jsonl"):
        exported = subprocess.run(
            [*CLI, "costs", "export", "--company", "acme", "--format", fmt],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert exported.returncode == 0, exported.stderr
        streamed = await _get(url, tmp_path, token, f"/v1/companies/acme/costs/export?format={fmt}")
        # text=True reads the CSV record ends (\r\n) as \n: compare the records.
        assert streamed.status_code == 200, streamed.text
        assert streamed.text.splitlines() == exported.stdout.splitlines() and exported.stdout, fmt
    tool = next(e for e in from_api if e["kind"] == "tool")
    body = {"entry": tool["id"], "usd": "-0.05", "reason": "refund"}
    by_api = await _call(url, tmp_path, token, "POST", "/v1/companies/acme/costs/adjust", body)
    assert by_api.status_code == 200, by_api.text
    by_cli = ok_json(
        env, "costs", "adjust", "--entry", tool["id"], "--usd", "-0.05", "--reason", "again", "--json"
    )
    assert set(by_cli) == set(by_api.json()["data"]) and by_cli["correctedUsd"] == "0.15000000"
