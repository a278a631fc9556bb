"""Adapter configuration from ``<home>/config.json`` (``adapters``), with template variables.

``{"<name>": {"type": "process", "binary": …, "args": [...], "env": {...}, "passEnv": [...],
"protocol": "json-lines", "runtimeUsdPerSecond": "0"}}``, or a real agent CLI: ``{"type": "claude-code" |
"codex" | "gemini-cli", "binary"?, "model"?, "extraArgs"?, "maxTurns"?, "baseUrl"?, "keyEnv"?, ...}``
(docs/adapters.md; one of each is built in under its type's name), or a remote agent: ``{"type": "http",
"baseUrl": …, "auth": {"type": "bearer", "secret": NAME} | {"type": "mtls", "certPath", "keyPath"},
"protocol": "ca-http-v1"}`` (docs/agent-protocol.md §ca-http-v1). Strings may use ``{{workspacePath}}``,
``{{taskId}}``, ``{{runId}}``, ``{{leaseToken}}`` (in ``env`` only: argv is public), ``{{fencingToken}}``,
``{{mcpUrl}}``, and ``${NAME}`` for a variable of the orchestrator's environment that ``passEnv``
declares (and that ``env_policy`` does not reserve). See docs/agent-protocol.md §1.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from company_agents.adapters.env_policy import reserved_reason
from company_agents.errors import ConfigError
from company_agents.isolation.limits import parse_adapter_limits

PROTOCOLS = ("json-lines",)
HTTP_PROTOCOL = "ca-http-v1"
CLI_TYPES = ("claude-code", "codex", "gemini-cli")
TYPES = ("process", *CLI_TYPES, "http")
DEFAULT_RECONNECTS = 5
DEFAULT_STREAM_IDLE_SECONDS = 60.0
TEMPLATE_RE = re.compile(r"\{\{\s*([A-Za-z]+)\s*\}\}")
ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
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
    # Agent process seconds are a cost of their own (a ``runtime`` entry at the end of a run); 0 = none.
    runtime_usd_per_second: Decimal = Decimal(0)
    # Resource limits overriding the settings' (``isolation.limits``), by their config.json names.
    limits: dict[str, int] = field(default_factory=dict)
    # Variables of the orchestrator's environment passed on as they are, and the only ones ${NAME} reads.
    pass_env: tuple[str, ...] = ()
    # Tool calls one run may report (the loop budget, docs/budgets.md); None: the setting's default.
    loop_budget: int | None = None
    # The model gateway (docs/gateway.md): False sends this adapter's calls straight to the provider
    # with the key handed to the agent; the models its agents may call there (None: any).
    gateway: bool = True
    allowed_models: tuple[str, ...] | None = None
    # The agent CLIs (``CLI_TYPES``) only; see docs/adapters.md. ``binary`` may be empty for them: it is
    # then found at run time (its ``*_BIN`` variable, the install cache, ``PATH``).
    model: str | None = None
    extra_args: tuple[str, ...] = ()
    max_turns: int | None = None
    base_url: str | None = None
    # The variable the CLI reads its API key from; filled from the agent's secret environment, else from
    # the company secret of that name.
    key_env: str | None = None
    # Claude Code's --permission-mode, Codex's --sandbox; None: the adapter's strict default.
    permission_mode: str | None = None
    sandbox: str | None = None
    # The http adapter (``base_url`` is the remote agent's): the company secret holding the bearer the
    # orchestrator presents (read at each session start, so a rotated token takes effect on the next
    # one), the client certificate for mTLS, a CA to trust, and how a dropped event stream is resumed.
    auth_secret: str | None = None
    cert_path: str | None = None
    key_path: str | None = None
    ca_path: str | None = None
    reconnects: int = DEFAULT_RECONNECTS
    stream_idle_seconds: float = DEFAULT_STREAM_IDLE_SECONDS

    @property
    def is_cli(self) -> bool:
        return self.type in CLI_TYPES

    @property
    def is_remote(self) -> bool:
        return self.type == "http"


def check_adapter(adapter: AdapterConfig, reserved: frozenset[str] = frozenset()) -> None:
    """Refuse what would leak a credential to the agent or to other local users (ConfigError)."""
    name = adapter.name
    for var in adapter.pass_env:
        if not ENV_NAME_RE.fullmatch(var):
            raise ConfigError(f"adapter {name!r}: passEnv {var!r} is not a variable name")
        if reason := reserved_reason(var, reserved):
            raise ConfigError(f"adapter {name!r}: passEnv {var} is never passed to an agent: {reason}")
    for var in adapter.env:
        if not ENV_NAME_RE.fullmatch(var):
            raise ConfigError(f"adapter {name!r}: env {var!r} is not a variable name")
        if reason := reserved_reason(var, reserved):
            raise ConfigError(f"adapter {name!r}: env {var} may not be set for an agent: {reason}")
    for where, texts in (
        ("binary", [adapter.binary]),
        ("args", adapter.args),
        ("env", list(adapter.env.values())),
    ):
        for text in texts:
            for var in TEMPLATE_RE.findall(text):
                if var not in VARIABLES:
                    raise ConfigError(f"adapter {name!r}: unknown template variable {{{{{var}}}}}")
                if var == "leaseToken" and where != "env":
                    raise ConfigError(
                        f"adapter {name!r}: {{{{leaseToken}}}} in '{where}' would put the lease token in "
                        "the process list (ps, /proc/<pid>/cmdline), readable by every local user; the "
                        "agent has it in $CA_LEASE_TOKEN: read it there, or put it in 'env' (e.g. "
                        '"env": {"MY_TOKEN": "{{leaseToken}}"})'
                    )
            for var in ENV_RE.findall(text):
                if reason := reserved_reason(var, reserved):
                    raise ConfigError(
                        f"adapter {name!r}: ${{{var}}} in '{where}' is never passed to an agent: {reason}"
                    )
                if var not in adapter.pass_env:
                    raise ConfigError(
                        f"adapter {name!r}: ${{{var}}} in '{where}' is not declared: add it to the "
                        f'adapter\'s "passEnv" (e.g. "passEnv": ["{var}"]) to pass it from the '
                        "orchestrator's environment, or use a secret of the company (agent hire --secret-env)"
                    )


def _parse(name: str, raw: Any, reserved: frozenset[str]) -> AdapterConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"adapter {name!r} in config.json must be an object")
    kind = raw.get("type")
    if kind not in TYPES:
        raise ConfigError(f"adapter {name!r}: type {kind!r} is not supported (supported: {', '.join(TYPES)})")
    if kind == "http":
        return _parse_http(name, raw)
    binary = raw.get("binary", "" if kind in CLI_TYPES else None)
    if not isinstance(binary, str) or (not binary and kind not in CLI_TYPES):
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
    loop_budget = raw.get("loopBudget")
    if loop_budget is not None and (
        not isinstance(loop_budget, int) or isinstance(loop_budget, bool) or loop_budget < 1
    ):
        raise ConfigError(f"adapter {name!r}: 'loopBudget' must be a whole number of tool calls ≥ 1")
    runtime_rate = _runtime_rate(name, raw.get("runtimeUsdPerSecond", "0"))
    pass_env = raw.get("passEnv", [])
    if not isinstance(pass_env, list) or not all(isinstance(v, str) for v in pass_env):
        raise ConfigError(f"adapter {name!r}: 'passEnv' must be a list of variable names")
    adapter = AdapterConfig(
        name=name,
        type=kind,
        binary=binary,
        args=list(args),
        env=dict(env),
        protocol=protocol,
        timeout_seconds=timeout,
        runtime_usd_per_second=runtime_rate,
        limits=_default_limits(kind, parse_adapter_limits(name, raw.get("limits"))),
        pass_env=tuple(pass_env),
        loop_budget=loop_budget,
        **_gateway_options(name, raw),
        **(_cli_options(name, raw) if kind in CLI_TYPES else {}),
    )
    check_adapter(adapter, reserved)
    return adapter


def _parse_http(name: str, raw: dict[str, Any]) -> AdapterConfig:
    """A remote agent's entry (docs/agent-protocol.md §ca-http-v1): nothing is started here, so none
    of the process keys apply; the model gateway does not either (the remote agent calls its own
    models and reports their usage as ``cost`` events)."""
    from urllib.parse import urlsplit

    for key in ("binary", "args", "env", "passEnv", "limits"):
        if key in raw:
            raise ConfigError(
                f"adapter {name!r}: {key!r} does not apply to an http adapter (nothing is started)"
            )
    url = raw.get("baseUrl")
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"adapter {name!r}: 'baseUrl' must be an http:// or https:// URL")
    if parts.username or parts.password:
        raise ConfigError(
            f"adapter {name!r}: 'baseUrl' may not hold credentials (config.json is not a secret store); "
            'use "auth": {"type": "bearer", "secret": NAME}'
        )
    protocol = raw.get("protocol", HTTP_PROTOCOL)
    if protocol != HTTP_PROTOCOL:
        raise ConfigError(f"adapter {name!r}: protocol {protocol!r} is not supported ({HTTP_PROTOCOL})")
    options: dict[str, Any] = {}
    auth = raw.get("auth", {"type": "none"})
    kind = auth.get("type") if isinstance(auth, dict) else None
    if kind == "bearer":
        secret = auth.get("secret")
        if not isinstance(secret, str) or not ENV_NAME_RE.fullmatch(secret):
            raise ConfigError(
                f"adapter {name!r}: auth 'secret' must name a company secret (e.g. PI_API_TOKEN)"
            )
        options["auth_secret"] = secret
    elif kind == "mtls":
        for key, attr in (("certPath", "cert_path"), ("keyPath", "key_path")):
            value = auth.get(key)
            if not isinstance(value, str) or not value:
                raise ConfigError(f"adapter {name!r}: mtls auth needs {key!r} (a file path)")
            options[attr] = value
    elif kind != "none":
        raise ConfigError(f'adapter {name!r}: \'auth\' must be {{"type": "bearer"|"mtls"|"none", …}}')
    ca = raw.get("caPath")
    if ca is not None:
        if not isinstance(ca, str) or not ca:
            raise ConfigError(f"adapter {name!r}: 'caPath' must be a file path")
        options["ca_path"] = ca
    reconnects = raw.get("reconnects", DEFAULT_RECONNECTS)
    if not isinstance(reconnects, int) or isinstance(reconnects, bool) or not 0 <= reconnects <= 100:
        raise ConfigError(f"adapter {name!r}: 'reconnects' must be a whole number from 0 to 100")
    idle = raw.get("streamIdleSeconds", DEFAULT_STREAM_IDLE_SECONDS)
    if isinstance(idle, bool) or not isinstance(idle, int | float) or idle <= 0:
        raise ConfigError(f"adapter {name!r}: 'streamIdleSeconds' must be a positive number")
    timeout = raw.get("timeoutSeconds")
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0
    ):
        raise ConfigError(f"adapter {name!r}: 'timeoutSeconds' must be a positive number")
    loop_budget = raw.get("loopBudget")
    if loop_budget is not None and (
        not isinstance(loop_budget, int) or isinstance(loop_budget, bool) or loop_budget < 1
    ):
        raise ConfigError(f"adapter {name!r}: 'loopBudget' must be a whole number of tool calls ≥ 1")
    return AdapterConfig(
        name=name,
        type="http",
        binary="",
        protocol=HTTP_PROTOCOL,
        base_url=url,
        timeout_seconds=timeout,
        runtime_usd_per_second=_runtime_rate(name, raw.get("runtimeUsdPerSecond", "0")),
        loop_budget=loop_budget,
        gateway=False,
        reconnects=reconnects,
        stream_idle_seconds=float(idle),
        **options,
    )


def _gateway_options(name: str, raw: dict[str, Any]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if "gateway" in raw:
        if not isinstance(raw["gateway"], bool):
            raise ConfigError(f"adapter {name!r}: 'gateway' must be true or false")
        options["gateway"] = raw["gateway"]
    models = raw.get("allowedModels")
    if models is not None:
        if not isinstance(models, list) or not all(isinstance(m, str) and m for m in models):
            raise ConfigError(f"adapter {name!r}: 'allowedModels' must be a list of model names")
        options["allowed_models"] = tuple(models)
    return options


def _cli_options(name: str, raw: dict[str, Any]) -> dict[str, Any]:
    """The agent-CLI keys of an adapter entry (docs/adapters.md), checked."""
    options: dict[str, Any] = {}
    for key, attr in (
        ("model", "model"),
        ("baseUrl", "base_url"),
        ("keyEnv", "key_env"),
        ("permissionMode", "permission_mode"),
        ("sandbox", "sandbox"),
    ):
        value = raw.get(key)
        if value is None:
            continue
        if not isinstance(value, str) or not value:
            raise ConfigError(f"adapter {name!r}: {key!r} must be a non-empty string")
        options[attr] = value
    if (key_env := options.get("key_env")) is not None and not ENV_NAME_RE.fullmatch(key_env):
        raise ConfigError(f"adapter {name!r}: 'keyEnv' {key_env!r} is not a variable name")
    extra = raw.get("extraArgs", [])
    if not isinstance(extra, list) or not all(isinstance(a, str) for a in extra):
        raise ConfigError(f"adapter {name!r}: 'extraArgs' must be a list of strings")
    options["extra_args"] = tuple(extra)
    turns = raw.get("maxTurns")
    if turns is not None:
        if not isinstance(turns, int) or isinstance(turns, bool) or turns < 1:
            raise ConfigError(f"adapter {name!r}: 'maxTurns' must be a whole number ≥ 1")
        options["max_turns"] = turns
    return options


def _default_limits(kind: str, limits: dict[str, int]) -> dict[str, int]:
    """Node reserves far more address space than it uses (WebAssembly memories, V8's heap cage): under
    the default address-space limit Gemini CLI dies at start ("Cannot allocate Wasm memory"). Its
    adapter has none unless its entry sets one; the other limits (CPU, processes, files) still hold."""
    if kind == "gemini-cli":
        return {"addressSpaceBytes": 0, **limits}
    return limits


def builtin_adapters() -> dict[str, AdapterConfig]:
    """One adapter per agent CLI under its type's name, so ``agent hire --adapter claude-code`` works
    without any config.json; an entry of the same name in config.json replaces it."""
    return {
        kind: AdapterConfig(name=kind, type=kind, binary="", limits=_default_limits(kind, {}))
        for kind in CLI_TYPES
    }


def _runtime_rate(name: str, value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ConfigError(
            f"adapter {name!r}: 'runtimeUsdPerSecond' must be a decimal string such as \"0.0001\""
        )
    try:
        rate = Decimal(str(value))
    except InvalidOperation:
        raise ConfigError(f"adapter {name!r}: 'runtimeUsdPerSecond' is not a number") from None
    if not rate.is_finite() or not 0 <= rate <= 1:
        raise ConfigError(f"adapter {name!r}: 'runtimeUsdPerSecond' must be between 0 and 1")
    return rate


def load_adapters(config_path: Path, *, reserved: frozenset[str] = frozenset()) -> dict[str, AdapterConfig]:
    """Every adapter in the instance config; a bad entry is a clear ``ConfigError``.

    ``reserved``: names this instance reserves on top of ``env_policy``'s (``env_policy.reserved_names``).
    """
    builtins = builtin_adapters()
    if not config_path.exists():
        return builtins
    try:
        data = json.loads(config_path.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{config_path} is not valid JSON: {exc.msg} (line {exc.lineno})") from None
    adapters = data.get("adapters", {}) if isinstance(data, dict) else {}
    if not isinstance(adapters, dict):
        raise ConfigError(f"{config_path}: 'adapters' must be an object")
    return {**builtins, **{name: _parse(name, raw, reserved) for name, raw in adapters.items()}}


def _render(text: str, variables: dict[str, str], environ: dict[str, str]) -> str:
    text = TEMPLATE_RE.sub(lambda m: variables[m.group(1)], text)
    return ENV_RE.sub(lambda m: environ.get(m.group(1), ""), text)


def render_command(
    adapter: AdapterConfig, variables: dict[str, str], environ: dict[str, str] | None = None
) -> tuple[list[str], dict[str, str]]:
    """The argv and the extra environment for one run: ``passEnv`` names that are set, then ``env``."""
    check_adapter(adapter)  # also holds for an adapter built in code rather than loaded
    source = os.environ if environ is None else environ
    # Only declared names can be read, so a template can never reach anything else of ours.
    declared = {k: source[k] for k in adapter.pass_env if k in source}
    argv = [_render(adapter.binary, variables, declared)] + [
        _render(a, variables, declared) for a in adapter.args
    ]
    extra = {**declared, **{k: _render(v, variables, declared) for k, v in adapter.env.items()}}
    return argv, extra
