"""``company-agents up``: the long-running process. One asyncio loop runs every part (docs/design.md §1)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Callable, Coroutine, Generator
from typing import Any

import uvicorn
from fastapi import FastAPI
from starlette.applications import Starlette

from company_agents.api.app import create_app
from company_agents.api.tools import create_tool_app
from company_agents.audit.anchor import anchor_path
from company_agents.dashboard.app import create_dashboard_app, dashboard_host
from company_agents.db.database import ORCHESTRATOR_APP_NAME
from company_agents.errors import ConfigError
from company_agents.isolation import Isolation, Launcher
from company_agents.leases import RetryBackoff
from company_agents.orphans import sweep_orphans
from company_agents.runtime.backups import run_scheduled_backups
from company_agents.runtime.housekeeping import run_housekeeping
from company_agents.runtime.reaper import run_reaper
from company_agents.runtime.registry import deregister, register, run_heartbeat
from company_agents.runtime.scheduler import Scheduler
from company_agents.runtime.sealer import run_sealer
from company_agents.runtime.supervisor import supervise_embedded
from company_agents.settings import check_bind_host, is_loopback
from company_agents.startup import Instance
from company_agents.webhooks.worker import run_webhook_worker

log = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the orchestrator, which stops every part."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def check_port_free(host: str, port: int, variable: str = "COMPANY_AGENTS_API_PORT") -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise ConfigError(
                f"port {host}:{port} is in use ({exc.strerror}); stop the other process or set {variable}"
            ) from None


def holder_id() -> str:
    """Names this orchestrator process in runs and leases (hostname:pid)."""
    return f"{socket.gethostname()}:{os.getpid()}"


# How long a stopping tool server waits for open connections (an MCP client's event stream stays open
# until it hangs up) before it closes them.
TOOL_SHUTDOWN_GRACE_SECONDS = 5


def _server(app: FastAPI | Starlette, host: str, port: int, *, lifespan: bool = False) -> _Server:
    return _Server(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="on" if lifespan else "off",
            timeout_graceful_shutdown=TOOL_SHUTDOWN_GRACE_SECONDS if lifespan else None,
        )
    )


async def serve(
    inst: Instance,
    *,
    isolation: Isolation,
    on_ready: Callable[[], None] | None = None,
    dashboard_token: str | None = None,
) -> None:
    """Run every part until SIGINT or SIGTERM, then stop them all cleanly; agents run isolated as
    ``isolation`` (chosen before the instance was opened: ``choose_isolation``); the dashboard lets in
    the browser that opens the link with ``dashboard_token`` (``dashboard.app.dashboard_url``)."""
    settings = inst.settings
    inst.db.application_name = ORCHESTRATOR_APP_NAME
    if not is_loopback(settings.bind_host):
        from company_agents.api_tokens import any_active_token

        async with inst.db.autocommit() as conn:
            check_bind_host(settings, api_tokens=await any_active_token(conn))
    check_port_free(settings.bind_host, settings.api_port)
    check_port_free(settings.bind_host, settings.tool_port, "COMPANY_AGENTS_TOOL_PORT")
    check_port_free(dashboard_host(settings), settings.dashboard_port, "COMPANY_AGENTS_DASHBOARD_PORT")
    gateway = None
    if settings.gateway == "on":
        from company_agents.gateway.server import Gateway

        check_port_free(settings.bind_host, settings.gateway_port, "COMPANY_AGENTS_GATEWAY_PORT")
        gateway = Gateway(settings, inst.db)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    api_app = create_app(inst.db, settings)
    # The key bound to this database at start-up (webhook secrets): never a second load from disk.
    api_app.state.master_key = inst.master_key
    tool_app = create_tool_app(inst.db, settings)
    servers = [
        _server(api_app, settings.bind_host, settings.api_port),
        # Lifespan on: the MCP server's session manager runs inside the tool app's lifespan.
        _server(tool_app, settings.bind_host, settings.tool_port, lifespan=True),
    ]
    servers.append(
        _server(
            create_dashboard_app(inst.db, settings, access_token=dashboard_token),
            dashboard_host(settings),
            settings.dashboard_port,
        )
    )
    if gateway is not None:
        servers.append(_server(gateway.app(), settings.bind_host, settings.gateway_port))
    await sweep_orphans(inst.db)  # before any claim: a dead predecessor's tasks are queued again at once
    registration = await register(
        inst.db,
        holder=holder_id(),
        schema_revision=inst.schema.current or "",
        isolation=isolation.mode,
        master_key=inst.master_key,
        api_url=f"http://{settings.bind_host}:{settings.api_port}",
        interval=settings.heartbeat_interval_seconds,
    )
    scheduler = Scheduler(
        settings,
        inst.db,
        holder=holder_id(),
        stop=stop,
        master_key=inst.master_key,
        launcher=Launcher(isolation, settings),
        gateway=gateway.routes if gateway is not None else None,
    )
    background: list[Coroutine[Any, Any, None]] = [
        run_reaper(
            inst.db,
            interval=settings.reaper_interval_seconds,
            stop=stop,
            backoff=RetryBackoff.from_settings(settings),
        ),
        scheduler.run(),
        run_housekeeping(settings, inst.db, stop=stop),
        run_sealer(inst.db, inst.master_key, stop, anchor=anchor_path(settings)),
        run_scheduled_backups(settings, inst.db, stop),
        supervise_embedded(inst.db, stop),
        run_heartbeat(
            inst.db, registration, inst.master_key, interval=settings.heartbeat_interval_seconds, stop=stop
        ),
        run_webhook_worker(inst.db, inst.master_key, stop),
    ]
    tasks: list[asyncio.Task[Any]] = [asyncio.create_task(s.serve()) for s in servers]
    tasks += [asyncio.create_task(c) for c in background]
    try:
        while not all(s.started for s in servers):
            for task in tasks:
                if task.done():
                    task.result()
                    raise ConfigError("a server stopped during start-up")
            await asyncio.sleep(0.01)
        log.info("orchestrator ready", extra={"action": "orchestrator_ready"})
        if on_ready is not None:
            on_ready()
        # The MCP SDK loads now that every port answers, not before (api.mcp_mount): a client that
        # comes sooner waits for it.
        tool_app.state.mcp.load()
        stopper: asyncio.Task[Any] = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        for part in done:
            if part is not stopper and not part.cancelled() and part.exception() is not None:
                log.error("a part of the orchestrator failed: %s", part.exception())
    finally:
        log.info("orchestrator stopping", extra={"action": "orchestrator_stopping"})
        stop.set()
        # Background parts first: the scheduler shuts every agent down and releases its lease (the
        # tool endpoint stays up meanwhile, for agents finishing their last call).
        results = await asyncio.gather(*tasks[len(servers) :], return_exceptions=True)
        for server in servers:
            server.should_exit = True
        results += await asyncio.gather(*tasks[: len(servers)], return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
                log.error("stopped with an error: %r", result)
        await deregister(inst.db, registration)
        if gateway is not None:
            await gateway.aclose()
        await inst.db.dispose()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    if registration.refused is not None:  # the master key was rotated away: `up` exits non-zero
        raise registration.refused
