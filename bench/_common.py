"""Small helpers shared by the benchmark scripts: percentiles, a timer, a results table."""

from __future__ import annotations

import json
import math
import os
import sys
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
        cells = [row.name, _cell(float(row.value))]
        if base_value is not None:
            cells.append(f"{row.value / base_value:.2f}" if base_value else "n/a")
        cells.extend(_cell(row.extra[key]) if key in row.extra else "" for key in extra_columns)
        table.add_row(*cells)
    return table


# Set by `./scripts/bench --json FILE`: every printed table is also appended to that file.
JSON_ENV = "BENCH_JSON"


def _plain(value: object) -> object:
    if isinstance(value, float | int | str | bool) or value is None:
        return value
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return str(value)


def results_record(
    rows: Sequence[Row], *, baseline: str | None, metric: str, title: str | None
) -> dict[str, object]:
    """One table as JSON: each figure with its baseline's value and the ratio between them."""
    base_value = next((row.value for row in rows if row.name == baseline), None)
    return {
        "bench": os.path.splitext(os.path.basename(sys.argv[0]))[0],
        "title": title,
        "metric": metric,
        "baseline": {"name": baseline, "value": base_value} if baseline is not None else None,
        "rows": [
            {
                "name": row.name,
                "value": row.value,
                "ratio": (row.value / base_value) if base_value else None,
                **{key: _plain(value) for key, value in row.extra.items()},
            }
            for row in rows
        ],
    }


def append_json(path: str, record: dict[str, object]) -> None:
    """Add ``record`` to the ``tables`` of the JSON file at ``path`` (created when missing)."""
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except FileNotFoundError:
        doc = {}
    doc.setdefault("tables", []).append(record)
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def print_results(
    rows: Sequence[Row],
    *,
    baseline: str | None = None,
    metric: str = "tasks/s",
    title: str | None = None,
    console: Console | None = None,
) -> None:
    """Print :func:`results_table` to ``console`` (stdout by default); with ``$BENCH_JSON``, record it."""
    (console or Console()).print(results_table(rows, baseline=baseline, metric=metric, title=title))
    path = os.environ.get(JSON_ENV)
    if path:
        append_json(path, results_record(rows, baseline=baseline, metric=metric, title=title))
