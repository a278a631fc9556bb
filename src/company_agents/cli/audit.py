"""`company-agents audit list|export|verify`."""

from __future__ import annotations

import sys
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TextIO
from uuid import UUID

import typer
from rich.console import Console

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from company_agents.audit import query as audit_query
    from company_agents.audit.anchor import Anchor
    from company_agents.audit.verify import Problem, VerifyReport
    from company_agents.master_key import MasterKey
    from company_agents.settings import Settings


from company_agents.cli.details import table_time
from company_agents.cli.help import id_help
from company_agents.cli.output import print_json, print_table
from company_agents.cli.settings import settings_from
from company_agents.errors import InvalidInput, MasterKeyError

app = typer.Typer(
    help="The audit trail.\n\nAppend-only and sealed: `audit verify` proves that nobody changed it.",
    no_args_is_help=True,
)


def _short_ref(ref: str) -> str:
    """``kind:<uuid>`` as ``kind:<short id>``, which --actor and --subject take back; others as they are."""
    from company_agents.ids import short_id

    kind, sep, ident = ref.partition(":")
    try:
        UUID(ident)
    except ValueError:
        return ref
    return f"{kind}{sep}{short_id(ident)}"


CompanyOpt = Annotated[str | None, typer.Option("--company", help=id_help("company", slug=True))]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output (camelCase).")]
ActorOpt = Annotated[
    str | None,
    typer.Option(help="Actor: exact (user:local), agent:<6+ characters of its id>, or a kind (agent:)."),
]
ActionOpt = Annotated[str | None, typer.Option(help="Action (task.created) or category (task, task.).")]
SubjectOpt = Annotated[
    str | None, typer.Option(help="Subject: type:id, type: or an id (6+ characters of it are enough).")
]
SinceOpt = Annotated[str | None, typer.Option(help="From: 30m, 1h, 7d, 2w or an ISO date/time.")]
UntilOpt = Annotated[str | None, typer.Option(help="Until (exclusive): same forms as --since.")]


async def _filter(
    conn: AsyncConnection,
    company: str | None,
    actor: str | None,
    action: str | None,
    subject: str | None,
    since: str | None,
    until: str | None,
) -> audit_query.AuditFilter:
    from company_agents import companies
    from company_agents.audit import query as audit_query

    company_id = (await companies.get_company(conn, company))["id"] if company else None
    return audit_query.AuditFilter(
        company_id=company_id,
        actor=actor,
        action=action,
        subject=subject,
        since=audit_query.parse_when(since) if since else None,
        until=audit_query.parse_when(until) if until else None,
    )


@app.command("list")
def list_(
    ctx: typer.Context,
    company: CompanyOpt = None,
    actor: ActorOpt = None,
    action: ActionOpt = None,
    subject: SubjectOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many events (newest first).")] = 100,
    json_out: JsonOpt = False,
) -> None:
    """Search the audit trail (newest first)."""

    from company_agents.audit import query as audit_query
    from company_agents.cli.context import run_read

    async def work(conn: AsyncConnection) -> list[dict[str, Any]]:
        filt = await _filter(conn, company, actor, action, subject, since, until)
        return await audit_query.list_events(conn, filt, limit=limit)

    rows = run_read(settings_from(ctx), work)
    if json_out:
        print_json([audit_query.event_public(r) for r in rows])
        return
    print_table(
        "Audit trail",
        ["id", "at", "actor", "action", "subject"],
        [
            [
                r["id"],
                table_time(r["created_at"]),
                _short_ref(r["actor"]),
                r["action"],
                _short_ref(f"{r['subject_type']}:{r['subject_id']}"),
            ]
            for r in rows
        ],
    )


