"""A crashed orchestrator leaves no orphans: its agents die with it, and a restart re-queues at once."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.acceptance.orchestrator import (
    Orchestrator,
    add_task,
    pid_alive,
    query,
    setup_company,
    wait_for,
)
from tests.acceptance.test_cli_up import kill_and_reap

pytestmark = pytest.mark.slow


@pytest.fixture
def env(cli_env: dict[str, str], db_url: str) -> dict[str, str]:
    # The default lease (5 minutes) on purpose: nothing here may wait for the lease to run out.
    return {
        **cli_env,
        "DATABASE_URL": db_url,
        "COMPANY_AGENTS_SCHEDULER_POLL_SECONDS": "0.2",
        "COMPANY_AGENTS_SHUTDOWN_GRACE_SECONDS": "2",
        # These tests read the host pids the agent writes (a sandbox's PID namespace has its own), so
        # they run unisolated; the isolation modes themselves are tested in test_isolation.py.
        "COMPANY_AGENTS_ISOLATION": "none",
    }


@pytest.fixture
def start_up() -> Iterator[Callable[[dict[str, str]], Orchestrator]]:
    """Starts `up`; whatever a failed test left running is killed with its whole group."""
    started: list[Orchestrator] = []

    def start(env: dict[str, str]) -> Orchestrator:
        started.append(Orchestrator(env))
        return started[-1]

    yield start
    for orch in started:
        kill_and_reap(orch.proc)


def _status(db_url: str, task_id: str) -> str:
    return str(query(db_url, "SELECT status FROM tasks WHERE id = %s", task_id)[0][0])


def test_kill_9_of_up_ends_its_agents_and_a_restart_requeues_the_task_in_seconds(
    env: dict[str, str],
    home: Path,
    db_url: str,
    start_up: Callable[[dict[str, str]], Orchestrator],
    record_property: Callable[[str, object], None],
) -> None:
    setup_company(env, home)
    task_id = add_task(env, "hang_once")
    first = start_up(env)
    wait_for(lambda: bool(list((home / "runs").glob("*/child_pid"))), what="the agent and its child")
    ws = next((home / "runs").iterdir())
    agent, child = int((ws / "pid").read_text()), int((ws / "child_pid").read_text())
    (holder_pid, pgid) = query(db_url, "SELECT holder_pid, agent_pgid FROM runs WHERE task_id = %s", task_id)[
        0
    ]
    assert (holder_pid, pgid) == (first.proc.pid, agent)

    first.kill9()
    killed = time.monotonic()
    # The agent (it ignores SIGTERM) gets SIGKILL from the kernel when its parent dies.
    wait_for(lambda: not pid_alive(agent), timeout=10, what="the agent dies with up")
    # Its own child is not the orchestrator's child: it stays until the next orchestrator ends the group.
    assert pid_alive(child)
    assert _status(db_url, task_id) == "running"

    restarted = time.monotonic()
    second = start_up(env)
    healthy = time.monotonic()
    try:
        wait_for(lambda: not pid_alive(child), timeout=10, what="the agent's group ended")
        wait_for(
            lambda: query(db_url, "SELECT count(*) FROM runs WHERE task_id = %s", task_id)[0][0] == 2,
            timeout=30,
            what="the task queued again and claimed",
        )
        now = time.monotonic()
        since_kill, since_restart = now - killed, now - restarted
        record_property("requeued_seconds_after_kill", round(since_kill, 2))
        record_property("requeued_seconds_after_restart", round(since_restart, 2))
        record_property("requeued_seconds_after_up_healthy", round(now - healthy, 2))
        assert since_restart < 30, f"re-queued {since_restart:.1f}s after the restart"
        wait_for(lambda: _status(db_url, task_id) == "review", what="attempt 2 completes")
    finally:
        second.terminate()
    runs = query(
        db_url,
        "SELECT attempt, status, exit_reason FROM runs WHERE task_id = %s ORDER BY attempt",
        task_id,
    )
    assert runs == [(1, "failed", "crash"), (2, "succeeded", "complete")]
    events = query(
        db_url,
        "SELECT actor, action, payload->>'reason', (payload->>'attempt')::int FROM audit_events "
        "WHERE subject_id = %s AND payload->>'reason' = 'orchestrator_died'",
        task_id,
    )
    assert events == [("system:orchestrator", "task.requeued", "orchestrator_died", 1)]


def test_a_task_on_its_last_attempt_fails_when_its_orchestrator_died(
    env: dict[str, str], home: Path, db_url: str, start_up: Callable[[dict[str, str]], Orchestrator]
) -> None:
    setup_company(env, home)
    task_id = add_task(env, "hang", "--max-attempts", "1")
    first = start_up(env)
    wait_for(lambda: _status(db_url, task_id) == "running", what="running")
    first.kill9()
    second = start_up(env)
    try:
        wait_for(lambda: _status(db_url, task_id) == "failed", timeout=20, what="failed at once")
    finally:
        second.terminate()
    assert query(db_url, "SELECT status, exit_reason FROM runs WHERE task_id = %s", task_id) == [
        ("failed", "crash")
    ]
    assert query(db_url, "SELECT count(*) FROM leases") == [(0,)]
