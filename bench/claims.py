"""Queue benchmark: claim + complete throughput with the full bookkeeping, against procrastinate.

Each task costs our queue two transactions, one statement each — the claim (agent row lock; task update
with a new fencing token; run insert; lease insert; audit insert) and the completion (fenced task update;
lease delete; run update; audit insert) — with a no-op handler in between. Tasks are pre-enqueued in
bulk (not timed).
Modes: unbatched (one task per claim, one commit per completion) and batched (up to --batch tasks per
claim statement; their completions, each still fenced and answered on its own, in one statement:
leases.complete_many). The baseline is procrastinate's own worker draining the same number of no-op
jobs on the same server, in the same run.

    .venv/bin/python bench/claims.py                 # embedded and the machine's PostgreSQL (127.0.0.1:5432)
    .venv/bin/python bench/claims.py --backend embedded -n 5000

Last, one claim's latency with a deep queue (``--deep-queue``, 100,000 tasks) against a shallow one
(``--shallow-queue``, 1,000), one agent claiming and completing one task at a time: what a claim costs
when a company has a large backlog (before migration 0023 the claim scanned every task at depth).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from company_agents import agents, companies, leases
from company_agents.audit import mac as audit_mac
from company_agents.db.database import Database, sqlalchemy_url
from company_agents.db.migrate import upgrade
from company_agents.master_key import MasterKey
from company_agents.runtime.sealer import run_sealer
from company_agents.settings import Settings

try:  # run as a script (bench/ on sys.path) or imported as ``bench.claims``
    from _common import Row, p50_p99, print_results  # type: ignore[import-not-found,unused-ignore]
    from procrastinate_baseline import (  # type: ignore[import-not-found,unused-ignore]
        create_scratch_db,
        drop_db,
        embedded_admin_dsn,
        measure_procrastinate,
    )
except ImportError:
    from bench._common import Row, p50_p99, print_results  # type: ignore[no-redef,import-not-found,unused-ignore]
    from bench.procrastinate_baseline import (  # type: ignore[no-redef,import-not-found,unused-ignore]
        create_scratch_db,
        drop_db,
        embedded_admin_dsn,
        measure_procrastinate,
    )

SYSTEM_PG = "postgresql://postgres@127.0.0.1:5432/postgres"

ENQUEUE_SQL = """
INSERT INTO tasks (company_id, title, assigned_team_id)
SELECT :company_id, 'bench task ' || g, :team_id FROM generate_series(1, :n) g
"""


@dataclass(frozen=True)
class WorkerStats:
    done: int
    claim_latencies: list[float]


async def _prepare(dsn: str, n: int, agents_total: int, capacity: int) -> list[str]:
    from sqlalchemy import create_engine

    sync = create_engine(sqlalchemy_url(dsn), poolclass=NullPool)
    upgrade(sync)
    sync.dispose()
    engine = create_async_engine(sqlalchemy_url(dsn), poolclass=NullPool)
    async with engine.begin() as conn:
        comp = await companies.create_company(conn, name="Bench", team_names=["Workers"])
        ids = []
        for i in range(agents_total):
            agent = await agents.hire_agent(
                conn,
                company=comp["slug"],
                name=f"w{i}",
                role="bench",
                adapter="noop",
                team="Workers",
                max_concurrent_tasks=capacity,
            )
            ids.append(str(agent["id"]))
        team = (await conn.execute(text("SELECT id FROM teams WHERE name = 'Workers'"))).scalar_one()
        await conn.execute(text(ENQUEUE_SQL), {"company_id": comp["id"], "team_id": team, "n": n})
    async with engine.connect() as conn:
        auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await auto.execute(text("VACUUM ANALYZE tasks"))
    await engine.dispose()
    return ids


async def _queued(conn: Any) -> bool:
    return bool(
        (await conn.execute(text("SELECT EXISTS (SELECT 1 FROM tasks WHERE status = 'queued')"))).scalar()
    )


def _mac_engine(dsn: str, **pool: Any) -> AsyncEngine:
    # Sessions hold the audit MAC key, as `up`'s do: every audit insert pays for its MAC (audit.mac).
    key = MasterKey(key=os.urandom(32), source="bench")
    return create_async_engine(
        sqlalchemy_url(dsn), connect_args={"options": audit_mac.session_options(key, dsn)}, **pool
    )


async def _worker_loop(dsn: str, agent_ids: list[str], batch: int) -> WorkerStats:
    engine = _mac_engine(dsn, pool_size=len(agent_ids) * 2, max_overflow=0)
    latencies: list[float] = []
    done = 0

    async def one_agent(agent_id: uuid.UUID) -> None:
        nonlocal done
        idle = 0
        # Each claim and each completion is a single statement, so autocommit is its own transaction:
        # no BEGIN/COMMIT round trips on the unbatched path.
        async with engine.connect() as raw:
            conn = await raw.execution_options(isolation_level="AUTOCOMMIT")
            while idle < 2:
                start = time.perf_counter()
                claims = await leases.claim(
                    conn, agent_id=agent_id, holder="bench", lease_seconds=300, limit=batch
                )
                latencies.append(time.perf_counter() - start)
                if not claims:
                    # SKIP LOCKED can come back empty while other agents hold the last rows: stop only
                    # once nothing is left queued.
                    idle += 1
                    if idle >= 2 and await _queued(conn):
                        idle = 0
                        await asyncio.sleep(0.001)
                    continue
                idle = 0
                # no-op handler; each completion is still a fenced write of its own
                if batch == 1:
                    for claim in claims:
                        await leases.complete(
                            conn, claim.identity(), fencing_token=claim.fencing_token, output=None
                        )
                else:
                    # One statement for the batch's completions, each fenced and answered on its own.
                    answers = await leases.complete_many(
                        conn,
                        [leases.Completion(c.identity(), c.fencing_token, None) for c in claims],
                    )
                    if not all(isinstance(a, dict) for a in answers):
                        raise RuntimeError("a bundled completion was refused")
                done += len(claims)

    await asyncio.gather(*(one_agent(uuid.UUID(a)) for a in agent_ids))
    await engine.dispose()
    return WorkerStats(done=done, claim_latencies=latencies)


def _process(dsn: str, agent_ids: list[str], batch: int, start: Any, out: Any) -> None:
    start.wait()
    stats = asyncio.run(_worker_loop(dsn, agent_ids, batch))
    out.put((stats.done, stats.claim_latencies))


def _sealer_thread(dsn: str, stop: threading.Event) -> threading.Thread:
    """The audit sealer as `up` runs it (its own loop, its own connections), for the with-sealer row."""

    async def run() -> None:
        settings = Settings(home=Path(tempfile.gettempdir()), database_url=dsn)
        db = Database(settings=settings, url=dsn)
        key = MasterKey(key=os.urandom(32), source="bench")
        done = asyncio.Event()

        async def watch() -> None:
            while not stop.is_set():
                await asyncio.sleep(0.05)
            done.set()

        watcher = asyncio.create_task(watch())
        await run_sealer(db, key, done)
        await watcher
        await db.dispose()

    thread = threading.Thread(target=lambda: asyncio.run(run()), daemon=True)
    thread.start()
    return thread


def measure_ours(
    dsn: str, n: int, *, processes: int, per_process: int, batch: int, sealer: bool = False
) -> dict[str, float]:
    agent_ids = asyncio.run(_prepare(dsn, n, processes * per_process, capacity=batch))
    stop_sealer = threading.Event()
    sealer_thread = _sealer_thread(dsn, stop_sealer) if sealer else None
    ctx = mp.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    procs = [
        ctx.Process(
            target=_process, args=(dsn, agent_ids[i * per_process : (i + 1) * per_process], batch, start, out)
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
    stop_sealer.set()
    if sealer_thread is not None:
        sealer_thread.join(timeout=30)
    done = sum(r[0] for r in results)
    if done != n:
        raise RuntimeError(f"drained {done} of {n} tasks")
    latencies = [lat for r in results for lat in r[1]]
    p50, p99 = p50_p99(latencies)
    return {"tasks_per_s": n / elapsed, "elapsed_s": elapsed, "p50_ms": p50 * 1000, "p99_ms": p99 * 1000}


async def _claim_latency(dsn: str, queued: int, n: int) -> tuple[float, float]:
    """One agent claiming and completing ``n`` tasks one at a time from a queue of ``queued``: the
    claim's p50 and p99 in ms. Sequential, so it is the statement's own cost, not contention's."""
    agent_id = uuid.UUID((await _prepare(dsn, queued, 1, capacity=1))[0])
    engine = _mac_engine(dsn)
    latencies: list[float] = []
    async with engine.connect() as raw:
        conn = await raw.execution_options(isolation_level="AUTOCOMMIT")
        for _ in range(n):
            start = time.perf_counter()
            (claim,) = await leases.claim(conn, agent_id=agent_id, holder="bench", lease_seconds=300)
            latencies.append(time.perf_counter() - start)
            await leases.complete(conn, claim.identity(), fencing_token=claim.fencing_token, output=None)
    await engine.dispose()
    p50, p99 = p50_p99(latencies)
    return p50 * 1000, p99 * 1000


