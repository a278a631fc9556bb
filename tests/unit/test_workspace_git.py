"""Workspaces are git working trees copied from one template per home (``workspaces.init_workspace``)."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from pathlib import Path

import pytest

from company_agents.settings import Settings
from company_agents.workspaces import CONTEXT_DIR, RUN_DIR, init_workspace

pytestmark = pytest.mark.slow  # git runs


def _git(path: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(path), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


async def test_each_workspace_is_its_own_repository_from_one_template(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    first, second = await asyncio.gather(
        init_workspace(settings, uuid.uuid4()), init_workspace(settings, uuid.uuid4())
    )
    template = settings.home / "cache" / "git-template" / ".git"
    assert (template / "HEAD").is_file()
    # Nothing half-made is left beside it by the two first runs racing to make it.
    assert sorted(p.name for p in template.parent.parent.iterdir()) == ["git-template"]
    for ws in (first, second):
        assert _git(ws, "rev-parse", "--show-toplevel") == str(ws.resolve())
        exclude = (ws / ".git" / "info" / "exclude").read_text()
        assert f"{CONTEXT_DIR}/" in exclude and f"{RUN_DIR}/" in exclude
        (ws / "notes.txt").write_text("hello\n")
        (ws / CONTEXT_DIR / "task.json").write_text("{}\n")
        # The orchestrator's files stay out of the agent's status; the agent's own file is seen.
        assert _git(ws, "status", "--porcelain") == "?? notes.txt"
    # A commit in one workspace is not in the other, nor in the template.
    _git(first, "add", "notes.txt")
    _git(first, "-c", "user.name=a", "-c", "user.email=a@x", "commit", "-qm", "one")
    assert _git(first, "rev-list", "--count", "HEAD") == "1"
    with pytest.raises(subprocess.CalledProcessError):
        _git(second, "rev-parse", "--verify", "HEAD")
    assert not any((template / "refs" / "heads").iterdir())


async def test_without_git_the_run_still_gets_its_workspace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("company_agents.workspaces.GIT_ENV", {"PATH": str(tmp_path / "nowhere")})
    settings = Settings(home=tmp_path / "home")
    ws = await init_workspace(settings, uuid.uuid4())
    assert (ws / CONTEXT_DIR).is_dir() and (ws / ".git" / "info" / "exclude").is_file()
    assert not (ws / ".git" / "HEAD").exists()
    assert not (settings.home / "cache" / "git-template").exists()
