"""The offline demo: the ``example`` adapter in config.json, and a company whose agents use it.

Everything here runs with no API key and no network: the agents are the example writer agent
(``company_agents.examples.writer_agent``), which writes files into its workspace and commits them.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncConnection

from company_agents import agents, companies, tasks
from company_agents.errors import ConfigError, NotFound
from company_agents.examples.writer_agent import DEMO_MODEL
from company_agents.pricing.overrides import Rates, live_override, set_override
from company_agents.settings import Settings

ADAPTER_NAME = "example"
DEMO_SLUG = "demo"
# The example agent's pretend model, priced by a company override so the demo shows costs (USD/M tokens).
DEMO_PRICE = Rates(Decimal("1.00"), Decimal("4.00"))
DEMO_PRICE_NOTE = "demo price for an offline pretend model: no money is spent"
DEMO_NAME = "Demo Co"
DEMO_TEAMS = ("Writing", "Research")
# (name, role, team)
DEMO_AGENTS = (
    ("ada", "Technical writer: drafts documents and commits them.", "Writing"),
    ("grace", "Editor: writes checklists and release notes.", "Writing"),
    ("linus", "Researcher: reads a workspace and summarises what is in it.", "Research"),
)
# (title, body, team): bodies follow the writer agent's conventions (docs/agent-protocol.md).
DEMO_TASKS: tuple[tuple[str, str, str], ...] = (
    (
        "Write a welcome note for new hires",
        "file: docs/welcome.md\n\n"
        "Welcome to Demo Co! This note was written by an agent, committed to its run workspace, and is\n"
        "now waiting for your review.\n\n"
        "- Approve it: `company-agents task approve <id>`\n"
        '- Ask for changes: `company-agents task reject <id> --feedback "…"`\n',
        "Writing",
    ),
    (
        "Draft the release checklist",
        "file: docs/release-checklist.md\n\n"
        "- [ ] All tasks for the release are in `done`\n"
        "- [ ] `./scripts/test` passes on both database backends\n"
        "- [ ] The changelog names every user-visible change\n"
        "- [ ] A backup was taken before the upgrade (`company-agents backup create`)\n",
        "Writing",
    ),
    (
        "Write the project README",
        "file: README.md\n\n"
        "# Demo Co\n\n"
        "A company of agents run by Company Agents. Each task runs in its own git workspace under\n"
        "`<home>/runs/<run-id>/`; `company-agents run list --company demo` shows them.\n",
        "Writing",
    ),
    (
        "Write a haiku about PostgreSQL",
        "Rows wait in the queue;\nskip locked, the next agent wakes —\nfencing keeps the peace.\n",
        "Writing",
    ),
    (
        "Summarise the files in .company-agents",
        "file: docs/context-summary.md\n",
        "Research",
    ),
)


def example_adapter() -> dict[str, Any]:
    """The ``example`` adapter entry: this interpreter running the example writer agent."""
    return {
        "type": "process",
        "binary": sys.executable,
        "args": ["-m", "company_agents.examples.writer_agent"],
        "env": {},
        "protocol": "json-lines",
    }


def register_example_adapter(settings: Settings) -> bool:
    """Add (or refresh) ``adapters.example`` in config.json, keeping every other key; True if it changed."""
    path = settings.config_path
    try:
        config: Any = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    except ValueError as exc:
        raise ConfigError(f"{path} is not valid JSON ({exc}); fix or remove it") from None
    if not isinstance(config, dict):
        raise ConfigError(f"{path} must hold a JSON object")
    adapters = config.setdefault("adapters", {})
    if not isinstance(adapters, dict):
        raise ConfigError(f'"adapters" in {path} must be a JSON object')
    wanted = example_adapter()
    if adapters.get(ADAPTER_NAME) == wanted:
        return False
    adapters[ADAPTER_NAME] = wanted
    # Write beside and rename: a concurrent reader (the orchestrator) sees the old file or the new one.
    fd, tmp = tempfile.mkstemp(prefix=".config.", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(config, indent=2) + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True


@dataclass
class DemoCompany:
    """What ``create_demo_company`` found or made."""

    company: dict[str, Any]
    created: bool
    agents: list[dict[str, Any]] = field(default_factory=list)
    tasks: list[dict[str, Any]] = field(default_factory=list)


async def _price_demo_model(conn: AsyncConnection, company_id: UUID) -> None:
    await set_override(conn, company_id, DEMO_MODEL, DEMO_PRICE, set_by="system:demo", note=DEMO_PRICE_NOTE)


async def create_demo_company(conn: AsyncConnection, *, max_attempts: int = 3) -> DemoCompany:
    """Create the demo company, its teams, agents and queued tasks; an existing one is left as it is.

    The tasks keep their workspaces (``keep_workspace``) so a person can inspect the committed files.
    """
    try:
        existing = await companies.get_company(conn, DEMO_SLUG)
    except NotFound:
        pass
    else:
        # A demo company made before the demo priced its model gets the price now.
        if await live_override(conn, existing["id"], DEMO_MODEL) is None:
            await _price_demo_model(conn, existing["id"])
        return DemoCompany(company=existing, created=False)
    company = await companies.create_company(
        conn,
        name=DEMO_NAME,
        slug=DEMO_SLUG,
        description="An offline demo: agents that write files and commit them, no API key needed.",
        team_names=list(DEMO_TEAMS),
        default_adapter=ADAPTER_NAME,
    )
    hired = [
        await agents.hire_agent(
            conn, company=DEMO_SLUG, name=name, role=role, adapter=ADAPTER_NAME, team=team
        )
        for name, role, team in DEMO_AGENTS
    ]
    await set_override(
        conn, company["id"], DEMO_MODEL, DEMO_PRICE, set_by="system:demo", note=DEMO_PRICE_NOTE
    )
    queued = [
        await tasks.create_task(
            conn,
            company=DEMO_SLUG,
            title=title,
            body=body,
            team=team,
            max_attempts=max_attempts,
            keep_workspace=True,
        )
        for title, body, team in DEMO_TASKS
    ]
    return DemoCompany(company=company, created=True, agents=hired, tasks=queued)
