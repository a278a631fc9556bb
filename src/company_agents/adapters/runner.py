"""The base every adapter shares: run one claimed task as an agent process, from launch to outcome.

The agent runs in its own process group, in its workspace, with a clean environment plus the run's
variables, isolated in the mode ``up`` chose (``isolation``: a bubblewrap sandbox, under its own OS user
as root) and under its resource limits. Its output streams to the run log; the json-lines protocol turns
its stdout events into fenced writes. The lease is renewed at 60% of the window while the process lives.
On exit the outcome is mapped (complete / failed / crash / timeout / lease_expired / shutdown /
resource_limit), and every process of the run is ended with SIGTERM → grace → SIGKILL so nothing is left
behind (``isolation.processes``).

The database may go away in the middle of a run (a restart, a failover): every write made for the run
is retried through it (``run_writes``). Reading stdout never waits on the database: lines are logged as
they come and the events queue up for one writer, in order, so an agent's ``complete`` sent during an
outage is applied once the database is back.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from company_agents import audit, leases, orphans, pricing, runs
from company_agents.adapters.clis.base import CliEvent, StreamParser
from company_agents.adapters.config import AdapterConfig, render_command
from company_agents.adapters.env_policy import refuse_reserved
from company_agents.adapters.run_log import MIN_REDACTED, RunLog, is_delta, redact
from company_agents.adapters.run_writes import Applied, RunWrites, Work, ended, started
from company_agents.approvals import lifecycle as approval_lifecycle
from company_agents.budgets import check as budget_check
from company_agents.budgets.stops import RunStops
from company_agents.costs import ledger
from company_agents.costs.events import cost_from_event
from company_agents.costs.runtime import runtime_cost
from company_agents.db.database import Database
from company_agents.db.errors import first_line
from company_agents.db.retry import OUTAGE, retry_transient
from company_agents.errors import CompanyAgentsError, ConfigError, NotFound, StaleFencingToken
from company_agents.isolation import Launcher, RunProcesses, limit_hit, limits_for, unisolated
from company_agents.master_key import MasterKey
from company_agents.secrets_store import resolve_env, reveal
from company_agents.settings import Settings
from company_agents.workspaces import (
    init_workspace,
    load_context,
    mark_deleted,
    remove_workspace,
    run_log_path,
    write_context,
)

if TYPE_CHECKING:
    from company_agents.gateway.routes import Routes, RunRoute

log = logging.getLogger(__name__)

# The queue entry of an event an agent CLI's stream parser produced (adapters.clis).
CLI_EVENT = "_cli"
BASE_ENV_KEYS = ("PATH", "LANG", "LC_ALL", "TZ", "TMPDIR")
# The events that end an attempt: one that cannot be applied must still end it (as a crash).
ENDING_EVENTS = frozenset({"complete", "failed", "handoff"})
STDERR_TAIL = 20  # lines of the agent's stderr kept to tell a resource limit from a crash


@dataclass
class RunState:
    """What happened during one run, as the adapter saw it."""

    outcome: str | None = None  # complete | failed | handoff (from the agent) | approval
    lost_lease: bool = False
    timed_out: bool = False
    shutdown: bool = False
    exit_code: int | None = None
    checkpoints: int = 0
    notes: list[str] = field(default_factory=list)
    # Why an ending event from the agent could not be applied (a non-transient database error).
    unapplied: str | None = None
    # A budget ended the run (docs/budgets.md): "hard" (stop at the next step), "catastrophic" (killed
    # at once), "room" (past its envelope with no room left: stop, the task goes back to the queue) or
    # "loop" (too many tool calls), or "loop_detected" (the gateway saw one request repeated,
    # docs/gateway.md); with the reason given to the agent and the task.
    budget_stop: str | None = None
    budget_reason: str = ""
    tool_calls: int = 0
    # Agent CLIs (adapters.clis): why the run failed as the CLI's stream told it (an MCP server that did
    # not connect, a result with is_error), and the result's text.
    cli_failure: str | None = None
    cli_result_ok: bool | None = None
    cli_text: str = ""
    # A remote agent (the http adapter): why its session could not go on, and the exit reason.
    remote_failure: tuple[str, str] | None = None
    stderr_tail: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=STDERR_TAIL))


def clean_env(extra: dict[str, str], run_vars: dict[str, str], workspace: Path) -> dict[str, str]:
    env = {k: os.environ[k] for k in BASE_ENV_KEYS if k in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env["HOME"] = str(workspace)
    env.update(extra)
    env.update(run_vars)
    # The config and the agent's record were checked already; this is the last guard (env_policy).
    if refused := refuse_reserved(set(env)):
        raise ConfigError(f"refusing to start the agent with {', '.join(refused)} in its environment")
    return env


class AgentRun:
    """One run of one claimed task through a process adapter."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        claim: leases.Claim,
        adapter: AdapterConfig,
        stop: asyncio.Event,
        master_key: MasterKey,
        stops: RunStops | None = None,
        launcher: Launcher | None = None,
        gateway: Routes | None = None,
    ) -> None:
        self.settings = settings
        # The model gateway's runs (docs/gateway.md); None: `up` serves no gateway (the runner's tests).
        self.gateway = gateway
        self.route: RunRoute | None = None
        # `up` passes the launcher of the mode it chose; only the runner's own tests go without one.
        self.launcher = launcher or Launcher(unisolated(), settings)
        self.master_key = master_key
        self.db = db
        self.claim = claim
        self.ident = claim.identity()
        self.adapter = adapter
        self.stop = stop
        self.state = RunState()
        self.timeout = adapter.timeout_seconds or settings.run_timeout_seconds
        self.loop_budget = adapter.loop_budget or settings.loop_budget_tool_calls
        self.stops = stops if stops is not None else RunStops()
        self.budget_stopped = asyncio.Event()
        self.log = RunLog(run_log_path(settings, claim.run_id))
        self.workspace: Path | None = None
        self.keep = False
        self.process_started: float | None = None  # monotonic; the runtime cost counts from here
        self.runtime_recorded = False
        self.stream: StreamParser | None = None  # an agent CLI's stream parser (adapters.clis)
        # An agent CLI's session: the one the previous run left to resume (id, why), the one this run
        # recorded, and the plan's files not to keep with the task's CLI state (they hold the bearer).
        self.resume_source: tuple[str, str] | None = None
        self.cli_session: str | None = None
        self.cli_files: list[str] = []
        # A remote agent's bearer (the http adapter), read from the secret store at the session's start;
        # or why it could not be.
        self.remote_bearer: str | None = None
        self.remote_unready: str | None = None
        self.writes = RunWrites(
            db,
            claim,
            window=settings.lease_seconds,
            note=lambda line: self.log.write("orchestrator", line),
            on_lost=self._lost_lease,
        )

    def _lost_lease(self) -> None:
        self.state.lost_lease = True

    def budget_stop(self, level: str, reason: str) -> None:
        """Stop this run for a budget: ``catastrophic`` kills it at once, ``hard`` and ``loop`` ask it
        to stop (``shutdown``, then SIGTERM, SIGKILL after the grace). The worst level wins."""
        order = ("loop", "loop_detected", "room", "hard", "catastrophic")
        current = self.state.budget_stop
        if current is not None and order.index(current) >= order.index(level):
            return
        self.state.budget_stop, self.state.budget_reason = level, reason
        self.log.write("orchestrator", f"budget: {reason} ({level})")
        self.budget_stopped.set()

    # -- fenced writes -------------------------------------------------------------------------

    async def _write(
        self, what: str, work: Work, applied: Applied | None = None, *, transaction: bool = False
    ) -> Any:
        """One fenced write, retried through outages; ``None`` when the lease is lost (``run_writes``)."""
        return await self.writes.write(what, work, applied, transaction=transaction)

    # -- the run -------------------------------------------------------------------------------

    async def execute(self) -> RunState:
        self.stops.register(self.claim.run_id, self.budget_stop)
        try:
            await self._execute()
        except Exception as exc:  # an orchestrator-side failure must still end the attempt
            log.exception("run %s failed in the orchestrator", self.claim.run_id)
            self.log.write("orchestrator", f"orchestrator error: {type(exc).__name__}: {exc}")
            if self.state.outcome is None and not self.state.lost_lease:
                try:
                    await self._end_attempt(f"orchestrator error: {type(exc).__name__}", "crash")
                except Exception as end_exc:  # the lease expires and the reaper ends the attempt
                    self._report_error("mark_failed", end_exc)
        finally:
            self.stops.unregister(self.claim.run_id)
            if self.gateway is not None and self.route is not None:
                self.gateway.remove(self.claim.lease_token)
            self.log.close()
        return self.state

    async def _execute(self) -> None:
        workspace = asyncio.create_task(init_workspace(self.settings, self.claim.run_id))

        async def read_context() -> tuple[Any, dict[str, str]]:
            async with self.db.engine.begin() as conn:
                ctx = await load_context(conn, self.claim)
                # Secrets named in the agent's record are decrypted here, at the moment of use, and
                # live only in the child's environment (never in logs, rows or this process's settings).
                secret_env = await resolve_env(
                    conn,
                    self.master_key,
                    self.claim.company_id,
                    dict(ctx.agent["adapter_config"].get("env") or {}),
                )
                if self.adapter.is_cli:
                    await self._cli_key(conn, secret_env)
                    self.resume_source = await runs.session_to_resume(
                        conn,
                        task_id=self.claim.task_id,
                        run_id=self.claim.run_id,
                        agent_id=self.claim.agent_id,
                        feedback=ctx.task["feedback"],
                    )
                if self.adapter.is_remote:
                    await self._remote_bearer(conn, secret_env)
                if self._through_gateway():
                    await self._gateway_keys(conn, secret_env)
            return ctx, secret_env

        ctx, secret_env = await retry_transient(
            read_context, what="load_context", backoff=OUTAGE, deadline=self.settings.lease_seconds
        )
        self.keep = bool(ctx.task["keep_workspace"])
        self.workspace = await workspace
        write_context(self.settings, self.workspace, ctx)
        if self.adapter.is_remote:
            await self._run_remote(ctx, self.workspace)
            return
        run_vars = {
            "CA_TASK_ID": str(self.claim.task_id),
            "CA_RUN_ID": str(self.claim.run_id),
            "CA_LEASE_TOKEN": self.claim.lease_token,
            "CA_FENCING_TOKEN": str(self.claim.fencing_token),
            "MCP_SERVER_URL": self.settings.tool_url,
            "CA_MCP_URL": self.settings.mcp_url,
            "CA_WORKSPACE": str(self.workspace),
        }
        if self.route is not None:
            run_vars["CA_GATEWAY_URL"] = self.settings.gateway_url
        template_vars = {
            "workspacePath": str(self.workspace),
            "taskId": str(self.claim.task_id),
            "runId": str(self.claim.run_id),
            "leaseToken": self.claim.lease_token,
            "fencingToken": str(self.claim.fencing_token),
            "mcpUrl": self.settings.tool_url,
        }
        workspace_path = self.workspace
        if self.adapter.is_cli:
            argv, extra_env = await self._cli_plan(ctx, secret_env, workspace_path)
        else:
            argv, extra_env = render_command(self.adapter, template_vars)
        extra_env.update(secret_env)
        if self.route is not None:
            self._register_route(ctx)
        launch = await self.launcher.prepare(
            argv=argv,
            env=clean_env(extra_env, run_vars, workspace_path),
            workspace=workspace_path,
            agent_id=self.claim.agent_id,
            limits=limits_for(self.settings, self.adapter.limits),
        )
        await self._write(
            "start",
            lambda c: leases.start(
                c,
                self.ident,
                fencing_token=self.claim.fencing_token,
                workspace_path=str(workspace_path),
                isolation=self.launcher.mode,
            ),
            applied=started,
        )
        if self.state.lost_lease:
            return
        self.log.write(
            "orchestrator",
            f"starting {self.adapter.name}: {argv[0]} (attempt {self.claim.attempt}, "
            f"isolation {self.launcher.mode})",
        )
        try:
            proc = await asyncio.create_subprocess_exec(
                *launch.argv,
                cwd=self.workspace,
                env=launch.env,
                # An agent CLI reads a pipe as more prompt (and waits for its end): /dev/null.
                stdin=asyncio.subprocess.DEVNULL if self.stream is not None else asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,  # its own process group
                # It dies with us, even by kill -9 (Linux), and runs under the agent's resource limits.
                preexec_fn=launch.preexec,
                limit=1 << 20,
            )
        except OSError as exc:
            self.log.write("orchestrator", f"could not start {argv[0]}: {exc.strerror}")
            await self._end_attempt(f"could not start the agent: {exc.strerror}", "crash")
            return
        self.process_started = time.monotonic()
        # Who holds the run and which group to end, should this process die (orphans.sweep_orphans).
        # Best effort: the agent runs now and must be supervised whatever happens to this write.
        try:
            await self._write(
                "record_process",
                lambda c: orphans.record_agent_process(
                    c, self.ident, fencing_token=self.claim.fencing_token, pgid=proc.pid
                ),
            )
        except Exception as exc:
            self.log.write("orchestrator", f"could not record the agent's process: {type(exc).__name__}")
        await self._supervise(proc)

    async def _supervise(self, proc: asyncio.subprocess.Process) -> None:
        processes = RunProcesses(
            proc.pid, namespaced=self.launcher.isolation.namespaced, run_id=str(self.claim.run_id)
        )
        assert proc.stdout is not None and proc.stderr is not None
        events: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        readers = [
            asyncio.create_task(self._read_stdout(proc, events)),
            asyncio.create_task(self._read_stream(proc.stderr, "stderr")),
            asyncio.create_task(self._apply_events(events)),
        ]
        renewer = asyncio.create_task(self._renew_loop())
        waiter = asyncio.create_task(proc.wait())
        try:
            await self._wait_for_end(waiter)
            if not waiter.done() and self.state.budget_stop == "catastrophic":
                # No grace: the scope is past 120% of its cap (or the company past its cap).
                await asyncio.to_thread(processes.kill_all, alive=True)
                await waiter
            if not waiter.done():
                await self._terminate(proc, processes, waiter)
            self.state.exit_code = proc.returncode
            # Anything the agent left behind (grandchildren, in sessions of their own) goes too.
            await asyncio.to_thread(processes.kill_all, alive=False)
            if self.workspace is not None:
                await asyncio.to_thread(self.launcher.reclaim, self.workspace)
            await asyncio.gather(*readers, return_exceptions=True)
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
        self.log.write("orchestrator", f"agent exited with code {proc.returncode}")
        await self._finish()

    async def _terminate(
        self, proc: asyncio.subprocess.Process, processes: RunProcesses, waiter: asyncio.Task[int]
    ) -> None:
        grace = self.settings.shutdown_grace_seconds
        if proc.stdin is not None and not proc.stdin.is_closing():
            with contextlib.suppress(OSError, RuntimeError):
                reason = self._stop_reason()
                proc.stdin.write(
                    (
                        json.dumps({"type": "shutdown", "reason": reason, "graceSeconds": grace}) + "\n"
                    ).encode()
                )
                await asyncio.wait_for(proc.stdin.drain(), timeout=1)
        processes.signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), timeout=grace)
        except TimeoutError:
            self.log.write("orchestrator", f"still running {grace:.0f}s after SIGTERM: SIGKILL")
            await asyncio.to_thread(processes.kill_all, alive=True)
            await waiter

    def _stop_reason(self) -> str:
        """Why the orchestrator is stopping the agent, as the ``shutdown`` message says it."""
        if self.state.timed_out:
            return "timeout"
        if self.state.lost_lease:
            return "lease lost"
        if self.state.budget_stop in ("hard", "catastrophic", "room"):
            return "budget"
        if self.state.budget_stop == "loop":
            return "loop_budget"
        return "shutdown"

    async def _renew_loop(self) -> None:
        interval = self.settings.lease_seconds * 0.6
        while True:
            await asyncio.sleep(interval)
            try:
                result = await self._write(
                    "renew_lease",
                    lambda c: leases.renew(
                        c,
                        self.ident,
                        fencing_token=self.claim.fencing_token,
                        lease_seconds=self.settings.lease_seconds,
                    ),
                )
            except Exception as exc:  # not transient, yet the next renewal may succeed: keep renewing
                self._report_error("renew_lease", exc)
                continue
            if result is None:
                return

    async def _read_stream(self, stream: asyncio.StreamReader, name: str) -> None:
        async for raw in stream:
            line = raw.decode(errors="replace")
            self.log.write(name, line)
            self.state.stderr_tail.append(line)
            if self.stream is not None and (failure := self.stream.stderr(line)) is not None:
                self.log.write("orchestrator", failure)
                if self.state.cli_failure is None:
                    self.state.cli_failure = failure

    async def _read_stdout(
        self, proc: asyncio.subprocess.Process, events: asyncio.Queue[dict[str, Any] | None]
    ) -> None:
        """Log every line at once and queue the events; never waits on the database."""
        assert proc.stdout is not None
        try:
            async for raw in proc.stdout:
                line = raw.decode(errors="replace").strip()
                if not line:
                    continue
                try:
                    event = json.loads(line)
                except json.JSONDecodeError:
                    self.log.write("stdout", line)
                    continue
                if self.stream is None or not is_delta(event):
                    # An agent CLI's text deltas are not logged: its full messages follow them.
                    self.log.write("stdout", line)
                if not isinstance(event, dict) or not isinstance(event.get("type"), str):
                    continue
                if self.stream is None:
                    events.put_nowait(event)
                    continue
                try:
                    parsed = self.stream.feed(event)
                except Exception as exc:  # one odd line must not stop the pipe from being drained
                    self._report_error(f"{self.adapter.type} stream", exc)
                    continue
                for cli_event in parsed:
                    events.put_nowait({"type": CLI_EVENT, "event": cli_event})
        finally:
            if self.stream is not None:
                for cli_event in self.stream.end():
                    events.put_nowait({"type": CLI_EVENT, "event": cli_event})
            events.put_nowait(None)

    async def _apply_events(self, events: asyncio.Queue[dict[str, Any] | None]) -> None:
        """Apply the agent's events in order; one that fails is reported, and the next still runs."""
        while (event := await events.get()) is not None:
            kind = str(event["type"])
            try:
                await self._handle(event)
            except CompanyAgentsError as exc:
                self.log.write("orchestrator", f"event {kind} refused: {exc.message}")
            except Exception as exc:
                self._report_error(f"event {kind}", exc)
                if kind in ENDING_EVENTS and self.state.outcome is None:
                    self.state.unapplied = f"the agent's {kind} could not be applied: {first_line(exc)}"

    def _report_error(self, what: str, exc: Exception) -> None:
        """An unexpected error, in the run log and the orchestrator log (with its traceback)."""
        self.log.write("orchestrator", f"{what} failed: {type(exc).__name__}: {first_line(exc)}")
        log.error(
            "run %s: %s failed",
            self.claim.run_id,
            what,
            exc_info=exc,
            extra={"action": "run_write_error", "run_id": str(self.claim.run_id)},
        )

    async def _handle(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        fence = self.claim.fencing_token
        if kind == CLI_EVENT:
            await self._handle_cli(event["event"])
            return
        if self.state.outcome is not None:
            self.log.write("orchestrator", f"ignoring {kind}: the run already reported {self.state.outcome}")
            return
        if kind == "progress":
            checkpoint = {k: v for k, v in event.items() if k != "type"}
            cid = await self._write(
                "report_progress",
                lambda c: leases.report_progress(c, self.ident, fencing_token=fence, checkpoint=checkpoint),
            )
            if cid is not None and self.workspace is not None:
                self.state.checkpoints += 1
                path = self.workspace / ".run" / "checkpoints" / f"{self.state.checkpoints:04d}.json"
                path.write_text(json.dumps(checkpoint, indent=2) + "\n")
        elif kind == "cost":
            cost = cost_from_event(event)  # a malformed event is refused here, before any write
            await self._record_cost(cost)
        elif kind == "tool_call":
            self._count_tool_call(event)
        elif kind == "complete":
            await self._record_runtime()
            row = await self._write(
                "mark_complete",
                lambda c: leases.complete(
                    c,
                    self.ident,
                    fencing_token=fence,
                    output=event.get("output"),
                    reasoning=str(event.get("reasoning", "")),
                ),
                ended("succeeded", "complete"),
            )
            if row is not None:
                self.state.outcome = "complete"
        elif kind == "failed":
            await self._record_runtime()
            row = await self._end_attempt(str(event.get("reason") or "the agent gave up"), "failed")
            if row is not None:
                self.state.outcome = "failed"
        elif kind == "handoff":
            await self._record_runtime()
            row = await self._write(
                "request_handoff",
                lambda c: leases.handoff(
                    c, self.ident, fencing_token=fence, reason=str(event.get("reason") or "")
                ),
                ended("handed_off", "handoff"),
            )
            if row is not None:
                self.state.outcome = "handoff"
        else:
            self.log.write("orchestrator", f"unknown event type {kind!r} ignored")

    # -- costs ---------------------------------------------------------------------------------

    async def _record_cost(
        self, cost: ledger.NewCost, *, what: str = "cost", after_end: bool = False
    ) -> None:
        """Price the reported usage (override, else the book, else unpriced), write the entry and its
        counters, and check the budgets, in one transaction (docs/budgets.md): the override read, the
        entry and the check see the same state. ``after_end``: usage that may arrive after the run ended
        (an agent CLI's, once it called mark_complete over MCP) is still recorded, unchecked."""
        fence = self.claim.fencing_token

        async def work(c: Any) -> budget_check.Verdict:
            priced = await pricing.price_cost(c, self.claim.company_id, cost)
            if after_end:
                try:
                    async with c.begin_nested():
                        recorded = await ledger.record(c, self.ident, fencing_token=fence, cost=priced)
                except StaleFencingToken:
                    await ledger.record_after_end(c, self.ident, fencing_token=fence, cost=priced)
                    return budget_check.Verdict()
            else:
                recorded = await ledger.record(c, self.ident, fencing_token=fence, cost=priced)
            return await budget_check.after_cost(
                c,
                self.ident,
                fencing_token=fence,
                recorded=recorded,
                reservation_usd=self.settings.budget_reservation_usd,
            )

        verdict = await self._write(what, work, transaction=True)
        if verdict is None:
            return
        if verdict.out_of_room and not verdict.stops:
            self.budget_stop("room", "this run spent its reservation and its budgets have no room left")
        if verdict.level is None:
            return
        if not verdict.stops:
            if verdict.new_breaches:
                self.log.write("orchestrator", f"budget: the {verdict.scope} passed 80% of its cap")
            return
        reason = f"the {verdict.scope} budget is {'exhausted' if verdict.level == 'hard' else 'far overrun'}"
        self.budget_stop(str(verdict.level), reason)
        # Everyone else in the scope, in this process, stops too (at once for a catastrophic breach).
        self.stops.signal({r: lvl for r, lvl in verdict.runs.items() if r != self.claim.run_id}, reason)

    def _count_tool_call(self, event: dict[str, Any]) -> None:
        """The loop budget: the run ends (``loop_budget``) once it reports more tool calls than allowed."""
        self.state.tool_calls += 1
        if self.state.tool_calls > self.loop_budget:
            name = str(event.get("name") or "?")[:100]
            self.budget_stop(
                "loop", f"loop budget: more than {self.loop_budget} tool calls in one run (last: {name})"
            )

    async def _record_runtime(self) -> None:
        """The agent process's seconds at the adapter's rate, once, before the run's final transition
        (after it the lease is gone and nothing more can be written). Nothing at the default rate 0."""
        if self.runtime_recorded or self.process_started is None or self.state.lost_lease:
            return
        self.runtime_recorded = True
        cost = runtime_cost(self.adapter, time.monotonic() - self.process_started)
        if cost is not None:
            await self._record_cost(cost, what="runtime_cost")

    async def _end_attempt(self, reason: str, exit_reason: str) -> Any:
        reason = redact(reason, self.log.secrets)
        return await self._write(
            "mark_failed",
            lambda c: leases.fail(
                c,
                self.ident,
                fencing_token=self.claim.fencing_token,
                reason=reason,
                exit_reason=exit_reason,
                exit_code=self.state.exit_code,
                backoff=leases.RetryBackoff.from_settings(self.settings),
            ),
            ended("failed", exit_reason),
        )

    async def _park_for_approval(self) -> bool:
        """An agent that asked for an approval in this run and then exited: the task waits ``blocked``
        for the answer (or follows the answer already given) instead of counting as a failed attempt."""
        row = await self._write(
            "park_for_approval",
            lambda c: approval_lifecycle.park_run(
                c, self.ident, fencing_token=self.claim.fencing_token, exit_code=self.state.exit_code
            ),
            ended("handed_off", "approval"),
        )
        if row is None:
            return False
        self.state.outcome = "approval"
        status = row.get("status", "?") if isinstance(row, dict) else "?"
        self.log.write("orchestrator", f"the run ended waiting on an approval: the task is {status}")
        return True

    async def _finish(self) -> None:
        state = self.state
        if self.route is not None:
            await self.route.drain()  # every answered model call is in the ledger before the run ends
        # Before the run's last transition: parking it for an approval already answered re-queues the
        # task at once, and its next run resumes from this state.
        await self._keep_cli_state()
        if state.outcome is None and (self.stream is not None or self.adapter.is_remote):
            await self._outcome_from_tools()
        if state.outcome is None and not state.lost_lease:
            await self._record_runtime()
            if state.budget_stop in ("hard", "catastrophic"):
                await self._write(
                    "budget_stop",
                    lambda c: leases.block_for_budget(
                        c, self.ident, fencing_token=self.claim.fencing_token, reason=state.budget_reason
                    ),
                    ended("cancelled", "budget"),
                )
            elif state.budget_stop == "room":
                await self._write(
                    "release",
                    lambda c: leases.release(
                        c,
                        self.ident,
                        fencing_token=self.claim.fencing_token,
                        reason=state.budget_reason,
                        exit_reason="budget",
                    ),
                    ended("cancelled", "budget"),
                )
            elif state.budget_stop == "loop":
                await self._end_attempt(state.budget_reason, "loop_budget")
            elif state.budget_stop == "loop_detected":
                await self._end_attempt(state.budget_reason, "loop_detected")
            elif state.shutdown:
                await self._write(
                    "release",
                    lambda c: leases.release(
                        c, self.ident, fencing_token=self.claim.fencing_token, reason="orchestrator shut down"
                    ),
                    ended("cancelled", "shutdown"),
                )
            elif state.unapplied is not None:
                await self._end_attempt(state.unapplied, "crash")
            elif state.cli_failure is not None:
                await self._end_attempt(state.cli_failure, "failed")
            elif state.remote_failure is not None:
                await self._end_attempt(*state.remote_failure)
            elif state.timed_out:
                await self._end_attempt(f"timed out after {self.timeout:.0f}s", "timeout")
            elif state.exit_code == 0 and await self._park_for_approval():
                pass
            elif (limit := limit_hit(state.exit_code, list(state.stderr_tail))) is not None:
                await self._end_attempt(
                    f"the agent exceeded its {limit} limit (exit code {state.exit_code})", "resource_limit"
                )
            elif state.exit_code == 0 and state.cli_result_ok is not False:
                await self._end_attempt(self._no_outcome_reason(), "failed")
            else:
                code = state.exit_code
                why = (
                    f"killed by signal {-code}"
                    if code is not None and code < 0
                    else f"exited with code {code}"
                )
                if self.stream is not None:
                    await self._end_attempt(self._cli_failed_reason(why), "failed")
                else:
                    await self._end_attempt(f"the agent crashed ({why})", "crash")
        if state.outcome == "complete" and self.workspace is not None and not self.keep:
            remove_workspace(self.workspace)
            try:
                await self.writes.retry("mark_deleted", lambda c: mark_deleted(c, self.claim.run_id))
            except Exception as exc:  # bookkeeping only: the run's outcome is already recorded
                self._report_error("mark_deleted", exc)

    # -- the model gateway (docs/gateway.md) -----------------------------------------------------

    def _through_gateway(self) -> bool:
        return self.gateway is not None and self.settings.gateway == "on" and self.adapter.gateway

    async def _gateway_keys(self, conn: Any, secret_env: dict[str, str]) -> None:
        from company_agents.gateway.runs import build_route

        self.route = await build_route(
            conn,
            self.master_key,
            self.adapter,
            self.ident,
            self.claim.fencing_token,
            secret_env,
            record=self._record_gateway_cost,
            stop=self.budget_stop,
        )

    def _register_route(self, ctx: Any) -> None:
        from company_agents.gateway.runs import allowed_models

        assert self.route is not None and self.gateway is not None
        self.route.allowed_models = allowed_models(self.adapter, ctx.agent)
        self.gateway.add(self.claim.lease_token, self.route)
        # The real keys never reach the agent's log either (a provider's error may quote one).
        secrets = {*self.log.secrets, *(k for k in self.route.keys.values() if len(k) >= MIN_REDACTED)}
        self.log.secrets = sorted(secrets, key=len, reverse=True)

    async def _record_gateway_cost(self, cost: ledger.NewCost) -> None:
        # A call answered while the lease held may be metered just after the agent ended its run over
        # MCP (it acts on a tool call before the stream's last event): recorded, as a CLI's late usage.
        await self._record_cost(cost, after_end=True)

    # -- agent CLIs (adapters.clis) ----------------------------------------------------------------

    async def _cli_key(self, conn: Any, secret_env: dict[str, str]) -> None:
        """The provider key: the agent's secret environment names it, else the company secret of the
        variable's own name (``ANTHROPIC_API_KEY``…); neither, and the CLI uses its own login."""
        from company_agents.adapters.clis.plan import key_env

        var = key_env(self.adapter)
        if var in secret_env:
            return
        try:
            secret_env[var] = await reveal(conn, self.master_key, self.claim.company_id, var)
        except NotFound:
            return

    async def _cli_plan(
        self, ctx: Any, secret_env: dict[str, str], workspace: Path
    ) -> tuple[list[str], dict[str, str]]:
        from company_agents.adapters.clis import state as cli_state
        from company_agents.adapters.clis.plan import Resume, plan_run
        from company_agents.adapters.clis.prompt import resume_prompt

        resume = None
        if self.resume_source is not None:
            session_id, why = self.resume_source
            # The task's CLI HOME, as its previous run left it, holds the session to resume.
            try:
                await asyncio.to_thread(cli_state.restore, self.settings, self.claim.task_id, workspace)
            except OSError as exc:
                self.log.write("orchestrator", f"could not restore the CLI state: {exc}")
            resume = Resume(session_id, resume_prompt(why, ctx.task, ctx.approvals), why)

        base_url = None
        if self.route is not None:
            from company_agents.gateway.runs import hand_token

            base_url = hand_token(self.settings, self.adapter, self.claim.lease_token, secret_env)
        driver, model, plan = plan_run(
            self.adapter,
            workspace=workspace,
            task=ctx.task,
            agent=ctx.agent,
            mcp_url=self.settings.mcp_url,
            lease_token=self.claim.lease_token,
            secret_env=secret_env,
            base_url=base_url,
            resume=resume,
        )
        self.stream = driver.parser(model)
        self.cli_files = list(plan.files)
        if resume is not None:
            await self._note_resume(resume)
        # A provider's error may quote the key it refused (and the CLI prints it): never in our log or
        # in the attempt's reason.
        self.log.secrets = sorted(
            {v for v in [*secret_env.values(), self.claim.lease_token] if len(v) >= MIN_REDACTED},
            key=len,
            reverse=True,
        )
        self.log.write("orchestrator", f"{self.adapter.type}: model {model}")
        return plan.argv, plan.env

    async def _handle_cli(self, event: CliEvent) -> None:
        if event.kind == "tool_call":
            self._count_tool_call({"name": event.name})
        elif event.kind == "cost" and event.cost is not None:
            if self.route is None:  # through the gateway, its figures are the ledger's (never both)
                await self._record_cost(event.cost, after_end=True)
        elif event.kind == "mcp_failed":
            self.log.write("orchestrator", event.reason)
            if self.state.cli_failure is None:
                self.state.cli_failure = event.reason
        elif event.kind == "result":
            self.state.cli_result_ok = event.ok
            self.state.cli_text = event.text
            if not event.ok:
                self.log.write("orchestrator", event.reason)
                if self.state.cli_failure is None:
                    self.state.cli_failure = event.reason
        elif event.kind == "session" and event.session_id and event.session_id != self.cli_session:
            self.cli_session = event.session_id
            self.log.write("orchestrator", f"{self.adapter.type} session {event.session_id}")
            session_id = event.session_id
            try:
                await self.writes.retry(
                    "record_cli_session", lambda c: runs.record_cli_session(c, self.claim.run_id, session_id)
                )
            except Exception as exc:  # bookkeeping: the run goes on; its next run starts fresh
                self._report_error("record_cli_session", exc)

    async def _note_resume(self, resume: Any) -> None:
        """Say in the run log whether the session is resumed; a fallback to a fresh session (its files
        are gone) is audited too (``run.session_resume_failed``)."""
        if resume.resumed:
            self.log.write(
                "orchestrator", f"resuming {self.adapter.type} session {resume.session_id} ({resume.why})"
            )
            return
        self.log.write(
            "orchestrator",
            f"cannot resume {self.adapter.type} session {resume.session_id} (its files are gone): "
            "a fresh session with the full prompt",
        )

        async def work(c: Any) -> None:
            await audit.record(
                c,
                actor=audit.SYSTEM_ACTOR,
                action="run.session_resume_failed",
                subject_type="run",
                subject_id=self.claim.run_id,
                company_id=self.claim.company_id,
                payload={
                    "taskId": str(self.claim.task_id),
                    "sessionId": resume.session_id,
                    "reason": resume.why,
                    "fallback": "fresh_session",
                },
            )

        try:
            await self.writes.retry("audit_resume_fallback", work)
        except Exception as exc:
            self._report_error("audit_resume_fallback", exc)

    async def _keep_cli_state(self) -> None:
        """Once the CLI has exited, its HOME is left to the task's next run (``adapters.clis.state``),
        which resumes the session if this run ends waiting on an approval or finishes for review (its
        outcome is not known yet: a run that fails leaves a state nobody resumes, swept at the task's end)."""
        from company_agents.adapters.clis import state as cli_state

        if self.stream is None or self.workspace is None or self.cli_session is None:
            return
        try:
            kept = await asyncio.to_thread(
                cli_state.save, self.settings, self.claim.task_id, self.workspace, self.cli_files
            )
        except OSError as exc:  # the next run starts a fresh session
            self.log.write("orchestrator", f"could not keep the CLI state for the next run: {exc}")
            return
        if kept:
            self.log.write("orchestrator", f"kept the {self.adapter.type} state for the task's next run")

    async def _outcome_from_tools(self) -> None:
        """An agent CLI ends its run through our MCP tools (mark_complete…), not its stdout: the run's
        row says whether it did, and then there is nothing left to end (and a completed workspace goes)."""
        try:
            standing = await self.writes.retry(
                "run_standing",
                lambda c: leases.run_standing(c, self.ident, fencing_token=self.claim.fencing_token),
            )
        except Exception as exc:  # cannot tell: the usual end-of-run writes decide (fenced)
            self._report_error("run_standing", exc)
            return
        if standing is None or standing.run_status == "running":
            return
        reason = standing.exit_reason or standing.run_status
        self.state.outcome = reason if reason in ("complete", "failed", "handoff", "approval") else "ended"
        self.log.write("orchestrator", f"the agent ended its run over MCP: {standing.run_status} ({reason})")

    def _no_outcome_reason(self) -> str:
        if self.adapter.is_remote:
            return "the remote agent ended its session without reporting complete or failed"
        if self.stream is None:
            return "the agent exited without reporting complete or failed"
        said = f": it said {self.state.cli_text[:300]!r}" if self.state.cli_text else ""
        return f"{self.adapter.type} finished without calling mark_complete or mark_failed{said}"

    def _cli_failed_reason(self, why: str) -> str:
        tail = [line.strip() for line in self.state.stderr_tail if line.strip()]
        last = f": {tail[-1][:500]}" if tail else ""
        return f"{self.adapter.type} failed ({why}){last}"

    # -- remote agents (the http adapter, adapters.remote) -------------------------------------------

    async def _remote_bearer(self, conn: Any, secret_env: dict[str, str]) -> None:
        """The bearer for the remote agent: the agent's secret environment may name it, else the
        company secret the adapter's ``auth.secret`` names. Read per session, so a rotated secret is
        used from the next session on."""
        name = self.adapter.auth_secret
        if name is None:
            return
        if name in secret_env:
            self.remote_bearer = secret_env[name]
            return
        try:
            self.remote_bearer = await reveal(conn, self.master_key, self.claim.company_id, name)
        except NotFound:
            self.remote_unready = (
                f"adapter {self.adapter.name!r}: the company has no secret {name} for the remote agent's "
                f"bearer (`company-agents secret set --company SLUG {name}`)"
            )

    def _session_body(self, ctx: Any, workspace: Path) -> dict[str, Any]:
        from company_agents.adapters.config import HTTP_PROTOCOL

        context = workspace / ".company-agents"
        return {
            "protocol": HTTP_PROTOCOL,
            "runId": str(self.claim.run_id),
            "taskId": str(self.claim.task_id),
            "attempt": self.claim.attempt,
            "fencingToken": self.claim.fencing_token,
            "leaseSeconds": self.settings.lease_seconds,
            "task": ctx.task_json(workspace, self.settings.tool_url),
            "agentsMd": (context / "AGENTS.md").read_text(),
            "memoryMd": (context / "MEMORY.md").read_text(),
            "tools": {"url": self.settings.tool_url, "mcpUrl": self.settings.mcp_url},
        }

    async def _run_remote(self, ctx: Any, workspace: Path) -> None:
        from company_agents.adapters.config import HTTP_PROTOCOL
        from company_agents.adapters.remote.client import RemoteFailure, RemoteSession

        self.log.secrets = sorted(
            {v for v in (self.remote_bearer, self.claim.lease_token) if v and len(v) >= MIN_REDACTED},
            key=len,
            reverse=True,
        )
        await self._write(
            "start",
            lambda c: leases.start(
                c, self.ident, fencing_token=self.claim.fencing_token, workspace_path=str(workspace)
            ),
            applied=started,
        )
        if self.state.lost_lease:
            return
        if self.remote_unready is not None:
            self.log.write("orchestrator", self.remote_unready)
            await self._end_attempt(self.remote_unready, "failed")
            return
        self.log.write(
            "orchestrator",
            f"starting {self.adapter.name}: {self.adapter.base_url} ({HTTP_PROTOCOL}, "
            f"attempt {self.claim.attempt})",
        )
        session = RemoteSession(
            self.adapter, bearer=self.remote_bearer, note=lambda line: self.log.write("orchestrator", line)
        )
        try:
            try:
                sid = await session.create(self._session_body(ctx, workspace), self.claim.lease_token)
            except RemoteFailure as exc:
                self.log.write("orchestrator", exc.reason)
                await self._end_attempt(exc.reason, exc.exit_reason)
                return
            self.process_started = time.monotonic()
            self.log.write("orchestrator", f"remote session {sid}")
            await self._supervise_remote(session)
        finally:
            await session.aclose()

    async def _wait_for_end(self, ended: asyncio.Task[Any]) -> None:
        """Wait until ``ended`` (the agent's exit, or its stream's end) or a reason to stop it: the
        timeout, a lost lease, a budget stop, a CLI failure or the orchestrator shutting down. The
        caller stops the agent; this only records why."""
        stopper = asyncio.create_task(self.stop.wait())
        budget = asyncio.create_task(self.budget_stopped.wait())
        deadline = time.monotonic() + self.timeout
        try:
            while not ended.done():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self.state.timed_out = True
                    self.log.write("orchestrator", f"timed out after {self.timeout:.0f}s")
                    return
                if self.state.lost_lease or self.state.budget_stop is not None:
                    return
                if self.state.cli_failure is not None:
                    return
                if stopper.done():
                    self.state.shutdown = True
                    self.log.write("orchestrator", "orchestrator shutting down")
                    return
                await asyncio.wait(
                    {ended, stopper, budget},
                    timeout=min(remaining, 0.2),
                    return_when=asyncio.FIRST_COMPLETED,
                )
        finally:
            stopper.cancel()
            budget.cancel()

    async def _supervise_remote(self, session: Any) -> None:
        """As ``_supervise`` for a process: the stream's end is the agent's exit. Stopping it is a
        ``shutdown`` input and the grace, then ``DELETE`` (at once for a catastrophic budget breach or
        a lost lease: nothing it does can be written any more)."""
        events: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        applier = asyncio.create_task(self._apply_events(events))
        reader = asyncio.create_task(self._read_remote(session, events))
        renewer = asyncio.create_task(self._renew_loop())
        try:
            await self._wait_for_end(reader)
            if reader.done():
                reason = "failed" if self.state.remote_failure is not None else "ended"
            else:
                reason = self._stop_reason()
            if not reader.done():
                grace = self.settings.shutdown_grace_seconds
                at_once = self.state.lost_lease or self.state.budget_stop == "catastrophic"
                if not at_once and await session.send_input(
                    {"type": "shutdown", "reason": reason, "graceSeconds": grace}
                ):
                    await asyncio.wait({reader}, timeout=grace)
                if not reader.done():
                    reader.cancel()
                self.log.write("orchestrator", f"stopping the remote agent ({reason})")
            await session.delete(reason)
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            await applier
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
        self.log.write("orchestrator", f"remote session ended ({reason})")
        await self._finish()

    async def _read_remote(self, session: Any, events: asyncio.Queue[dict[str, Any] | None]) -> None:
        from company_agents.adapters.remote.client import RemoteFailure

        try:
            async for event in session.events():
                self.log.write("remote", json.dumps(event, ensure_ascii=False))
                events.put_nowait(event)
            self.state.exit_code = 0  # the session ended as the protocol says (``done``)
        except RemoteFailure as exc:
            self.log.write("orchestrator", exc.reason)
            self.state.remote_failure = (exc.reason, exc.exit_reason)
        except Exception as exc:  # a bug of ours must still end the run, with what it had applied
            self._report_error("remote stream", exc)
            self.state.remote_failure = (f"reading the remote agent failed: {type(exc).__name__}", "crash")
        finally:
            events.put_nowait(None)
