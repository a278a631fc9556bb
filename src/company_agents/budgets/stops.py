"""How a breach found by one run's cost reaches the other runs of this orchestrator at once.

A hard or catastrophic breach stops every run in the scope (docs/budgets.md). The run whose cost
crossed the line learns it from its own check; the others in this process are told through this
board, which the scheduler shares with every run it starts. Runs held by another orchestrator learn
it at their own next cost (the scope stays over its cap) — see docs/budgets.md, "Limits".
"""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID

# (level, reason) → None; level is "hard" or "catastrophic".
StopCallback = Callable[[str, str], None]


class RunStops:
    def __init__(self) -> None:
        self._runs: dict[UUID, StopCallback] = {}

    def register(self, run_id: UUID, callback: StopCallback) -> None:
        self._runs[run_id] = callback

    def unregister(self, run_id: UUID) -> None:
        self._runs.pop(run_id, None)

    def signal(self, runs: dict[UUID, str], reason: str) -> int:
        """Tell each listed run of this process to stop at ``level``; returns how many were told."""
        told = 0
        for run_id, level in runs.items():
            callback = self._runs.get(run_id)
            if callback is not None:
                callback(level, reason)
                told += 1
        return told
