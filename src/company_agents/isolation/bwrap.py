"""The bubblewrap command line that runs one agent (``sandbox`` and ``user`` modes; docs/security.md).

What the agent sees:

- the system read-only (``--ro-bind / /``), so every tool it may call is where it expects it;
- a fresh ``/dev``, a fresh ``/proc`` of its own PID namespace (no orchestrator, no other agent in it),
  a private IPC namespace, and an empty ``/tmp`` of its own;
- nothing of the instance home (an empty tmpfs over it: no database socket, master key, config.json,
  logs or other runs) but its own workspace, bound read-write at its usual path, which holds its ``HOME``
  and config dir;
- credentials of the orchestrator's OS user that are not its business hidden (``HIDDEN_IN_HOME``,
  ``/run/user/<uid>``, and any path in ``COMPANY_AGENTS_SANDBOX_HIDE``);
- the network as it is: agents call their model APIs and the tool endpoint.

In ``user`` mode root builds the sandbox and the agent's command runs under its own uid through
``setpriv`` (no capabilities, no supplementary groups, no new privileges). A directory the agent's user
may not traverse (``/root`` is 0700) is replaced by an empty tmpfs, and only the single entry on the way
to something the agent needs (its binary, its workspace) is bound back in: inside the sandbox the agent
gets traverse permission on that path and nothing more, and the host's permissions are never changed.

``--unshare-pid`` makes the run's processes a PID namespace whose first process is bwrap's: when the
agent's command exits, or bwrap is killed, the kernel kills every process left in it, including ones
that started a session of their own. ``--die-with-parent`` ends the sandbox when the orchestrator dies.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path

# Under the orchestrator user's own home: credentials an agent has no business reading.
HIDDEN_IN_HOME = (
    ".ssh",
    ".gnupg",
    ".aws",
    ".azure",
    ".kube",
    ".docker",
    ".netrc",
    ".pgpass",
    ".git-credentials",
    ".config/gcloud",
    ".config/gh",
    ".password-store",
)
SANDBOX_TMP = Path("/tmp")
SETPRIV_DROP = ["--clear-groups", "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs"]


def can_traverse(path: Path, uid: int, gid: int) -> bool:
    """May this uid/gid (no supplementary groups) enter the directory? ACLs are not looked at."""
    if uid == 0:
        return True
    try:
        st = path.stat()
    except OSError:
        return False
    if st.st_uid == uid:
        return bool(st.st_mode & 0o100)
    if st.st_gid == gid:
        return bool(st.st_mode & 0o010)
    return bool(st.st_mode & 0o001)


def _under(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def reach_ops(
    targets: Iterable[tuple[Path, bool]], uid: int, gid: int, *, own_tmp: Path = SANDBOX_TMP
) -> list[tuple[int, str, str]]:
    """The mounts that let the agent reach each target through directories it may not traverse.

    ``(depth, op, path)``: a blocked directory becomes an empty tmpfs; the entry below it on the way to
    a target is bound back read-only (unless it is itself blocked, then it is a tmpfs in turn). A target
    given with ``False`` is not bound itself (the caller mounts something there).
    """
    ops: dict[str, tuple[int, str, str]] = {}
    for target, bind_target in targets:
        parts = target.parts
        blocked_parent = False
        for depth in range(1, len(parts)):
            path = Path(*parts[: depth + 1])
            if _under(path, own_tmp):
                break  # /tmp is the sandbox's own
            last = depth == len(parts) - 1
            blocked = not last and not can_traverse(path, uid, gid)
            if blocked:
                ops[str(path)] = (depth, "--tmpfs", str(path))
            elif blocked_parent and str(path) not in ops and (bind_target or not last):
                ops[str(path)] = (depth, "--ro-bind", str(path))
            blocked_parent = blocked
    return sorted(ops.values())


def command_paths(argv: list[str], path_env: str) -> list[Path]:
    """The files an agent's command needs: its executable and every absolute path in its arguments."""
    found: list[Path] = []
    exe = shutil.which(argv[0], path=path_env) if argv else None
    for item in [exe, *argv[1:]]:
        if not item or not os.path.isabs(item) or not os.path.exists(item):
            continue
        literal = Path(item)
        found.append(Path(os.path.realpath(literal.parent)) / literal.name)
        found.append(Path(os.path.realpath(literal)))
    return found


def hidden_paths(extra: Iterable[Path], uid: int) -> list[Path]:
    """What is hidden on top of the instance home, among the paths that exist."""
    candidates = [Path.home() / name for name in HIDDEN_IN_HOME]
    candidates += [Path(f"/run/user/{uid}"), *(p.expanduser() for p in extra)]
    return [p for p in candidates if p.exists() or p.is_symlink()]


def _dirs_to(path: Path, top: Path, perms: str) -> list[str]:
    """Create the directories strictly between ``top`` and ``path`` in the sandbox, with ``perms``."""
    args: list[str] = []
    for between in reversed(path.parents):
        if top in between.parents:
            args += ["--perms", perms, "--dir", str(between)]
    return args


def bwrap_argv(
    *,
    bwrap: str,
    command: list[str],
    workspace: Path,
    home: Path,
    hide: Iterable[Path],
    path_env: str,
    agent_uid: int | None = None,
    agent_gid: int | None = None,
    setpriv: str | None = None,
) -> list[str]:
    """The full argv: bwrap, its mounts, then (``user`` mode) setpriv, then the agent's command."""
    args = [
        bwrap,
        "--ro-bind", "/", "/",
        "--dev", "/dev",
        "--proc", "/proc",
        # Sticky and world-writable, as /tmp is: in user mode the agent's own user must be able to
        # create its temp files there (bwrap makes a tmpfs 0755 root otherwise).
        "--perms", "1777", "--tmpfs", str(SANDBOX_TMP),
        "--unshare-pid",
        "--unshare-ipc",
        "--die-with-parent",
        "--new-session",
    ]  # fmt: skip
    needed = command_paths(command, path_env)
    # The agent's own command, should it live in /tmp, is all it sees of the host's /tmp (read-only).
    for path in sorted({p for p in needed if _under(p, SANDBOX_TMP)}):
        args += [*_dirs_to(path, SANDBOX_TMP, "0755"), "--ro-bind", str(path), str(path)]
    if agent_uid is not None and agent_gid is not None:
        targets = [(p, True) for p in needed] + [(home, False)]
        for _, op, where in reach_ops(targets, agent_uid, agent_gid):
            args += [op, where] if op == "--tmpfs" else [op, where, where]
    for hidden in hidden_paths(hide, os.getuid()):
        if _under(home, hidden) or _under(workspace, hidden):
            continue
        args += ["--tmpfs", str(hidden)] if hidden.is_dir() else ["--ro-bind", "/dev/null", str(hidden)]
    if _under(home, SANDBOX_TMP):
        args += _dirs_to(home, SANDBOX_TMP, "0755")
    args += ["--tmpfs", str(home)]
    # The directories between the home and the workspace exist in the sandbox only to be traversed
    # (bwrap could make them 0700 root, which the agent's user could not enter).
    args += _dirs_to(workspace, home, "0711")
    args += ["--bind", str(workspace), str(workspace), "--chdir", str(workspace)]
    inner = command
    if agent_uid is not None and agent_gid is not None:
        if setpriv is None:
            raise ValueError("user mode needs setpriv")
        inner = [setpriv, f"--reuid={agent_uid}", f"--regid={agent_gid}", *SETPRIV_DROP, "--", *command]
    return [*args, "--", *inner]
