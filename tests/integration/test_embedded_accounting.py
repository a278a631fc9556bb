"""The shared-server accounting survives a postmaster crash: the last process out stops the server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from company_agents.db.embedded import EmbeddedServer, postmaster_pid

pytestmark = pytest.mark.slow

# Holds a handle until a line arrives on stdin, then releases it, as `up` does when it stops. It does
# not watch the server: whatever happens to the postmaster meanwhile, it only learns at release.
HOLDER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from company_agents.db.embedded import EmbeddedServer
    server = EmbeddedServer(Path(sys.argv[1]))
    server.start()
    print("ready", flush=True)
    sys.stdin.readline()
    server.release()
    print("released", flush=True)
    """
)


def _live_postmasters(pgdata: Path) -> list[int]:
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        try:
            cmdline = proc.info["cmdline"] or []
            if proc.info["name"] == "postgres" and "-D" in cmdline and str(pgdata) in cmdline:
                if proc.status() != psutil.STATUS_ZOMBIE:
                    found.append(proc.pid)
        except psutil.NoSuchProcess:
            continue
    return found


def _wait(check: object, timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(check) and check():
            return True
        time.sleep(0.05)
    return False


def test_a_holder_stops_the_server_another_process_restarted_after_a_crash(tmp_path: Path) -> None:
    pgdata = tmp_path / "db"
    with subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(pgdata)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as holder:
        assert holder.stdin is not None and holder.stdout is not None
        try:
            assert holder.stdout.readline().strip() == "ready"
            first = postmaster_pid(pgdata)
            assert first is not None
            os.kill(first, signal.SIGKILL)
            assert _wait(lambda: postmaster_pid(pgdata) is None), "the postmaster is gone"
            # Another process (a CLI command) restarts it, uses it and lets go: the holder remains.
            cli = EmbeddedServer(pgdata)
            cli.start()
            second = postmaster_pid(pgdata)
            assert second not in (None, first)
            cli.release()
            assert json.loads((pgdata / ".handle_pids.json").read_text()) == [holder.pid]
            assert postmaster_pid(pgdata) == second, "not the last one out: the server stays"
            holder.stdin.write("stop\n")
            holder.stdin.flush()
            assert holder.stdout.readline().strip() == "released"
            assert holder.wait(timeout=30) == 0
        finally:
            if holder.poll() is None:
                holder.kill()
                holder.wait()
    assert _wait(lambda: not _live_postmasters(pgdata)), "the last one out stops the server running now"
    assert json.loads((pgdata / ".handle_pids.json").read_text()) == []
