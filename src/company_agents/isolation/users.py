"""``user`` mode: one unprivileged OS user (and group of its own) per agent, created on first use.

One user per agent, not per run and not one shared by all: two agents never share a uid, so the kernel
itself keeps them apart (files, signals, ``/proc``, RLIMIT_NPROC); the runs of one agent share it, and
their mount namespaces keep their workspaces apart. Users have no login shell, no home directory and a
group of their own; they are never deleted (a uid that owned files is not reused for someone else).
They take uids from the ordinary range (UID_MIN..UID_MAX, ~59,000), not the system range (~900), which
a company with many agents would exhaust.
"""

from __future__ import annotations

import asyncio
import os
import pwd
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

from company_agents.errors import ConfigError

USERADD_EXISTS = 9  # useradd(8): the name is already in use
USERADD_LOCKED = 10  # cannot lock /etc/passwd: another useradd holds it


@dataclass(frozen=True)
class AgentUser:
    name: str
    uid: int
    gid: int


def user_name(prefix: str, agent_id: UUID) -> str:
    """The agent's OS user name (32 characters at most, as useradd requires)."""
    return f"{prefix}{agent_id.hex[:12]}"


def _lookup(name: str) -> AgentUser | None:
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return None
    if entry.pw_uid == 0:
        raise ConfigError(
            f"the agent user {name} has uid 0; remove it or change COMPANY_AGENTS_AGENT_USER_PREFIX"
        )
    return AgentUser(name=name, uid=entry.pw_uid, gid=entry.pw_gid)


async def ensure_user(name: str, lock: asyncio.Lock) -> AgentUser:
    """The agent's user, created (with a group of the same name) when it does not exist yet."""
    if (found := _lookup(name)) is not None:
        return found
    async with lock:
        for attempt in range(20):
            if (found := _lookup(name)) is not None:
                return found
            proc = await asyncio.create_subprocess_exec(
                "useradd",
                "--user-group",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                "--comment",
                "company-agents agent",
                name,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
            )
            _, err = await proc.communicate()
            if proc.returncode in (0, USERADD_EXISTS):
                continue  # made here, or by another orchestrator meanwhile: look it up
            if proc.returncode == USERADD_LOCKED:
                await asyncio.sleep(0.05 * (attempt + 1))
                continue
            raise ConfigError(
                f"could not create the agent user {name}: {err.decode(errors='replace').strip()}"
            )
    raise ConfigError(f"could not create the agent user {name}: /etc/passwd stayed locked")


def give_to(path: Path, user: AgentUser) -> None:
    """Make the workspace the agent's: every file in it owned by its user, the directory 0700."""
    chown_tree(path, user.uid, user.gid)


def chown_tree(path: Path, uid: int, gid: int) -> None:
    """Every file under ``path`` (symlinks themselves, never their targets) to ``uid:gid``; it 0700."""
    for root, dirs, files in os.walk(path):
        os.lchown(root, uid, gid)
        for name in (*dirs, *files):
            os.lchown(os.path.join(root, name), uid, gid)
    path.chmod(0o700)
