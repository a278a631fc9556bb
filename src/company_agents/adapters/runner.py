"""The base every adapter shares: run one claimed task as an agent process, from launch to outcome.

The agent runs in its own process group, in its workspace, with a clean environment plus the run's
variables. Its output streams to the run log; the json-lines protocol turns its stdout events into
fenced writes. The lease is renewed at 60% of the window while the process lives. On exit the outcome
is mapped (complete / failed / crash / timeout / lease_expired / shutdown), and the whole group is
ended with SIGTERM → grace → SIGKILL so nothing is left behind.

The database may go away in the middle of a run (a restart, a failover): every write made for the run
is retried through it (``run_writes``). Reading stdout never waits on the database: lines are logged as
they come and the events queue up for one writer, in order, so an agent's ``complete`` sent during an
outage is applied once the database is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from company_agents import leases, orphans
from company_agents.adapters.config import AdapterConfig, render_command
from company_agents.adapters.run_writes import Applied, RunWrites, Work, ended, started
from company_agents.db.database import Database
from company_agents.db.errors import first_line
from company_agents.db.retry import OUTAGE, retry_transient
from company_agents.errors import CompanyAgentsError
from company_agents.master_key import MasterKey
from company_agents.secrets_store import resolve_env
from company_agents.settings import Settings
from company_agents.workspaces import (
    init_workspace,
    load_context,
    mark_deleted,
    remove_workspace,
    run_log_path,
    write_context,
)

log = logging.getLogger(__name__)

BASE_ENV_KEYS = ("PATH", "LANG", "LC_ALL", "TZ", "TMPDIR")
# The events that end an attempt: one that cannot be applied must still end it (as a crash).
ENDING_EVENTS = frozenset({"complete", "failed", "handoff"})


@dataclass
class RunState:
    """What happened during one run, as the adapter saw it."""

    outcome: str | None = None  # complete | failed | handoff (from the agent)
    lost_lease: bool = False
    timed_out: bool = False
    shutdown: bool = False
    exit_code: int | None = None
    checkpoints: int = 0
    notes: list[str] = field(default_factory=list)
    # Why an ending event from the agent could not be applied (a non-transient database error).
    unapplied: str | None = None


class RunLog:
    """Appends timestamped lines to ``<home>/logs/runs/<run-id>.log``."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: TextIO = path.open("a", encoding="utf-8", buffering=1)

    def write(self, stream: str, line: str) -> None:
        stamp = datetime.now(UTC).strftime("%H:%M:%S.%f")[:-3]
        self._fh.write(f"{stamp} [{stream}] {line.rstrip()}\n")

    def close(self) -> None:
        self._fh.close()


