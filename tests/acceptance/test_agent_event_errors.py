"""A database error while applying one agent event is reported, and never silences the agent.

Both events below are refused by the database itself (not by our validation): a cost whose amount is
not a number, and a completion whose output JSON holds a NUL character, which ``jsonb`` cannot store.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.acceptance.orchestrator import Orchestrator, add_task, query, setup_company, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def env(cli_env: dict[str, str], db_url: str) -> dict[str, str]:
    return {
        **cli_env,
        "DATABASE_URL": db_url,
        "COMPANY_AGENTS_SCHEDULER_POLL_SECONDS": "0.2",
        "COMPANY_AGENTS_SHUTDOWN_GRACE_SECONDS": "2",
    }


def _run_log(home: Path) -> str:
    return "".join(p.read_text() for p in (home / "logs" / "runs").glob("*.log"))


def _orchestrator_log(home: Path) -> str:
    return (home / "logs" / "orchestrator.log").read_text()


def test_a_refused_cost_is_reported_and_the_complete_after_it_still_applies(
    env: dict[str, str], home: Path, db_url: str
) -> None:
    setup_company(env, home)
    task_id = add_task(env, "bad_cost", "--max-attempts", "1")
    orch = Orchestrator(env)
    try:
        wait_for(
            lambda: (
                query(db_url, "SELECT status FROM tasks WHERE id = %s", task_id)[0][0] != "queued"
                and query(db_url, "SELECT count(*) FROM leases")[0][0] == 0
            ),
            what="the attempt to end",
        )
    finally:
        orch.terminate()
    assert query(db_url, "SELECT attempt, status, exit_reason FROM runs WHERE task_id = %s", task_id) == [
        (1, "succeeded", "complete")
    ]
    assert query(db_url, "SELECT status FROM tasks WHERE id = %s", task_id) == [("review",)]
    assert query(db_url, "SELECT count(*) FROM cost_entries WHERE task_id = %s", task_id) == [(1,)]
    # Refused as it arrived (the amount is not a number), before any write: a reason in the run log.
    assert "event cost refused: cost event: 'usd' is not a number" in _run_log(home)


def test_a_complete_the_database_refuses_ends_the_attempt_with_the_reason(
    env: dict[str, str], home: Path, db_url: str
) -> None:
    setup_company(env, home)
    task_id = add_task(env, "bad_complete", "--max-attempts", "1")
    orch = Orchestrator(env)
    try:
        wait_for(
            lambda: query(db_url, "SELECT status FROM tasks WHERE id = %s", task_id) == [("failed",)],
            what="the attempt to end",
        )
    finally:
        orch.terminate()
    ((status, exit_reason, error),) = query(
        db_url, "SELECT status, exit_reason, error FROM runs WHERE task_id = %s", task_id
    )
    assert (status, exit_reason) == ("failed", "crash")
    assert error.startswith("the agent's complete could not be applied: "), error
    assert "event complete failed" in _run_log(home) and "event complete failed" in _orchestrator_log(home)
