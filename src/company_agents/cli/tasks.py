"""`company-agents task …`."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection


from company_agents.cli.details import local_time, output_fields, print_fields, table_time, with_name
from company_agents.cli.help import id_argument, id_help
from company_agents.cli.output import print_json, print_table
from company_agents.cli.settings import settings_from

app = typer.Typer(
    help="Tasks: create, list, show, assign, cancel, approve, reject, requeue, comment.", no_args_is_help=True
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output (camelCase).")]
TaskArg = Annotated[str, id_argument("task")]


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


def task_json(row: dict[str, Any]) -> Any:
    """``--json`` prints what ``GET /v1/tasks/{task}`` answers: the same model (docs/api.md)."""
    from company_agents.api.schemas.tasks import Task

    return Task.of(row)


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
    company: Annotated[str, typer.Option("--company", help=id_help("company", slug=True))],
    title: Annotated[str, typer.Option("--title", help="One imperative sentence.")],
    body: Annotated[str, typer.Option(help="The full brief (markdown).")] = "",
    agent: Annotated[
        str | None, typer.Option(help=id_help("agent", "Assign to this agent", named=True))
    ] = None,
    team: Annotated[
        str | None, typer.Option(help="Assign to this team: an available agent takes it.")
    ] = None,
    parent: Annotated[str | None, typer.Option(help=id_help("task", "Parent task"))] = None,
    budget: Annotated[Decimal | None, typer.Option(help="Task budget in USD.")] = None,
    priority: Annotated[int, typer.Option(help="Higher runs first.")] = 0,
    max_attempts: Annotated[
        int | None,
        typer.Option(
            envvar="COMPANY_AGENTS_MAX_ATTEMPTS", help="Attempts before failing for good (default: 3).", min=1
        ),
    ] = None,
    keep: Annotated[bool, typer.Option("--keep", help="Keep the run workspaces.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Queue a task."""
    from company_agents import tasks
    from company_agents.cli.context import run_in_transaction

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
        print_json(task_json(row))
    else:
        print(f"queued task {row['id']}")


