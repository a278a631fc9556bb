"""Gemini (``models/<m>:generateContent`` and ``:streamGenerateContent``): usage from the last
``usageMetadata`` seen (each chunk carries the running totals); ``promptTokenCount`` includes the
cached tokens, the thoughts are output."""

from __future__ import annotations

import re
from typing import Any

from company_agents.costs.ledger import Usage
from company_agents.gateway.formats.sse import JsonBody, SseEvents, as_dict, count

_MODEL = re.compile(r"/models/([^/:]+):(?:stream)?[Gg]enerateContent")


class GeminiUsage:
    def __init__(self, streaming: bool) -> None:
        self.usage: Usage | None = None
        self.model: str | None = None
        # `alt=sse` streams are SSE; a plain stream is a JSON array, read whole at the end.
        self._json = JsonBody(self._chunk)
        self._sse = SseEvents(self._chunk) if streaming else None

    def feed(self, chunk: bytes) -> None:
        if self._sse is not None:
            self._sse.feed(chunk)
        if self.usage is None:
            self._json.feed(chunk)

    def _chunk(self, chunk: dict[str, Any]) -> None:
        if isinstance(chunk.get("modelVersion"), str):
            self.model = chunk["modelVersion"]
        meta = as_dict(chunk.get("usageMetadata"))
        if not meta:
            return
        cached = count(meta.get("cachedContentTokenCount"))
        self.usage = Usage(
            input_tokens=max(count(meta.get("promptTokenCount")) - cached, 0),
            output_tokens=count(meta.get("candidatesTokenCount")) + count(meta.get("thoughtsTokenCount")),
            cache_read_tokens=cached,
            reasoning_tokens=count(meta.get("thoughtsTokenCount")),
        )

    def result(self) -> tuple[Usage | None, str | None]:
        if self.usage is None:
            self._json.close()
        return self.usage, self.model


class Gemini:
    name = "gemini"
    provider = "google"
    default_upstream = "https://generativelanguage.googleapis.com"

    def model(self, path: str, body: dict[str, Any]) -> str | None:  # noqa: ARG002
        found = _MODEL.search(path)
        return found.group(1) if found else None

    def max_tokens(self, body: dict[str, Any]) -> int | None:
        return count(as_dict(body.get("generationConfig")).get("maxOutputTokens")) or None

    def metered(self, path: str) -> bool:
        return _MODEL.search(path) is not None

    def put_key(self, headers: dict[str, str], key: str) -> None:
        headers.pop("authorization", None)
        headers["x-goog-api-key"] = key

    def error(self, status: int, kind: str, message: str, reason: str) -> dict[str, Any]:
        return {"error": {"code": status, "message": message, "status": kind, "reason": reason}}

    def reader(self, streaming: bool) -> GeminiUsage:
        return GeminiUsage(streaming)
