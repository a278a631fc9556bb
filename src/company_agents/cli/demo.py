"""`company-agents demo`: an offline company of example agents with work queued for them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection


from company_agents.cli.output import print_json
from company_agents.cli.settings import settings_from


def next_steps(slug: str) -> tuple[str, ...]:
    return (
        "company-agents up",
        f"company-agents task list --company {slug} --status review",
        "company-agents task approve TASK",
        f"company-agents cost show --company {slug}",
    )


def demo(
    ctx: typer.Context,
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output (camelCase).")] = False,
) -> None:
    """Create a demo company whose agents run offline (no API key), with a handful of tasks queued."""
    from company_agents import demo as demo_setup
    from company_agents.cli.context import run_in_transaction
    from company_agents.examples.writer_agent import DEMO_MODEL
    from company_agents.home import ensure_home
    from company_agents.ids import short_id

    steps = next_steps(demo_setup.DEMO_SLUG)
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
            "next": list(steps),
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
            print(f"  queued {short_id(task['id'])}  {task['title']}")
        print(
            f"  priced the example agent's pretend model {DEMO_MODEL} at "
            f"${demo_setup.DEMO_PRICE.input_mtok}/${demo_setup.DEMO_PRICE.output_mtok} per million tokens "
            "(a demo override: no money is spent)"
        )
    print("next:")
    print(f"  {steps[0]:<55} # runs the tasks; each ends in review")
    print(f"  {steps[1]:<55} # what the agents wrote")
    print(f"  {steps[2]:<55} # accept one: TASK is its id from the table")
    print(f"  {steps[3]:<55} # what it cost (a demo price, no money spent)")
    print(f"  {'company-agents run list --company ' + demo_setup.DEMO_SLUG:<55} # runs, workspaces, logs")
