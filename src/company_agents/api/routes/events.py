"""``GET /v1/companies/{company}/events``: the company's live events as Server-Sent Events.

Each event carries ``id:`` (the audit event id) and ``event:`` (its public type); a client reconnecting
with ``Last-Event-ID`` (or ``?lastEventId=``, for clients that cannot set headers) resumes right after
that event, from the database; without one it starts at the newest event. Out of the OpenAPI schema:
it is not JSON (docs/events.md).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request

from company_agents.api.deps import Principal, company_for, get_db, require

router = APIRouter(tags=["events"])

PING_SECONDS = 15
RETRY_MS = 3000
# A client whose socket accepts nothing for this long is dropped (its events stay in the database).
SEND_TIMEOUT_SECONDS = 30.0


def _hub(request: Request) -> Any:
    from company_agents.events.hub import FeedHub

    hub = getattr(request.app.state, "event_hub", None)
    if hub is None:
        hub = request.app.state.event_hub = FeedHub(get_db(request))
    return hub


@router.get("/companies/{company}/events", operation_id="streamCompanyEvents", include_in_schema=False)
async def stream_events(
    request: Request,
    company: str,
    principal: Annotated[Principal, Depends(require("read"))],
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    last_event_id_query: Annotated[str | None, Query(alias="lastEventId", max_length=18)] = None,
) -> Any:
    from sse_starlette import EventSourceResponse, ServerSentEvent

    from company_agents.events import feed
    from company_agents.events.stream import follow

    db = get_db(request)
    cursor = feed.parse_cursor(last_event_id if last_event_id is not None else last_event_id_query)
    async with db.engine.connect() as conn:
        row = await company_for(conn, principal, company)
        company_id = row["id"]
        start = await (feed.position_of(conn, company_id, cursor) if cursor else feed.tail(conn))
    hub = _hub(request)

    async def events() -> AsyncIterator[ServerSentEvent]:
        # The first frame tells the client how long to wait before reconnecting.
        yield ServerSentEvent(comment="stream open", retry=RETRY_MS)
        async for event in follow(db, hub, company_id, start):
            yield ServerSentEvent(
                id=str(event.id), event=event.type, data=json.dumps(event.public(), separators=(",", ":"))
            )

    return EventSourceResponse(
        events(),
        ping=PING_SECONDS,
        send_timeout=SEND_TIMEOUT_SECONDS,
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
