"""`company-agents costs …`: show (the roll-up), entries, export, adjust, rebuild. All take ``--json``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TextIO

import typer

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection


from company_agents.cli.output import print_json, print_table
from company_agents.cli.settings import settings_from
from company_agents.costs.amounts import parse_usd
from company_agents.errors import InvalidInput

app = typer.Typer(
    help="Costs.\n\nRoll-ups over the fiscal period or a window, raw entries, export, adjustments, and "
    "rebuilding the daily counters from the ledger.",
    no_args_is_help=True,
)

JsonOpt = Annotated[
    bool, typer.Option("--json", help="Machine-readable output (camelCase; amounts as strings).")
]
CompanyOpt = Annotated[str, typer.Option("--company", help="Company slug or id.")]
TeamOpt = Annotated[str | None, typer.Option("--team", help="Team name or id.")]
AgentOpt = Annotated[str | None, typer.Option("--agent", help="Agent name or id.")]
TaskOpt = Annotated[str | None, typer.Option("--task", help="Task id.")]
RunOpt = Annotated[str | None, typer.Option("--run", help="Run id.")]
SinceOpt = Annotated[
    str | None,
    typer.Option(
        help="Start: ISO date/time, 1h, 24h, 7d, 30d, today, yesterday, this_week, this_month, this_quarter."
    ),
]
UntilOpt = Annotated[
    str | None, typer.Option(help="End (same forms; a named window means its end). Default: now.")
]


@app.command("show")
def show(
    ctx: typer.Context,
    company: CompanyOpt,
    team: TeamOpt = None,
    agent: AgentOpt = None,
    task: TaskOpt = None,
    run: RunOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """The roll-up of a company (or one team, agent, task or run) over the fiscal period or a window."""
    from company_agents.cli.context import run_read
    from company_agents.costs import report

    async def work(conn: AsyncConnection) -> dict[str, Any]:
        target = await report.resolve_target(conn, company, team=team, agent=agent, task=task, run=run)
        return await report.show(conn, target, since=since, until=until)

    out = run_read(settings_from(ctx), work)
    if json_out:
        print_json(out)
        return
    _print_rollup(out)


def _print_rollup(out: dict[str, Any]) -> None:
    period, total, br = out["period"], out["total"], out["breakdown"]
    who = f"{out['scope']} {out['name'] or out['scopeId']}"
    print(
        f"{who}: {period['label']} ({period['start']:%Y-%m-%d %H:%M} … "
        f"{period['end']:%Y-%m-%d %H:%M} {out['timeZone']})"
    )
    tokens = total["tokens"]
    print(
        f"  total ${total['usd']} (billed ${total['billedUsd']}) in {total['entries']} entries; tokens in "
        f"{tokens['input']}, out {tokens['output']}, cache read {tokens['cacheRead']}, "
        f"cache write {tokens['cacheWrite']}"
    )
    print(f"  llm ${br['llm']['usd']}, tools ${br['tools']['usd']}, runtime ${br['runtimeServices']['usd']}")
    if out["budget"]:
        b = out["budget"]
        print(f"  budget ${b['usd']}: ${b['remaining']} left ({b['percentUsed']}% used)")
    if out["forecast"]:
        f = out["forecast"]
        print(f"  forecast ${f['usd']} (${f['low']} … ${f['high']}) by {f['until']:%Y-%m-%d}")
    unpriced = out["unpriced"]
    if unpriced["entries"]:
        models = ", ".join(f"{m['model']} ({m['entries']})" for m in unpriced.get("models", []))
        print(f"  UNPRICED: {unpriced['entries']} entries have no price (models: {models});")
        print("    set one with `pricing set`, then re-price old entries: `cost adjust --entry ID --reprice`")
    for key, title in (("byTeam", "By team"), ("byAgent", "By agent")):
        if out[key]:
            print_table(
                title, ["name", "usd", "entries"], [[r["name"], r["usd"], r["entries"]] for r in out[key]]
            )


@app.command("entries")
def entries(
    ctx: typer.Context,
    company: CompanyOpt,
    team: TeamOpt = None,
    agent: AgentOpt = None,
    task: TaskOpt = None,
    run: RunOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    kind: Annotated[str | None, typer.Option(help="llm, tool, runtime or adjustment.")] = None,
    unpriced: Annotated[bool, typer.Option("--unpriced", help="Only entries with no price.")] = False,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 100,
    json_out: JsonOpt = False,
) -> None:
    """Raw cost entries, newest first."""
    from company_agents.cli.context import run_read
    from company_agents.costs import report
    from company_agents.ids import short_id

    async def work(conn: AsyncConnection) -> list[dict[str, Any]]:
        target = await report.resolve_target(conn, company, team=team, agent=agent, task=task, run=run)
        win, _ = await report.target_window(conn, target, since, until)
        rows = await report.list_entries(conn, target, win, kind=kind, unpriced=unpriced, limit=limit)
        return [report.entry_public(r) for r in rows]

    rows = run_read(settings_from(ctx), work)
    if json_out:
        from company_agents.api.schemas.costs import CostEntry

        # What GET …/costs/entries answers: the same model.
        print_json([CostEntry.of(r) for r in rows])
        return
    print_table(
        "Cost entries",
        ["id", "at", "kind", "model", "billing", "in", "out", "usd", "source"],
        [
            [
                short_id(r["id"]),
                r["created_at"].strftime("%Y-%m-%d %H:%M:%S"),
                r["kind"],
                r["model"],
                r["billing"],
                r["input_tokens"],
                r["output_tokens"],
                "UNPRICED" if r["unpriced"] else r["effective_usd"],
                r["price_source"],
            ]
            for r in rows
        ],
    )


@app.command("export")
def export(
    ctx: typer.Context,
    company: CompanyOpt,
    team: TeamOpt = None,
    agent: AgentOpt = None,
    task: TaskOpt = None,
    run: RunOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    fmt: Annotated[str, typer.Option("--format", help="csv or jsonl.")] = "csv",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Every entry of the scope and window, oldest first (CSV with a header, or one JSON object a line)."""
    from company_agents.api.schemas.costs import CostEntry
    from company_agents.cli.context import run_in_transaction
    from company_agents.costs import export as exporting
    from company_agents.costs import report

    if fmt not in exporting.FORMATS:
        raise InvalidInput("--format must be csv or jsonl", field="format")

    async def work(conn: AsyncConnection) -> int:
        target = await report.resolve_target(conn, company, team=team, agent=agent, task=task, run=run)
        win, _ = await report.target_window(conn, target, since, until)
        sink: TextIO = output.open("w", newline="") if output is not None else sys.stdout
        count = 0
        try:
            # The lines GET …/costs/export streams (costs/export.py).
            if fmt == "csv":
                sink.write(exporting.csv_header())
            async for row in report.iter_entries(conn, target, win):
                public = report.entry_public(row)
                if fmt == "csv":
                    sink.write(exporting.csv_row(public))
                else:
                    sink.write(json.dumps(CostEntry.of(public)) + "\n")
                count += 1
        finally:
            if output is not None:
                sink.close()
        return count

    count = run_in_transaction(settings_from(ctx), work, retry=False)
    if output is not None:
        if json_out:
            print_json({"entries": count, "path": str(output), "format": fmt})
        else:
            print(f"exported {count} entries to {output}", file=sys.stderr)


