"""The scheduler inside ``up``: claims runnable tasks for idle agents and hands each to its adapter.

Wake-ups come from LISTEN/NOTIFY on the tasks channel (one NOTIFY per enqueue transaction), with
polling behind it, so a lost notification or a pooler that drops them only costs the poll interval.
Several orchestrators on one database share the work safely: every claim is a SKIP LOCKED compare-and-
set inside ``ca_claim_tasks``. Database errors are logged and retried; the loop never exits on them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any
from uuid import UUID

import psycopg
from sqlalchemy import text

from company_agents import leases
from company_agents.adapters.config import AdapterConfig, load_adapters
from company_agents.adapters.env_policy import reserved_names
from company_agents.adapters.runner import AgentRun
from company_agents.budgets.stops import RunStops
from company_agents.db.database import Database, libpq_url
from company_agents.errors import ConfigError
from company_agents.isolation import Launcher
from company_agents.master_key import MasterKey
from company_agents.runtime.loop import run_loop, wait_for_stop
from company_agents.settings import Settings
from company_agents.tasks import TASKS_CHANNEL

if TYPE_CHECKING:
    from company_agents.gateway.routes import Routes

log = logging.getLogger(__name__)

# Agents that could take work now: active, in an active company, under capacity, with a runnable task
# they are allowed to take, and an adapter this orchestrator knows. Least-busy first. The agent and
# task rules are the SQL functions ca_claim_tasks() itself uses (db/sql/), so the two cannot drift.
CANDIDATES_SQL = text(
    """
    SELECT a.id, a.adapter,
           a.max_concurrent_tasks - (SELECT count(*) FROM leases l WHERE l.agent_id = a.id) AS room
    FROM agents a JOIN companies c ON c.id = a.company_id
    WHERE ca_agent_can_claim(a.status, c.status) AND a.adapter = ANY(:adapters)
      AND a.max_concurrent_tasks > (SELECT count(*) FROM leases l WHERE l.agent_id = a.id)
      AND EXISTS (SELECT 1 FROM tasks t WHERE ca_task_claimable(t, a.company_id, a.id, a.team_id))
    ORDER BY 3 DESC, random()
    LIMIT :limit
    """
)


class Scheduler:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        *,
        holder: str,
        stop: asyncio.Event,
        master_key: MasterKey,
        launcher: Launcher,
        gateway: Routes | None = None,
    ) -> None:
        self.settings = settings
        self.gateway = gateway  # the model gateway's runs (docs/gateway.md), shared with every run
        self.launcher = launcher  # every agent runs in the isolation mode chosen at start-up
        self.master_key = master_key
        self.db = db
        self.holder = holder
        self.stop = stop
        self.wake = asyncio.Event()
        self.running: dict[UUID, asyncio.Task[Any]] = {}
        self.adapters: dict[str, AdapterConfig] = {}
        # Shared by every run started here, so a budget breach stops the scope's other runs at once.
        self.stops = RunStops()

    def _reload_adapters(self) -> None:
        try:
            self.adapters = load_adapters(self.settings.config_path, reserved=reserved_names(self.settings))
        except ConfigError as exc:
            log.error("adapters not loaded: %s", exc.message, extra={"action": "adapter_config_error"})

    async def run(self) -> None:
        listener = asyncio.create_task(self._listen())

        async def step() -> None:
            self._reload_adapters()
            await self.fill()

        try:
            await run_loop(
                "scheduler",
                step,
                interval=self.settings.scheduler_poll_seconds,
                stop=self.stop,
                wake=self.wake,
            )
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
            await self.drain()

    async def drain(self) -> None:
        """Wait for every run to end (``stop`` makes each shut its agent down and release its lease)."""
        if self.running:
            await asyncio.gather(*self.running.values(), return_exceptions=True)

    async def fill(self) -> int:
        """Claim as much as capacity allows; returns how many runs were started."""
        started = 0
        while not self.stop.is_set():
            free = self.settings.max_concurrent_runs - len(self.running)
            if free <= 0 or not self.adapters:
                return started
            async with self.db.autocommit() as conn:
                agents = (
                    (await conn.execute(CANDIDATES_SQL, {"adapters": list(self.adapters), "limit": free}))
                    .mappings()
                    .all()
                )
            if not agents:
                return started
            claimed_any = False
            for agent in agents:
                free = self.settings.max_concurrent_runs - len(self.running)
                if free <= 0:
                    break
                async with self.db.autocommit() as conn:
                    claims = await leases.claim(
                        conn,
                        agent_id=agent["id"],
                        holder=self.holder,
                        lease_seconds=self.settings.lease_seconds,
                        limit=min(free, int(agent["room"])),
                        reserve_usd=self.settings.budget_reservation_usd,
                    )
                for claim in claims:
                    self._start(claim, self.adapters[agent["adapter"]])
                    started += 1
                    claimed_any = True
            if not claimed_any:
                return started
        return started

    def _start(self, claim: leases.Claim, adapter: AdapterConfig) -> None:
        log.info(
            "starting run %s of task %s",
            claim.run_id,
            claim.task_id,
            extra={"action": "run_started", "task_id": str(claim.task_id), "run_id": str(claim.run_id)},
        )
        run = AgentRun(
            self.settings,
            self.db,
            claim,
            adapter,
            self.stop,
            self.master_key,
            stops=self.stops,
            launcher=self.launcher,
            gateway=self.gateway,
        )
        task = asyncio.create_task(run.execute(), name=f"run:{claim.run_id}")
        self.running[claim.run_id] = task

        def done(_: asyncio.Task[Any]) -> None:
            self.running.pop(claim.run_id, None)
            self.wake.set()  # capacity freed: look for more work

        task.add_done_callback(done)

    async def _listen(self) -> None:
        """LISTEN for new tasks; reconnect with backoff when the connection drops."""
        delay = 0.5
        while not self.stop.is_set():
            try:
                async with await psycopg.AsyncConnection.connect(
                    libpq_url(self.db.url),
                    autocommit=True,
                    application_name=self.db.application_name,
                    **self.db.connect_kwargs,
                ) as conn:
                    await conn.execute(f"LISTEN {TASKS_CHANNEL}")
                    delay = 0.5
                    self.wake.set()  # catch up on anything queued while we were not listening
                    async for _ in conn.notifies():
                        self.wake.set()
            except (psycopg.Error, OSError) as exc:
                log.warning(
                    "task listener lost its connection (%s); polling meanwhile",
                    exc,
                    extra={"action": "listener_reconnect"},
                )
            await wait_for_stop(self.stop, delay)
            delay = min(delay * 2, 10)
