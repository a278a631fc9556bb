"""The runner's cost path on real PostgreSQL: each cost event priced before the ledger writes it, and the
runtime cost written once, before the run's final transition."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from company_agents import leases, tasks
from company_agents.adapters.config import AdapterConfig
from company_agents.adapters.runner import AgentRun
from company_agents.db.database import Database
from company_agents.master_key import MasterKey
from company_agents.pricing.overrides import Rates, set_override
from company_agents.settings import Settings
from tests.integration.queue_helpers import engine, make_world

__all__ = ["engine"]


async def test_costs_are_priced_in_the_runner_and_runtime_is_booked_before_complete(
    engine: AsyncEngine, db_url: str, home: Path
) -> None:
    world = await make_world(engine, agent_names=("ada",))
    async with engine.begin() as conn:
        await tasks.create_task(conn, company="acme", title="t", agent="ada", max_attempts=1)
        await set_override(conn, world.company_id, "house-model", Rates(Decimal(2), Decimal(8)), set_by="t")
    async with engine.begin() as conn:
        (claim,) = await leases.claim(
            conn, agent_id=world.agents["ada"]["id"], holder="test", lease_seconds=60
        )
        await leases.start(conn, claim.identity(), fencing_token=claim.fencing_token, workspace_path="/x")
    settings = Settings(home=home, database_url=db_url, lease_seconds=5)
    adapter = AdapterConfig(
        name="paid", type="process", binary="/bin/true", runtime_usd_per_second=Decimal("0.01")
    )
    run = AgentRun(
        settings,
        Database(settings=settings, url=db_url),
        claim,
        adapter,
        asyncio.Event(),
        MasterKey(key=bytes(32), source="test"),
    )
    run.process_started = time.monotonic() - 2.0  # the agent process has run for two seconds
    try:
        await run._handle({"type": "cost", "model": "house-model", "inputTokens": 1000, "outputTokens": 500})
        await run._handle({"type": "cost", "model": "claude-haiku-4-5", "inputTokens": 10**6, "id": "h"})
        await run._handle({"type": "cost", "model": "who-knows", "inputTokens": 7})
        await run._handle({"type": "complete", "output": "done"})
        await run._finish()  # the run is over: nothing more is booked
    finally:
        await run.db.dispose()
        run.log.close()
    assert run.state.outcome == "complete"
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text("SELECT kind, model, effective_usd, price_source, unpriced, details FROM cost_entries"
                     " ORDER BY created_at, kind, model")
            )
        ).all()  # fmt: skip
    by_model = {r.model or r.kind: r for r in rows}
    assert by_model["house-model"].effective_usd == Decimal("0.006")  # 1000 at $2/M + 500 at $8/M
    assert by_model["house-model"].price_source.startswith("override:")
    assert by_model["claude-haiku-4-5"].price_source == "book:genai-prices@0.2.3"
    assert by_model["claude-haiku-4-5"].effective_usd == Decimal(1)  # $1 per million input tokens
    assert by_model["who-knows"].unpriced and by_model["who-knows"].effective_usd is None
    runtime = by_model["runtime"]
    assert runtime.price_source == "rate:adapter:paid" and Decimal("0.02") <= runtime.effective_usd < Decimal(
        "0.1"
    )
    assert [r.kind for r in rows].count("runtime") == 1
