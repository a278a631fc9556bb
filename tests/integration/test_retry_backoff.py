"""Failed attempts come back after an exponential, jittered delay; releases at shutdown do not count."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from company_agents import leases, tasks
from company_agents.runtime.scheduler import CANDIDATES_SQL
from company_agents.settings import Settings
from tests.integration.queue_helpers import engine, make_world

__all__ = ["engine"]

NO_WAIT = leases.RetryBackoff(0, 0)


async def _claim(engine: AsyncEngine, agent_id: UUID, *, limit: int = 1) -> list[leases.Claim]:
    async with engine.begin() as conn:
        return await leases.claim(conn, agent_id=agent_id, holder="t", lease_seconds=60, limit=limit)


async def _delay(engine: AsyncEngine, task_id: UUID) -> float | None:
    """Seconds from the failing statement (``updated_at``, the same ``now()``) to ``run_after``."""
    async with engine.connect() as conn:
        value = (
            await conn.execute(
                text("SELECT extract(epoch FROM run_after - updated_at) FROM tasks WHERE id = :t"),
                {"t": task_id},
            )
        ).scalar_one()
    return None if value is None else float(value)


async def _time_passes(engine: AsyncEngine, task_id: UUID) -> None:
    """What waiting would do: the backoff is over."""
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE tasks SET run_after = now() - interval '1 second' WHERE id = :t"), {"t": task_id}
        )


async def _candidates(engine: AsyncEngine) -> list[Any]:
    async with engine.connect() as conn:
        rows = await conn.execute(CANDIDATES_SQL, {"adapters": ["process"], "limit": 10})
        return [r.id for r in rows]


async def test_each_failure_waits_twice_as_long_up_to_the_cap(engine: AsyncEngine) -> None:
    world = await make_world(engine, agent_names=("ada",))
    ada = world.agents["ada"]["id"]
    async with engine.begin() as conn:
        task = await tasks.create_task(conn, company="acme", title="Flaky", agent="ada", max_attempts=5)
    backoff = leases.RetryBackoff(base_seconds=2, cap_seconds=5)
    for failure, full in [(1, 2.0), (2, 4.0), (3, 5.0), (4, 5.0)]:
        (claim,) = await _claim(engine, ada)
        async with engine.begin() as conn:
            row = await leases.fail(
                conn, claim.identity(), fencing_token=claim.fencing_token, reason="boom", backoff=backoff
            )
        assert row["status"] == "queued" and row["run_after"] is not None
        delay = await _delay(engine, task["id"])
        assert delay is not None and full / 2 <= delay <= full, (failure, delay)
        # Backing off: neither the claim nor the scheduler's candidate query offers it.
        assert await _claim(engine, ada) == []
        assert await _candidates(engine) == []
        await _time_passes(engine, task["id"])
        assert await _candidates(engine) == [ada]
    (last,) = await _claim(engine, ada)
    async with engine.begin() as conn:
        row = await leases.fail(
            conn, last.identity(), fencing_token=last.fencing_token, reason="boom", backoff=backoff
        )
    assert row["status"] == "failed" and row["run_after"] is None, "no retry after the last attempt"


async def test_tasks_that_failed_together_do_not_come_back_together(engine: AsyncEngine) -> None:
    world = await make_world(engine, agent_names=("ada",), max_concurrent_tasks=8)
    async with engine.begin() as conn:
        for i in range(8):
            await tasks.create_task(conn, company="acme", title=f"T{i}", agent="ada")
    claims = await _claim(engine, world.agents["ada"]["id"], limit=8)
    assert len(claims) == 8
    backoff = leases.RetryBackoff(base_seconds=100, cap_seconds=1000)
    for c in claims:
        async with engine.begin() as conn:
            await leases.fail(conn, c.identity(), fencing_token=c.fencing_token, reason="x", backoff=backoff)
    delays = [await _delay(engine, c.task_id) for c in claims]
    assert all(d is not None and 50 <= d <= 100 for d in delays), delays
    assert len(set(delays)) > 1, "jitter spreads them"


async def test_the_reaper_backs_off_an_expired_attempt_the_same_way(engine: AsyncEngine) -> None:
    world = await make_world(engine, agent_names=("ada",))
    async with engine.begin() as conn:
        task = await tasks.create_task(conn, company="acme", title="Hung", agent="ada")
    (claim,) = await _claim(engine, world.agents["ada"]["id"])
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE leases SET acquired_at = now() - interval '2 s', "
                "renewed_at = now() - interval '2 s', expires_at = now() - interval '1 s' WHERE task_id = :t"
            ),
            {"t": claim.task_id},
        )
        (reaped,) = await leases.reap_expired(conn, backoff=leases.RetryBackoff(10, 60))
    assert reaped["status"] == "queued"
    delay = await _delay(engine, task["id"])
    assert delay is not None and 5 <= delay <= 10
    assert await _claim(engine, world.agents["ada"]["id"]) == []


async def test_a_release_at_shutdown_is_not_counted_and_leaves_max_attempts_alone(
    engine: AsyncEngine,
) -> None:
    world = await make_world(engine, agent_names=("ada",))
    ada = world.agents["ada"]["id"]
    async with engine.begin() as conn:
        task = await tasks.create_task(conn, company="acme", title="Restarted", agent="ada", max_attempts=2)
    for _ in range(3):  # three orchestrator restarts in a row
        (claim,) = await _claim(engine, ada)
        async with engine.begin() as conn:
            await leases.release(conn, claim.identity(), fencing_token=claim.fencing_token, reason="bye")
    async with engine.connect() as conn:
        row = await tasks.get_task(conn, str(task["id"]))
    assert (row["status"], row["attempt"], row["releases"], row["max_attempts"]) == ("queued", 3, 3, 2)
    assert row["run_after"] is None, "a released task is claimable at once"
    # Two attempts that count remain, whatever the restarts.
    outcomes = []
    for _ in range(2):
        (claim,) = await _claim(engine, ada)
        async with engine.begin() as conn:
            end = await leases.fail(
                conn, claim.identity(), fencing_token=claim.fencing_token, reason="boom", backoff=NO_WAIT
            )
        outcomes.append(end["status"])
    assert outcomes == ["queued", "failed"]
    async with engine.connect() as conn:
        row = await tasks.get_task(conn, str(task["id"]))
    assert (row["attempt"], row["releases"], row["max_attempts"]) == (5, 3, 2)


async def test_a_rejected_task_carries_no_old_backoff(engine: AsyncEngine) -> None:
    world = await make_world(engine, agent_names=("ada",))
    ada = world.agents["ada"]["id"]
    async with engine.begin() as conn:
        task = await tasks.create_task(conn, company="acme", title="Reviewed", agent="ada")
    (claim,) = await _claim(engine, ada)
    async with engine.begin() as conn:
        await leases.fail(
            conn,
            claim.identity(),
            fencing_token=claim.fencing_token,
            reason="x",
            backoff=leases.RetryBackoff(60),
        )
    await _time_passes(engine, task["id"])
    (claim,) = await _claim(engine, ada)
    async with engine.begin() as conn:
        await leases.complete(conn, claim.identity(), fencing_token=claim.fencing_token, output=1)
        rejected = await tasks.reject_task(conn, str(task["id"]), feedback="again")
    assert rejected["run_after"] is None, "a person sent it back: it runs now"
    assert len(await _claim(engine, ada)) == 1


def test_backoff_comes_from_the_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("COMPANY_AGENTS_RETRY_BACKOFF_BASE_SECONDS", "0.5")
    monkeypatch.setenv("COMPANY_AGENTS_RETRY_BACKOFF_CAP_SECONDS", "30")
    assert leases.RetryBackoff.from_settings(Settings(home=tmp_path)) == leases.RetryBackoff(0.5, 30)
    assert leases.RetryBackoff() == leases.RetryBackoff(5, 300)
    monkeypatch.setenv("COMPANY_AGENTS_RETRY_BACKOFF_BASE_SECONDS", "-1")
    with pytest.raises(ValueError, match="must not be negative"):
        Settings(home=tmp_path)


@pytest.mark.slow
async def test_task_show_says_when_it_will_be_retried(
    engine: AsyncEngine, db_url: str, cli_env: dict[str, str]
) -> None:
    world = await make_world(engine, agent_names=("ada",))
    async with engine.begin() as conn:
        task = await tasks.create_task(conn, company="acme", title="Flaky", agent="ada")
    (claim,) = await _claim(engine, world.agents["ada"]["id"])
    async with engine.begin() as conn:
        await leases.fail(
            conn,
            claim.identity(),
            fencing_token=claim.fencing_token,
            reason="x",
            backoff=leases.RetryBackoff(600),
        )
    env = {**cli_env, "DATABASE_URL": db_url, "COLUMNS": "200"}
    cli = [sys.executable, "-m", "company_agents.cli.main", "task", "show", str(task["id"])]
    human = subprocess.run(cli, env=env, capture_output=True, text=True, timeout=120, check=True).stdout
    data = json.loads(
        subprocess.run(
            [*cli, "--json"], env=env, capture_output=True, text=True, timeout=120, check=True
        ).stdout
    )
    status_line = next(line for line in human.splitlines() if line.startswith("status"))
    assert "queued, retry after " in status_line
    assert data["retryAfter"] is not None and data["runAfter"] == data["retryAfter"]
    assert data["releases"] == 0 and data["attempt"] == 1
