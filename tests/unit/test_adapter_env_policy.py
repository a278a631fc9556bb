"""Adapter config: no lease token in argv, ${NAME} only for declared names, reserved names never passed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from company_agents.adapters.config import AdapterConfig, load_adapters, render_command
from company_agents.adapters.env_policy import reserved_names, reserved_reason
from company_agents.adapters.runner import clean_env
from company_agents.errors import ConfigError
from company_agents.settings import Settings

VARIABLES = {
    "workspacePath": "/w",
    "taskId": "t",
    "runId": "r",
    "leaseToken": "lt_secret",
    "fencingToken": "3",
    "mcpUrl": "http://127.0.0.1:4200",
}


def _load(tmp_path: Path, entry: dict[str, Any], reserved: frozenset[str] = frozenset()) -> AdapterConfig:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"adapters": {"a": {"type": "process", "binary": "/bin/agent", **entry}}}))
    return load_adapters(path, reserved=reserved)["a"]


def _refused(tmp_path: Path, entry: dict[str, Any], reserved: frozenset[str] = frozenset()) -> str:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, entry, reserved)
    return info.value.message


@pytest.mark.parametrize(
    "entry",
    [
        {"args": ["--token", "{{leaseToken}}"]},
        {"args": ["--token={{ leaseToken }}"]},
        {"binary": "/bin/agent-{{leaseToken}}"},
    ],
)
def test_the_lease_token_in_argv_is_refused_naming_the_fix(tmp_path: Path, entry: dict[str, Any]) -> None:
    message = _refused(tmp_path, entry)
    assert "{{leaseToken}}" in message and "process list" in message
    assert "CA_LEASE_TOKEN" in message and "'env'" in message


def test_the_lease_token_in_env_reaches_the_agent(tmp_path: Path) -> None:
    adapter = _load(tmp_path, {"args": ["--run", "{{runId}}"], "env": {"MY_TOKEN": "{{leaseToken}}"}})
    argv, env = render_command(adapter, VARIABLES, {})
    assert argv == ["/bin/agent", "--run", "r"]
    assert env == {"MY_TOKEN": "lt_secret"}


def test_an_undeclared_env_reference_is_refused(tmp_path: Path) -> None:
    message = _refused(tmp_path, {"env": {"MODEL": "${MY_MODEL}"}})
    assert "${MY_MODEL}" in message and '"passEnv": ["MY_MODEL"]' in message
    assert "not declared" in _refused(tmp_path, {"args": ["--model", "${MY_MODEL}"]})


def test_declared_names_are_passed_on_and_nothing_else_is_read(tmp_path: Path) -> None:
    adapter = _load(
        tmp_path,
        {
            "passEnv": ["ANTHROPIC_BASE_URL", "MY_MODEL", "UNSET_ONE"],
            "args": ["--model", "${MY_MODEL}"],
            "env": {"BASE": "${ANTHROPIC_BASE_URL}/v1", "EMPTY": "${UNSET_ONE}"},
        },
    )
    environ = {
        "ANTHROPIC_BASE_URL": "http://gw",
        "MY_MODEL": "m1",
        "OTHER": "x",
        "DATABASE_URL": "postgresql://u:p@h/d",
    }
    argv, env = render_command(adapter, VARIABLES, environ)
    assert argv == ["/bin/agent", "--model", "m1"]
    assert env == {"ANTHROPIC_BASE_URL": "http://gw", "MY_MODEL": "m1", "BASE": "http://gw/v1", "EMPTY": ""}


@pytest.mark.parametrize(
    "name",
    ["DATABASE_URL", "MASTER_KEY_PATH", "MASTER_KEY_SOURCE", "COMPANY_AGENTS_HOME", "PGPASSWORD", "PGHOST"],
)
def test_reserved_names_are_refused_even_when_declared(tmp_path: Path, name: str) -> None:
    assert "never passed" in _refused(tmp_path, {"passEnv": [name]})
    assert "never passed" in _refused(tmp_path, {"passEnv": [name], "env": {"X": f"${{{name}}}"}})
    assert "never passed" in _refused(tmp_path, {"args": [f"${{{name}}}"]})
    assert "may not be set" in _refused(tmp_path, {"env": {name: "literal"}})


def test_the_env_master_key_variable_is_reserved(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, master_key_source="env://CA_KEY")
    reserved = reserved_names(settings)
    assert reserved == frozenset({"CA_KEY"})
    assert "master key" in _refused(tmp_path, {"passEnv": ["CA_KEY"]}, reserved)
    assert "master key" in _refused(tmp_path, {"env": {"K": "${CA_KEY}"}, "passEnv": ["CA_KEY"]}, reserved)
    assert reserved_names(Settings(home=tmp_path)) == frozenset()


@pytest.mark.parametrize("entry", [{"passEnv": "HOME"}, {"passEnv": ["not a name"]}, {"env": {"A=B": "x"}}])
def test_malformed_declarations_are_refused(tmp_path: Path, entry: dict[str, Any]) -> None:
    _refused(tmp_path, entry)


def test_an_adapter_built_in_code_is_checked_when_rendered() -> None:
    adapter = AdapterConfig(name="a", type="process", binary="/bin/a", args=["{{leaseToken}}"])
    with pytest.raises(ConfigError):
        render_command(adapter, VARIABLES, {})
    adapter = AdapterConfig(name="a", type="process", binary="/bin/a", args=["${DATABASE_URL}"])
    with pytest.raises(ConfigError):
        render_command(adapter, VARIABLES, {"DATABASE_URL": "postgresql://x"})


def test_the_last_guard_refuses_a_reserved_name_however_it_came(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        clean_env({"PGPASSWORD": "p", "OK": "1"}, {"CA_RUN_ID": "r"}, tmp_path)
    assert "PGPASSWORD" in info.value.message
    env = clean_env({"OK": "1"}, {"CA_RUN_ID": "r"}, tmp_path)
    assert env["OK"] == "1" and env["CA_RUN_ID"] == "r"


def test_reserved_reasons() -> None:
    assert reserved_reason("ANTHROPIC_API_KEY") is None
    assert reserved_reason("PATH") is None
    assert reserved_reason("CA_KEY", frozenset({"CA_KEY"})) is not None
    for name in ("DATABASE_URL", "MASTER_KEY_X", "COMPANY_AGENTS_X", "PGSSLMODE"):
        assert reserved_reason(name) is not None
