"""`company-agents approval …`: list, show and answer approvals; the company's blanket rules."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection


from company_agents.cli.output import print_json, print_table
from company_agents.cli.settings import settings_from
from company_agents.errors import InvalidInput

app = typer.Typer(
    help="Approvals: list, show, approve [--edits], deny, comment; rules that answer at once.",
    no_args_is_help=True,
)
rule_app = typer.Typer(
    help="Company-wide rules that auto-approve or auto-deny requests.", no_args_is_help=True
)
app.add_typer(rule_app, name="rule")

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output (camelCase).")]
CompanyOpt = Annotated[str, typer.Option("--company", help="Company slug or id.")]
MaybeCompany = Annotated[str | None, typer.Option("--company", help="Company slug or id (a check).")]
ApprovalArg = Annotated[str, typer.Argument(help="Approval id (a unique prefix of 6+ characters works).")]


async def _company_id(conn: AsyncConnection, company: str | None) -> Any:
    if company is None:
        return None
    from company_agents.companies import get_company

    return (await get_company(conn, company))["id"]


def _print_one(row: dict[str, Any], json_out: bool) -> None:
    from company_agents.approvals.store import to_public

    public = to_public(row)
    if json_out:
        print_json(public)
        return
    for key in ("id", "kind", "status", "action", "reasoning", "ifDenied", "taskId", "agentId"):
        print(f"{key:<16} {'' if public[key] is None else public[key]}")
    print(f"{'cost':<16} usd {public['cost']['usd']} tokens {public['cost']['tokens']}")
    print(f"{'sideEffects':<16} {', '.join(public['sideEffects'])}")
    for key in ("edits", "decisionReason", "decidedBy", "requestedAt", "expiresAt", "decidedAt"):
        value = public[key]
        print(f"{key:<16} {'' if value is None else json.dumps(value) if key == 'edits' else value}")
    for comment in public["comments"]:
        print(f"{'comment':<16} {comment.get('by')}: {comment.get('text')}")


@app.command("list")
def approval_list(
    ctx: typer.Context,
    company: CompanyOpt,
    status: Annotated[list[str] | None, typer.Option("--status", help="Only these statuses.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """List a company's approvals (oldest first)."""
    from company_agents.approvals.store import list_approvals, to_public
    from company_agents.cli.context import run_read
    from company_agents.ids import short_id

    async def work(conn: AsyncConnection) -> list[dict[str, Any]]:
        return await list_approvals(conn, company_id=await _company_id(conn, company), status=status)

    rows = [to_public(r) for r in run_read(settings_from(ctx), work)]
    if json_out:
        print_json(rows)
        return
    print_table(
        "Approvals",
        ["id", "status", "kind", "action", "cost", "expires"],
        [
            [short_id(r["id"]), r["status"], r["kind"], r["action"], r["cost"]["usd"], r["expiresAt"]]
            for r in rows
        ],
    )


@app.command("show")
def approval_show(
    ctx: typer.Context, approval: ApprovalArg, company: MaybeCompany = None, json_out: JsonOpt = False
) -> None:
    """Show one approval."""
    from company_agents.approvals.store import get_approval
    from company_agents.cli.context import run_read

    async def work(conn: AsyncConnection) -> dict[str, Any]:
        return await get_approval(conn, approval, company_id=await _company_id(conn, company))

    _print_one(run_read(settings_from(ctx), work), json_out)


def _decide(
    ctx: typer.Context,
    approval: str,
    company: str | None,
    json_out: bool,
    **decision: Any,
) -> None:
    from company_agents import audit
    from company_agents.approvals.store import decide
    from company_agents.cli.context import run_in_transaction

    async def work(conn: AsyncConnection) -> dict[str, Any]:
        return await decide(
            conn, approval, actor=audit.LOCAL_USER, company_id=await _company_id(conn, company), **decision
        )

    row = run_in_transaction(settings_from(ctx), work)
    if json_out:
        _print_one(row, True)
    else:
        print(f"approval {row['id']} is {row['status']}")


