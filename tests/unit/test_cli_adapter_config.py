"""Agent-CLI adapters in config.json: built in under their type's name, replaced or added by entries,
checked key by key; the launch plan never puts a secret in argv."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from company_agents.adapters.clis.plan import plan_run
from company_agents.adapters.config import CLI_TYPES, load_adapters
from company_agents.errors import ConfigError


def write(tmp_path: Path, adapters: object) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"adapters": adapters}))
    return path


def test_the_three_clis_are_built_in_and_an_entry_replaces_one(tmp_path: Path) -> None:
    assert set(load_adapters(tmp_path / "missing.json")) == set(CLI_TYPES)
    path = write(
        tmp_path, {"claude-code": {"type": "claude-code", "model": "claude-opus-4-1", "maxTurns": 3}}
    )
    adapters = load_adapters(path)
    assert adapters["claude-code"].model == "claude-opus-4-1" and adapters["claude-code"].max_turns == 3
    assert adapters["codex"].is_cli and adapters["codex"].binary == ""


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"type": "claude-code", "maxTurns": 0}, "maxTurns"),
        ({"type": "codex", "extraArgs": "--x"}, "extraArgs"),
        ({"type": "gemini-cli", "keyEnv": "NOT A NAME"}, "keyEnv"),
        ({"type": "gemini-cli", "model": ""}, "model"),
        ({"type": "aider"}, "not supported"),
    ],
)
def test_a_bad_cli_entry_is_refused_with_the_key(
    tmp_path: Path, entry: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_adapters(write(tmp_path, {"a": entry}))


@pytest.mark.parametrize("kind", CLI_TYPES)
def test_the_plan_keeps_the_key_and_the_token_out_of_argv(tmp_path: Path, kind: str) -> None:
    adapter = load_adapters(tmp_path / "none.json")[kind]
    workspace = tmp_path / "ws"
    (workspace / ".company-agents").mkdir(parents=True)
    secret = {"claude-code": "ANTHROPIC_API_KEY", "codex": "OPENAI_API_KEY", "gemini-cli": "GEMINI_API_KEY"}
    _, model, plan = plan_run(
        adapter,
        workspace=workspace,
        task={"title": "Write hello", "body": "in hello.txt"},
        agent={"model": None},
        mcp_url="http://127.0.0.1:4200/mcp",
        lease_token="ca_lease_SECRET_TOKEN",
        secret_env={secret[kind]: "sk-SECRET-KEY"},
        environ={"PATH": "/usr/bin:/bin", f"{kind.upper().replace('-', '_')}_BIN": "/bin/true"},
    )
    argv = " ".join(plan.argv)
    assert "SECRET" not in argv
    assert plan.env[secret[kind]] == "sk-SECRET-KEY"
    assert "Write hello" in argv and model
    for relative in plan.files:
        path = workspace / relative
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_missing_binary_is_a_clear_config_error(tmp_path: Path) -> None:
    adapter = load_adapters(tmp_path / "none.json")["codex"]
    with pytest.raises(ConfigError, match="install-agent-clis"):
        plan_run(
            adapter,
            workspace=tmp_path,
            task={"title": "t"},
            agent={},
            mcp_url="http://x/mcp",
            lease_token="t",
            secret_env={},
            environ={"PATH": str(tmp_path), "AGENT_CLIS_DIR": str(tmp_path / "empty")},
        )


def test_the_env_knobs_pick_the_binary_model_and_extra_args_and_the_agents_model_wins(tmp_path: Path) -> None:
    adapter = load_adapters(tmp_path / "none.json")["claude-code"]
    (tmp_path / ".company-agents").mkdir()
    environ = {
        "PATH": "/usr/bin:/bin",
        "CLAUDE_CODE_BIN": "/opt/claude/bin/claude",
        "CLAUDE_CODE_MODEL": "claude-haiku-4-5",
        "CLAUDE_CODE_EXTRA_ARGS": "--bare --add-dir '/srv/a b'",
        "ANTHROPIC_BASE_URL": "http://127.0.0.1:9/proxy",
    }

    def plan(agent_model: str | None) -> tuple[str, list[str], dict[str, str]]:
        _, model, launch = plan_run(
            adapter,
            workspace=tmp_path,
            task={"title": "t"},
            agent={"model": agent_model},
            mcp_url="http://127.0.0.1:4200/mcp",
            lease_token="t",
            secret_env={},
            environ=environ,
        )
        return model, launch.argv, launch.env

    model, argv, env = plan(None)
    assert argv[0] == "/opt/claude/bin/claude" and model == "claude-haiku-4-5"
    assert argv[-3:] == ["--bare", "--add-dir", "/srv/a b"]
    assert env["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:9/proxy"
    assert "ANTHROPIC_API_KEY" not in env  # no key: the CLI's own login
    assert plan("claude-opus-4-1")[0] == "claude-opus-4-1"
