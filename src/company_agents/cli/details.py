"""How ``show`` commands print one object for a person: aligned fields, names beside ids, local times,
JSON as indented JSON, long text wrapped to the terminal. Never a Python repr: ``--json`` is for machines.
"""

from __future__ import annotations

import json
import shutil
import textwrap
from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from company_agents.cli.output import json_default


def local_time(value: datetime | None) -> str:
    """``2026-12-02 14:03:07 CET``: the machine's local time, with its zone."""
    if value is None:
        return ""
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


def table_time(value: datetime | None) -> str:
    """``12-02 14:03``: local time, short enough for a table column (``show`` gives the zone)."""
    return "" if value is None else value.astimezone().strftime("%m-%d %H:%M")


def with_name(name: str | None, value: UUID | str | None) -> str:
    """``eng (1a2b3c4d)``: a name with the short id that resolves to it, or the id alone."""
    from company_agents.ids import short_id

    if value is None:
        return ""
    return f"{name} ({short_id(value)})" if name else str(value)


def text_of(value: Any) -> str:
    """A value as a person reads it (JSON for structures, never a repr)."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return local_time(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, UUID | Decimal | int | float | str):
        return str(value)
    return json.dumps(value, indent=2, ensure_ascii=False, default=json_default)


def output_fields(stored: Any) -> list[tuple[str, str]]:
    """The ``output`` (and ``reasoning``) lines of a task or run.

    What ``mark_complete`` stores is ``{"output": …, "reasoning": …}``; the output is shown as its
    Markdown ``summary`` when the agent gave one (the rest is named, ``--json`` has it), else as JSON.
    """
    if stored is None:
        return []
    reasoning: Any = None
    output = stored
    if isinstance(stored, Mapping) and "output" in stored and set(stored) <= {"output", "reasoning"}:
        output, reasoning = stored["output"], stored.get("reasoning")
    text = text_of(output)
    if isinstance(output, Mapping):
        summary = output.get("summary")
        if isinstance(summary, str) and summary.strip():
            rest = sorted(str(k) for k in output if k != "summary")
            text = summary.strip() + (f"\n(also {', '.join(rest)}: --json shows them)" if rest else "")
    fields = [("output", text)]
    if isinstance(reasoning, str) and reasoning.strip():
        fields.append(("reasoning", reasoning.strip()))
    return fields


def _width() -> int:
    return max(60, min(shutil.get_terminal_size((100, 24)).columns, 120))


def format_fields(fields: Iterable[tuple[str, Any]]) -> str:
    """``label  value`` lines; a multi-line or long value is wrapped and indented under its label."""
    items = [(label, value if isinstance(value, str) else text_of(value)) for label, value in fields]
    pad = max((len(label) for label, _ in items), default=0) + 2
    width = _width() - pad
    lines: list[str] = []
    for label, value in items:
        body: list[str] = []
        for paragraph in value.splitlines() or [""]:
            if len(paragraph) <= width or paragraph.startswith(" "):  # JSON keeps its own layout
                body.append(paragraph)
            else:
                # A path or a URL is one word: never cut, so it can be copied.
                body.extend(
                    textwrap.wrap(paragraph, width, break_on_hyphens=False, break_long_words=False) or [""]
                )
        lines.append(f"{label:<{pad}}{body[0]}".rstrip())
        lines.extend(f"{'':<{pad}}{line}".rstrip() for line in body[1:])
    return "\n".join(lines)


def print_fields(fields: Iterable[tuple[str, Any]]) -> None:
    print(format_fields(fields))
