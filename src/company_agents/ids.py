"""Ids people can type: a full UUID, a unique prefix of one, or a name where names are unique.

Every board-side lookup goes through ``resolve_id``, so every CLI id argument takes the same forms:

- a full UUID (with or without dashes, optionally with the kind's prefix such as ``run_``);
- a prefix of at least ``MIN_PREFIX`` hex digits (dashes optional) that matches exactly one row in
  scope: tables print ``short_id`` (``SHORT_LEN`` digits), which is such a prefix;
- for kinds with a name unique in their company (agent, team), that name.

An ambiguous prefix is an ``AmbiguousId`` listing the candidates; a prefix shorter than
``MIN_PREFIX`` is an ``InvalidInput`` saying so; nothing matching is a ``NotFound``.

A prefix is looked up as a range on the primary key (``id BETWEEN prefix00… AND prefixff…``):
PostgreSQL orders ``uuid`` by its bytes, the order of its hex digits, so the primary-key index
answers it without a scan.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from sqlalchemy import ColumnElement, Table, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from company_agents.db.schema import agents, companies, integrations, runs, secrets, tasks, teams
from company_agents.errors import AmbiguousId, InvalidInput, NotFound

MIN_PREFIX = 6
SHORT_LEN = 8
# How many candidates an ambiguous prefix lists (one more is fetched to know there are more).
MAX_CANDIDATES = 5

_HEX = re.compile(r"^[0-9a-f]+$")


@dataclass(frozen=True)
class IdKind:
    """A table whose rows people name: ``noun`` for messages, ``label`` to tell candidates apart.

    ``name`` is a column unique within the company (matched case-insensitively) that works as an id;
    ``company`` is the company column, used to scope a lookup; ``prefix`` is an optional marker such
    as ``run_`` that ids of this kind may be written with.
    """

    noun: str
    table: Table
    label: str | None = None
    name: str | None = None
    company: str | None = "company_id"
    prefix: str = ""


def short_id(value: UUID | str | None) -> str:
    """The form tables print: the first ``SHORT_LEN`` hex digits, itself a prefix that resolves."""
    if value is None:
        return ""
    return str(value).replace("-", "")[:SHORT_LEN]


def _hex_of(kind: IdKind, ref: str) -> str | None:
    """``ref`` as lowercase hex digits without dashes, or None when it is not of that form."""
    text = ref.strip().lower()
    if kind.prefix and text.startswith(kind.prefix):
        text = text[len(kind.prefix) :]
    text = text.replace("-", "")
    return text if text and len(text) <= 32 and _HEX.match(text) else None


def parse_full_id(kind: IdKind, ref: str | UUID) -> UUID | None:
    """``ref`` as a UUID when it is a complete one, else None."""
    if isinstance(ref, UUID):
        return ref
    digits = _hex_of(kind, ref)
    return UUID(digits) if digits is not None and len(digits) == 32 else None


def _scope(kind: IdKind, company_id: UUID | None) -> list[ColumnElement[bool]]:
    if company_id is None or kind.company is None:
        return []
    return [kind.table.c[kind.company] == company_id]


def _describe(kind: IdKind, row: Any) -> str:
    label = row._mapping.get("label") if kind.label else None
    return f"{short_id(row.id)} {label}" if label else short_id(row.id)


async def _by_name(conn: AsyncConnection, kind: IdKind, ref: str, company_id: UUID | None) -> UUID | None:
    """The row whose name is ``ref`` (an exact match first, then a case-insensitive one), or None."""
    if kind.name is None or (kind.company is not None and company_id is None):
        return None  # a name is unique only within its company
    column = kind.table.c[kind.name]
    wanted = ref.strip()
    query = select(kind.table.c.id, column.label("name")).where(
        func.lower(column) == wanted.lower(), *_scope(kind, company_id)
    )
    rows = list((await conn.execute(query.limit(MAX_CANDIDATES + 1))).all())
    exact = [r for r in rows if r.name == wanted]
    if len(exact) == 1 or len(rows) == 1:
        return UUID(str((exact or rows)[0].id))
    if rows:
        raise AmbiguousId(
            f"{ref!r} matches several {kind.noun}s: {', '.join(r.name for r in rows)}; "
            "give the exact name or an id",
            field=kind.noun,
            candidates=[str(r.id) for r in rows],
        )
    return None


async def resolve_id(
    conn: AsyncConnection, kind: IdKind, ref: str | UUID, *, company_id: UUID | None = None
) -> UUID:
    """The id of the one row of ``kind`` that ``ref`` names (within ``company_id`` when given).

    A full UUID is returned as it is, unchecked (the caller's own lookup says whether it exists), so
    code that already holds ids pays no query. Raises ``InvalidInput`` (not an id of this form, or too
    short), ``AmbiguousId`` (several rows match) or ``NotFound``.
    """
    full = parse_full_id(kind, ref)
    if full is not None:
        return full
    text = str(ref)
    named = await _by_name(conn, kind, text, company_id)
    if named is not None:
        return named
    digits = _hex_of(kind, text)
    if digits is None and kind.name is None:
        raise InvalidInput(
            f"{text!r} is not a {kind.noun} id: give the id, or at least {MIN_PREFIX} characters of it",
            field=kind.noun,
        )
    if digits is None or (len(digits) < MIN_PREFIX and kind.name is not None):
        forms = f"its id (or at least {MIN_PREFIX} characters of it)"
        if kind.name is not None:
            scoped = kind.company is None or company_id is not None
            forms += ", or its name" + ("" if scoped else " with --company")
        raise NotFound(f"no {kind.noun} {text!r}: give {forms}", **{kind.noun: text})
    if len(digits) < MIN_PREFIX:
        raise InvalidInput(
            f"{text!r} is too short for an id: give at least {MIN_PREFIX} characters of the "
            f"{kind.noun}'s id (tables show {SHORT_LEN})",
            field=kind.noun,
        )
    low = UUID(digits.ljust(32, "0"))
    high = UUID(digits.ljust(32, "f"))
    columns: list[ColumnElement[Any]] = [kind.table.c.id]
    if kind.label is not None:
        columns.append(kind.table.c[kind.label].label("label"))
    query = (
        select(*columns)
        .where(kind.table.c.id.between(low, high), *_scope(kind, company_id))
        .order_by(kind.table.c.id)
        .limit(MAX_CANDIDATES + 1)
    )
    rows = list((await conn.execute(query)).all())
    if not rows:
        raise NotFound(f"no {kind.noun} {text}", **{kind.noun: text})
    if len(rows) > 1:
        shown = [_describe(kind, r) for r in rows[:MAX_CANDIDATES]]
        more = ", …" if len(rows) > MAX_CANDIDATES else ""
        raise AmbiguousId(
            f"{text!r} matches several {kind.noun}s: {', '.join(shown)}{more}; give more characters",
            field=kind.noun,
            candidates=[str(r.id) for r in rows[:MAX_CANDIDATES]],
        )
    return UUID(str(rows[0].id))


# The core kinds; other modules build their own ``IdKind`` for their tables the same way.
COMPANY = IdKind("company", companies, label="slug", name="slug", company=None)
TEAM = IdKind("team", teams, label="name", name="name")
AGENT = IdKind("agent", agents, label="name", name="name")
TASK = IdKind("task", tasks, label="title")
RUN = IdKind("run", runs, prefix="run_")
SECRET = IdKind("secret", secrets, label="name")
INTEGRATION = IdKind("integration", integrations, label="name", name="name")


async def labels(
    conn: AsyncConnection, wanted: Mapping[str, tuple[IdKind, UUID | None]]
) -> dict[str, str | None]:
    """The label (name, title, slug) of each ``key: (kind, id)`` in one query; None where there is none.

    What ``show`` commands print beside an id, so a person never has to look one up.
    """
    columns = [
        select(kind.table.c[kind.label]).where(kind.table.c.id == value).scalar_subquery().label(key)
        for key, (kind, value) in wanted.items()
        if value is not None and kind.label is not None
    ]
    found: dict[str, Any] = dict((await conn.execute(select(*columns))).mappings().one()) if columns else {}
    return {key: found.get(key) for key in wanted}
