"""Incremental server-sent-events and JSON-body readers shared by the wire formats."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

# A non-streamed answer is kept (to read its usage) up to this size; beyond it, it passes unread.
MAX_JSON_BODY = 16 * 1024 * 1024


class SseEvents:
    """Splits a byte stream into ``data:`` payloads and hands each parsed JSON object to ``on_event``."""

    def __init__(self, on_event: Callable[[dict[str, Any]], None]) -> None:
        self._buffer = b""
        self._on_event = on_event

    def feed(self, chunk: bytes) -> None:
        self._buffer += chunk
        while True:
            cut = self._buffer.find(b"\n")
            if cut < 0:
                return
            line, self._buffer = self._buffer[:cut].rstrip(b"\r"), self._buffer[cut + 1 :]
            if not line.startswith(b"data:"):
                continue
            try:
                data = json.loads(line[5:].strip())
            except ValueError:
                continue
            if isinstance(data, dict):
                self._on_event(data)


class JsonBody:
    """Collects a JSON answer and hands the parsed object to ``on_event`` when asked."""

    def __init__(self, on_event: Callable[[dict[str, Any]], None]) -> None:
        self._parts: list[bytes] = []
        self._size = 0
        self._on_event = on_event
        self._done = False

    def feed(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._size <= MAX_JSON_BODY:
            self._parts.append(chunk)

    def close(self) -> None:
        if self._done or self._size > MAX_JSON_BODY:
            return
        self._done = True
        try:
            data = json.loads(b"".join(self._parts))
        except ValueError:
            return
        if isinstance(data, dict):
            self._on_event(data)
        elif isinstance(data, list):  # Gemini's non-SSE stream: a JSON array of chunks
            for item in data:
                if isinstance(item, dict):
                    self._on_event(item)


def count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
