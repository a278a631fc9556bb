"""A run's log, ``<home>/logs/runs/<run-id>.log``: timestamped lines of the agent's output and of
the orchestrator's notes about the run, with the run's secrets redacted."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO


class RunLog:
    """Appends timestamped lines to ``<home>/logs/runs/<run-id>.log``."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: TextIO = path.open("a", encoding="utf-8", buffering=1)
        self.secrets: list[str] = []  # values never written (an agent CLI's key, echoed in an error)

    def write(self, stream: str, line: str) -> None:
        stamp = datetime.now(UTC).strftime("%H:%M:%S.%f")[:-3]
        self._fh.write(f"{stamp} [{stream}] {redact(line.rstrip(), self.secrets)}\n")

    def close(self) -> None:
        self._fh.close()


MIN_REDACTED = 8  # shorter values are too likely to be ordinary words


def redact(text: str, secrets: list[str]) -> str:
    for value in secrets:
        text = text.replace(value, "[redacted]")
    return text


def is_delta(event: Any) -> bool:
    """A Claude Code partial-message delta (``--include-partial-messages``): one per few tokens."""
    inner = event.get("event") if isinstance(event, dict) and event.get("type") == "stream_event" else None
    return isinstance(inner, dict) and inner.get("type") == "content_block_delta"
