"""Small helpers shared by the benchmark scripts: percentiles, a timer, a results table."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType

from rich.console import Console
from rich.table import Table


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of ``values``, linearly interpolated between closest ranks."""
    if not values:
        raise ValueError("percentile of an empty sequence")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile must be within 0..100, got {q}")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def p50_p99(values: Sequence[float]) -> tuple[float, float]:
    """The median and the 99th percentile of ``values``."""
    return percentile(values, 50.0), percentile(values, 99.0)


class Timer:
    """A wall-clock stopwatch (``time.perf_counter``), usable as a context manager.

    ``elapsed`` is the running time while the timer runs, and the final time once it has stopped.
    """

    def __init__(self) -> None:
        self._start: float | None = None
        self._stop: float | None = None

    def start(self) -> Timer:
        self._start, self._stop = time.perf_counter(), None
        return self

    def stop(self) -> float:
        if self._start is None:
            raise RuntimeError("the timer was never started")
        self._stop = time.perf_counter()
        return self.elapsed

    @property
    def elapsed(self) -> float:
        if self._start is None:
            return 0.0
        end = self._stop if self._stop is not None else time.perf_counter()
        return end - self._start

    def __enter__(self) -> Timer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@dataclass(frozen=True)
class Row:
    """One line of a results table: a name, the compared figure, and any extra columns."""

    name: str
    value: float
    extra: Mapping[str, object] = field(default_factory=dict)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 100 else f"{value:,.3g}"
    return str(value)


def results_table(
    rows: Sequence[Row],
    *,
    baseline: str | None = None,
    metric: str = "tasks/s",
    title: str | None = None,
) -> Table:
    """A Rich table of ``rows``; with ``baseline`` (a row name), a ``vs <baseline>`` ratio column."""
    base_value: float | None = None
    if baseline is not None:
        matches = [row.value for row in rows if row.name == baseline]
        if not matches:
            raise ValueError(f"no row named {baseline!r} to use as the baseline")
        base_value = matches[0]
    extra_columns: list[str] = []
    for row in rows:
        extra_columns.extend(key for key in row.extra if key not in extra_columns)

    table = Table(title=title)
    table.add_column("name")
    table.add_column(metric, justify="right")
    if baseline is not None:
        table.add_column(f"vs {baseline}", justify="right")
    for key in extra_columns:
        table.add_column(key, justify="right")
    for row in rows:
        cells = [row.name, f"{row.value:,.1f}"]
        if base_value is not None:
            cells.append(f"{row.value / base_value:.2f}" if base_value else "n/a")
        cells.extend(_cell(row.extra[key]) if key in row.extra else "" for key in extra_columns)
        table.add_row(*cells)
    return table


def print_results(
    rows: Sequence[Row],
    *,
    baseline: str | None = None,
    metric: str = "tasks/s",
    title: str | None = None,
    console: Console | None = None,
) -> None:
    """Print :func:`results_table` to ``console`` (stdout by default)."""
    (console or Console()).print(results_table(rows, baseline=baseline, metric=metric, title=title))
