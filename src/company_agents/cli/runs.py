"""`company-agents run …`: list, show, logs (``--follow`` tails a live run until it has ended)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, BinaryIO
from uuid import UUID

import typer

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from company_agents.db.database import Database


from company_agents.cli.details import local_time, output_fields, print_fields, table_time, with_name
from company_agents.cli.help import id_argument, id_help
from company_agents.cli.output import print_json, print_table
from company_agents.cli.settings import settings_from
from company_agents.errors import NotFound

app = typer.Typer(help="Runs: list, show, logs.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output (camelCase).")]
RunArg = Annotated[str, id_argument("run")]


def run_public(row: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "id",
        "task_id",
        "task_title",
        "company_id",
        "company_slug",
        "agent_id",
        "agent_name",
        "attempt",
        "fencing_token",
        "status",
        "exit_reason",
        "exit_code",
        "error",
        "output",
        "workspace_path",
        "keep_workspace",
        "workspace_deleted_at",
        "orchestrator_id",
        "isolation",
        "cli_session",
        "started_at",
        "ended_at",
    )
    return {k: row.get(k) for k in keys}


def _duration(row: dict[str, Any]) -> str:
    if row["ended_at"] is None:
        return "running"
    return f"{(row['ended_at'] - row['started_at']).total_seconds():.1f}s"


@app.command("list")
def list_(
    ctx: typer.Context,
    company: Annotated[str | None, typer.Option("--company", help=id_help("company", slug=True))] = None,
    task: Annotated[str | None, typer.Option("--task", help=id_help("task"))] = None,
    status: Annotated[str | None, typer.Option(help="Comma-separated run statuses.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 200,
    json_out: JsonOpt = False,
) -> None:
    """List runs, newest first."""
    from company_agents import runs
    from company_agents.cli.context import run_read
    from company_agents.ids import short_id

    statuses = [s.strip() for s in status.split(",") if s.strip()] if status else None
    rows = run_read(
        settings_from(ctx),
        lambda conn: runs.list_runs(conn, company=company, task=task, status=statuses, limit=limit),
    )
    if json_out:
        print_json([run_public(r) for r in rows])
        return
    print_table(
        "Runs",
        ["id", "task", "agent", "attempt", "status", "exit", "started", "took"],
        [
            [
                short_id(r["id"]),
                r["task_title"][:40],
                r["agent_name"],
                r["attempt"],
                r["status"],
                r["exit_reason"],
                table_time(r["started_at"]),
                _duration(r),
            ]
            for r in rows
        ],
    )


@app.command("show")
def show(ctx: typer.Context, run: RunArg, json_out: JsonOpt = False) -> None:
    """Show a run: its row, checkpoints, workspace and log file."""
    from company_agents import runs
    from company_agents.cli.context import run_read
    from company_agents.workspaces import run_log_path

    settings = settings_from(ctx)

    async def work(conn: AsyncConnection) -> dict[str, Any]:
        row = await runs.get_run(conn, run)
        checkpoints = await runs.list_checkpoints(conn, row["id"])
        log = run_log_path(settings, row["id"])
        workspace = row["workspace_path"]
        return {
            **run_public(row),
            "workspace_exists": bool(workspace) and Path(workspace).is_dir(),
            "log_path": str(log),
            "log_exists": log.is_file(),
            "checkpoints": [
                {k: c[k] for k in ("id", "fencing_token", "payload", "created_at")} for c in checkpoints
            ],
        }

    data = run_read(settings, work)
    if json_out:
        print_json(data, nested=("checkpoints",))
        return
    print_fields(run_fields(data))
    if not data["checkpoints"]:
        return
    print()
    print_table(
        "Checkpoints",
        ["id", "at", "step", "percent", "message"],
        [
            [
                c["id"],
                table_time(c["created_at"]),
                c["payload"].get("step"),
                c["payload"].get("percent"),
                str(c["payload"].get("message", ""))[:80],
            ]
            for c in data["checkpoints"]
        ],
    )


def run_fields(data: dict[str, Any]) -> list[tuple[str, Any]]:
    """The lines of ``run show``: names beside ids, local times, the output as its summary or JSON."""
    from company_agents.ids import short_id

    workspace = data["workspace_path"]
    if workspace and not data["workspace_exists"]:
        workspace = f"{workspace} (deleted)"
    fields: list[tuple[str, Any]] = [
        ("id", data["id"]),
        ("task", f"{data['task_title']} ({short_id(data['task_id'])})"),
        ("company", with_name(data["company_slug"], data["company_id"])),
        ("agent", with_name(data["agent_name"], data["agent_id"])),
        ("attempt", data["attempt"]),
        ("fencing token", data["fencing_token"]),
        ("status", data["status"]),
        ("exit", ", ".join(str(v) for v in (data["exit_reason"], data["exit_code"]) if v is not None)),
        ("error", data["error"]),
        ("started", local_time(data["started_at"])),
        ("ended", local_time(data["ended_at"])),
        ("took", _duration(data)),
        ("workspace", workspace),
        ("log", data["log_path"] + ("" if data["log_exists"] else " (none yet)")),
        ("orchestrator", data["orchestrator_id"]),
        ("cli session", data.get("cli_session")),  # resumed by the task's next run (docs/adapters.md)
    ]
    fields.extend(output_fields(data["output"]))
    return [(label, value) for label, value in fields if value not in ("", None)]


def copy_new_bytes(path: Path, position: int, out: BinaryIO) -> int:
    """Write what ``path`` gained since ``position`` to ``out``; the new position."""
    from company_agents import run_logs

    position = run_logs.restart_at(path, position)
    for chunk in run_logs.new_bytes(path, position):
        out.write(chunk)
        position += len(chunk)
    out.flush()
    return position


async def follow_log(
    db: Database, run_id: UUID, path: Path, out: BinaryIO, *, poll_seconds: float | None = None
) -> None:
    """Tail the log until the run has ended in the database and the file has stopped growing."""
    from company_agents import run_logs

    async for chunk in run_logs.tail(db.engine, run_id, path, poll_seconds=poll_seconds):
        out.write(chunk)
        out.flush()


@app.command("logs")
def logs(
    ctx: typer.Context,
    run: RunArg,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing until the run has ended.")
    ] = False,
) -> None:
    """Print a run's log (stdout, stderr and the orchestrator's notes)."""
    import asyncio

    from company_agents import runs
    from company_agents.cli.context import opened
    from company_agents.workspaces import run_log_path

    settings = settings_from(ctx)
    out = sys.stdout.buffer
    with opened(settings) as db:

        async def main() -> None:
            try:
                async with db.engine.connect() as conn:
                    row = await runs.get_run(conn, run)
                path = run_log_path(settings, row["id"])
                if follow:
                    await follow_log(db, row["id"], path, out)
                elif not path.is_file():
                    raise NotFound(f"run {row['id']} has no log yet (expected at {path})", run=str(row["id"]))
                else:
                    copy_new_bytes(path, 0, out)
            finally:
                await db.dispose()

        asyncio.run(main())
