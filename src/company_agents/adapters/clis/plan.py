"""One agent-CLI run's launch, from the adapter, the agent and the orchestrator's environment."""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from company_agents.adapters.clis.base import CliDriver, LaunchContext, LaunchPlan
from company_agents.adapters.clis.binaries import find_binary
from company_agents.adapters.clis.prompt import system_prompt, task_prompt
from company_agents.adapters.clis.registry import driver_for
from company_agents.adapters.config import AdapterConfig
from company_agents.errors import ConfigError
from company_agents.isolation.launch import AGENT_HOME


@dataclass
class Resume:
    """A session the run should resume, and what to tell it (``clis.prompt.resume_prompt``)."""

    session_id: str
    prompt: str
    why: str  # approval | feedback
    resumed: bool = False  # set by plan_run: the session's files were there


def key_env(adapter: AdapterConfig, driver: CliDriver | None = None) -> str:
    return adapter.key_env or (driver or driver_for(adapter.type)).key_env


def provider_url(adapter: AdapterConfig, environ: dict[str, str]) -> str | None:
    """The provider endpoint configured for the adapter: its ``baseUrl``, else the orchestrator's
    ``*_BASE_URL``; None: the CLI's own default."""
    return adapter.base_url or environ.get(driver_for(adapter.type).base_url_env) or None


def choose_model(adapter: AdapterConfig, agent_model: str | None, environ: dict[str, str]) -> str:
    """The agent's own model (``agent hire --model``), else the adapter's, else ``*_MODEL``, else the
    driver's default."""
    driver = driver_for(adapter.type)
    return agent_model or adapter.model or environ.get(driver.model_env) or driver.default_model


def plan_run(
    adapter: AdapterConfig,
    *,
    workspace: Path,
    task: dict[str, Any],
    agent: dict[str, Any],
    mcp_url: str,
    lease_token: str,
    secret_env: dict[str, str],
    environ: dict[str, str] | None = None,
    base_url: str | None = None,
    resume: Resume | None = None,
) -> tuple[CliDriver, str, LaunchPlan]:
    """The driver, the model and the launch plan; the plan's files are written (0600) into the workspace.
    ``base_url``: the endpoint handed on instead of the provider's (the model gateway's). ``resume``: the
    session to go on with, if its files are in the workspace's HOME (``resume.resumed`` says whether it
    is; else a fresh session gets the full prompt)."""
    source = dict(os.environ if environ is None else environ)
    driver = driver_for(adapter.type)
    binary, where = find_binary(adapter.type, adapter.binary, driver.bin_env, source)
    if binary is None:
        raise ConfigError(
            f"adapter {adapter.name!r}: no {adapter.type} binary (tried {where}); install the pinned CLIs "
            "with scripts/install-agent-clis or set the adapter's 'binary' (docs/adapters.md)"
        )
    model = choose_model(adapter, agent.get("model"), source)
    extra = list(adapter.extra_args) + shlex.split(source.get(driver.extra_args_env, ""))
    home = workspace / AGENT_HOME
    if resume is not None:
        resume.resumed = driver.can_resume(home, resume.session_id, workspace)
    resumed = resume is not None and resume.resumed
    ctx = LaunchContext(
        adapter=replace(adapter, extra_args=tuple(extra)),
        workspace=workspace,
        home=home,
        prompt=resume.prompt if resume is not None and resumed else task_prompt(task),
        system_prompt=system_prompt(workspace),
        model=model,
        mcp_url=mcp_url,
        lease_token=lease_token,
        api_key=secret_env.get(key_env(adapter, driver)),
        base_url=base_url or provider_url(adapter, source),
        environ=source,
        resume=resume.session_id if resume is not None and resumed else None,
    )
    plan = driver.launch(ctx, binary)
    for relative, content in plan.files.items():
        path = workspace / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        # Created 0600 before anything is written: the file holds the run's bearer token.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(content)
    return driver, model, plan
