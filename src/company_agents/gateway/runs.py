"""What a run needs to go through the gateway: which wire format its adapter speaks, where the
provider is, and the base URL the agent is given instead."""

from __future__ import annotations

import contextlib
import os
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from company_agents.adapters.config import AdapterConfig
from company_agents.errors import NotFound
from company_agents.gateway.routes import RecordCost, RunRoute, StopRun
from company_agents.leases import RunIdentity
from company_agents.master_key import MasterKey
from company_agents.secrets_store import reveal
from company_agents.settings import Settings

FORMAT_OF = {"claude-code": "anthropic", "codex": "openai", "gemini-cli": "gemini"}
KEY_VARS = {"anthropic": "ANTHROPIC_API_KEY", "openai": "OPENAI_API_KEY", "gemini": "GEMINI_API_KEY"}
URL_VARS = {
    "anthropic": "ANTHROPIC_BASE_URL",
    "openai": "OPENAI_BASE_URL",
    "gemini": "GOOGLE_GEMINI_BASE_URL",
}
DEFAULT_UPSTREAMS = {
    "anthropic": "https://api.anthropic.com",
    "openai": "https://api.openai.com/v1",
    "gemini": "https://generativelanguage.googleapis.com",
}


def upstreams(environ: dict[str, str]) -> dict[str, str]:
    """Each format's provider endpoint: the orchestrator's ``*_BASE_URL`` (a company proxy,
    OpenRouter, a test's fake), else the provider's own."""
    return {fmt: environ.get(var) or DEFAULT_UPSTREAMS[fmt] for fmt, var in URL_VARS.items()}


def agent_base_url(settings: Settings, fmt: str, lease_token: str, *, keyed: bool) -> str:
    """The gateway's address for one format. With a key in the store the run's token travels as the
    CLI's API key; without (the CLI's own login, whose credentials pass through) it is in the path."""
    if keyed:
        return f"{settings.gateway_url}/{fmt}"
    return f"{settings.gateway_url}/t/{lease_token}/{fmt}"


async def build_route(
    conn: AsyncConnection,
    master_key: MasterKey,
    adapter: AdapterConfig,
    ident: RunIdentity,
    fencing_token: int,
    secret_env: dict[str, str],
    *,
    record: RecordCost,
    stop: StopRun,
) -> RunRoute:
    """The run's route, with the provider keys the gateway adds on the way out: the CLI's own (already
    in ``secret_env``), else the agent's secret environment, else the company secret of the variable's
    name. None found for a format: the agent's own login passes through."""
    from company_agents.adapters.clis.plan import key_env, provider_url

    keys: dict[str, str] = {}
    for fmt, var in KEY_VARS.items():
        if adapter.is_cli and FORMAT_OF[adapter.type] == fmt:
            var = key_env(adapter)
        if var in secret_env:
            keys[fmt] = secret_env[var]
            continue
        with contextlib.suppress(NotFound):
            keys[fmt] = await reveal(conn, master_key, ident.company_id, var)
    environ = dict(os.environ)
    routes = upstreams(environ)
    if adapter.is_cli and (configured := provider_url(adapter, environ)):
        routes[FORMAT_OF[adapter.type]] = configured
    return RunRoute(
        ident=ident, fencing_token=fencing_token, keys=keys, upstreams=routes, record=record, stop=stop
    )


def allowed_models(adapter: AdapterConfig, agent: dict[str, Any]) -> frozenset[str] | None:
    """The agent's ``allowedModels`` (its adapter_config), else its adapter's; None: any model."""
    config = agent.get("adapter_config") or {}
    allowed = config.get("allowedModels") if isinstance(config, dict) else None
    if isinstance(allowed, list):
        return frozenset(str(m) for m in allowed)
    return frozenset(adapter.allowed_models) if adapter.allowed_models is not None else None


def hand_token(
    settings: Settings, adapter: AdapterConfig, lease_token: str, secret_env: dict[str, str]
) -> str:
    """The CLI's base URL through the gateway; the run's token replaces the key in ``secret_env`` (the
    key stays with the route)."""
    from company_agents.adapters.clis.plan import key_env

    var = key_env(adapter)
    keyed = var in secret_env
    if keyed:
        secret_env[var] = lease_token
    return agent_base_url(settings, FORMAT_OF[adapter.type], lease_token, keyed=keyed)