def clean_env(extra: dict[str, str], run_vars: dict[str, str], workspace: Path) -> dict[str, str]:
    env = {k: os.environ[k] for k in BASE_ENV_KEYS if k in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env["HOME"] = str(workspace)
    env.update(extra)
    env.update(run_vars)
    return env


def kill_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
    ) -> None:
        self.settings = settings
        self.master_key = master_key
        self.db = db
        self.claim = claim
        self.ident = claim.identity()
        self.adapter = adapter
        self.stop = stop
        self.state = RunState()
        self.timeout = adapter.timeout_seconds or settings.run_timeout_seconds
        self.log = RunLog(run_log_path(settings, claim.run_id))
        self.workspace: Path | None = None
        self.keep = False
        self.writes = RunWrites(
            db,
            claim,
            window=settings.lease_seconds,
            note=lambda line: self.log.write("orchestrator", line),
            on_lost=self._lost_lease,
        )

    def _lost_lease(self) -> None:
        self.state.lost_lease = True

    # -- fenced writes -------------------------------------------------------------------------

    async def _write(self, what: str, work: Work, applied: Applied | None = None) -> Any:
        """One fenced write, retried through outages; ``None`` when the lease is lost (``run_writes``)."""
        return await self.writes.write(what, work, applied)

    # -- the run -------------------------------------------------------------------------------

    async def execute(self) -> RunState:
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
            return ctx, secret_env

        ctx, secret_env = await retry_transient(
            read_context, what="load_context", backoff=OUTAGE, deadline=self.settings.lease_seconds
        )
        self.keep = bool(ctx.task["keep_workspace"])
        self.workspace = await workspace
        write_context(self.settings, self.workspace, ctx)
        run_vars = {
            "CA_TASK_ID": str(self.claim.task_id),
            "CA_RUN_ID": str(self.claim.run_id),
            "CA_LEASE_TOKEN": self.claim.lease_token,
            "CA_FENCING_TOKEN": str(self.claim.fencing_token),
            "MCP_SERVER_URL": self.settings.tool_url,
            "CA_WORKSPACE": str(self.workspace),
        }
        template_vars = {
            "workspacePath": str(self.workspace),
            "taskId": str(self.claim.task_id),
            "runId": str(self.claim.run_id),
            "leaseToken": self.claim.lease_token,
            "fencingToken": str(self.claim.fencing_token),
            "mcpUrl": self.settings.tool_url,
        }
        argv, extra_env = render_command(self.adapter, template_vars)
        extra_env.update(secret_env)
        await self._write(
            "start",
            lambda c: leases.start(
                c, self.ident, fencing_token=self.claim.fencing_token, workspace_path=str(self.workspace)
            ),
            applied=started,
        )
        if self.state.lost_lease:
            return
        self.log.write(
            "orchestrator", f"starting {self.adapter.name}: {argv[0]} (attempt {self.claim.attempt})"
        )
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                cwd=self.workspace,
                env=clean_env(extra_env, run_vars, self.workspace),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,  # its own process group: we end the whole group
                preexec_fn=orphans.die_with_parent(),  # and it dies with us, even by kill -9 (Linux)
                limit=1 << 20,
            )
        except OSError as exc:
            self.log.write("orchestrator", f"could not start {argv[0]}: {exc.strerror}")
            await self._end_attempt(f"could not start the agent: {exc.strerror}", "crash")
            return
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
        pgid = proc.pid
        assert proc.stdout is not None and proc.stderr is not None
        events: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        readers = [
            asyncio.create_task(self._read_stdout(proc, events)),
            asyncio.create_task(self._read_stream(proc.stderr, "stderr")),
            asyncio.create_task(self._apply_events(events)),
        ]
        renewer = asyncio.create_task(self._renew_loop())
        waiter = asyncio.create_task(proc.wait())
        stopper = asyncio.create_task(self.stop.wait())
        deadline = time.monotonic() + self.timeout
        try:
            while not waiter.done():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self.state.timed_out = True
                    self.log.write("orchestrator", f"timed out after {self.timeout:.0f}s")
                    break
                if self.state.lost_lease:
                    break
                if stopper.done():
                    self.state.shutdown = True
                    self.log.write("orchestrator", "orchestrator shutting down")
                    break
                await asyncio.wait(
                    {waiter, stopper}, timeout=min(remaining, 0.2), return_when=asyncio.FIRST_COMPLETED
                )
            if not waiter.done():
                await self._terminate(proc, pgid, waiter)
            self.state.exit_code = proc.returncode
            # Anything the group left behind (grandchildren) goes too.
            kill_group(pgid, signal.SIGKILL)
            await asyncio.gather(*readers, return_exceptions=True)
        finally:
            renewer.cancel()
            stopper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
        self.log.write("orchestrator", f"agent exited with code {proc.returncode}")
        await self._finish()

    async def _terminate(
        self, proc: asyncio.subprocess.Process, pgid: int, waiter: asyncio.Task[int]
    ) -> None:
        grace = self.settings.shutdown_grace_seconds
        if proc.stdin is not None and not proc.stdin.is_closing():
            with contextlib.suppress(OSError, RuntimeError):
                reason = (
                    "timeout"
                    if self.state.timed_out
                    else "lease lost"
                    if self.state.lost_lease
                    else "shutdown"
                )
                proc.stdin.write(
                    (
                        json.dumps({"type": "shutdown", "reason": reason, "graceSeconds": grace}) + "\n"
                    ).encode()
                )
                await asyncio.wait_for(proc.stdin.drain(), timeout=1)
        kill_group(pgid, signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), timeout=grace)
        except TimeoutError:
            self.log.write("orchestrator", f"still running {grace:.0f}s after SIGTERM: SIGKILL")
            kill_group(pgid, signal.SIGKILL)
            await waiter

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
            self.log.write(name, raw.decode(errors="replace"))

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
                self.log.write("stdout", line)
                try:
                    event = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(event, dict) and isinstance(event.get("type"), str):
                    events.put_nowait(event)
        finally:
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
            await self._write(
                "cost",
                lambda c: leases.record_cost(
                    c,
                    self.ident,
                    fencing_token=fence,
                    model=_str(event.get("model")),
                    input_tokens=_int(event.get("inputTokens")),
                    output_tokens=_int(event.get("outputTokens")),
                    amount_usd=event.get("usd"),
                    details={k: v for k, v in event.items() if k != "type"},
                ),
            )
        elif kind == "complete":
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
            row = await self._end_attempt(str(event.get("reason") or "the agent gave up"), "failed")
            if row is not None:
                self.state.outcome = "failed"
        elif kind == "handoff":
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

    async def _end_attempt(self, reason: str, exit_reason: str) -> Any:
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

    async def _finish(self) -> None:
        state = self.state
        if state.outcome is None and not state.lost_lease:
            if state.shutdown:
                await self._write(
                    "release",
                    lambda c: leases.release(
                        c, self.ident, fencing_token=self.claim.fencing_token, reason="orchestrator shut down"
                    ),
                    ended("cancelled", "shutdown"),
                )
            elif state.unapplied is not None:
                await self._end_attempt(state.unapplied, "crash")
            elif state.timed_out:
                await self._end_attempt(f"timed out after {self.timeout:.0f}s", "timeout")
            elif state.exit_code == 0:
                await self._end_attempt("the agent exited without reporting complete or failed", "failed")
            else:
                code = state.exit_code
                why = (
                    f"killed by signal {-code}"
                    if code is not None and code < 0
                    else f"exited with code {code}"
                )
                await self._end_attempt(f"the agent crashed ({why})", "crash")
        if state.outcome == "complete" and self.workspace is not None and not self.keep:
            remove_workspace(self.workspace)
            try:
                await self.writes.retry("mark_deleted", lambda c: mark_deleted(c, self.claim.run_id))
            except Exception as exc:  # bookkeeping only: the run's outcome is already recorded
                self._report_error("mark_deleted", exc)


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None
