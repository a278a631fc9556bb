"""The activity page: the company's audit trail searched with the product's keys
(``agent:ada category:approval since:7d``), newest first in keyset pages, and exported whole."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, StreamingResponse

from company_agents.api.schemas.companies import SLUG_PATTERN
from company_agents.dashboard.app import render
from company_agents.dashboard.pages import company_scope, db_of

router = APIRouter()

Slug = Path(pattern=SLUG_PATTERN)
# Events a page shows before "show more" (the next page starts below the last id shown).
ACTIVITY_PAGE = 50
SearchText = Query("", max_length=500)
EXPORTS = {"jsonl": "application/x-ndjson", "csv": "text/csv; charset=utf-8"}


@router.get("/c/{slug}/activity", response_class=HTMLResponse)
async def activity_page(
    request: Request,
    slug: str = Slug,
    q: str = SearchText,
    before: int | None = Query(None, ge=1, le=2**63 - 1),
) -> HTMLResponse:
    from company_agents.agents import list_agents
    from company_agents.audit import query as audit_query

    async with db_of(request).engine.connect() as conn:
        scope = await company_scope(conn, slug)
        filt = await audit_query.search_filter(conn, scope["company"]["id"], audit_query.parse_search(q))
        rows = await audit_query.list_events(conn, filt, limit=ACTIVITY_PAGE + 1, before=before)
        agents = await list_agents(conn, company=str(scope["company"]["id"]), include_retired=True)
    events, more = rows[:ACTIVITY_PAGE], len(rows) > ACTIVITY_PAGE
    context: dict[str, Any] = {
        "events": events,
        "next": events[-1]["id"] if more else None,
        "q": q,
        # An agent's events name it, as the search key does (the trail keeps its id).
        "actors": {f"agent:{a['id']}": f"agent:{a['name']}" for a in agents},
        "keys": audit_query.SEARCH_KEYS,
    }
    if before is not None:
        # A "show more" fetch: only the rows and the next button, appended under the last page.
        return render(request, "activity_more.html", **context, **scope)
    return render(request, "activity.html", live="activity_live.html", page="activity", **context, **scope)


@router.get("/c/{slug}/activity/export.{fmt}")
async def export(
    request: Request, fmt: str = Path(pattern="^(jsonl|csv)$"), slug: str = Slug, q: str = SearchText
) -> StreamingResponse:
    from company_agents.audit import query as audit_query
    from company_agents.companies import get_company

    db = db_of(request)
    # The search is read (and refused when wrong) before the response starts, so a bad key is a 422
    # page rather than a broken download.
    async with db.engine.connect() as conn:
        company = await get_company(conn, slug)
        filt = await audit_query.search_filter(conn, company["id"], audit_query.parse_search(q))

    async def lines() -> AsyncIterator[str]:
        if fmt == "csv":
            yield audit_query.csv_header()
        line = audit_query.csv_line if fmt == "csv" else audit_query.jsonl_line
        async with db.engine.connect() as conn:
            async for row in audit_query.iter_events(conn, filt):
                yield line(row)

    name = f"{company['slug']}-activity.{fmt}"
    return StreamingResponse(
        lines(),
        media_type=EXPORTS[fmt],
        headers={"content-disposition": f'attachment; filename="{name}"'},
    )
