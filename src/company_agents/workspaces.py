"""Run workspaces (docs/design.md §5): ``<home>/runs/<run-id>/``, a git working tree with the task's context,
and their retention: deleted after success, kept N days after failure, kept when asked (``--keep``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from company_agents.approvals.lifecycle import decisions_for_task
from company_agents.db.schema import agents, companies, runs, tasks, teams
from company_agents.leases import Claim
from company_agents.memory import memory_snapshot
from company_agents.settings import Settings

log = logging.getLogger(__name__)

CONTEXT_DIR = ".company-agents"
RUN_DIR = ".run"


def workspace_path(settings: Settings, run_id: UUID) -> Path:
    return settings.runs_dir / str(run_id)


def run_log_path(settings: Settings, run_id: UUID) -> Path:
    return settings.run_logs_dir / f"{run_id}.log"


@dataclass(frozen=True)
class RunContext:
    """Everything an agent is told about its run (written as ``task.json`` and the role files)."""

    claim: Claim
    task: dict[str, Any]
    agent: dict[str, Any]
    company: dict[str, Any]
    team: dict[str, Any] | None
    memory: str  # the MEMORY.md snapshot
    # The task's approvals, latest per action (approvals.lifecycle.decisions_for_task).
    approvals: list[dict[str, Any]] = field(default_factory=list)

    def task_json(self, workspace: Path, mcp_url: str) -> dict[str, Any]:
        budget = self.task["budget_usd"] or self.agent["budget_usd"]
        return {
            "taskId": str(self.claim.task_id),
            "runId": str(self.claim.run_id),
            "companyId": str(self.company["id"]),
            "companySlug": self.company["slug"],
            "agentId": str(self.agent["id"]),
            "agentName": self.agent["name"],
            "role": self.agent["role"],
            "team": self.team["name"] if self.team else None,
            "title": self.task["title"],
            "body": self.task["body"],
            "attempt": self.claim.attempt,
            "fencingToken": self.claim.fencing_token,
            "leaseExpiresAt": self.claim.lease_expires_at.isoformat(),
            "feedback": self.task["feedback"],
            "parentId": str(self.task["parent_id"]) if self.task["parent_id"] else None,
            "budgetEnvelope": {"usd": _num(budget), "tokens": None},
            "workspacePath": str(workspace),
            "mcpServerUrl": mcp_url,
            **self._approvals_json(),
        }

    def _approvals_json(self) -> dict[str, Any]:
        policy = self.agent.get("approval_policy") or {}
        return {"approvals": self.approvals, "approvalPolicy": policy}


def _num(value: Decimal | None) -> float | None:
    return float(value) if value is not None else None


def _prefixed(table: Any, prefix: str) -> list[Any]:
    return [column.label(prefix + column.name) for column in table.c]


def _unprefixed(row: Mapping[str, Any], table: Any, prefix: str) -> dict[str, Any]:
    return {column.name: row[prefix + column.name] for column in table.c}


async def load_context(conn: AsyncConnection, claim: Claim) -> RunContext:
    """The run's context. The task, its agent, the company and the team are one query (the start of
    every run waits for it); the memory snapshot and the approvals follow."""
    query = (
        select(
            *_prefixed(tasks, "t_"),
            *_prefixed(agents, "a_"),
            *_prefixed(companies, "c_"),
            *_prefixed(teams, "m_"),
        )
        .select_from(
            tasks.join(agents, agents.c.id == claim.agent_id)
            .join(companies, companies.c.id == claim.company_id)
            .outerjoin(teams, teams.c.id == agents.c.team_id)
        )
        .where(tasks.c.id == claim.task_id)
    )
    row = dict((await conn.execute(query)).mappings().one())
    task = _unprefixed(row, tasks, "t_")
    agent = _unprefixed(row, agents, "a_")
    company = _unprefixed(row, companies, "c_")
    team = _unprefixed(row, teams, "m_") if agent["team_id"] is not None else None
    memory = await memory_snapshot(conn, agent, task_ids=[task["id"]])
    decided = await decisions_for_task(conn, task["id"])
    return RunContext(
        claim=claim, task=task, agent=agent, company=company, team=team, memory=memory, approvals=decided
    )


def _agents_md(ctx: RunContext) -> str:
    team = ctx.team["name"] if ctx.team else "none"
    return (
        f"# {ctx.agent['name']}\n\nRole: {ctx.agent['role']}\nTeam: {team}\n"
        f"Company: {ctx.company['name']} ({ctx.company['slug']})\n\n"
        "Read `task.json` first, then `MEMORY.md`. Report progress when there is something to say, and "
        "finish with `complete` (or `failed`/`handoff`). Before an action your `approvalPolicy` names, ask "
        "with `request_approval` and act only on the answer (`approvals` in task.json). "
        "See docs/agent-protocol.md.\n"
    )


TOOLS_MD = """# Tools

