"""``--help`` helps: flags as flags, group summaries that list the real commands, one naming rule."""

from __future__ import annotations

from typing import Any

import pytest

from company_agents.cli.help import visible_commands
from company_agents.cli.main import command


def _help(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str) -> str:
    monkeypatch.setenv("COLUMNS", "200")
    code = command().main([*args, "--help"], prog_name="company-agents", standalone_mode=False)
    assert code in (0, None)
    return capsys.readouterr().out


def _walk(cmd: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    found = [(path, cmd)]
    for name, sub in (getattr(cmd, "commands", None) or {}).items():
        found.extend(_walk(sub, (*path, name)))
    return found


def test_flags_render_as_flags(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    for args in ((), ("task", "create"), ("agent", "list")):
        out = _help(capsys, monkeypatch, *args)
        assert "<bool>" not in out, args
    out = _help(capsys, monkeypatch)
    assert "COMPANY_AGENTS_HOME" in out and "COMPANY_AGENTS_DEBUG" in out and "--install-completion" in out
    assert "[default: 200]" in _help(capsys, monkeypatch, "task", "list")
    assert "COMPANY_AGENTS_MAX_ATTEMPTS" in _help(capsys, monkeypatch, "task", "create")


def test_every_group_summary_lists_its_commands() -> None:
    root = command()
    groups = [(path, cmd) for path, cmd in _walk(root) if path and getattr(cmd, "commands", None)]
    assert groups
    for path, group in groups:
        for name in visible_commands(group):
            assert name in group.short_help, f"{' '.join(path)}: {group.short_help!r} lacks {name}"
    assert "rotate-token" in root.commands["agent"].short_help


def test_singular_groups_with_hidden_plural_aliases_and_company_create() -> None:
    root = command()
    visible = set(visible_commands(root))
    assert {"task", "agent", "team", "company", "secret", "run", "integration", "backup"} <= visible
    for plural in ("tasks", "agents", "teams", "companies", "secrets", "runs", "integrations", "backups"):
        assert plural in root.commands and root.commands[plural].hidden
    create, new = root.commands["company"].commands["create"], root.commands["new"]
    assert create.help == new.help and [p.name for p in create.params] == [p.name for p in new.params]


def test_id_arguments_say_a_prefix_works(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert "first 6+ characters" in _help(capsys, monkeypatch, "task", "approve")
    assert "first 6+ characters" in _help(capsys, monkeypatch, "run", "show")
    out = _help(capsys, monkeypatch, "agent", "show")
    assert "name, id or the first 6+ characters" in out
