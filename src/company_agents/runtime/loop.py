"""The one background-loop helper: run a step, log what it raises, wait, until told to stop.

Every loop in ``up`` must survive the database going away (a restart, a failover, a dropped
connection): a step that raises is logged and tried again at the next interval, never ends the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

# What a step returns: seconds until the next step, or None for the loop's interval.
Step = Callable[[], Awaitable[float | None]]


async def wait_for_stop(stop: asyncio.Event, timeout: float, wake: asyncio.Event | None = None) -> None:
    """Sleep ``timeout`` seconds, or less when ``stop`` (or ``wake``) is set meanwhile."""
    if timeout <= 0 or stop.is_set():
        return
    waiters = [asyncio.ensure_future(stop.wait())]
    if wake is not None:
        waiters.append(asyncio.ensure_future(wake.wait()))
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        for waiter in waiters:
            with contextlib.suppress(asyncio.CancelledError):
                await waiter


async def run_loop(
    name: str,
    step: Step,
    *,
    interval: float,
    stop: asyncio.Event,
    wake: asyncio.Event | None = None,
) -> None:
    """Run ``step`` every ``interval`` seconds (or as it asks) until ``stop`` is set.

    ``wake``, when given, cuts a wait short (the scheduler's LISTEN/NOTIFY); it is cleared before each
    step, so a wake-up that arrives while the step runs is not lost.
    """
    while not stop.is_set():
        if wake is not None:
            wake.clear()
        try:
            delay = await step()
        except Exception:
            log.exception("%s failed; retrying", name, extra={"action": f"{name}_error"})
            delay = None
        await wait_for_stop(stop, interval if delay is None else delay, wake)