@app.command("adjust")
def adjust(
    ctx: typer.Context,
    entry: Annotated[
        str,
        typer.Option("--entry", help="The cost entry to correct: its id or the first 6+ characters of it."),
    ],
    usd: Annotated[
        str | None,
        typer.Option("--usd", help="Signed amount to add (negative refunds; an unpriced entry's price)."),
    ] = None,
    reprice: Annotated[
        bool,
        typer.Option("--reprice", help="Instead of --usd: price the entry again (override, else the book)."),
    ] = False,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why (kept in the entry and the audit trail).")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Book an offsetting adjustment against an entry (audited; nothing is ever deleted)."""
    from company_agents.api.schemas.costs import CostAdjustment
    from company_agents.cli.context import run_in_transaction
    from company_agents.costs import adjust as adjusting

    if (usd is None) == (not reprice):
        raise InvalidInput("give either --usd AMOUNT (with --reason) or --reprice", field="usd")
    if usd is not None and reason is None:
        raise InvalidInput("give a --reason for the adjustment", field="reason")
    amount = parse_usd(usd, negative=True) if usd is not None else None

    async def work(conn: AsyncConnection) -> dict[str, Any]:
        return await adjusting.correct(conn, entry, usd=amount, reprice_it=reprice, reason=reason)

    row = run_in_transaction(settings_from(ctx), work)
    if json_out:
        # What POST …/costs/adjust answers: the same model.
        print_json(CostAdjustment.of(row))
        return
    if not row["adjusted"]:
        print(f"entry {entry} already costs what its price says: nothing to adjust")
        return
    print(
        f"adjustment {row['id']}: {row['effective_usd']} USD on entry {row['adjusts_entry_id']} "
        f"(now {row['corrected_usd']} USD)"
    )


@app.command("rebuild")
def rebuild(
    ctx: typer.Context,
    company: Annotated[
        str | None, typer.Option("--company", help="Only this company (default: all).")
    ] = None,
    check: Annotated[bool, typer.Option("--check", help="Report drift only; change nothing.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Recompute the daily spend counters from the ledger and report any drift."""
    from company_agents import companies
    from company_agents.cli.context import run_in_transaction
    from company_agents.costs import rebuild as rebuilding

    async def work(conn: AsyncConnection) -> dict[str, Any]:
        company_id = (await companies.get_company(conn, company))["id"] if company else None
        return await rebuilding.rebuild(conn, company_id=company_id, check_only=check)

    out = run_in_transaction(settings_from(ctx), work)
    if json_out:
        print_json(out, nested=("drift",))
    else:
        verb = "found" if check else "repaired"
        print(f"{out['counters']} counter rows from the ledger; {out['drifted']} drifted, {verb}")
        for d in out["drift"][:50]:
            print(
                f"  {d['scope']} {d['scope_id']} {d['day']}: counter {d['counter_usd']} USD/"
                f"{d['counter_entries']} entries, ledger {d['ledger_usd']} USD/{d['ledger_entries']}"
            )
    if check and out["drifted"]:
        raise typer.Exit(1)
