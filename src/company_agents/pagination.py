"""Keyset pages, newest first: ``WHERE (at, id) < (:at, :id) ORDER BY at DESC, id DESC LIMIT n + 1``
(or oldest first, for a thread that reads top down, with ``>`` and ``ASC``).

No OFFSET (a deep page costs what the first does) and no totals. The extra row tells whether another
page follows; the caller turns the last row it keeps into the next cursor (api/schemas/common.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import ColumnElement, Select, tuple_

Key = tuple[datetime, UUID]


def newest_first(
    query: Select[Any], at: ColumnElement[Any], key: ColumnElement[Any], before: Key | None, limit: int
) -> Select[Any]:
    if before is not None:
        query = query.where(tuple_(at, key) < tuple_(before[0], before[1]))
    return query.order_by(at.desc(), key.desc()).limit(limit + 1)


def oldest_first(
    query: Select[Any], at: ColumnElement[Any], key: ColumnElement[Any], after: Key | None, limit: int
) -> Select[Any]:
    if after is not None:
        query = query.where(tuple_(at, key) > tuple_(after[0], after[1]))
    return query.order_by(at.asc(), key.asc()).limit(limit + 1)


def split(rows: list[dict[str, Any]], limit: int, at: str) -> tuple[list[dict[str, Any]], Key | None]:
    """The page and the key of its last row when more rows follow (else None)."""
    if len(rows) <= limit:
        return rows, None
    last = rows[limit - 1]
    return rows[:limit], (last[at], last["id"])
