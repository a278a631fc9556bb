"""Turn an agent's command into the command that runs it isolated, with its own dirs and limits."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

from company_agents import orphans
from company_agents.isolation.bwrap import SANDBOX_TMP, bwrap_argv
from company_agents.isolation.limits import Limits, apply_rlimits, rlimits
from company_agents.isolation.modes import Isolation
from company_agents.isolation.users import AgentUser, chown_tree, ensure_user, give_to, user_name
from company_agents.settings import Settings

log = logging.getLogger(__name__)

# Inside the workspace (so they live and go with it, and are the agent's): its HOME (the coding CLIs
# keep their state and config there) and, in `none` mode, its temp dir (a sandbox has a /tmp of its own).
AGENT_HOME = ".home"
AGENT_TMP = ".tmp"
AGENT_DIRS = (AGENT_HOME, f"{AGENT_HOME}/.config", f"{AGENT_HOME}/.cache", AGENT_TMP)


@dataclass(frozen=True)
class Launch:
    """How to start one agent: the argv and environment to exec, and what to do before exec."""

    argv: list[str]
    env: dict[str, str]
    preexec: Callable[[], None] | None
    user: AgentUser | None


def agent_env(workspace: Path, *, sandboxed: bool) -> dict[str, str]:
    """The agent's own HOME, config, cache and temp dirs (they replace the orchestrator's)."""
    home = workspace / AGENT_HOME
    return {
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "TMPDIR": str(SANDBOX_TMP if sandboxed else workspace / AGENT_TMP),
    }


def _preexec(steps: list[Callable[[], None]]) -> Callable[[], None] | None:
    if not steps:
        return None

    def preexec() -> None:
        for step in steps:
            step()

    return preexec


class Launcher:
    """Prepares every agent this orchestrator starts, in the mode chosen at start-up."""

    def __init__(self, isolation: Isolation, settings: Settings) -> None:
        self.isolation = isolation
        self.settings = settings
        self._user_lock = asyncio.Lock()  # one useradd at a time from this process

    @property
    def mode(self) -> str:
        return self.isolation.mode

    async def prepare(
        self, *, argv: list[str], env: dict[str, str], workspace: Path, agent_id: UUID, limits: Limits
    ) -> Launch:
        """The workspace made the agent's, and the command that runs it isolated."""
        iso = self.isolation
        for name in AGENT_DIRS:
            (workspace / name).mkdir(parents=True, exist_ok=True)
        env = {**env, **agent_env(workspace, sandboxed=iso.namespaced)}
        user: AgentUser | None = None
        if iso.mode == "user":
            user = await ensure_user(user_name(iso.user_prefix, agent_id), self._user_lock)
            give_to(workspace, user)
        steps: list[Callable[[], None]] = []
        if (die := orphans.die_with_parent()) is not None:
            steps.append(die)
        wanted = rlimits(limits, per_uid=iso.mode == "user")
        if wanted:
            steps.append(apply_rlimits(wanted))
        if iso.namespaced:
            if iso.bwrap is None:
                raise ValueError(f"isolation {iso.mode} without bwrap")
            argv = bwrap_argv(
                bwrap=iso.bwrap,
                command=argv,
                workspace=workspace,
                home=self.settings.home,
                hide=self.settings.sandbox_hide,
                path_env=env.get("PATH", ""),
                agent_uid=user.uid if user else None,
                agent_gid=user.gid if user else None,
                setpriv=iso.setpriv,
            )
        return Launch(argv=argv, env=env, preexec=_preexec(steps), user=user)

    def reclaim(self, workspace: Path) -> None:
        """Once every process of the run is gone, a ``user``-mode workspace is the orchestrator's again:
        a kept workspace belongs to whoever inspects it (git refuses a repository of another owner)."""
        if self.isolation.mode != "user" or not workspace.is_dir():
            return
        try:
            chown_tree(workspace, os.getuid(), os.getgid())
        except OSError as exc:  # bookkeeping: the run's outcome does not depend on it
            log.warning(
                "could not take back %s: %s", workspace, exc, extra={"action": "workspace_reclaim_failed"}
            )
