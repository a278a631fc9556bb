from __future__ import annotations

import itertools

import pytest

from company_agents.errors import IllegalTransition
from company_agents.task_states import TERMINAL, TRANSITIONS, can_move, check_transition


def test_the_happy_path_and_the_review_loop() -> None:
    path = ["queued", "assigned", "running", "review", "done"]
    for a, b in itertools.pairwise(path):
        assert can_move(a, b)
    assert can_move("review", "queued")  # rejected by a reviewer
    for source in ("assigned", "running"):
        for target in ("failed", "cancelled", "handoff", "queued"):
            assert can_move(source, target)


@pytest.mark.parametrize("terminal", sorted(TERMINAL))
def test_terminal_states_are_frozen(terminal: str) -> None:
    assert TRANSITIONS[terminal] == frozenset()
    with pytest.raises(IllegalTransition, match="final"):
        check_transition(terminal, "queued")


def test_illegal_moves_say_what_is_possible() -> None:
    with pytest.raises(
        IllegalTransition, match=r"a queued task cannot become done .*assigned, blocked, cancelled"
    ):
        check_transition("queued", "done")
    assert not can_move("queued", "review")
    assert not can_move("unknown", "queued")
