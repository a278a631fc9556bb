"""Resuming an agent CLI's session (docs/adapters.md §Sessions): the resume command line of each CLI,
finding and preparing a session's files in a new workspace, the prompt a resumed session gets, and the
task's CLI state kept between runs."""

from __future__ import annotations

import json
import socket
import stat
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

from company_agents.adapters.clis import state as cli_state
from company_agents.adapters.clis.plan import Resume, plan_run
from company_agents.adapters.clis.prompt import resume_prompt
from company_agents.adapters.clis.registry import driver_for
from company_agents.adapters.config import CLI_TYPES, load_adapters
from company_agents.settings import Settings

SESSION = "0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b"
TASK = {"title": "Write hello", "body": "in hello.txt", "feedback": "In French, please."}


def _plan(tmp_path: Path, kind: str, resume: Resume | None) -> tuple[list[str], Path]:
    adapter = load_adapters(tmp_path / "none.json")[kind]
    workspace = tmp_path / "ws"
    (workspace / ".company-agents").mkdir(parents=True, exist_ok=True)
    _, _, plan = plan_run(
        adapter,
        workspace=workspace,
        task=TASK,
        agent={"model": None},
        mcp_url="http://127.0.0.1:4200/mcp",
        lease_token="ca_lease_TOKEN",
        secret_env={},
        environ={"PATH": "/usr/bin:/bin", f"{kind.upper().replace('-', '_')}_BIN": "/bin/true"},
        resume=resume,
    )
    return plan.argv, workspace


def _session_files(kind: str, home: Path, old_workspace: Path, session: str = SESSION) -> None:
    """What each CLI leaves in its home after a session (the layouts seen with the pinned versions)."""
    if kind == "claude-code":
        path = home / ".claude" / "projects" / str(old_workspace).replace("/", "-") / f"{session}.jsonl"
        path.parent.mkdir(parents=True)
        path.write_text("{}\n")
    elif kind == "codex":
        path = (
            home
            / ".codex"
            / "sessions"
            / "2026"
            / "12"
            / "04"
            / f"rollout-2026-12-04T01-07-35-{session}.jsonl"
        )
        path.parent.mkdir(parents=True)
        path.write_text("{}\n")
        (home / ".codex" / "state_5.sqlite").write_text("an index naming the old workspace's paths")
        (home / ".codex" / "state_5.sqlite-wal").write_text("")
    else:
        project = old_workspace.name.lower()
        chats = home / ".gemini" / "tmp" / project / "chats"
        chats.mkdir(parents=True)
        (chats / f"session-2026-12-04T01-08-{session[:8]}.jsonl").write_text(
            json.dumps({"sessionId": session, "kind": "main"}) + "\n"
        )
        (home / ".gemini" / "tmp" / project / ".project_root").write_text(str(old_workspace))
        (home / ".gemini" / "projects.json").write_text(
            json.dumps({"projects": {str(old_workspace): project}})
        )


@pytest.mark.parametrize("kind", CLI_TYPES)
def test_a_session_whose_files_are_there_is_resumed_with_the_resume_prompt(tmp_path: Path, kind: str) -> None:
    home = tmp_path / "ws" / ".home"
    _session_files(kind, home, tmp_path / "runs" / "PREVIOUS-run")
    resume = Resume(SESSION, resume_prompt("feedback", TASK, []), "feedback")
    argv, workspace = _plan(tmp_path, kind, resume)
    assert resume.resumed
    joined = " ".join(argv)
    assert "In French, please." in joined and "Write hello" not in joined
    if kind == "claude-code":
        assert argv[argv.index("--resume") + 1] == SESSION
        assert "--no-session-persistence" not in argv  # else there is no session to resume
    elif kind == "codex":
        assert argv[1:3] == ["exec", "resume"] and argv[-2:] == [SESSION, resume.prompt]
        assert "-s" not in argv and 'sandbox_mode="workspace-write"' in argv  # exec resume has no -s
        assert "--ephemeral" not in argv
        assert not list((home / ".codex").glob("state_*.sqlite*"))  # rebuilt by Codex from the rollout
    else:
        assert argv[argv.index("--resume") + 1] == SESSION
        projects = json.loads((home / ".gemini" / "projects.json").read_text())["projects"]
        assert projects == {str(workspace): "previous-run"}  # the old project, now this workspace's
        assert (home / ".gemini" / "tmp" / "previous-run" / ".project_root").read_text() == str(workspace)


