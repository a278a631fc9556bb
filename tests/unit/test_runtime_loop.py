from __future__ import annotations

import asyncio

import pytest

from company_agents.runtime.loop import run_loop


async def test_a_failing_step_is_logged_and_retried_and_stop_ends_the_loop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stop = asyncio.Event()
    calls = 0

    async def step() -> None:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise RuntimeError("database went away")
        stop.set()

    await asyncio.wait_for(run_loop("probe", step, interval=0.01, stop=stop), timeout=5)
    assert calls == 3
    failures = [r for r in caplog.records if getattr(r, "action", None) == "probe_error"]
    assert len(failures) == 2


async def test_wake_cuts_the_wait_short_and_a_step_may_choose_its_delay() -> None:
    stop, wake = asyncio.Event(), asyncio.Event()
    stamps: list[float] = []
    loop = asyncio.get_running_loop()

    async def step() -> float | None:
        stamps.append(loop.time())
        if len(stamps) == 3:
            stop.set()
        return 0.0 if len(stamps) == 1 else None  # second step at once, then the (long) interval

    runner = asyncio.create_task(run_loop("probe", step, interval=60, stop=stop, wake=wake))
    while len(stamps) < 2:
        await asyncio.sleep(0.01)
    wake.set()  # without it the third step would come a minute later
    await asyncio.wait_for(runner, timeout=5)
    assert len(stamps) == 3
