"""A run's log file read as it grows: ``run logs --follow`` and ``GET /v1/runs/{run}/log?follow=true``
tail it the same way, until the run has ended in the database and the file has stopped growing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from uuid import UUID

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

POLL_SECONDS = 0.5
CHUNK_BYTES = 64 * 1024


def restart_at(path: Path, position: int) -> int:
    """Where to read on from: ``position``, or 0 when the file is now shorter (truncated or
    replaced, so read again from the top)."""
    try:
        return 0 if path.stat().st_size < position else position
    except FileNotFoundError:
        return position


def new_bytes(path: Path, position: int) -> Iterator[bytes]:
    """What ``path`` holds past ``position``, in chunks (nothing when it is missing)."""
    try:
        fh = path.open("rb")
    except FileNotFoundError:
        return
    with fh:
        fh.seek(position)
        while chunk := fh.read(CHUNK_BYTES):
            yield chunk


async def tail(
    engine: AsyncEngine, run_id: UUID, path: Path, *, poll_seconds: float | None = None
) -> AsyncIterator[bytes]:
    """The log from the top, then what is appended, until the run has ended and one more poll
    found nothing new (the adapter has flushed its last line by then)."""
    from sqlalchemy.exc import DBAPIError

    from company_agents import runs

    poll = POLL_SECONDS if poll_seconds is None else poll_seconds
    position = 0
    ended = False
    while True:
        grew = False
        position = restart_at(path, position)
        for chunk in new_bytes(path, position):
            position += len(chunk)
            grew = True
            yield chunk
        if ended and not grew:
            return
        if not ended:
            try:
                async with engine.connect() as conn:  # one short transaction per poll
                    ended = await runs.run_has_ended(conn, run_id)
            except DBAPIError:
                pass  # the database restarted or the connection dropped: keep tailing, ask again
        await asyncio.sleep(poll)
