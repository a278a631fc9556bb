"""What every agent-CLI adapter supplies: a launch plan for one run and a parser of its output stream.

The runner (``adapters.runner``) owns the process: isolation, renewal, timeouts, signals, shutdown and
every write. A driver only says *what* to start (argv, environment, config files inside the run's
workspace) and *what the lines mean* (``CliEvent``: a tool call, usage to record, the result, a failed
MCP connection). Secrets never go into argv: keys and the MCP bearer travel in the environment or in a
0600 file inside the run's workspace.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from company_agents.adapters.config import AdapterConfig
from company_agents.costs.ledger import NewCost

MCP_SERVER_NAME = "ca"  # our server's name in every CLI's config: tools are mcp__ca__*, mcp_ca_*


def safe_session_id(session_id: str) -> bool:
    """A session id as the CLIs mint them (a UUID): never a path or a glob pattern."""
    return re.fullmatch(r"[A-Za-z0-9-]{8,80}", session_id) is not None


@dataclass(frozen=True)
class LaunchContext:
    """Everything a driver needs to plan one run (built by the runner)."""

    adapter: AdapterConfig
    workspace: Path
    home: Path  # the agent's HOME inside the workspace (isolation.launch.AGENT_HOME)
    prompt: str
    system_prompt: str
    model: str | None
    mcp_url: str  # our MCP endpoint (…/mcp)
    lease_token: str  # the MCP bearer: environment or a 0600 file only, never argv
    api_key: str | None  # the provider key (from the secret store), None: the CLI's own login
    base_url: str | None  # the provider endpoint to hand on (a proxy, a gateway, a test's server)
    environ: dict[str, str]  # the orchestrator's environment, for the adapter's *_BIN/*_MODEL knobs
    # The CLI session this run resumes (its files restored into ``home``), ``prompt`` then being what to
    # tell it now (the approval's answer, the reviewer's feedback); None: a fresh session.
    resume: str | None = None


@dataclass(frozen=True)
class LaunchPlan:
    argv: list[str]
    env: dict[str, str]
    # Files to write before the start, relative to the workspace, each mode 0600 (config, MCP bearer).
    files: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CliEvent:
    """One thing a CLI's stream told us.

    ``kind``: ``tool_call`` (``name``), ``cost`` (``cost``: priced by the runner), ``result`` (``ok``,
    ``reason``, ``text``), ``mcp_failed`` (``reason``: our tool server did not connect, the run is a
    failure), ``session`` (``session_id``), ``progress`` (``text``, only logged).
    """

    kind: str
    name: str = ""
    cost: NewCost | None = None
    ok: bool = True
    reason: str = ""
    text: str = ""
    session_id: str = ""


class StreamParser(Protocol):
    def feed(self, event: dict[str, Any]) -> list[CliEvent]:
        """The events one stdout JSON object means (in order)."""

    def end(self) -> list[CliEvent]:
        """What is still owed when the stream ends (usage seen but not yet recorded)."""

    def stderr(self, line: str) -> str | None:
        """Why the run failed, when this stderr line says so (a CLI that only says it there)."""


class CliDriver(Protocol):
    kind: str  # the adapter type
    key_env: str  # the variable the CLI reads its API key from
    base_url_env: str  # the variable the CLI reads its provider endpoint from
    bin_env: str
    model_env: str
    extra_args_env: str
    default_model: str

    def launch(self, ctx: LaunchContext, binary: str) -> LaunchPlan: ...

    def parser(self, model: str | None) -> StreamParser: ...

    def version_argv(self, binary: str) -> list[str]: ...

    def can_resume(self, home: Path, session_id: str, workspace: Path) -> bool:
        """Whether the session's files are in ``home`` (restored from the task's previous run), made
        ready for a run in ``workspace`` (a new path each run); False: start a fresh session."""
        ...