def run_deep(name: str, admin_dsn: str, args: argparse.Namespace) -> list[Row]:
    """The claim's latency against the depth of the queue: a shallow queue is the baseline."""
    rows = []
    for queued in (args.shallow_queue, args.deep_queue):
        dsn = create_scratch_db(admin_dsn, prefix="bench_deep")
        try:
            p50, p99 = asyncio.run(_claim_latency(dsn, queued, args.deep_claims))
        finally:
            drop_db(admin_dsn, dsn)
        rows.append(Row(f"{name}: {queued:,} queued", p50, {"claim p99 ms": round(p99, 2)}))
    return rows


def run_backend(name: str, admin_dsn: str, args: argparse.Namespace) -> list[Row]:
    rows: list[Row] = []
    dsn = create_scratch_db(admin_dsn, prefix="bench_proc")
    try:
        base = measure_procrastinate(dsn, args.n, concurrency=args.procrastinate_concurrency)
    finally:
        drop_db(admin_dsn, dsn)
    rows.append(Row(f"{name}: procrastinate (c={args.procrastinate_concurrency})", base.tasks_per_s, {}))
    modes = [("unbatched", 1, False), (f"batched x{args.batch}", args.batch, False)]
    if args.with_sealer:
        modes.insert(1, ("unbatched + audit sealer", 1, True))
    for label, batch, sealer in modes:
        dsn = create_scratch_db(admin_dsn, prefix="bench_ours")
        try:
            result = measure_ours(
                dsn, args.n, processes=args.processes, per_process=args.workers, batch=batch, sealer=sealer
            )
        finally:
            drop_db(admin_dsn, dsn)
        rows.append(
            Row(
                f"{name}: ours {label}",
                result["tasks_per_s"],
                {"claim p50 ms": round(result["p50_ms"], 2), "claim p99 ms": round(result["p99_ms"], 2)},
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=["embedded", "external", "both"], default="both")
    parser.add_argument("--external-dsn", default=SYSTEM_PG, help="admin DSN of the external server")
    parser.add_argument("-n", type=int, default=4000, help="tasks per measurement")
    parser.add_argument("--processes", type=int, default=2, help="worker processes (ours)")
    parser.add_argument("--workers", type=int, default=8, help="agents (async claim loops) per process")
    parser.add_argument("--batch", type=int, default=32, help="claims per statement in batched mode")
    parser.add_argument("--procrastinate-concurrency", type=int, default=4)
    parser.add_argument(
        "--with-sealer",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also measure unbatched with the audit sealer running (the cost of tamper evidence)",
    )
    parser.add_argument("--shallow-queue", type=int, default=1000, help="queued tasks, the depth baseline")
    parser.add_argument(
        "--deep-queue",
        type=int,
        default=100_000,
        help="queued tasks for the claim latency at depth (0: skip)",
    )
    parser.add_argument("--deep-claims", type=int, default=300, help="claims measured at each depth")
    args = parser.parse_args()
    for backend in ("embedded", "external"):
        if args.backend not in (backend, "both"):
            continue
        if backend == "embedded":
            with tempfile.TemporaryDirectory(prefix="ca-bench-") as tmp:
                admin, server = embedded_admin_dsn(tmp)
                try:
                    rows = run_backend("embedded", admin, args)
                    deep = run_deep("embedded", admin, args) if args.deep_queue else []
                finally:
                    server.release()
        else:
            rows = run_backend("external", args.external_dsn, args)
            deep = run_deep("external", args.external_dsn, args) if args.deep_queue else []
        print_results(
            rows, baseline=rows[0].name, metric="tasks/s", title=f"Queue throughput ({backend}, n={args.n})"
        )
        if deep:
            print_results(
                deep,
                baseline=deep[0].name,
                metric="claim p50 ms",
                title=f"One claim against the queue's depth ({backend}, one agent, sequential)",
            )


if __name__ == "__main__":
    main()