@app.command("approve")
def approval_approve(
    ctx: typer.Context,
    approval: ApprovalArg,
    edits: Annotated[
        str | None,
        typer.Option(
            "--edits", help="A JSON object of changes the agent must apply, e.g. '{\"cost.usd\": 30}'."
        ),
    ] = None,
    reason: Annotated[str | None, typer.Option("--reason", help="A note for the agent.")] = None,
    company: MaybeCompany = None,
    json_out: JsonOpt = False,
) -> None:
    """Approve (with --edits: approve with edits). Refused if already answered or expired."""
    parsed: dict[str, Any] | None = None
    if edits is not None:
        try:
            value = json.loads(edits)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"--edits is not JSON: {exc.msg}", field="edits") from None
        if not isinstance(value, dict) or not value:
            raise InvalidInput("--edits takes a non-empty JSON object", field="edits")
        parsed = value
    _decide(
        ctx,
        approval,
        company,
        json_out,
        status="approved_with_edits" if parsed is not None else "approved",
        edits=parsed,
        reason=reason,
    )


@app.command("deny")
def approval_deny(
    ctx: typer.Context,
    approval: ApprovalArg,
    reason: Annotated[str, typer.Option("--reason", help="Why (the agent and the handoff see it).")],
    company: MaybeCompany = None,
    json_out: JsonOpt = False,
) -> None:
    """Deny: the task is handed to a person. Refused if already answered or expired."""
    _decide(ctx, approval, company, json_out, status="denied", reason=reason)


@app.command("comment")
def approval_comment(
    ctx: typer.Context,
    approval: ApprovalArg,
    text: Annotated[str, typer.Option("--text", help="The question for the agent.")],
    company: MaybeCompany = None,
    json_out: JsonOpt = False,
) -> None:
    """Ask the agent a question (status asked_question); it answers by asking again."""
    _decide(ctx, approval, company, json_out, status="asked_question", comment=text)


@rule_app.command("add")
def rule_add(
    ctx: typer.Context,
    company: CompanyOpt,
    effect: Annotated[str, typer.Option("--effect", help="auto_approve or auto_deny.")],
    action: Annotated[
        str | None, typer.Option("--action", help="Pattern over the action ('book *').")
    ] = None,
    category: Annotated[str | None, typer.Option("--category", help="A declared category.")] = None,
    max_usd: Annotated[Decimal | None, typer.Option("--max-usd", help="Cost at most this.")] = None,
    agent: Annotated[str | None, typer.Option("--agent", help="Only this agent's requests.")] = None,
    reason: Annotated[str, typer.Option("--reason", help="Told to the agent.")] = "",
    json_out: JsonOpt = False,
) -> None:
    """Add a rule; a request matching every criterion given is answered at once (deny rules first)."""
    from company_agents import audit
    from company_agents.approvals.store import add_rule, rule_public
    from company_agents.cli.context import run_in_transaction

    async def work(conn: AsyncConnection) -> dict[str, Any]:
        return await add_rule(
            conn,
            company=company,
            effect=effect,
            actor=audit.LOCAL_USER,
            action_pattern=action,
            category=category,
            max_usd=max_usd,
            agent=agent,
            reason=reason,
        )

    row = rule_public(run_in_transaction(settings_from(ctx), work))
    if json_out:
        print_json(row)
    else:
        print(f"added rule {row['id']} ({row['effect']})")


@rule_app.command("list")
def rule_list(ctx: typer.Context, company: CompanyOpt, json_out: JsonOpt = False) -> None:
    """List the company's rules."""
    from company_agents.approvals.store import list_rules, rule_public
    from company_agents.cli.context import run_read

    async def work(conn: AsyncConnection) -> list[dict[str, Any]]:
        return await list_rules(conn, company=company)

    rows = [rule_public(r) for r in run_read(settings_from(ctx), work)]
    if json_out:
        print_json(rows)
        return
    print_table(
        "Approval rules",
        ["id", "effect", "action", "category", "max usd", "reason"],
        [[r["id"], r["effect"], r["action"], r["category"], r["maxUsd"], r["reason"]] for r in rows],
    )


@rule_app.command("remove")
def rule_remove(
    ctx: typer.Context,
    company: CompanyOpt,
    rule: Annotated[str, typer.Argument(help="Rule id.")],
    json_out: JsonOpt = False,
) -> None:
    """Remove a rule."""
    from company_agents import audit
    from company_agents.approvals.store import remove_rule, rule_public
    from company_agents.cli.context import run_in_transaction

    async def work(conn: AsyncConnection) -> dict[str, Any]:
        return await remove_rule(conn, company=company, rule=rule, actor=audit.LOCAL_USER)

    row = rule_public(run_in_transaction(settings_from(ctx), work))
    if json_out:
        print_json(row)
    else:
        print(f"removed rule {row['id']}")