@app.command("list")
def list_(
    ctx: typer.Context,
    company: Annotated[str, typer.Option("--company", help=id_help("company", slug=True))],
    status: Annotated[str | None, typer.Option(help="Comma-separated statuses.")] = None,
    agent: Annotated[str | None, typer.Option(help=id_help("agent", "Assigned agent", named=True))] = None,
    team: Annotated[str | None, typer.Option(help=id_help("team", "Assigned team", named=True))] = None,
    parent: Annotated[
        str | None, typer.Option(help=id_help("task", "Parent task ('null': top-level only)"))
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many.")] = 200,
    json_out: JsonOpt = False,
) -> None:
    """List tasks."""
    from company_agents import tasks
    from company_agents.cli.context import run_read
    from company_agents.ids import short_id

    statuses = [s.strip() for s in status.split(",") if s.strip()] if status else None
    rows = run_read(
        settings_from(ctx),
        lambda conn: tasks.list_tasks(
            conn, company=company, status=statuses, agent=agent, team=team, parent=parent, limit=limit
        ),
    )
    if json_out:
        print_json([task_json(r) for r in rows])
        return
    print_table(
        "Tasks",
        ["id", "title", "status", "attempt", "team", "created"],
        [
            [
                short_id(r["id"]),
                r["title"][:60],
                r["status"],
                r["attempt"],
                r["team_name"],
                r["created_at"].date(),
            ]
            for r in rows
        ],
    )


@app.command("show")
def show(ctx: typer.Context, task: TaskArg, json_out: JsonOpt = False) -> None:
    """Show a task and its runs: names beside ids, local times, the output as its summary or JSON."""
    from company_agents import ids, tasks
    from company_agents.cli.context import run_read
    from company_agents.ids import short_id

    async def work(conn: AsyncConnection) -> tuple[dict[str, Any], dict[str, str | None]]:
        row = await tasks.get_task(conn, task)
        data = {
            **task_public(row),
            "retry_after": await tasks.retry_after(conn, row),
            "runs": [run_public(r) for r in await tasks.task_runs(conn, row["id"])],
        }
        names = await ids.labels(
            conn,
            {
                "company": (ids.COMPANY, row["company_id"]),
                "team": (ids.TEAM, row["assigned_team_id"]),
                "agent": (ids.AGENT, row["assigned_agent_id"]),
                "parent": (ids.TASK, row["parent_id"]),
                **{str(r["id"]): (ids.AGENT, r["agent_id"]) for r in data["runs"]},
            },
        )
        return data, names

    data, names = run_read(settings_from(ctx), work)
    if json_out:
        from company_agents.api.schemas.tasks import Run, TaskDetail

        print_json({**TaskDetail.of(data), "runs": [Run.of(r) for r in data["runs"]]})
        return
    print_fields(task_fields(data, names))
    if data["runs"]:
        print()
        print_table(
            "Runs",
            ["run", "attempt", "agent", "status", "exit", "started", "ended"],
            [
                [
                    short_id(r["id"]),
                    r["attempt"],
                    names.get(str(r["id"])),
                    r["status"],
                    r["exit_reason"],
                    table_time(r["started_at"]),
                    table_time(r["ended_at"]),
                ]
                for r in data["runs"]
            ],
        )


def task_fields(data: dict[str, Any], names: dict[str, str | None]) -> list[tuple[str, Any]]:
    """The lines of ``task show``, in the order a reviewer reads them."""
    status = data["status"]
    if data["retry_after"] is not None:  # backing off after a failed attempt
        status = f"{status}, retry after {local_time(data['retry_after'])}"
    fields: list[tuple[str, Any]] = [
        ("id", data["id"]),
        ("title", data["title"]),
        ("status", status),
        ("company", with_name(names["company"], data["company_id"])),
        ("team", with_name(names["team"], data["assigned_team_id"])),
        ("agent", with_name(names["agent"], data["assigned_agent_id"])),
        ("parent", with_name(names["parent"], data["parent_id"])),
        ("priority", data["priority"]),
        ("attempt", f"{data['attempt']} of {data['max_attempts']}"),
        ("budget", f"${data['budget_usd']}" if data["budget_usd"] is not None else "none"),
        ("fencing token", data["fencing_token"]),
        ("created", local_time(data["created_at"])),
        ("updated", local_time(data["updated_at"])),
        ("finished", local_time(data["finished_at"])),
        ("body", data["body"]),
    ]
    if data["feedback"]:
        fields.append(("feedback", data["feedback"]))
    if data["failure_reason"]:
        fields.append(("failure", data["failure_reason"]))
    fields.extend(output_fields(data["output"]))
    return [(label, value) for label, value in fields if value not in ("", None)]


def _human(name: str, doc: str) -> None:
    def command(ctx: typer.Context, task: TaskArg, json_out: JsonOpt = False) -> None:
        from company_agents import tasks
        from company_agents.cli.context import run_in_transaction

        func = {"cancel": tasks.cancel_task, "approve": tasks.approve_task, "requeue": tasks.requeue_task}[
            name
        ]
        row = run_in_transaction(settings_from(ctx), lambda conn: func(conn, task))
        if json_out:
            print_json(task_json(row))
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
    from company_agents import tasks
    from company_agents.cli.context import run_in_transaction

    row = run_in_transaction(
        settings_from(ctx), lambda conn: tasks.reject_task(conn, task, feedback=feedback)
    )
    if json_out:
        print_json(task_json(row))
    else:
        print(f"task {row['id']} is {row['status']}")


@app.command("assign")
def assign(
    ctx: typer.Context,
    task: TaskArg,
    agent: Annotated[
        str | None, typer.Option(help=id_help("agent", "The agent to take it", named=True))
    ] = None,
    team: Annotated[str | None, typer.Option(help=id_help("team", "The team to take it", named=True))] = None,
    json_out: JsonOpt = False,
) -> None:
    """Assign a queued, blocked or handed-off task to an agent or a team (neither: anyone)."""
    from company_agents import tasks
    from company_agents.cli.context import run_in_transaction

    row = run_in_transaction(
        settings_from(ctx), lambda conn: tasks.assign_task(conn, task, agent=agent, team=team)
    )
    if json_out:
        print_json(task_json(row))
    else:
        who = agent or (f"team {team}" if team else "anyone in the company")
        print(f"task {row['id']} is assigned to {who}")


def comment_json(row: dict[str, Any]) -> Any:
    """``--json`` prints what ``/v1/tasks/{task}/comments`` answers: the same model."""
    from company_agents.api.schemas.tasks import TaskComment

    return TaskComment.of(row)


@app.command("comment")
def comment(
    ctx: typer.Context,
    task: TaskArg,
    body: Annotated[str, typer.Option("--body", help="The comment.")],
    json_out: JsonOpt = False,
) -> None:
    """Comment on a task."""
    from company_agents import task_comments
    from company_agents.cli.context import run_in_transaction

    row = run_in_transaction(
        settings_from(ctx), lambda conn: task_comments.add_comment(conn, task, body=body)
    )
    if json_out:
        print_json(comment_json(row))
    else:
        print(f"commented on task {row['task_id']} ({row['id']})")


@app.command("comments")
def comments(
    ctx: typer.Context,
    task: TaskArg,
    limit: Annotated[int, typer.Option(help="At most this many, oldest first.")] = 200,
    json_out: JsonOpt = False,
) -> None:
    """A task's comments, oldest first."""
    from company_agents import task_comments, tasks
    from company_agents.cli.context import run_in_transaction

    if limit < 1:
        from company_agents.errors import InvalidInput

        raise InvalidInput("--limit must be at least 1", field="limit")

    async def work(conn: AsyncConnection) -> list[dict[str, Any]]:
        row = await tasks.get_task(conn, task)
        return (await task_comments.list_comments(conn, row["id"], limit=limit))[:limit]

    rows = run_in_transaction(settings_from(ctx), work)
    if json_out:
        print_json([comment_json(r) for r in rows])
        return
    for r in rows:
        print(f"{local_time(r['created_at'])}  {r['author']}\n{r['body']}\n")
