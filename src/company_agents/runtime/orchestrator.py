"""``company-agents up``: the long-running process. One asyncio loop runs every part (DESIGN §1)."""

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

from company_agents.api.app import create_app
from company_agents.api.tools import create_tool_app
from company_agents.audit.anchor import anchor_path
from company_agents.db.database import ORCHESTRATOR_APP_NAME
from company_agents.errors import ConfigError
from company_agents.leases import RetryBackoff
from company_agents.orphans import sweep_orphans
from company_agents.runtime.backups import run_scheduled_backups
from company_agents.runtime.housekeeping import run_housekeeping
from company_agents.runtime.reaper import run_reaper
from company_agents.runtime.scheduler import Scheduler
from company_agents.runtime.sealer import run_sealer
from company_agents.runtime.supervisor import supervise_embedded
from company_agents.startup import Instance

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


def _server(app: FastAPI, host: str, port: int) -> _Server:
    return _Server(
        uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="off")
    )


async def serve(inst: Instance, *, on_ready: Callable[[], None] | None = None) -> None:
    """Run every part until SIGINT or SIGTERM, then stop them all cleanly."""
    settings = inst.settings
    inst.db.application_name = ORCHESTRATOR_APP_NAME
    check_port_free(settings.bind_host, settings.api_port)
    check_port_free(settings.bind_host, settings.tool_port, "COMPANY_AGENTS_TOOL_PORT")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    servers = [
        _server(create_app(inst.db), settings.bind_host, settings.api_port),
        _server(create_tool_app(inst.db, settings), settings.bind_host, settings.tool_port),
    ]
    await sweep_orphans(inst.db)  # before any claim: a dead predecessor's tasks are queued again at once
    scheduler = Scheduler(settings, inst.db, holder=holder_id(), stop=stop, master_key=inst.master_key)
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
        await inst.db.dispose()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
