"""A task's agent-CLI state between its runs (docs/adapters.md §Sessions).

Each run has a workspace of its own, and a CLI keeps its sessions in its HOME inside it
(``isolation.launch.AGENT_HOME``). So that the next run of the task can resume the session, that HOME
is copied out when a run ends, to ``<home>/cli-state/<task-id>/home`` (0700, the orchestrator's), and
copied into the next run's workspace before it starts. The agent never sees the state dir itself:
a sandbox hides the whole instance home but its own workspace, and in ``user`` mode the copy becomes
the agent's only inside that workspace, as the rest of it does. Housekeeping removes a task's state
once the task is done, cancelled or failed for good.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
from collections.abc import Iterable
from pathlib import Path
from uuid import UUID

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from company_agents.isolation.launch import AGENT_HOME
from company_agents.settings import Settings
from company_agents.task_states import TERMINAL

log = logging.getLogger(__name__)

STATE_HOME = "home"


def state_dir(settings: Settings, task_id: UUID) -> Path:
    return settings.cli_state_dir / str(task_id)


def _only_files(directory: str, names: list[str]) -> list[str]:
    """Sockets, pipes and devices (a CLI's IPC endpoints) are not state: never copied."""
    skipped = []
    for name in names:
        try:
            mode = os.lstat(os.path.join(directory, name)).st_mode
        except OSError:
            skipped.append(name)
            continue
        if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
            skipped.append(name)
    return skipped


def restore(settings: Settings, task_id: UUID, workspace: Path) -> bool:
    """Copy the task's saved CLI HOME into the new workspace; False: there is none."""
    saved = state_dir(settings, task_id) / STATE_HOME
    if not saved.is_dir():
        return False
    shutil.copytree(saved, workspace / AGENT_HOME, symlinks=True, dirs_exist_ok=True, ignore=_only_files)
    return True


def save(settings: Settings, task_id: UUID, workspace: Path, drop: Iterable[str] = ()) -> bool:
    """Keep the run's CLI HOME for the task's next run, replacing what an earlier run kept. ``drop``:
    paths relative to the workspace not to keep (the run's config files holding its bearer token)."""
    home = workspace / AGENT_HOME
    if not home.is_dir():
        return False
    root = state_dir(settings, task_id)
    settings.cli_state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    root.mkdir(mode=0o700, exist_ok=True)
    fresh, old = root / f"{STATE_HOME}.new", root / f"{STATE_HOME}.old"
    for leftover in (fresh, old):
        shutil.rmtree(leftover, ignore_errors=True)
    shutil.copytree(home, fresh, symlinks=True, ignore=_only_files)
    prefix = f"{AGENT_HOME}/"
    for relative in drop:
        if relative.startswith(prefix):
            (fresh / relative.removeprefix(prefix)).unlink(missing_ok=True)
    current = root / STATE_HOME
    if current.exists():
        current.rename(old)
    fresh.rename(current)
    shutil.rmtree(old, ignore_errors=True)
    return True


def remove(settings: Settings, task_id: UUID) -> None:
    shutil.rmtree(state_dir(settings, task_id), ignore_errors=True)


LIVE_TASKS_SQL = text("SELECT id FROM tasks WHERE id = ANY(:ids) AND NOT (status = ANY(:ended))")


async def sweep(settings: Settings, conn: AsyncConnection) -> int:
    """Remove the saved CLI state of every task that has ended for good (or no longer exists)."""
    root = settings.cli_state_dir
    if not root.is_dir():
        return 0
    found: dict[UUID, Path] = {}
    for entry in root.iterdir():
        try:
            found[UUID(entry.name)] = entry
        except ValueError:
            continue
    if not found:
        return 0
    rows = await conn.execute(LIVE_TASKS_SQL, {"ids": list(found), "ended": sorted(TERMINAL)})
    live = {row[0] for row in rows}
    removed = 0
    for task_id, path in found.items():
        if task_id not in live:
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
    return removed
