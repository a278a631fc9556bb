"""Ending every process of a run, and nothing else (docs/security.md, "Nothing outlives its run").

The coding CLIs start their tool commands in sessions of their own, which a kill of the agent's process
group does not reach. In ``sandbox`` and ``user`` modes the run is a PID namespace (``bwrap``): its
first process is bwrap's, and when it goes the kernel kills everything in the namespace. In ``none`` mode
there is no such boundary, so the run's processes are found by walking the agent's descendants and, for
those that were re-parented when their parent exited, by the run id every one of them inherits in its
environment (``CA_RUN_ID``); an agent that clears its environment and detaches escapes this, which is
one of the reasons ``none`` is not a mode to run untrusted agents in.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time

import psutil

MARKER = "CA_RUN_ID"
SANDBOX_PROCESS = "bwrap"  # bwrap's own processes: signalled through the namespace, never by SIGTERM


class RunProcesses:
    """The processes of one run, started as ``pid`` (the agent, or bwrap in front of it)."""

    def __init__(self, pid: int, *, namespaced: bool, run_id: str) -> None:
        self.pid = pid
        self.namespaced = namespaced
        self.run_id = run_id

    def _descendants(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.pid).children(recursive=True)
        except psutil.Error:
            return []

    def _marked(self) -> list[psutil.Process]:
        """Processes carrying this run's id in their environment (``none`` mode), ours only."""
        found = []
        me = os.getpid()
        for proc in psutil.process_iter():
            if proc.pid == me:
                continue
            try:
                if proc.environ().get(MARKER) == self.run_id:
                    found.append(proc)
            except psutil.Error:  # gone, a zombie, or another user's: not ours to end
                continue
        return found

    def signal(self, sig: int) -> None:
        """Ask the run's processes to stop (SIGTERM). bwrap does not forward signals, so in a sandbox
        they go to the agent's processes themselves; a SIGTERM to bwrap would SIGKILL them at once."""
        if not self.namespaced:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, sig)
        for proc in self._descendants():
            with contextlib.suppress(psutil.Error):
                if not self.namespaced or proc.name() != SANDBOX_PROCESS:
                    proc.send_signal(sig)

    def kill_all(self, *, alive: bool) -> int:
        """SIGKILL everything left of the run; ``alive``: its first process has not been reaped yet
        (once it is, its pid may name someone else and only the group and the marker are used)."""
        victims = self._descendants() if alive else []
        if alive:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(self.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        if not self.namespaced:
            for _ in range(3):  # they may fork while we look
                more = [p for p in self._marked() if p.pid not in {v.pid for v in victims}]
                if not more:
                    break
                for proc in more:
                    with contextlib.suppress(psutil.Error):
                        proc.send_signal(signal.SIGKILL)
                victims += more
        for proc in victims:
            with contextlib.suppress(psutil.Error):
                proc.send_signal(signal.SIGKILL)
        # A namespace's members die with its first process, but not in the same instant: wait, so
        # that "the run ended" means they are gone.
        _wait_gone(victims, timeout=5)
        return len(victims)


def _gone(proc: psutil.Process) -> bool:
    try:
        return proc.status() == psutil.STATUS_ZOMBIE  # dead; reaping is its parent's business
    except psutil.Error:
        return True


def _wait_gone(procs: list[psutil.Process], *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    left = list(procs)
    while left and time.monotonic() < deadline:
        left = [p for p in left if not _gone(p)]
        if left:
            time.sleep(0.01)
