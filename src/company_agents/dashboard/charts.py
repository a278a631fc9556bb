"""Server-side SVG for the dashboard's gauges, bars and trend lines: no chart library, text a test can
read, and nothing a CSP without inline script would block (presentation attributes, no ``style``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from markupsafe import Markup, escape

WIDTH = 240


def _number(value: object) -> float:
    try:
        return float(Decimal(str(value)))
    except (InvalidOperation, ValueError):
        return 0.0


def gauge(percent: object, label: str, *, level: str | None = None) -> Markup:
    """A horizontal meter of ``percent`` (0-100, clamped; ``None`` draws an empty one)."""
    share = 0.0 if percent is None else max(0.0, min(100.0, _number(percent)))
    fill = {"soft": "#b7791f", "hard": "#c53030", "catastrophic": "#742a2a"}.get(level or "", "#2f855a")
    text = f"{label}: {share:.0f}%" if percent is not None else f"{label}: no budget"
    return Markup(
        '<svg class="gauge" viewBox="0 0 {w} 14" width="{w}" height="14" role="img" aria-label="{t}">'
        '<rect width="{w}" height="14" rx="3" fill="#e2e8f0"/>'
        '<rect width="{f:.1f}" height="14" rx="3" fill="{c}"/></svg>'
    ).format(w=WIDTH, t=text, f=WIDTH * share / 100, c=fill)


def bars(items: Sequence[tuple[str, object]], label: str, *, money: bool = False) -> Markup:
    """One labelled horizontal bar per ``(name, value)``, scaled to the largest."""
    values = [_number(v) for _, v in items]
    top = max(values, default=0.0) or 1.0
    row = 18
    parts = [
        Markup(
            '<svg class="bars" viewBox="0 0 {w} {h}" width="100%" height="{h}" role="img" aria-label="{a}">'
        ).format(w=WIDTH + 120, h=max(row, row * len(items)), a=label)
    ]
    for i, ((name, raw), value) in enumerate(zip(items, values, strict=True)):
        y = i * row
        parts.append(
            Markup(
                '<text x="0" y="{ty}" font-size="11">{n}</text>'
                '<rect x="90" y="{y}" width="{bw:.1f}" height="12" fill="#3182ce"/>'
                '<text x="{tx:.1f}" y="{ty}" font-size="11">{v}</text>'
            ).format(
                ty=y + 11,
                n=str(name)[:14],
                y=y + 2,
                bw=WIDTH * value / top,
                tx=94 + WIDTH * value / top,
                v=usd(raw) if money else str(raw),
            )
        )
    parts.append(Markup("</svg>"))
    return Markup("").join(parts)


def sparkline(values: Sequence[object], label: str) -> Markup:
    """A trend line over ``values`` (one a day, oldest first)."""
    numbers = [_number(v) for v in values] or [0.0]
    top = max(numbers) or 1.0
    step = WIDTH / max(1, len(numbers) - 1)
    points = " ".join(f"{i * step:.1f},{28 - 26 * n / top:.1f}" for i, n in enumerate(numbers))
    return Markup(
        '<svg class="spark" viewBox="0 0 {w} 30" width="{w}" height="30" role="img" aria-label="{a}">'
        '<polyline points="{p}" fill="none" stroke="#3182ce" stroke-width="2"/></svg>'
    ).format(w=WIDTH, a=escape(label), p=points)


def usd(value: object) -> str:
    """``$1.50``, ``$0.000123``: fixed point (never ``0E-8``), at least cents, no trailing zeros past."""
    if value is None:
        return "—"
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return str(value)
    text = format(amount, "f")
    whole, _, frac = text.partition(".")
    frac = frac.rstrip("0").ljust(2, "0")
    return f"${whole}.{frac}"


def tokens(value: object) -> int:
    """A token count, from a number or a ``{input, output, cacheRead, cacheWrite}`` object."""
    if isinstance(value, dict):
        return sum(int(v) for v in value.values() if isinstance(v, int | float))
    return int(_number(value))


ORG_COLUMN = 200
ORG_ROW = 34
ORG_INDENT = 16


def _org_order(members: Sequence[Mapping[str, Any]]) -> list[tuple[Mapping[str, Any], int]]:
    """A team's agents, each after the one it reports to (depth first), with its depth there."""
    ids = {m["id"] for m in members}
    reports: dict[Any, list[Mapping[str, Any]]] = {}
    for m in members:
        boss = m.get("reports_to")
        reports.setdefault(boss if boss in ids and boss != m["id"] else None, []).append(m)
    out: list[tuple[Mapping[str, Any], int]] = []
    seen: set[Any] = set()

    def walk(boss: Any, depth: int) -> None:
        for m in reports.get(boss, []):
            if m["id"] not in seen:
                seen.add(m["id"])
                out.append((m, depth))
                walk(m["id"], depth + 1)

    walk(None, 0)
    # A reporting cycle has no root: its agents still show, at the top level.
    out += [(m, 0) for m in members if m["id"] not in seen]
    return out


