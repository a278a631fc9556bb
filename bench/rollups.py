"""Benchmark: cost roll-ups from the daily counters against a plain SUM over the ledger, at 1M entries.

    .venv/bin/python bench/rollups.py                    # scratch embedded PostgreSQL under /tmp
    .venv/bin/python bench/rollups.py --admin-dsn postgresql://postgres@127.0.0.1:5432/postgres
    .venv/bin/python bench/rollups.py --entries 200000 --repeat 50

Builds one company (4 teams, 20 agents, a task per 50 entries) whose ``--entries`` cost entries are spread
over the last 30 days, generated server-side with generate_series; then, in the same run, times
``costs rebuild`` building the counters from that ledger, and the roll-up (``costs/rollups.py``: total,
breakdown, byTeam, byAgent, trend, forecast) of the company, a team and an agent over the fiscal period
(the last 30 days, whole days) against ``SELECT sum(effective_usd)`` over the ledger for the same scope
and instants. Goal (issue 11): roll-up p95 under 50 ms and at least 20x faster than the sum. Also shown:
month to date, and ``24h`` (its first sub-day edge read from the ledger). Wall-clock on a shared machine.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, LiteralString
from uuid import UUID
from zoneinfo import ZoneInfo

import psycopg
from rich.console import Console
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool

from company_agents.costs import rebuild, rollups, windows
from company_agents.db import driver
from company_agents.db.database import sqlalchemy_url

try:
    from _common import Row, percentile, print_results  # type: ignore[import-not-found,unused-ignore]
    from transfer import create_db, drop_db, scratch_server  # type: ignore[import-not-found,unused-ignore]
except ImportError:  # imported as bench.rollups
    from bench._common import Row, percentile, print_results  # type: ignore[no-redef,import-not-found,unused-ignore]
    from bench.transfer import (  # type: ignore[no-redef,import-not-found,unused-ignore]
        create_db,
        drop_db,
        scratch_server,
    )

console = Console()
TZ = "Europe/Berlin"
PER_TASK = 50

COMPANY_SQL = "INSERT INTO companies (slug, name, time_zone) VALUES ('bench', 'Bench', %(tz)s)"
SEED_SQL = """
INSERT INTO teams (company_id, name) SELECT c.id, 'team-' || g FROM companies c, generate_series(1, 4) g;
INSERT INTO agents (company_id, team_id, name, role, adapter)
SELECT t.company_id, t.id, t.name || '-agent-' || g, 'dev', 'process' FROM teams t, generate_series(1, 5) g;
CREATE TABLE bench_agents AS SELECT row_number() OVER (ORDER BY name) - 1 AS n, id, team_id FROM agents;
"""

TASKS_SQL = """
CREATE TABLE bench_tasks AS
WITH t AS (
    INSERT INTO tasks (company_id, title, status)
    SELECT c.id, 'task ' || g, 'done' FROM companies c, generate_series(0, %(tasks)s - 1) g
    RETURNING id, title
)
SELECT substr(title, 6)::int AS n, id FROM t
"""

# Entry g belongs to task g / 50 (a task's entries are close in time), agents in turn; newest first.
ENTRIES_SQL = """
INSERT INTO cost_entries (company_id, team_id, agent_id, task_id, kind, model, billing, input_tokens,
                          output_tokens, cache_read_tokens, cache_write_5m_tokens, billed_usd, imputed_usd,
                          effective_usd, price_source, created_at)
SELECT c.id, a.team_id, a.id, t.id,
       CASE WHEN g %% 10 = 0 THEN 'tool' WHEN g %% 25 = 1 THEN 'runtime' ELSE 'llm' END,
       'model-' || (g %% 3), CASE WHEN g %% 7 = 0 THEN 'subscription' ELSE 'api' END,
       g %% 5000, g %% 700, g %% 20000, g %% 300,
       CASE WHEN g %% 7 = 0 THEN 0 ELSE (g %% 1000) / 1e5 END, (g %% 1000) / 1e5, (g %% 1000) / 1e5,
       'book:bench', now() - interval '30 days' * (g::float8 / %(n)s)
