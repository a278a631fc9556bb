"""Public event types: what each audit action is called on the event stream and in webhooks.

The database has the same mapping as ``ca_event_type()`` (migration 0017), used by the webhook
outbox trigger; tests/integration/test_events_feed.py keeps the two equal. Rules apply in order.
"""

from __future__ import annotations

import fnmatch

# (audit action pattern, public type); the first match wins, ``audit.recorded`` when none does.
RULES: tuple[tuple[str, str], ...] = (
    ("task.created", "task.created"),
    ("task.claimed", "run.started"),
    ("task.started", "run.started"),
    ("task.completed", "run.finished"),
    ("task.failed", "run.finished"),
    ("task.*", "task.updated"),
    ("run.*", "run.updated"),
    ("approval.requested", "approval.requested"),
    ("approval.decided", "approval.decided"),
    ("approval.expired", "approval.decided"),
    ("approval.*", "approval.rules_changed"),
    ("budget.breach.*", "budget.breached"),
    ("budget.*", "budget.updated"),
    ("cost.*", "cost.adjusted"),
    ("agent.hired", "agent.hired"),
    ("agent.*", "agent.updated"),
    ("webhook.*", "webhook.changed"),
)
FALLBACK = "audit.recorded"
# Sent by `webhook test` to one endpoint only; never matched against patterns.
TEST_TYPE = "webhook.test"

PUBLIC_TYPES: tuple[str, ...] = tuple(dict.fromkeys([t for _, t in RULES] + [FALLBACK]))


def event_type(action: str) -> str:
    """The public type of an audit action."""
    for pattern, public in RULES:
        if fnmatch.fnmatchcase(action, pattern):
            return public
    return FALLBACK


def matches(patterns: list[str] | tuple[str, ...], public_type: str) -> bool:
    """Whether an endpoint subscribed to ``patterns`` (``task.*``, ``*``) receives ``public_type``."""
    return any(fnmatch.fnmatchcase(public_type, p) for p in patterns)


def check_patterns(patterns: list[str]) -> list[str]:
    """Validated subscription patterns: ``*``, a family (``task.*``) or a known type."""
    from company_agents.errors import InvalidInput

    cleaned = [p.strip() for p in patterns if p.strip()]
    if not cleaned:
        raise InvalidInput("give at least one event pattern (task.*, approval.*, budget.*, or *)")
    families = {t.split(".")[0] for t in PUBLIC_TYPES}
    for p in cleaned:
        ok = p == "*" or p in PUBLIC_TYPES or (p.endswith(".*") and p[:-2] in families)
        if not ok:
            raise InvalidInput(f"unknown event pattern {p!r}; known types: {', '.join(PUBLIC_TYPES)}")
    return cleaned
