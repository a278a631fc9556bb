"""``GET /c/{slug}/live``: one SSE stream per company scope telling its pages that something changed.

The events are small on purpose (``event: changed``, the public type as data): a page re-fetches its
own fragment, so the stream never carries anything a page would not show. A burst (a run reports
progress, costs and a state change in a few milliseconds) is folded into one event per ``FOLD``
seconds, so a busy company cannot pile up fragment fetches (the pile-up that froze other dashboards).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Path, Request

from company_agents.api.schemas.companies import SLUG_PATTERN
from company_agents.dashboard.pages import db_of

router = APIRouter()

FOLD_SECONDS = 0.25
PING_SECONDS = 15
RETRY_MS = 3000
SEND_TIMEOUT_SECONDS = 30.0


def hub_of(request: Request) -> Any:
    from company_agents.events.hub import FeedHub

    hub = getattr(request.app.state, "event_hub", None)
    if hub is None:
        hub = request.app.state.event_hub = FeedHub(db_of(request))
    return hub


@router.get("/c/{slug}/live")
async def live(request: Request, slug: str = Path(pattern=SLUG_PATTERN)) -> Any:
    from sse_starlette import EventSourceResponse, ServerSentEvent

    from company_agents.companies import get_company
    from company_agents.events import feed
    from company_agents.events.stream import follow

    db = db_of(request)
    async with db.engine.connect() as conn:
        company_id = (await get_company(conn, slug))["id"]
        start = await feed.tail(conn)
    hub = hub_of(request)

    async def events() -> AsyncIterator[ServerSentEvent]:
        yield ServerSentEvent(comment="stream open", retry=RETRY_MS)
        changes: asyncio.Queue[str] = asyncio.Queue()

        async def pump() -> None:
            async for event in follow(db, hub, company_id, start):
                changes.put_nowait(event.type)

        pumping = asyncio.create_task(pump())
        try:
            while True:
                waiting = asyncio.ensure_future(changes.get())
                await asyncio.wait({waiting, pumping}, return_when=asyncio.FIRST_COMPLETED)
                if not waiting.done():
                    # The feed stopped (the database went away): end the stream, and the browser's
                    # EventSource reconnects after RETRY_MS, from a fresh tail.
                    waiting.cancel()
                    return
                kinds = {waiting.result()}
                await asyncio.sleep(FOLD_SECONDS)
                while not changes.empty():
                    kinds.add(changes.get_nowait())
                yield ServerSentEvent(event="changed", data=" ".join(sorted(kinds)))
        finally:
            pumping.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pumping

    return EventSourceResponse(
        events(),
        ping=PING_SECONDS,
        send_timeout=SEND_TIMEOUT_SECONDS,
        headers={"X-Accel-Buffering": "no"},
    )
