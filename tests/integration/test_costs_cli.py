"""`costs …` and `pricing …` through the real CLI: --json shapes, export formats, exit codes."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from company_agents import leases, pricing, tasks
from company_agents.costs import ledger
from company_agents.costs.events import cost_from_event
from tests.integration.queue_helpers import make_world
from tests.integration.test_cli_json import cli, engine, ok_json, url

pytestmark = pytest.mark.slow
__all__ = ["engine", "url"]


async def _workload(engine: AsyncEngine) -> None:
    world = await make_world(engine, agent_names=("ada",))
    async with engine.begin() as conn:
        await tasks.create_task(conn, company="acme", title="t", agent="ada")
        (claim,) = await leases.claim(conn, agent_id=world.agents["ada"]["id"], holder="t", lease_seconds=60)
        events: list[dict[str, Any]] = [
            {"model": "claude-sonnet-4-5", "inputTokens": 1000, "outputTokens": 500, "id": "a"},
            {"model": "in-house-7b", "inputTokens": 1_000_000, "outputTokens": 0, "id": "b"},
            {"kind": "tool", "usd": "0.25", "name": "search", "id": "c"},
        ]
        for event in events:
            cost = await pricing.price_cost(
                conn, world.company_id, cost_from_event({"type": "cost", **event})
            )
            await ledger.record(conn, claim.identity(), fencing_token=claim.fencing_token, cost=cost)


async def test_costs_and_pricing_commands(engine: AsyncEngine, url: str, cli_env: dict[str, str]) -> None:
    await _workload(engine)
    env = {**cli_env, "DATABASE_URL": url}

    shown = ok_json(env, "costs", "show", "--company", "acme", "--json")
    # claude-sonnet-4-5: 1000 at $3/M + 500 at $15/M = $0.0105; the tool's $0.25; in-house-7b is unpriced.
    assert shown["total"]["usd"] == "0.26050000" and shown["breakdown"]["tools"]["usd"] == "0.25000000"
    assert shown["unpriced"] == {
        "entries": 1,
        "models": [
            {"model": "in-house-7b", "entries": 1, "lastSeen": shown["unpriced"]["models"][0]["lastSeen"]}
        ],
    }
    assert [a["name"] for a in shown["byAgent"]] == ["ada"] and shown["byTeam"][0]["name"] == "Engineering"
    human = cli(env, "costs", "show", "--company", "acme", "--agent", "ada", "--since", "24h")
    assert human.returncode == 0 and "UNPRICED: 1 entries" in human.stdout and "in-house-7b" in human.stdout

    doctor = cli(env, "doctor", "--json")
    checks = {c["name"]: c for c in json.loads(doctor.stdout)}
    assert checks["pricing"]["ok"] is False and "in-house-7b" in checks["pricing"]["detail"]

    listed = ok_json(env, "pricing", "list", "--company", "acme", "--json")
    assert listed == {"book": "book:genai-prices@0.2.3", "overrides": []}
    set_args = ["--company", "acme", "--model", "in-house-7b", "--input", "0.2", "--output", "0.6"]
    set_ = ok_json(env, "pricing", "set", *set_args, "--note", "our GPUs", "--json")
    assert set_["priceSource"] == f"override:{set_['id']}" and set_["inputMtok"] == "0.20000000"
    assert set_["cacheReadMtok"] is None
    bad = cli(env, "pricing", "set", "--company", "acme", "--model", "x", "--input", "-1", "--output", "1")
    assert bad.returncode != 0 and "input_mtok" in bad.stderr

    (unpriced,) = ok_json(env, "costs", "entries", "--company", "acme", "--unpriced", "--json")
    assert unpriced["effectiveUsd"] is None and unpriced["inputTokens"] == 1_000_000
    # The override now prices it: 1M input tokens at $0.20/M, booked as an adjustment.
    adjusted = ok_json(env, "costs", "adjust", "--entry", unpriced["id"], "--reprice", "--json")
    assert adjusted["reprices"] is True and adjusted["effectiveUsd"] == "0.20000000"
    assert adjusted["priceSource"] == set_["priceSource"]
    # An id prefix works as everywhere else; and `cost` is the group's name, `costs` its alias.
    again = ok_json(env, "cost", "adjust", "--entry", unpriced["id"][:8], "--reprice", "--json")
    assert again["adjusted"] is False
    refused = cli(env, "costs", "adjust", "--entry", unpriced["id"], "--usd", "-5", "--reason", "x")
    assert refused.returncode != 0 and "below zero" in refused.stderr

    after = ok_json(env, "costs", "show", "--company", "acme", "--since", "today", "--json")
    assert after["total"]["usd"] == "0.46050000" and after["unpriced"] == {"entries": 0}
    assert checks != {c["name"]: c for c in json.loads(cli(env, "doctor", "--json").stdout)}

    exported = cli(env, "costs", "export", "--company", "acme", "--format", "csv")
    assert exported.returncode == 0, exported.stderr
    rows = list(csv.DictReader(io.StringIO(exported.stdout)))
    # Oldest first; the three recorded in one transaction share a time, so their order is by id.
    assert sorted(r["kind"] for r in rows[:3]) == ["llm", "llm", "tool"] and rows[3]["kind"] == "adjustment"
    assert sum(Decimal(r["effective_usd"] or 0) for r in rows) == Decimal("0.4605")
    lines = cli(env, "costs", "export", "--company", "acme", "--format", "jsonl").stdout.splitlines()
    assert [json.loads(line)["kind"] for line in lines] == [r["kind"] for r in rows]

    assert ok_json(env, "costs", "rebuild", "--check", "--json")["drifted"] == 0
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE cost_counters SET entries = entries + 1 WHERE scope = 'run'"))
    drifted = cli(env, "costs", "rebuild", "--check", "--json")
    assert drifted.returncode == 1 and json.loads(drifted.stdout)["drift"][0]["scope"] == "run"
    assert ok_json(env, "costs", "rebuild", "--json")["repaired"] == 1

    unset = ok_json(env, "pricing", "unset", "--company", "acme", "--model", "IN-HOUSE-7B", "--json")
    assert unset["retiredAt"] is not None
    history = ok_json(env, "pricing", "list", "--company", "acme", "--history", "--json")
    assert len(history["overrides"]) == 1
