"""Server-side SVG for the dashboard's gauges, bars and trend lines: no chart library, text a test can
read, and nothing a CSP without inline script would block (presentation attributes, no ``style``)."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal, InvalidOperation

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
