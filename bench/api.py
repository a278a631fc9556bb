"""REST API /v1 cost: p50/p99 of the task list's first page, a deep cursor page and ``POST …/tasks``
over real HTTP (the API app under uvicorn, in a thread with its own loop), each against the same domain
call made directly in Python in the same run. The ratio is the HTTP layer's cost (goal: under 2x).

    .venv/bin/python bench/api.py                 # 10k tasks
    .venv/bin/python bench/api.py --full          # 100k tasks (the issue's size)
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import psycopg
import uvicorn
from psycopg import sql
from sqlalchemy import create_engine
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from company_agents import api_tokens, companies, pagination, tasks
from company_agents.api.app import create_app
from company_agents.api.schemas.common import encode_cursor
from company_agents.db.database import Database, sqlalchemy_url
from company_agents.db.migrate import upgrade
from company_agents.settings import Settings

try:  # run as a script (bench/ on sys.path) or imported as ``bench.api``
    from _common import Row, p50_p99, print_results  # type: ignore[import-not-found,unused-ignore]
except ImportError:  # pragma: no cover
    from bench._common import Row, p50_p99, print_results  # type: ignore[no-redef,import-not-found,unused-ignore]

SYSTEM_PG = "postgresql://postgres@127.0.0.1:5432/postgres"


def create_scratch_db(admin: str) -> str:
    name = f"bench_api_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return admin.rsplit("/", 1)[0] + "/" + name


def drop_db(admin: str, dsn: str) -> None:
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dsn.rsplit("/", 1)[1]))
        )


def seed(dsn: str, n: int) -> tuple[str, str]:
    """A company with ``n`` tasks (bulk, not timed) and an API token; returns (company id, token)."""
    sync = create_engine(sqlalchemy_url(dsn), poolclass=NullPool)
    upgrade(sync)
    sync.dispose()

    async def make() -> tuple[str, str]:
        engine = create_async_engine(sqlalchemy_url(dsn), poolclass=NullPool)
        async with engine.begin() as conn:
            comp = await companies.create_company(conn, name="Bench")
            _, token = await api_tokens.create_token(conn, name="bench", scopes=["admin"])
        await engine.dispose()
        return str(comp["id"]), token

    company_id, token = asyncio.run(make())
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO tasks (company_id, title, status, created_at, updated_at)"
            " SELECT %s, 'task ' || g, 'done', now() - make_interval(secs => g), now()"
            " FROM generate_series(1, %s) g",
            (company_id, n),
        )
        conn.execute("ANALYZE tasks")
    return company_id, token


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # not the main thread
        pass


def serve(dsn: str, home: Path) -> tuple[str, _Server, threading.Thread]:
    settings = Settings(home=home, database_url=dsn)
    db = Database(settings=settings, url=dsn)
    port = free_port()
    server = _Server(
        uvicorn.Config(
            create_app(db, settings), host="127.0.0.1", port=port, log_level="warning", access_log=False
        )
    )
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    return f"http://127.0.0.1:{port}", server, thread


def timed_http(n: int, request: Callable[[], httpx.Response]) -> list[float]:
    for _ in range(min(20, n)):  # warm the pool and the plans
        request().raise_for_status()
    out = []
    for _ in range(n):
        started = time.perf_counter()
        request().raise_for_status()
        out.append((time.perf_counter() - started) * 1000)
    return out


async def timed_domain(n: int, call: Callable[[], Awaitable[Any]]) -> list[float]:
    for _ in range(min(20, n)):
        await call()
    out = []
    for _ in range(n):
        started = time.perf_counter()
        await call()
        out.append((time.perf_counter() - started) * 1000)
    return out


def domain_figures(dsn: str, company_id: str, deep: tuple[Any, ...], n: int) -> dict[str, list[float]]:
    async def run() -> dict[str, list[float]]:
        settings = Settings(database_url=dsn)
        db = Database(settings=settings, url=dsn)

        async def page(before: Any) -> None:
            async with db.engine.connect() as conn:
                rows = await tasks.list_tasks(conn, company=company_id, limit=50, page=True, before=before)
                pagination.split(rows, 50, "created_at")

        async def create() -> None:
            async with db.engine.begin() as conn:
                await tasks.create_task(conn, company=company_id, title="bench create")

        out = {
            "first page": await timed_domain(n, lambda: page(None)),
            "deep cursor": await timed_domain(n, lambda: page(deep)),
            "create task": await timed_domain(n, create),
        }
        await db.dispose()
        return out

    return asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dsn", default=SYSTEM_PG, help="admin DSN of the server (a scratch database)")
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--full", action="store_true", help="the issue's size: 100k tasks")
    parser.add_argument("-n", type=int, default=200, help="timed calls per figure")
    args = parser.parse_args()
    size = 100_000 if args.full else args.tasks
    dsn = create_scratch_db(args.dsn)
    try:
        company_id, token = seed(dsn, size)
        with psycopg.connect(dsn) as conn:  # a cursor 90% of the way down the list
            at, key = conn.execute(
                "SELECT created_at, id FROM tasks ORDER BY created_at DESC, id DESC OFFSET %s LIMIT 1",
                (int(size * 0.9),),
            ).fetchone() or (None, None)
        deep = (at, key)
        cursor = encode_cursor(at, key)
        domain = domain_figures(dsn, company_id, deep, args.n)
        with tempfile.TemporaryDirectory() as home:
            base, server, thread = serve(dsn, Path(home))
            headers = {"Authorization": f"Bearer {token}"}
            path = f"/v1/companies/{company_id}/tasks"
            with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
                http = {
                    "first page": timed_http(args.n, lambda: client.get(path, params={"limit": 50})),
                    "deep cursor": timed_http(
                        args.n, lambda: client.get(path, params={"limit": 50, "cursor": cursor})
                    ),
                    "create task": timed_http(args.n, lambda: client.post(path, json={"title": "bench"})),
                }
            server.should_exit = True
            thread.join(timeout=10)
        for name in ("first page", "deep cursor", "create task"):
            d50, d99 = p50_p99(domain[name])
            h50, h99 = p50_p99(http[name])
            print_results(
                [
                    Row("domain call", d50, {"p99 ms": d99, "mean ms": statistics.fmean(domain[name])}),
                    Row("GET/POST /v1", h50, {"p99 ms": h99, "mean ms": statistics.fmean(http[name])}),
                ],
                baseline="domain call",
                metric="p50 ms",
                title=f"{name}: {size:,} tasks, {args.n} calls",
            )
    finally:
        drop_db(args.dsn, dsn)


if __name__ == "__main__":
    main()
