"""The example writer agent as the process adapter runs it: a subprocess in a git workspace, clean env."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

AGENT = [sys.executable, "-m", "company_agents.examples.writer_agent"]
GIT = shutil.which("git")
needs_git = pytest.mark.skipif(GIT is None, reason="git is not installed")


def check_event(event: Any) -> str:
    """Assert ``event`` is a well-formed agent→orchestrator event of the json-lines protocol."""
    assert isinstance(event, dict), event
    kind = event.get("type")
    if kind == "progress":
        assert isinstance(event["message"], str) and event["message"]
        assert set(event) <= {"type", "message", "step", "percent", "data"}
        assert isinstance(event.get("step", ""), str)
        assert 0 <= event.get("percent", 0) <= 100
        assert isinstance(event.get("data", {}), dict)
    elif kind == "cost":
        assert isinstance(event["model"], str)
        assert isinstance(event["inputTokens"], int) and isinstance(event["outputTokens"], int)
        assert isinstance(event.get("usd", 0), int | float)
    elif kind == "complete":
        assert "output" in event and isinstance(event.get("reasoning", ""), str)
    elif kind in ("failed", "handoff"):
        assert isinstance(event["reason"], str) and event["reason"]
    else:
        raise AssertionError(f"unknown event type {kind!r}")
    return str(kind)


def parse_events(stdout: str) -> list[dict[str, Any]]:
    events = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    for event in events:
        check_event(event)
    return events


def make_workspace(root: Path, *, title: str, body: str = "", **extra: Any) -> Path:
    """What the adapter prepares: a git working tree with .company-agents/ and .run/."""
    workspace = root / "ws"
    (workspace / ".company-agents").mkdir(parents=True)
    (workspace / ".run").mkdir()
    if GIT:
        subprocess.run([GIT, "init", "-q"], cwd=workspace, check=True)
    task = {
        "taskId": str(uuid.uuid4()),
        "runId": str(uuid.uuid4()),
        "companyId": str(uuid.uuid4()),
        "companySlug": "acme",
        "agentId": str(uuid.uuid4()),
        "agentName": "ada",
        "role": "writer",
        "title": title,
        "body": body,
        "attempt": 1,
        "fencingToken": 1,
        "leaseExpiresAt": "2030-01-01T00:00:00+00:00",
        "feedback": None,
        "parentId": None,
        "budgetEnvelope": {"usd": None, "tokens": None},
        "workspacePath": str(workspace),
        "mcpServerUrl": "http://127.0.0.1:9",
        **extra,
    }
    (workspace / ".company-agents" / "task.json").write_text(json.dumps(task))
    (workspace / ".company-agents" / "AGENTS.md").write_text("# ada\n\nYou are a writer.\n")
    (workspace / ".company-agents" / "TOOLS.md").write_text("# Tools\n\nNone needed.\n")
    return workspace


def agent_env(workspace: Path, path: str | None = None) -> dict[str, str]:
    """The clean environment the adapter gives an agent."""
    return {
        "PATH": path if path is not None else os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(workspace.parent),
        "LANG": "C.UTF-8",
        "CA_TASK_ID": "t",
        "CA_RUN_ID": "r",
        "CA_LEASE_TOKEN": "lt_x",
        "CA_FENCING_TOKEN": "1",
        "MCP_SERVER_URL": "http://127.0.0.1:9",
        "CA_WORKSPACE": str(workspace),
    }


def run_agent(workspace: Path, *, path: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        AGENT,
        cwd=workspace,
        env=agent_env(workspace, path),
        input="",
        capture_output=True,
        text=True,
        timeout=60,
    )


def git(workspace: Path, *args: str) -> str:
    assert GIT is not None
    return subprocess.run([GIT, *args], cwd=workspace, capture_output=True, text=True, check=True).stdout


@needs_git
def test_writes_commits_and_completes(tmp_path: Path) -> None:
    body = "file: docs/hello.md\n\nHello from the agent.\n\n- one\n- two\n"
    workspace = make_workspace(tmp_path, title="Write the hello doc", body=body)
    done = run_agent(workspace)
    assert done.returncode == 0, done.stderr
    events = parse_events(done.stdout)
    kinds = [e["type"] for e in events]
    assert kinds[0] == "progress" and kinds[-1] == "complete" and "cost" in kinds
    assert kinds.count("complete") == 1 and "failed" not in kinds
    output = events[-1]["output"]
    text = (workspace / "docs" / "hello.md").read_text()
    assert text == "# Write the hello doc\n\nHello from the agent.\n\n- one\n- two\n"
    assert output["files"] == ["docs/hello.md"] and output["content"] == text
    assert output["commit"] == git(workspace, "rev-parse", "HEAD").strip()
    assert git(workspace, "show", "--name-only", "--format=%an|%s", "HEAD").splitlines()[:3] == [
        "Company Agents writer|Write the hello doc",
        "",
        "docs/hello.md",
    ]
    assert git(workspace, "status", "--porcelain", "docs").strip() == ""
    # The orchestrator's files are not the agent's to commit.
    assert ".company-agents/task.json" not in git(workspace, "ls-files")


@needs_git
def test_default_path_and_reviewer_feedback(tmp_path: Path) -> None:
    workspace = make_workspace(
        tmp_path, title="Write a haiku about PostgreSQL", body="Rows wait.", attempt=2, feedback="Longer."
    )
    done = run_agent(workspace)
    assert done.returncode == 0, done.stderr
    output = parse_events(done.stdout)[-1]["output"]
    assert output["files"] == ["write-a-haiku-about-postgresql.md"]
    text = (workspace / "write-a-haiku-about-postgresql.md").read_text()
    assert text.startswith("# Write a haiku about PostgreSQL\n\nRows wait.\n")
    assert "## Revision (attempt 2)" in text and "> Longer." in text


@needs_git
def test_summarises_the_files_it_was_given(tmp_path: Path) -> None:
    workspace = make_workspace(tmp_path, title="Summarise the files in .company-agents", body="")
    done = run_agent(workspace)
    assert done.returncode == 0, done.stderr
    output = parse_events(done.stdout)[-1]["output"]
    assert output["files"] == ["SUMMARY.md"] and output["commit"]
    summary = (workspace / "SUMMARY.md").read_text()
    assert "`.company-agents/AGENTS.md` — 3 lines" in summary and ": ada" in summary
    assert "3 files" in summary


def test_without_git_the_file_is_written_but_not_committed(tmp_path: Path) -> None:
    workspace = make_workspace(tmp_path, title="Write notes", body="file: notes.txt\n\nplain")
    empty_path = tmp_path / "no-bin"
    empty_path.mkdir()
    done = run_agent(workspace, path=str(empty_path))
    assert done.returncode == 0, done.stderr
    output = parse_events(done.stdout)[-1]["output"]
    assert output["commit"] is None and "not committed" in output["summary"]
    assert (workspace / "notes.txt").read_text() == "plain\n"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("file: ../outside.md\n\nx", "leaves the workspace"),
        ("file: .company-agents/AGENTS.md\n\nx", "reserved"),
        ("summarise: nowhere", "no directory"),
        ("fail: the brief is contradictory", "the brief is contradictory"),
    ],
)
def test_errors_are_a_failed_event_and_a_nonzero_exit(tmp_path: Path, body: str, reason: str) -> None:
    workspace = make_workspace(tmp_path, title="Do something", body=body)
    done = run_agent(workspace)
    assert done.returncode == 1
    events = parse_events(done.stdout)
    assert events[-1]["type"] == "failed" and reason in events[-1]["reason"]
    assert "complete" not in [e["type"] for e in events]
    assert not (tmp_path / "outside.md").exists()


def test_missing_task_file_is_a_failure(tmp_path: Path) -> None:
    done = run_agent(tmp_path)
    assert done.returncode == 1
    assert parse_events(done.stdout)[-1]["reason"].startswith("no task file")


def test_exits_promptly_on_shutdown(tmp_path: Path) -> None:
    workspace = make_workspace(tmp_path, title="Write slowly", body="delay: 60\nfile: slow.md\n\nx")
    proc = subprocess.Popen(
        AGENT,
        cwd=workspace,
        env=agent_env(workspace),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as the adapter launches it
    )
    try:
        assert proc.stdout is not None and proc.stdin is not None
        first = json.loads(proc.stdout.readline())  # it has read the task and is now waiting
        assert check_event(first) == "progress"
        sent = time.monotonic()
        proc.stdin.write(
            json.dumps({"type": "shutdown", "reason": "orchestrator stopping", "graceSeconds": 5})
        )
        proc.stdin.write("\n")
        proc.stdin.flush()
        rest, stderr = proc.communicate(timeout=10)
        elapsed = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert elapsed < 3, f"took {elapsed:.1f}s to stop"
    assert [e["type"] for e in parse_events(rest)] == []
    assert "orchestrator stopping" in stderr
    assert not (workspace / "slow.md").exists()
