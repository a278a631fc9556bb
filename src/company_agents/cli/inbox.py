"""`company-agents inbox`: what waits for a person in one company."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection


from company_agents.cli.output import print_json, print_table
from company_agents.cli.settings import settings_from


def inbox(
    ctx: typer.Context,
    company: Annotated[str, typer.Option("--company", help="Company slug or id.")],
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output (camelCase).")] = False,
) -> None:
    """Pending approvals, handed-off tasks and open questions."""
    from company_agents.approvals.inbox import inbox as read_inbox
    from company_agents.cli.context import run_read

    async def work(conn: AsyncConnection) -> dict[str, Any]:
        return await read_inbox(conn, company=company)

    box = run_read(settings_from(ctx), work)
    if json_out:
        print_json(box)
        return
    if not box["total"]:
        print("nothing waits for you")
        return
    if box["approvals"]:
        print_table(
            "Approvals",
            ["id", "kind", "action", "cost", "expires", "task"],
            [
                [a["id"], a["kind"], a["action"], a["cost"]["usd"], a["expiresAt"], a["taskId"]]
                for a in box["approvals"]
            ],
        )
    if box["handoffs"]:
        print_table(
            "Handoffs",
            ["task", "title", "reason", "since"],
            [[h["taskId"], h["title"], h["reason"], h["since"]] for h in box["handoffs"]],
        )
    if box["questions"]:
        print_table(
            "Questions (waiting for the agent to ask again)",
            ["id", "action", "question", "task"],
            [
                [q["id"], q["action"], (q["comments"][-1]["text"] if q["comments"] else ""), q["taskId"]]
                for q in box["questions"]
            ],
        )
