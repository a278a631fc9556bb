"""Real agent processes under a real `company-agents up`: outcomes, crashes, timeouts, restarts.

Every test runs in each of the product's database modes (``product_db``): its default, the embedded
server of the home with no ``DATABASE_URL`` (shared by `up`, the CLI and the test), and a URL to the
embedded or the external server.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
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
from tests.conftest import ProductDb

pytestmark = pytest.mark.slow  # real `up` and agent processes


@pytest.fixture
def db_url(product_db: ProductDb) -> str:
    """Where the test reads what the product wrote (this module's tests run once per mode)."""
    return product_db.url


@pytest.fixture
def env(cli_env: dict[str, str], product_db: ProductDb) -> dict[str, str]:
    return {
        **cli_env,
        **product_db.env,
        "COMPANY_AGENTS_SCHEDULER_POLL_SECONDS": "0.2",
        "COMPANY_AGENTS_SHUTDOWN_GRACE_SECONDS": "2",
        # Crashed and reaped attempts come back at once here (backoff: test_retry_backoff.py).
        "COMPANY_AGENTS_RETRY_BACKOFF_BASE_SECONDS": "0",
        # These tests read the host pids the agent writes (a sandbox's PID namespace has its own), so
        # they run unisolated; the isolation modes themselves are tested in test_isolation.py.
        "COMPANY_AGENTS_ISOLATION": "none",
    }


def _status(db_url: str, task_id: str) -> str:
    return str(query(db_url, "SELECT status FROM tasks WHERE id = %s", task_id)[0][0])


def test_an_agent_process_runs_a_task_to_review(env: dict[str, str], home: Path, db_url: str) -> None:
    setup_company(env, home)
    task_id = add_task(env, "complete", "--keep")
    orch = Orchestrator(env)
    try:
        wait_for(lambda: _status(db_url, task_id) == "review", what="review")
    finally:
        orch.terminate()
    ((run_id, status, exit_reason, workspace),) = query(
        db_url, "SELECT id, status, exit_reason, workspace_path FROM runs WHERE task_id = %s", task_id
    )
    assert (status, exit_reason) == ("succeeded", "complete")
    ws = Path(workspace)
    assert ws == home / "runs" / str(run_id)
    assert (ws / ".git").is_dir()
    task_json = json.loads((ws / ".company-agents" / "task.json").read_text())
    assert task_json["taskId"] == task_id and task_json["fencingToken"] == 1
    for name in ("AGENTS.md", "TOOLS.md", "MEMORY.md", "budget.json"):
        assert (ws / ".company-agents" / name).exists()
    assert json.loads((ws / ".run" / "checkpoints" / "0001.json").read_text())["message"] == "working"
    assert (ws / "result.txt").read_text() == "done: task complete\n"
    run_log = (home / "logs" / "runs" / f"{run_id}.log").read_text()
    assert '"type": "complete"' in run_log and "exited with code 0" in run_log
    assert query(db_url, "SELECT model, input_tokens FROM cost_entries WHERE task_id = %s", task_id) == [
        ("test-model", 10)
    ]
    assert query(db_url, "SELECT payload->>'message' FROM run_checkpoints WHERE run_id = %s", run_id) == [
        ("working",)
    ]


def test_a_successful_run_without_keep_leaves_no_workspace(
    env: dict[str, str], home: Path, db_url: str
) -> None:
    setup_company(env, home)
    task_id = add_task(env, "complete")
    orch = Orchestrator(env)
    try:
        wait_for(lambda: _status(db_url, task_id) == "review", what="review")
        wait_for(
            lambda: query(db_url, "SELECT workspace_deleted_at IS NOT NULL FROM runs")[0][0], what="cleanup"
        )
    finally:
        orch.terminate()
    assert list((home / "runs").iterdir()) == []


def test_kill_9_of_the_agent_ends_the_run_as_a_crash_and_the_task_is_retried(
    env: dict[str, str], home: Path, db_url: str
) -> None:
    setup_company(env, home)
    task_id = add_task(env, "crash_once")
    orch = Orchestrator(env)
    try:
        wait_for(lambda: bool(list((home / "runs").glob("*/pid"))), what="agent start")
        pid = int(next((home / "runs").glob("*/pid")).read_text())
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: _status(db_url, task_id) == "review", what="retry to review")
    finally:
        orch.terminate()
    runs = query(
        db_url,
        "SELECT attempt, status, exit_reason, exit_code FROM runs WHERE task_id = %s ORDER BY attempt",
        task_id,
    )
    assert runs == [(1, "failed", "crash", -9), (2, "succeeded", "complete", None)]


def test_a_hung_agent_times_out_and_its_whole_group_is_gone(
    env: dict[str, str], home: Path, db_url: str
) -> None:
    setup_company(env, home, adapter_extra={"timeoutSeconds": 2})
    task_id = add_task(env, "hang", "--max-attempts", "1", "--keep")
    orch = Orchestrator(env)
    try:
        wait_for(lambda: _status(db_url, task_id) == "failed", timeout=60, what="timeout")
    finally:
        orch.terminate()
    ws = next((home / "runs").iterdir())
    pid, child = int((ws / "pid").read_text()), int((ws / "child_pid").read_text())
    assert not pid_alive(pid) and not pid_alive(child), "the agent and its child must both be gone"
    assert query(db_url, "SELECT exit_reason FROM runs WHERE task_id = %s", task_id) == [("timeout",)]


