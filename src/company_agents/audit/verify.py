"""Verifying the audit trail: recompute every seal and every sealed event, and name the first problem.

What is caught, and how (see ``audit.seal`` for the seal format):

- an event changed (or two swapped): its digest no longer matches the seal's manifest;
- an event deleted: an id in a seal's manifest has no row;
- an event inserted after the fact: a row whose id is at or below the sealed head but in no manifest
  (inside a seal's range, in a gap between seals, or before the first seal);
- a seal changed, deleted or reordered: its recomputed hash, its HMAC, or the chain of
  ``prev_seal_hash`` no longer matches.

- an event changed before any seal covers it, or its MAC changed: its MAC (``audit.mac``, set at
  insert) no longer matches its contents;
- an event nothing proves: no seal covers it and it has no MAC a known key checks (written by a
  session without the key, or forged): counted, and the first one named;
- the newest seals deleted together with their events: the anchor kept outside the database
  (``audit.anchor``) names a seal that is missing or different.

Events after the last seal with a valid MAC are reported as not sealed yet, not as problems.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from sqlalchemy import LargeBinary, literal_column, select
from sqlalchemy.ext.asyncio import AsyncConnection

from company_agents import crypto
from company_agents.audit import mac as audit_mac
from company_agents.audit.anchor import Anchor
from company_agents.audit.seal import (
    DIGEST_PREFIX_BYTES,
    EVENT_CANONICAL_SQL,
    EventsHasher,
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
    """What was checked. Every event is proven by a seal, or (not sealed yet) by its MAC, or unproven."""

    events_checked: int = 0
    seals_checked: int = 0
    sealed_through: int | None = None
    sealed_events: int = 0
    unsealed_events: int = 0
    mac_verified: int = 0
    unsealed_mac_verified: int = 0
    unproven: int = 0
    head_seal_hash: str | None = None
    key_ids: list[str] = field(default_factory=list)
    anchor: dict[str, Any] | None = None
    head_seal: dict[str, Any] | None = field(default=None, repr=False)
    first_mac_id: int | None = field(default=None, repr=False)
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
            "sealed_events": self.sealed_events,
            "unsealed_events": self.unsealed_events,
            "mac_verified": self.mac_verified,
            "unsealed_mac_verified": self.unsealed_mac_verified,
            "unproven": self.unproven,
            "head_seal_hash": self.head_seal_hash,
            "key_ids": self.key_ids,
            "anchor": self.anchor,
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


_canonical = literal_column(EVENT_CANONICAL_SQL, LargeBinary).label("canonical")


def _check_anchor(
    anchor: Anchor, seals: Sequence[Mapping[Any, Any]], sealed_through: int, problems: list[Problem]
) -> str:
    by_id = {int(s["id"]): s for s in seals}
    seal = by_id.get(anchor.seal_id)
    where = f"the audit anchor (kept outside the database) names seal {anchor.seal_id}"
    if seal is None:
        problems.append(
            Problem(
                "anchor_seal_missing",
                f"{where} (events up to {anchor.last_event_id}), which is not in the database: the newest "
                "seals were deleted together with their events (or this home now points at another "
                "database; `backup restore` resets the anchor)",
                seal_id=anchor.seal_id,
                position=(sealed_through + 1, 0),
            )
        )
        return "missing"
    if not hmac.compare_digest(str(seal["seal_hash"]), anchor.seal_hash):
        problems.append(
            Problem(
                "anchor_seal_changed",
                f"{where}, but that seal's hash is not the one anchored (the seals were replaced)",
                seal_id=anchor.seal_id,
                position=(int(seal["first_event_id"]), 0),
            )
        )
        return "changed"
    return "ok"


async def verify_trail(
    conn: AsyncConnection,
    keys: Mapping[str, MasterKey],
    *,
    company_id: UUID | None = None,
    anchor: Anchor | None = None,
) -> VerifyReport:
    """Recompute the whole chain and every event's MAC. With ``company_id``, only that company's event
    problems are reported (seal problems, and deleted events, whose company is unknown, are always
    reported). ``anchor`` is this home's record of the newest seal (``audit.anchor``).
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
    report.head_seal = seals[-1] if seals else None
    if anchor is not None:
        status = _check_anchor(anchor, seals, sealed_through, problems)
        report.anchor = {"seal_id": anchor.seal_id, "seal_hash": anchor.seal_hash, "status": status}
    roots = {int(s["id"]): s["events_hash"].split(":")[1] for s in seals if s["events_hash"].count(":") == 2}
    hashers: dict[int, EventsHasher] = {}
    first_unproven: tuple[int, str, UUID | None] | None = None
    macs_from = anchor.macs_from if anchor is not None else None

    def deleted(missing: _Expected) -> Problem:
        return Problem(
            "event_deleted",
            f"event {missing.event_id} was deleted (sealed by seal {missing.seal_id})",
            event_id=missing.event_id,
            seal_id=missing.seal_id,
            position=(missing.event_id, 1),
        )

    i = 0
    result = await conn.stream(
        select(
            audit_events.c.id,
            audit_events.c.company_id,
            audit_events.c.action,
            audit_events.c.mac,
            audit_events.c.mac_key_id,
            _canonical,
        ).order_by(audit_events.c.id)
    )
    async for row in result.mappings():
        event_id = int(row["id"])
        while i < len(expected) and expected[i].event_id < event_id:
            problems.append(deleted(expected[i]))
            i += 1
        report.events_checked += 1
        canonical = bytes(row["canonical"])
        digest = hashlib.sha256(canonical).digest()
        company = row["company_id"]
        what = f"event {event_id} ({row['action']})"
        mac_ok: bool | None = None  # None: no MAC, or one no known key can check
        if row["mac"] is not None:
            mac_key = keys.get(row["mac_key_id"] or "")
            if mac_key is not None:
                mac_ok = audit_mac.check_event_mac(mac_key, canonical, bytes(row["mac"]))
        in_seal = False
        if event_id <= sealed_through:
            if i < len(expected) and expected[i].event_id == event_id:
                entry = expected[i]
                i += 1
                hashers.setdefault(entry.seal_id, EventsHasher()).add(event_id, digest)
                if not hmac.compare_digest(digest[:DIGEST_PREFIX_BYTES], entry.digest_prefix):
                    problems.append(
                        Problem(
                            "event_changed",
                            f"{what} was changed after seal {entry.seal_id}",
                            event_id=event_id,
                            seal_id=entry.seal_id,
                            company_id=company,
                            position=(event_id, 1),
                        )
                    )
                    continue
                in_seal = True
            else:
                problems.append(
                    Problem(
                        "event_inserted",
                        f"{what} was inserted after the fact: its id is inside the sealed part of the "
                        "trail but no seal covers it"
                        + (" (it carries no MAC: the sealer left it out)" if row["mac"] is None else ""),
                        event_id=event_id,
                        company_id=company,
                        position=(event_id, 1),
                    )
                )
                continue
        else:
            report.unsealed_events += 1
        if mac_ok is False:
            problems.append(
                Problem(
                    "event_changed",
                    f"{what} was changed: its MAC does not match its contents"
                    + ("" if in_seal else " (not sealed yet)"),
                    event_id=event_id,
                    company_id=company,
                    position=(event_id, 1),
                )
            )
            continue
        if mac_ok:
            report.mac_verified += 1
            if report.first_mac_id is None:
                report.first_mac_id = event_id
        if in_seal and (mac_ok or macs_from is None or event_id < macs_from):
            report.sealed_events += 1
        elif mac_ok:
            report.unsealed_mac_verified += 1
        elif company_id is None or company is None or company == company_id:
            report.unproven += 1
            if first_unproven is None:
                first_unproven = (event_id, row["action"], company)
    problems.extend(deleted(missing) for missing in expected[i:])
    if first_unproven is not None:
        first_id, action, company = first_unproven
        plural = "event" if report.unproven == 1 else "events"
        problems.append(
            Problem(
                "events_unproven",
                f"{report.unproven} {plural} cannot be proven, first event {first_id} ({action}): they "
                "carry no MAC a known master key checks (written by a session without the key, or "
                "forged, or stripped) and no seal covers them, or they come after the first MAC'd event "
                "the anchor records",
                event_id=first_id,
                company_id=company,
                position=(first_id, 1),
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
    if company_id is not None:
        problems = [
            p for p in problems if p.event_id is None or p.company_id is None or p.company_id == company_id
        ]
    report.problems = sorted(problems, key=lambda p: p.position)
    return report
