"""The dashboard read models' TTL cache: fresh for ttl seconds, bounded, one computation per miss."""

from __future__ import annotations

import asyncio

import pytest

from company_agents.api.read_cache import TtlCache


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_a_value_is_fresh_for_ttl_seconds_then_recomputed() -> None:
    clock = Clock()
    cache = TtlCache(ttl=2.0, clock=clock)
    calls = 0

    async def compute() -> int:
        nonlocal calls
        calls += 1
        return calls

    assert await cache.get_or_compute("k", compute) == 1
    clock.now += 1.9
    assert await cache.get_or_compute("k", compute) == 1
    clock.now += 0.1
    assert await cache.get_or_compute("k", compute) == 2
    assert await cache.get_or_compute("other", compute) == 3


async def test_concurrent_misses_share_one_computation() -> None:
    cache = TtlCache(ttl=5.0)
    calls = 0
    gate = asyncio.Event()

    async def compute() -> str:
        nonlocal calls
        calls += 1
        await gate.wait()
        return "v"

    waiting = [asyncio.create_task(cache.get_or_compute("k", compute)) for _ in range(10)]
    await asyncio.sleep(0)
    gate.set()
    assert await asyncio.gather(*waiting) == ["v"] * 10
    assert calls == 1


async def test_a_failed_computation_is_not_cached() -> None:
    cache = TtlCache(ttl=5.0)

    async def broken() -> str:
        raise RuntimeError("database down")

    async def fine() -> str:
        return "v"

    with pytest.raises(RuntimeError):
        await cache.get_or_compute("k", broken)
    assert await cache.get_or_compute("k", fine) == "v"


def test_the_oldest_entries_go_first_beyond_max_entries() -> None:
    cache = TtlCache(ttl=60.0, max_entries=2)
    cache.put("a", 1)
    cache.put("b", 2)
    cache.put("c", 3)
    assert cache.get("a") == (False, None)
    assert cache.get("b") == (True, 2) and cache.get("c") == (True, 3)
    with pytest.raises(ValueError):
        TtlCache(ttl=0)
