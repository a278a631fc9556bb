"""Running `up` and the CLI as root or as an unprivileged OS user, for the isolation tests."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.acceptance.test_cli_up import free_port, kill_and_reap, wait_healthy

CLI = [sys.executable, "-m", "company_agents.cli.main"]
HOSTILE = Path(__file__).parent / "agents" / "hostile.py"
SCRIPTED = Path(__file__).parent / "agents" / "scripted.py"
SANDBOX_USER = "ca-test-desktop"  # the unprivileged "desktop user" running `up` in sandbox mode

# Several CLI commands in one interpreter (each of its own would cost an interpreter start-up); the
# output of each command is captured on its own and returned as a JSON list.
BATCH = """
import contextlib, io, json, sys
from typer.main import get_command
from company_agents.cli.main import app
command, outputs = get_command(app), []
for args in json.loads(sys.argv[1]):
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        try:
            command.main(args, standalone_mode=False)
        except SystemExit as exc:
            if exc.code:
                raise
    outputs.append(buffer.getvalue())
print(json.dumps(outputs))
"""


@dataclass(frozen=True)
class OsUser:
    name: str
    uid: int
    gid: int

    def prefix(self) -> list[str]:
        """Run a command as this user: no capabilities, its own groups, the same environment."""
        return ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--init-groups", "--"]


def ensure_os_user(name: str) -> OsUser:
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
            check=True,
        )
        entry = pwd.getpwnam(name)
    return OsUser(name=name, uid=entry.pw_uid, gid=entry.pw_gid)


@contextmanager
def traversable_by_others(paths: list[Path]) -> Iterator[list[str]]:
    """Grant o+x (traverse, never read) on the ancestors of ``paths`` that lack it, for the duration.

    What docs/security.md asks of an operator whose interpreter lives under a private directory (here
    the interpreter is under /root, 0700): the unprivileged user must be able to run it.
    """
    changed: dict[Path, int] = {}
    for path in paths:
        for parent in [*reversed(Path(os.path.realpath(path)).parents)]:
            mode = parent.stat().st_mode
            if not mode & stat.S_IXOTH and parent not in changed:
                changed[parent] = stat.S_IMODE(mode)
                parent.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)
    try:
        yield [str(p) for p in changed]
    finally:
        for parent, mode in changed.items():
            parent.chmod(mode)


class Product:
    """One instance home, its `up` and its CLI, run as root or as ``user``."""

    def __init__(self, home: Path, env: dict[str, str], user: OsUser | None = None) -> None:
        self.home, self.user = home, user
        self.api_port = free_port()
        self.env = {
            **env,
            "COMPANY_AGENTS_HOME": str(home),
            "COMPANY_AGENTS_API_PORT": str(self.api_port),
            "COMPANY_AGENTS_TOOL_PORT": str(free_port()),
            "COMPANY_AGENTS_DASHBOARD_PORT": str(free_port()),
            "COMPANY_AGENTS_SCHEDULER_POLL_SECONDS": "0.2",
            "COMPANY_AGENTS_SHUTDOWN_GRACE_SECONDS": "2",
            "COMPANY_AGENTS_MAX_CONCURRENT_RUNS": "8",
        }
        if user is not None:
            # Its own HOME and temp dir: the embedded server's package keeps a lock file in the temp
            # dir, and root's (from other tests) is not the desktop user's to open.
            self.env["HOME"] = str(home.parent)
            self.env["TMPDIR"] = str(home.parent / "tmp")
        self.up: subprocess.Popen[str] | None = None
        self.agent_ids: list[str] = []  # hired through `cli`, for `remove_agent_users`

    def _argv(self, *args: str) -> list[str]:
        return [*(self.user.prefix() if self.user else []), *args]

    def cli(self, *commands: list[str]) -> list[Any]:
        """Run CLI commands (each ``--json``) in one process; their parsed outputs."""
        batch = [[*c, "--json"] for c in commands]
        out = subprocess.run(
            self._argv(sys.executable, "-c", BATCH, json.dumps(batch)),
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            cwd="/",
        )
        assert out.returncode == 0, out.stderr[-3000:]
        return [json.loads(o) if o.strip() else None for o in json.loads(out.stdout.strip().splitlines()[-1])]

    def doctor(self) -> list[dict[str, Any]]:
        out = subprocess.run(
            self._argv(*CLI, "doctor", "--json"), env=self.env, capture_output=True, text=True, timeout=60
        )
        checks: list[dict[str, Any]] = json.loads(out.stdout)
        return checks

    def start(self) -> None:
        self.up = subprocess.Popen(
            self._argv(*CLI, "up"),
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
            cwd="/",
        )
        wait_healthy(self.api_port, self.up)

    def stop(self) -> tuple[str, str]:
        assert self.up is not None
        self.up.send_signal(signal.SIGTERM)
        out, err = self.up.communicate(timeout=60)
        return out, err

    def kill(self) -> None:
        """Whatever a failed test left running goes, with its whole group; the pipes are closed."""
        if self.up is not None:
            kill_and_reap(self.up)


def remove_agent_users(agent_ids: list[str], prefix: str = "ca-") -> None:
    """Delete the OS users `user` mode made for these agents (the product never does: a test must)."""
    for agent_id in agent_ids:
        name = prefix + agent_id.replace("-", "")[:12]
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        subprocess.run(["userdel", name], check=False, capture_output=True)


def adapters(extra: dict[str, dict[str, Any]]) -> dict[str, Any]:
    from company_agents.demo import example_adapter

    return {
        "scripted": {"type": "process", "binary": sys.executable, "args": [str(SCRIPTED)]},
        "hostile": {"type": "process", "binary": sys.executable, "args": [str(HOSTILE)]},
        "example": example_adapter(),
        **extra,
    }


def bwrap_works_for(user: OsUser) -> str | None:
    """Why bwrap cannot sandbox as ``user`` here (``None`` when it can)."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return "bubblewrap is not installed"
    out = subprocess.run(
        [*user.prefix(), bwrap, "--ro-bind", "/", "/", "--unshare-pid", "--proc", "/proc", "true"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return None if out.returncode == 0 else f"bwrap as {user.name}: {out.stderr.strip()[:200]}"
