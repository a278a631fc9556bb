"""Event feed benchmark: what the audit_events_feed trigger (txid, NOTIFY, webhook outbox) costs the
task path, and how fast a stream catches up.

Writers create tasks (one transaction each: the task row and its audit event), in four modes measured
in interleaved rounds, each figure the best round:

- ``trigger off``: the feed trigger disabled (the product before migration 0021): the baseline;
- ``no endpoint``: the trigger on, the company has no webhook endpoint (the common case);
- ``endpoint, no match``: one enabled endpoint subscribed to ``budget.*`` only;
- ``endpoint, match``: one endpoint subscribed to ``task.*`` (a delivery row per event).

Then the replay rate of ``feed.read_after`` in pages of 200 over everything written.

    .venv/bin/python bench/events.py --admin-dsn postgresql://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from company_agents import companies, tasks
from company_agents.db.database import sqlalchemy_url
from company_agents.events import feed

try:  # run as a script (bench/ on sys.path) or imported as ``bench.events``
    from _common import Row, print_results  # type: ignore[import-not-found,unused-ignore]
    from audit_sealer import scratch_database  # type: ignore[import-not-found,unused-ignore]
except ImportError:
    from bench._common import Row, print_results  # type: ignore[no-redef,import-not-found,unused-ignore]
    from bench.audit_sealer import scratch_database  # type: ignore[no-redef,import-not-found,unused-ignore]

MODES = ("trigger off", "no endpoint", "endpoint, no match", "endpoint, match")


async def _set_mode(engine: AsyncEngine, company_id: Any, mode: str) -> None:
    async with engine.begin() as conn:
        await conn.execute(text("DELETE FROM webhook_endpoints"))
        enable = "DISABLE" if mode == "trigger off" else "ENABLE"
        await conn.execute(text(f"ALTER TABLE audit_events {enable} TRIGGER audit_events_feed"))
        if mode.startswith("endpoint"):
            pattern = "task.*" if mode == "endpoint, match" else "budget.*"
            await conn.execute(
                text(
                    "INSERT INTO webhook_endpoints (company_id, url, events, secret_name)"
                    " VALUES (:c, 'https://example.com/h', ARRAY[:p], 'webhook.bench')"
                ),
                {"c": company_id, "p": pattern},
            )


async def _phase(engine: AsyncEngine, seconds: float, writers: int) -> float:
    deadline = time.perf_counter() + seconds
    done = 0

    async def writer() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            async with engine.begin() as conn:
                await tasks.create_task(conn, company="bench", title="t", team="Eng")
            done += 1

    start = time.perf_counter()
    await asyncio.gather(*(writer() for _ in range(writers)))
    return done / (time.perf_counter() - start)


async def main_async(url: str, args: argparse.Namespace) -> None:
    engine = create_async_engine(sqlalchemy_url(url), pool_size=args.writers + 2)
    async with engine.begin() as conn:
        company = await companies.create_company(conn, name="Bench", team_names=["Eng"])
    best = dict.fromkeys(MODES, 0.0)
    for _ in range(args.rounds):
        for mode in MODES:
            await _set_mode(engine, company["id"], mode)
            best[mode] = max(best[mode], await _phase(engine, args.seconds, args.writers))
    await _set_mode(engine, company["id"], "no endpoint")
    print_results(
        [Row(m, best[m]) for m in MODES],
        baseline="trigger off",
        metric="task txns/s",
        title=f"task path with the feed trigger ({args.writers} writers, best of {args.rounds})",
    )
    pos, count = feed.Position(), 0
    start = time.perf_counter()
    async with engine.connect() as conn:
        while batch := await feed.read_after(conn, company["id"], pos, limit=200):
            count += len(batch)
            pos = batch[-1].position
    elapsed = time.perf_counter() - start
    print_results(
        [Row("replay (pages of 200)", count / elapsed, {"events": count})],
        metric="events/s",
        title="feed replay",
    )
    await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--admin-dsn", help="A server to create a scratch database on (default: embedded).")
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5.0, help="Length of each phase.")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with scratch_database(args.admin_dsn) as url:
        asyncio.run(main_async(url, args))


if __name__ == "__main__":
    main()
