"""The runs this orchestrator's gateway serves, registered by the runner when it starts an agent.

A run is found by its lease token (the agent's gateway credential, docs/gateway.md §Credentials); the
route holds what the agent must not: the provider keys. The database still decides on every request
whether the run holds its lease (``auth``): the route only says where to send the call and how to
meter it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from company_agents.costs.ledger import NewCost
from company_agents.leases import RunIdentity
from company_agents.tokens import hash_token

# (cost) → records it for the run, priced and checked against the budgets (AgentRun._record_cost).
RecordCost = Callable[[NewCost], Awaitable[None]]
# (level, reason) → stops the run ("hard": budget, "loop_detected").
StopRun = Callable[[str, str], None]


@dataclass
class RunRoute:
    ident: RunIdentity
    fencing_token: int
    keys: dict[str, str]  # wire format name → the provider key; absent: the agent's own login passes
    upstreams: dict[str, str]  # wire format name → the provider base URL
    record: RecordCost
    stop: StopRun
    allowed_models: frozenset[str] | None = None  # None: any model
    pending: set[asyncio.Task[Any]] = field(default_factory=set)
    # One database step of the run at a time: the budget read locks the lease row and a cost's check
    # upgrades its share lock on it, so two of one run's steps at once could deadlock each other.
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def billing(self, fmt: str) -> str:
        return "api" if fmt in self.keys else "subscription"

    async def drain(self) -> None:
        """Wait for the meters of the requests that already answered (before the run's last write)."""
        while self.pending:
            await asyncio.gather(*list(self.pending), return_exceptions=True)


class Routes:
    def __init__(self) -> None:
        self._by_hash: dict[str, RunRoute] = {}

    def add(self, lease_token: str, route: RunRoute) -> None:
        self._by_hash[hash_token(lease_token)] = route

    def remove(self, lease_token: str) -> None:
        self._by_hash.pop(hash_token(lease_token), None)

    def find(self, lease_token: str) -> RunRoute | None:
        return self._by_hash.get(hash_token(lease_token))
