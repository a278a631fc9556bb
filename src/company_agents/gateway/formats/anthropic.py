"""Anthropic Messages (``POST /v1/messages``): usage from ``message_start`` (input, cache) and
``message_delta`` (output, cumulative), or the body's ``usage`` when not streamed."""

from __future__ import annotations

from typing import Any

from company_agents.costs.ledger import Usage
from company_agents.gateway.formats.sse import JsonBody, SseEvents, as_dict, count


class AnthropicUsage:
    def __init__(self, streaming: bool) -> None:
        self.input = self.output = self.cache_read = self.cache_5m = self.cache_1h = 0
        self.seen = False
        self.model: str | None = None
        self._json = None if streaming else JsonBody(self._message)
        self._sse = SseEvents(self._event) if streaming else None

    def feed(self, chunk: bytes) -> None:
        (self._sse or self._json).feed(chunk)  # type: ignore[union-attr]

    def _event(self, event: dict[str, Any]) -> None:
        if event.get("type") == "message_start":
            self._message(as_dict(event.get("message")))
        elif event.get("type") == "message_delta":
            usage = as_dict(event.get("usage"))
            if "output_tokens" in usage:
                self.seen = True
                self.output = count(usage.get("output_tokens"))  # cumulative, not a delta

    def _message(self, message: dict[str, Any]) -> None:
        if isinstance(message.get("model"), str):
            self.model = message["model"]
        usage = as_dict(message.get("usage"))
        if not usage:
            return
        self.seen = True
        self.input = count(usage.get("input_tokens"))
        self.output = max(self.output, count(usage.get("output_tokens")))
        self.cache_read = count(usage.get("cache_read_input_tokens"))
        split = as_dict(usage.get("cache_creation"))
        if split:
            self.cache_5m = count(split.get("ephemeral_5m_input_tokens"))
            self.cache_1h = count(split.get("ephemeral_1h_input_tokens"))
        else:
            self.cache_5m = count(usage.get("cache_creation_input_tokens"))

    def result(self) -> tuple[Usage | None, str | None]:
        if self._json is not None:
            self._json.close()
        if not self.seen:
            return None, self.model
        usage = Usage(
            input_tokens=self.input,
            output_tokens=self.output,
            cache_read_tokens=self.cache_read,
            cache_write_5m_tokens=self.cache_5m,
            cache_write_1h_tokens=self.cache_1h,
        )
        return usage, self.model


class Anthropic:
    name = "anthropic"
    provider = "anthropic"
    default_upstream = "https://api.anthropic.com"

    def model(self, path: str, body: dict[str, Any]) -> str | None:  # noqa: ARG002
        return body.get("model") if isinstance(body.get("model"), str) else None

    def max_tokens(self, body: dict[str, Any]) -> int | None:
        return count(body.get("max_tokens")) or None

    def metered(self, path: str) -> bool:
        return path.rstrip("/").endswith("/messages")

    def put_key(self, headers: dict[str, str], key: str) -> None:
        headers.pop("authorization", None)
        headers["x-api-key"] = key

    def error(self, status: int, kind: str, message: str, reason: str) -> dict[str, Any]:  # noqa: ARG002
        return {"type": "error", "error": {"type": kind, "message": message, "reason": reason}}

    def reader(self, streaming: bool) -> AnthropicUsage:
        return AnthropicUsage(streaming)
