"""``/mcp`` on the tool port, with the MCP SDK loaded on first use instead of before the port opens.

The SDK (its protocol types for every spec version) is the largest import of ``up``: loading it before
the servers start kept the REST API closed for that long, although ``/mcp`` is only wanted once an agent
runs. ``LazyMcp`` is the route's endpoint: the first request, or ``load()`` (which ``up`` calls once it
is ready), imports ``api.mcp`` in a worker thread, so the event loop keeps serving meanwhile. A request
that arrives before the load has finished waits for it, then is served exactly as before.

The session manager must run while the route is served, inside one task from start to end (its anyio
task group): ``running()`` is that task's frame, entered by the tool app's lifespan.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

    from company_agents.agent_tools.fencing import ToolEnv

log = logging.getLogger(__name__)

MCP_PATH = "/mcp"


class LazyMcp:
    def __init__(self, env: ToolEnv) -> None:
        self.env = env
        self._wanted: asyncio.Event | None = None
        self._app: asyncio.Future[ASGIApp] | None = None

    def _state(self) -> tuple[asyncio.Event, asyncio.Future[ASGIApp]]:
        # Made on first use, inside the loop that serves the app (never at construction).
        if self._wanted is None or self._app is None:
            self._wanted = asyncio.Event()
            self._app = asyncio.get_running_loop().create_future()
        return self._wanted, self._app

    def load(self) -> None:
        """Start loading the SDK now rather than on the first request."""
        self._state()[0].set()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Serve ``/mcp`` for as long as this is entered (the tool app's lifespan)."""
        task = asyncio.create_task(self._run())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        wanted, app = self._state()
        await wanted.wait()
        try:
            module = await asyncio.to_thread(importlib.import_module, "company_agents.api.mcp")
            guarded, manager = module.create_mcp_app(self.env)
        except Exception as exc:
            log.error("the MCP server could not be loaded: %r", exc, extra={"action": "mcp_load_failed"})
            app.set_exception(exc)  # every request to /mcp answers 500; the rest of `up` goes on
            return
        async with manager.run():
            app.set_result(guarded)
            await asyncio.Event().wait()  # until the lifespan ends and cancels this task

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        wanted, app = self._state()
        wanted.set()
        await (await asyncio.shield(app))(scope, receive, send)
