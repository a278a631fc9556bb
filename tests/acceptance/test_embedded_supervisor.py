"""`up` supervises the embedded server: a killed postmaster is restarted, and the last one out stops it."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil
import pytest

from company_agents.db.embedded_auth import PASSWORD_FILE_NAME
from tests.acceptance.orchestrator import Orchestrator, add_task, query, setup_company, wait_for
from tests.acceptance.test_cli_up import run_cli

pytestmark = pytest.mark.slow


@pytest.fixture
def env(cli_env: dict[str, str]) -> dict[str, str]:
    # No DATABASE_URL: the embedded server in <home>/db.
    return {
        **cli_env,
        "COMPANY_AGENTS_SCHEDULER_POLL_SECONDS": "0.2",
        "COMPANY_AGENTS_SHUTDOWN_GRACE_SECONDS": "2",
    }


def _postmaster(home: Path) -> int | None:
    """The live postmaster of the embedded data directory, from its postmaster.pid."""
    try:
        pid = int((home / "db" / "postmaster.pid").read_text().splitlines()[0])
        proc = psutil.Process(pid)
        if proc.status() != psutil.STATUS_ZOMBIE and proc.name() == "postgres":
            return pid
    except (OSError, IndexError, ValueError, psutil.NoSuchProcess):
        pass
    return None


def _postmasters(home: Path) -> list[int]:
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        try:
            cmdline = " ".join(proc.info["cmdline"] or [])
            if proc.info["name"] == "postgres" and str(home / "db") in cmdline and " -D " in f" {cmdline}":
                if proc.status() != psutil.STATUS_ZOMBIE:
                    found.append(proc.pid)
        except psutil.NoSuchProcess:
            continue
    return found


def _url(home: Path) -> str:
    socket_dir = (home / "db" / "postmaster.pid").read_text().splitlines()[4]
    passfile = home / "secrets" / PASSWORD_FILE_NAME  # the server asks for its password
    return f"postgresql://postgres@/company_agents?host={socket_dir}&passfile={passfile}"


def _healthy(port: int) -> bool:
    try:
        resp = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
    except httpx.HTTPError:
        return False
    return resp.status_code == 200 and resp.json()["data"]["database"] == "ok"


def _handles(home: Path) -> list[int]:
    return [int(p) for p in json.loads((home / "db" / ".handle_pids.json").read_text() or "[]")]


def _no_server_left(home: Path) -> bool:
    return not _postmasters(home)


def test_up_restarts_a_killed_postmaster_by_itself_and_carries_on(
    env: dict[str, str], home: Path, record_property: Callable[[str, object], None]
) -> None:
    setup_company(env, home)
    orch = Orchestrator(env)
    try:
        old = _postmaster(home)
        assert old is not None
        os.kill(old, signal.SIGKILL)
        killed = time.monotonic()
        # No CLI command runs until /healthz is ok again: only `up` can have restarted the server.
        wait_for(
            lambda: _postmaster(home) not in (None, old) and _healthy(orch.api_port),
            timeout=60,
            what="/healthz ok on a new postmaster",
        )
        recovered = time.monotonic() - killed
        record_property("healthz_ok_seconds_after_postmaster_kill", round(recovered, 2))
        assert recovered < 20, f"/healthz ok again after {recovered:.1f}s"
        assert orch.proc.pid in _handles(home)
        task_id = add_task(env, "complete")
        url = _url(home)
        wait_for(
            lambda: query(url, "SELECT status FROM tasks WHERE id = %s", task_id)[0][0] == "review",
            timeout=60,
            what="a task enqueued after the restart runs",
        )
        events = query(
            url,
            "SELECT actor, payload->>'restartedBy' FROM audit_events "
            "WHERE action = 'system.database_restarted'",
        )
        assert events == [("system:supervisor", "orchestrator")]
    finally:
        err = orch.terminate()
    assert orch.proc.returncode == 0, err
    assert (
        "embedded database server was restarted by orchestrator"
        in (home / "logs" / "orchestrator.log").read_text()
    )
    wait_for(lambda: _no_server_left(home), timeout=20, what="the last process out stops the server")


def test_a_server_restarted_by_a_cli_command_is_stopped_when_up_stops(
    env: dict[str, str], home: Path
) -> None:
    orch = Orchestrator(env)
    try:
        old = _postmaster(home)
        assert old is not None
        # `up` is frozen while the postmaster dies and a CLI command restarts it, so the CLI does it.
        os.kill(orch.proc.pid, signal.SIGSTOP)
        try:
            os.kill(old, signal.SIGKILL)
            wait_for(lambda: _postmaster(home) is None, timeout=10, what="the postmaster gone")
            status = run_cli("db", "status", "--json", env=env)
            assert status.returncode == 0, status.stderr
            assert _postmaster(home) not in (None, old), "the CLI command restarted the server"
        finally:
            os.kill(orch.proc.pid, signal.SIGCONT)
        wait_for(lambda: _healthy(orch.api_port), timeout=30, what="/healthz ok")
        assert _handles(home) == [orch.proc.pid], "up still holds its handle; the CLI has let go"
    finally:
        err = orch.terminate()
    assert orch.proc.returncode == 0, err
    wait_for(lambda: _no_server_left(home), timeout=20, what="up, the last one out, stops the server")
    assert _handles(home) == []
