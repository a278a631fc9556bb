"""An agent CLI's session resumed by the task's next run (docs/adapters.md §Sessions), with the real
CLIs, offline: the run after a reject with feedback goes on with the conversation of the run before,
told the feedback, and a session whose files are gone falls back to a fresh one, audited."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.acceptance.orchestrator import Orchestrator, add_task, cli, query, wait_for
from tests.acceptance.test_agent_clis import KEY, MODELS, hire, status
from tests.conftest import PgServer
from tests.fakes.agent_clis import cli_binary
from tests.fakes.model_server import CALL_ID_PREFIX, ModelServer, Script

pytestmark = pytest.mark.slow  # real `up` and real CLIs

FEEDBACK = "Say hello in French this time (feedback-7f3a)."
TITLE = "write hello (task-b41c)"


@pytest.fixture
def db_url(external_pg: PgServer) -> str:
    return external_pg.create_database()


@pytest.fixture
def model() -> Iterator[ModelServer]:
    with ModelServer(Script()) as server:
        yield server


@pytest.fixture
def env(cli_env: dict[str, str], db_url: str, model: ModelServer) -> dict[str, str]:
    # As tests/acceptance/test_agent_clis.py (straight to the test's model server), in any isolation mode
    # the machine has: the state is copied in and out of the workspace, which every mode binds.
    return {
        **cli_env,
        "COMPANY_AGENTS_ISOLATION": "none",
        "DATABASE_URL": db_url,
        "COMPANY_AGENTS_SCHEDULER_POLL_SECONDS": "0.2",
        "COMPANY_AGENTS_SHUTDOWN_GRACE_SECONDS": "2",
        "COMPANY_AGENTS_RETRY_BACKOFF_BASE_SECONDS": "0",
        "COMPANY_AGENTS_GATEWAY": "off",
        "ANTHROPIC_BASE_URL": model.url,
        "OPENAI_BASE_URL": f"{model.url}/v1",
        "GOOGLE_GEMINI_BASE_URL": model.url,
    }


def runs_of(db_url: str, task_id: str) -> list[tuple[Any, ...]]:
    return query(
        db_url,
        "SELECT id, fencing_token, status, exit_reason, cli_session FROM runs WHERE task_id = %s ORDER BY 2",
        task_id,
    )


def _turns(kind: str, body: Any) -> list[Any]:
    """The conversation a model request carries."""
    key = {"claude-code": "messages", "codex": "input", "gemini-cli": "contents"}[kind]
    return list(body.get(key) or []) if isinstance(body, dict) else []


def _conversation_requests(kind: str, model: ModelServer) -> list[Any]:
    """The model requests of the task's conversation (not a CLI's side request: a title, a summary)."""
    return [r for r in model.model_requests() if TITLE in json.dumps(_turns(kind, r.body))]


def _ended(home: Path, run: tuple[Any, ...]) -> bool:
    """The run's CLI has exited and its state is kept (it ends its run over MCP before it exits)."""
    path = home / "logs" / "runs" / f"{run[0]}.log"
    return path.exists() and "state for the task's next run" in path.read_text()


def _first_run_to_review(
    kind: str, env: dict[str, str], home: Path, db_url: str, model: ModelServer
) -> tuple[str, Orchestrator, int]:
    cli_binary(kind)
    model.script.model_version = MODELS[kind]
    hire(env, kind, MODELS[kind])
    task_id = add_task(env, TITLE)
    orch = Orchestrator(env)
    try:
        wait_for(lambda: status(db_url, task_id) == "review", timeout=90, what="review")
        wait_for(lambda: _ended(home, runs_of(db_url, task_id)[0]), what="the first run's end")
    except BaseException:
        orch.terminate()  # the caller only takes it over on success
        raise
    seen = len(model.model_requests())
    return task_id, orch, seen


@pytest.mark.parametrize("kind", list(MODELS))
def test_the_run_after_a_reject_resumes_the_cli_session_with_the_feedback(
    kind: str, env: dict[str, str], home: Path, db_url: str, model: ModelServer
) -> None:
    task_id, orch, seen = _first_run_to_review(kind, env, home, db_url, model)
    try:
        ((_, _, _, _, session),) = runs_of(db_url, task_id)
        assert session, "the first run records the CLI's session id"
        state = home / "cli-state" / task_id / "home"
        assert state.is_dir(), "the task's CLI state is kept for its next run"
        # Neither the provider's key nor the run's bearer token is kept (Gemini's settings.json held
        # the token: it is not kept with the state).
        for path in state.rglob("*"):
            if path.is_file() and not path.is_symlink():
                data = path.read_bytes()
                assert KEY.encode() not in data and b"ca_lease_" not in data, path
        cli(env, "task", "reject", task_id, "--feedback", FEEDBACK)
        wait_for(lambda: status(db_url, task_id) == "review", timeout=90, what="review by the resumed run")
        wait_for(lambda: _ended(home, runs_of(db_url, task_id)[-1]), what="the second run's end")
    finally:
        orch.terminate()
    _, second = runs_of(db_url, task_id)
    assert (second[1], second[2], second[3]) == (2, "succeeded", "complete")
    assert second[4] == session  # the same session, resumed
    resumed = [r for r in _conversation_requests(kind, model) if r in model.model_requests()[seen:]]
    # Its call of our tool, then the request with the tool's result.
    assert len(resumed) >= 2, "the resumed run asked the model twice"
    for request in resumed:
        turns = json.dumps(_turns(kind, request.body))
        # The previous run's conversation (its call of our tool with the scripted output, and the
        # model's final words) and, after it, the reviewer's feedback.
        assert "hello from the fake model" in turns and "FINAL: the task is complete." in turns
        if kind != "gemini-cli":  # Gemini's function calls carry no id
            assert f"{CALL_ID_PREFIX}_" in turns
        assert FEEDBACK in turns
        assert turns.index("FINAL: the task is complete.") < turns.index(FEEDBACK)
    assert cli(env, "run", "show", str(second[0]))["cliSession"] == session
    log = (home / "logs" / "runs" / f"{second[0]}.log").read_text()
    assert f"resuming {kind} session {session} (feedback)" in log


