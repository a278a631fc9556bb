"""What ``company-agents watch`` draws: one frame of a company's overview, from the read model
(``overview.company_overview``) and, when the inbox is open, its pending approvals. Pure rendering:
no database, no terminal; ``watch`` owns those."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from rich.console import RenderableType

    from company_agents.api.schemas.overview import OverviewPublic

STATE_ORDER = ("queued", "assigned", "running", "review", "handoff", "blocked", "done", "failed", "cancelled")
STATE_STYLE = {
    "queued": "cyan",
    "assigned": "blue",
    "running": "bold green",
    "review": "magenta",
    "handoff": "yellow",
    "blocked": "red",
    "done": "green",
    "failed": "bold red",
    "cancelled": "dim",
}
KEYS_HELP = "q quit · i inbox · ↑/↓ or j/k select · a approve · r reject"
BAR_WIDTH = 30


@dataclass
class ViewState:
    """What the person chose and was told: the inbox open or not, the selected row, the last message."""

    inbox_open: bool = False
    selected: int = 0
    message: str = ""
    approvals: list[dict[str, Any]] = field(default_factory=list)

    def select(self, step: int) -> None:
        if self.approvals:
            self.selected = (self.selected + step) % len(self.approvals)

    def selected_approval(self) -> dict[str, Any] | None:
        if not self.approvals:
            return None
        self.selected = min(self.selected, len(self.approvals) - 1)
        return self.approvals[self.selected]


def _states(out: OverviewPublic) -> Text:
    line = Text()
    for n, state in enumerate(STATE_ORDER):
        if n:
            line.append("  ")
        line.append(f"{state} {out.tasks.by_state.get(state, 0)}", style=STATE_STYLE[state])
    line.append(f"\ndone today {out.tasks.done_today} · failed today {out.tasks.failed_today}", style="dim")
    return line


def _agents(out: OverviewPublic) -> Table:
    table = Table(expand=True, show_edge=False, pad_edge=False)
    for column in ("agent", "team", "status", "task", "step", "%"):
        table.add_column(column, overflow="ellipsis", no_wrap=True)
    teams = [(team.name, team.agents) for team in out.teams] + [("—", out.agents_without_team)]
    for team_name, agents in teams:
        for agent in agents:
            status = agent.status if agent.health == "ok" else f"{agent.status} ({agent.health})"
            if not agent.running_tasks:
                table.add_row(agent.name, team_name, status, "", "", "")
            for running in agent.running_tasks:
                percent = "" if running.percent is None else f"{running.percent:.0f}"
                table.add_row(
                    agent.name,
                    team_name,
                    status,
                    running.title,
                    running.step or running.message or "",
                    percent,
                )
    return table


def _bar(spent: Decimal, cap: Decimal) -> Text:
    share = min(Decimal(1), spent / cap) if cap > 0 else Decimal(1)
    filled = int(share * BAR_WIDTH)
    style = "green" if share < Decimal("0.8") else "yellow" if share < 1 else "red"
    return Text("█" * filled, style=style) + Text("░" * (BAR_WIDTH - filled), style="dim")


def _cost(out: OverviewPublic) -> Text:
    c = out.cost
    spent, cap = Decimal(c.this_period), Decimal(c.budget)
    line = Text(f"today ${Decimal(c.today):.2f} · period ${spent:.2f} of ${cap:.2f} ")
    line += _bar(spent, cap)
    line.append(f" {c.percent_used or '—'}%")
    if c.forecast_end_of_period is not None:
        line.append(f" · forecast ${Decimal(c.forecast_end_of_period):.2f}")
    if c.level:
        line.append(f" · {c.level} breach", style="bold red")
    if c.unpriced_entries:
        line.append(f" · {c.unpriced_entries} unpriced", style="yellow")
    return line


def _inbox(state: ViewState) -> Table:
    table = Table(expand=True, show_edge=False, pad_edge=False, title="Pending approvals")
    for column in ("", "action", "cost", "expires", "id"):
        table.add_column(column, overflow="ellipsis", no_wrap=True)
    for n, approval in enumerate(state.approvals):
        mark = ">" if n == state.selected else ""
        style = "reverse" if n == state.selected else ""
        table.add_row(
            mark,
            approval["action"],
            approval["cost"]["usd"] or "",
            (approval["expiresAt"] or "")[:16],
            approval["id"][:8],
            style=style,
        )
    if not state.approvals:
        table.add_row("", "nothing waits for you", "", "", "")
    return table


def frame(out: OverviewPublic, state: ViewState, *, keys: bool = True) -> RenderableType:
    """One screen: the company, tasks by state, agents and their current tasks, money, the inbox; with
    ``keys``, a footer naming them (a printed ``--once`` frame has none)."""
    generated = out.generated_at.strftime("%H:%M:%S")
    header = Text.assemble(
        (f"{out.company.name} ({out.company.slug})", "bold"),
        f"  ·  {generated} UTC  ·  ",
        (f"inbox {out.inbox.total}", "bold yellow" if out.inbox.total else "dim"),
        f" (approvals {out.inbox.approvals}, handoffs {out.inbox.handoffs}, questions {out.inbox.questions})",
    )
    parts: list[RenderableType] = [
        header,
        Panel(_states(out), title="Tasks", title_align="left"),
        Panel(_agents(out), title="Agents", title_align="left"),
        Panel(_cost(out), title="Cost", title_align="left"),
    ]
    if state.inbox_open:
        parts.append(Panel(_inbox(state), title="Inbox", title_align="left"))
    if keys:
        footer = Text(KEYS_HELP, style="dim")
        if state.message:
            footer = Text(state.message + "  ·  ", style="bold") + footer
        parts.append(footer)
    return Group(*parts)