@app.command()
def export(
    ctx: typer.Context,
    format_: Annotated[str, typer.Option("--format", help="jsonl (lossless) or csv.")] = "jsonl",
    output: Annotated[Path | None, typer.Option(help="Write here instead of standard output.")] = None,
    company: CompanyOpt = None,
    actor: ActorOpt = None,
    action: ActionOpt = None,
    subject: SubjectOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
) -> None:
    """Export the audit trail (oldest first), streamed."""
    from company_agents.audit import query as audit_query
    from company_agents.cli.context import run_in_transaction

    if format_ not in ("jsonl", "csv"):
        raise InvalidInput("--format must be jsonl or csv", field="format")

    async def work(conn: AsyncConnection) -> int:
        filt = await _filter(conn, company, actor, action, subject, since, until)
        count = 0
        with ExitStack() as stack:
            out: TextIO = (
                stack.enter_context(output.open("w", encoding="utf-8", newline="")) if output else sys.stdout
            )
            if format_ == "csv":
                out.write(audit_query.csv_header())
            async for row in audit_query.iter_events(conn, filt):
                out.write(audit_query.csv_line(row) if format_ == "csv" else audit_query.jsonl_line(row))
                count += 1
        return count

    count = run_in_transaction(settings_from(ctx), work, retry=False)  # streamed: never twice
    if output is not None:
        Console(stderr=True).print(f"exported {count} events to {output}")


def _counts(report: VerifyReport) -> str:
    return (
        f"{report.events_checked} events: {report.sealed_events} sealed (in {report.seals_checked} seals, "
        f"through event {report.sealed_through or 0}), {report.unsealed_mac_verified} not sealed yet but "
        f"MAC-verified, {report.unproven} unproven"
    )


def _print_report(report: VerifyReport) -> None:
    out = Console(highlight=False, soft_wrap=True)
    anchor = report.anchor
    if not report.problems:
        out.print(f"[green]audit trail verified[/]: {_counts(report)}")
        if report.head_seal_hash:
            out.print(f"head seal hash {report.head_seal_hash}")
        if anchor is not None:
            out.print(f"anchor: seal {anchor['seal_id']} is in the chain")
        return
    first = report.problems[0]
    out.print(f"[red]audit trail does NOT verify[/]: {first.message}")
    for problem in report.problems[1:20]:
        out.print(f"  also: {problem.message}")
    if len(report.problems) > 20:
        out.print(f"  … and {len(report.problems) - 20} more")
    out.print(_counts(report))


def _anchor(settings: Settings) -> tuple[Anchor | None, Problem | None]:
    from company_agents.audit.anchor import anchor_path, read_anchor
    from company_agents.audit.verify import Problem

    try:
        return read_anchor(anchor_path(settings)), None
    except ValueError as exc:
        return None, Problem("anchor_unreadable", f"the audit anchor cannot be read: {exc}")


@app.command()
def verify(ctx: typer.Context, company: CompanyOpt = None, json_out: JsonOpt = False) -> None:
    """Check every seal, every event's MAC and the anchor; exit 1 naming the first event changed,
    deleted, inserted or unproven.
    """
    import asyncio

    from company_agents import companies
    from company_agents.audit.anchor import Anchor, anchor_path, write_anchor
    from company_agents.audit.verify import verify_trail
    from company_agents.cli.context import opened
    from company_agents.master_key import load_master_key
    from company_agents.master_key.rotation import known_keys, recover_pending_rotation

    settings = settings_from(ctx)
    anchor, unreadable = _anchor(settings)
    with opened(settings) as db:
        recover_pending_rotation(settings, db)
        current: MasterKey | None
        try:
            current = load_master_key(settings, create=False)
        except MasterKeyError:
            current = None  # old keys in the backups may still cover every seal
        keys = known_keys(settings, current)

        async def main() -> VerifyReport:
            try:
                engine = db.engine.execution_options(isolation_level="REPEATABLE READ")
                async with engine.connect() as conn:
                    company_id = (await companies.get_company(conn, company))["id"] if company else None
                    return await verify_trail(conn, keys, company_id=company_id, anchor=anchor)
            finally:
                await db.dispose()

        report = asyncio.run(main())
    if unreadable is not None:
        report.problems.insert(0, unreadable)
    if report.ok and report.head_seal is not None:
        # What this home has now seen verified becomes its anchor (it only ever moves forward).
        first_mac = report.first_mac_id
        macs_from = (
            first_mac
            if first_mac is not None and first_mac <= int(report.head_seal["last_event_id"])
            else None
        )
        write_anchor(anchor_path(settings), Anchor.from_seal(report.head_seal, macs_from=macs_from))
    if json_out:
        print_json(report.to_dict(), nested=("first_problem", "problems"))
    else:
        _print_report(report)
    if not report.ok:
        raise typer.Exit(1)
