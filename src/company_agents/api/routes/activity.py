"""The activity log: ``/v1/companies/{company}/activity`` (search with the product's keys, keyset
pages), ``/v1/activity/{event}``, ``…/activity/export`` (JSONL or CSV, streamed) and
``/v1/companies/{company}/audit`` (the trail's seal verification status, admin)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import StreamingResponse

from company_agents.api.deps import (
    Admin,
    CompanyRef,
    Db,
    LimitQuery,
    Reader,
    check_company,
    company_for,
    get_settings,
)
from company_agents.api.keys import master_key_or_none
from company_agents.api.middleware import request_id_of
from company_agents.api.schemas.activity import ActivityEntry, AuditStatus
from company_agents.api.schemas.common import (
    DEFAULT_LIMIT,
    Envelope,
    ListEnvelope,
    error_responses,
    one,
    page,
)

router = APIRouter(tags=["activity"])

# The cursor is the last event's id: events are numbered in commit order, newest first in a page.
ACTIVITY_CURSOR = r"^a_[0-9]{1,18}$"
# The search grammar, exactly (so a search the schema admits is one the route can run): terms
# ``key:value`` separated by spaces; ``since``/``until`` in q are relative (ISO times go in the
# parameters of the same names).
_VALUE = r"[^\s\x00-\x1f\x7f]{1,200}"
_WORD = r"[a-z][a-z0-9_]{0,63}"
_TERM = (
    rf"(?:(?:actor|subject|task|run):{_VALUE}"
    r"|agent:[A-Za-z0-9][A-Za-z0-9._-]{0,199}"
    rf"|category:{_WORD}\.?"
    rf"|action:{_WORD}(?:\.{_WORD})*\.?"
    r"|(?:since|until):[0-9]{1,5}[smhdw])"
)
SEARCH_PATTERN = rf"^\s*(?:{_TERM}(?:\s+{_TERM})*)?\s*$"
Q = Annotated[
    str | None,
    Query(
        max_length=1000,
        pattern=SEARCH_PATTERN,
        description="Search terms `key:value` separated by spaces, all of which must hold; keys: actor, "
        "agent, category, action, subject, task, run, since and until (relative: 30m, 1h, 7d, 2w), "
        "e.g. `agent:ada category:approval since:7d`.",
    ),
]
Actor = Annotated[
    str | None,
    Query(pattern=rf"^{_VALUE}$", description="Actor, exact, or a prefix ending in `:` (`agent:`)."),
]
Action = Annotated[
    str | None, Query(pattern=rf"^{_WORD}(?:\.{_WORD})*\.?$", description="An action (`task.created`).")
]
Category = Annotated[
    str | None, Query(pattern=rf"^{_WORD}\.?$", description="A category (`task`, `approval`, `budget`…).")
]
Since = Annotated[datetime | None, Query(description="From this time (ISO 8601).")]
Until = Annotated[datetime | None, Query(description="Until this time, exclusive (ISO 8601).")]


def _terms(q: str | None, **keys: str | datetime | None) -> list[tuple[str, str]]:
    """``q``'s terms and the keys given as their own parameters (all of them must hold)."""
    from company_agents.audit import query as audit_query

    terms = audit_query.parse_search(q or "")
    for key, value in keys.items():
        if value is not None:
            terms.append((key, value.isoformat() if isinstance(value, datetime) else value))
    return terms


@router.get(
    "/companies/{company}/activity",
    operation_id="searchActivity",
    response_model=ListEnvelope[ActivityEntry],
    responses=error_responses(403, 404),
)
async def search_activity(
    request: Request,
    company: CompanyRef,
    principal: Reader,
    db: Db,
    q: Q = None,
    actor: Actor = None,
    action: Action = None,
    category: Category = None,
    since: Since = None,
    until: Until = None,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(pattern=ACTIVITY_CURSOR)] = None,
) -> Any:
    """The company's activity, newest first, a keyset page at a time."""
    from company_agents.audit import query as audit_query

    terms = _terms(q, actor=actor, action=action, category=category, since=since, until=until)
    before = int(cursor[2:]) if cursor else None
    async with db.engine.connect() as conn:
        current = await company_for(conn, principal, company)
        filt = await audit_query.search_filter(conn, current["id"], terms)
        rows = await audit_query.list_events(conn, filt, limit=limit + 1, before=before)
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = f"a_{rows[-1]['id']}" if more else None
    items = [ActivityEntry.of(audit_query.event_public(r)) for r in rows]
    return page(request_id_of(request), items, next_cursor)


