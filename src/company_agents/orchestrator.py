"""``company-agents up``: the long-running process. One asyncio loop runs every part (DESIGN §1)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Callable, Generator

import uvicorn

from company_agents.api.app import create_app
from company_agents.db.database import ORCHESTRATOR_APP_NAME
from company_agents.errors import ConfigError
from company_agents.startup import Instance

log = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the orchestrator, which stops every part."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def check_port_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise ConfigError(
                f"port {host}:{port} is in use ({exc.strerror}); stop the other process or set "
                "COMPANY_AGENTS_API_PORT"
            ) from None


async def serve(inst: Instance, *, on_ready: Callable[[], None] | None = None) -> None:
    """Run until SIGINT or SIGTERM, then stop every part cleanly."""
    settings = inst.settings
    inst.db.application_name = ORCHESTRATOR_APP_NAME
    check_port_free(settings.bind_host, settings.api_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    api = _Server(
        uvicorn.Config(
            create_app(inst.db),
            host=settings.bind_host,
            port=settings.api_port,
            log_level="warning",
            access_log=False,
            lifespan="off",
        )
    )
    api_task = asyncio.create_task(api.serve(), name="api")
    try:
        while not api.started:
            if api_task.done():
                api_task.result()
                raise ConfigError(f"the API server on port {settings.api_port} did not start")
            await asyncio.sleep(0.01)
        log.info("orchestrator ready", extra={"action": "orchestrator_ready"})
        if on_ready is not None:
            on_ready()
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait({api_task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
    finally:
        log.info("orchestrator stopping", extra={"action": "orchestrator_stopping"})
        api.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await api_task
        await inst.db.dispose()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
