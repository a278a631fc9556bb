"""MCP tool-call round trip against the plain HTTP tool endpoint (docs/mcp.md).

One tool endpoint (the real tool app under uvicorn, in a process of its own, on a scratch database of
the machine's PostgreSQL) and one running attempt. The client, in this process, calls
``report_progress`` (a fenced write: one checkpoint row) one call at a time, and times each call:

- ``http``: ``POST /tools/report_progress`` on a kept-alive connection (httpx), the baseline;
- ``mcp (initialize)``: the SDK's streamable-HTTP client, session opened once (not timed), as Codex
  and Gemini CLI connect;
- ``mcp (discover)``: the same with the 2026 handshake (``server/discover``), as Claude Code connects.

All three are connected at once and take turns call by call, so each sees the same load from whatever
else the machine runs; ``--rounds`` repeats that with fresh connections. The figures are the p50 and
p99 over every timed call of a mode, and the ratio is each mode's p50 against the HTTP p50.

    .venv/bin/python bench/mcp_tools.py                       # the machine's PostgreSQL (127.0.0.1:5432)
    .venv/bin/python bench/mcp_tools.py -n 500 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import socket
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import httpx2
import psycopg
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from psycopg import sql
from sqlalchemy import create_engine
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from company_agents import agents, companies, leases, tasks
from company_agents.db.database import sqlalchemy_url
from company_agents.db.migrate import upgrade

try:  # run as a script (bench/ on sys.path) or imported as ``bench.mcp_tools``
    from _common import Row, p50_p99, print_results  # type: ignore[import-not-found,unused-ignore]
except ImportError:
    from bench._common import Row, p50_p99, print_results  # type: ignore[no-redef,import-not-found,unused-ignore]

SYSTEM_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
WARMUP = 20


def create_scratch_db(admin: str) -> str:
    name = f"bench_mcp_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return admin.rsplit("/", 1)[0] + "/" + name


def drop_db(admin: str, dsn: str) -> None:
    with psycopg.connect(admin, autocommit=True) as conn:
        name = dsn.rsplit("/", 1)[1]
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


async def _claim(dsn: str) -> leases.Claim:
    """A company, an agent and one running attempt of a task (not timed)."""
    sync = create_engine(sqlalchemy_url(dsn), poolclass=NullPool)
    upgrade(sync)
    sync.dispose()
    engine = create_async_engine(sqlalchemy_url(dsn), poolclass=NullPool)
    async with engine.begin() as conn:
        comp = await companies.create_company(conn, name="Bench", team_names=["Workers"])
        agent = await agents.hire_agent(
            conn, company=comp["slug"], name="w", role="bench", adapter="noop", team="Workers"
        )
        await tasks.create_task(conn, company=comp["slug"], title="bench", agent="w")
        # A long lease: the benchmark does not renew it.
        (claim,) = await leases.claim(conn, agent_id=agent["id"], holder="bench", lease_seconds=3600)
    await engine.dispose()
    return claim


def _serve(dsn: str, port: int, home: str) -> None:
    """The tool endpoint as `up` serves it (lifespan on: the MCP session manager runs)."""
    import logging

    import uvicorn

    from company_agents.api.tools import create_tool_app
    from company_agents.db.database import Database
    from company_agents.settings import Settings

    # As under `up`, whose logging is set up before the tool app is built: the SDK then adds no handler.
    logging.basicConfig(level=logging.WARNING)
    settings = Settings(home=Path(home), database_url=dsn, tool_port=port)
    app = create_tool_app(Database(settings=settings, url=dsn), settings)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="on")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_healthy(base: str, proc: Any) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if not proc.is_alive():
            raise RuntimeError("the tool endpoint exited")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError("the tool endpoint did not start")


async def _measure(base: str, claim: leases.Claim, n: int) -> dict[str, list[float]]:
    """``n`` timed calls per mode, the modes taking turns call by call, so all of them see the same load."""
    headers = {"Authorization": f"Bearer {claim.lease_token}"}
    body = {"fencingToken": claim.fencing_token, "message": "bench"}
    async with (
        httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as plain,
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=60)) as http_a,
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=60)) as http_b,
        Client(streamable_http_client(f"{base}/mcp", http_client=http_a), mode="legacy") as legacy,
        Client(streamable_http_client(f"{base}/mcp", http_client=http_b), mode="auto") as modern,
    ):

        async def over_http() -> None:
            answer = await plain.post("/tools/report_progress", json=body)
            if answer.status_code != 200:
                raise RuntimeError(answer.text)

        def over_mcp(client: Client) -> Callable[[], Awaitable[None]]:
            async def call() -> None:
                result = await client.call_tool("report_progress", {"message": "bench"})
                if result.is_error:
                    raise RuntimeError(str(result.content))

            return call

        modes = {"http": over_http, "mcp (initialize)": over_mcp(legacy), "mcp (discover)": over_mcp(modern)}
        timings: dict[str, list[float]] = {name: [] for name in modes}
        for i in range(WARMUP + n):
            for name, call in modes.items():
                start = time.perf_counter()
                await call()
                if i >= WARMUP:
                    timings[name].append(time.perf_counter() - start)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dsn", default=SYSTEM_PG, help="admin DSN of the server (a scratch database)")
    parser.add_argument("-n", type=int, default=300, help="timed calls per mode and round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    dsn = create_scratch_db(args.dsn)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    proc = None
    try:
        claim = asyncio.run(_claim(dsn))
        with tempfile.TemporaryDirectory(prefix="bench-mcp-") as home:
            proc = mp.get_context("spawn").Process(target=_serve, args=(dsn, port, home), daemon=True)
            proc.start()
            _wait_healthy(base, proc)
            timings: dict[str, list[float]] = {}
            for _ in range(args.rounds):
                for name, values in asyncio.run(_measure(base, claim, args.n)).items():
                    timings.setdefault(name, []).extend(values)
    finally:
        if proc is not None:
            proc.terminate()
            proc.join(10)
        drop_db(args.dsn, dsn)
    rows = []
    for name, values in timings.items():
        p50, p99 = p50_p99(values)
        rows.append(Row(name, p50 * 1000, {"p99 ms": round(p99 * 1000, 2), "calls": len(values)}))
    print_results(
        rows,
        baseline="http",
        metric="p50 ms",
        title=f"report_progress round trip ({args.rounds} rounds of {args.n} calls)",
    )


if __name__ == "__main__":
    main()
