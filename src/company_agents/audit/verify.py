"""Verifying the audit trail: recompute every seal and every sealed event, and name the first problem.

What is caught, and how (see ``audit.seal`` for the seal format):

- an event changed (or two swapped): its digest no longer matches the seal's manifest;
- an event deleted: an id in a seal's manifest has no row;
- an event inserted after the fact: a row whose id is at or below the sealed head but in no manifest
  (inside a seal's range, in a gap between seals, or before the first seal);
- a seal changed, deleted or reordered: its recomputed hash, its HMAC, or the chain of
  ``prev_seal_hash`` no longer matches.

Events after the last seal are reported as unsealed (the sealer has not reached them yet), not as
problems. Deleting the last seals together with their events cannot be seen from inside the database:
compare the reported head seal hash with one kept elsewhere to detect that.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from company_agents import crypto
from company_agents.audit.seal import (
    DIGEST_PREFIX_BYTES,
    EventsHasher,
    event_digest,
    parse_events_hash,
    seal_hash,
)
from company_agents.db.schema import audit_events, audit_seals
from company_agents.master_key import MasterKey


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the trail. ``event_id`` or ``seal_id`` names the culprit."""

    kind: str
    message: str
    event_id: int | None = None
    seal_id: int | None = None
    company_id: UUID | None = None
    # Where in the trail it sits (the event id, or the first event a seal covers): the first problem
    # is the one with the lowest position; seal problems come before event problems at the same place.
    position: tuple[int, int] = (0, 0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "message": self.message,
            "event_id": self.event_id,
            "seal_id": self.seal_id,
            "company_id": self.company_id,
        }


@dataclass
class VerifyReport:
    events_checked: int = 0
    seals_checked: int = 0
    sealed_through: int | None = None
    unsealed_events: int = 0
    head_seal_hash: str | None = None
    key_ids: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_problem(self) -> Problem | None:
        return self.problems[0] if self.problems else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "events_checked": self.events_checked,
            "seals_checked": self.seals_checked,
            "sealed_through": self.sealed_through,
            "unsealed_events": self.unsealed_events,
            "head_seal_hash": self.head_seal_hash,
            "key_ids": self.key_ids,
            "first_problem": self.first_problem.to_dict() if self.first_problem else None,
            "problems": [p.to_dict() for p in self.problems],
        }


@dataclass
class _Expected:
    event_id: int
    digest_prefix: bytes
    seal_id: int


def _check_seals(
    seals: Sequence[Mapping[Any, Any]], keys: Mapping[str, MasterKey], problems: list[Problem]
) -> list[_Expected]:
    """Check the chain and signatures; return the manifest entries of the seals that parse."""
    expected: list[_Expected] = []
    prev_hash: str | None = None
    prev_last = 0
    for seal in seals:
        sid, first = int(seal["id"]), int(seal["first_event_id"])

        def problem(kind: str, message: str, *, sid: int = sid, at: int = first) -> None:
            problems.append(Problem(kind, f"seal {sid}: {message}", seal_id=sid, position=(at, 0)))

        if seal["prev_seal_hash"] != prev_hash:
            # Placed where the missing part of the chain starts, before the events it leaves unsealed.
            problem(
                "seal_chain_broken",
                "does not follow the seal before it (a seal was deleted or changed)",
                at=min(first, prev_last + 1),
            )
        if first <= prev_last:
            problem("seal_out_of_order", f"covers events from {first}, before the end of the previous seal")
        recomputed = seal_hash(
            first=first,
            last=int(seal["last_event_id"]),
            count=int(seal["event_count"]),
            events_hash=seal["events_hash"],
            prev_seal_hash=seal["prev_seal_hash"],
            key_id=seal["key_id"],
        )
        if not hmac.compare_digest(recomputed, seal["seal_hash"]):
            problem("seal_changed", "its contents no longer match its hash (the seal was changed)")
        key = keys.get(seal["key_id"])
        if key is None:
            problem(
                "seal_unknown_key",
                f"signed by master key {seal['key_id']}, which is not available "
                "(keep old keys' .bak files in the secrets directory)",
            )
        elif not crypto.check_seal_signature(key, seal["seal_hash"].encode(), seal["signature"]):
            problem("seal_bad_signature", "its signature does not verify (the seal was forged or changed)")
        try:
            _, manifest = parse_events_hash(seal["events_hash"])
        except ValueError:
            problem("seal_changed", "its events hash is malformed (the seal was changed)")
            manifest = []
        if manifest and (
            len(manifest) != seal["event_count"]
            or manifest[0][0] != first
            or manifest[-1][0] != seal["last_event_id"]
        ):
            problem("seal_changed", "its manifest does not match its range (the seal was changed)")
        expected.extend(_Expected(event_id, prefix, sid) for event_id, prefix in manifest)
        prev_hash, prev_last = seal["seal_hash"], max(prev_last, int(seal["last_event_id"]))
    expected.sort(key=lambda e: e.event_id)
    return expected


