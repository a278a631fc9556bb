"""Which isolation mode agents run under, chosen once when ``up`` starts (docs/security.md).

- ``user``: the orchestrator is root. Each agent runs under an OS user of its own, inside a bubblewrap
  sandbox root builds for it (mount and PID namespaces), so it neither sees nor can signal anything else.
- ``sandbox``: an unprivileged orchestrator. The same bubblewrap sandbox, built in an unprivileged user
  namespace; the agent keeps the orchestrator's uid but sees nothing of the instance home but its workspace.
- ``none``: the agent runs as the orchestrator's user with nothing between them; only when asked for.

The default is the strongest mode available; when none is, ``up`` refuses to start and says what to install.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Literal

from company_agents.errors import IsolationUnavailable
from company_agents.settings import Settings

Mode = Literal["user", "sandbox", "none"]
MODES: tuple[Mode, ...] = ("user", "sandbox", "none")
# The modes whose agents run in a PID namespace of their own: ending its first process ends them all.
NAMESPACED: frozenset[str] = frozenset({"user", "sandbox"})

INSTALL_HINT = (
    "install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap; Fedora: dnf install bubblewrap)"
)
NONE_WARNING = (
    "agents are NOT isolated: each can do anything this OS user can (read the master key, "
    "connect to the database, end the orchestrator)"
)


@dataclass(frozen=True)
class Isolation:
    """The mode chosen for this process, and the tools it runs agents with."""

    mode: Mode
    detail: str
    bwrap: str | None = None
    setpriv: str | None = None
    user_prefix: str = "ca-"
    warning: str | None = None
    # Why the stronger modes are not available (shown by `doctor`).
    unavailable: dict[str, str] = field(default_factory=dict)

    @property
    def namespaced(self) -> bool:
        return self.mode in NAMESPACED


def _probe(argv: list[str]) -> str | None:
    """Run a probe; ``None`` when it worked, else the first line of why not."""
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if out.returncode == 0:
        return None
    return (out.stderr.strip().splitlines() or [f"exit code {out.returncode}"])[0]


PROBE_ARGS = ["--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "--unshare-pid", "--unshare-ipc"]


def available_modes() -> tuple[dict[Mode, Isolation], dict[str, str]]:
    """Every mode this machine supports now, and why each of the others is not."""
    found: dict[Mode, Isolation] = {}
    missing: dict[str, str] = {}
    bwrap = shutil.which("bwrap")
    root = os.geteuid() == 0
    if bwrap is None:
        missing["user"] = missing["sandbox"] = f"bubblewrap (bwrap) is not installed: {INSTALL_HINT}"
    else:
        why = _probe([bwrap, *PROBE_ARGS, "true"])
        version = (_probe_version(bwrap) or "bubblewrap").strip()
        if root:
            tools = {name: shutil.which(name) for name in ("setpriv", "useradd")}
            absent = [name for name, path in tools.items() if path is None]
            if why is not None:
                missing["user"] = f"bwrap does not work here: {why}"
            elif absent:
                missing["user"] = f"{', '.join(absent)} not found (Debian: util-linux, passwd)"
            else:
                found["user"] = Isolation(
                    mode="user",
                    detail=f"{version}, one OS user per agent",
                    bwrap=bwrap,
                    setpriv=tools["setpriv"],
                )
            # As root, a sandbox without a user of its own would run the agent as root: not offered.
            missing["sandbox"] = "the orchestrator runs as root: `user` mode is the one for root"
        elif why is not None:
            missing["sandbox"] = (
                f"bwrap cannot create a sandbox for this user ({why}); unprivileged user namespaces "
                "must be allowed (sysctl kernel.unprivileged_userns_clone=1, or the AppArmor profile "
                "for bwrap on Ubuntu 24.04+)"
            )
        else:
            found["sandbox"] = Isolation(mode="sandbox", detail=f"{version}, unprivileged", bwrap=bwrap)
        if not root:
            missing["user"] = "the orchestrator does not run as root"
    found["none"] = Isolation(mode="none", detail="no isolation", warning=NONE_WARNING)
    return found, missing


def _probe_version(bwrap: str) -> str | None:
    try:
        out = subprocess.run([bwrap, "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def requested_mode(settings: Settings) -> str:
    """``COMPANY_AGENTS_ISOLATION`` if set, else ``"isolation"`` in config.json, else ``auto``."""
    if settings.isolation != "auto":
        return settings.isolation
    try:
        config = json.loads(settings.config_path.read_text())
    except (OSError, ValueError):
        return "auto"
    value = config.get("isolation") if isinstance(config, dict) else None
    return value if isinstance(value, str) else "auto"


def choose_isolation(settings: Settings) -> Isolation:
    """The mode agents run under; raises ``IsolationUnavailable`` with what to install or set."""
    wanted = requested_mode(settings)
    if wanted not in (*MODES, "auto"):
        raise IsolationUnavailable(
            f"isolation {wanted!r} in config.json is not a mode (use auto, user, sandbox or none)"
        )
    if wanted == "none":  # asked for: nothing to probe
        return _with(unisolated(), settings, {})
    found, missing = available_modes()
    if wanted == "auto":
        for mode in ("user", "sandbox"):
            if mode in found:
                return _with(found[mode], settings, missing)
        reasons = "; ".join(f"{m}: {why}" for m, why in missing.items())
        raise IsolationUnavailable(
            f"no way to isolate agents on this machine ({reasons}). {INSTALL_HINT[0].upper()}"
            f"{INSTALL_HINT[1:]}, or set COMPANY_AGENTS_ISOLATION=none to run agents unisolated "
            "(see docs/security.md)"
        )
    if wanted not in found:
        raise IsolationUnavailable(f"isolation {wanted} is not available: {missing.get(wanted, '?')}")
    return _with(found[wanted], settings, missing)


def _with(iso: Isolation, settings: Settings, missing: dict[str, str]) -> Isolation:
    return Isolation(
        mode=iso.mode,
        detail=iso.detail + (f" (prefix {settings.agent_user_prefix})" if iso.mode == "user" else ""),
        bwrap=iso.bwrap,
        setpriv=iso.setpriv,
        user_prefix=settings.agent_user_prefix,
        warning=iso.warning,
        unavailable=missing,
    )


def unisolated() -> Isolation:
    """``none``, for code paths that run an agent outside ``up`` (tests of the runner itself)."""
    return Isolation(mode="none", detail="no isolation", warning=NONE_WARNING)
