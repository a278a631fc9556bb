"""``/v1/companies/{company}/costs/entries|export|adjust``: the ledger's raw entries (keyset pages,
newest first, with the filters of ``cost entries``), all of a scope's entries streamed as CSV or JSONL
(``cost export``), and an offsetting adjustment (admin, ``cost adjust``)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from company_agents.api.deps import (
    Admin,
    CompanyRef,
    CursorQuery,
    Db,
    LimitQuery,
    Principal,
    Reader,
    actor_of,
    company_for,
)
from company_agents.api.middleware import request_id_of
from company_agents.api.routes.tasks import ID_PATTERN
from company_agents.api.schemas.common import (
    DEFAULT_LIMIT,
    Envelope,
    ListEnvelope,
    decode_cursor,
    encode_cursor,
    error_responses,
    one,
    page,
)
from company_agents.api.schemas.costs import CostAdjust, CostAdjustment, CostEntry
from company_agents.db.database import Database

router = APIRouter(tags=["costs"])

NAME = r"^[A-Za-z0-9][A-Za-z0-9._ -]{0,199}$"
# ISO dates and times, 1h/7d/2w, today, yesterday, this_week, this_month, this_quarter (docs/costs.md).
WHEN = r"^[0-9A-Za-z_:+. -]{1,40}$"
TeamQuery = Annotated[str | None, Query(pattern=NAME, description="Only this team (name or id).")]
AgentQuery = Annotated[str | None, Query(pattern=NAME, description="Only this agent (name or id).")]
TaskQuery = Annotated[str | None, Query(pattern=ID_PATTERN, description="Only this task.")]
RunQuery = Annotated[str | None, Query(pattern=ID_PATTERN, description="Only this run.")]
SinceQuery = Annotated[
    str | None,
    Query(
        pattern=WHEN,
        description="Start: an ISO date or time, 30m, 24h, 7d, 2w, today, yesterday, this_week, "
        "this_month, this_quarter. Without since and until: the fiscal period so far.",
    ),
]
UntilQuery = Annotated[str | None, Query(pattern=WHEN, description="End (the same forms). Default: now.")]
Kind = Literal["llm", "tool", "runtime", "adjustment"]
EXPORT_TYPES = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson"}


async def _target(conn: Any, principal: Principal, company: str, **scope: str | None) -> Any:
    from company_agents.costs import report

    current = await company_for(conn, principal, company)
    return await report.resolve_target(conn, str(current["id"]), **scope)


@router.get(
    "/companies/{company}/costs/entries",
    operation_id="listCostEntries",
    response_model=ListEnvelope[CostEntry],
    responses=error_responses(403, 404),
)
async def list_cost_entries(
    request: Request,
    company: CompanyRef,
    principal: Reader,
    db: Db,
    team: TeamQuery = None,
    agent: AgentQuery = None,
    task: TaskQuery = None,
    run: RunQuery = None,
    since: SinceQuery = None,
    until: UntilQuery = None,
    kind: Kind | None = None,
    unpriced: Annotated[bool, Query(description="Only entries with no price.")] = False,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> Any:
    """The raw entries of the company (or of one team, agent, task or run: at most one), newest first,
    in the window (default: the fiscal period so far), a keyset page at a time."""
    from company_agents import pagination
    from company_agents.costs import report

    before = decode_cursor(cursor)
    async with db.engine.connect() as conn:
        target = await _target(conn, principal, company, team=team, agent=agent, task=task, run=run)
        win, _ = await report.target_window(conn, target, since, until)
        rows = await report.list_entries(
            conn, target, win, kind=kind, unpriced=unpriced, limit=limit + 1, before=before
        )
    items, last = pagination.split(rows, limit, "created_at")
    next_cursor = encode_cursor(*last) if last else None
    return page(request_id_of(request), [CostEntry.of(report.entry_public(r)) for r in items], next_cursor)


@router.get(
    "/companies/{company}/costs/export",
    operation_id="exportCostEntries",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "Every entry, oldest first: CSV with a header, or one JSON entry a line",
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/x-ndjson": {"schema": {"type": "string"}},
            },
        },
        **error_responses(403, 404),
    },
)
async def export_cost_entries(
    company: CompanyRef,
    principal: Reader,
    db: Db,
    format: Annotated[Literal["csv", "jsonl"], Query(description="csv or jsonl.")] = "csv",
    team: TeamQuery = None,
    agent: AgentQuery = None,
    task: TaskQuery = None,
    run: RunQuery = None,
    since: SinceQuery = None,
    until: UntilQuery = None,
) -> Any:
    """Every entry of the scope and window, oldest first, streamed in bounded memory (``cost export``:
    the same columns and lines). The scope and window are checked before the first byte, so a bad one
    is an error status, not a broken stream."""
    from company_agents.costs import report

    async with db.engine.connect() as conn:
        target = await _target(conn, principal, company, team=team, agent=agent, task=task, run=run)
        win, _ = await report.target_window(conn, target, since, until)
    return StreamingResponse(
        _export_lines(db, target, win, format),
        media_type=EXPORT_TYPES[format],
        headers={"Content-Disposition": f'attachment; filename="costs.{format}"'},
    )


async def _export_lines(db: Database, target: Any, win: Any, fmt: str) -> AsyncIterator[str]:
    from company_agents.costs import export, report

    # Its own connection: the stream outlives the request handler. Keyset pages (the ledger is
    # append-only) give each entry once, however long the client takes to read.
    async with db.engine.connect() as conn:
        if fmt == "csv":
            yield export.csv_header()
        async for row in report.iter_entries(conn, target, win):
            public = report.entry_public(row)
            if fmt == "csv":
                yield export.csv_row(public)
            else:
                yield json.dumps(CostEntry.of(public)) + "\n"


@router.post(
    "/companies/{company}/costs/adjust",
    operation_id="adjustCostEntry",
    response_model=Envelope[CostAdjustment],
    responses=error_responses(403, 404, 413),
)
async def adjust_cost_entry(
    request: Request, company: CompanyRef, body: CostAdjust, principal: Admin, db: Db
) -> Any:
    """Book an offsetting adjustment against one of the company's entries (admin; audited; the ledger
    is never changed): ``usd`` signed with a ``reason``, or ``reprice``. A corrected amount never goes
    below zero (422)."""
    from company_agents.costs import adjust
    from company_agents.costs.amounts import parse_usd

    usd = parse_usd(body.usd, negative=True) if body.usd is not None else None
    async with db.engine.begin() as conn:
        current = await company_for(conn, principal, company)
        row = await adjust.correct(
            conn,
            body.entry,
            usd=usd,
            reprice_it=body.reprice,
            reason=body.reason,
            actor=actor_of(principal),
            company_id=current["id"],
        )
    return one(request_id_of(request), CostAdjustment.of(row))
