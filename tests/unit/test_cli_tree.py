"""A command line builds only the group it runs, and that part is the same as in the whole tree."""

from __future__ import annotations

from typing import Any

import pytest

from company_agents.cli.main import command


def _help(root: Any, args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    code = root.main([*args, "--help"], prog_name="company-agents", standalone_mode=False)
    assert code in (0, None)
    return capsys.readouterr().out


@pytest.mark.parametrize(
    "args",
    [
        ["task", "list"],
        ["tasks", "create"],
        ["--debug", "agent", "hire"],
        ["db", "status"],
        ["up"],
        ["company"],
    ],
)
def test_a_pruned_tree_answers_as_the_whole_one(
    args: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    assert _help(command([*args, "--help"]), args, capsys) == _help(command(), args, capsys)


def test_only_the_named_group_is_built_and_help_builds_all() -> None:
    whole = set(command().commands)
    assert {"task", "tasks", "agent", "up", "doctor"} <= whole
    pruned = set(command(["--home", "/x", "tasks", "list"]).commands)
    assert {"task", "tasks"} <= pruned and "agent" not in pruned and "up" in pruned
    assert "agent" not in set(command(["up"]).commands)
    for line in (["--help"], [], ["no-such-command"], ["--home"]):
        assert set(command(line).commands) == whole, line


def test_shell_completion_gets_the_whole_tree(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("_COMPANY_AGENTS_COMPLETE", "bash_complete")
    assert set(command(["task", "list"]).commands) == set(command().commands)