def org_chart(
    teams: Sequence[Mapping[str, Any]], agents: Sequence[Mapping[str, Any]], *, link: str = ""
) -> Markup:
    """Teams as columns, their agents below (indented under the one they report to), and a line for
    every reporting line, across teams too. Each agent links to ``{link}/{name}`` when ``link`` is set."""
    columns: list[tuple[str, list[Mapping[str, Any]]]] = [
        (t["name"], [a for a in agents if a.get("team_id") == t["id"]]) for t in teams
    ]
    team_ids = {t["id"] for t in teams}
    loose = [a for a in agents if a.get("team_id") not in team_ids]
    if loose:
        columns.append(("No team", loose))
    boxes: dict[Any, tuple[int, int]] = {}
    parts: list[Markup] = []
    tallest = 1
    for c, (name, members) in enumerate(columns):
        x = 10 + c * ORG_COLUMN
        parts.append(
            Markup(
                '<g class="team"><rect x="{x}" y="6" width="{w}" height="24" rx="4" fill="#2c5282"/>'
                '<text x="{tx}" y="22" font-size="12" fill="#fff">{n}</text></g>'
            ).format(x=x, w=ORG_COLUMN - 20, tx=x + 8, n=str(name)[:24])
        )
        ordered = _org_order(members)
        tallest = max(tallest, len(ordered) + 1)
        for r, (agent, depth) in enumerate(ordered, start=1):
            ax, ay = x + depth * ORG_INDENT, 6 + r * ORG_ROW
            boxes[agent["id"]] = (ax, ay)
            box = Markup(
                '<rect x="{x}" y="{y}" width="{w}" height="24" rx="4" fill="{f}" stroke="#2c5282"/>'
                '<text x="{tx}" y="{ty}" font-size="11">{n} · {s}</text>'
            ).format(
                x=ax,
                y=ay,
                w=ORG_COLUMN - 20 - depth * ORG_INDENT,
                f="#edf2f7" if agent.get("status") != "paused" else "#fefcbf",
                tx=ax + 6,
                ty=ay + 16,
                n=str(agent["name"])[:18],
                s=agent.get("status", ""),
            )
            if link:
                box = Markup('<a href="{h}/{n}">{b}</a>').format(h=link, n=agent["name"], b=box)
            parts.append(Markup('<g class="agent" data-agent="{n}">{b}</g>').format(n=agent["name"], b=box))
    lines: list[Markup] = []
    for agent in agents:
        boss = agent.get("reports_to")
        if boss in boxes and agent["id"] in boxes and boss != agent["id"]:
            (bx, by), (ax, ay) = boxes[boss], boxes[agent["id"]]
            if abs(ax - bx) < ORG_COLUMN:  # the same team: an elbow down the indent
                path = f"M{bx + 6} {by + 24} V{ay + 12} H{ax}"
            else:  # across teams: from the manager's right side to the report's left
                path = f"M{bx + ORG_COLUMN - 20} {by + 12} L{ax} {ay + 12}"
            lines.append(
                Markup('<path class="reports" d="{d}" fill="none" stroke="#718096"/>').format(d=path)
            )
    width = max(1, len(columns)) * ORG_COLUMN
    height = 12 + tallest * ORG_ROW
    label = f"Org chart: {len(columns)} teams, {len(agents)} agents"
    head = Markup(
        '<svg class="org" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="{a}">'
    ).format(w=width, h=height, a=label)
    return head + Markup("").join(lines) + Markup("").join(parts) + Markup("</svg>")