@router.get(
    "/companies/{company}/activity/export",
    operation_id="exportActivity",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"application/x-ndjson": {}, "text/csv": {}},
            "description": "The matching events, oldest first",
        },
        **error_responses(403, 404),
    },
)
async def export_activity(
    company: CompanyRef,
    principal: Reader,
    db: Db,
    format: Annotated[Literal["jsonl", "csv"], Query(description="jsonl (lossless) or csv.")] = "jsonl",
    q: Q = None,
    actor: Actor = None,
    action: Action = None,
    category: Category = None,
    since: Since = None,
    until: Until = None,
) -> Any:
    """The company's matching activity, oldest first, streamed as JSONL or CSV."""
    from company_agents.audit import query as audit_query

    terms = _terms(q, actor=actor, action=action, category=category, since=since, until=until)
    # Resolve the company and the filter first, so a 404 or 422 is an answer and not a broken stream.
    async with db.engine.connect() as conn:
        current = await company_for(conn, principal, company)
        filt = await audit_query.search_filter(conn, current["id"], terms)

    async def lines() -> AsyncIterator[str]:
        if format == "csv":
            yield audit_query.csv_header()
        async with db.engine.connect() as conn:
            async for row in audit_query.iter_events(conn, filt):
                yield audit_query.csv_line(row) if format == "csv" else audit_query.jsonl_line(row)

    media = "text/csv; charset=utf-8" if format == "csv" else "application/x-ndjson"
    name = f"activity-{current['slug']}.{format}"
    return StreamingResponse(
        lines(), media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )


@router.get(
    "/activity/{event}",
    operation_id="getActivity",
    response_model=Envelope[ActivityEntry],
    responses=error_responses(403, 404),
)
async def get_activity(
    request: Request, event: Annotated[int, Path(ge=1, le=2**62)], principal: Reader, db: Db
) -> Any:
    """One activity entry."""
    from company_agents.audit import query as audit_query

    async with db.engine.connect() as conn:
        row = await audit_query.get_event(conn, event)
    # An event above any company (a token made, a key rotated) is no company-scoped token's to see.
    check_company(principal, row, "event", str(event))
    return one(request_id_of(request), ActivityEntry.of(audit_query.event_public(row)))


@router.get(
    "/companies/{company}/audit",
    operation_id="verifyCompanyAudit",
    response_model=Envelope[AuditStatus],
    responses=error_responses(403, 404),
)
async def company_audit(request: Request, company: CompanyRef, principal: Admin, db: Db) -> Any:
    """Verify the audit trail as ``audit verify --company`` does: every seal, the company's events'
    MACs and this home's anchor (admin: it reads the whole chain and the master keys)."""
    from company_agents.audit.anchor import anchor_path, read_anchor
    from company_agents.audit.verify import Problem, verify_trail
    from company_agents.master_key.rotation import known_keys

    settings = get_settings(request)
    unreadable: Problem | None = None
    try:
        anchor = read_anchor(anchor_path(settings))
    except ValueError as exc:
        anchor = None
        unreadable = Problem("anchor_unreadable", f"the audit anchor cannot be read: {exc}")
    keys = known_keys(settings, master_key_or_none(request))
    # One snapshot: the sealer may append while the chain is read.
    engine = db.engine.execution_options(isolation_level="REPEATABLE READ")
    async with engine.connect() as conn:
        current = await company_for(conn, principal, company)
        report = await verify_trail(conn, keys, company_id=current["id"], anchor=anchor)
    if unreadable is not None:
        report.problems.insert(0, unreadable)
    return one(request_id_of(request), AuditStatus.of(report.to_dict()))
