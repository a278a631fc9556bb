"""Adapter configuration from ``<home>/config.json`` (``adapters``), with template variables.

``{"<name>": {"type": "process", "binary": …, "args": [...], "env": {...}, "protocol": "json-lines"}}``.
Strings may use ``{{workspacePath}}``, ``{{taskId}}``, ``{{runId}}``, ``{{leaseToken}}``,
``{{fencingToken}}``, ``{{mcpUrl}}`` and ``${ENV}`` (from the orchestrator's environment).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from company_agents.errors import ConfigError

PROTOCOLS = ("json-lines",)
TEMPLATE_RE = re.compile(r"\{\{\s*([A-Za-z]+)\s*\}\}")
ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
VARIABLES = ("workspacePath", "taskId", "runId", "leaseToken", "fencingToken", "mcpUrl")


@dataclass(frozen=True)
class AdapterConfig:
    name: str
    type: str
    binary: str
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    protocol: str = "json-lines"
    timeout_seconds: float | None = None


def _parse(name: str, raw: Any) -> AdapterConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"adapter {name!r} in config.json must be an object")
    kind = raw.get("type")
    if kind != "process":
        raise ConfigError(f"adapter {name!r}: type {kind!r} is not supported (supported: process)")
    binary = raw.get("binary")
    if not isinstance(binary, str) or not binary:
        raise ConfigError(f"adapter {name!r}: 'binary' must be a non-empty string")
    args = raw.get("args", [])
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise ConfigError(f"adapter {name!r}: 'args' must be a list of strings")
    env = raw.get("env", {})
    if not isinstance(env, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in env.items()
    ):
        raise ConfigError(f"adapter {name!r}: 'env' must map names to strings")
    protocol = raw.get("protocol", "json-lines")
    if protocol not in PROTOCOLS:
        raise ConfigError(f"adapter {name!r}: protocol {protocol!r} is not supported (json-lines)")
    timeout = raw.get("timeoutSeconds")
    if timeout is not None and (not isinstance(timeout, int | float) or timeout <= 0):
        raise ConfigError(f"adapter {name!r}: 'timeoutSeconds' must be a positive number")
    for text in [binary, *args, *env.values()]:
        for var in TEMPLATE_RE.findall(text):
            if var not in VARIABLES:
                raise ConfigError(f"adapter {name!r}: unknown template variable {{{{{var}}}}}")
    return AdapterConfig(
        name=name,
        type=kind,
        binary=binary,
        args=list(args),
        env=dict(env),
        protocol=protocol,
        timeout_seconds=timeout,
    )


def load_adapters(config_path: Path) -> dict[str, AdapterConfig]:
    """Every adapter in the instance config; a bad entry is a clear ``ConfigError``."""
    if not config_path.exists():
        return {}
    try:
        data = json.loads(config_path.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{config_path} is not valid JSON: {exc.msg} (line {exc.lineno})") from None
    adapters = data.get("adapters", {}) if isinstance(data, dict) else {}
    if not isinstance(adapters, dict):
        raise ConfigError(f"{config_path}: 'adapters' must be an object")
    return {name: _parse(name, raw) for name, raw in adapters.items()}


def _render(text: str, variables: dict[str, str], environ: dict[str, str]) -> str:
    text = TEMPLATE_RE.sub(lambda m: variables[m.group(1)], text)
    return ENV_RE.sub(lambda m: environ.get(m.group(1), ""), text)


def render_command(
    adapter: AdapterConfig, variables: dict[str, str], environ: dict[str, str] | None = None
) -> tuple[list[str], dict[str, str]]:
    """The argv and the extra environment for one run."""
    env_source = dict(os.environ if environ is None else environ)
    argv = [_render(adapter.binary, variables, env_source)] + [
        _render(a, variables, env_source) for a in adapter.args
    ]
    extra = {k: _render(v, variables, env_source) for k, v in adapter.env.items()}
    return argv, extra
