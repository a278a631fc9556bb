"""Shared fixtures for queue tests: an async engine, a company with agents, a real tool endpoint."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
import uvicorn
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from company_agents import agents, companies
from company_agents.api.tools import create_tool_app
from company_agents.db.database import Database, sqlalchemy_url
from company_agents.settings import Settings


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_async_engine(sqlalchemy_url(db_url))
    yield eng
    await eng.dispose()


@dataclass
class World:
    company_id: UUID
    slug: str
    agents: dict[str, dict[str, Any]]


async def make_world(
    engine: AsyncEngine, *, agent_names: tuple[str, ...] = ("ada", "bob"), **hire: Any
) -> World:
    async with engine.begin() as conn:
        comp = await companies.create_company(conn, name="Acme", team_names=["Engineering", "Design"])
        hired = {}
        for name in agent_names:
            hired[name] = await agents.hire_agent(
                conn, company="acme", name=name, role="worker", adapter="process", team="Engineering", **hire
            )
    return World(company_id=comp["id"], slug=comp["slug"], agents=hired)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ThreadedServer(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # not the main thread
        pass


def serve_tool_endpoint(db_url: str, home: Path, **settings: Any) -> Iterator[str]:
    """A real HTTP tool endpoint (uvicorn in a thread with its own loop and its own pool); yields its URL."""
    config = Settings(home=home, database_url=db_url, lease_seconds=30, **settings)
    db = Database(settings=config, url=db_url)
    port = free_port()
    server = ThreadedServer(
        uvicorn.Config(create_tool_app(db, config), host="127.0.0.1", port=port, log_level="warning")
    )

    async def serve() -> None:
        try:
            await server.serve()
        finally:
            await db.dispose()

    thread = threading.Thread(target=lambda: asyncio.run(serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("tool endpoint did not start")
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def tool_url(db_url: str, tmp_path: Path) -> Iterator[str]:
    # No retry backoff here: these tests retry at once (backoff has its own, test_retry_backoff.py).
    yield from serve_tool_endpoint(db_url, tmp_path / "home", retry_backoff_base_seconds=0)
