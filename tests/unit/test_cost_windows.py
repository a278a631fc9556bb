"""Roll-up windows in the company's time zone: every form, a DST day, a period boundary."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from company_agents.costs.rollups import plan
from company_agents.costs.windows import window, zone
from company_agents.errors import InvalidInput

NY = zone("America/New_York")
# 23:00 on 31 March in New York: still March there, already April in UTC.
NOW = datetime(2026, 4, 1, 3, 0, tzinfo=UTC)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


@pytest.mark.parametrize(
    ("since", "until", "start", "end"),
    [
        (
            None,
            None,
            "2026-03-01T05:00:00+00:00",
            "2026-04-01T03:00:00+00:00",
        ),  # the fiscal month (EST start)
        ("1h", None, "2026-04-01T02:00:00+00:00", "2026-04-01T03:00:00+00:00"),
        ("24h", None, "2026-03-31T03:00:00+00:00", "2026-04-01T03:00:00+00:00"),
        ("7d", None, "2026-03-25T03:00:00+00:00", "2026-04-01T03:00:00+00:00"),
        ("30d", None, "2026-03-02T03:00:00+00:00", "2026-04-01T03:00:00+00:00"),
        ("today", None, "2026-03-31T04:00:00+00:00", "2026-04-01T03:00:00+00:00"),  # EDT midnight
        ("yesterday", None, "2026-03-30T04:00:00+00:00", "2026-03-31T04:00:00+00:00"),
        ("this_week", None, "2026-03-30T04:00:00+00:00", "2026-04-01T03:00:00+00:00"),  # Monday
        ("this_month", None, "2026-03-01T05:00:00+00:00", "2026-04-01T03:00:00+00:00"),
        ("this_quarter", None, "2026-01-01T05:00:00+00:00", "2026-04-01T03:00:00+00:00"),
        ("2026-03-08", "2026-03-09", "2026-03-08T05:00:00+00:00", "2026-03-09T04:00:00+00:00"),  # 23 h long
        ("2026-03-10T12:00:00Z", "yesterday", "2026-03-10T12:00:00+00:00", "2026-03-31T04:00:00+00:00"),
        (
            "2026-03-10T08:00:00",
            "2026-03-11T08:00:00-04:00",
            "2026-03-10T12:00:00+00:00",
            "2026-03-11T12:00:00+00:00",
        ),
    ],
)
def test_every_form_in_the_company_time_zone(
    since: str | None, until: str | None, start: str, end: str
) -> None:
    win = window(since, until, now=NOW, tz=NY)
    assert (win.start, win.end) == (at(start), at(end))


def test_the_period_end_is_where_a_forecast_projects_to() -> None:
    assert window(None, None, now=NOW, tz=NY).period_end == at("2026-04-01T04:00:00+00:00")
    assert window("today", None, now=NOW, tz=NY).period_end == at("2026-04-01T04:00:00+00:00")
    assert window("7d", None, now=NOW, tz=NY).period_end is None
    rolling = window(None, None, now=NOW, tz=NY, fiscal="rolling-30d")
    assert rolling.start == at("2026-03-02T05:00:00+00:00")  # 2 March 00:00 EST: today and 29 days before


@pytest.mark.parametrize(("since", "until"), [("soon", None), ("2026-05-01", None), ("today", "yesterday")])
def test_a_bad_or_empty_window_is_refused(since: str, until: str | None) -> None:
    with pytest.raises(InvalidInput):
        window(since, until, now=NOW, tz=NY)


def test_whole_days_come_from_counters_and_only_the_edges_from_the_ledger() -> None:
    month = plan(window(None, None, now=NOW, tz=NY), NY, NOW)
    assert len(month.whole_days) == len(month.days) == 31 and month.edges == []
    day = plan(window("24h", None, now=NOW, tz=NY), NY, NOW)
    # Yesterday from 23:00 is an edge read from the ledger; today (up to now) is a whole counter row.
    assert day.edges == [(at("2026-03-31T03:00:00+00:00"), at("2026-03-31T04:00:00+00:00"), 1)]
    assert [str(d) for d in day.whole_days] == ["2026-03-31"]
    # From 08:00 on the 10th to 08:00 on the 12th (EDT): the 10th is its whole counter row minus the
    # ledger before 08:00 (the shorter side), the 11th is whole, the 12th is the ledger up to 08:00.
    past = plan(window("2026-03-10T12:00:00Z", "2026-03-12T12:00:00Z", now=NOW, tz=NY), NY, NOW)
    assert [str(d) for d in past.whole_days] == ["2026-03-10", "2026-03-11"]
    assert past.edges == [
        (at("2026-03-10T04:00:00+00:00"), at("2026-03-10T12:00:00+00:00"), -1),
        (at("2026-03-12T04:00:00+00:00"), at("2026-03-12T12:00:00+00:00"), 1),
    ]
