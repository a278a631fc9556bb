"""The task state machine (docs/design.md §4), enforced here and nowhere else.

``queued → assigned → running → review → done``; from ``assigned``/``running``: ``failed``,
``cancelled``, ``handoff``, or back to ``queued`` when an attempt ends and retries remain;
``review → queued`` when a reviewer rejects; ``blocked`` while waiting on something.
``done``, ``failed`` and ``cancelled`` are terminal and frozen.
"""

from __future__ import annotations

from typing import LiteralString

from company_agents.db.schema.tasks import TASK_STATUSES as TASK_STATUSES_ALL
from company_agents.errors import IllegalTransition

__all__ = [
    "ACTIVE",
    "ACTIVE_SQL",
    "CLAIMABLE",
    "TASK_STATUSES_ALL",
    "TERMINAL",
    "TRANSITIONS",
    "can_move",
    "check_transition",
    "sql_list",
]

TERMINAL = frozenset({"done", "failed", "cancelled"})
# States in which an attempt holds (or just held) a lease; fenced writes expect one of these.
ACTIVE = ("assigned", "running")
# The one state a claim takes a task from (the rule itself is the SQL function ca_task_claimable,
# db/sql/ca_task_claimable.sql, which a test checks against this).
CLAIMABLE = ("queued",)


def sql_list(states: tuple[str, ...]) -> LiteralString:
    """``('a', 'b')`` for ``status IN …`` in static SQL, from the states above (never hand-written)."""
    unknown = [s for s in states if s not in TASK_STATUSES_ALL]
    if unknown or not states:
        raise ValueError(f"not task states: {unknown or states}")
    # The states are the module's own constants, checked above: safe to splice into SQL text.
    return "(" + ", ".join(f"'{s}'" for s in states) + ")"


ACTIVE_SQL = sql_list(ACTIVE)

TRANSITIONS: dict[str, frozenset[str]] = {
    "queued": frozenset({"assigned", "cancelled", "blocked"}),
    # An attempt stopped by a budget leaves its task blocked (docs/budgets.md).
    "assigned": frozenset({"running", "review", "queued", "failed", "cancelled", "handoff", "blocked"}),
    "running": frozenset({"review", "queued", "failed", "cancelled", "handoff", "blocked"}),
    "review": frozenset({"done", "queued", "cancelled"}),
    "handoff": frozenset({"queued", "cancelled", "done"}),
    # An approval denied (or expired) while the task waits for it escalates to a person.
    "blocked": frozenset({"queued", "cancelled", "handoff"}),
    "done": frozenset(),
    "failed": frozenset(),
    "cancelled": frozenset(),
}


def can_move(current: str, target: str) -> bool:
    return target in TRANSITIONS.get(current, frozenset())


def check_transition(current: str, target: str, *, task_id: object = None) -> None:
    """Raise ``IllegalTransition`` with a message a person can act on."""
    if can_move(current, target):
        return
    if current in TERMINAL:
        raise IllegalTransition(
            f"task is {current}, which is final: it cannot become {target} (create a new task instead)",
            task=str(task_id),
            status=current,
            target=target,
        )
    allowed = ", ".join(sorted(TRANSITIONS.get(current, ()))) or "nothing"
    raise IllegalTransition(
        f"a {current} task cannot become {target} (from {current} it can become: {allowed})",
        task=str(task_id),
        status=current,
        target=target,
    )


def sources_of(target: str) -> tuple[str, ...]:
    """Every state from which ``target`` is reachable in one step (for WHERE status IN (…))."""
    return tuple(sorted(s for s, targets in TRANSITIONS.items() if target in targets))
