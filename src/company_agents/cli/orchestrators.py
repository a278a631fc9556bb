"""`company-agents orchestrators`: every `up` registered on this database, with gone ones marked."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from company_agents.cli.details import table_time
from company_agents.cli.output import print_json, print_table
from company_agents.cli.settings import settings_from


def _read(ctx: typer.Context) -> list[dict[str, Any]]:
    import asyncio

    from company_agents.cli.context import opened
    from company_agents.runtime.registry import list_orchestrators

    # A read: no master key is loaded, so an operator can look from a host whose key is wrong.
    with opened(settings_from(ctx)) as db:

        async def main() -> list[dict[str, Any]]:
            try:
                async with db.engine.connect() as conn:
                    return await list_orchestrators(conn)
            finally:
                await db.dispose()

        return asyncio.run(main())


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m ago"
    return f"{seconds / 3600:.1f}h ago"


def orchestrators(
    ctx: typer.Context,
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output (camelCase).")] = False,
) -> None:
    """List the orchestrators (`up`) using this database: host, pid, version, schema, heartbeat.

    One whose heartbeat is three intervals old is shown as gone (killed, or cut off from the database).
    """
    rows = _read(ctx)
    if json_out:
        print_json([{**r, "status": "running" if r["alive"] else "gone"} for r in rows])
        return
    print_table(
        "Orchestrators",
        ["host", "pid", "status", "version", "schema", "isolation", "started", "heartbeat"],
        [
            [
                r["host"],
                r["pid"],
                "running" if r["alive"] else "gone",
                r["version"],
                r["schema_revision"],
                r["isolation"],
                table_time(r["started_at"]),
                _age(float(r["heartbeat_age_seconds"])),
            ]
            for r in rows
        ],
    )
