"""Searching and exporting the audit trail (the search keys of the activity log)."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import ColumnElement, Select, false, select
from sqlalchemy.ext.asyncio import AsyncConnection

from company_agents.audit.seal import EVENT_COLUMNS
from company_agents.db.schema import audit_events
from company_agents.errors import InvalidInput, NotFound

_RELATIVE = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_when(value: str, *, now: datetime | None = None) -> datetime:
    """``30m``, ``1h``, ``7d``, ``2w`` (that long ago), or an ISO date or date-time (UTC if naive)."""
    text = value.strip()
    now = now or datetime.now(UTC)
    match = _RELATIVE.match(text)
    if match:
        try:
            return now - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
        except OverflowError:
            raise InvalidInput(f"{value!r} reaches before year 1", field="since/until") from None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            moment = datetime.combine(date.fromisoformat(text), datetime.min.time())
        except ValueError:
            raise InvalidInput(
                f"cannot read the time {value!r}: use 30m, 1h, 7d, 2w or an ISO date like 2026-11-28",
                field="since/until",
            ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


_ID_PREFIX = re.compile(r"^[0-9a-f][0-9a-f-]{5,34}$")


def _subject_id_matches(ident: str) -> ColumnElement[bool]:
    """An exact subject id, or the start of one (6+ characters, as tables print ids: docs/design.md §3)."""
    column = audit_events.c.subject_id
    text = ident.strip().lower()
    if _ID_PREFIX.match(text):
        return column.startswith(text, autoescape=True)
    return column == ident


@dataclass(frozen=True)
class AuditFilter:
    """Search keys. ``action`` is exact (``task.created``) or a category (``task`` / ``task.``);
    ``actor`` is exact, or a prefix when it ends with ``:`` (``agent:``); ``subject`` is ``type:id``,
    ``type:`` or an id.
    """

    company_id: UUID | None = None
    actor: str | None = None
    action: str | None = None
    subject: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    # Terms that cannot all hold (a search for two different agents' events): no event matches.
    nothing: bool = False

    def apply(self, query: Select[Any]) -> Select[Any]:
        t = audit_events.c
        if self.nothing:
            return query.where(false())
        if self.company_id is not None:
            query = query.where(t.company_id == self.company_id)
        if self.actor:
            kind, _, ident = self.actor.partition(":")
            if self.actor.endswith(":") or _ID_PREFIX.match(ident.lower()):
                query = query.where(t.actor.startswith(f"{kind}:{ident.lower()}", autoescape=True))
            else:
                query = query.where(t.actor == self.actor)
        if self.action:
            if "." not in self.action.rstrip("."):
                query = query.where(t.action.startswith(self.action.rstrip(".") + ".", autoescape=True))
            else:
                query = query.where(t.action == self.action)
        if self.subject:
            kind, sep, ident = self.subject.partition(":")
            if not sep:
                query = query.where(_subject_id_matches(self.subject))
            else:
                query = query.where(t.subject_type == kind)
                if ident:
                    query = query.where(_subject_id_matches(ident))
        if self.since is not None:
            query = query.where(t.created_at >= self.since)
        if self.until is not None:
            query = query.where(t.created_at < self.until)
        return query


async def list_events(
    conn: AsyncConnection, filt: AuditFilter, *, limit: int = 100, before: int | None = None
) -> list[dict[str, Any]]:
    """Matching events, newest first; with ``before``, only events older than that id (a keyset page)."""
    query = filt.apply(select(*EVENT_COLUMNS))
    if before is not None:
        query = query.where(audit_events.c.id < before)
    query = query.order_by(audit_events.c.id.desc()).limit(limit)
    return [dict(r) for r in (await conn.execute(query)).mappings()]


async def get_event(conn: AsyncConnection, event_id: int) -> dict[str, Any]:
    """One event by id; ``NotFound`` when there is none."""
    row = (await conn.execute(select(*EVENT_COLUMNS).where(audit_events.c.id == event_id))).mappings().first()
    if row is None:
        raise NotFound(f"no activity event {event_id}", event=event_id)
    return dict(row)


async def iter_events(conn: AsyncConnection, filt: AuditFilter) -> AsyncIterator[dict[str, Any]]:
    """Matching events, oldest first, streamed (for exports of any size)."""
    result = await conn.stream(filt.apply(select(*EVENT_COLUMNS)).order_by(audit_events.c.id))
    async for row in result.mappings():
        yield dict(row)


def event_public(row: dict[str, Any]) -> dict[str, Any]:
    """An event as the CLI and exports show it (snake_case; the CLI camelCases keys, not the payload)."""
    return {
        "id": row["id"],
        "company_id": row["company_id"],
        "at": row["created_at"],
        "actor": row["actor"],
        "action": row["action"],
        "category": row["action"].split(".", 1)[0],
        "subject": {"type": row["subject_type"], "id": row["subject_id"]},
        "payload": row["payload"],
    }


def jsonl_line(row: dict[str, Any]) -> str:
    """One lossless JSONL record."""
    record = {
        "id": row["id"],
        "companyId": None if row["company_id"] is None else str(row["company_id"]),
        "at": row["created_at"].astimezone(UTC).isoformat(),
        "actor": row["actor"],
        "action": row["action"],
        "subjectType": row["subject_type"],
        "subjectId": row["subject_id"],
        "payload": row["payload"],
    }
    return json.dumps(record, ensure_ascii=False, sort_keys=False) + "\n"


CSV_COLUMNS = ["id", "companyId", "at", "actor", "action", "subjectType", "subjectId", "payload"]


def csv_header() -> str:
    return _csv_row(CSV_COLUMNS)


def csv_line(row: dict[str, Any]) -> str:
    return _csv_row(
        [
            str(row["id"]),
            "" if row["company_id"] is None else str(row["company_id"]),
            row["created_at"].astimezone(UTC).isoformat(),
            row["actor"],
            row["action"],
            row["subject_type"],
            row["subject_id"],
            json.dumps(row["payload"], ensure_ascii=False, sort_keys=True),
        ]
    )


def _csv_row(values: list[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(values)
    return buffer.getvalue()


# The activity log's search keys (``agent:ada category:approval since:7d``), as ``q`` takes them.
SEARCH_KEYS = ("actor", "agent", "category", "action", "subject", "task", "run", "since", "until")


def parse_search(q: str) -> list[tuple[str, str]]:
    """``key:value`` terms separated by spaces, in order; ``InvalidInput`` for an unknown key or a term
    without a key (the values themselves are checked where they are used)."""
    terms: list[tuple[str, str]] = []
    for term in q.split():
        key, sep, value = term.partition(":")
        if not sep or not value:
            raise InvalidInput(
                f"search term {term!r} is not key:value (keys: {', '.join(SEARCH_KEYS)})", field="q"
            )
        if key not in SEARCH_KEYS:
            raise InvalidInput(f"unknown search key {key!r} (keys: {', '.join(SEARCH_KEYS)})", field="q")
        terms.append((key, value))
    return terms


def _narrowest(values: list[str], *, prefix: bool) -> str | None:
    """The one value every term allows (terms are ANDed): equal values, or (``prefix``) a value and
    the ``kind:`` prefixes it starts with; None when they cannot all hold."""
    exact = {v for v in values if not (prefix and v.endswith(":"))}
    if len(exact) > 1:
        return None
    pick = next(iter(exact)) if exact else max(values, key=len)
    if prefix and not all(pick.startswith(v) for v in values if v.endswith(":")):
        return None
    return pick


async def search_filter(conn: AsyncConnection, company_id: UUID, terms: list[tuple[str, str]]) -> AuditFilter:
    """The ``AuditFilter`` of a company's activity search. Terms are ANDed: ``agent`` is an agent of the
    company by name or id (the events it did), ``category`` an action's first part, ``task``/``run``
    the events about that task or run, ``since``/``until`` the latest and earliest given; terms that
    cannot all hold (two different agents) match nothing, as a search should, rather than fail."""
    from company_agents import agents

    def values(*keys: str) -> list[str]:
        return [v for k, v in terms if k in keys]

    nothing = False
    actors = values("actor")
    for ref in values("agent"):
        agent = await agents.get_agent(conn, company_id, ref)
        actors.append(f"agent:{agent['id']}")
    actor = _narrowest(actors, prefix=True) if actors else None
    nothing |= bool(actors) and actor is None

    actions = values("action")
    categories = {c.rstrip(".") for c in values("category")}
    action: str | None = None
    if len(categories) > 1 or len(set(actions)) > 1:
        nothing = True
    elif actions:
        action = actions[0]
        nothing |= bool(categories) and not action.startswith(f"{next(iter(categories))}.")
    elif categories:
        action = next(iter(categories))

    subjects = values("subject") + [f"{k}:{v}" for k, v in terms if k in ("task", "run")]
    subject = subjects[0] if subjects else None
    nothing |= len(set(subjects)) > 1

    since = max((parse_when(v) for v in values("since")), default=None)
    until = min((parse_when(v) for v in values("until")), default=None)
    return AuditFilter(
        company_id=company_id,
        actor=actor,
        action=action,
        subject=subject,
        since=since,
        until=until,
        nothing=nothing,
    )
