"""`watch`'s pure parts: reading key presses, and drawing a frame of an overview."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from rich.console import Console

from company_agents.api.schemas.overview import OverviewPublic
from company_agents.cli.watch import parse_keys
from company_agents.cli.watch_view import ViewState, frame

NOW = datetime(2026, 12, 2, 12, 30, tzinfo=UTC)


def test_parse_keys() -> None:
    assert parse_keys("q") == ["q"]
    assert parse_keys("\x1b[Aj\x1b[B\x1bOA") == ["up", "j", "down", "up"]
    assert parse_keys("\x1b[15~a") == ["a"]  # an unknown sequence (F5) is skipped whole
    assert parse_keys("") == []


def _overview(**cost: Any) -> OverviewPublic:
    agent = {
        "id": uuid.uuid4(), "name": "ada", "role": "dev", "status": "running", "health": "degraded",
        "team_id": None,
        "running_tasks": [{
            "task_id": uuid.uuid4(), "title": "write the docs", "status": "running", "run_id": uuid.uuid4(),
            "started_at": NOW, "step": "tests", "message": None, "percent": 40.0, "reported_at": NOW,
        }],
    }  # fmt: skip
    return OverviewPublic.model_validate(
        {
            "company": {
                "id": uuid.uuid4(),
                "slug": "acme",
                "name": "Acme",
                "status": "active",
                "time_zone": "UTC",
                "fiscal_period": "monthly",
            },
            "generated_at": NOW,
            "tasks": {
                "by_state": {"queued": 3, "running": 1},
                "total": 4,
                "in_flight": 1,
                "done_today": 0,
                "failed_today": 0,
            },
            "tasks_in_flight": [],
            "teams": [],
            "agents_without_team": [agent],
            "inbox": {"approvals": 1, "handoffs": 0, "questions": 0, "total": 1},
            "cost": {
                "today": "1",
                "this_period": "90",
                "period_start": NOW,
                "period_end": None,
                "budget": "100",
                "reserved": "0",
                "remaining": "10",
                "percent_used": "90.0",
                "level": "soft",
                "forecast_end_of_period": None,
                "run_rate_per_day": "3",
                "unpriced_entries": 2,
                **cost,
            },
            "health": {"total": 1, "running": 1, "idle": 0, "paused": 0, "degraded": 1, "failing": 0},
            "recent_activity": [],
        }
    )


def _text(renderable: Any) -> str:
    console = Console(width=120, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_frame_shows_states_agents_money_and_inbox() -> None:
    state = ViewState(
        inbox_open=True,
        approvals=[{"id": "0123456789", "action": "deploy", "cost": {"usd": "2.5"}, "expiresAt": None}],
    )
    text = _text(frame(_overview(), state))
    assert "queued 3" in text and "running 1" in text and "cancelled 0" in text
    assert "write the docs" in text and "tests" in text and "running (degraded)" in text
    assert "period $90.00 of $100.00" in text and "soft breach" in text and "2 unpriced" in text
    assert "inbox 1" in text and "deploy" in text and "q quit" in text
    assert "q quit" not in _text(frame(_overview(), ViewState(), keys=False))


def test_selection_wraps_and_survives_a_shorter_list() -> None:
    state = ViewState(approvals=[{"id": "a"}, {"id": "b"}])
    state.select(-1)
    assert state.selected == 1
    state.approvals = [{"id": "a"}]
    assert state.selected_approval() == {"id": "a"}
    assert ViewState().selected_approval() is None