FROM generate_series(0, %(n)s - 1) g
JOIN bench_tasks t ON t.n = g / 50
JOIN bench_agents a ON a.n = (g / 50) %% 20
CROSS JOIN companies c
"""

SUM_SQL: dict[str, LiteralString] = {
    "company": "SELECT sum(effective_usd) FROM cost_entries WHERE company_id = %(id)s"
    " AND created_at >= %(start)s AND created_at < %(end)s",
    "team": "SELECT sum(effective_usd) FROM cost_entries WHERE company_id = %(company_id)s"
    " AND team_id = %(id)s AND created_at >= %(start)s AND created_at < %(end)s",
    "agent": "SELECT sum(effective_usd) FROM cost_entries WHERE company_id = %(company_id)s"
    " AND agent_id = %(id)s AND created_at >= %(start)s AND created_at < %(end)s",
}


def build(url: str, n: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(COMPANY_SQL, {"tz": TZ})
        conn.execute(SEED_SQL)
        conn.execute(TASKS_SQL, {"tasks": (n + PER_TASK - 1) // PER_TASK})
        # Generated rows are consistent by construction: skip the per-row foreign-key triggers (superuser).
        conn.execute("SET session_replication_role = replica")
        conn.execute(ENTRIES_SQL, {"n": n})
        conn.execute("SET session_replication_role = DEFAULT")
        conn.execute("DROP TABLE bench_tasks, bench_agents")
        conn.execute("VACUUM ANALYZE")


async def timings(
    conn: AsyncConnection, repeat: int, work: Callable[[], Awaitable[Any]]
) -> tuple[float, float, Any]:
    """p50 and p95 in milliseconds over ``repeat`` calls (after one warm-up), each in its own transaction."""
    result = await work()
    await conn.commit()
    samples: list[float] = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = await work()
        await conn.commit()
        samples.append((time.perf_counter() - start) * 1000)
    return percentile(samples, 50), percentile(samples, 95), result


async def measure(url: str, repeat: int, sum_repeat: int) -> tuple[list[Row], float, int]:
    engine = create_async_engine(sqlalchemy_url(url), poolclass=NullPool)
    rows: list[Row] = []
    try:
        async with engine.connect() as conn:
            start = time.perf_counter()
            rebuilt = await rebuild.rebuild(conn)
            await conn.commit()
            rebuild_s = time.perf_counter() - start
            company = await driver.one(conn, "SELECT id FROM companies", {})
            team = await driver.one(conn, "SELECT id FROM teams ORDER BY name LIMIT 1", {})
            agent = await driver.one(conn, "SELECT id FROM agents ORDER BY name LIMIT 1", {})
            assert company is not None and team is not None and agent is not None
            cid: UUID = company["id"]
            tz = ZoneInfo(TZ)
            now = await rollups.db_now(conn)
            period = windows.fiscal_period(now, tz, "rolling-30d")
            for scope, scope_id in (("company", cid), ("team", team["id"]), ("agent", agent["id"])):
                target = rollups.Target(scope, scope_id, cid, TZ)
                params = {"id": scope_id, "company_id": cid, "start": period.start, "end": period.end}

                async def plain(scope: str = scope, params: dict[str, Any] = params) -> Any:
                    return (await driver.one(conn, SUM_SQL[scope], params) or {}).get("sum")

                async def rolled(target: rollups.Target = target) -> dict[str, Any]:
                    return await rollups.rollup(conn, target, period, now=now)

                s50, s95, total = await timings(conn, sum_repeat, plain)
                r50, r95, out = await timings(conn, repeat, rolled)
                assert str(out["total"]["usd"]) == str(rollups.quantize(total)), (out["total"], total)
                rows.append(Row(f"{scope}: plain SUM over the ledger", s95, {"p50 ms": s50}))
                rows.append(
                    Row(
                        f"{scope}: roll-up, last 30 days",
                        r95,
                        {"p50 ms": r50, "SUM p95 / roll-up p95": s95 / r95},
                    )
                )
            for label, since in (("month to date", None), ("24h (edge from the ledger)", "24h")):
                win = windows.window(since, None, now=now, tz=tz)
                target = rollups.Target("company", cid, cid, TZ)

                async def other(target: rollups.Target = target, win: windows.Window = win) -> dict[str, Any]:
                    return await rollups.rollup(conn, target, win, now=now)

                o50, o95, _ = await timings(conn, repeat, other)
                rows.append(Row(f"company: roll-up, {label}", o95, {"p50 ms": o50}))
    finally:
        await engine.dispose()
    return rows, rebuild_s, int(rebuilt["counters"])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=100, help="roll-ups timed per scope")
    parser.add_argument("--sum-repeat", type=int, default=10, help="plain sums timed per scope")
    parser.add_argument("--admin-dsn", help="a server to create a scratch database on (default: embedded)")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="ca-bench-rollups-"))
    with scratch_server(args.admin_dsn, workdir) as (admin, _, _):
        url = create_db(admin, migrate=True)
        try:
            console.print(f"building {args.entries:,} cost entries…")
            start = time.perf_counter()
            build(url, args.entries)
            console.print(f"  in {time.perf_counter() - start:.1f}s")
            rows, rebuild_s, counters = asyncio.run(measure(url, args.repeat, args.sum_repeat))
        finally:
            drop_db(admin, url)
            shutil.rmtree(workdir, ignore_errors=True)
    console.print(
        f"costs rebuild: {counters:,} counter rows from {args.entries:,} entries in {rebuild_s:.1f}s"
    )
    print_results(
        rows,
        metric="p95 ms",
        title=f"Roll-ups at {args.entries:,} cost entries (goal: p95 < 50 ms, >= 20x the plain SUM)",
        console=console,
    )


if __name__ == "__main__":
    main()
