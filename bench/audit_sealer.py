"""The cost of tamper evidence: task-path throughput with the audit sealer running versus not.

A stand-in for the claim/complete path until the real one lands: each transaction updates one row
(its worker's own, so workers do not contend) and appends two audit events, from ``-c`` concurrent
connections. Phases alternate sealer off / on (``--rounds`` pairs of ``--seconds`` each) in one run on
one database, with the sealer as ``up`` runs it: a task in the same event loop (``run_sealer``).
Phase throughput on a shared 2-core machine is noisy (±20 % between identical phases), so the script
also measures the CPU the sealer spends per event against the CPU of one task transaction (client
process plus its server backend, serially on one connection): a steadier estimate of the overhead.
At the end the whole trail is verified (and timed).

    .venv/bin/python bench/audit_sealer.py                      # a throwaway embedded server
    .venv/bin/python bench/audit_sealer.py --admin-dsn postgresql://postgres@127.0.0.1:5432/postgres

Figures are wall-clock on a shared machine: repeat runs and expect noise of several percent.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import psycopg
from psycopg import sql
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from company_agents import audit
from company_agents.audit.seal import seal_pending
from company_agents.audit.verify import verify_trail
from company_agents.db.database import Database, libpq_url, sqlalchemy_url
from company_agents.db.embedded import EmbeddedServer
from company_agents.db.migrate import upgrade
from company_agents.master_key import MasterKey
from company_agents.runtime.sealer import run_sealer
from company_agents.settings import Settings


@contextmanager
def scratch_database(admin_dsn: str | None) -> Iterator[str]:
    """A fresh migrated database on ``admin_dsn``'s server, or on a throwaway embedded server."""
    with tempfile.TemporaryDirectory(prefix="ca-bench-") as tmp:
        server: EmbeddedServer | None = None
        if admin_dsn is None:
            server = EmbeddedServer(Path(tmp) / "db")
            server.start()
            admin_dsn = libpq_url(server.uri("postgres"))
        name = f"ca_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        url = admin_dsn.rsplit("/", 1)[0] + "/" + name if "?" not in admin_dsn else _swap_db(admin_dsn, name)
        try:
            engine = create_engine(sqlalchemy_url(url), poolclass=NullPool)
            upgrade(engine)
            engine.dispose()
            yield url
        finally:
            with psycopg.connect(admin_dsn, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            if server is not None:
                server.release()


def _swap_db(dsn: str, name: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    return urlunsplit(urlsplit(dsn)._replace(path=f"/{name}"))


async def setup_rows(db: Database, workers: int) -> list[uuid.UUID]:
    async with db.engine.begin() as conn:
        ids = []
        for i in range(workers):
            row = await conn.execute(
                text("INSERT INTO companies (slug, name) VALUES (:s, :n) RETURNING id"),
                {"s": f"bench-{i}", "n": f"Bench {i}"},
            )
            ids.append(row.scalar_one())
    return ids


async def worker(db: Database, row_id: uuid.UUID, deadline: float, counter: list[int]) -> None:
    n = 0
    while time.monotonic() < deadline:
        async with db.engine.begin() as conn:
            await conn.execute(text("UPDATE companies SET updated_at = now() WHERE id = :id"), {"id": row_id})
            for action in ("task.claimed", "task.completed"):
                await audit.record(
                    conn,
                    actor=f"agent:{row_id}",
                    action=action,
                    subject_type="task",
                    subject_id=row_id,
                    company_id=row_id,
                    payload={"attempt": n, "fencingToken": n + 1, "output": {"summary": "done", "files": 3}},
                )
        n += 1
    counter.append(n)


def _cpu(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


async def cpu_costs(
    db: Database, row_id: uuid.UUID, key: MasterKey, n: int
) -> tuple[float, float, float, float]:
    """CPU seconds (client, server backend) per task transaction and per sealed event, measured
    serially on one connection: a noise-robust figure next to the throughput of the phases.
    Needs the server on this machine (psutil reads the backend's CPU time).
    """
    async with db.engine.begin() as conn:
        await seal_pending(conn, key)
    async with db.engine.connect() as conn:
        pid = int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())
        await conn.commit()
        c0, s0 = time.process_time(), _cpu(pid)
        for i in range(n):
            async with conn.begin():
                await conn.execute(
                    text("UPDATE companies SET updated_at = now() WHERE id = :id"), {"id": row_id}
                )
                for action in ("task.claimed", "task.completed"):
                    await audit.record(
                        conn,
                        actor=f"agent:{row_id}",
                        action=action,
                        subject_type="task",
                        subject_id=row_id,
                        company_id=row_id,
                        payload={
                            "attempt": i,
                            "fencingToken": i + 1,
                            "output": {"summary": "done", "files": 3},
                        },
                    )
        c1, s1 = time.process_time(), _cpu(pid)
        async with conn.begin():
            sealed = await seal_pending(conn, key)
        c2, s2 = time.process_time(), _cpu(pid)
    return (c1 - c0) / n, (s1 - s0) / n, (c2 - c1) / sealed, (s2 - s1) / sealed


async def phase(db: Database, ids: list[uuid.UUID], seconds: float, key: MasterKey | None) -> float:
    stop = asyncio.Event()
    sealer = asyncio.create_task(run_sealer(db, key, stop, interval=1.0)) if key else None
    counter: list[int] = []
    started = time.monotonic()
    await asyncio.gather(*(worker(db, row_id, started + seconds, counter) for row_id in ids))
    elapsed = time.monotonic() - started
    stop.set()
    if sealer:
        await sealer
    return sum(counter) / elapsed


async def main_async(url: str, args: argparse.Namespace) -> None:
    settings = Settings(home=Path(tempfile.gettempdir()) / "ca-bench-home", database_url=url)
    db = Database(settings=settings, url=url)
    key = MasterKey(os.urandom(32), "bench")
    ids = await setup_rows(db, args.concurrency)
    # Warm up (pool, caches), then seal what it wrote so every "on" phase starts from a current head.
    await phase(db, ids, 2.0, None)
    async with db.engine.begin() as conn:
        await seal_pending(conn, key)
    off: list[float] = []
    on: list[float] = []
    for r in range(args.rounds):
        modes = [("off", None, off), ("on", key, on)]
        # ABBA order (off-on, on-off, …) so a drift in machine load does not favour one mode.
        for label, use_key, bucket in modes if r % 2 == 0 else modes[::-1]:
            tps = await phase(db, ids, args.seconds, use_key)
            bucket.append(tps)
            print(f"round {r + 1} sealer {label:<3} {tps:8.1f} txn/s  ({2 * tps:8.1f} audit events/s)")
        # Catch the sealer up between rounds so an "off" phase never leaves it a backlog to start on.
        async with db.engine.begin() as conn:
            await seal_pending(conn, key)
    txn_client, txn_server, seal_client, seal_server = await cpu_costs(db, ids[0], key, args.cpu_txns)
    started = time.monotonic()
    async with db.engine.connect() as conn:
        report = await verify_trail(conn, {key.key_id: key})
    verify_s = time.monotonic() - started
    await db.dispose()
    mean_off, mean_on = statistics.mean(off), statistics.mean(on)
    print()
    print(f"concurrency {args.concurrency}, {args.rounds} x {args.seconds:.0f}s per mode")
    print(f"sealer off  {mean_off:8.1f} txn/s  (rounds: {', '.join(f'{x:.0f}' for x in off)})")
    print(f"sealer on   {mean_on:8.1f} txn/s  (rounds: {', '.join(f'{x:.0f}' for x in on)})")
    print(
        f"ratio on/off {mean_on / mean_off:.3f}  ->  "
        f"{100 * (1 - mean_on / mean_off):+.1f}% slower (goal: under 10%)"
    )
    per_txn = txn_client + txn_server
    per_seal = 2 * (seal_client + seal_server)  # two audit events per transaction
    print(
        f"CPU per task txn {1e6 * per_txn:.0f} us "
        f"(client {1e6 * txn_client:.0f} + server {1e6 * txn_server:.0f}); "
        f"sealing its 2 events {1e6 * per_seal:.1f} us "
        f"(client {2e6 * seal_client:.1f} + server {2e6 * seal_server:.1f})"
    )
    print(f"  -> tamper evidence adds {100 * per_seal / per_txn:.1f}% CPU to the task path (excl. WAL/fsync)")
    print(
        f"verify: {report.events_checked} events in {report.seals_checked} seals, ok={report.ok}, "
        f"{verify_s:.2f}s ({report.events_checked / max(verify_s, 1e-9):.0f} events/s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--admin-dsn", help="A server to create a scratch database on (default: embedded).")
    parser.add_argument("-c", "--concurrency", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0, help="Length of each phase.")
    parser.add_argument("--rounds", type=int, default=3, help="Pairs of off/on phases.")
    parser.add_argument("--cpu-txns", type=int, default=2000, help="Transactions for the CPU-cost figure.")
    args = parser.parse_args()
    with scratch_database(args.admin_dsn) as url:
        asyncio.run(main_async(url, args))


if __name__ == "__main__":
    main()
