"""`company-agents demo`: an offline company of example agents with work queued for them."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from sqlalchemy.ext.asyncio import AsyncConnection

from company_agents import demo as demo_setup
from company_agents.cli.context import run_in_transaction
from company_agents.cli.output import print_json
from company_agents.cli.settings import settings_from
from company_agents.home import ensure_home

NEXT_STEPS = (
    "company-agents up",
    f"company-agents task list --company {demo_setup.DEMO_SLUG} --status review",
    "company-agents task approve TASK_ID",
)


def demo(
    ctx: typer.Context,
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output (camelCase).")] = False,
) -> None:
    """Create a demo company whose agents run offline (no API key), with a handful of tasks queued."""
    settings = settings_from(ctx)
    ensure_home(settings)
    adapter_changed = demo_setup.register_example_adapter(settings)

    async def work(conn: AsyncConnection) -> demo_setup.DemoCompany:
        return await demo_setup.create_demo_company(conn, max_attempts=settings.max_attempts)

    result = run_in_transaction(settings, work)
    company = result.company
    if json_out:
        data: dict[str, Any] = {
            "config_path": str(settings.config_path),
            "adapter": {"name": demo_setup.ADAPTER_NAME, **demo_setup.example_adapter()},
            "adapter_changed": adapter_changed,
            "created": result.created,
            "company": {"id": company["id"], "slug": company["slug"], "name": company["name"]},
            "agents": [{"id": a["id"], "name": a["name"], "adapter": a["adapter"]} for a in result.agents],
            "tasks": [{"id": t["id"], "title": t["title"], "status": t["status"]} for t in result.tasks],
            "next": list(NEXT_STEPS),
        }
        print_json(data)
        return
    verb = "registered" if adapter_changed else "already registered"
    print(f"adapter '{demo_setup.ADAPTER_NAME}' {verb} in {settings.config_path}")
    if not result.created:
        print(f"the demo company already exists ({company['slug']}, {company['id']}): nothing else to do")
    else:
        print(f"created company {company['slug']} ({company['id']})")
        for agent in result.agents:
            print(f"  hired {agent['name']:<8} {agent['role']}")
        for task in result.tasks:
            print(f"  queued {task['id']}  {task['title']}")
    print("next:")
    print(f"  {NEXT_STEPS[0]:<55} # runs the tasks; each ends in review")
    print(f"  {NEXT_STEPS[1]:<55} # what the agents wrote")
    print(f"  {NEXT_STEPS[2]:<55} # accept one")
    print(f"  {'company-agents run list --company ' + demo_setup.DEMO_SLUG:<55} # runs, workspaces, logs")
