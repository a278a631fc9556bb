"""Rich progress bars for table-by-table work (export, archive check, load, verify)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

if TYPE_CHECKING:
    from company_agents.transfer.progress import ProgressFn


PHASES = {"export": "exporting", "check": "checking", "load": "loading", "verify": "verifying"}


@contextmanager
def table_progress(*, quiet: bool) -> Iterator[ProgressFn | None]:
    """One bar per (phase, table) on a terminal; nothing with ``--json`` or when stderr is not a TTY."""
    if quiet or not sys.stderr.isatty():
        yield None
        return
    bars = Progress(
        TextColumn("{task.description:<28}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=False,
    )
    tasks: dict[tuple[str, str], TaskID] = {}

    def report(phase: str, table: str, done: int, total: int | None) -> None:
        key = (phase, table)
        if key not in tasks:
            tasks[key] = bars.add_task(f"{PHASES.get(phase, phase)} {table}", total=total)
        bars.update(tasks[key], completed=done, total=total)

    with bars:
        yield report