Write one JSON object per line on stdout: `progress`, `cost`, `complete`, `failed`, `handoff`.
Or call `POST $MCP_SERVER_URL/tools/<name>` with `Authorization: Bearer $CA_LEASE_TOKEN` and
`{"fencingToken": $CA_FENCING_TOKEN, ...}`: renew_lease, report_progress, mark_complete, mark_failed,
request_handoff, request_approval (ask a person first; the answers so far are `approvals` in task.json).
The same tools (and memory_read, memory_write, create_subtask, upload_asset) are served over MCP at
`$CA_MCP_URL` with the same bearer header; there the fencing token is implied and never sent.
A 409 `stale_fencing_token` (over MCP: a tool error with that code) means this run no longer owns the
task: stop.
"""


GIT_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "GIT_CONFIG_NOSYSTEM": "1"}


async def init_workspace(settings: Settings, run_id: UUID) -> Path:
    """Make the workspace directory a git working tree, by copying a repository ``git init`` made once
    per home (``_git_template``): a copy is a few small file writes, while a ``git init`` per run is a
    process (~12 ms of CPU) that competed with the run's own database reads on a small machine."""
    path = workspace_path(settings, run_id)
    (path / RUN_DIR / "checkpoints").mkdir(parents=True, exist_ok=True)
    (path / CONTEXT_DIR).mkdir(parents=True, exist_ok=True)
    template = await _git_template(settings)
    if template is not None:
        try:
            shutil.copytree(template, path / ".git", symlinks=True)
        except OSError as exc:
            log.warning("git init failed in %s: %s", path, exc, extra={"action": "workspace_git_failed"})
    # Keep the orchestrator's files out of the agent's commits.
    (path / ".git" / "info").mkdir(parents=True, exist_ok=True)
    # And the agent's own HOME and temp dir (``isolation.launch``).
    (path / ".git" / "info" / "exclude").write_text(f"{CONTEXT_DIR}/\n{RUN_DIR}/\n/.home/\n/.tmp/\n")
    return path


async def _git_template(settings: Settings) -> Path | None:
    """The ``.git`` of an empty repository, made by ``git init`` on first use and kept in the home's
    cache (``None`` when git fails: the run goes on without a repository, as it did before)."""
    cache = settings.home / "cache"
    template = cache / "git-template" / ".git"
    if (template / "HEAD").is_file():
        return template
    cache.mkdir(mode=0o700, parents=True, exist_ok=True)
    # Made aside and renamed into place: a concurrent first run never copies a half-made template.
    scratch = Path(tempfile.mkdtemp(prefix=".git-template-", dir=cache))
    try:
        proc = await asyncio.create_subprocess_exec(
            "git",
            "init",
            "-q",
            cwd=scratch,
            env={**GIT_ENV, "HOME": str(scratch)},
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await asyncio.wait_for(proc.communicate(), timeout=30)
        if proc.returncode != 0:
            log.warning(
                "git init failed in %s: %s",
                scratch,
                err.decode(errors="replace").strip(),
                extra={"action": "workspace_git_failed"},
            )
            return None
        with contextlib.suppress(OSError):  # another run's template got there first: the same thing
            scratch.rename(template.parent)
    except (OSError, TimeoutError) as exc:
        log.warning("git init failed in %s: %s", scratch, exc, extra={"action": "workspace_git_failed"})
        return None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return template if (template / "HEAD").is_file() else None


def write_context(settings: Settings, path: Path, ctx: RunContext) -> None:
    """Write the task context and role files into an initialised workspace."""
    context = path / CONTEXT_DIR
    (context / "task.json").write_text(json.dumps(ctx.task_json(path, settings.tool_url), indent=2) + "\n")
    (context / "AGENTS.md").write_text(_agents_md(ctx))
    (context / "TOOLS.md").write_text(TOOLS_MD)
    (context / "MEMORY.md").write_text(ctx.memory)
    budget = ctx.task["budget_usd"] or ctx.agent["budget_usd"]
    (context / "budget.json").write_text(
        json.dumps({"usd": _num(budget), "tokens": None, "spentUsd": 0}) + "\n"
    )


def remove_workspace(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


async def mark_deleted(conn: AsyncConnection, run_id: UUID) -> None:
    await conn.execute(update(runs).where(runs.c.id == run_id).values(workspace_deleted_at=func.now()))


async def expired_workspaces(
    conn: AsyncConnection, *, retention_days: float, settle_seconds: float = 0
) -> list[dict[str, Any]]:
    """Ended runs whose workspace is due: succeeded (and not kept) at least ``settle_seconds`` ago, or
    failed longer ago than retention. An agent CLI ends its run over MCP and then exits: until it has,
    the workspace is still its own (and its runner removes it then, keeping the CLI's state first)."""
    query = text(
        """
        SELECT id, workspace_path, status, ended_at FROM runs
        WHERE workspace_path IS NOT NULL AND workspace_deleted_at IS NULL AND status <> 'running'
          AND NOT keep_workspace
          AND ((status = 'succeeded' AND ended_at < now() - make_interval(secs => :settle))
               OR ended_at < now() - make_interval(secs => :seconds))
        ORDER BY ended_at
        LIMIT 500
        """
    )
    params = {"seconds": retention_days * 86400, "settle": settle_seconds}
    return [dict(r) for r in (await conn.execute(query, params)).mappings()]


async def housekeeping_once(settings: Settings, conn: AsyncConnection) -> int:
    """Delete due workspaces that live on this machine; returns how many were removed."""
    removed = 0
    root = settings.runs_dir.resolve()
    # A run's process outlives its end by at most its timeout and the shutdown grace.
    settle = settings.run_timeout_seconds + settings.shutdown_grace_seconds
    due = await expired_workspaces(
        conn, retention_days=settings.workspace_retention_days, settle_seconds=settle
    )
    for row in due:
        path = Path(row["workspace_path"])
        if root not in path.resolve().parents:
            continue  # another machine's, or not ours to touch
        if path.exists():
            remove_workspace(path)
        await mark_deleted(conn, row["id"])
        removed += 1
    return removed
