"""A small TTL cache for the dashboard read models: one per app (``app.state``), never a global.

The read models aggregate a whole company (counts over tasks, spend, health), so a dashboard polling
every second per open tab would repeat them for nothing: each is kept ``ttl`` seconds per company.
Concurrent misses of one key share one computation, so a burst of tabs costs one read, not many.
Only data is cached: the caller's token and its company scope are checked on every request, before
the cache is asked.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

from fastapi import Request

# Between the 1 and 5 seconds the product promises (docs/api.md#resources).
DEFAULT_TTL = 2.0
DEFAULT_MAX_ENTRIES = 512


class TtlCache:
    """Values by key, each fresh for ``ttl`` seconds; at most ``max_entries`` (the oldest go first)."""

    def __init__(
        self,
        *,
        ttl: float = DEFAULT_TTL,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl <= 0 or max_entries < 1:
            raise ValueError("ttl must be positive and max_entries at least 1")
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()
        self._locks: dict[Hashable, asyncio.Lock] = {}

    def get(self, key: Hashable) -> tuple[bool, Any]:
        """``(True, value)`` while ``key`` is fresh, else ``(False, None)``."""
        entry = self._entries.get(key)
        if entry is None:
            return False, None
        expires, value = entry
        if self._clock() >= expires:
            del self._entries[key]
            return False, None
        return True, value

    def put(self, key: Hashable, value: Any) -> None:
        self._entries[key] = (self._clock() + self.ttl, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    async def get_or_compute(self, key: Hashable, compute: Callable[[], Awaitable[Any]]) -> Any:
        """The fresh value of ``key``, computing it (once, however many callers wait) when stale."""
        hit, value = self.get(key)
        if hit:
            return value
        lock = self._locks.setdefault(key, asyncio.Lock())
        try:
            async with lock:
                hit, value = self.get(key)  # another caller may have filled it while this one waited
                if hit:
                    return value
                value = await compute()
                self.put(key, value)
                return value
        finally:
            if not lock.locked():
                self._locks.pop(key, None)


def cache_of(request: Request) -> TtlCache:
    """This app's read-model cache, made on first use."""
    cache: TtlCache | None = getattr(request.app.state, "read_cache", None)
    if cache is None:
        cache = request.app.state.read_cache = TtlCache()
    return cache
