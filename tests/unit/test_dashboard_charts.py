"""The dashboard's server-side SVG and money text."""

from __future__ import annotations

from typing import Any

from company_agents.dashboard import charts


def test_money_is_fixed_point_with_at_least_cents() -> None:
    assert charts.usd("0E-8") == "$0.00"
    assert charts.usd("1.50000000") == "$1.50"
    assert charts.usd("0.00012300") == "$0.000123"
    assert charts.usd(None) == "—" and charts.usd("n/a") == "n/a"


def test_gauge_clamps_and_labels_and_escapes() -> None:
    full = charts.gauge("250", "Budget <used>")
    assert 'width="240.0"' in full and "Budget &lt;used&gt;: 100%" in full
    assert "no budget" in charts.gauge(None, "Budget")
    assert "style" not in full  # nothing a strict CSP would block


def test_bars_scale_to_the_largest_and_escape_names() -> None:
    svg = charts.bars([("<b>", 2), ("done", 4)], "Tasks by state")
    assert "&lt;b&gt;" in svg and 'width="240.0"' in svg and 'width="120.0"' in svg
    assert 'aria-label="Tasks by state"' in svg
    assert "<text" not in charts.bars([], "empty")


def test_tokens_sum_an_object_or_read_a_number() -> None:
    assert charts.tokens({"input": 204, "output": 12, "cacheRead": 0}) == 216
    assert charts.tokens(7) == 7


def test_the_org_chart_nests_reports_draws_lines_and_survives_a_cycle() -> None:
    teams = [{"id": "t1", "name": "<Eng>"}]
    agents: list[dict[str, Any]] = [
        {"id": "a", "name": "ada", "team_id": "t1", "reports_to": None, "status": "idle"},
        {"id": "b", "name": "bob", "team_id": "t1", "reports_to": "a", "status": "paused"},
        {"id": "c", "name": "cy", "team_id": None, "reports_to": "a", "status": "idle"},
        # A cycle has no root: both still show, at the top level.
        {"id": "x", "name": "xi", "team_id": None, "reports_to": "y", "status": "idle"},
        {"id": "y", "name": "yo", "team_id": None, "reports_to": "x", "status": "idle"},
    ]
    svg = charts.org_chart(teams, agents, link="/c/acme/agents")
    assert "&lt;Eng&gt;" in svg and ">No team<" in svg
    assert 'aria-label="Org chart: 2 teams, 5 agents"' in svg
    assert all(f'data-agent="{n}"' in svg for n in ("ada", "bob", "cy", "xi", "yo"))
    assert svg.count('class="reports"') == 4  # bob, cy, and the cycle's two
    assert 'href="/c/acme/agents/bob"' in svg and "style" not in svg
    # bob sits indented under ada: one indent step to the right of ada's box.
    ada_x = float(svg.split('data-agent="ada"')[1].split('x="')[1].split('"')[0])
    bob_x = float(svg.split('data-agent="bob"')[1].split('x="')[1].split('"')[0])
    assert bob_x == ada_x + charts.ORG_INDENT
