"""`company-agents task …`."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

import typer
from sqlalchemy.ext.asyncio import AsyncConnection

from company_agents import tasks
from company_agents.cli.context import run_in_transaction
from company_agents.cli.output import print_json, print_table
from company_agents.cli.settings import settings_from

app = typer.Typer(help="Tasks: create, list, show, cancel, approve, reject, requeue.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output (camelCase).")]
TaskArg = Annotated[str, typer.Argument(help="Task id.")]


def task_public(row: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "id",
        "company_id",
        "title",
        "body",
        "status",
        "parent_id",
        "assigned_agent_id",
        "assigned_team_id",
        "priority",
        "attempt",
        "max_attempts",
        "releases",
        "run_after",
        "fencing_token",
        "budget_usd",
        "output",
        "feedback",
        "failure_reason",
        "created_at",
        "updated_at",
        "finished_at",
    )
    return {k: row.get(k) for k in keys}


def run_public(row: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "id",
        "task_id",
        "agent_id",
        "attempt",
        "fencing_token",
        "status",
        "exit_reason",
        "exit_code",
        "error",
        "workspace_path",
        "started_at",
        "ended_at",
    )
    return {k: row.get(k) for k in keys}


@app.command("create")
def create(
    ctx: typer.Context,
    company: Annotated[str, typer.Option("--company", help="Company slug or id.")],
    title: Annotated[str, typer.Option("--title", help="One imperative sentence.")],
    body: Annotated[str, typer.Option(help="The full brief (markdown).")] = "",
    agent: Annotated[str | None, typer.Option(help="Assign to this agent (name or id).")] = None,
    team: Annotated[
        str | None, typer.Option(help="Assign to this team: an available agent takes it.")
    ] = None,
    parent: Annotated[str | None, typer.Option(help="Parent task id.")] = None,
    budget: Annotated[Decimal | None, typer.Option(help="Task budget in USD.")] = None,
    priority: Annotated[int, typer.Option(help="Higher runs first.")] = 0,
    max_attempts: Annotated[int | None, typer.Option(help="Attempts before failing for good.")] = None,
    keep: Annotated[bool, typer.Option("--keep", help="Keep the run workspaces.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Queue a task."""
    settings = settings_from(ctx)

    async def work(conn: AsyncConnection) -> dict[str, Any]:
        return await tasks.create_task(
            conn,
            company=company,
            title=title,
            body=body,
            agent=agent,
            team=team,
            parent=parent,
            budget_usd=budget,
            priority=priority,
            max_attempts=max_attempts or settings.max_attempts,
            keep_workspace=keep,
        )

    row = run_in_transaction(settings, work)
    if json_out:
        print_json(task_public(row))
    else:
        print(f"queued task {row['id']}")


@app.command("list")
def list_(
    ctx: typer.Context,
    company: Annotated[str, typer.Option("--company", help="Company slug or id.")],
    status: Annotated[str | None, typer.Option(help="Comma-separated statuses.")] = None,
    agent: Annotated[str | None, typer.Option(help="Assigned agent.")] = None,
    team: Annotated[str | None, typer.Option(help="Assigned team.")] = None,
    parent: Annotated[str | None, typer.Option(help="Parent task id, or 'null' for top-level.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many.")] = 200,
    json_out: JsonOpt = False,
) -> None:
    """List tasks."""
    statuses = [s.strip() for s in status.split(",") if s.strip()] if status else None
    rows = run_in_transaction(
        settings_from(ctx),
        lambda conn: tasks.list_tasks(
            conn, company=company, status=statuses, agent=agent, team=team, parent=parent, limit=limit
        ),
    )
    if json_out:
        print_json([task_public(r) for r in rows])
        return
    print_table(
        "Tasks",
        ["id", "title", "status", "attempt", "team", "created"],
        [
            [str(r["id"]), r["title"][:60], r["status"], r["attempt"], r["team_name"], r["created_at"].date()]
            for r in rows
        ],
    )


@app.command("show")
def show(ctx: typer.Context, task: TaskArg, json_out: JsonOpt = False) -> None:
    """Show a task and its runs."""

    async def work(conn: AsyncConnection) -> dict[str, Any]:
        row = await tasks.get_task(conn, task)
        return {
            **task_public(row),
            "retry_after": await tasks.retry_after(conn, row),
            "runs": [run_public(r) for r in await tasks.task_runs(conn, row["id"])],
        }

    data = run_in_transaction(settings_from(ctx), work)
    if json_out:
        print_json(data, nested=("runs",))
        return
    retry = data["retry_after"]
    for key, value in data.items():
        if key in ("runs", "retry_after", "run_after"):
            continue
        if key == "status" and retry is not None:  # backing off after a failed attempt
            value = f"{value}, retry after {retry.isoformat(timespec='seconds')}"
        print(f"{key:<18} {'' if value is None else value}")
    print_table(
        "Runs",
        ["attempt", "fencing", "status", "exit", "started", "ended"],
        [
            [r["attempt"], r["fencing_token"], r["status"], r["exit_reason"], r["started_at"], r["ended_at"]]
            for r in data["runs"]
        ],
    )


def _human(name: str, doc: str) -> None:
    def command(ctx: typer.Context, task: TaskArg, json_out: JsonOpt = False) -> None:
        func = {"cancel": tasks.cancel_task, "approve": tasks.approve_task, "requeue": tasks.requeue_task}[
            name
        ]
        row = run_in_transaction(settings_from(ctx), lambda conn: func(conn, task))
        if json_out:
            print_json(task_public(row))
        else:
            print(f"task {row['id']} is {row['status']}")

    command.__doc__ = doc
    app.command(name)(command)


_human("cancel", "Cancel a task (a running attempt's next write is rejected).")
_human("approve", "Approve a task in review: it is done and frozen.")
_human("requeue", "Put a handed-off or blocked task back in the queue.")


@app.command("reject")
def reject(
    ctx: typer.Context,
    task: TaskArg,
    feedback: Annotated[str, typer.Option(help="What to change.")],
    json_out: JsonOpt = False,
) -> None:
    """Reject a task in review: back to the queue with your feedback."""
    row = run_in_transaction(
        settings_from(ctx), lambda conn: tasks.reject_task(conn, task, feedback=feedback)
    )
    if json_out:
        print_json(task_public(row))
    else:
        print(f"task {row['id']} is {row['status']}")