def test_sigterm_of_the_orchestrator_leaves_no_agent_and_no_lease(
    env: dict[str, str], home: Path, db_url: str
) -> None:
    setup_company(env, home, agents=2)
    tasks = [add_task(env, "hang") for _ in range(2)]
    orch = Orchestrator(env)
    wait_for(lambda: len(list((home / "runs").glob("*/child_pid"))) == 2, what="both agents running")
    pids = [int(p.read_text()) for p in (home / "runs").glob("*/pid")]
    pids += [int(p.read_text()) for p in (home / "runs").glob("*/child_pid")]
    orch.terminate()
    assert orch.proc.returncode == 0
    assert [p for p in pids if pid_alive(p)] == []
    assert query(db_url, "SELECT count(*) FROM leases") == [(0,)]
    assert sorted(_status(db_url, t) for t in tasks) == ["queued", "queued"], "released straight back"
    exits = query(db_url, "SELECT exit_reason FROM runs")
    assert sorted(e for (e,) in exits) == ["shutdown", "shutdown"]


def test_kill_9_of_the_orchestrator_then_restart_requeues_and_fences_the_orphan(
    env: dict[str, str], home: Path, db_url: str, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    setup_company(env, home, adapter_extra={"env": {"ORPHAN_GO": str(go)}})
    task_id = add_task(env, "orphan")
    first = Orchestrator(env)
    wait_for(lambda: _status(db_url, task_id) == "running", what="attempt 1 running")
    wait_for(lambda: bool(list((home / "runs").glob("*/orphan_pid"))), what="the escaped writer")
    orphan_pid = int(next((home / "runs").glob("*/orphan_pid")).read_text())
    first.kill9()
    killed_at = time.monotonic()
    assert pid_alive(orphan_pid), "a process that left the agent's group outlives its orchestrator"
    # Same tool port, as on a real machine: the orphan's MCP_SERVER_URL reaches the new orchestrator.
    # The lease is the default 5 minutes: only the start-up sweep of dead holders can re-queue in time.
    second = Orchestrator(env, tool_port=first.tool_port)
    try:
        wait_for(
            lambda: query(db_url, "SELECT count(*) FROM runs WHERE task_id = %s", task_id)[0][0] == 2,
            timeout=30,
            what="requeue and a second attempt",
        )
        requeued_after = time.monotonic() - killed_at
        assert requeued_after < 30, f"re-queued after {requeued_after:.1f}s"
        wait_for(lambda: _status(db_url, task_id) == "review", what="attempt 2 completes")
        go.write_text("go")
        status_file = Path(str(go) + ".status")
        wait_for(status_file.exists, timeout=30, what="the orphan's write")
        assert status_file.read_text() == "409"
    finally:
        second.terminate()
        if pid_alive(orphan_pid):
            os.kill(orphan_pid, signal.SIGKILL)
    assert query(
        db_url, "SELECT attempt, exit_reason FROM runs WHERE task_id = %s ORDER BY attempt", task_id
    ) == [(1, "crash"), (2, "complete")]
    (output,) = query(db_url, "SELECT output FROM tasks WHERE id = %s", task_id)[0]
    assert output["output"]["attempt"] == 2


def test_two_orchestrators_on_one_database_run_every_task_exactly_once(
    env: dict[str, str], home: Path, db_url: str, tmp_path: Path, product_db: ProductDb
) -> None:
    setup_company(env, home, agents=4)
    n = 16
    for _ in range(n):
        add_task(env, "complete")
    other_home = tmp_path / "home2"
    other_home.mkdir()
    (other_home / "config.json").write_text((home / "config.json").read_text())
    a = Orchestrator(env)
    try:
        # One master key per database (docs/deployment.md): the second home gets a copy of the first's.
        (other_home / "secrets").mkdir(mode=0o700)
        shutil.copy2(home / "secrets" / "master.key", other_home / "secrets" / "master.key")
        # With a URL the second orchestrator has a home of its own; without one, a home IS its
        # database, so the two share the home and its embedded server.
        b = Orchestrator({**env, "COMPANY_AGENTS_HOME": str(other_home)} if product_db.env else env)
        try:
            wait_for(
                lambda: query(db_url, "SELECT count(*) FROM tasks WHERE status = 'review'")[0][0] == n,
                timeout=120,
                what="all tasks in review",
            )
        finally:
            b.terminate()
    finally:
        a.terminate()
    per_task = query(db_url, "SELECT task_id, count(*) FROM runs GROUP BY task_id")
    assert len(per_task) == n and all(c == 1 for _, c in per_task)


def test_the_orchestrator_keeps_going_when_its_connections_are_dropped(
    env: dict[str, str], home: Path, db_url: str
) -> None:
    setup_company(env, home)
    first = add_task(env, "complete")
    orch = Orchestrator(env)
    try:
        wait_for(lambda: _status(db_url, first) == "review", what="first task")
        # Every backend of the orchestrator (pool, listener) is killed, as by a restart or a network cut.
        killed = query(
            db_url,
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = 'company-agents up' AND datname = current_database()",
        )[0][0]
        assert killed >= 1
        second = add_task(env, "complete")
        wait_for(lambda: _status(db_url, second) == "review", timeout=60, what="work after the drop")
        assert orch.proc.poll() is None, "up must survive its connections being dropped"
    finally:
        orch.terminate()


def test_max_concurrent_runs_caps_the_runs_of_one_orchestrator(
    env: dict[str, str], home: Path, db_url: str
) -> None:
    setup_company(env, home, agents=3)
    tasks = [add_task(env, "wait_stop") for _ in range(3)]
    orch = Orchestrator({**env, "COMPANY_AGENTS_MAX_CONCURRENT_RUNS": "2"})
    try:
        wait_for(lambda: query(db_url, "SELECT count(*) FROM leases")[0][0] == 2, what="two runs")
        time.sleep(1.0)  # several scheduler passes: the third task must stay queued
        assert query(db_url, "SELECT count(*) FROM leases")[0][0] == 2
        assert sorted(_status(db_url, t) for t in tasks).count("queued") == 1
    finally:
        orch.terminate()
