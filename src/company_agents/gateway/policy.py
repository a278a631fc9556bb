"""Per-run rules the gateway applies before a call: the request-rate limit and the loop rule.

State is per run and in memory: a run's calls all come to the gateway of the orchestrator that
started it. The loop rule is the loop detector's first rule: the same request body ``repeats`` times
in a row ends the run as ``loop_detected`` (an agent re-sending one request is stuck, and each copy
is billed in full).
"""

from __future__ import annotations

import hashlib
import time
from collections import deque
from dataclasses import dataclass, field


@dataclass
class RunPolicy:
    rate_per_minute: int
    loop_repeats: int
    _calls: deque[float] = field(default_factory=deque)
    _last_body: bytes = b""
    _same: int = 0

    def rate_exceeded(self, now: float | None = None) -> bool:
        """Counts this call; True when it is over the run's calls per minute (it is then not forwarded)."""
        now = time.monotonic() if now is None else now
        while self._calls and now - self._calls[0] >= 60:
            self._calls.popleft()
        if len(self._calls) >= self.rate_per_minute:
            return True
        self._calls.append(now)
        return False

    def loops(self, body: bytes) -> bool:
        """True when ``body`` makes ``loop_repeats`` identical bodies in a row (0: the rule is off)."""
        digest = hashlib.sha256(body).digest()
        self._same = self._same + 1 if digest == self._last_body else 1
        self._last_body = digest
        return self.loop_repeats > 0 and self._same >= self.loop_repeats


class Policies:
    def __init__(self, rate_per_minute: int, loop_repeats: int) -> None:
        self._rate, self._loop = rate_per_minute, loop_repeats
        self._runs: dict[object, RunPolicy] = {}

    def of(self, run_id: object) -> RunPolicy:
        policy = self._runs.get(run_id)
        if policy is None:
            policy = self._runs[run_id] = RunPolicy(self._rate, self._loop)
        return policy

    def forget(self, run_id: object) -> None:
        self._runs.pop(run_id, None)
