"""Tool-call benchmark: `renew_lease` and `report_progress` over HTTP with 8 agents calling at once.

The tool endpoint (`api.tools.create_tool_app`, uvicorn, its own process and pool, as in `up`) serves
eight agents, each holding one claimed task and calling in a loop; the figure is each tool's p50/p99
latency as the agent sees it (goal: p99 ≤ 5 ms). The baseline, in the same run, is the same HTTP
round trip to the same server answering without the database (an unknown tool's 404).

    .venv/bin/python bench/tools.py [--backend embedded|external|both] [-n 200]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from company_agents import leases

try:  # run as a script (bench/ on sys.path) or imported as ``bench.tools``
    from _common import Row, p50_p99, print_results  # type: ignore[import-not-found,unused-ignore]
    from claims import SYSTEM_PG, _prepare  # type: ignore[import-not-found,unused-ignore]
    from procrastinate_baseline import (  # type: ignore[import-not-found,unused-ignore]
        create_scratch_db,
        drop_db,
        embedded_admin_dsn,
    )
    from startup import _port  # type: ignore[import-not-found,unused-ignore]
except ImportError:
    from bench._common import Row, p50_p99, print_results  # type: ignore[no-redef,import-not-found,unused-ignore]
    from bench.claims import SYSTEM_PG, _prepare  # type: ignore[no-redef,import-not-found,unused-ignore]
    from bench.procrastinate_baseline import (  # type: ignore[no-redef,import-not-found,unused-ignore]
        create_scratch_db,
        drop_db,
        embedded_admin_dsn,
    )
    from bench.startup import _port  # type: ignore[no-redef,import-not-found,unused-ignore]

AGENTS = 8


def _serve(dsn: str, home: str, port: int) -> None:
    import uvicorn

    from company_agents.api.tools import create_tool_app
    from company_agents.db.database import Database
    from company_agents.settings import Settings

    settings = Settings(home=Path(home), database_url=dsn, lease_seconds=300)
    db = Database(settings=settings, url=dsn)
    uvicorn.run(create_tool_app(db, settings), host="127.0.0.1", port=port, log_level="warning")


async def _claims(dsn: str, agent_ids: list[str]) -> list[leases.Claim]:
    from sqlalchemy.ext.asyncio import create_async_engine

    from company_agents.db.database import sqlalchemy_url

    engine = create_async_engine(sqlalchemy_url(dsn))
    try:
        async with engine.begin() as conn:
            found = []
            for agent in agent_ids:
                found += await leases.claim(
                    conn, agent_id=uuid.UUID(agent), holder="bench", lease_seconds=300
                )
            return found
    finally:
        await engine.dispose()


async def _agents(base: str, claims: list[leases.Claim], n: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"baseline": [], "renew_lease": [], "report_progress": []}

    async def agent(claim: leases.Claim) -> None:
        headers = {"Authorization": f"Bearer {claim.lease_token}"}
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as client:
            for tool, body in (
                ("baseline", {}),
                ("renew_lease", {"fencingToken": claim.fencing_token}),
                ("report_progress", {"fencingToken": claim.fencing_token, "message": "step", "percent": 5}),
            ):
                path = "/tools/no_such_tool" if tool == "baseline" else f"/tools/{tool}"
                for i in range(n + 5):
                    start = time.perf_counter()
                    response = await client.post(path, json=body)
                    elapsed = time.perf_counter() - start
                    if response.status_code != (404 if tool == "baseline" else 200):
                        raise RuntimeError(f"{tool}: {response.status_code} {response.text}")
                    if i >= 5:  # the first calls open connections on both sides: not measured
                        times[tool].append(elapsed)

    await asyncio.gather(*(agent(c) for c in claims))
    return times


def measure(dsn: str, n: int) -> dict[str, list[float]]:
    agent_ids = asyncio.run(_prepare(dsn, AGENTS, AGENTS, capacity=1))
    claims = asyncio.run(_claims(dsn, agent_ids))
    if len(claims) != AGENTS:
        raise RuntimeError(f"claimed {len(claims)} of {AGENTS} tasks")
    port = _port()
    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="ca-bench-tools-") as home:
        server = ctx.Process(target=_serve, args=(dsn, home, port), daemon=True)
        server.start()
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while True:
                try:
                    httpx.post(f"{base}/tools/no_such_tool", timeout=1)
                    break
                except httpx.HTTPError:
                    if time.monotonic() > deadline or not server.is_alive():
                        raise RuntimeError("the tool endpoint did not start") from None
                    time.sleep(0.05)
            return asyncio.run(_agents(base, claims, n))
        finally:
            server.terminate()
            server.join(timeout=30)


def run_backend(name: str, admin_dsn: str, n: int) -> None:
    dsn = create_scratch_db(admin_dsn, prefix="bench_tools")
    try:
        times = measure(dsn, n)
    finally:
        drop_db(admin_dsn, dsn)
    rows: list[Row] = []
    for tool, label in (
        ("baseline", "HTTP round trip, no database (404; baseline)"),
        ("renew_lease", "renew_lease"),
        ("report_progress", "report_progress"),
    ):
        p50, p99 = p50_p99(times[tool])
        extra: dict[str, Any] = {"p50 ms": round(p50 * 1000, 2)}
        if tool != "baseline":
            extra["goal p99 ms"] = 5
        rows.append(Row(label, p99 * 1000, extra))
    print_results(
        rows,
        baseline=rows[0].name,
        metric="p99 ms",
        title=f"Tool calls over HTTP ({name}, {AGENTS} agents at once, {n} calls each)",
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=["embedded", "external", "both"], default="both")
    parser.add_argument("--external-dsn", default=SYSTEM_PG, help="admin DSN of the external server")
    parser.add_argument("-n", type=int, default=200, help="calls per agent and tool")
    args = parser.parse_args()
    if args.backend in ("embedded", "both"):
        with tempfile.TemporaryDirectory(prefix="ca-bench-") as tmp:
            admin, server = embedded_admin_dsn(tmp)
            try:
                run_backend("embedded", admin, args.n)
            finally:
                server.release()
    if args.backend in ("external", "both"):
        run_backend("external", args.external_dsn, args.n)


if __name__ == "__main__":
    main()
