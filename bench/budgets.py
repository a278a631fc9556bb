"""Budget benchmark: claim + complete throughput with reservations and counters, against the same path
without them (goal: under 15% slower; docs/budgets.md).

Four paths, each draining the same number of pre-enqueued tasks with a no-op handler, on a fresh
scratch database, agents in one company and team (so every claim contends for the same budget lock):

- ``plain``: claim without budgets (``reserve_usd=None``) + complete: the queue as it was;
- ``reserving``: claim reserving each run's envelope (the default path) + complete;
- ``cost, plain``: claim without budgets + one cost entry with its counters (``ledger.record``) + complete;
- ``cost, budgets``: claim reserving + the cost entry, its counters and the budget check in one
  transaction (as the runner writes it) + complete.

The modes are run in rounds (``--rounds``), interleaved, and each figure is the best round, which
is the least disturbed by other work on a shared machine. Last, the latency of one claim with and
without a reservation, alternating on one connection (so both see the same load), as medians.

    .venv/bin/python bench/budgets.py                       # the machine's PostgreSQL (127.0.0.1:5432)
    .venv/bin/python bench/budgets.py -n 1000 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import time
import uuid
from decimal import Decimal
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import create_engine, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from company_agents import agents, companies, leases
from company_agents.audit import mac as audit_mac
from company_agents.budgets.check import after_cost
from company_agents.costs import ledger
from company_agents.db.database import sqlalchemy_url
from company_agents.db.migrate import upgrade
from company_agents.master_key import MasterKey

try:  # run as a script (bench/ on sys.path) or imported as ``bench.budgets``
    from _common import Row, p50_p99, print_results  # type: ignore[import-not-found,unused-ignore]
except ImportError:
    from bench._common import Row, p50_p99, print_results  # type: ignore[no-redef,import-not-found,unused-ignore]

SYSTEM_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
ENQUEUE_SQL = """
INSERT INTO tasks (company_id, title, assigned_team_id)
SELECT :company_id, 'bench task ' || g, :team_id FROM generate_series(1, :n) g
"""

RESERVE = Decimal("2.00")
COST = ledger.NewCost(
    kind="tool",
    usage=ledger.Usage(),
    amounts=ledger.Amounts(Decimal("0.001"), Decimal("0.001"), Decimal("0.001"), "reported:bench"),
)
MODES = {
    "plain": (False, False),
    "reserving": (True, False),
    "cost, plain": (False, True),
    "cost, budgets": (True, True),
}


def create_scratch_db(admin: str) -> str:
    name = f"bench_budgets_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return admin.rsplit("/", 1)[0] + "/" + name


def drop_db(admin: str, dsn: str) -> None:
    with psycopg.connect(admin, autocommit=True) as conn:
        name = dsn.rsplit("/", 1)[1]
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


async def _prepare(dsn: str, n: int, agents_total: int) -> list[str]:
    """One company, one team, ``agents_total`` agents, ``n`` queued tasks for the team (not timed)."""
    sync = create_engine(sqlalchemy_url(dsn), poolclass=NullPool)
    upgrade(sync)
    sync.dispose()
    engine = create_async_engine(sqlalchemy_url(dsn), poolclass=NullPool)
    async with engine.begin() as conn:
        comp = await companies.create_company(conn, name="Bench", team_names=["Workers"])
        ids = []
        for i in range(agents_total):
            agent = await agents.hire_agent(
                conn, company=comp["slug"], name=f"w{i}", role="bench", adapter="noop", team="Workers"
            )
            ids.append(str(agent["id"]))
        team = (await conn.execute(text("SELECT id FROM teams WHERE name = 'Workers'"))).scalar_one()
        await conn.execute(text(ENQUEUE_SQL), {"company_id": comp["id"], "team_id": team, "n": n})
    async with engine.connect() as conn:
        auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await auto.execute(text("VACUUM ANALYZE tasks"))
    await engine.dispose()
    return ids


async def _worker_loop(dsn: str, agent_ids: list[str], reserve: bool, cost: bool) -> tuple[int, list[float]]:
    key = MasterKey(key=os.urandom(32), source="bench")
    engine = create_async_engine(
        sqlalchemy_url(dsn),
        pool_size=len(agent_ids) * 2,
        max_overflow=0,
        connect_args={"options": audit_mac.session_options(key, dsn)},
    )
    latencies: list[float] = []
    done = 0

    async def one_agent(agent_id: uuid.UUID) -> None:
        nonlocal done
        idle = 0
        async with engine.connect() as raw:
            conn = await raw.execution_options(isolation_level="AUTOCOMMIT")
            while idle < 2:
                start = time.perf_counter()
                claims = await leases.claim(
                    conn,
                    agent_id=agent_id,
                    holder="bench",
                    lease_seconds=300,
                    reserve_usd=RESERVE if reserve else None,
                )
                latencies.append(time.perf_counter() - start)
                if not claims:
                    idle += 1
                    continue
                idle = 0
                for claim in claims:
                    ident = claim.identity()
                    if cost:
                        async with engine.begin() as tx:
                            recorded = await ledger.record(
                                tx, ident, fencing_token=claim.fencing_token, cost=COST
                            )
                            if reserve:
                                await after_cost(
                                    tx,
                                    ident,
                                    fencing_token=claim.fencing_token,
                                    recorded=recorded,
                                    reservation_usd=RESERVE,
                                )
                    await leases.complete(conn, ident, fencing_token=claim.fencing_token, output=None)
                done += len(claims)

    await asyncio.gather(*(one_agent(uuid.UUID(a)) for a in agent_ids))
    await engine.dispose()
    return done, latencies


def _process(dsn: str, agent_ids: list[str], reserve: bool, cost: bool, start: Any, out: Any) -> None:
    start.wait()
    out.put(asyncio.run(_worker_loop(dsn, agent_ids, reserve, cost)))


def measure(
    admin: str, n: int, processes: int, per_process: int, reserve: bool, cost: bool
) -> dict[str, float]:
    dsn = create_scratch_db(admin)
    try:
        agent_ids = asyncio.run(_prepare(dsn, n, processes * per_process))
        ctx = mp.get_context("spawn")
        start, out = ctx.Event(), ctx.Queue()
        procs = [
            ctx.Process(
                target=_process,
                args=(dsn, agent_ids[i * per_process : (i + 1) * per_process], reserve, cost, start, out),
            )
            for i in range(processes)
        ]
        for p in procs:
            p.start()
        time.sleep(1.0)  # let interpreters import before the clock starts
        t0 = time.perf_counter()
        start.set()
        results = [out.get(timeout=600) for _ in procs]
        elapsed = time.perf_counter() - t0
        for p in procs:
            p.join()
    finally:
        drop_db(admin, dsn)
    done = sum(r[0] for r in results)
    if done != n:
        raise RuntimeError(f"drained {done} of {n} tasks")
    p50, p99 = p50_p99([lat for r in results for lat in r[1]])
    return {"tasks_per_s": n / elapsed, "p50_ms": p50 * 1000, "p99_ms": p99 * 1000}


async def _claim_latency(dsn: str, agent_ids: list[str], n: int) -> dict[bool, float]:
    """Median claim latency with and without a reservation, alternating on one connection."""
    engine = create_async_engine(sqlalchemy_url(dsn))
    times: dict[bool, list[float]] = {False: [], True: []}
    async with engine.connect() as raw:
        conn = await raw.execution_options(isolation_level="AUTOCOMMIT")
        for i in range(n):
            reserve = i % 2 == 0
            start = time.perf_counter()
            (claim,) = await leases.claim(
                conn,
                agent_id=uuid.UUID(agent_ids[i % len(agent_ids)]),
                holder="bench",
                lease_seconds=300,
                reserve_usd=RESERVE if reserve else None,
            )
            times[reserve].append(time.perf_counter() - start)
            await leases.complete(conn, claim.identity(), fencing_token=claim.fencing_token, output=None)
    await engine.dispose()
    return {k: sorted(v[10:])[len(v[10:]) // 2] * 1000 for k, v in times.items()}


def measure_latency(admin: str, n: int, agents_total: int) -> dict[bool, float]:
    dsn = create_scratch_db(admin)
    try:
        agent_ids = asyncio.run(_prepare(dsn, n, agents_total))
        return asyncio.run(_claim_latency(dsn, agent_ids, n))
    finally:
        drop_db(admin, dsn)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dsn", default=SYSTEM_PG, help="admin DSN of the server (scratch databases)")
    parser.add_argument("-n", type=int, default=1500, help="tasks per measurement")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--workers", type=int, default=8, help="agents (async loops) per process")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    best: dict[str, dict[str, float]] = {}
    for _ in range(args.rounds):
        for label, (reserve, cost) in MODES.items():
            result = measure(args.dsn, args.n, args.processes, args.workers, reserve, cost)
            if label not in best or result["tasks_per_s"] > best[label]["tasks_per_s"]:
                best[label] = result
    rows = [
        Row(
            label,
            r["tasks_per_s"],
            {"claim p50 ms": round(r["p50_ms"], 2), "claim p99 ms": round(r["p99_ms"], 2)},
        )
        for label, r in best.items()
    ]
    print_results(rows, baseline="plain", metric="tasks/s", title=f"Budgets on the hot path (n={args.n})")
    for with_, without in (("reserving", "plain"), ("cost, budgets", "cost, plain")):
        ratio = best[with_]["tasks_per_s"] / best[without]["tasks_per_s"]
        print(f"{with_} / {without}: {ratio:.3f} ({(1 - ratio) * 100:+.1f}% slower)")
    latency = measure_latency(args.dsn, args.n, args.processes * args.workers)
    print(
        f"one claim, alternating on one connection: {latency[False]:.3f} ms without a reservation, "
        f"{latency[True]:.3f} ms with (ratio {latency[True] / latency[False]:.3f})"
    )


if __name__ == "__main__":
    main()