async def verify_trail(
    conn: AsyncConnection, keys: Mapping[str, MasterKey], *, company_id: UUID | None = None
) -> VerifyReport:
    """Recompute the whole chain. With ``company_id``, only that company's event problems are reported
    (seal problems, and deleted events, whose company is unknown, are always reported).
    """
    report = VerifyReport()
    problems: list[Problem] = []
    seals = [dict(r) for r in (await conn.execute(select(audit_seals).order_by(audit_seals.c.id))).mappings()]
    report.seals_checked = len(seals)
    report.key_ids = sorted({s["key_id"] for s in seals})
    expected = _check_seals(seals, keys, problems)
    sealed_through = max((int(s["last_event_id"]) for s in seals), default=0)
    report.sealed_through = sealed_through or None
    report.head_seal_hash = seals[-1]["seal_hash"] if seals else None
    roots = {int(s["id"]): s["events_hash"].split(":")[1] for s in seals if s["events_hash"].count(":") == 2}
    hashers: dict[int, EventsHasher] = {}

    i = 0
    result = await conn.stream(
        select(audit_events.c.id, audit_events.c.company_id, audit_events.c.action, event_digest)
        .where(audit_events.c.id <= sealed_through)
        .order_by(audit_events.c.id)
    )
    async for row in result.mappings():
        event_id = int(row["id"])
        while i < len(expected) and expected[i].event_id < event_id:
            missing = expected[i]
            problems.append(
                Problem(
                    "event_deleted",
                    f"event {missing.event_id} was deleted (sealed by seal {missing.seal_id})",
                    event_id=missing.event_id,
                    seal_id=missing.seal_id,
                    position=(missing.event_id, 1),
                )
            )
            i += 1
        report.events_checked += 1
        digest = bytes(row["digest"])
        company = row["company_id"]
        if i < len(expected) and expected[i].event_id == event_id:
            entry = expected[i]
            i += 1
            hashers.setdefault(entry.seal_id, EventsHasher()).add(event_id, digest)
            if not hmac.compare_digest(digest[:DIGEST_PREFIX_BYTES], entry.digest_prefix):
                problems.append(
                    Problem(
                        "event_changed",
                        f"event {event_id} ({row['action']}) was changed after seal {entry.seal_id}",
                        event_id=event_id,
                        seal_id=entry.seal_id,
                        company_id=company,
                        position=(event_id, 1),
                    )
                )
        else:
            problems.append(
                Problem(
                    "event_inserted",
                    f"event {event_id} ({row['action']}) was inserted after the fact: its id is inside the "
                    "sealed part of the trail but no seal covers it",
                    event_id=event_id,
                    company_id=company,
                    position=(event_id, 1),
                )
            )
    for missing in expected[i:]:
        problems.append(
            Problem(
                "event_deleted",
                f"event {missing.event_id} was deleted (sealed by seal {missing.seal_id})",
                event_id=missing.event_id,
                seal_id=missing.seal_id,
                position=(missing.event_id, 1),
            )
        )
    # The full-strength root, for seals whose events all matched their (truncated) manifest digests.
    flagged = {p.seal_id for p in problems}
    for seal in seals:
        sid = int(seal["id"])
        if sid in flagged or sid not in roots:
            continue
        hasher = hashers.get(sid)
        if hasher is None or hasher.root != roots[sid]:
            problems.append(
                Problem(
                    "seal_events_mismatch",
                    f"seal {sid}: its events hash does not match the events it covers",
                    seal_id=sid,
                    position=(int(seal["first_event_id"]), 0),
                )
            )
    report.unsealed_events = int(
        (await conn.execute(select(func.count()).where(audit_events.c.id > sealed_through))).scalar_one()
    )
    if company_id is not None:
        problems = [
            p for p in problems if p.event_id is None or p.company_id is None or p.company_id == company_id
        ]
    report.problems = sorted(problems, key=lambda p: p.position)
    return report