def test_a_session_whose_files_are_gone_falls_back_to_a_fresh_session_and_is_audited(
    env: dict[str, str], home: Path, db_url: str, model: ModelServer
) -> None:
    kind = "claude-code"
    task_id, orch, seen = _first_run_to_review(kind, env, home, db_url, model)
    try:
        ((_, _, _, _, session),) = runs_of(db_url, task_id)
        shutil.rmtree(home / "cli-state" / task_id)
        cli(env, "task", "reject", task_id, "--feedback", FEEDBACK)
        wait_for(lambda: status(db_url, task_id) == "review", timeout=90, what="review by a fresh session")
    finally:
        orch.terminate()
    _, second = runs_of(db_url, task_id)
    assert second[4] and second[4] != session  # a new session
    fresh = [r for r in _conversation_requests(kind, model) if r in model.model_requests()[seen:]]
    opening = json.dumps(_turns(kind, fresh[0].body))
    assert "FINAL: the task is complete." not in opening  # nothing of the old conversation
    (payload,) = query(
        db_url,
        "SELECT payload FROM audit_events WHERE action = 'run.session_resume_failed' AND subject_id = %s",
        str(second[0]),
    )[0]
    assert payload["sessionId"] == session and payload["fallback"] == "fresh_session"


def test_the_cli_state_of_a_task_approved_as_done_is_removed_by_housekeeping(
    env: dict[str, str], home: Path, db_url: str, model: ModelServer
) -> None:
    env = {**env, "COMPANY_AGENTS_HOUSEKEEPING_INTERVAL_SECONDS": "0.3"}
    task_id, orch, _ = _first_run_to_review("claude-code", env, home, db_url, model)
    try:
        state = home / "cli-state" / task_id
        assert state.is_dir()
        cli(env, "task", "approve", task_id)
        wait_for(lambda: not state.exists(), timeout=30, what="the CLI state removed")
    finally:
        orch.terminate()


def test_the_run_after_an_approval_wait_resumes_the_session_told_the_answer(
    env: dict[str, str], home: Path, db_url: str, model: ModelServer
) -> None:
    kind = "claude-code"
    cli_binary(kind)
    # The model asks for an approval and, told there is no answer yet, ends its run: the task waits.
    model.script.tool = "request_approval"
    model.script.tool_input = {"action": "deploy to staging (action-5d2e)", "waitSeconds": 0}
    hire(env, kind, MODELS[kind])
    task_id = add_task(env, TITLE)
    orch = Orchestrator(env)
    try:
        wait_for(lambda: status(db_url, task_id) == "blocked", timeout=90, what="blocked on the approval")
        wait_for(lambda: _ended(home, runs_of(db_url, task_id)[0]), what="the first run's end")
        ((_, _, run_status, reason, session),) = runs_of(db_url, task_id)
        assert (run_status, reason) == ("handed_off", "approval") and session
        seen = len(model.model_requests())
        model.script.tool, model.script.tool_input = "mark_complete", {"output": "deployed"}
        ((approval_id,),) = query(db_url, "SELECT id FROM approvals WHERE task_id = %s", task_id)
        cli(env, "approval", "approve", str(approval_id), "--reason", "go ahead (answer-9c1b)")
        wait_for(lambda: status(db_url, task_id) == "review", timeout=90, what="review by the resumed run")
    finally:
        orch.terminate()
    _, second = runs_of(db_url, task_id)
    assert (second[2], second[3], second[4]) == ("succeeded", "complete", session)
    resumed = [r for r in _conversation_requests(kind, model) if r in model.model_requests()[seen:]]
    opening = json.dumps(_turns(kind, resumed[0].body))
    # Its own request for the approval, then the answer.
    assert "action-5d2e" in opening and "answer-9c1b" in opening
    assert opening.index("action-5d2e") < opening.index("answer-9c1b")
    assert "deploy to staging (action-5d2e): approved" in opening