@pytest.mark.parametrize("kind", CLI_TYPES)
def test_a_session_whose_files_are_gone_is_a_fresh_session_with_the_full_prompt(
    tmp_path: Path, kind: str
) -> None:
    home = tmp_path / "ws" / ".home"
    _session_files(kind, home, tmp_path / "runs" / "old", session="99999999-aaaa-bbbb-cccc-dddddddddddd")
    resume = Resume(SESSION, resume_prompt("feedback", TASK, []), "feedback")
    argv, _ = _plan(tmp_path, kind, resume)
    assert not resume.resumed
    assert "--resume" not in argv and "resume" not in argv[1:3]
    assert "Write hello" in " ".join(argv)


@pytest.mark.parametrize("kind", CLI_TYPES)
@pytest.mark.parametrize("bad", ["../../etc/passwd", "*", "a/b", ""])
def test_a_session_id_that_is_not_an_id_is_never_looked_up(tmp_path: Path, kind: str, bad: str) -> None:
    home = tmp_path / ".home"
    _session_files(kind, home, tmp_path / "old")
    assert not driver_for(kind).can_resume(home, bad, tmp_path / "new")


def test_the_resume_prompt_carries_the_feedback_or_each_answer() -> None:
    assert "In French, please." in resume_prompt("feedback", TASK, [])
    answers: list[dict[str, Any]] = [
        {
            "action": "deploy",
            "status": "approved_with_edits",
            "reason": "ok",
            "edits": {"cost.usd": 30},
            "comments": [{"text": "mind the cache", "by": "user:local"}],
        },
        {"action": "delete the bucket", "status": "denied", "reason": "no", "edits": None, "comments": []},
    ]
    prompt = resume_prompt("approval", TASK, answers)
    assert '- deploy: approved_with_edits (reason: ok); edits to apply: {"cost.usd": 30}' in prompt
    assert "comment: mind the cache" in prompt and "- delete the bucket: denied (reason: no)" in prompt
    assert "mark_complete" in prompt


def _settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home")


def test_the_state_is_kept_without_the_bearer_files_or_sockets_and_restored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _settings(tmp_path)
    task_id = uuid4()
    first = tmp_path / "run1"
    (first / ".home" / ".claude" / "projects").mkdir(parents=True)
    (first / ".home" / ".claude" / "projects" / "s.jsonl").write_text("conversation")
    (first / ".home" / ".gemini").mkdir()
    (first / ".home" / ".gemini" / "settings.json").write_text('{"headers": "Bearer ca_lease_x"}')
    sock = socket.socket(socket.AF_UNIX)
    monkeypatch.chdir(first / ".home")  # a socket's path must be short: bound relative to here
    sock.bind("ipc.sock")
    try:
        assert cli_state.save(settings, task_id, first, [".home/.gemini/settings.json", ".run/cli/x.json"])
    finally:
        sock.close()
    kept = cli_state.state_dir(settings, task_id)
    assert stat.S_IMODE(kept.stat().st_mode) == 0o700
    assert stat.S_IMODE(settings.cli_state_dir.stat().st_mode) == 0o700
    assert not (kept / "home" / ".gemini" / "settings.json").exists()
    assert not (kept / "home" / "ipc.sock").exists()
    second = tmp_path / "run2"
    second.mkdir()
    assert cli_state.restore(settings, task_id, second)
    assert (second / ".home" / ".claude" / "projects" / "s.jsonl").read_text() == "conversation"
    # A later run's save replaces what was kept.
    (second / ".home" / ".claude" / "projects" / "s.jsonl").write_text("longer conversation")
    assert cli_state.save(settings, task_id, second)
    assert (kept / "home" / ".claude" / "projects" / "s.jsonl").read_text() == "longer conversation"
    assert sorted(p.name for p in kept.iterdir()) == ["home"]


def test_nothing_to_restore_or_keep_is_said(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    (tmp_path / "ws").mkdir()
    assert not cli_state.restore(settings, uuid4(), tmp_path / "ws")
    assert not cli_state.save(settings, uuid4(), tmp_path / "ws")
