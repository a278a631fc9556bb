"""`company-agents memory list|write`: memory for humans (agents use the tool endpoint)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection


from company_agents.cli.help import id_help
from company_agents.cli.output import print_json, print_table
from company_agents.cli.settings import settings_from

app = typer.Typer(
    help="Memory.\n\nEvent-sourced notes by company, team, agent and task.", no_args_is_help=True
)

CompanyOpt = Annotated[str, typer.Option("--company", help=id_help("company", slug=True))]
ScopeIdOpt = Annotated[
    str | None, typer.Option("--scope-id", help="The team or agent (name or id) or task id; company: omit.")
]


def memory_public(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "scope": row["scope"],
        "scope_id": row["scope_id"],
        "topic": row["topic"],
        "body": row["body"],
        "actor": row["actor"],
        "source_agent_id": row["source_agent_id"],
        "source_task_id": row["source_task_id"],
        "created_at": row["created_at"],
    }


@app.command("list")
def list_(
    ctx: typer.Context,
    company: CompanyOpt,
    scope: Annotated[str | None, typer.Option(help="company, team, agent or task.")] = None,
    scope_id: ScopeIdOpt = None,
    topic: Annotated[str | None, typer.Option(help="Only this topic.")] = None,
    history: Annotated[bool, typer.Option("--history", help="Every entry, not just the latest.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output (camelCase).")] = False,
) -> None:
    """Show memory: the latest entry per topic (or the whole history)."""

    from company_agents import companies, memory
    from company_agents.cli.context import run_read

    async def work(conn: AsyncConnection) -> list[dict[str, Any]]:
        company_id = (await companies.get_company(conn, company))["id"]
        sid = None
        if scope is not None and (scope == "company" or scope_id):
            sid = await memory.resolve_scope_id(conn, company_id, scope, scope_id)
        return await memory.list_memory(
            conn, company_id, scope=scope, scope_id=sid, topic=topic, history=history
        )

    rows = run_read(settings_from(ctx), work)
    if json_out:
        print_json([memory_public(r) for r in rows])
        return
    print_table(
        "Memory",
        ["scope", "topic", "body", "by", "at"],
        [
            [
                f"{r['scope']}:{str(r['scope_id'])[:8]}",
                r["topic"],
                r["body"] if len(r["body"]) <= 80 else r["body"][:77] + "…",
                r["actor"],
                r["created_at"].strftime("%Y-%m-%d %H:%M"),
            ]
            for r in rows
        ],
    )


@app.command()
def write(
    ctx: typer.Context,
    company: CompanyOpt,
    scope: Annotated[str, typer.Option(help="company, team, agent or task.")],
    topic: Annotated[str, typer.Option(help="What the note is about.")],
    scope_id: ScopeIdOpt = None,
    body: Annotated[str | None, typer.Option(help="The note (default: read from stdin).")] = None,
) -> None:
    """Append a memory entry (a new version of the topic; nothing is overwritten)."""
    from company_agents import companies, memory
    from company_agents.cli.context import run_in_transaction

    text = body if body is not None else sys.stdin.read()

    async def work(conn: AsyncConnection) -> dict[str, Any]:
        company_id = (await companies.get_company(conn, company))["id"]
        sid = await memory.resolve_scope_id(conn, company_id, scope, scope_id)
        return await memory.write_memory(
            conn, company_id=company_id, scope=scope, scope_id=sid, topic=topic, body=text.strip()
        )

    row = run_in_transaction(settings_from(ctx), work)
    print(f"wrote {row['scope']} memory {row['topic']!r} (entry {row['id']})")
